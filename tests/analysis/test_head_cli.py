"""End-to-end tests of ``gnc head`` on tiny matrices written into ``tmp_path``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import gnc.cli


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("head",))
    return gnc.cli.main


def _polygon_with_duplicate(path: Path, K: int = 8) -> None:
    angles = np.arange(K) * 2 * np.pi / K
    W = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.save(path, np.vstack([W, 5 * W[[3]]]))


def test_json_and_run_folder(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "gon.npy"
    _polygon_with_duplicate(src)
    out = tmp_path / "run"
    argv = ["head", "--source", str(src), "--json", "--out", str(out), "--no-code"]
    status = main([*argv, "--random", "reduced", "--code-max-classes", "5"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    value = 1 - math.cos(2 * math.pi / 8)
    assert summary["num_classes"] == 9 and summary["feature_dim"] == 2
    assert summary["gnc2"] == 0.0 and summary["rho_all"]["certified"]
    assert summary["rho_all"]["argmin"] in (3, 8)
    assert summary["gnc2_distinct"] == pytest.approx(value, abs=1e-12)
    assert summary["rho_distinct"]["certified"]
    assert summary["duplicates"]["rows_merged"] == 1
    assert summary["duplicates"]["examples"] == [["#3", "#8"]]
    assert summary["distances_sample"]["is_all"]
    assert summary["distances_sample"]["quantiles"]["q50"] == pytest.approx(value, abs=1e-12)
    assert summary["random_rho"] is None
    assert summary["reduced"] is not None and summary["reduced"]["random_rho"] is not None
    assert summary["max_cosine"] == pytest.approx(1.0)
    results = json.loads((out / "results.json").read_text())
    assert results["gnc2_distinct"] == summary["gnc2_distinct"]
    assert "metadata" in results and json.loads((out / "config.json").read_text())["seed"] == 0
    with np.load(out / "distances.npz") as npz:
        assert npz["sample_classes"].tolist() == list(range(8))
        np.testing.assert_allclose(npz["sample_distances"], value, atol=1e-12)
        assert npz["representative"].tolist() == [*range(8), 3]
    for name in ("distances.png", "distances_log.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert not list(out.rglob("*.tmp"))


def test_text_output(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "gon.npy"
    _polygon_with_duplicate(src)
    assert main(["head", "--source", str(src), "--no-code", "--random", "off"]) == 0
    text = capsys.readouterr().out
    assert "GNC2 rho (distinct)" in text and "K=9, d=2" in text


def test_error_exits(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["head", "--source", str(tmp_path / "missing.npy")]) == 2
    assert "gnc head: error:" in capsys.readouterr().err
    assert main(["head", "--source", "gpt5"]) == 2
    assert "smollm2" in capsys.readouterr().err
    np.save(tmp_path / "w.npy", np.eye(3))
    assert main(["head", "--source", str(tmp_path / "w.npy"), "--sample-classes", "-1"]) == 2
    assert "--sample-classes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["head"])
    assert exc.value.code == 2
