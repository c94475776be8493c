"""A tiny word-level language model: GNC in the ``K >> d`` regime of language models.

Language models are the classifiers with the most classes per feature dimension (a vocabulary of
``K ~ 5e4`` words against ``d ~ 10^3``), the regime that generalized neural collapse (Jiang et al.,
ICML 2024) describes but that the paper never measures. This module trains a small next-word
predictor on a real corpus, on CPU, and tracks GNC per epoch exactly as :mod:`gnc.train.loop` does
for images, with a normalized head at temperature ``tau`` or a plain linear head:

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
   token ids and the id at position ``i``, for every ``i >= c``.
5. **Model**: :class:`ContextMLP` embeds the ``c`` context words, concatenates them and maps them
   through one hidden layer to a ``d``-dimensional feature ``h`` (the last layer is linear
   without bias or activation, as in :mod:`gnc.train.models`, so ``h`` can point anywhere on the
   sphere); the head is :class:`~gnc.train.heads.LinearHead` or
   :class:`~gnc.train.heads.NormalizedHead` (cosine logits over ``tau``), wrapped with the
   backbone in :class:`~gnc.train.loop.Classifier`. Loss: cross-entropy on the next word.
6. **Training**: :func:`train_lm` runs Adam with a cosine learning-rate schedule over
   ``epochs`` epochs of ``train_positions`` positions each (a fresh random subset of all training
   positions per epoch: the whole KJV is ~0.82 M positions, more than a CPU budget of minutes
   allows for ten epochs). Adam rather than the image loop's SGD, the usual choice for
   language models (sparse embedding gradients, Zipfian class frequencies); no weight decay, as
   in the paper's normalized setting. SGD was not compared here.
7. **Metrics per epoch**, and once before training (epoch 0: the head's random initialization
   is the baseline GNC2 is compared with), by :func:`subsample_gnc_metrics` on a *fixed* random
   subsample of
   training positions labelled by their true next word, features L2-normalized (the paper's
   convention):

   - Only the ``K'`` classes that occur in the subsample enter GNC1, GNC3 and NCC: their labels
     are remapped to ``0..K'-1`` and ``W`` is restricted to their rows. GNC1 needs a mean for
     every class in the accumulator, and in a Zipfian vocabulary many rare words never occur in a
     sample of ``10^4`` positions; dropping them explicitly is the honest alternative to empty
     classes (which :class:`~gnc.metrics.GNCAccumulator` rejects). ``metric_classes`` records
     ``K'``.
   - ``gnc2`` is the exact ``rho`` of *all* ``K`` normalized head rows (independent of the
     subsample), via :func:`gnc.geometry.one_vs_rest_distances`, which also gives the median
     one-vs-rest distance ``gnc2_median_distance``: ``rho`` is a minimum over ``K`` rows and in
     a Zipfian vocabulary it is decided by a rare word, the median describes the bulk.
     ``gnc2_present`` is ``rho`` of the ``K'`` rows that GNC1/GNC3 use.
   - NCC test accuracy classifies a fixed random subsample of ``metric_samples`` evaluated
     test positions (nearest-mean search is the costly part of the evaluation), restricted to
     those whose next word is among the ``K'`` classes (``ncc_test_coverage``: their fraction).

   Plus the train loss (running mean over the epoch), the loss / top-1 accuracy on the metric
   subsample in eval mode (``train_eval_loss``, ``train_accuracy``) and on the test positions
   (``test_loss``, ``test_accuracy``, ``test_perplexity = exp(test_loss)``).

Reproducibility: the model is initialized from ``torch.manual_seed(seed)``, the positions of
epoch ``e`` come from a generator seeded with ``(seed, e)`` and the metric subsample from one
seeded with ``seed`` alone; on CPU deterministic algorithms are switched on, so the same seed
gives the same history (apart from the timing fields ``seconds`` and ``eval_seconds``).

Outputs (:func:`train_lm` with ``out_dir``), each written atomically: ``config.json``,
``metrics.jsonl`` (rewritten after every epoch), ``history.json``, ``results.json``,
``head.npz`` (final normalized head rows, their one-vs-rest distances ``D_k`` and the training
counts per class) and ``plots/*.png`` (:func:`gnc.report.plots_train.save_training_plots` plus
``perplexity.png``).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gnc._checks import check_int, check_labels, check_matrix, check_positive
from gnc.data.corpora import CORPORA
from gnc.io import atomic_save_npz, atomic_write_bytes, atomic_write_text, dump_json, run_metadata
from gnc.train.heads import Head, LinearHead, NormalizedHead
from gnc.train.models import Classifier

__all__ = [
    "CORPORA",
    "TIMING_KEYS",
    "UNK",
    "ContextMLP",
    "LMConfig",
    "LMData",
    "LMResult",
    "Vocabulary",
    "build_lm_model",
    "build_vocabulary",
    "context_windows",
    "load_corpus",
    "prepare_lm_data",
    "reduced_code_value",
    "sample_positions",
    "subsample_gnc_metrics",
    "tokenize",
    "train_lm",
]

#: The out-of-vocabulary token, always class 0.
UNK = "<unk>"
#: History keys that depend on wall time (excluded when comparing runs for reproducibility).
TIMING_KEYS: tuple[str, ...] = ("seconds", "eval_seconds")

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|[^\w\s]")


# --------------------------------------------------------------------------------------------
# Text -> tokens -> ids
# --------------------------------------------------------------------------------------------


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


def load_corpus(name: str, *, max_chars: int | None = None) -> str:
    """The text of a named corpus (``"kjv"``, ``"austen"``): :func:`gnc.corpora.load_text`.

    Raises:
        ValueError: For an unknown name, or when the corpus is not installed (the message holds
            the install command).
    """
    from gnc.data.corpora import load_text

    return load_text(name, max_chars=max_chars)


# --------------------------------------------------------------------------------------------
# Configuration, model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """One language-model run.

    Attributes:
        num_classes: Vocabulary size ``K`` (``<unk>`` included).
        context: Previous words ``c`` the model sees.
        embedding_dim: Word embedding size.
        hidden_dim: Width of the hidden layer.
        feature_dim: Feature dimension ``d`` of the head.
        head: ``"linear"`` or ``"normalized"``.
        tau: Temperature of the normalized head (ignored by the linear head).
        epochs: Passes of ``train_positions`` random positions each.
        batch_size: Positions per step.
        lr: Adam's peak learning rate (cosine decay to 0 over all steps).
        train_positions: Training positions per epoch (``None``: all).
        metric_samples: Size of the fixed training subsample for the GNC metrics.
        test_positions: Test positions evaluated per epoch (``None``: all; a fixed subset
            otherwise).
        test_fraction: Fraction of the tokens held out (end of the text).
        corpus: Corpus name for :func:`load_corpus` (when no data is given).
        max_chars: Read only the first ``max_chars`` characters of the corpus.
        seed: Seed of initialization, batches and subsamples.
        device: ``"auto"`` (CUDA when available) or a torch device string.
        max_memory_mib: Memory budget of the metric solvers.
    """

    num_classes: int = 2048
    context: int = 8
    embedding_dim: int = 32
    hidden_dim: int = 256
    feature_dim: int = 32
    head: Literal["linear", "normalized"] = "normalized"
    tau: float = 0.1
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    train_positions: int | None = 300_000
    metric_samples: int = 20_000
    test_positions: int | None = None
    test_fraction: float = 0.1
    corpus: str = "kjv"
    max_chars: int | None = None
    seed: int = 0
    device: str = "auto"
    max_memory_mib: float = 512.0

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, minimum=2)
        check_int("context", self.context, minimum=1)
        check_int("embedding_dim", self.embedding_dim, minimum=1)
        check_int("hidden_dim", self.hidden_dim, minimum=1)
        check_int("feature_dim", self.feature_dim, minimum=1)
        if self.head not in ("linear", "normalized"):
            raise ValueError(f"Expected `head` in ('linear', 'normalized'), but got {self.head!r}.")
        check_positive("tau", self.tau)
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("lr", self.lr)
        if self.train_positions is not None:
            check_int("train_positions", self.train_positions, minimum=1)
        check_int("metric_samples", self.metric_samples, minimum=2)
        if self.test_positions is not None:
            check_int("test_positions", self.test_positions, minimum=1)
        frac = check_positive("test_fraction", self.test_fraction)
        if frac >= 1.0:
            raise ValueError(f"Expected `test_fraction` in (0, 1), but got {self.test_fraction}.")
        if self.max_chars is not None:
            check_int("max_chars", self.max_chars, minimum=1)
        check_int("seed", self.seed)
        check_positive("max_memory_mib", self.max_memory_mib)

    @property
    def label(self) -> str:
        """``linear`` or ``normalized-tau0.1``: a short name for folders and legends."""
        return "linear" if self.head == "linear" else f"normalized-tau{self.tau:.4g}"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-friendly dict."""
        return dataclasses.asdict(self)


class ContextMLP(nn.Module):
    """Features of a word context: embed, concatenate, one hidden layer, linear map to ``d``.

    ``(B, c)`` ids -> embeddings ``(B, c * e)`` -> ``Linear`` -> ``LayerNorm`` -> ``GELU`` ->
    ``Linear(hidden, d, bias=False)``. LayerNorm keeps the hidden units alive under the large
    feature gradients of a normalized head at small ``tau`` (as in :class:`gnc.train.MLP`); the
    final layer has no activation, so features are not confined to an orthant.

    Args:
        vocab_size: ``K`` (input and output vocabularies coincide).
        context: ``c``.
        embedding_dim: ``e``.
        hidden_dim: Hidden width.
        feature_dim: ``d``.

    Example:
        >>> net = ContextMLP(10, 3, 4, 8, 2)
        >>> net(torch.zeros(5, 3, dtype=torch.long)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self, vocab_size: int, context: int, embedding_dim: int, hidden_dim: int, feature_dim: int
    ) -> None:
        super().__init__()
        self.context = check_int("context", context, minimum=1)
        self.embedding = nn.Embedding(check_int("vocab_size", vocab_size, minimum=2), embedding_dim)
        self.hidden = nn.Linear(context * embedding_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, feature_dim, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Features ``(B, d)`` of contexts ``(B, c)``."""
        e = self.embedding(ids).flatten(1)
        out: torch.Tensor = self.out(F.gelu(self.norm(self.hidden(e))))
        return out


def build_lm_model(config: LMConfig) -> Classifier:
    """:class:`ContextMLP` + the configured head, as a :class:`~gnc.train.loop.Classifier`.

    Example:
        >>> model = build_lm_model(LMConfig(num_classes=5, context=2, feature_dim=3))
        >>> features, logits = model(torch.zeros(4, 2, dtype=torch.long))
        >>> tuple(features.shape), tuple(logits.shape)
        ((4, 3), (4, 5))
    """
    K, d = config.num_classes, config.feature_dim
    backbone = ContextMLP(K, config.context, config.embedding_dim, config.hidden_dim, d)
    head: Head = (
        LinearHead(K, d) if config.head == "linear" else NormalizedHead(K, d, tau=config.tau)
    )
    return Classifier(backbone, head)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def subsample_gnc_metrics(
    features: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    *,
    predictions: torch.Tensor | None = None,
    test_features: torch.Tensor | None = None,
    test_targets: torch.Tensor | None = None,
    max_memory_mib: float = 512.0,
) -> tuple[dict[str, Any], torch.Tensor]:
    """GNC metrics of next-word features, restricted to the classes that occur.

    With ``P`` the sorted distinct targets (``K' = |P|`` classes), labels are remapped to
    ``0..K'-1`` and the head to its rows ``W[P]``; a :class:`~gnc.metrics.GNCAccumulator` over
    ``K'`` classes then has no empty class. Computed:

    - ``gnc1``: :func:`gnc.metrics.gnc1` over the ``K'`` classes (normalized features). When
      ``K' >> d``, ``Sigma_B`` has rank ``<= d`` and the ``1/K'`` makes GNC1 small even without
      any collapse (``gnc1 * K' / d`` is the within/between ratio per direction), so
      ``nc1_trace_ratio = tr(Sigma_W) / tr(Sigma_B)`` is recorded as a scale-free companion.
    - ``gnc3``: :func:`gnc.metrics.gnc3` with ``W[P]``.
    - ``gnc2``: exact ``rho`` of all ``K`` normalized rows of ``weights``
      (:func:`gnc.geometry.one_vs_rest_distances`), ``gnc2_median_distance`` the median ``D_k``,
      ``gnc2_argmin`` the class attaining ``rho``; ``gnc2_present``: ``rho(W[P])``.
    - ``ncc_train_accuracy``: nearest-class-mean accuracy among the ``K'`` class means;
      ``nc4_agreement`` (with ``predictions``): fraction of samples whose model prediction
      (``argmax`` over all ``K`` logits, so a prediction outside ``P`` counts as disagreement)
      equals the NCC prediction.
    - ``ncc_test_accuracy`` (with test features): over test samples whose target is in ``P``
      (``ncc_test_coverage``: their fraction).

    Args:
        features: ``(N, d)`` penultimate features.
        targets: ``(N,)`` next-word class ids in ``[0, K)``.
        weights: ``(K, d)`` head rows (``Head.classifier_weights()``).
        predictions: ``(N,)`` the model's predicted class ids in ``[0, K)``, for NC4 (optional).
        test_features: ``(M, d)`` test features (optional).
        test_targets: ``(M,)`` their class ids.
        max_memory_mib: Memory budget of the solvers.

    Returns:
        ``(metrics, distances)``: a JSON-friendly dict and the ``(K,)`` float64 one-vs-rest
        distances ``D_k`` of all rows.

    Raises:
        ValueError: If fewer than 2 classes occur in ``targets``, shapes disagree or labels are
            outside ``[0, K)``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        >>> h = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
        >>> m, D = subsample_gnc_metrics(h, torch.tensor([0, 0, 2]), W)
        >>> m["metric_classes"], m["gnc1"], m["gnc3"], m["gnc2"], m["gnc2_present"]
        (2, 0.0, 0.0, 1.0, 2.0)
    """
    from gnc.geometry import one_vs_rest_distances
    from gnc.metrics import GNCAccumulator, ncc_predict
    from gnc.metrics import gnc1 as gnc1_fn
    from gnc.metrics import gnc2 as gnc2_fn
    from gnc.metrics import gnc3 as gnc3_fn

    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True).detach()
    K, d = int(W.shape[0]), int(W.shape[1])
    features = check_matrix("features", features, cols=d).detach()
    y = check_labels("targets", targets, num_samples=int(features.shape[0]), num_classes=K)
    y = y.to(features.device)
    if predictions is not None:
        predictions = check_labels(
            "predictions", predictions, num_samples=int(features.shape[0]), num_classes=K
        )
    if test_features is not None or test_targets is not None:
        if test_features is None or test_targets is None:
            raise ValueError("Expected both `test_features` and `test_targets`, but got one.")
        test_features = check_matrix("test_features", test_features, min_rows=0, cols=d)
        test_targets = check_labels(
            "test_targets", test_targets, num_samples=int(test_features.shape[0]), num_classes=K
        )
    present = torch.unique(y)  # sorted
    Kp = int(present.numel())
    if Kp < 2:
        raise ValueError(f"Expected at least 2 distinct targets in the subsample, but got {Kp}.")
    W = W.to(torch.float64)
    local = torch.searchsorted(present, y)
    acc = GNCAccumulator(Kp, d, normalize=True, device=features.device)
    acc.update(features, local)
    stats = acc.statistics()
    Wp = W[present.to(W.device)]
    ovr = one_vs_rest_distances(W, normalize=True, max_memory_mib=max_memory_mib)
    distances = ovr.distances.to(torch.float64)
    out: dict[str, Any] = {
        "metric_samples": int(y.numel()),
        "metric_classes": Kp,
        "gnc1": gnc1_fn(stats),
        "nc1_trace_ratio": _trace_ratio(stats),
        "gnc2": float(ovr.rho),
        "gnc2_median_distance": float(distances.median()),
        "gnc2_argmin": int(ovr.argmin),
        "gnc2_certified": bool(ovr.certified),
        "gnc2_present": gnc2_fn(Wp, max_memory_mib=max_memory_mib),
        "gnc3": gnc3_fn(stats, Wp),
    }
    means = stats.means
    pred = ncc_predict(features, means, max_memory_mib=max_memory_mib)
    out["ncc_train_accuracy"] = float((pred == local.to(pred.device)).double().mean())
    out["nc4_agreement"] = None
    if predictions is not None:
        model_pred = predictions.to(device=pred.device, dtype=torch.long)
        agree = present.to(pred.device)[pred] == model_pred
        out["nc4_agreement"] = float(agree.double().mean())
    out["ncc_test_accuracy"] = None
    out["ncc_test_coverage"] = None
    if test_features is not None and test_targets is not None:
        ty = test_targets.to(device=present.device, dtype=torch.long)
        idx = torch.searchsorted(present, ty).clamp_max(Kp - 1)
        keep = present[idx] == ty
        out["ncc_test_coverage"] = float(keep.to(torch.float64).mean()) if ty.numel() else 0.0
        if bool(keep.any()):
            tpred = ncc_predict(test_features[keep.to(test_features.device)], means)
            hit = tpred == idx[keep].to(tpred.device)
            out["ncc_test_accuracy"] = float(hit.double().mean())
    return out, distances


def _trace_ratio(stats: Any) -> float:
    """``tr(Sigma_W) / tr(Sigma_B)`` with ``Sigma_W = scatter / N``, ``Sigma_B = M^T M / K``."""
    within = float(stats.within_scatter.trace()) / stats.num_samples
    M = stats.centred_means
    between = float((M * M).sum()) / stats.num_classes
    return within / between if between > 0 else float("inf")


def reduced_code_value(
    num_classes: int,
    feature_dim: int,
    reduced_dim: int,
    *,
    time_limit: float = 30.0,
    seed: int = 0,
) -> dict[str, Any]:
    """``rho`` of a softmax code for a *reduced* problem with the same ratio ``K / d``.

    A softmax code for ``(K, d) = (2048, 32)`` is out of reach on a CPU budget; this solves
    ``(round(K * d_r / d), d_r)`` with :func:`gnc.codes.softmax_code` instead. It is a
    reference for the scale of ``rho`` at that ratio, *not* the code value of ``(K, d)``.

    Returns:
        ``{"classes", "dim", "rho", "method", "seconds"}``.
    """
    from gnc.codes import softmax_code

    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    dr = check_int("reduced_dim", reduced_dim, minimum=2)
    Kr = max(2, round(K * dr / d))
    t0 = time.time()
    res = softmax_code(Kr, dr, seed=seed, time_limit=check_positive("time_limit", time_limit))
    return {
        "classes": Kr,
        "dim": dr,
        "rho": float(res.rho),
        "method": str(getattr(res, "method", "")),
        "seconds": time.time() - t0,
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LMResult:
    """What :func:`train_lm` produced.

    Attributes:
        config: The run.
        history: One metrics dict per epoch, epoch 0 (before training) first (as in
            ``metrics.jsonl``; ``train_loss`` and ``train_batch_accuracy`` are ``None`` there).
        final: The last epoch's metrics.
        corpus: Name of the text.
        num_train_tokens: Training tokens (positions are ``num_train_tokens - context``).
        num_test_tokens: Held-out tokens.
        unk_rate_train: Fraction of training tokens mapped to ``<unk>``.
        unk_rate_test: Same for the test tokens.
        rho_upper_bound: :func:`gnc.geometry.bounds.rho_upper_bound` for ``(K, d)``.
        distance_by_frequency: Final ``D_k`` summarized over frequency-rank quartiles of the
            vocabulary (``<unk>`` excluded): ``{"ranks", "median", "min", "words_at_min"}``.
        argmin_word: The word whose row attains the final ``rho``.
        out_dir: Run folder, if any.
        seconds: Wall time.
        model: The trained model (not compared, not shown).
    """

    config: LMConfig
    history: tuple[dict[str, Any], ...]
    final: dict[str, Any]
    corpus: str
    num_train_tokens: int
    num_test_tokens: int
    unk_rate_train: float
    unk_rate_test: float
    rho_upper_bound: float | None
    distance_by_frequency: tuple[dict[str, Any], ...]
    argmin_word: str
    out_dir: str | None
    seconds: float
    model: Classifier = dataclasses.field(repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (everything but the model and the history)."""
        return {
            "label": self.config.label,
            "config": self.config.to_dict(),
            "final": self.final,
            "corpus": self.corpus,
            "num_train_tokens": self.num_train_tokens,
            "num_test_tokens": self.num_test_tokens,
            "unk_rate_train": self.unk_rate_train,
            "unk_rate_test": self.unk_rate_test,
            "rho_upper_bound": self.rho_upper_bound,
            "distance_by_frequency": list(self.distance_by_frequency),
            "argmin_word": self.argmin_word,
            "seconds": self.seconds,
        }


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Expected a torch device, but got {name!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Expected an available device, but got {name!r} without CUDA.")
    return device


def _generator(seed: int, *parts: int) -> torch.Generator:
    value = seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**62)
    return torch.Generator().manual_seed(value)


@torch.no_grad()
def _forward(
    model: Classifier, ids: torch.Tensor, positions: torch.Tensor, context: int, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, predictions, targets and per-sample CE of the pairs at ``positions`` (eval mode).

    Logits are reduced per batch: an ``(N, K)`` matrix is never kept.
    """
    model.eval()
    feats, preds, targets, losses = [], [], [], []
    for start in range(0, positions.numel(), batch):
        x, y = context_windows(ids, context, positions[start : start + batch])
        h, z = model(x)
        feats.append(h.float())
        preds.append(z.argmax(1))
        targets.append(y)
        losses.append(F.cross_entropy(z.float(), y, reduction="none").double())
    return torch.cat(feats), torch.cat(preds), torch.cat(targets), torch.cat(losses)


def _raw_weight_norm_mean(head: nn.Module) -> float:
    """Mean row norm of the head's parameter ``weight`` (before any normalization)."""
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor):  # pragma: no cover - every head here has one
        return float("nan")
    return float(torch.linalg.vector_norm(weight.detach(), dim=1).mean())


def _distance_by_frequency(
    distances: torch.Tensor, vocab: Vocabulary, groups: int = 4
) -> tuple[dict[str, Any], ...]:
    """Median / min ``D_k`` per frequency-rank group of the kept words (class ids 1..K-1)."""
    D = distances.detach().cpu()
    K = vocab.num_classes
    edges = np.linspace(1, K, groups + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(edges.tolist()):
        if b <= a:
            continue
        part = D[a:b]
        k = int(part.argmin()) + int(a)
        out.append(
            {
                "ranks": [int(a), int(b) - 1],
                "median": float(part.median()),
                "min": float(part.min()),
                "word_at_min": vocab.words[k],
            }
        )
    return tuple(out)


def train_lm(
    config: LMConfig,
    data: LMData | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> LMResult:
    """Train a tiny next-word model and measure GNC after every epoch.

    Args:
        config: The run.
        data: Encoded corpus (default: :func:`prepare_lm_data` of ``config.corpus``). Its
            vocabulary must have ``config.num_classes`` classes.
        out_dir: Folder for ``config.json``, ``metrics.jsonl``, ``history.json``,
            ``results.json`` and ``plots/`` (atomic writes); ``None`` keeps everything in memory.
        progress: Show a progress bar per epoch on stderr.

    Returns:
        An :class:`LMResult`.

    Raises:
        ValueError: If ``data`` does not match the configuration, the text is too short for
            ``context``, or training diverges.

    Example:
        >>> text = " ".join("abcdef"[i % 6] for i in range(300))
        >>> data = prepare_lm_data(text, 7, test_fraction=0.2)
        >>> cfg = LMConfig(num_classes=7, context=2, embedding_dim=4, hidden_dim=16,
        ...     feature_dim=3, epochs=2, batch_size=16, lr=1e-2, metric_samples=50, device="cpu")
        >>> res = train_lm(cfg, data, progress=False)
        >>> [row["epoch"] for row in res.history], res.final["metric_classes"]
        ([0, 1, 2], 6)
    """
    started = time.time()
    if data is None:
        text = load_corpus(config.corpus, max_chars=config.max_chars)
        data = prepare_lm_data(
            text, config.num_classes, test_fraction=config.test_fraction, name=config.corpus
        )
    if not isinstance(data, LMData):
        raise TypeError(f"Expected `data` to be an LMData, but got {type(data).__name__}.")
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"Expected `data` with {config.num_classes} classes (config.num_classes), but got "
            f"{data.num_classes}."
        )
    c = config.context
    for name, ids in (("train", data.train_ids), ("test", data.test_ids)):
        if ids.shape[0] <= c:
            raise ValueError(
                f"Expected more than context = {c} {name} tokens, but got {ids.shape[0]}."
            )
    device = _resolve_device(config.device)
    deterministic = device.type == "cpu"
    previous = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train_lm(config, data, out_dir, progress, device, started)
    finally:
        if deterministic:
            torch.use_deterministic_algorithms(previous)


def _train_lm(
    config: LMConfig,
    data: LMData,
    out_dir: str | Path | None,
    progress: bool,
    device: torch.device,
    started: float,
) -> LMResult:
    from gnc.geometry.bounds import rho_upper_bound

    K, d, c = config.num_classes, config.feature_dim, config.context
    out = None if out_dir is None else Path(out_dir)
    train_ids = torch.from_numpy(data.train_ids).to(device)
    test_ids = torch.from_numpy(data.test_ids).to(device)
    n_train, n_test = int(train_ids.numel()), int(test_ids.numel())

    metric_pos = sample_positions(
        n_train, c, config.metric_samples, generator=_generator(config.seed)
    )
    test_pos = sample_positions(
        n_test, c, config.test_positions, generator=_generator(config.seed, -1)
    )
    ncc_test = torch.randperm(test_pos.numel(), generator=_generator(config.seed, -2))
    ncc_test = ncc_test[: config.metric_samples].sort().values.to(device)
    per_epoch = min(config.train_positions or n_train, n_train - c)
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)

    torch.manual_seed(config.seed)
    model = build_lm_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    try:
        upper: float | None = float(rho_upper_bound(K, d))
    except (ValueError, NotImplementedError):  # pragma: no cover - bound not available
        upper = None

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", dump_json(config.to_dict()) + "\n")
        atomic_write_text(out / "metrics.jsonl", "")

    history: list[dict[str, Any]] = []
    distances = torch.zeros(K, dtype=torch.float64)

    def evaluate(
        epoch: int, train_loss: float | None, batch_accuracy: float | None, seconds: float
    ) -> None:
        """Append the metrics row of ``epoch`` (0: the untrained model) to ``history``."""
        nonlocal distances
        t1 = time.time()
        eval_batch = max(config.batch_size, 1024)
        h_tr, p_tr, y_tr, l_tr = _forward(model, train_ids, metric_pos, c, eval_batch)
        h_te, p_te, y_te, l_te = _forward(model, test_ids, test_pos, c, eval_batch)
        gnc, distances = subsample_gnc_metrics(
            h_tr,
            y_tr,
            model.head.classifier_weights(),
            predictions=p_tr,
            test_features=h_te[ncc_test],
            test_targets=y_te[ncc_test],
            max_memory_mib=config.max_memory_mib,
        )
        test_loss = float(l_te.mean())
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_batch_accuracy": batch_accuracy,
            "train_eval_loss": float(l_tr.mean()),
            "train_accuracy": float((p_tr == y_tr).double().mean()),
            "test_loss": test_loss,
            "test_accuracy": float((p_te == y_te).double().mean()),
            "test_perplexity": math.exp(min(test_loss, 700.0)),
            "feature_norm_mean": float(torch.linalg.vector_norm(h_tr, dim=1).mean()),
            "weight_norm_mean": _raw_weight_norm_mean(model.head),
            **gnc,
            "gnc2_upper_bound": upper,
            "seconds": seconds,
        }
        row["eval_seconds"] = time.time() - t1
        history.append(row)
        if progress:
            tqdm.write(
                f"lm {config.label} epoch {epoch}: test ppl {row['test_perplexity']:.1f} "
                f"acc {row['test_accuracy']:.3f} GNC1 {row['gnc1']:.3g} GNC2 {row['gnc2']:.4f} "
                f"(median D {row['gnc2_median_distance']:.4f}) GNC3 {row['gnc3']:.3g}",
                file=sys.stderr,
            )

    evaluate(0, None, None, 0.0)
    for epoch in range(1, config.epochs + 1):
        t0 = time.time()
        model.train()
        gen = _generator(config.seed, epoch)
        perm = torch.randperm(n_train - c, generator=gen)[:per_epoch] + c
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"lm {config.label} epoch {epoch}/{config.epochs}",
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )
        for step in bar:
            batch = perm[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = context_windows(train_ids, c, batch)
            _, logits = model(x, y)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach().double() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum().double()
            if step % 100 == 0 and progress:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
        train_loss = float(loss_sum) / per_epoch
        if not math.isfinite(train_loss):
            raise ValueError(f"Training diverged at epoch {epoch} (non-finite loss); lower `lr`.")
        train_seconds = time.time() - t0

        evaluate(epoch, train_loss, float(correct) / per_epoch, train_seconds)
        if out is not None:
            lines = "".join(dump_json(h, indent=None) + "\n" for h in history)
            atomic_write_text(out / "metrics.jsonl", lines)

    vocab = data.vocabulary
    result = LMResult(
        config=config,
        history=tuple(history),
        final=history[-1],
        corpus=data.name,
        num_train_tokens=n_train,
        num_test_tokens=n_test,
        unk_rate_train=float((data.train_ids == 0).mean()),
        unk_rate_test=float((data.test_ids == 0).mean()),
        rho_upper_bound=upper,
        distance_by_frequency=_distance_by_frequency(distances, vocab),
        argmin_word=vocab.words[int(history[-1]["gnc2_argmin"])],
        out_dir=None if out is None else str(out),
        seconds=time.time() - started,
        model=model,
    )
    if out is not None:
        _write_outputs(out, result, distances, vocab)
    return result


def _write_outputs(out: Path, result: LMResult, distances: torch.Tensor, vocab: Vocabulary) -> None:
    from gnc.report.plots_train import plot_metric, save_training_plots

    history = list(result.history)
    atomic_write_text(out / "history.json", dump_json(history) + "\n")
    summary = result.summary()
    summary["metadata"] = run_metadata(result.config.seed, time.time() - result.seconds)
    summary["top_words"] = list(vocab.words[:50])
    atomic_write_text(out / "results.json", dump_json(summary) + "\n")
    atomic_save_npz(
        out / "head.npz",
        distances=distances.cpu().numpy(),
        counts=np.asarray(vocab.counts, dtype=np.int64),
        weights=result.model.head.classifier_weights().cpu().numpy(),
    )
    plots = out / "plots"
    save_training_plots(history, plots)
    fig, _ = plot_metric(history, "test_perplexity", log=True, title="test perplexity")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    atomic_write_bytes(plots / "perplexity.png", png.getvalue())
