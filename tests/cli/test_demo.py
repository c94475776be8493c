"""``gnc demo`` end to end: known codes against their closed forms and bounds, random rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gnc.cli import main
from gnc.geometry import KNOWN_CONFIGURATIONS


def test_demo_writes_certified_rows_and_a_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "results.json").read_text())
    assert printed["rows"] == saved["rows"]
    assert len(saved["rows"]) == 3 + len(KNOWN_CONFIGURATIONS)  # 3 closed forms, every registered
    for row in saved["rows"]:
        assert row["certified"] and row["gap"] <= 1e-9
        assert row["rho"] == pytest.approx(row["closed_form"], abs=1e-9), row["name"]
        assert row["rho"] <= row["rho_star_upper"] + 1e-12
        # The paper's metric 1 - max cosine is a lower bound on the exact rho of random rows.
        assert row["random_one_minus_max_cosine"] <= row["random_rho"] + 1e-12
    assert (out / "plots" / "known_codes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
