"""Section 9: the shipped catalogue, softmax vs Tammes across it."""

from __future__ import annotations

from pathlib import Path

from gnc.report.plots_codes import plot_catalogue
from gnc.study import PROFILES, SECTIONS
from gnc.study.catalogue import section_catalogue


def test_section_catalogue_renders(tmp_path: Path) -> None:
    messages: list[str] = []
    res = section_catalogue(PROFILES["tiny"], tmp_path, messages.append)
    assert res.status == "ok" and messages
    assert (tmp_path / res.figures[0].file).exists()
    rows = res.data["rows"]
    assert len(rows) == len(res.data["rows"]) > 0
    assert res.data["counts"]["equal"] == sum(r["class"] == "equal" for r in rows)
    assert sum(res.data["counts"].values()) == len(rows)  # no "below": the catalogue keeps the best
    assert all(r["rho"] <= r["upper_bound"] + 1e-9 for r in rows)
    assert "catalogue" in SECTIONS


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
