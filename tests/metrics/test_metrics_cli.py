"""`gnc measure` end to end on small .npz files in tmp_path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gnc.cli
from gnc.cli import main
from helpers.metrics_reference import reference_metrics, reference_ncc_predictions


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # On the shared, oversubscribed CI box multi-threaded MKL eigh can take seconds instead of
    # milliseconds (spin-waiting threads); these small problems need one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


K, D = 5, 4


@pytest.fixture(autouse=True)
def _only_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Build the parser with this subcommand alone (others may not exist yet).
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("measure",))


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((K, D))
    y = np.concatenate([np.arange(K), rng.integers(0, K, 45)])
    H = centers[y] + 0.5 * rng.standard_normal((50, D))
    yt = rng.integers(0, K, 20)
    Ht = centers[yt] + 0.5 * rng.standard_normal((20, D))
    W = centers + 0.1 * rng.standard_normal((K, D))
    return {
        "features": H.astype(np.float32),
        "labels": y,
        "weights": W,
        "test_features": Ht,
        "test_labels": yt,
    }


def save(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "feats.npz"
    np.savez(path, **data)
    return path


def run_json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["measure", "--features", str(path), "--json", "--batch-size", "7", *extra]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_json_output_matches_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = arrays()
    out = run_json(save(tmp_path, data), capsys)
    for key in ("num_classes", "dim", "num_samples", "gnc1", "gnc2", "gnc3", "nc1_cdnv"):
        assert key in out
    assert (out["num_classes"], out["dim"], out["num_samples"]) == (K, D, 50)
    H = data["features"].astype(np.float64)
    ref = reference_metrics(H, data["labels"], K, data["weights"])
    for key in ("gnc1", "gnc3", "nc1_cdnv", "nc2_etf_error", "nc3_self_duality"):
        assert out[key] == pytest.approx(ref[key], rel=1e-10), key
    Hn = H / np.linalg.norm(H, axis=1, keepdims=True)
    means = np.stack([Hn[data["labels"] == k].mean(0) for k in range(K)])
    train_pred = reference_ncc_predictions(H, means)
    test_pred = reference_ncc_predictions(data["test_features"], means)
    assert out["ncc_train_accuracy"] == pytest.approx(np.mean(train_pred == data["labels"]))
    assert out["ncc_test_accuracy"] == pytest.approx(np.mean(test_pred == data["test_labels"]))
    assert out["seconds"] >= 0 and out["gnc2"] > 0


def test_table_output_and_inferred_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = arrays()
    del data["weights"], data["test_features"], data["test_labels"]
    path = save(tmp_path, data)
    assert main(["measure", "--features", str(path)]) == 0
    text = capsys.readouterr().out
    assert "gnc1" in text and "ncc_train_accuracy" in text
    assert any(line.split() == ["gnc2", "-"] for line in text.splitlines())
    out = run_json(path, capsys, "--no-class-means-rho", "--output", str(tmp_path / "r.json"))
    assert out["num_classes"] == K and out["gnc2"] is None and "ncc_test_accuracy" in out
    assert out["gnc2_class_means"] is None
    assert json.loads((tmp_path / "r.json").read_text()) == out


def corrupt(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = arrays()
    if kind == "nan":
        data["features"][3, 1] = np.nan
    elif kind == "inf":
        data["features"][3, 1] = np.inf
    elif kind == "label_range":
        data["labels"][4] = K
    elif kind == "label_float":
        data["labels"] = data["labels"].astype(np.float64)
    elif kind == "empty_class":
        data["labels"][data["labels"] == 2] = 1
    elif kind == "shape":
        data["weights"] = data["weights"][:, :2]
    elif kind == "labels_len":
        data["labels"] = data["labels"][:-1]
    elif kind == "missing":
        del data["labels"]
    elif kind == "zero_row":
        data["features"][0] = 0.0
    elif kind == "half_test":
        del data["test_labels"]
    return data


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", "row 3 has NaN or Inf"),
        ("inf", "row 3 has NaN or Inf"),
        ("label_range", r"`labels` in \[0, 5\)"),
        ("label_float", "integer"),
        ("empty_class", "class 2 has none"),
        ("shape", "weights"),
        ("labels_len", r"`labels` of shape \(50,\)"),
        ("missing", "[Ee]xpected arrays `features`, `labels`"),
        ("zero_row", "row 0 is all zeros"),
        ("half_test", "test_features"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    path = save(tmp_path, corrupt(kind))
    assert main(["measure", "--features", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gnc measure: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", "--features", str(tmp_path / "nope.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
