"""Reports: plots of codes, training runs, UFM sweeps and heads; ``gnc reproduce`` (HTML)."""

from gnc.report.reproduce import (
    PROFILES,
    SECTIONS,
    Profile,
    ReproduceResult,
    SectionResult,
    reproduce,
    section_names,
)

__all__ = [
    "PROFILES",
    "SECTIONS",
    "Profile",
    "ReproduceResult",
    "SectionResult",
    "reproduce",
    "section_names",
]
