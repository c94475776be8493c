"""Matrix files, JSON-safe values and atomic writes (gnc.io)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gnc.io import (
    atomic_save_npz,
    atomic_write,
    atomic_write_text,
    dump_json,
    load_matrix,
    read_array,
    run_metadata,
    save_array,
    to_jsonable,
)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_text(target, "old")

    def broken(fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary left


def test_atomic_save_npz_round_trip_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.npz"
    x = np.random.default_rng(0).normal(size=(5, 3))
    atomic_save_npz(target, x=x, meta=np.array(json.dumps({"k": 1})))
    with np.load(target) as z:
        np.testing.assert_array_equal(z["x"], x)
        assert json.loads(str(z["meta"])) == {"k": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.npz"]


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt", ".safetensors"])
def test_every_matrix_format_round_trips(tmp_path: Path, suffix: str) -> None:
    W = torch.randn(7, 4, dtype=torch.float32)
    path = tmp_path / f"head{suffix}"
    if suffix == ".npy":
        save_array(path, W)
    elif suffix == ".npz":
        np.savez(path, bias=np.zeros(7), weights=W.numpy())
    elif suffix == ".pt":
        torch.save({"weight": W, "bias": torch.zeros(7)}, path)
    else:
        save_file({"lm_head": W}, str(path))
    loaded = load_matrix(path)
    assert loaded.dtype == torch.float32 and torch.equal(loaded, W)


def test_read_array_choice_rules(tmp_path: Path) -> None:
    path = tmp_path / "two.npz"
    np.savez(path, a=np.ones((2, 2)), b=np.ones((3, 3)))
    with pytest.raises(ValueError, match="pick one with `key=`"):
        read_array(path)
    value, name = read_array(path, key="b")
    assert name == "b" and value.shape == (3, 3)
    with pytest.raises(KeyError, match="`c`"):
        read_array(path, key="c")
    np.savez(tmp_path / "one2d.npz", v=np.ones(3), m=np.ones((4, 2)))
    assert read_array(tmp_path / "one2d.npz")[1] == "m"


def test_load_matrix_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_matrix(tmp_path / "missing.npy")
    (tmp_path / "w.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.npy, \.npz"):
        load_matrix(tmp_path / "w.csv")
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        load_matrix(tmp_path / "v.npy")
    np.save(tmp_path / "b.npy", np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="real numeric"):
        load_matrix(tmp_path / "b.npy")
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    assert load_matrix(tmp_path / "i.npy").dtype == torch.float64


def test_json_values_are_strict() -> None:
    value = {
        "t": torch.tensor([1.0, float("nan")]),
        "a": np.arange(2),
        "s": np.float32(0.5),
        "inf": math.inf,
        "p": Path("x/y"),
        3: (1, 2),
    }
    assert to_jsonable(value) == {
        "t": [1.0, None],
        "a": [0, 1],
        "s": 0.5,
        "inf": None,
        "p": "x/y",
        "3": [1, 2],
    }
    assert json.loads(dump_json(value))["inf"] is None


def test_run_metadata_records_versions_and_seconds() -> None:
    meta = run_metadata(seed=3, started=time.time() - 5.0)
    assert meta["seed"] == 3 and meta["torch_version"] == torch.__version__
    assert 5.0 <= meta["seconds"] < 60.0
