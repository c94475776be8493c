"""Softmax codes and Tammes codes for any ``(K, d)``, certified by the exact geometry."""

from gnc.codes.catalogue import CatalogueEntry, best_known
from gnc.codes.polish import PolishResult, polish_softmax, polish_tammes
from gnc.codes.result import CodeResult, certify_code
from gnc.codes.softmax import closed_form_code, softmax_code
from gnc.codes.surrogate import AnnealSchedule, anneal
from gnc.codes.tammes import tammes_code

__all__ = [
    "AnnealSchedule",
    "CatalogueEntry",
    "CodeResult",
    "PolishResult",
    "anneal",
    "best_known",
    "certify_code",
    "closed_form_code",
    "polish_softmax",
    "polish_tammes",
    "softmax_code",
    "tammes_code",
]
