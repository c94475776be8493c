"""Result records of the study: a section's tables, figures, comparisons with the paper.

Every record is a frozen dataclass with one ``to_dict()`` (JSON-ready); a missing value is
``None``. A comparison row is ``(quantity, paper, ours, note)`` where ``note`` is
``"<verdict>: <reason>"`` (:func:`verdict`; read back with
:func:`gnc.report.html.split_verdict`), the verdict computed from the numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from gnc.report.figures import save_figure
from gnc.report.html import VERDICT_WORDS

__all__ = [
    "FigureRef",
    "Progress",
    "ReproduceResult",
    "SectionResult",
    "SectionSkipped",
    "Status",
    "Table",
    "figure_ref",
    "table",
    "verdict",
]

#: ``ok``: ran and nothing disagrees with the paper; ``differs``: ran, and at least one of its
#: paper-vs-ours rows has the verdict "differs"; ``skipped``: data or package missing;
#: ``failed``: an exception.
Status = Literal["ok", "differs", "skipped", "failed"]
#: A section's progress messages (shown beside the runner's bar).
Progress = Callable[[str], None]


def verdict(kind: str, reason: str) -> str:
    """The note of a comparison row: ``"<verdict>: <reason>"``.

    Example:
        >>> verdict("differs", "15 epochs")
        'differs: 15 epochs'
    """
    if kind not in VERDICT_WORDS:
        raise ValueError(f"Expected a verdict in {VERDICT_WORDS}, but got {kind!r}.")
    return f"{kind}: {reason}"


class SectionSkipped(Exception):
    """Raised by a section whose data source or optional package is missing."""


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of a section: caption, column headers and rows of JSON-able cells."""

    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """``caption``, ``headers`` and ``rows`` (tuples as lists)."""
        return {
            "caption": self.caption,
            "headers": list(self.headers),
            "rows": [list(r) for r in self.rows],
        }


def table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A :class:`Table` from any sequences."""
    return Table(caption, tuple(headers), tuple(tuple(r) for r in rows))


@dataclasses.dataclass(frozen=True)
class FigureRef:
    """A figure of a section: ``file`` is relative to the section folder."""

    name: str
    caption: str
    file: str

    def to_dict(self) -> dict[str, Any]:
        """``name``, ``caption`` and ``file``."""
        return dataclasses.asdict(self)


def figure_ref(section_dir: Path, name: str, fig: Any, caption: str) -> FigureRef:
    """Save ``fig`` as ``section_dir/figures/<name>.png`` and return its :class:`FigureRef`."""
    rel = f"figures/{name}.png"
    save_figure(fig, section_dir / rel)
    return FigureRef(name=name, caption=caption, file=rel)


@dataclasses.dataclass(frozen=True)
class SectionResult:
    """What one section produced.

    Attributes:
        name: Registry key (folder name).
        title: Heading in the report.
        status: ``"ok"``, ``"differs"`` (ran; a comparison row's verdict is "differs", or the
            section found its numbers at odds with the theory), ``"skipped"`` (missing data or
            package) or ``"failed"`` (exception).
        summary: One paragraph of what the section shows, written from its numbers.
        tables: Its tables.
        figures: Its figures (PNG files under the section folder).
        comparisons: ``(quantity, paper, ours, note)`` rows: the paper's numbers beside ours;
            ``note`` starts with a verdict (:func:`verdict`) computed from the numbers.
        notices: Messages shown highlighted (skips, missing packages, errors, caveats).
        profile: :func:`gnc.study.profile.profile_id` of the profile it ran under.
        seconds: Wall time.
        data: Extra JSON-able numbers for ``results.json``.
    """

    name: str
    title: str
    status: Status
    summary: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[FigureRef, ...] = ()
    comparisons: tuple[tuple[Any, ...], ...] = ()
    notices: tuple[str, ...] = ()
    profile: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field; tables and figures as their ``to_dict()``, tuples as lists.

        ``data`` is passed through: the sections put only JSON-able values (no tensors) in it.
        """
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "tables": [t.to_dict() for t in self.tables],
            "figures": [f.to_dict() for f in self.figures],
            "comparisons": [list(c) for c in self.comparisons],
            "notices": list(self.notices),
            "profile": self.profile,
            "seconds": self.seconds,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SectionResult:
        """The inverse of :meth:`to_dict` (``KeyError`` / ``TypeError`` on a malformed dict)."""
        return cls(
            name=raw["name"],
            title=raw["title"],
            status=raw["status"],
            summary=raw.get("summary", ""),
            tables=tuple(table(t["caption"], t["headers"], t["rows"]) for t in raw["tables"]),
            figures=tuple(FigureRef(**f) for f in raw["figures"]),
            comparisons=tuple(tuple(c) for c in raw["comparisons"]),
            notices=tuple(raw["notices"]),
            profile=raw.get("profile", ""),
            seconds=float(raw.get("seconds", 0.0)),
            data=dict(raw.get("data", {})),
        )


@dataclasses.dataclass(frozen=True)
class ReproduceResult:
    """What :func:`gnc.study.runner.reproduce` wrote.

    Attributes:
        sections: Results in report order (every stored section of this profile).
        ran: Sections computed in this call.
        reused: Sections read back from a previous run.
        report: Path of ``report.html``.
        results: Path of ``results.json``.
        seconds: Wall time of this call.
    """

    sections: tuple[SectionResult, ...]
    ran: tuple[str, ...]
    reused: tuple[str, ...]
    report: Path
    results: Path
    seconds: float

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of failed sections."""
        return tuple(s.name for s in self.sections if s.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """Sections as their ``to_dict()``, paths as strings."""
        return {
            "sections": [s.to_dict() for s in self.sections],
            "ran": list(self.ran),
            "reused": list(self.reused),
            "report": str(self.report),
            "results": str(self.results),
            "seconds": self.seconds,
        }
