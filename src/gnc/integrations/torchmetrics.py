"""GNC / NC metrics as a ``torchmetrics.Metric``: torchmetrics' own sync, reset and devices.

:class:`GNCMetric` keeps the sufficient statistics of :class:`gnc.metrics.GNCAccumulator` with
every per-class shift at zero, so each state is a plain sum and is registered with
``add_state(..., dist_reduce_fx="sum")``: torchmetrics all-gathers and sums them on
``compute()`` under ``torch.distributed``, and ``reset()`` zeroes them. ``compute()`` loads the
summed state into a :class:`~gnc.metrics.GNCAccumulator` and returns its
:class:`~gnc.metrics.GNCMetrics` record (the same pure functions, no second copy of the maths).

Precision: with zero shifts the within-class scatter is ``sum h h^T - sum_k S_k S_k^T / n_k``
in float64, which loses about ``log10(|h|^2 / var_W)`` of the 16 digits (none to speak of on
non-collapsed features; 8 digits when the within-class variance is ``1e-8`` of the squared
feature norm). For strongly collapsed features prefer :class:`~gnc.metrics.GNCAccumulator`,
whose per-class shifts avoid the cancellation.

Requires the optional extra ``gnc[torchmetrics]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gnc._checks import as_float_tensor, check_int
from gnc._runtime import resolve_budget

try:
    from torchmetrics import Metric
except ImportError:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "gnc.integrations.torchmetrics needs the package `torchmetrics`; install the extra with "
        "`pip install 'gnc[torchmetrics]'`."
    ) from None

from gnc.metrics import ClassStatistics, GNCAccumulator, GNCMetrics

__all__ = ["GNCMetric"]

_F64 = torch.float64


class GNCMetric(Metric):  # type: ignore[misc]
    """Streaming GNC / NC metrics of labelled features as a ``torchmetrics.Metric``.

    States (float64 sums, ``dist_reduce_fx="sum"``): ``counts`` ``(K,)``, ``sums`` ``(K, d)``,
    ``scatter`` ``(d, d)`` (``sum h h^T``), ``sq_norms`` ``(K,)`` and ``invalid`` ``(2,)``
    (rows with non-finite or zero-norm features, labels out of range). ``update`` never syncs
    the host: invalid rows are masked out and counted, and ``compute`` raises if any were seen.

    ``compute(weights=None)`` returns :class:`gnc.metrics.GNCMetrics` (GNC1, CDNV, NC2, the
    exact ``rho`` of the centred class means; GNC2, GNC3 and NC3 when the classifier's ``(K, d)``
    weights are given). NCC accuracy and NC4 need the final class means before scoring a sample,
    that is a second pass over the data, so they are ``None`` here as in
    :meth:`gnc.metrics.GNCAccumulator.compute` (use :class:`gnc.metrics.NCCAccumulator` with
    ``metric.statistics().means``). ``compute`` is not cached (it depends on ``weights``).
    Calling the metric (``forward``) only updates it and returns ``None``: GNC needs samples of
    every class, which one batch rarely has.

    Args:
        num_classes: ``K``.
        feature_dim: ``d``.
        normalize: L2-normalize each feature first (the paper's convention).
        class_means_rho: Also compute the exact ``rho`` of the centred class means.
        max_memory_mib: Memory budget (MiB) of tiled reductions in ``compute`` (``None``: the
            working-memory setting).
        kwargs: Passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> metric = GNCMetric(num_classes=3, feature_dim=2)
        >>> W = torch.tensor([[1.0, 0.0], [-0.5, 0.75**0.5], [-0.5, -(0.75**0.5)]])
        >>> metric.update(W.repeat(2, 1), torch.arange(3).repeat(2))
        >>> m = metric.compute(W)
        >>> m.gnc1, round(m.gnc3, 12), round(m.gnc2, 6), m.num_samples
        (0.0, 0.0, 1.5, 6)
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    counts: torch.Tensor
    sums: torch.Tensor
    scatter: torch.Tensor
    sq_norms: torch.Tensor
    invalid: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        *,
        normalize: bool = True,
        class_means_rho: bool = True,
        max_memory_mib: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        K = check_int("num_classes", num_classes, minimum=1)
        d = check_int("feature_dim", feature_dim, minimum=1)
        self.num_classes = K
        self.feature_dim = d
        self.normalize = bool(normalize)
        self.class_means_rho = bool(class_means_rho)
        self.max_memory_mib = None if max_memory_mib is None else resolve_budget(max_memory_mib)
        self.add_state("counts", torch.zeros(K, dtype=_F64), dist_reduce_fx="sum")
        self.add_state("sums", torch.zeros(K, d, dtype=_F64), dist_reduce_fx="sum")
        self.add_state("scatter", torch.zeros(d, d, dtype=_F64), dist_reduce_fx="sum")
        self.add_state("sq_norms", torch.zeros(K, dtype=_F64), dist_reduce_fx="sum")
        self.add_state("invalid", torch.zeros(2, dtype=_F64), dist_reduce_fx="sum")

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch: ``features`` ``(B, d)`` of any real dtype, ``labels`` ``(B,)`` integers.

        Raises:
            TypeError: For non-real features or non-integer labels.
            ValueError: For mismatched shapes.
        """
        x = as_float_tensor("features", features)
        if x.ndim != 2 or x.shape[1] != self.feature_dim:
            raise ValueError(
                f"Expected `features` of shape (N, {self.feature_dim}), but got {tuple(x.shape)}."
            )
        y = labels if isinstance(labels, torch.Tensor) else None
        if y is None or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            got = type(labels).__name__ if y is None else f"dtype {y.dtype}"
            raise TypeError(f"Expected `labels` to be an integer tensor, but got {got}.")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"Expected `labels` of shape ({x.shape[0]},) to match `features`, but got "
                f"{tuple(y.shape)}."
            )
        device = self.counts.device
        H = x.to(device=device, dtype=_F64, copy=True)
        y = y.to(device=device, dtype=torch.long)
        norms = torch.linalg.vector_norm(H, dim=1)
        ok_features = torch.isfinite(norms)
        if self.normalize:
            ok_features &= norms > 0
        ok_labels = (y >= 0) & (y < self.num_classes)
        valid = ok_features & ok_labels
        H = torch.where(valid[:, None], H, 0.0)  # invalid rows add nothing
        if self.normalize:
            H.div_(torch.where(valid, norms, 1.0)[:, None])
        y = torch.where(valid, y, 0)
        self.counts.index_add_(0, y, valid.to(_F64))
        self.sums.index_add_(0, y, H)
        self.scatter.addmm_(H.T, H)
        self.sq_norms.index_add_(0, y, H.square().sum(dim=1))
        self.invalid += torch.stack([(~ok_features).sum(), (~ok_labels).sum()]).to(_F64)

    def _wrap_compute(self, compute: Callable[..., Any]) -> Callable[..., Any]:
        # The record is a frozen dataclass and depends on `weights`: no caching, no
        # collection mapping; ``compute`` syncs the states itself (torchmetrics' public
        # ``sync_context``), as torchmetrics' compositional metrics leave compute unwrapped.
        return compute

    def _accumulator(self) -> GNCAccumulator:
        if not self.update_called:
            raise ValueError("Expected at least one update() before compute(), but got none.")
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            process_group=self.process_group,
            should_sync=self.sync_on_compute,
            distributed_available=self.distributed_available_fn,
        ):
            state = {
                "counts": self.counts.clone(),
                "shift": torch.zeros_like(self.sums),
                "sums": self.sums.clone(),
                "scatter": self.scatter.clone(),
                "sq_norms": self.sq_norms.clone(),
                "invalid": torch.cat([self.invalid, self.invalid.new_tensor([-1.0])]),
            }
        acc = GNCAccumulator(self.num_classes, self.feature_dim, normalize=self.normalize)
        acc.load_state_dict(
            {
                "num_classes": self.num_classes,
                "feature_dim": self.feature_dim,
                "normalize": self.normalize,
                "num_updates": self.update_count,
                "synced": False,
                "state": state,
            }
        )
        return acc

    def statistics(self) -> ClassStatistics:
        """The (synced) :class:`gnc.metrics.ClassStatistics`, e.g. class means for NCC.

        Raises:
            ValueError: Before any update, or if invalid rows were seen.
        """
        return self._accumulator().statistics()

    def compute(self, weights: Any = None) -> GNCMetrics:
        """GNC / NC metrics of everything seen since the last reset, synced over processes.

        Args:
            weights: Optional ``(K, d)`` classifier rows (GNC2, GNC3, NC3, ``W`` variants).

        Raises:
            ValueError: Before any update, if invalid rows were seen, or if a class has no
                samples (named).
        """
        return self._accumulator().compute(
            weights, class_means_rho=self.class_means_rho, max_memory_mib=self.max_memory_mib
        )

    def forward(self, features: Any, labels: Any) -> None:
        """Update with a batch (no per-batch value: GNC needs every class)."""
        self.update(features, labels)
