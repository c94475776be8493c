"""The language model: its configuration (:class:`LMConfig`) and network (:class:`ContextMLP`).

:class:`ContextMLP` embeds the ``c`` context words, concatenates them and maps them through one
hidden layer to a ``d``-dimensional feature ``h`` (the last layer is linear without bias or
activation, as in :mod:`gnc.train.models`, so ``h`` can point anywhere on the sphere); the head
is :class:`~gnc.train.heads.LinearHead` or :class:`~gnc.train.heads.NormalizedHead` (cosine
logits over ``tau``), built by :func:`gnc.train.build_head` and put on the backbone in a
:class:`gnc.train.Classifier`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from gnc._checks import check_int, check_positive
from gnc.train import Classifier, HeadConfig, build_head

__all__ = ["ContextMLP", "LMConfig", "build_lm_model"]


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
        corpus: Corpus name for :func:`gnc.data.load_text` (when no data is given).
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
    """:class:`ContextMLP` + the configured head, as a :class:`~gnc.train.Classifier`.

    Example:
        >>> model = build_lm_model(LMConfig(num_classes=5, context=2, feature_dim=3))
        >>> features, logits = model(torch.zeros(4, 2, dtype=torch.long))
        >>> tuple(features.shape), tuple(logits.shape)
        ((4, 3), (4, 5))
    """
    K, d = config.num_classes, config.feature_dim
    backbone = ContextMLP(K, config.context, config.embedding_dim, config.hidden_dim, d)
    head = build_head(HeadConfig(kind=config.head, tau=config.tau), K, d)
    return Classifier(backbone, head)
