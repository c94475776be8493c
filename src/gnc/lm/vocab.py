"""Text to next-word pairs: tokens, the word vocabulary, the train/test split, context windows.

1. **Tokens**: :func:`tokenize` lowercases and splits into words (runs of letters, with inner
   apostrophes) and single punctuation marks; digits are dropped (in the KJV text they are verse
   numbers, not words).
2. **Vocabulary**: :func:`build_vocabulary` keeps the ``K - 1`` most frequent words of the
   *training* part and maps every other word to ``<unk>`` (class 0), so ``<unk>`` is an ordinary
   class the model must predict (closed-vocabulary perplexity).
3. **Split**: :func:`prepare_lm_data` holds out the *last* ``test_fraction`` of the tokens (for
   the KJV: the later New Testament books), a split by position rather than by random windows,
   so no test context overlaps a training one.
4. **Pairs**: :func:`context_windows` gives ``(context, next word)`` pairs: the ``c`` previous
   token ids and the id at position ``i``, for every ``i >= c``; :func:`sample_positions` draws
   a random subset of the positions.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
import torch

from gnc._checks import check_int, check_positive

__all__ = [
    "UNK",
    "LMData",
    "Vocabulary",
    "build_vocabulary",
    "context_windows",
    "prepare_lm_data",
    "sample_positions",
    "tokenize",
]

#: The out-of-vocabulary token, always class 0.
UNK = "<unk>"
#: History keys that depend on wall time (excluded when comparing runs for reproducibility).
TIMING_KEYS: tuple[str, ...] = ("seconds", "eval_seconds")

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercase words (letters with inner apostrophes) and single punctuation marks.

    Digits and underscores are dropped: in the KJV text digits are verse and chapter numbers.

    Args:
        text: Any text.

    Returns:
        The tokens in order.

    Example:
        >>> tokenize("  3 And God said, Let there be light: it's good.")
        ['and', 'god', 'said', ',', 'let', 'there', 'be', 'light', ':', "it's", 'good', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"Expected `text` to be a str, but got {type(text).__name__}.")
    return _TOKEN.findall(text.lower())


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A word vocabulary of ``K`` classes: ``<unk>`` (id 0) and the ``K - 1`` kept words.

    Attributes:
        words: ``(K,)`` the token of each class id; ``words[0] == "<unk>"``, then the kept words
            by decreasing training frequency (ties in order of first occurrence).
        counts: ``(K,)`` training-text counts per class (``counts[0]``: all out-of-vocabulary
            tokens together).

    Example:
        >>> vocab = build_vocabulary(["a", "b", "a", "c"], 3)
        >>> vocab.words, vocab.counts
        (('<unk>', 'a', 'b'), (1, 2, 1))
        >>> vocab.encode(["c", "a"]).tolist()
        [0, 1]
    """

    words: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(
                f"Expected `counts` of length {len(self.words)} to match `words`, but got "
                f"{len(self.counts)}."
            )
        if len(self.words) < 2 or self.words[0] != UNK:
            raise ValueError(
                f"Expected at least 2 words starting with {UNK!r}, got {self.words[:3]}."
            )
        if len(set(self.words)) != len(self.words):
            raise ValueError("Expected distinct `words`, but got duplicates.")

    @property
    def num_classes(self) -> int:
        """``K``, the number of classes including ``<unk>``."""
        return len(self.words)

    @cached_property
    def index(self) -> dict[str, int]:
        """Token -> class id."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Class ids ``(N,)`` int64 of ``tokens`` (unknown tokens -> 0)."""
        get = self.index.get
        return np.fromiter((get(t, 0) for t in tokens), dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of class ids."""
        return [self.words[int(i)] for i in ids]


def build_vocabulary(tokens: Sequence[str], num_classes: int) -> Vocabulary:
    """The ``num_classes - 1`` most frequent tokens plus ``<unk>``.

    Ties are broken by first occurrence (``collections.Counter.most_common``), so the
    vocabulary is a deterministic function of the token sequence.

    Args:
        tokens: The training tokens.
        num_classes: ``K >= 2``.

    Returns:
        A :class:`Vocabulary` with ``K`` classes.

    Raises:
        ValueError: If there are fewer than ``K - 1`` distinct tokens (some classes could never
            occur), or a token equals ``"<unk>"``.

    Example:
        >>> build_vocabulary(list("abracadabra"), 4).words
        ('<unk>', 'a', 'b', 'r')
    """
    K = check_int("num_classes", num_classes, minimum=2)
    counter = Counter(tokens)
    if UNK in counter:
        raise ValueError(f"Expected no token equal to {UNK!r} in the text, but found one.")
    if len(counter) < K - 1:
        raise ValueError(
            f"Expected `num_classes` <= {len(counter) + 1} (distinct tokens + 1 for {UNK}), "
            f"but got {K}."
        )
    kept = counter.most_common(K - 1)
    unknown = sum(counter.values()) - sum(c for _, c in kept)
    return Vocabulary(
        words=(UNK, *(w for w, _ in kept)),
        counts=(unknown, *(c for _, c in kept)),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class LMData:
    """An encoded corpus split into a training and a test part.

    Attributes:
        vocabulary: Built from the training tokens only.
        train_ids: ``(N_train,)`` int64 class ids of the training tokens.
        test_ids: ``(N_test,)`` int64 class ids of the held-out tokens (the end of the text).
        name: Where the text came from.
    """

    vocabulary: Vocabulary
    train_ids: np.ndarray
    test_ids: np.ndarray
    name: str = "text"

    @property
    def num_classes(self) -> int:
        """``K``."""
        return self.vocabulary.num_classes


def prepare_lm_data(
    text: str, num_classes: int, *, test_fraction: float = 0.1, name: str = "text"
) -> LMData:
    """Tokenize ``text``, hold out its last ``test_fraction`` of tokens, build the vocabulary.

    Args:
        text: The corpus.
        num_classes: ``K`` (``<unk>`` included).
        test_fraction: Fraction of tokens, taken from the end, held out as test data.
        name: Label stored in the result.

    Returns:
        An :class:`LMData`.

    Example:
        >>> data = prepare_lm_data("a b a c a b . a b a", 3, test_fraction=0.2)
        >>> data.vocabulary.words, data.train_ids.tolist(), data.test_ids.tolist()
        (('<unk>', 'a', 'b'), [1, 2, 1, 0, 1, 2, 0, 1], [2, 1])
    """
    frac = check_positive("test_fraction", test_fraction)
    if frac >= 1.0:
        raise ValueError(f"Expected `test_fraction` in (0, 1), but got {test_fraction}.")
    tokens = tokenize(text)
    n_test = max(1, round(frac * len(tokens)))
    if len(tokens) - n_test < 2:
        raise ValueError(f"Expected a text of at least a few tokens, but got {len(tokens)}.")
    train_tokens, test_tokens = tokens[:-n_test], tokens[-n_test:]
    vocab = build_vocabulary(train_tokens, num_classes)
    return LMData(vocab, vocab.encode(train_tokens), vocab.encode(test_tokens), name)


def context_windows(
    ids: torch.Tensor, context: int, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(context, next word)`` pairs of a token-id sequence, gathered without copying all windows.

    Pair ``j`` is ``(ids[p - c : p], ids[p])`` with ``p = positions[j]`` (default: every
    ``p`` in ``c .. N - 1``, i.e. ``N - c`` pairs).

    Args:
        ids: ``(N,)`` integer token ids.
        context: ``c >= 1``.
        positions: ``(B,)`` target positions in ``[c, N)``; default all.

    Returns:
        ``(contexts (B, c), targets (B,))`` on ``ids``' device.

    Example:
        >>> x, y = context_windows(torch.arange(5), 2)
        >>> x.tolist(), y.tolist()
        ([[0, 1], [1, 2], [2, 3]], [2, 3, 4])
    """
    c = check_int("context", context, minimum=1)
    if ids.ndim != 1 or ids.shape[0] <= c:
        raise ValueError(
            f"Expected `ids` of shape (N,) with N > context = {c}, but got {tuple(ids.shape)}."
        )
    if positions is None:
        positions = torch.arange(c, ids.shape[0], device=ids.device)
    positions = positions.to(ids.device)
    offsets = torch.arange(-c, 0, device=ids.device)
    return ids[positions[:, None] + offsets], ids[positions]


def sample_positions(
    num_tokens: int, context: int, count: int | None, *, generator: torch.Generator
) -> torch.Tensor:
    """``count`` distinct random target positions in ``[context, num_tokens)`` (sorted), or all.

    Example:
        >>> sample_positions(10, 3, None, generator=torch.Generator()).tolist()
        [3, 4, 5, 6, 7, 8, 9]
        >>> len(sample_positions(10, 3, 4, generator=torch.Generator().manual_seed(0)))
        4
    """
    total = num_tokens - context
    if total <= 0:
        raise ValueError(f"Expected more than {context} tokens, but got {num_tokens}.")
    if count is None or count >= total:
        return torch.arange(context, num_tokens)
    chosen = torch.randperm(total, generator=generator)[:count]
    return chosen.sort().values + context
