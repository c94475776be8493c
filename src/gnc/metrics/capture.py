"""Feature capture from any torch model and the measuring loop over a ``DataLoader``.

Features are the *input* of a classifier module (default: the last ``nn.Linear`` in
``model.modules()``), captured by a forward hook, and logits its output; or a user callable maps a
batch to ``(features, logits)``. Measuring runs under ``torch.no_grad`` in eval mode on any device,
optionally under ``torch.autocast`` (AMP), with a tqdm progress bar on stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from gnc._runtime import resolve_device
from gnc.metrics.accumulators import GNCAccumulator
from gnc.metrics.functional import GNCMetrics
from gnc.metrics.ncc import NCCAccumulator

__all__ = ["CapturedBatch", "capture_features", "find_classifier", "measure_model"]

FeatureFn = Callable[[Any], tuple[torch.Tensor, torch.Tensor | None]]


@dataclasses.dataclass(frozen=True)
class CapturedBatch:
    """One batch of captured features.

    Attributes:
        features: ``(B, d)`` classifier inputs (on the model's device, detached).
        logits: ``(B, K)`` classifier outputs, or ``None``.
        labels: ``(B,)`` labels from the batch, or ``None`` when the batch has none.
    """

    features: torch.Tensor
    logits: torch.Tensor | None
    labels: torch.Tensor | None


def find_classifier(model: nn.Module, module: str | nn.Module | None = None) -> nn.Module:
    """Resolve the classifier: a name in ``model.named_modules()``, a module, or the last Linear.

    Raises:
        ValueError: If the name is unknown or the model has no ``nn.Linear``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5))
        >>> find_classifier(net) is net[2], find_classifier(net, "0") is net[0]
        (True, True)
    """
    if isinstance(module, nn.Module):
        return module
    if isinstance(module, str):
        named = dict(model.named_modules())
        if module not in named:
            sample = ", ".join(repr(n) for n in list(named)[:8] if n)
            raise ValueError(
                f"Expected `module` to name a submodule of the model (e.g. {sample}), but got "
                f"{module!r}."
            )
        found: nn.Module = named[module]
        return found
    if module is not None:
        raise TypeError(
            "Expected `module` to be a name, an nn.Module or None, but got "
            f"{type(module).__name__}."
        )
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            "Expected the model to contain an nn.Linear classifier, but found none; pass `module` "
            "or `feature_fn`."
        )
    return linears[-1]


def _split_batch(batch: Any) -> tuple[Any, torch.Tensor | None]:
    """``(inputs, labels)`` from ``(x, y, ...)`` sequences or mappings with a label key."""
    if isinstance(batch, Mapping):
        for key in ("labels", "label", "targets", "target", "y"):
            if key in batch:
                return batch, batch[key]
        return batch, None
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes) and len(batch) >= 2:
        return batch[0], batch[1]
    return batch, None


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_to_device(v, device) for v in x)
    return x


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _autocast(device: torch.device, amp: bool) -> AbstractContextManager[Any]:
    return torch.autocast(device_type=device.type) if amp else nullcontext()


def capture_features(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    module: str | nn.Module | None = None,
    feature_fn: FeatureFn | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    progress: bool = False,
    description: str = "features",
) -> Iterator[CapturedBatch]:
    """Iterate over ``loader`` and yield the classifier's inputs, outputs and the batch labels.

    Batches are ``(inputs, labels, ...)`` sequences or mappings with a ``labels``/``label`` key.
    Without ``feature_fn``, ``model(inputs)`` runs with a forward hook on ``module`` that records
    its input (the features, reshaped to ``(B, d)`` only if already 2-D) and output (the logits).
    With ``feature_fn``, ``feature_fn(batch)`` (batch moved to ``device``) returns
    ``(features, logits_or_None)``. The model is put in eval mode and restored afterwards.

    Args:
        model: Any ``nn.Module``.
        loader: Iterable of batches (e.g. a ``DataLoader``).
        module: Classifier module or its name; default: the last ``nn.Linear``.
        feature_fn: Optional callable ``batch -> (features, logits)`` replacing the hook.
        device: Device to run on; default: the model's.
        amp: Run under ``torch.autocast`` on the device type.
        progress: Show a tqdm progress bar on stderr.
        description: Progress-bar label.

    Yields:
        :class:`CapturedBatch` per batch.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5))
        >>> data = [(torch.randn(8, 4), torch.randint(0, 5, (8,)))]
        >>> b = next(capture_features(net, data, progress=False))
        >>> tuple(b.features.shape), tuple(b.logits.shape), tuple(b.labels.shape)
        ((8, 3), (8, 5), (8,))
    """
    dev = resolve_device(device) if device is not None else _model_device(model)
    captured: dict[str, torch.Tensor | None] = {}
    handle = None
    if feature_fn is None:
        target = find_classifier(model, module)

        def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if not inputs or not isinstance(inputs[0], torch.Tensor):
                raise ValueError(
                    "Expected the classifier module to receive a tensor input, but got "
                    f"{type(inputs[0]).__name__ if inputs else 'nothing'}; pass `feature_fn`."
                )
            captured["features"] = inputs[0].detach()
            captured["logits"] = output.detach() if isinstance(output, torch.Tensor) else None

        handle = target.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc=description, file=sys.stderr, disable=not progress):
                batch = _to_device(batch, dev)
                features: torch.Tensor | None
                logits: torch.Tensor | None
                inputs, labels = _split_batch(batch)
                with _autocast(dev, amp):
                    if feature_fn is not None:
                        out = feature_fn(batch)
                        if not isinstance(out, tuple) or len(out) != 2:
                            raise TypeError(
                                "Expected `feature_fn` to return (features, logits), but got "
                                f"{type(out).__name__}."
                            )
                        features, logits = out
                    else:
                        captured.clear()
                        model(inputs)
                        if "features" not in captured:
                            raise ValueError(
                                "Expected the classifier module to run in model(inputs), but its "
                                "forward hook never fired; pass `module` or `feature_fn`."
                            )
                        features = captured["features"]
                        logits = captured["logits"]
                if not isinstance(features, torch.Tensor) or features.ndim != 2:
                    raise ValueError(
                        "Expected 2-D classifier inputs (B, d), but got "
                        f"{tuple(getattr(features, 'shape', ()))}; pass `feature_fn` to pool or "
                        "select features."
                    )
                if logits is not None and (logits.ndim != 2 or logits.shape[0] != len(features)):
                    logits = None
                lab = labels if isinstance(labels, torch.Tensor) else None
                yield CapturedBatch(features.detach(), logits, lab)
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)


def _labels_of(batch: CapturedBatch) -> torch.Tensor:
    if batch.labels is None:
        raise ValueError(
            "Expected batches with labels ((inputs, labels) or a 'labels' key), but got none."
        )
    return batch.labels


def measure_model(
    model: nn.Module,
    loader: Iterable[Any],
    num_classes: int,
    *,
    module: str | nn.Module | None = None,
    feature_fn: FeatureFn | None = None,
    weights: torch.Tensor | str | None = "auto",
    test_loader: Iterable[Any] | None = None,
    second_pass: bool = True,
    device: torch.device | str | None = None,
    amp: bool = False,
    normalize: bool = True,
    class_means_rho: bool = True,
    progress: bool = False,
) -> GNCMetrics:
    """Measure GNC / NC metrics of a model on labelled data.

    Pass 1 streams features into a :class:`GNCAccumulator`; pass 2 (``second_pass``) runs the data
    again through an :class:`NCCAccumulator` with the class means of pass 1 for the NCC training
    accuracy and NC4; ``test_loader`` gives the NCC test accuracy. Under ``torch.distributed``
    every accumulator is synced before computing (each process feeds its own shard).

    Args:
        model: Any ``nn.Module``.
        loader: Training batches ``(inputs, labels, ...)``.
        num_classes: ``K``.
        module: Classifier module or name (default: last ``nn.Linear``).
        feature_fn: Optional ``batch -> (features, logits)`` instead of the hook.
        weights: ``(K, d)`` classifier rows; ``"auto"`` takes the ``weight`` of the classifier
            module when it is an ``nn.Linear`` with ``K`` outputs; ``None`` skips GNC2/GNC3/NC3.
        test_loader: Optional test batches for the NCC test accuracy.
        second_pass: Run pass 2 over ``loader`` (NCC train accuracy, NC4).
        device: Device to run on; default: the model's.
        amp: Run the model under ``torch.autocast``.
        normalize: L2-normalize features (the paper's convention).
        class_means_rho: Also compute the exact ``rho`` of the centred class means.
        progress: Show progress bars on stderr.

    Returns:
        :class:`GNCMetrics` including ``ncc_train_accuracy``, ``nc4_agreement`` and
        ``ncc_test_accuracy`` where requested.

    Example:
        >>> torch.manual_seed(0) is not None
        True
        >>> net = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
        >>> data = [(torch.randn(30, 6), torch.arange(30) % 3)]
        >>> m = measure_model(net, data, 3, progress=False, class_means_rho=False)
        >>> m.num_samples, m.gnc2 is not None, 0.0 <= m.ncc_train_accuracy <= 1.0
        (30, True, True)
    """
    opts: dict[str, Any] = {
        "module": module,
        "feature_fn": feature_fn,
        "device": device,
        "amp": amp,
        "progress": progress,
    }
    acc: GNCAccumulator | None = None
    for batch in capture_features(model, loader, description="pass 1 (statistics)", **opts):
        if acc is None:
            acc = GNCAccumulator(num_classes, int(batch.features.shape[1]), normalize=normalize)
        acc.update(batch.features, _labels_of(batch))
    if acc is None:
        raise ValueError("Expected `loader` to yield at least one batch, but it was empty.")
    acc.sync()

    W: torch.Tensor | None
    if isinstance(weights, str):
        if weights != "auto":
            raise ValueError(
                f"Expected `weights` to be a tensor, 'auto' or None, but got {weights!r}."
            )
        W = None
        if feature_fn is None:
            clf = find_classifier(model, module)
            w = getattr(clf, "weight", None)
            if (
                isinstance(clf, nn.Linear)
                and isinstance(w, torch.Tensor)
                and tuple(w.shape) == (num_classes, acc.feature_dim)
            ):
                W = w.detach()
    else:
        W = weights
    stats = acc.statistics()
    metrics = acc.compute(W, class_means_rho=class_means_rho)

    updates: dict[str, Any] = {}
    passes: list[tuple[str, Iterable[Any]]] = []
    if second_pass:
        passes.append(("train", loader))
    if test_loader is not None:
        passes.append(("test", test_loader))
    for name, data in passes:
        ncc = NCCAccumulator(stats.means, normalize=normalize)
        for batch in capture_features(model, data, description=f"NCC ({name})", **opts):
            logits = batch.logits if name == "train" else None
            if logits is not None and logits.shape[1] != num_classes:
                logits = None  # the hooked module is not the K-way classifier: no NC4
            ncc.update(batch.features, _labels_of(batch), logits)
        ncc.sync()
        result = ncc.compute()
        updates[f"ncc_{name}_accuracy"] = result.ncc_accuracy
        if name == "train":
            updates["nc4_agreement"] = result.nc4_agreement
    return dataclasses.replace(metrics, **updates)
