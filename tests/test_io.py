"""Matrix files, JSON-safe values and atomic writes (gnc.io)."""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gnc.io import (
    OutputInUseError,
    atomic_save_npz,
    atomic_write,
    atomic_write_text,
    dump_json,
    lock_output,
    run_metadata,
    save_array,
    to_jsonable,
)
from gnc.readers import (
    ArrayKeyError,
    FileFormatError,
    load_matrix,
    read_array,
    read_checkpoint,
    read_npy,
    read_safetensors,
    read_toml,
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
    with pytest.raises(FileFormatError, match="2-D"):
        load_matrix(tmp_path / "v.npy")
    np.save(tmp_path / "b.npy", np.ones((2, 2), dtype=bool))
    with pytest.raises(FileFormatError, match="unsupported dtype bool"):
        load_matrix(tmp_path / "b.npy")
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    with pytest.raises(FileFormatError, match="floating-point"):
        load_matrix(tmp_path / "i.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(FileFormatError, match=r"nan\.npy: row 1 has NaN"):
        load_matrix(tmp_path / "nan.npy")


def test_missing_key_is_a_value_error_and_a_key_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", a=np.ones((2, 2)))
    with pytest.raises(ArrayKeyError) as info:
        read_array(tmp_path / "a.npz", key="zz")
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith("Expected a key `zz`")  # no KeyError quotes


def test_npy_header_is_checked_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    with path.open("wb") as fh:  # a valid header declaring 10^12 float64, then 16 bytes
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
        )
        fh.write(b"\0" * 16)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"8,000,000,000,000 bytes.*16 bytes of data"):
            read_npy(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_text_file_named_npy_says_so(tmp_path: Path) -> None:
    (tmp_path / "w.npy").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(FileFormatError, match=r"w\.npy: not an \.npy file.*looks like text"):
        load_matrix(tmp_path / "w.npy")


def test_safetensors_offsets_outside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3, 2)}, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["w"]["data_offsets"] = [0, 24 + 10**9]
    header["w"]["shape"] = [3 + 125_000_000, 2]
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    with pytest.raises(FileFormatError, match="outside the 24 data bytes"):
        read_safetensors(path)
    text = b'{"a": 1, "a": 2}'
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(FileFormatError, match="duplicate key 'a'"):
        read_safetensors(path)


def test_checkpoints_and_configs_never_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    torch.save({"epoch": 1, "x": Evil()}, tmp_path / "c.pt")
    with pytest.raises(FileFormatError, match="never runs code"):
        read_checkpoint(tmp_path / "c.pt")
    state = {"rng": np.random.get_state(), "t": torch.ones(2)}  # noqa: NPY002
    torch.save(state, tmp_path / "ok.pt")
    assert read_checkpoint(tmp_path / "ok.pt")["rng"][0] == "MT19937"
    (tmp_path / "c.toml").write_bytes(b"a = 1\na = 2\n")
    with pytest.raises(FileFormatError, match=r"c\.toml: invalid TOML: Cannot overwrite"):
        read_toml(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_bytes(b"a = '\xff'\n")
    with pytest.raises(FileFormatError, match="not UTF-8 text"):
        read_toml(tmp_path / "d.toml")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        atomic_save_npz(tmp_path / "b.npz", x=np.ones(2))
        save_array(tmp_path / "c.npy", np.ones(2))
        (tmp_path / "plain.txt").write_text("x")  # what open(..., "w") gives
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("a.json", "b.npz", "c.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_rewriting_keeps_the_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    atomic_write_text(target, "1")
    target.chmod(0o600)
    atomic_write_text(target, "2")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "2"


def test_output_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = (
        "import sys, time; from gnc.io import lock_output\n"
        "with lock_output(sys.argv[1]):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        busy = rf"writing to .*run \(pid {child.pid}\)"
        with pytest.raises(OutputInUseError, match=busy), lock_output(out):
            pass
    finally:
        child.kill()
        child.communicate()
    with lock_output(out):  # released by the kill: no stale lock
        pass


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


def test_records_serialize_to_json_with_tensors_as_lists_or_left_out() -> None:
    import gnc
    from gnc.geometry import bound_report, known_configuration, pairwise_statistics
    from gnc.io import Record
    from gnc.metrics import GNCAccumulator, NCCAccumulator

    W = gnc.random_points(7, 3, generator=torch.Generator().manual_seed(0))
    ovr = gnc.one_vs_rest_distances(W)
    acc = GNCAccumulator(7, 3)
    acc.update(W.repeat(2, 1), torch.arange(7).repeat(2))
    ncc = NCCAccumulator(acc.statistics().means)
    ncc.update(W, torch.arange(7))
    records = [
        ovr,
        gnc.min_one_vs_rest_distance(W),
        bound_report(7, 3),
        known_configuration("icosahedron"),
        pairwise_statistics(W),
        acc.compute(W, class_means_rho=False),
        ncc.compute(),
        gnc.solve_ufm(3, 2, 1, max_steps=3, record_every=1),
    ]
    for record in records:
        assert isinstance(record, Record)
        out = record.to_dict()
        json.dumps(out, allow_nan=False)  # JSON values only
        assert "nearest_points" not in out and "build" not in out and "weights" not in out
    d = ovr.to_dict()
    assert d["distances"] == ovr.distances.tolist() and d["gap"] == ovr.gap
    assert records[-1].to_dict()["trajectory"][0]["step"] == 0
    assert to_jsonable({"r": records[2]}) == {"r": records[2].to_dict()}
