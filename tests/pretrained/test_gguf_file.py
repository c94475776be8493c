"""GGUF heads: tiny files written here with ``gguf.GGUFWriter`` in several quantization types."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from gnc.pretrained import load_head, read_gguf_head  # noqa: E402

Q = gguf.GGMLQuantizationType
K, D = 12, 64
TOKENS = [f"tok{i}" for i in range(K - 2)] + ["\u2581Paris", "<0x0A>"]


def _rows() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((K, D)).astype(np.float32)


def _write(
    path: Path,
    W: np.ndarray,
    qtype: object,
    *,
    name: str = "token_embd.weight",
    tokens: list[str] | None = TOKENS,
    extra: dict[str, np.ndarray] | None = None,
    model: str = "llama",
) -> None:
    writer = gguf.GGUFWriter(str(path), arch="testarch")
    if tokens is not None:
        writer.add_tokenizer_model(model)
        writer.add_token_list(tokens)
    data = gguf.quants.quantize(W, qtype)
    if qtype in (Q.F32, Q.F16):
        writer.add_tensor(name, data)
    else:
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    for key, value in (extra or {}).items():
        writer.add_tensor(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _bf16(x: np.ndarray) -> np.ndarray:
    """Independent float32 -> bfloat16 (round to nearest even) -> float32."""
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def _q8_0(raw: np.ndarray) -> np.ndarray:
    """Independent Q8_0 decode: per 32 values an fp16 scale then 32 int8; value = scale * q."""
    blocks = raw.reshape(-1, 34)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (scale * q).reshape(K, D)


def _q4_0(raw: np.ndarray) -> np.ndarray:
    """Independent Q4_0 decode: fp16 scale, 16 bytes; low nibbles first, value = (q - 8) * d."""
    blocks = raw.reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (scale * q).reshape(K, D)


@pytest.mark.parametrize("qtype", ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_quant_types_against_written_arrays(tmp_path: Path, qtype: str) -> None:
    W = _rows()
    t = Q[qtype]
    path = tmp_path / f"m-{qtype}.gguf"
    _write(path, W, t)
    head = load_head(path)
    assert head.weights.shape == (K, D) and head.tied and head.bias is None
    got = head.weights.numpy()
    raw = gguf.quants.quantize(W, t)
    expected = {
        "F32": lambda: W,
        "F16": lambda: W.astype(np.float16).astype(np.float32),
        "BF16": lambda: _bf16(W),
        "Q8_0": lambda: _q8_0(raw),
        "Q4_0": lambda: _q4_0(raw),
    }
    if qtype in expected:
        np.testing.assert_array_equal(got, expected[qtype]())
    else:  # 5-bit / affine 4-bit blocks: within half a quantization step of the written values
        step = np.abs(W).reshape(-1, 32).max(axis=1, keepdims=True) / 7.0
        assert np.all(np.abs(got - W).reshape(-1, 32) <= step + 1e-6)
    assert head.provenance["storage"] == qtype and head.provenance["architecture"] == "testarch"
    assert head.tokens == tuple(TOKENS)
    assert head.label_kind == "sentencepiece"
    assert head.decode(K - 2) == " Paris" and head.decode(K - 1) == "\n"


def test_output_weight_preferred_with_bias_and_key(tmp_path: Path) -> None:
    W = _rows()
    out = np.random.default_rng(1).standard_normal((K, D)).astype(np.float32)
    bias = np.arange(K, dtype=np.float32)
    path = tmp_path / "untied.gguf"
    _write(
        path,
        W,
        Q.F32,
        extra={"output.weight": out, "output.bias": bias},
        model="gpt2",
        tokens=["Ġa"] * K,
    )
    head = read_gguf_head(path)
    assert not head.tied and head.provenance["tensor"] == "output.weight"
    np.testing.assert_array_equal(head.weights.numpy(), out)
    assert head.bias is not None
    np.testing.assert_array_equal(head.bias.numpy(), bias)
    assert head.label_kind == "token" and head.decode(0) == " a"
    emb = read_gguf_head(path, key="token_embd.weight")
    np.testing.assert_array_equal(emb.weights.numpy(), W)
    with pytest.raises(ValueError, match=r"Expected a tensor `nope`"):
        read_gguf_head(path, key="nope")


def test_no_tokens_and_wrong_count(tmp_path: Path) -> None:
    path = tmp_path / "bare.gguf"
    _write(path, _rows(), Q.F32, tokens=None)
    head = read_gguf_head(path)
    assert head.tokens is None and head.decode(3) == "#3"
    path2 = tmp_path / "short.gguf"
    _write(path2, _rows(), Q.F32, tokens=["a", "b"])
    assert read_gguf_head(path2).tokens is None


# ------------------------------------------------------------------------------------------
# Malformed files: one ValueError line naming the file, no allocation from the header
# ------------------------------------------------------------------------------------------


def test_wrong_magic_and_truncated(tmp_path: Path) -> None:
    good = tmp_path / "good.gguf"
    _write(good, _rows(), Q.Q8_0)
    data = good.read_bytes()
    bad = tmp_path / "magic.gguf"
    bad.write_bytes(b"GGUX" + data[4:])
    with pytest.raises(ValueError, match=r"magic b'GGUF'.*magic\.gguf"):
        load_head(bad)
    short = tmp_path / "short.gguf"
    short.write_bytes(data[:10])
    with pytest.raises(ValueError, match=r"short.gguf is truncated"):
        load_head(short)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 200])  # tensor data runs past the end
    with pytest.raises(ValueError, match=r"cut.gguf"):
        load_head(cut)


def test_absurd_counts_and_version(tmp_path: Path) -> None:
    good = tmp_path / "good.gguf"
    _write(good, _rows(), Q.F32)
    data = bytearray(good.read_bytes())
    absurd = bytearray(data)
    absurd[8:16] = struct.pack("<Q", 2**60)  # tensor count
    (tmp_path / "absurd.gguf").write_bytes(bytes(absurd))
    with pytest.raises(ValueError, match=r"absurd\.gguf.*declares 1152921504606846976 tensors"):
        load_head(tmp_path / "absurd.gguf")
    version = bytearray(data)
    version[4:8] = struct.pack("<I", 99)
    (tmp_path / "version.gguf").write_bytes(bytes(version))
    with pytest.raises(ValueError, match=r"version 2 or 3.*has version 99"):
        load_head(tmp_path / "version.gguf")


def test_absurd_tensor_shape(tmp_path: Path) -> None:
    path = tmp_path / "shape.gguf"
    _write(path, _rows(), Q.F32, tokens=None)
    data = bytearray(path.read_bytes())
    # The tensor info: name, n_dims (uint32), dims (uint64 each): blow up the second dim.
    name = b"token_embd.weight"
    at = data.index(name) + len(name) + 4
    data[at + 8 : at + 16] = struct.pack("<Q", 2**40)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"shape.gguf"):
        load_head(path)


def test_missing_gguf_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a)
    )
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"pip install 'gnc\[heads\]'"):
        load_head(path)
