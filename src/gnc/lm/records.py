"""Result records of a language-model run: one epoch (:class:`LMEpoch`) and a run.

:meth:`LMEpoch.to_dict` rows are the lines of ``metrics.jsonl`` and the entries of
``history.json`` (same keys as before the records existed); a value not measured is ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gnc.lm.metrics import FrequencyBand, PresentClassGNC
from gnc.lm.model import LMConfig
from gnc.train import Classifier

__all__ = ["TIMING_KEYS", "LMEpoch", "LMResult"]

#: History keys that depend on wall time (excluded when comparing runs for reproducibility).
TIMING_KEYS: tuple[str, ...] = ("seconds", "eval_seconds")

_FIRST_KEYS = (
    "epoch",
    "lr",
    "train_loss",
    "train_batch_accuracy",
    "train_eval_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "test_perplexity",
    "feature_norm_mean",
    "weight_norm_mean",
)
_LAST_KEYS = ("gnc2_upper_bound", *TIMING_KEYS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMEpoch(PresentClassGNC):
    """One epoch of a language-model run: :class:`~gnc.lm.metrics.PresentClassGNC` and the rest.

    Attributes:
        epoch: Completed epochs (0: the untrained model, the baseline GNC2 is compared with).
        lr: Learning rate after the epoch.
        train_loss: Running mean training loss over the epoch (``None`` at epoch 0).
        train_batch_accuracy: Accuracy on the training batches as seen (``None`` at epoch 0).
        train_eval_loss: Loss on the metric subsample in eval mode.
        train_accuracy: Top-1 accuracy on the metric subsample.
        test_loss: Loss on the evaluated test positions.
        test_accuracy: Top-1 accuracy on them.
        test_perplexity: ``exp(test_loss)`` (the exponent capped at 700).
        feature_norm_mean: Mean feature norm on the metric subsample (before normalization).
        weight_norm_mean: Mean row norm of the head's raw ``weight`` (``None`` without one).
        gnc2_upper_bound: Upper bound on the best possible ``rho*(K, d)`` (``None``: none known).
        seconds: Wall time of the epoch's training steps (0 at epoch 0).
        eval_seconds: Wall time of the evaluation.
    """

    epoch: int
    lr: float
    train_loss: float | None
    train_batch_accuracy: float | None
    train_eval_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    test_perplexity: float
    feature_norm_mean: float
    weight_norm_mean: float | None
    gnc2_upper_bound: float | None
    seconds: float
    eval_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A ``metrics.jsonl`` row: training and test numbers, the GNC metrics, timings."""
        row = {key: getattr(self, key) for key in _FIRST_KEYS}
        row.update(super().to_dict())
        row.update({key: getattr(self, key) for key in _LAST_KEYS})
        return row


@dataclasses.dataclass(frozen=True)
class LMResult:
    """What :func:`gnc.lm.train_lm` produced.

    Attributes:
        config: The run.
        history: One :class:`LMEpoch` per epoch, epoch 0 (before training) first.
        corpus: Name of the text.
        num_train_tokens: Training tokens (positions are ``num_train_tokens - context``).
        num_test_tokens: Held-out tokens.
        unk_rate_train: Fraction of training tokens mapped to ``<unk>``.
        unk_rate_test: Same for the test tokens.
        rho_star_upper: :func:`gnc.geometry.bounds.rho_star_upper` for ``(K, d)`` (a bound on
            the best possible ``rho*(K, d)``; the name is the key of ``results.json``).
        distance_by_frequency: Final ``D_k`` over frequency-rank quartiles of the vocabulary
            (``<unk>`` excluded).
        argmin_word: The word whose row attains the final ``rho``.
        out_dir: Run folder, if any.
        seconds: Wall time.
        model: The trained model (not compared, not shown, not serialized).
    """

    config: LMConfig
    history: tuple[LMEpoch, ...]
    corpus: str
    num_train_tokens: int
    num_test_tokens: int
    unk_rate_train: float
    unk_rate_test: float
    rho_star_upper: float | None
    distance_by_frequency: tuple[FrequencyBand, ...]
    argmin_word: str
    out_dir: str | None
    seconds: float
    model: Classifier = dataclasses.field(repr=False, compare=False)

    @property
    def final(self) -> LMEpoch:
        """The last epoch."""
        return self.history[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``results.json``): everything but the model and the history."""
        return {
            "label": self.config.label,
            "config": self.config.to_dict(),
            "final": self.final.to_dict(),
            "corpus": self.corpus,
            "num_train_tokens": self.num_train_tokens,
            "num_test_tokens": self.num_test_tokens,
            "unk_rate_train": self.unk_rate_train,
            "unk_rate_test": self.unk_rate_test,
            "rho_star_upper": self.rho_star_upper,
            "distance_by_frequency": [band.to_dict() for band in self.distance_by_frequency],
            "argmin_word": self.argmin_word,
            "seconds": self.seconds,
        }
