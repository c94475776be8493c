"""Figures to PNG: the one place a matplotlib figure becomes bytes or a file.

Every plot function of :mod:`gnc.report` returns a figure; whoever keeps it calls
:func:`figure_png` (bytes, e.g. to embed in HTML) or :func:`save_figure` (an atomic file write).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from gnc.io import atomic_write_bytes

__all__ = ["figure_png", "save_figure"]


def figure_png(fig: Any, *, dpi: int = 100) -> bytes:
    r"""The figure as PNG bytes.

    Example:
        >>> from matplotlib.figure import Figure
        >>> fig = Figure()
        >>> _ = fig.add_subplot().plot([0, 1])
        >>> figure_png(fig)[:4]
        b'\x89PNG'
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Any, path: str | Path, *, dpi: int = 100) -> Path:
    r"""Write ``fig`` as a PNG file at ``path`` (atomically; parent folders are created).

    Example:
        >>> import tempfile
        >>> from matplotlib.figure import Figure
        >>> fig = Figure()
        >>> _ = fig.add_subplot().plot([0, 1])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_figure(fig, Path(tmp) / "a" / "f.png").read_bytes()[:4]
        b'\x89PNG'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, figure_png(fig, dpi=dpi))
    return path
