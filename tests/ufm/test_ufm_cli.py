"""``gnc ufm`` end to end on tiny configurations into ``tmp_path``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import gnc.cli
from gnc.cli import main


@pytest.fixture(autouse=True)
def _only_ufm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # register only this subcommand, so the test does not depend on the others being present
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("ufm",))
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_single_tau_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["ufm", "--classes", "4", "--dim", "3", "--tau", "0.2", "--steps", "300", "--json",
         "--threads", "1", "--no-progress"]
    )  # fmt: skip
    assert status == 0
    row = json.loads(capsys.readouterr().out)
    for key in ("tau", "gnc1", "gnc2", "gnc3", "loss", "code_value", "steps", "seconds"):
        assert key in row
    assert row["tau"] == 0.2
    assert row["code_value"] == pytest.approx(4 / 3)  # simplex closed form
    assert row["gnc2"] == pytest.approx(4 / 3, abs=1e-6)
    assert row["stop_reason"] == "converged"


def test_sweep_writes_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    status = main(
        ["ufm", "--classes", "5", "--dim", "2", "--samples", "2", "--tau", "0.1", "--tau", "1",
         "--steps", "200", "--record-every", "20", "--seed", "3", "--restarts", "2",
         "--out", str(out), "--json", "--threads", "1"]
    )  # fmt: skip
    assert status == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and [r["tau"] for r in rows] == [1.0, 0.1]
    pentagon = 1 - math.cos(2 * math.pi / 5)
    assert rows[-1]["code_value"] == pytest.approx(pentagon)
    assert rows[-1]["gnc2"] == pytest.approx(pentagon, abs=1e-3)

    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == 5 and config["taus"] == [0.1, 1.0] and config["seed"] == 3
    assert config["restarts"] == 2
    results = json.loads((out / "results.json").read_text())
    assert results["points"] == rows
    assert results["metadata"]["seed"] == 3
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {x["tau"] for x in lines} == {1.0, 0.1}
    assert all({"step", "loss", "gnc1", "gnc2", "gnc3", "grad_norm"} <= x.keys() for x in lines)
    assert lines[0]["step"] == 0
    with np.load(out / "solutions.npz") as data:
        assert data["weights_1"].shape == (5, 2) and data["features_1"].shape == (10, 2)
        np.testing.assert_allclose(data["taus"], [1.0, 0.1])
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "rho_vs_tau.png" in pngs and len(pngs) == 3
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ufm", "--classes", "3", "--dim", "2", "--steps", "50", "--no-code", "--threads", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "rho(W)" in text and "n/a" in text


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--classes", "1", "--dim", "2"], "--classes"),
        (["--classes", "3", "--dim", "0"], "--dim"),
        (["--classes", "3", "--dim", "2", "--tau", "0"], "--tau"),
        (["--classes", "3", "--dim", "2", "--tau", "-0.5"], "--tau"),
        (["--classes", "3", "--dim", "2", "--samples", "0"], "--samples"),
        (["--classes", "3", "--dim", "2", "--steps", "0"], "--steps"),
        (["--classes", "3", "--dim", "2", "--code-value", "-1"], "--code-value"),
        (["--classes", "3", "--dim", "2", "--restarts", "0"], "--restarts"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ufm", *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnc ufm: error:") and match in err
    assert len(err.strip().splitlines()) == 1
