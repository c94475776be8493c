"""Malformed files, kind by kind, through the command line: one line naming the file, exit 2.

The table below is the issue's list (truncation, wrong magic, absurd shapes, unsupported dtypes,
integer matrices, NaN/Inf, zero rows, duplicate keys, offsets outside the file, empty archives,
malformed headers, pickles) for every reader gnc owns; each case names what the message must
say. A few cases also run as real subprocesses of the ``gnc`` console script.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.file_formats import TINY_TOML, Outcome, run_cli

W = np.random.default_rng(0).standard_normal((6, 3))


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code from a file ran",))


def _npy_header(shape: object, descr: str = "<f8") -> bytes:
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _safetensors(header: object, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + data


def _st_entry(dtype: str = "F64", shape: list[int] | None = None, end: int = 144) -> dict:
    return {"w": {"dtype": dtype, "shape": shape or [6, 3], "data_offsets": [0, end]}}


def _valid_npy() -> bytes:
    return _npy_header((6, 3)) + W.tobytes()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = __import__("io").BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names, on purpose
        for name, blob in members:
            zf.writestr(name, blob)
    return buf.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = __import__("io").BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _pt(obj: object, **kw: object) -> bytes:
    buf = __import__("io").BytesIO()
    torch.save(obj, buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _features(**arrays: np.ndarray) -> bytes:
    labels = np.arange(12) % 3
    base = {"features": np.random.default_rng(1).standard_normal((12, 4)), "labels": labels}
    base.update(arrays)
    return _zip([(f"{k}.npy", _npy_bytes(v)) for k, v in base.items()])


BAD_ROW = W.copy()
BAD_ROW[2, 1] = np.nan
INF_ROW = W.copy()
INF_ROW[4, 0] = np.inf
ZERO_ROW = W.copy()
ZERO_ROW[1] = 0.0

# (reader, kind, file suffix, file bytes, extra argv, what the one line must contain)
Case = tuple[str, str, str, bytes, list[str], str]
CASES: list[Case] = [
    # .npy (gnc margins)
    ("npy", "empty file", ".npy", b"", [], "not an .npy file"),
    ("npy", "text named .npy", ".npy", b"1 2 3\n4 5 6\n", [], "not an .npy file.*looks like text"),
    ("npy", "wrong magic", ".npy", b"\x93NUMPX" + _valid_npy()[6:], [], "not an .npy file"),
    ("npy", "truncated header", ".npy", _valid_npy()[:20], [], "header"),
    ("npy", "truncated data", ".npy", _valid_npy()[:-8], [], "truncated"),
    ("npy", "absurd shape 10^12", ".npy", _npy_header((10**6, 10**6)) + W.tobytes(), [],
     "8,000,000,000,000 bytes"),
    ("npy", "negative shape", ".npy", _valid_npy().replace(b"(6, 3)", b"(-6, 3)"), [],
     "malformed .npy header"),
    ("npy", "header length past the end", ".npy", _valid_npy()[:8] + b"\xff\xff" +
     _valid_npy()[10:], [], "header claims"),
    ("npy", "object dtype (pickle)", ".npy", _npy_bytes(np.array([{"a": 1}], dtype=object)), [],
     "Python objects"),
    ("npy", "complex", ".npy", _npy_bytes(W.astype(np.complex128)), [], "complex"),
    ("npy", "bool", ".npy", _npy_bytes(W > 0), [], "bool"),
    ("npy", "strings", ".npy", _npy_bytes(np.array([["a", "b"]])), [], "strings"),
    ("npy", "integer matrix", ".npy", _npy_bytes(np.arange(6).reshape(3, 2)), [],
     "floating-point"),
    ("npy", "NaN", ".npy", _npy_bytes(BAD_ROW), [], "row 2 has NaN"),
    ("npy", "Inf", ".npy", _npy_bytes(INF_ROW), [], "row 4 has NaN or Inf"),
    ("npy", "zero row", ".npy", _npy_bytes(ZERO_ROW), [], "row 1 is all zeros"),
    ("npy", "1-D", ".npy", _npy_bytes(W[0]), [], "2-D"),
    ("npy", "K < 2", ".npy", _npy_bytes(W[:1]), [], "at least 2 rows"),
    # .npz (gnc margins)
    ("npz", "empty file", ".npz", b"", [], "empty file"),
    ("npz", "empty archive", ".npz", _zip([]), [], "empty .npz archive"),
    ("npz", "not a zip", ".npz", b"weights,1,2\n", [], "not a valid zip"),
    ("npz", "truncated", ".npz", _zip([("weights.npy", _npy_bytes(W))])[:-30], [], "zip"),
    ("npz", "duplicate keys", ".npz",
     _zip([("weights.npy", _npy_bytes(W)), ("weights.npy", _npy_bytes(W))]), [], "duplicate key"),
    ("npz", "member not .npy", ".npz", _zip([("weights.npy", b"hello")]), [], "not an .npy"),
    ("npz", "absurd member shape", ".npz",
     _zip([("weights.npy", _npy_header((10**6, 10**6)) + W.tobytes())]), [], "bytes of data"),
    ("npz", "object member", ".npz",
     _zip([("weights.npy", _npy_bytes(np.array([None], dtype=object)))]), [], "Python objects"),
    ("npz", "complex weights", ".npz", _zip([("weights.npy", _npy_bytes(W + 1j))]), [],
     "complex"),
    ("npz", "NaN", ".npz", _zip([("weights.npy", _npy_bytes(BAD_ROW))]), [], "row 2 has NaN"),
    ("npz", "missing --key", ".npz", _zip([("a.npy", _npy_bytes(W))]), ["--key", "w"],
     "Expected a key `w`"),
    # .pt (gnc margins)
    ("pt", "empty file", ".pt", b"", [], "empty file"),
    ("pt", "truncated", ".pt", _pt({"weight": torch.from_numpy(W)})[:200], [], "zip"),
    ("pt", "pickle payload", ".pt", _pt({"weight": Evil()}), [], "never runs code"),
    ("pt", "legacy (non-zip) format", ".pt",
     _pt({"weight": torch.from_numpy(W)}, _use_new_zipfile_serialization=False), [], "legacy"),
    ("pt", "no tensors", ".pt", _pt({"a": 1}), [], "holds no arrays"),
    ("pt", "complex tensor", ".pt", _pt(torch.from_numpy(W + 1j)), [], "complex"),
    ("pt", "bool tensor", ".pt", _pt(torch.from_numpy(W > 0)), [], "bool"),
    ("pt", "integer tensor", ".pt", _pt(torch.arange(6).reshape(3, 2)), [], "floating-point"),
    ("pt", "NaN", ".pt", _pt(torch.from_numpy(BAD_ROW)), [], "row 2 has NaN"),
    # .safetensors (gnc margins)
    ("safetensors", "empty file", ".safetensors", b"", [], "truncated"),
    ("safetensors", "header length too large", ".safetensors",
     struct.pack("<Q", 10**12) + b"{}", [], "invalid header length"),
    ("safetensors", "header not JSON", ".safetensors", _safetensors(b"{nope"), [],
     "malformed header"),
    ("safetensors", "header is a list", ".safetensors", _safetensors([1, 2]), [],
     "not an object"),
    ("safetensors", "duplicate keys", ".safetensors",
     _safetensors(b'{"w": 1, "w": 2}'), [], "duplicate key"),
    ("safetensors", "offsets outside the file", ".safetensors",
     _safetensors(_st_entry(end=10**9), W.tobytes()), [], "outside"),
    ("safetensors", "absurd shape", ".safetensors",
     _safetensors(_st_entry(shape=[10**6, 10**6]), W.tobytes()), [], "outside"),
    ("safetensors", "unknown dtype", ".safetensors",
     _safetensors(_st_entry(dtype="C128"), W.tobytes()), [], "unsupported dtype"),
    ("safetensors", "bool dtype", ".safetensors",
     _safetensors(_st_entry(dtype="BOOL", end=18), b"\1" * 18), [], "bool"),
    ("safetensors", "integer matrix", ".safetensors",
     _safetensors(_st_entry(dtype="I64"), W.tobytes()), [], "floating-point"),
    ("safetensors", "NaN", ".safetensors", _safetensors(_st_entry(), BAD_ROW.tobytes()), [],
     "row 2 has NaN"),
    ("safetensors", "truncated data", ".safetensors", _safetensors(_st_entry(), W.tobytes()[:-8]),
     [], "outside"),
    # feature archives (gnc measure)
    ("features", "empty file", ".npz", b"", [], "empty file"),
    ("features", "missing labels", ".npz", _zip([("features.npy", _npy_bytes(W))]), [],
     "expected arrays `features`, `labels`"),
    ("features", "float labels", ".npz", _features(labels=np.zeros(12)), [], "integer"),
    ("features", "string labels", ".npz", _features(labels=np.array(["a"] * 12)), [], "integer"),
    ("features", "complex features", ".npz", _features(features=np.ones((12, 4)) + 1j), [],
     "floating-point"),
    ("features", "object features", ".npz", _features(features=np.array([None] * 12)), [],
     "Python objects"),
    ("features", "NaN features", ".npz", _features(features=np.full((12, 4), np.nan)), [],
     "NaN"),
    ("features", "zero rows", ".npz", _features(features=np.zeros((12, 4))), [], "all zeros"),
    ("features", "absurd shape", ".npz",
     _zip([("features.npy", _npy_header((10**6, 10**6)) + W.tobytes())]), [], "bytes of data"),
    ("features", "duplicate keys", ".npz",
     _zip([("labels.npy", _npy_bytes(np.arange(3)))] * 2), [], "duplicate key"),
    # TOML configs (gnc train --config)
    ("toml", "binary garbage", ".toml", b"\x00\x01\x02\xff", [], "not UTF-8"),
    ("toml", "not UTF-8", ".toml", b"name = '\xe9'\n", [], "not UTF-8"),
    ("toml", "duplicate keys", ".toml", b"seed = 1\nseed = 2\n", [], "invalid TOML"),
    ("toml", "syntax error", ".toml", b"[data\nname = 1\n", [], "invalid TOML"),
    ("toml", "unknown key", ".toml", b"colour = 1\n", [], "colour"),
    ("toml", "ill-typed value", ".toml", TINY_TOML.replace(b"epochs = 4", b"epochs = 'x'"), [],
     "optim.epochs"),
    ("toml", "too large", ".toml", b"#" * (17 << 20), [], "too large"),
]  # fmt: skip


def _argv(reader: str, path: Path, work: Path, extra: list[str]) -> list[str]:
    if reader == "features":
        return ["measure", "--features", str(path), *extra]
    if reader == "toml":
        return ["train", "--config", str(path), "--out", str(work / "run"), *extra]
    return ["margins", str(path), "--no-progress", *extra]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1].replace(' ', '_')}" for c in CASES])
def test_malformed_file_is_one_line_exit_2(case: Case, tmp_path: Path) -> None:
    reader, _, suffix, blob, extra, expected = case
    path = tmp_path / f"input{suffix}"
    path.write_bytes(blob)
    outcome = run_cli(_argv(reader, path, tmp_path, extra))
    assert outcome.status == 2 and outcome.clean, outcome.stderr
    assert __import__("re").search(expected, outcome.stderr), outcome.stderr
    if case[1] not in ("unknown key", "ill-typed value", "K < 2"):  # about values, not bytes
        assert str(path) in outcome.stderr, outcome.stderr  # the line names the file
    assert not (tmp_path / "run").exists()  # nothing written, not even the locked folder


def _train(tmp_path: Path, *extra: str) -> Outcome:
    return run_cli(
        ["train", "--config", "configs/tiny.toml", "--out", str(tmp_path / "run"),
         "--set", "optim.epochs=1", "--no-progress", *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind, blob, expected",
    [
        ("truncated", lambda good: good[: len(good) // 2], "zip"),
        ("random bytes", lambda good: bytes(range(256)) * 4, "zip"),
        ("pickle payload", lambda good: _pt({"epoch": Evil()}), "never runs code"),
        ("not a gnc checkpoint", lambda good: _pt({"epoch": 1}), "not a gnc checkpoint"),
        ("tensor of the wrong shape", lambda good: _swap_weight(good), "corrupt checkpoint"),
    ],
)
def test_malformed_checkpoint_on_resume(
    tmp_path: Path, kind: str, blob: Callable[[bytes], bytes], expected: str
) -> None:
    assert _train(tmp_path).status == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(blob(ckpt.read_bytes()))
    outcome = _train(tmp_path, "--resume")
    assert outcome.status == 2 and outcome.clean, outcome.stderr
    assert expected in outcome.stderr and "checkpoint.pt" in outcome.stderr, outcome.stderr


def _swap_weight(good: bytes) -> bytes:
    import io

    state = torch.load(io.BytesIO(good), weights_only=False)
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(1)
    return _pt(state)


@pytest.mark.parametrize(
    "argv_of, blob",
    [
        pytest.param(lambda p: ["margins", str(p)], b"", marks=pytest.mark.slow),
        (lambda p: ["margins", str(p)], b"1,2\n3,4\n"),
        pytest.param(lambda p: ["measure", "--features", str(p)], _zip([]), marks=pytest.mark.slow),
    ],
    ids=["empty-npz-margins", "text-npy", "empty-archive-measure"],
)
def test_console_script_prints_one_line(
    tmp_path: Path, argv_of: Callable[[Path], list[str]], blob: bytes
) -> None:
    suffix = ".npy" if blob.startswith(b"1,") else ".npz"
    path = tmp_path / f"x{suffix}"
    path.write_bytes(blob)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from gnc.cli import main; sys.exit(main())",
         *argv_of(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr, proc.stderr
