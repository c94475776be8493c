"""The :class:`Head` record (weights, bias, token strings, provenance) and token decoders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import torch

from gnc._checks import check_matrix

__all__ = ["Head", "LabelKind", "decode_byte_level_token", "decode_sentencepiece_token"]

#: How token strings are shown: byte-level BPE (GPT-2 style), SentencePiece (``▁`` = space,
#: ``<0xNN>`` = a byte), plain text (characters, WordPiece) or no labels at all.
LabelKind = Literal["token", "sentencepiece", "character", "index"]


@dataclass(frozen=True, eq=False)
class Head:
    """A linear classifier head: ``K`` raw class rows in ``R^d``, an optional bias, class names.

    Logits are ``W h + b`` for a hidden state ``h``.

    Attributes:
        weights: ``(K, d)`` float tensor (float32 for the packaged heads: their dequantization
            is exact in float32), as stored (not normalized).
        tokens: ``K`` raw vocabulary entries (token strings, characters), or ``None``.
        name: Short name (``"smollm2"``, ``"gemma3"``, the file stem, ...).
        provenance: What was read: package, version, file, tensor names, storage dtype,
            orientation, cache file, notes.
        label_kind: How :meth:`decode` shows a token (see :data:`LabelKind`).
        bias: ``(K,)`` bias or ``None``.
        source: The source it was loaded from (a packaged name or a path).
        tied: Whether the head is the model's input token embedding (weight tying).

    Example:
        >>> head = Head(torch.eye(3), ("a", "b", "c"), "toy", {}, "character")
        >>> head.num_classes, head.feature_dim, head.decode(1), head.bias is None
        (3, 3, 'b', True)
    """

    weights: torch.Tensor
    tokens: tuple[str, ...] | None
    name: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    label_kind: LabelKind = "index"
    bias: torch.Tensor | None = None
    source: str = ""
    tied: bool = False

    def __post_init__(self) -> None:
        W = check_matrix("weights", self.weights, min_rows=1)
        object.__setattr__(self, "weights", W)
        if self.tokens is not None and len(self.tokens) != W.shape[0]:
            raise ValueError(
                f"Expected {W.shape[0]} `tokens` (one per row of `weights` {tuple(W.shape)}), "
                f"but got {len(self.tokens)}."
            )
        if self.bias is not None:
            b = torch.as_tensor(self.bias)
            if b.shape != (W.shape[0],) or not bool(torch.isfinite(b).all()):
                raise ValueError(
                    f"Expected a finite `bias` of shape ({W.shape[0]},) for `weights` "
                    f"{tuple(W.shape)}, but got shape {tuple(b.shape)}."
                )
            object.__setattr__(self, "bias", b)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Alias of :attr:`tokens` (the class names)."""
        return self.tokens

    @property
    def num_classes(self) -> int:
        """Number of classes ``K`` (rows)."""
        return int(self.weights.shape[0])

    @property
    def feature_dim(self) -> int:
        """Feature dimension ``d`` (columns)."""
        return int(self.weights.shape[1])

    def decode(self, index: int) -> str:
        """Human-readable label of class ``index`` (tokens decoded to text).

        Raises:
            IndexError: If ``index`` is out of range.
        """
        if not -self.num_classes <= index < self.num_classes:
            raise IndexError(f"Expected a class index in [0, {self.num_classes}), but got {index}.")
        index %= self.num_classes
        if self.tokens is None:
            return f"#{index}"
        label = self.tokens[index]
        if self.label_kind == "token":
            return decode_byte_level_token(label)
        if self.label_kind == "sentencepiece":
            return decode_sentencepiece_token(label)
        return label

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Head:
        """The head restricted to some classes (in the given order)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        tokens = None if self.tokens is None else tuple(self.tokens[int(i)] for i in idx)
        prov = dict(self.provenance)
        prov["subset_of_classes"] = self.num_classes
        bias = None if self.bias is None else self.bias[idx.to(self.bias.device)]
        return Head(
            self.weights[idx.to(self.weights.device)],
            tokens,
            self.name,
            prov,
            self.label_kind,
            bias,
            self.source,
            self.tied,
        )


@cache
def _byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte -> printable unicode map used by byte-level BPE vocabularies."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def decode_byte_level_token(token: str) -> str:
    r"""Decode a byte-level BPE token (GPT-2, SmolLM2, Whisper vocabularies) to its text.

    Characters outside the byte alphabet (special tokens are plain ASCII) are kept as they are;
    incomplete UTF-8 sequences are shown as ``\xNN`` escapes.

    Example:
        >>> decode_byte_level_token("ĠParis"), decode_byte_level_token("<|endoftext|>")
        (' Paris', '<|endoftext|>')
    """
    table = _byte_level_decoder()
    if not all(c in table for c in token):
        return token
    return bytes(table[c] for c in token).decode("utf-8", errors="backslashreplace")


_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def decode_sentencepiece_token(token: str) -> str:
    r"""Decode a SentencePiece token (Gemma, Llama 2, T5): ``▁`` is a space, ``<0xNN>`` a byte.

    Example:
        >>> decode_sentencepiece_token("▁Paris"), decode_sentencepiece_token("<0x0A>")
        (' Paris', '\n')
    """
    match = _BYTE_PIECE.fullmatch(token)
    if match:
        return bytes([int(match.group(1), 16)]).decode("utf-8", errors="backslashreplace")
    return token.replace("\u2581", " ")
