from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gnc.cli import main


def test_cli_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "code.npy"
    rc = main(
        [
            "code",
            "--classes",
            "12",
            "--dim",
            "3",
            "--restarts",
            "1",
            "--steps",
            "300",
            "300",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    for key in (
        "num_classes",
        "dim",
        "kind",
        "min_distance",
        "min_pairwise_distance",
        "max_cosine",
        "upper_bound",
        "certified",
        "method",
        "seconds",
    ):
        assert key in rec
    assert rec["num_classes"] == 12 and rec["dim"] == 3 and rec["kind"] == "softmax"
    assert abs(rec["min_distance"] - (1 - 1 / math.sqrt(5))) < 1e-6
    assert rec["certified"] is True
    W = np.load(out)
    assert W.shape == (12, 3)
    assert np.allclose(np.linalg.norm(W, axis=1), 1.0)
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_closed_form_tammes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["code", "--classes", "5", "--dim", "4", "--kind", "tammes", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["method"] == "closed-form:simplex-etf"
    assert abs(rec["max_cosine"] + 0.25) < 1e-12


@pytest.mark.parametrize(
    "argv",
    [
        ["--classes", "1", "--dim", "3"],
        ["--classes", "2.5", "--dim", "3"],
        ["--classes", "5", "--dim", "0"],
        ["--classes", "5", "--dim", "x"],
        ["--classes", "5", "--dim", "3", "--time-limit", "0"],
        ["--classes", "5", "--dim", "3", "--time-limit", "-2"],
        ["--classes", "5", "--dim", "1"],
    ],
)
def test_cli_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main(["code", *argv])
    except SystemExit as exc:  # argparse type errors
        rc = int(exc.code or 0)
    assert rc == 2
    assert "error" in capsys.readouterr().err


def test_cli_lattice_starts_on_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    # D5's 40 roots are an E8 slice (max cosine 1/2); random starts alone stay below it here.
    base = ["code", "--classes", "40", "--dim", "5", "--restarts", "1", "--steps", "20", "20"]
    base += ["--no-catalogue", "--json", "--polish-seconds", "2"]
    assert main(base) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["method"].startswith("lattice-slice") and rec["min_distance"] >= 0.5 - 1e-9
    assert main([*base, "--no-lattice-starts"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["method"] == "optimized" and rec["certified"] is True
