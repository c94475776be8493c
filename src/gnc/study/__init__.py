"""The paper's study end to end: profiles, the paper's numbers, one module per section, runner.

Each section (:mod:`gnc.study.codes`, ..., :mod:`gnc.study.catalogue`) composes the library at
the sizes of a :class:`Profile` and returns a :class:`SectionResult`; :func:`reproduce` runs
them, stores and reuses finished ones, and writes ``results.json`` and the HTML report
(:mod:`gnc.report`). Jiang et al., "Generalized Neural Collapse for a Large Number of Classes",
ICML 2024.
"""

from gnc.study.estimate import estimate_seconds
from gnc.study.profile import PROFILES, Profile, get_profile, profile_id
from gnc.study.records import FigureRef, ReproduceResult, SectionResult, SectionSkipped, Table
from gnc.study.registry import SECTIONS, section_names
from gnc.study.runner import load_section, reproduce
from gnc.study.runs import prepare_training_data

__all__ = [
    "PROFILES",
    "SECTIONS",
    "FigureRef",
    "Profile",
    "ReproduceResult",
    "SectionResult",
    "SectionSkipped",
    "Table",
    "estimate_seconds",
    "get_profile",
    "load_section",
    "prepare_training_data",
    "profile_id",
    "reproduce",
    "section_names",
]
