r"""Byte-level BPE tokenizer (GPT-2 family) read from a GGUF file's ``tokenizer.ggml.*`` metadata.

This reproduces llama.cpp's ``gpt2`` tokenizer with the ``smollm`` pre-tokenizer used by
SmolLM2 (identical to the Hugging Face ``tokenizer.json`` of SmolLM2: ``Digits(individual_digits)``
followed by ``ByteLevel(use_regex=True)``):

1. **Pre-tokenize.** Every numeric character (Unicode category ``N*``) becomes its own piece;
   the rest is split with the GPT-2 pattern
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``.
2. **Byte-level map.** Each piece's UTF-8 bytes are mapped to printable characters with GPT-2's
   ``bytes_to_unicode`` table (so a space becomes ``Ġ``).
3. **BPE.** Adjacent symbols are merged by merge rank (lowest first) until no adjacent pair is
   in the merge table; the final symbols are looked up in the vocabulary.

The third-party ``regex`` module is not a dependency: ``\p{L}``, ``\p{N}`` and ``\s`` are
expanded into explicit character classes from :mod:`unicodedata` (Unicode categories
``Lu Ll Lt Lm Lo``, ``Nd Nl No`` and the Unicode ``White_Space`` property), so the pattern runs
with the standard :mod:`re`. The only known difference from llama.cpp is the Unicode version
(Python's :mod:`unicodedata` versus llama.cpp's tables) for characters assigned recently.
Special tokens (``<|im_start|>`` ...) are not parsed out of the text by :meth:`encode`.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["ByteLevelBPE", "bytes_to_unicode", "pretokenize"]

#: Unicode ``White_Space`` characters (Python's ``str.isspace`` adds U+001C..U+001F).
_WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


@cache
def bytes_to_unicode() -> dict[int, str]:
    r"""GPT-2's map from the 256 byte values to printable Unicode characters.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to ``chr(256 + i)``
    in byte order.

    Example:
        >>> table = bytes_to_unicode()
        >>> table[ord("A")], table[ord(" ")], table[ord("\n")], len(set(table.values()))
        ('A', 'Ġ', 'Ċ', 256)
    """
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@cache
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _ranges(codepoints: Iterable[int]) -> str:
    r"""Character-class body (``\uXXXX-\uYYYY`` ranges) of sorted code points."""
    parts: list[str] = []
    start = prev = -2
    for cp in codepoints:
        if cp != prev + 1:
            if start >= 0:
                parts.append(_span(start, prev))
            start = cp
        prev = cp
    if start >= 0:
        parts.append(_span(start, prev))
    return "".join(parts)


def _escape(c: int) -> str:
    return f"\\U{c:08x}" if c > 0xFFFF else f"\\u{c:04x}"


def _span(a: int, b: int) -> str:
    return _escape(a) if a == b else f"{_escape(a)}-{_escape(b)}"


@cache
def _classes() -> tuple[str, str, str]:
    """``(letters, numbers, spaces)`` character-class bodies for the standard ``re`` module."""
    letters: list[int] = []
    numbers: list[int] = []
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "L":
            letters.append(cp)
        elif cat[0] == "N":
            numbers.append(cp)
    spaces = _ranges(sorted(map(ord, _WHITE_SPACE)))
    return _ranges(letters), _ranges(numbers), spaces


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    L, N, S = _classes()
    digits = re.compile(f"[{N}]")
    gpt2 = re.compile(
        f"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+"
    )
    return digits, gpt2


def pretokenize(text: str) -> list[str]:
    r"""Split text into the pieces that BPE encodes separately (SmolLM2's pre-tokenizer).

    Numeric characters are isolated one by one, then the GPT-2 pattern splits the rest.
    The pieces concatenate to ``text``.

    Example:
        >>> pretokenize("Hello world's 42 cats!\n")
        ['Hello', ' world', "'s", ' ', '4', '2', ' cats', '!', '\n']
    """
    digits, gpt2 = _patterns()
    pieces: list[str] = []
    pos = 0
    for m in digits.finditer(text):
        if m.start() > pos:
            pieces.extend(gpt2.findall(text, pos, m.start()))
        pieces.append(m.group())
        pos = m.end()
    if pos < len(text):
        pieces.extend(gpt2.findall(text, pos))
    return pieces


@dataclass(frozen=True, eq=False)
class ByteLevelBPE:
    """A byte-level BPE tokenizer: vocabulary, merge ranks and special-token ids.

    Attributes:
        tokens: ``K`` vocabulary strings in the byte-level alphabet (``"ĠParis"``), indexed by id.
        merges: Merge rules ``(left, right)`` in priority order (index = rank).
        token_types: llama.cpp token types per id (1 normal, 3 control, ...), or empty.
        bos_token_id: Beginning-of-sequence id, if any.
        eos_token_id: End-of-sequence id, if any.

    Example:
        >>> toy = ByteLevelBPE(("a", "b", "ab", "Ġ", "Ġab"), (("a", "b"), ("Ġ", "ab")))
        >>> toy.encode("ab ab"), toy.decode([2, 4])
        ([2, 4], 'ab ab')
    """

    tokens: tuple[str, ...] = field(repr=False)
    merges: tuple[tuple[str, str], ...] = field(repr=False)
    token_types: tuple[int, ...] = field(default=(), repr=False)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    _ids: dict[str, int] = field(init=False, repr=False)
    _ranks: dict[tuple[str, str], int] = field(init=False, repr=False)
    _cache: dict[str, tuple[int, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids: dict[str, int] = {}
        for i, tok in enumerate(self.tokens):
            ids.setdefault(tok, i)
        object.__setattr__(self, "_ids", ids)
        ranks: dict[tuple[str, str], int] = {}
        for r, pair in enumerate(self.merges):
            ranks.setdefault(pair, r)
        object.__setattr__(self, "_ranks", ranks)
        object.__setattr__(self, "_cache", {})

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str]) -> ByteLevelBPE:
        """Read the tokenizer of a GGUF file (needs the ``gguf`` package).

        Raises:
            ValueError: If the file's tokenizer is not a byte-level BPE (``gpt2``) one.
            KeyError: If the vocabulary or the merges are missing.
        """
        import gguf

        reader = gguf.GGUFReader(str(Path(path)))
        model = _field_str(reader, "tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(
                f"Expected a byte-level BPE tokenizer (`tokenizer.ggml.model` = 'gpt2') in "
                f"{path}, but got {model!r}."
            )
        tokens = _field_strings(reader, "tokenizer.ggml.tokens")
        merges = []
        for m in _field_strings(reader, "tokenizer.ggml.merges"):
            left, _, right = m.partition(" ")
            merges.append((left, right))
        types_field = reader.fields.get("tokenizer.ggml.token_type")
        types = () if types_field is None else tuple(int(t) for t in types_field.contents())
        return cls(
            tuple(tokens),
            tuple(merges),
            types,
            _field_int(reader, "tokenizer.ggml.bos_token_id"),
            _field_int(reader, "tokenizer.ggml.eos_token_id"),
        )

    @property
    def vocab_size(self) -> int:
        """Number of tokens ``K``."""
        return len(self.tokens)

    def token_id(self, token: str) -> int:
        """Id of a vocabulary string (byte-level alphabet).

        Raises:
            KeyError: If the string is not in the vocabulary.
        """
        return self._ids[token]

    def merge_rank(self, left: str, right: str) -> int | None:
        """Rank of the merge ``left + right`` (lower merges first), or ``None`` if absent."""
        return self._ranks.get((left, right))

    def bpe(self, piece: str) -> list[str]:
        """BPE symbols of one pre-token given in the byte-level alphabet.

        Repeatedly merges every occurrence (left to right) of the adjacent pair with the
        lowest rank, until no adjacent pair is in the merge table.
        """
        word = list(piece)
        ranks = self._ranks
        while len(word) > 1:
            best: tuple[str, str] | None = None
            best_rank = len(ranks)
            for pair in itertools.pairwise(word):
                r = ranks.get(pair)
                if r is not None and r < best_rank:
                    best, best_rank = pair, r
            if best is None:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode_piece(self, piece: str) -> tuple[int, ...]:
        """Token ids of one pre-token (plain text), cached."""
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        table = bytes_to_unicode()
        mapped = "".join(table[b] for b in piece.encode("utf-8"))
        ids: list[int] = []
        for sym in self.bpe(mapped):
            tid = self._ids.get(sym)
            if tid is None:  # bytes absent from the vocabulary are dropped, as llama.cpp does
                ids.extend(self._ids[c] for c in sym if c in self._ids)
            else:
                ids.append(tid)
        out = tuple(ids)
        if len(self._cache) < 1_000_000:
            self._cache[piece] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS is added; special tokens are not parsed).

        A byte with no token of its own (SmolLM2 lacks a few control characters such as
        U+0004 and the bytes that never occur in UTF-8) is dropped when BPE cannot merge it
        into a larger token, as llama.cpp does; ``decode(encode(text)) == text`` holds for every
        text without such bytes.

        Raises:
            TypeError: If ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"Expected `text` to be a str, but got {type(text).__name__}.")
        ids: list[int] = []
        for piece in pretokenize(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes that token ``token_id`` stands for (special tokens: their UTF-8 text).

        Raises:
            IndexError: If the id is out of range.
        """
        if not 0 <= token_id < len(self.tokens):
            raise IndexError(f"Expected a token id in [0, {len(self.tokens)}), but got {token_id}.")
        tok = self.tokens[token_id]
        inverse = _unicode_to_bytes()
        if all(c in inverse for c in tok):
            return bytes(inverse[c] for c in tok)
        return tok.encode("utf-8")

    def decode(self, ids: Sequence[int] | Iterable[int]) -> str:
        """Text of a token sequence (invalid UTF-8 becomes U+FFFD).

        Raises:
            IndexError: If an id is out of range.
        """
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")


def _field_strings(reader: Any, key: str) -> list[str]:
    f = reader.fields.get(key)
    if f is None:
        raise KeyError(f"Expected the GGUF metadata key `{key}`, but the file has none.")
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def _field_str(reader: Any, key: str) -> str | None:
    f = reader.fields.get(key)
    return None if f is None else str(f.contents())


def _field_int(reader: Any, key: str) -> int | None:
    f = reader.fields.get(key)
    return None if f is None else int(f.contents())
