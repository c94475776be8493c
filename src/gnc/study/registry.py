"""The sections of the study in report order: name -> (title, function)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gnc.study import assignment, catalogue, codes, heads, lm, pretrained, tammes, training, ufm
from gnc.study.profile import Profile
from gnc.study.records import Progress, SectionResult

__all__ = ["SECTIONS", "Section", "section_names"]

#: A section: ``(profile, section folder, progress) -> SectionResult``.
Section = Callable[[Profile, Path, Progress], SectionResult]

#: The report's sections in order: name -> (title, the function that computes it).
SECTIONS: dict[str, tuple[str, Section]] = {
    "codes": (codes.TITLE, codes.section_codes),
    "tammes": (tammes.TITLE, tammes.section_tammes),
    "ufm": (ufm.TITLE, ufm.section_ufm),
    "training": (training.TITLE, training.section_training),
    "heads": (heads.TITLE, heads.section_heads),
    "assignment": (assignment.TITLE, assignment.section_assignment),
    "pretrained": (pretrained.TITLE, pretrained.section_pretrained),
    "lm": (lm.TITLE, lm.section_lm),
    "catalogue": (catalogue.TITLE, catalogue.section_catalogue),
}


def section_names() -> tuple[str, ...]:
    """Registered section names in report order.

    Example:
        >>> section_names()[:3]
        ('codes', 'tammes', 'ufm')
    """
    return tuple(SECTIONS)
