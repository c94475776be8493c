"""Class statistics of labelled features: the inputs of every GNC / NC metric.

:class:`ClassStatistics` holds per-class counts, sums and means, the global mean, the pooled
within-class scatter and per-class scatter traces, all float64 on one device. Build it from dense
features with :func:`class_statistics`, or streamed with :class:`gnc.metrics.GNCAccumulator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gnc._checks import check_int, check_labels, check_matrix

__all__ = ["ClassStatistics", "class_statistics", "pinv_trace"]


@dataclass(frozen=True, eq=False)
class ClassStatistics:
    """Sufficient statistics of labelled features, all float64 on one device.

    Attributes:
        counts: ``(K,)`` number of samples per class (float64).
        sums: ``(K, d)`` per-class sums of the (normalized) features.
        means: ``(K, d)`` class means ``hbar_k`` (zero rows for empty classes).
        global_mean: ``(d,)`` mean ``h_G`` of all ``N`` features (not the mean of class means).
        within_scatter: ``(d, d)`` pooled within-class scatter
            ``sum_{k,i} (h_{k,i} - hbar_k)(h_{k,i} - hbar_k)^T``.
        class_scatter_traces: ``(K,)`` per-class traces ``sum_i |h_{k,i} - hbar_k|^2``.
        num_samples: ``N``.
        normalized: Whether features were L2-normalized before accumulation.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        >>> s = class_statistics(h, torch.tensor([0, 1, 1]), num_classes=2)
        >>> s.counts.tolist(), s.global_mean.tolist()
        ([1.0, 2.0], [0.3333333333333333, 0.0])
    """

    counts: torch.Tensor
    sums: torch.Tensor
    means: torch.Tensor
    global_mean: torch.Tensor
    within_scatter: torch.Tensor
    class_scatter_traces: torch.Tensor
    num_samples: int
    normalized: bool = True

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return int(self.counts.shape[0])

    @property
    def feature_dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self.means.shape[1])

    @property
    def centred_means(self) -> torch.Tensor:
        """``(K, d)`` class means minus the global mean, ``hbar_k - h_G``."""
        return self.means - self.global_mean

    def empty_classes(self) -> list[int]:
        """Indices of classes without samples (one host sync)."""
        return [int(i) for i in (self.counts == 0).nonzero().flatten().tolist()]

    def require_nonempty(self) -> None:
        """Raise ``ValueError`` naming the classes that have no samples."""
        empty = self.empty_classes()
        if empty:
            shown = ", ".join(str(i) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
            raise ValueError(
                f"Expected every one of the {self.num_classes} classes to have samples, but "
                f"class {shown} has none ({len(empty)} empty)."
            )


def as_statistics(stats: Any) -> ClassStatistics:
    if not isinstance(stats, ClassStatistics):
        raise TypeError(
            f"Expected `stats` to be a ClassStatistics, but got {type(stats).__name__}."
        )
    return stats


def weights_for(weights: Any, stats: ClassStatistics) -> torch.Tensor:
    W = check_matrix("weights", weights, nonzero_rows=True)
    if tuple(W.shape) != (stats.num_classes, stats.feature_dim):
        raise ValueError(
            f"Expected `weights` of shape ({stats.num_classes}, {stats.feature_dim}) to match the "
            f"class statistics, but got {tuple(W.shape)}."
        )
    return W.to(device=stats.means.device, dtype=torch.float64)


def normalize_features(H: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(H, dim=1, keepdim=True)
    zero = norms.flatten() == 0
    if bool(zero.any()):
        row = int(zero.nonzero()[0, 0])
        raise ValueError(
            f"Expected `{name}` to have nonzero rows (normalize=True), but row {row} is all zeros."
        )
    unit: torch.Tensor = H / norms
    return unit


def pinv_trace(A: torch.Tensor, B: torch.Tensor, *, rcond: float | None = None) -> float:
    """Return ``tr(A B^+)`` for symmetric PSD ``A``, ``B`` with an eigh-based pseudo-inverse.

    ``B`` is symmetrized and diagonalized, ``B = V diag(lam) V^T``; eigenvalues at most
    ``rcond * max(lam)`` are treated as zero (default ``rcond = max(n, 1) * eps``). The trace is
    ``sum_j max(v_j^T A v_j, 0) / lam_j`` over kept eigenpairs, so it is never negative.

    Args:
        A: ``(n, n)`` symmetric positive semi-definite.
        B: ``(n, n)`` symmetric positive semi-definite.
        rcond: Relative eigenvalue cutoff.

    Returns:
        ``tr(A B^+)`` as a float (``>= 0``).

    Raises:
        ValueError: If ``B`` is zero (its pseudo-inverse carries no information).

    Example:
        >>> pinv_trace(torch.eye(2), torch.diag(torch.tensor([2.0, 0.0])))
        0.5
    """
    A = A.to(torch.float64)
    B = B.to(torch.float64)
    n = B.shape[0]
    if rcond is None:
        rcond = max(n, 1) * torch.finfo(torch.float64).eps
    lam, V = torch.linalg.eigh(0.5 * (B + B.T))
    top = float(lam.max())
    if not top > 0:
        raise ValueError(
            "Expected a nonzero between-class covariance, but all class means coincide."
        )
    keep = lam > rcond * top
    Vk = V[:, keep]
    quad = ((0.5 * (A + A.T)) @ Vk * Vk).sum(dim=0).clamp_min(0.0)
    return float((quad / lam[keep]).sum())


def class_statistics(
    features: Any, labels: Any, num_classes: int, *, normalize: bool = True
) -> ClassStatistics:
    """Compute :class:`ClassStatistics` from dense features in two passes (float64).

    Args:
        features: ``(N, d)`` features (any real dtype; promoted to float64).
        labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: ``K``.
        normalize: L2-normalize every feature first (the paper's convention).

    Returns:
        The statistics on the features' device.

    Example:
        >>> s = class_statistics(torch.eye(3), torch.tensor([0, 1, 1]), 2)
        >>> s.within_scatter.trace().item()
        1.0
    """
    K = check_int("num_classes", num_classes, minimum=1)
    H = check_matrix("features", features).to(torch.float64)
    y = check_labels("labels", labels, num_samples=H.shape[0], num_classes=K).to(H.device)
    if normalize:
        H = normalize_features(H, "features")
    d = H.shape[1]
    counts = torch.zeros(K, dtype=torch.float64, device=H.device).index_add_(
        0, y, torch.ones_like(y, dtype=torch.float64)
    )
    sums = torch.zeros(K, d, dtype=torch.float64, device=H.device).index_add_(0, y, H)
    means = sums / counts.clamp_min(1.0)[:, None]
    X = H - means[y]
    within = X.T @ X
    traces = torch.zeros(K, dtype=torch.float64, device=H.device).index_add_(
        0, y, (X * X).sum(dim=1)
    )
    return ClassStatistics(
        counts=counts,
        sums=sums,
        means=means,
        global_mean=H.mean(dim=0),
        within_scatter=0.5 * (within + within.T),
        class_scatter_traces=traces,
        num_samples=int(H.shape[0]),
        normalized=bool(normalize),
    )
