"""Section 9: the shipped catalogue, softmax vs Tammes across it."""

from __future__ import annotations

from pathlib import Path

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
    assert all(r["rho"] <= r["rho_star_upper"] + 1e-9 for r in rows)
    assert "catalogue" in SECTIONS
