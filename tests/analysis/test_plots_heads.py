"""The pure histogram plot of one-vs-rest distances."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gnc.report.plots_heads import plot_distance_histogram


def test_histogram_lines_and_counts() -> None:
    d = np.array([0.1, 0.2, 0.2, 0.4])
    fig, ax = plot_distance_histogram(
        d, lower_bounds=[0.05, 0.1], lines={"rho": 0.1, "code": None, "bound": 0.5}, bins=4
    )
    assert isinstance(fig, Figure)
    heights = [p.get_height() for p in ax.patches[:4]]
    assert abs(sum(heights) - 1.0) < 1e-12 and max(heights) == 0.5
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("rho = 0.1") for t in labels)
    assert not any(t.startswith("code") for t in labels)
    assert len(ax.lines) == 2


def test_log_axis_drops_zeros_and_reuses_axes() -> None:
    fig = Figure()
    ax0 = fig.add_subplot()
    fig2, ax = plot_distance_histogram([0.0, 1e-6, 0.3], ax=ax0, lines={"rho": 0.0}, log_x=True)
    assert fig2 is fig and ax is ax0 and ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("1 zero, not shown" in t for t in labels)
    assert len(ax.lines) == 0


def test_empty_sample() -> None:
    _, ax = plot_distance_histogram([], lines={"bound": 0.7}, title="t")
    assert ax.get_title() == "t" and len(ax.lines) == 1
