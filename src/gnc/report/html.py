"""A self-contained HTML writer: figures embedded as base64 PNG, tables, notices.

Everything is built from small pure functions returning HTML strings (escaped); the page
needs no server, no network and no JavaScript except a tiny optional self-check that writes
how many images loaded into ``document.body.dataset`` (used by the headless-browser test).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "VERDICT_WORDS",
    "FigureView",
    "Level",
    "SectionView",
    "TableView",
    "comparison_counts",
    "format_value",
    "render_comparison",
    "render_figure",
    "render_notice",
    "render_page",
    "render_report",
    "render_section",
    "render_table",
    "split_verdict",
]

Level = Literal["info", "warning", "error"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.notice { padding: 6px 10px; margin: 0.6em 0; border-left: 4px solid; }
.notice.info { background: #eef5ff; border-color: #4a80c8; }
.notice.warning { background: #fff7e0; border-color: #d9a400; }
.notice.error { background: #ffecec; border-color: #c83a3a; white-space: pre-wrap; }
.status { font-size: 0.75em; padding: 2px 6px; border-radius: 3px; vertical-align: middle; }
.status.ok { background: #d8f0d8; } .status.skipped { background: #fff0c0; }
.status.failed { background: #ffd0d0; } .status.differs { background: #ffe0b0; }
.meta { font-size: 0.85em; color: #555; }
"""

_SELF_CHECK = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  var empty = Array.prototype.slice.call(document.querySelectorAll('section.report-section'))
    .filter(function (s) { return s.querySelectorAll('table, img, .notice').length === 0; });
  document.body.dataset.imgs = String(imgs.length);
  document.body.dataset.imgsLoaded = String(ok.length);
  document.body.dataset.emptySections = String(empty.length);
  document.body.dataset.checked = 'yes';
});
"""


def format_value(value: object, digits: int = 4) -> str:
    """Text of one table cell: floats to ``digits`` significant digits, ``None`` as a dash.

    Example:
        >>> format_value(0.61423), format_value(None), format_value(3), format_value(float("nan"))
        ('0.6142', '-', '3', 'nan')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, caption: str = ""
) -> str:
    """An HTML table; every cell is formatted by :func:`format_value` and escaped.

    Example:
        >>> render_table(["a", "b"], [[1, 0.5]], caption="t").count("<td>")
        2
    """
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(c))}</td>" for c in row) + "</tr>\n"
        for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>\n"


#: Verdicts a comparison note may start with (``"<verdict>: <reason>"``).
VERDICT_WORDS = ("agrees", "differs", "not comparable")


def split_verdict(note: object) -> tuple[str | None, str]:
    """``(verdict, reason)`` of a comparison note (``None`` when it carries no verdict).

    Example:
        >>> split_verdict("not comparable: other network")
        ('not comparable', 'other network')
        >>> split_verdict("fine")
        (None, 'fine')
    """
    text = "" if note is None else str(note)
    for kind in VERDICT_WORDS:
        if text.startswith(kind + ":"):
            return kind, text[len(kind) + 1 :].strip()
    return None, text


def render_comparison(rows: Iterable[Sequence[object]], *, caption: str = "") -> str:
    """Table of ``(quantity, paper, ours, note)`` rows: the paper's numbers beside ours.

    A note ``"<verdict>: <reason>"`` (verdict in :data:`VERDICT_WORDS`) is shown in two columns.

    Example:
        >>> "<td>differs</td><td>15 epochs</td>" in render_comparison(
        ...     [("GNC2", 0.59, 0.3, "differs: 15 epochs")])
        True
    """
    out = []
    for row in rows:
        cells = list(row) + [None] * (4 - len(row))
        kind, reason = split_verdict(cells[3])
        out.append([*cells[:3], kind or "-", reason])
    return render_table(
        ["quantity", "paper", "ours", "verdict", "why"], out, caption=caption or "Paper vs ours"
    )


def comparison_counts(rows: Sequence[Sequence[object]]) -> str:
    """``"<n> rows: <count> <verdict>, ..."`` of comparison rows.

    Example:
        >>> comparison_counts([("x", 1, 0.5, "differs: half"), ("y", 1, 1, "agrees: same")])
        '2 rows: 1 agrees, 1 differs.'
    """
    kinds = [split_verdict(c[3] if len(c) > 3 else None)[0] for c in rows]
    parts = [f"{kinds.count(k)} {k}" for k in VERDICT_WORDS if kinds.count(k)]
    if kinds.count(None):
        parts.append(f"{kinds.count(None)} without a verdict")
    return f"{len(rows)} rows: " + ", ".join(parts) + "."


def render_figure(png: bytes, caption: str = "", *, alt: str = "") -> str:
    r"""An ``<img>`` with the PNG embedded as a base64 data URI (no external file needed).

    Raises:
        ValueError: If ``png`` does not start with the PNG signature.

    Example:
        >>> render_figure(b"\x89PNG\r\n\x1a\nxx", "cap").startswith("<figure><img")
        True
    """
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"Expected PNG bytes for figure {caption!r}, but got {png[:8]!r}.")
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    text = html.escape(alt or caption or "figure", quote=True)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{text}">{cap}</figure>\n'


def render_notice(text: str, level: Level = "info") -> str:
    """A highlighted notice (skipped section, missing package, error message)."""
    return f'<div class="notice {level}">{html.escape(text)}</div>\n'


def render_section(
    anchor: str, title: str, status: str, parts: Sequence[str], *, summary: str = ""
) -> str:
    """One ``<section>`` with its heading, status badge, summary paragraph and body parts."""
    badge = f'<span class="status {html.escape(status)}">{html.escape(status)}</span>'
    para = f"<p>{html.escape(summary)}</p>\n" if summary else ""
    return (
        f'<section class="report-section" id="{html.escape(anchor, quote=True)}">\n'
        f"<h2>{html.escape(title)} {badge}</h2>\n{para}{''.join(parts)}</section>\n"
    )


def render_page(
    title: str,
    sections: Sequence[str],
    *,
    intro: str = "",
    meta: Sequence[tuple[str, object]] = (),
    toc: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole self-contained page.

    Args:
        title: Page title and top heading.
        sections: Rendered sections (:func:`render_section`).
        intro: Paragraph under the title.
        meta: ``(key, value)`` lines shown under the intro (versions, profile, time).
        toc: ``(anchor, title)`` entries of a table of contents.

    Example:
        >>> page = render_page("R", [render_section("a", "A", "ok", ["<p>x</p>"])])
        >>> page.startswith("<!DOCTYPE html>") and 'id="a"' in page
        True
    """
    meta_html = "".join(
        f"<div>{html.escape(str(k))}: {html.escape(format_value(v))}</div>" for k, v in meta
    )
    toc_html = "".join(
        f'<li><a href="#{html.escape(a, quote=True)}">{html.escape(t)}</a></li>' for a, t in toc
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
        f"<script>{_SELF_CHECK}</script>\n</head><body>\n<h1>{html.escape(title)}</h1>\n"
        + (f"<p>{html.escape(intro)}</p>\n" if intro else "")
        + (f'<div class="meta">{meta_html}</div>\n' if meta_html else "")
        + (f"<ol>{toc_html}</ol>\n" if toc_html else "")
        + "".join(sections)
        + "</body></html>\n"
    )


class TableView(Protocol):
    """What :func:`render_report` reads of a table."""

    @property
    def caption(self) -> str:
        """Caption (above a table, under a figure)."""

    @property
    def headers(self) -> Sequence[str]:
        """Column headers."""

    @property
    def rows(self) -> Sequence[Sequence[object]]:
        """Rows of cells."""


class FigureView(Protocol):
    """What :func:`render_report` reads of a figure: ``file`` relative to its section folder."""

    @property
    def caption(self) -> str:
        """Caption (above a table, under a figure)."""

    @property
    def file(self) -> str:
        """PNG file relative to the section folder."""


class SectionView(Protocol):
    """What :func:`render_report` reads of a section's result."""

    @property
    def name(self) -> str:
        """Anchor and folder name."""

    @property
    def title(self) -> str:
        """Heading."""

    @property
    def status(self) -> str:
        """``ok``, ``differs``, ``skipped`` or ``failed``."""

    @property
    def summary(self) -> str:
        """Paragraph under the heading."""

    @property
    def seconds(self) -> float:
        """Wall time."""

    @property
    def notices(self) -> Sequence[str]:
        """Highlighted messages."""

    @property
    def comparisons(self) -> Sequence[Sequence[object]]:
        """``(quantity, paper, ours, note)`` rows."""

    @property
    def tables(self) -> Sequence[TableView]:
        """Tables."""

    @property
    def figures(self) -> Sequence[FigureView]:
        """Figures."""


def render_report(
    sections: Sequence[SectionView],
    sections_dir: Path,
    *,
    title: str,
    intro: str = "",
    meta: Sequence[tuple[str, object]] = (),
) -> str:
    """The self-contained page of a study's sections, led by a headline table.

    The headline table holds every section's comparisons; each section then shows its
    notices, comparisons, tables and figures (read from ``sections_dir``).

    Args:
        sections: Section results in report order.
        sections_dir: Folder holding ``<section name>/<figure file>``.
        title: Page title and top heading.
        intro: Paragraph under the title.
        meta: ``(key, value)`` lines under the intro.
    """
    parts: list[str] = []
    for s in sections:
        body: list[str] = []
        level: Level = "error" if s.status == "failed" else "warning"
        ran = s.status in ("ok", "differs")
        body += [render_notice(n, "info" if ran else level) for n in s.notices]
        if s.comparisons:
            body.append(render_comparison(s.comparisons))
        body += [render_table(t.headers, t.rows, caption=t.caption) for t in s.tables]
        for f in s.figures:
            body.append(render_figure((sections_dir / s.name / f.file).read_bytes(), f.caption))
        if not body:
            body.append(render_notice("This section produced no output.", "warning"))
        summary = s.summary + (f" ({s.seconds:.0f} s)" if ran else "")
        parts.append(render_section(s.name, s.title, s.status, body, summary=summary))
    headline = [c for s in sections for c in s.comparisons]
    if headline:
        differs = any(split_verdict(c[3] if len(c) > 3 else None)[0] == "differs" for c in headline)
        parts.insert(
            0,
            render_section(
                "headline",
                "Headline numbers: paper vs ours",
                "differs" if differs else "ok",
                [render_comparison(headline)],
                summary=comparison_counts(headline),
            ),
        )
    return render_page(
        title, parts, intro=intro, meta=meta, toc=[(s.name, s.title) for s in sections]
    )
