"""Hugging Face folders (safetensors, sharded) and ONNX graphs written here, read back exactly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gnc.pretrained import load_head, read_hf_head, source_kind

K, D = 10, 6


def _tokenizer(path: Path, byte_level: bool = True) -> None:
    vocab = {("Ġw" if byte_level else "\u2581w") + str(i): i for i in range(K - 1)}
    data = {
        "model": {"type": "BPE", "vocab": vocab},
        "added_tokens": [{"id": K - 1, "content": "<eos>"}],
        "decoder": {"type": "ByteLevel"} if byte_level else {"type": "Metaspace"},
    }
    path.write_text(json.dumps(data), encoding="utf-8")


def test_hf_tied_embedding(tmp_path: Path) -> None:
    E = torch.randn(K, D, dtype=torch.float64).to(torch.bfloat16)
    save_file(
        {"model.embed_tokens.weight": E, "model.norm.weight": torch.ones(D)},
        str(tmp_path / "model.safetensors"),
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    _tokenizer(tmp_path / "tokenizer.json")
    assert source_kind(tmp_path) == "huggingface"
    head = load_head(tmp_path)
    assert head.tied and head.bias is None and head.weights.dtype == torch.float32
    assert torch.equal(head.weights, E.float())
    assert head.provenance["tensor"] == "model.embed_tokens.weight"
    assert head.provenance["storage"] == "bfloat16"
    assert head.decode(3) == " w3" and head.decode(K - 1) == "<eos>"


def test_hf_lm_head_with_bias_sharded(tmp_path: Path) -> None:
    W = torch.randn(K, D)
    b = torch.randn(K)
    E = torch.randn(K, D)
    save_file({"model.embed_tokens.weight": E}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(
        {"lm_head.weight": W, "lm_head.bias": b}, str(tmp_path / "model-00002-of-00002.safetensors")
    )
    index = {
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "lm_head.bias": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    _tokenizer(tmp_path / "tokenizer.json", byte_level=False)
    head = read_hf_head(tmp_path)
    assert not head.tied and torch.equal(head.weights, W)
    assert head.bias is not None and torch.equal(head.bias, b)
    assert head.label_kind == "sentencepiece" and head.decode(2) == " w2"
    emb = read_hf_head(tmp_path, key="model.embed_tokens.weight")
    assert emb.tied and torch.equal(emb.weights, E)


def test_hf_untied_without_lm_head_and_malformed(tmp_path: Path) -> None:
    save_file({"model.embed_tokens.weight": torch.randn(K, D)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    with pytest.raises(ValueError, match=r"untied embeddings"):
        load_head(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json.*malformed"):
        load_head(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    raw = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(raw[: len(raw) - 40])  # truncated data
    with pytest.raises(ValueError, match=r"model.safetensors"):
        load_head(tmp_path)
    # An absurd header length must not be allocated.
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ValueError, match=r"model.safetensors is malformed"):
        load_head(tmp_path)
    save_file(
        {"model.embed_tokens.weight": torch.ones(K, D, dtype=torch.int32)},
        str(tmp_path / "model.safetensors"),
    )
    with pytest.raises(ValueError, match=r"floating tensor"):
        load_head(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError, match=r"config.json"):
        read_hf_head(tmp_path)


# ------------------------------------------------------------------------------------------
# ONNX
# ------------------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx")


def _graph(
    path: Path, op: str, *, trans_b: int = 1, add_bias: bool = True, hidden: int = 5
) -> dict[str, np.ndarray]:
    from onnx import TensorProto, helper, numpy_helper

    gen = np.random.default_rng(2)
    W1 = gen.standard_normal((hidden, D)).astype(np.float32)  # an earlier layer
    W = gen.standard_normal((K, D)).astype(np.float32)
    b = gen.standard_normal(K).astype(np.float32)
    inits = [numpy_helper.from_array(W1, "body.w")]
    nodes = [
        helper.make_node("MatMul", ["x", "body.w"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["h"]),
    ]
    if op == "Gemm":
        stored = W if trans_b else W.T
        inits += [numpy_helper.from_array(stored, "head.w"), numpy_helper.from_array(b, "head.b")]
        nodes.append(helper.make_node("Gemm", ["h", "head.w", "head.b"], ["y"], transB=trans_b))
    else:
        inits += [
            numpy_helper.from_array(W.T.copy(), "head.w"),
            numpy_helper.from_array(b, "head.b"),
        ]
        nodes.append(helper.make_node("MatMul", ["h", "head.w"], ["z"]))
        nodes.append(helper.make_node("Add", ["z", "head.b"] if add_bias else ["z", "z"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, K])],
        inits,
    )
    onnx.save(helper.make_model(graph), str(path))
    return {"W": W, "b": b, "W1": W1}


@pytest.mark.parametrize(("op", "trans_b"), [("Gemm", 1), ("Gemm", 0), ("MatMul", 0)])
def test_onnx_final_layer_and_bias(tmp_path: Path, op: str, trans_b: int) -> None:
    path = tmp_path / "clf.onnx"
    arrays = _graph(path, op, trans_b=trans_b, hidden=D)
    head = load_head(path)
    np.testing.assert_array_equal(head.weights.numpy(), arrays["W"])
    assert head.bias is not None
    np.testing.assert_array_equal(head.bias.numpy(), arrays["b"])
    assert head.provenance["tensor"] == "head.w" and head.provenance["bias_tensor"] == "head.b"
    # Logits from onnxruntime equal W h + b for a hidden state h (the head's own convention).
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(5).standard_normal((1, D)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})
    hidden = np.maximum(x @ arrays["W1"], 0.0)
    np.testing.assert_allclose(
        y[0], head.weights.numpy() @ hidden[0] + head.bias.numpy(), rtol=1e-5, atol=1e-5
    )


def test_onnx_key_and_no_bias(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    arrays = _graph(path, "MatMul", add_bias=False, hidden=D)
    head = load_head(path)
    assert head.bias is None
    body = load_head(path, key="body.w")
    np.testing.assert_array_equal(body.weights.numpy(), arrays["W1"].T)
    with pytest.raises(ValueError, match=r"initializer `zz`"):
        load_head(path, key="zz")


def test_onnx_malformed(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _graph(path, "Gemm", hidden=D)
    raw = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.onnx"):
        load_head(tmp_path / "cut.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"junk.onnx"):
        load_head(tmp_path / "junk.onnx")
    # A declared shape larger than the stored bytes: caught before any array is built.
    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if t.name == "head.w")
    init.dims[0] = 10**9
    onnx.save(model, str(tmp_path / "dims.onnx"))
    with pytest.raises(ValueError, match=r"dims.onnx.*holds"):
        load_head(tmp_path / "dims.onnx")
    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if t.name == "head.w")
    init.data_type = onnx.TensorProto.INT8
    onnx.save(model, str(tmp_path / "int8.onnx"))
    with pytest.raises(ValueError, match=r"floating initializer"):
        load_head(tmp_path / "int8.onnx")
