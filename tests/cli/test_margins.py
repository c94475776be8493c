from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gnc.cli import main
from gnc.geometry import configurations as cfg


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["npy", "npz", "pt", "safetensors"])
def test_margins_json_all_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    W = cfg.regular_polygon(9) * 3.0  # rows are normalized by the command
    path = tmp_path / f"w.{fmt}"
    if fmt == "npy":
        np.save(path, W.numpy())
    elif fmt == "npz":
        np.savez(path, weights=W.numpy(), other=np.zeros(3))
    elif fmt == "pt":
        torch.save({"weights": W}, path)
    else:
        save_file({"weights": W.contiguous()}, str(path))
    per = tmp_path / "per.npy"
    code, out, _ = _run(capsys, "margins", str(path), "--json", "--per-class", str(per))
    assert code == 0
    res = json.loads(out)
    expected = 1 - math.cos(2 * math.pi / 9)
    assert abs(res["min_distance"] - expected) < 1e-12
    assert abs(res["mean_distance"] - expected) < 1e-12
    assert res["num_classes"] == 9 and res["feature_dim"] == 2 and res["certified"] is True
    assert res["gap"] <= 1e-9 and res["rho_star_upper"] >= expected - 1e-12
    assert abs(res["max_cosine"] - math.cos(2 * math.pi / 9)) < 1e-12
    for key in ("argmin", "seconds"):
        assert key in res
    assert np.allclose(np.load(per), expected)


def test_margins_fast_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.npy"
    np.save(path, cfg.icosahedron().numpy())
    code, out, _ = _run(capsys, "margins", str(path), "--fast", "--json")
    assert code == 0 and abs(json.loads(out)["min_distance"] - (1 - 1 / math.sqrt(5))) < 1e-12
    code, out, _ = _run(capsys, "margins", str(path))
    assert code == 0 and "min_distance" in out


def test_margins_duplicates_are_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    W = cfg.regular_polygon(5).numpy()
    W = np.concatenate([W, W[:1]])
    np.save(tmp_path / "d.npy", W)
    code, out, _ = _run(capsys, "margins", str(tmp_path / "d.npy"), "--json")
    assert code == 0 and json.loads(out)["min_distance"] == 0.0


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([[1.0, 0.0], [np.nan, 1.0]]), "NaN"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
        (np.array([[1.0, 0.0]]), "at least 2 rows"),
        (np.array([1.0, 2.0, 3.0]), "2-D"),
    ],
)
def test_margins_bad_input_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], array: np.ndarray, match: str
) -> None:
    np.save(tmp_path / "bad.npy", array)
    code, out, err = _run(capsys, "margins", str(tmp_path / "bad.npy"), "--json")
    assert code == 2 and out == ""
    assert match in err and len(err.strip().splitlines()) == 1


def test_margins_missing_file_and_bad_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "margins", str(tmp_path / "nope.npy"))
    assert code == 2 and "No such file" in err
    (tmp_path / "w.txt").write_text("1 2")
    code, _, err = _run(capsys, "margins", str(tmp_path / "w.txt"))
    assert code == 2 and ".npy" in err


@pytest.mark.parametrize("budget", ["0", "-1", "nan"])
def test_margins_bad_memory_budget_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    np.save(tmp_path / "w.npy", cfg.regular_polygon(5).numpy())
    code, _, err = _run(capsys, "margins", str(tmp_path / "w.npy"), "--max-memory-mib", budget)
    assert code == 2
    assert "--max-memory-mib" in err and len(err.strip().splitlines()) == 1
