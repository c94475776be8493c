"""A Lightning callback that measures GNC / NC of the features a model trains on, per epoch.

:class:`GNCCallback` hooks the input of the classifier (the last ``nn.Linear`` of the
LightningModule, or a module you name), streams the features of every training batch of a
measured epoch into a :class:`gnc.integrations.torchmetrics.GNCMetric` (float64 sums, synced by
torchmetrics under DDP), and at the end of the epoch logs through ``pl_module.log``:

- ``{prefix}gnc1``, ``{prefix}nc1_cdnv``, ``{prefix}gnc2_class_means`` (exact ``rho`` of the
  centred class means), and with the classifier's weights ``{prefix}gnc2`` (exact ``rho`` of its
  normalized rows) and ``{prefix}gnc3``;
- ``{prefix}ncc_val_accuracy`` when validation runs after the epoch's training batches: the
  nearest-class-mean accuracy of the validation features against the class means of that
  epoch's training features (the paper's NCC test accuracy);
- ``{prefix}ncc_train_accuracy`` and ``{prefix}nc4_agreement`` with ``second_pass=True``: the
  training data run once more without gradients at the end of the epoch, as
  :func:`gnc.metrics.measure_model` does.

The features are those of the training step itself (the weights move during the epoch, and
dropout or batch norm act in training mode); with a frozen model the logged values equal
:func:`gnc.metrics.measure_model` on the same batches. The full records are kept in
:attr:`GNCCallback.history`.

Requires the optional extra ``gnc[lightning]``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gnc._checks import check_int

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "gnc.integrations.lightning needs the package `lightning`; install the extra with "
        "`pip install 'gnc[lightning]'`."
    ) from None

from gnc.integrations.torchmetrics import GNCMetric
from gnc.metrics import GNCMetrics, NCCAccumulator, capture_features, find_classifier

__all__ = ["GNCCallback", "GNCCallbackWarning"]

LabelFn = Callable[[Any], torch.Tensor]

#: Fields of :class:`gnc.metrics.GNCMetrics` logged when computed (not ``None``).
LOGGED: tuple[str, ...] = (
    "gnc1",
    "gnc2",
    "gnc3",
    "gnc2_class_means",
    "nc1_cdnv",
    "ncc_train_accuracy",
    "nc4_agreement",
)


class GNCCallbackWarning(UserWarning):
    """An epoch could not be measured (e.g. a class had no training sample)."""


def batch_labels(batch: Any) -> torch.Tensor:
    """Labels of a batch.

    The second item of a sequence, or the ``labels``/``label``/``y``/``targets``/``target``
    entry of a mapping.

    Raises:
        ValueError: If the batch has no labels.

    Example:
        >>> batch_labels((torch.zeros(2, 3), torch.tensor([1, 0]))).tolist()
        [1, 0]
    """
    found: Any = None
    if isinstance(batch, Mapping):
        for key in ("labels", "label", "y", "targets", "target"):
            if key in batch:
                found = batch[key]
                break
    elif isinstance(batch, Sequence) and not isinstance(batch, str | bytes) and len(batch) >= 2:
        found = batch[1]
    if not isinstance(found, torch.Tensor):
        raise ValueError(
            "Expected batches (inputs, labels, ...) or mappings with a 'labels' key, but got "
            f"{type(batch).__name__}; pass `label_fn`."
        )
    return found


class GNCCallback(Callback):  # type: ignore[misc]
    """Log GNC1/2/3, CDNV and NCC of the classifier's input features every ``n`` epochs.

    Args:
        num_classes: ``K``.
        feature_dim: ``d``; default: ``in_features`` of the classifier (an ``nn.Linear``).
        layer: The classifier: a name in ``pl_module.named_modules()`` or a module; default:
            the last ``nn.Linear``. Its input (2-D, or ``(..., d)`` with labels of shape
            ``(...)``) is the feature.
        every_n_epochs: Measure epochs ``n - 1, 2n - 1, ...`` (0-based).
        weights: ``"auto"`` (the classifier's ``weight`` when it is ``K x d``), a ``(K, d)``
            tensor, or ``None`` (no GNC2/GNC3).
        second_pass: Also run the training data again without gradients at the end of a
            measured epoch for the NCC training accuracy and NC4 (costs one forward pass).
        normalize: L2-normalize features (the paper's convention).
        class_means_rho: Also compute the exact ``rho`` of the centred class means.
        label_fn: ``batch -> labels``; default :func:`batch_labels`.
        prefix: Prefix of the logged names.

    Negative labels (e.g. ``-100`` padding) are skipped. An epoch in which a class has no
    training sample is not logged (:class:`GNCCallbackWarning`).

    Example:
        >>> cb = GNCCallback(num_classes=10, every_n_epochs=5)
        >>> cb.every_n_epochs, cb.history
        (5, [])
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int | None = None,
        layer: str | nn.Module | None = None,
        every_n_epochs: int = 1,
        *,
        weights: torch.Tensor | str | None = "auto",
        second_pass: bool = False,
        normalize: bool = True,
        class_means_rho: bool = True,
        label_fn: LabelFn | None = None,
        prefix: str = "gnc/",
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.feature_dim = (
            None if feature_dim is None else check_int("feature_dim", feature_dim, minimum=1)
        )
        self.layer = layer
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, minimum=1)
        if isinstance(weights, str) and weights != "auto":
            raise ValueError(
                f"Expected `weights` to be a tensor, 'auto' or None, but got {weights!r}."
            )
        self.weights = weights
        self.second_pass = bool(second_pass)
        self.normalize = bool(normalize)
        self.class_means_rho = bool(class_means_rho)
        self.label_fn = label_fn or batch_labels
        self.prefix = str(prefix)
        #: ``(epoch, GNCMetrics)`` per measured epoch (float64 values, NCC fields filled in).
        self.history: list[tuple[int, GNCMetrics]] = []
        self._classifier: nn.Module | None = None
        self._metric: GNCMetric | None = None
        self._captured: list[torch.Tensor] = []
        self._handle: Any = None
        self._ncc: NCCAccumulator | None = None
        self._train_batches = 0

    # ------------------------------------------------------------------ set-up
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Resolve the classifier and allocate the metric on the module's device."""
        clf = find_classifier(pl_module, self.layer)
        d = self.feature_dim
        if d is None:
            if not isinstance(clf, nn.Linear):
                raise ValueError(
                    "Expected `feature_dim` when the classifier is not an nn.Linear, but the "
                    f"classifier is {type(clf).__name__}."
                )
            d = int(clf.in_features)
        self.feature_dim = d
        self._classifier = clf
        self._metric = GNCMetric(
            self.num_classes,
            d,
            normalize=self.normalize,
            class_means_rho=self.class_means_rho,
        ).to(pl_module.device)

    def _measured(self, trainer: Any) -> bool:
        return (int(trainer.current_epoch) + 1) % self.every_n_epochs == 0

    def _hook(self) -> None:
        def grab(_module: nn.Module, inputs: tuple[Any, ...], _output: Any) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor):
                self._captured.append(inputs[0].detach())

        if self._handle is None and self._classifier is not None:
            self._handle = self._classifier.register_forward_hook(grab)

    def _unhook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._captured.clear()

    def _features_and_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._captured:
            raise ValueError(
                "Expected the classifier to run in the step, but its forward hook never fired; "
                "name it with `layer`."
            )
        feats = self._captured[-1]
        self._captured.clear()
        labels = self.label_fn(batch).to(feats.device)
        if feats.ndim > 2 and tuple(feats.shape[:-1]) == tuple(labels.shape):
            feats, labels = feats.reshape(-1, feats.shape[-1]), labels.reshape(-1)
        if feats.ndim != 2 or labels.shape != feats.shape[:1]:
            raise ValueError(
                f"Expected classifier inputs (B, {self.feature_dim}) with labels (B,), but got "
                f"{tuple(feats.shape)} and {tuple(labels.shape)}."
            )
        keep = labels >= 0
        return feats[keep], labels[keep]

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Reset the metric and hook the classifier on measured epochs."""
        self._train_batches = 0
        self._ncc = None
        if self._metric is not None and self._measured(trainer):
            self._metric = self._metric.to(pl_module.device)
            self._metric.reset()
            self._hook()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        """Forget features of forward passes outside the step."""
        self._captured.clear()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Add this step's features to the metric."""
        if self._handle is None or self._metric is None:
            return
        feats, labels = self._features_and_labels(batch)
        self._metric.update(feats, labels)
        self._train_batches += 1

    # ------------------------------------------------------------------ validation
    def _train_done(self, trainer: Any) -> bool:
        return 0 < self._train_batches >= float(trainer.num_training_batches)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """After a measured epoch's training batches: score validation features by NCC."""
        if trainer.sanity_checking or self._handle is None or self._metric is None:
            return
        if not self._train_done(trainer):
            return  # mid-epoch validation: the class means are not final yet
        try:
            means = self._metric.statistics().means
        except ValueError:
            return  # reported at the end of the epoch
        self._ncc = NCCAccumulator(means, normalize=self.normalize)

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Forget features of forward passes outside the step."""
        self._captured.clear()

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Score this validation step's features against the training class means."""
        if self._ncc is None or self._handle is None:
            return
        feats, labels = self._features_and_labels(batch)
        self._ncc.update(feats, labels)

    # ------------------------------------------------------------------ epoch end
    def _weights(self) -> torch.Tensor | None:
        if isinstance(self.weights, torch.Tensor):
            return self.weights
        if self.weights is None:
            return None
        w = getattr(self._classifier, "weight", None)
        if isinstance(w, torch.Tensor) and tuple(w.shape) == (self.num_classes, self.feature_dim):
            return w.detach()
        return None

    def _second_pass(self, trainer: Any, pl_module: Any, means: torch.Tensor) -> dict[str, Any]:
        ncc = NCCAccumulator(means, normalize=self.normalize)
        for b in capture_features(
            pl_module, trainer.train_dataloader, module=self._classifier, progress=False
        ):
            logits = b.logits
            if logits is not None and logits.shape[1] != self.num_classes:
                logits = None
            if b.labels is None:
                raise ValueError(
                    "Expected training batches (inputs, labels, ...) or with a 'labels' key for "
                    "`second_pass`, but got none."
                )
            keep = b.labels >= 0
            ncc.update(b.features[keep], b.labels[keep], None if logits is None else logits[keep])
        ncc.sync()
        result = ncc.compute()
        return {
            "ncc_train_accuracy": result.ncc_accuracy,
            "nc4_agreement": result.nc4_agreement,
        }

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Compute the epoch's metrics and log them with ``pl_module.log``."""
        if self._handle is None or self._metric is None:
            return
        self._unhook()
        try:
            metrics = self._metric.compute(self._weights())
            means = self._metric.statistics().means
        except ValueError as err:
            warnings.warn(
                f"GNC of epoch {trainer.current_epoch} not logged: {err}",
                GNCCallbackWarning,
                stacklevel=2,
            )
            return
        updates: dict[str, Any] = {}
        if self._ncc is not None:
            self._ncc.sync()
            updates["ncc_test_accuracy"] = self._ncc.compute().ncc_accuracy
            self._ncc = None
        if self.second_pass:
            updates.update(self._second_pass(trainer, pl_module, means))
        metrics = dataclasses.replace(metrics, **updates)
        self.history.append((int(trainer.current_epoch), metrics))
        values = {name: getattr(metrics, name) for name in LOGGED}
        values["ncc_val_accuracy"] = metrics.ncc_test_accuracy
        for name, value in values.items():
            if value is not None:
                pl_module.log(f"{self.prefix}{name}", float(value), on_step=False, on_epoch=True)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Remove the hook."""
        self._unhook()
