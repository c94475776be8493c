"""Result records of a training run: the metrics of one evaluation, one epoch, the whole run.

:class:`EvalMetrics` is what :func:`gnc.train.evaluate` measures on the train and test sets;
:class:`EpochRecord` adds the epoch, the learning rate, the running training loss, the relation
of GNC2 to the softmax code and the timings; a run's history is a tuple of them. Their
:meth:`~EpochRecord.to_dict` rows are the lines of ``metrics.jsonl`` (same keys as before the
records existed, so a run can be resumed from its files) and :meth:`EpochRecord.from_dict`
reads them back. A value that was not measured is ``None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gnc.train.config import TrainConfig, config_to_dict

__all__ = ["EpochRecord", "EvalMetrics", "TrainResult"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalMetrics:
    """Accuracy, loss and GNC / NC metrics of a model on its train and test sets.

    GNC and NC metrics are those of :class:`gnc.metrics.GNCMetrics` on the (un-augmented,
    L2-normalized) training features; ``ncc_*`` and ``nc4_agreement*`` come from
    :class:`gnc.metrics.NCCAccumulator` with the training class means.

    Attributes:
        train_eval_loss: Mean cross-entropy on the training set in eval mode.
        train_accuracy: Top-1 accuracy on the training set.
        test_loss: Mean cross-entropy on the test set.
        test_accuracy: Top-1 accuracy on the test set.
        ncc_train_accuracy: Nearest-class-mean accuracy on the training set.
        ncc_test_accuracy: Nearest-class-mean accuracy on the test set.
        nc4_agreement_test: Fraction of test samples where the model agrees with the NCC.
        gnc1: ``tr(Sigma_W Sigma_B^+) / K``.
        gnc2: Exact ``rho`` of the head's normalized rows.
        gnc2_gap: Certified gap of ``gnc2``.
        gnc2_class_means: ``rho`` of the normalized centred class means (``None``: not computed).
        gnc3: ``mean_k (1 - cos(w_k, hbar_k - h_G))``.
        nc1_cdnv: Class-distance-normalized variance.
        nc2_etf_error: Distance of the centred means' Gram to the simplex-ETF Gram.
        nc2_equinorm: Coefficient of variation of the centred means' norms.
        nc2_etf_error_weights: ``nc2_etf_error`` of the head rows.
        nc2_equinorm_weights: ``nc2_equinorm`` of the head rows.
        nc3_self_duality: ``|W/|W|_F - M/|M|_F|_F^2``.
        nc4_agreement: Fraction of training samples where the model agrees with the NCC.
        hyperspherical_uniformity: Log-kernel energy of the normalized centred means.
        gnc2_upper_bound: Upper bound on the best possible ``rho*(K, d)`` (``None``: none known).
        gnc2_relative_to_upper_bound: ``gnc2 / gnc2_upper_bound``.
        gnc2_code_value: Known ``rho*(K, d)`` (closed forms only).
        gnc2_relative_to_code_value: ``gnc2 / gnc2_code_value``.
    """

    train_eval_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    ncc_train_accuracy: float | None
    ncc_test_accuracy: float | None
    nc4_agreement_test: float | None
    gnc1: float
    gnc2: float | None
    gnc2_gap: float | None
    gnc2_class_means: float | None
    gnc3: float | None
    nc1_cdnv: float
    nc2_etf_error: float
    nc2_equinorm: float
    nc2_etf_error_weights: float | None
    nc2_equinorm_weights: float | None
    nc3_self_duality: float | None
    nc4_agreement: float | None
    hyperspherical_uniformity: float
    gnc2_upper_bound: float | None
    gnc2_relative_to_upper_bound: float | None
    gnc2_code_value: float | None
    gnc2_relative_to_code_value: float | None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (floats, ints, ``None``), in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalMetrics)}


_TRAIN_KEYS = ("epoch", "lr", "train_loss", "train_batch_accuracy")
_CODE_KEYS = ("gnc2_softmax_code", "gnc2_relative_to_softmax_code")
_TIME_KEYS = ("seconds", "eval_seconds")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EpochRecord(EvalMetrics):
    """One evaluated epoch of a training run: :class:`EvalMetrics` plus the training side.

    Attributes:
        epoch: Completed epochs (0: the untrained model, with ``eval_initial``).
        lr: Learning rate after the epoch.
        train_loss: Mean training loss over the epoch's batches (``None`` at epoch 0).
        train_batch_accuracy: Accuracy on the training batches as they were seen (``None`` at
            epoch 0).
        gnc2_softmax_code: ``rho`` of the softmax code for ``(K, d)`` (``None``: not solved).
        gnc2_relative_to_softmax_code: ``gnc2 / gnc2_softmax_code`` (``None`` without a code).
        seconds: Wall time of the epoch's training steps (0 at epoch 0).
        eval_seconds: Wall time of the evaluation.

    Example:
        >>> row = EpochRecord.from_dict({"epoch": 0, "lr": 0.1, "train_eval_loss": 2.0,
        ...     "train_accuracy": 0.5, "test_loss": 2.1, "test_accuracy": 0.4, "gnc1": 0.3,
        ...     "nc1_cdnv": 1.0, "nc2_etf_error": 0.2, "nc2_equinorm": 0.1,
        ...     "hyperspherical_uniformity": -1.0, "seconds": 0.0, "eval_seconds": 0.1})
        >>> row.test_accuracy, row.train_loss, row.to_dict()["epoch"]
        (0.4, None, 0)
    """

    epoch: int
    lr: float
    train_loss: float | None = None
    train_batch_accuracy: float | None = None
    gnc2_softmax_code: float | None = None
    gnc2_relative_to_softmax_code: float | None = None
    seconds: float
    eval_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A ``metrics.jsonl`` row: training keys, evaluation metrics, code, timings."""
        row = {key: getattr(self, key) for key in _TRAIN_KEYS}
        row.update(super().to_dict())
        row.update({key: getattr(self, key) for key in _CODE_KEYS + _TIME_KEYS})
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> EpochRecord:
        """Read a :meth:`to_dict` row back (keys missing from older rows become ``None``).

        Raises:
            KeyError: When a required key (e.g. ``epoch``) is missing.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {key: row[key] for key in known if key in row}
        for name, field in known.items():
            if name not in values and field.default is dataclasses.MISSING:
                if name in _TRAIN_KEYS or name in _TIME_KEYS:
                    raise KeyError(name)
                values[name] = None
        return cls(**values)

    @classmethod
    def from_eval(
        cls,
        metrics: EvalMetrics,
        *,
        epoch: int,
        lr: float,
        code_value: float | None,
        seconds: float,
        eval_seconds: float,
        train_loss: float | None = None,
        train_batch_accuracy: float | None = None,
    ) -> EpochRecord:
        """The record of an epoch from its evaluation and the training side.

        ``gnc2_relative_to_softmax_code`` is ``gnc2 / code_value`` when a (nonzero) code value
        is known.
        """
        relative = (metrics.gnc2 or 0.0) / code_value if code_value else None
        return cls(
            **{f.name: getattr(metrics, f.name) for f in dataclasses.fields(EvalMetrics)},
            epoch=epoch,
            lr=lr,
            train_loss=train_loss,
            train_batch_accuracy=train_batch_accuracy,
            gnc2_softmax_code=code_value,
            gnc2_relative_to_softmax_code=relative,
            seconds=seconds,
            eval_seconds=eval_seconds,
        )


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        config: The configuration that ran.
        history: One :class:`EpochRecord` per evaluated epoch (the lines of ``metrics.jsonl``).
        final: The last evaluated epoch (``None`` if no epoch was evaluated).
        code_value: ``rho`` of the softmax code for ``(K, d)`` (GNC2's reference), if solved.
        out_dir: The run folder, if any.
        resumed_from_epoch: Completed epochs restored from a checkpoint (0 for a fresh run).
        epochs_completed: Epochs completed when the function returned.
        seconds: Wall time of this call.
    """

    config: TrainConfig
    history: tuple[EpochRecord, ...]
    final: EpochRecord | None
    code_value: float | None
    out_dir: str | None
    resumed_from_epoch: int
    epochs_completed: int
    seconds: float

    @property
    def finished(self) -> bool:
        """Whether all ``config.optim.epochs`` epochs are done."""
        return self.epochs_completed == self.config.optim.epochs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the config as a nested dict, the history and final epoch as rows."""
        return {
            "config": config_to_dict(self.config),
            "history": [row.to_dict() for row in self.history],
            "final": None if self.final is None else self.final.to_dict(),
            "code_value": self.code_value,
            "out_dir": self.out_dir,
            "resumed_from_epoch": self.resumed_from_epoch,
            "epochs_completed": self.epochs_completed,
            "seconds": self.seconds,
        }
