"""The report's figures: plot functions on synthetic numbers, and the one PNG writer."""

from __future__ import annotations

import math
from pathlib import Path

from gnc.report.figures import save_figure
from gnc.report.plots_codes import plot_assignments, plot_catalogue
from gnc.report.plots_heads import plot_pretrained_heads
from gnc.report.plots_ufm import plot_rho_vs_tau_panels


def test_plot_catalogue_on_synthetic_rows() -> None:
    rows = [
        {"K": 7, "d": 3, "diff": 0.0, "class": "equal"},
        {"K": 9, "d": 4, "diff": 1e-4, "class": "tammes-code"},
        {"K": 24, "d": 7, "diff": 2e-2, "class": "candidate"},
    ]
    _fig, ax = plot_catalogue(rows)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["equal (1)", "tammes-code (1)", "candidate (1)"]
    fig2, _ = plot_catalogue([])
    assert fig2 is not None


def test_save_figure_writes_a_png_atomically(tmp_path: Path) -> None:
    fig, _ = plot_catalogue([])
    path = save_figure(fig, tmp_path / "deep" / "catalogue.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["catalogue.png"]  # no temporary left


def test_grids_have_one_panel_per_entry() -> None:
    panels = [([0.0, 1.6, 3.1, 4.7], f"seed {i}") for i in range(6)]
    _fig, axes = plot_assignments(panels, ["a", "b", "c", "d"])
    assert [ax.get_title() for ax in axes] == [f"seed {i}" for i in range(6)]
    assert axes[4].get_subplotspec().get_geometry()[:2] == (2, 4)  # 4 columns, 2 rows
    rows = [{"tau": 1.0, "gnc2": 0.5}, {"tau": 0.1, "gnc2": 0.6}]
    _, axes = plot_rho_vs_tau_panels([(rows, 0.62, "K=8"), (rows, None, "K=30")])
    assert [len(ax.lines) for ax in axes] == [2, 1]  # the code value only where known


def test_pretrained_bars_show_the_random_bracket() -> None:
    row = {
        "head": "h",
        "K": 9000,
        "d": 3,
        "rho": 0.01,
        "sample_median_D": 0.5,
        "code_rho": 0.6,
        "code_shape": (9, 3),
        "random_rho": 0.3,
        "random_lower": 0.2,
        "rho_star_upper": 0.7,
    }
    _, ax = plot_pretrained_heads([row, {**row, "code_rho": None, "random_lower": None}])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "softmax code (reduced K', d', same K/d)" in labels
    heights = sorted(p.get_height() for p in ax.patches if not math.isnan(p.get_height()))
    assert heights.count(0.7) == 2 and heights.count(0.3) == 2
    (bars,) = [c for c in ax.containers if getattr(c, "errorbar", None) is not None]
    segments = bars.errorbar.lines[2][0].get_segments()
    assert math.isclose(segments[0][0][1], 0.2) and math.isclose(segments[1][0][1], 0.3)
