"""Pure GNC / NC metrics: functions of class statistics, classifier weights and features.

Every function here is pure: it takes tensors (or a :class:`ClassStatistics` record) and returns
Python floats or tensors, computes in float64 on the input's device, and never materializes a
``K x K`` or ``N x K`` matrix larger than a memory budget (pairwise reductions are tiled by rows).
The stateful accumulators in :mod:`gnc.metrics.accumulators` only gather the sufficient statistics
and call these functions.

Notation (Jiang et al., *Generalized Neural Collapse for a Large Number of Classes*, ICML 2024):
``K`` classes, ``d`` feature dimension, ``N`` samples; ``h_{k,i}`` features (L2-normalized first by
default), ``hbar_k`` class means, ``h_G`` the mean of all ``N`` features, ``W`` the classifier
``(K, d)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from gnc._checks import as_float_tensor, check_int, check_labels, check_matrix, check_positive
from gnc.geometry import min_one_vs_rest_distance
from gnc.geometry.bounds import rho_star_proven, rho_star_upper

__all__ = [
    "ClassStatistics",
    "GNCMetrics",
    "class_statistics",
    "gnc1",
    "gnc1_from_features",
    "gnc2",
    "gnc3",
    "gnc3_from_features",
    "gnc_metrics",
    "hyperspherical_uniformity",
    "nc1_cdnv",
    "nc2_equinorm",
    "nc2_etf_error",
    "nc3_self_duality",
    "nc4_agreement",
    "ncc_accuracy",
    "ncc_predict",
    "pinv_trace",
]

_DEFAULT_MEMORY_MIB = 256.0


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class GNCMetrics:
    """Generalized (and classic) neural-collapse metrics of one model / feature set.

    ``None`` marks a metric that needs something not supplied (classifier weights, a second pass
    over the data, bounds for ``(K, d)``).

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        num_samples: ``N``.
        normalized: Whether features were L2-normalized first (the paper's convention).
        gnc1: ``tr(Sigma_W Sigma_B^+) / K`` (variability collapse; 0 at collapse).
        gnc2: ``rho(W / |W|)``, the exact minimum one-vs-rest distance of the classifier.
        gnc2_gap: Certified gap (upper minus lower bound) of ``gnc2``.
        gnc2_class_means: ``rho`` of the normalized centred class means ``hbar_k - h_G``.
        gnc3: ``mean_k (1 - cos(w_k, hbar_k - h_G))`` (self-duality; 0 at collapse).
        nc1_cdnv: Class-distance-normalized variance (Galanti et al.), mean over pairs.
        nc2_etf_error: Distance of the centred means' Gram to the simplex-ETF Gram.
        nc2_equinorm: Coefficient of variation of the centred means' norms.
        nc2_etf_error_weights: Same as ``nc2_etf_error`` for ``W``.
        nc2_equinorm_weights: Same as ``nc2_equinorm`` for ``W``.
        nc3_self_duality: ``|W/|W|_F - M/|M|_F|_F^2`` with ``M`` the centred means.
        nc4_agreement: Fraction of samples where ``argmax`` logits equals the NCC prediction.
        ncc_train_accuracy: Nearest-class-mean accuracy on the training data.
        ncc_test_accuracy: Nearest-class-mean accuracy on test data.
        hyperspherical_uniformity: Log-kernel energy of the normalized centred means.
        gnc2_upper_bound: Upper bound on the best possible ``rho*(d, K)``.
        gnc2_relative_to_upper_bound: ``gnc2 / gnc2_upper_bound``.
        gnc2_code_value: Known softmax-code value ``rho*(d, K)`` (closed forms only).
        gnc2_relative_to_code_value: ``gnc2 / gnc2_code_value``.
    """

    num_classes: int
    feature_dim: int
    num_samples: int
    normalized: bool
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
    ncc_train_accuracy: float | None
    ncc_test_accuracy: float | None
    hyperspherical_uniformity: float
    gnc2_upper_bound: float | None
    gnc2_relative_to_upper_bound: float | None
    gnc2_code_value: float | None
    gnc2_relative_to_code_value: float | None

    def as_dict(self) -> dict[str, Any]:
        """Return the metrics as a plain ``dict`` (JSON-friendly values)."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all fields, in order."""
        return tuple(f.name for f in fields(cls))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rows_per_block(num_cols: int, max_memory_mib: float, copies: int = 4) -> int:
    """Rows of a float64 ``(rows, num_cols)`` tile that fit ``copies`` times in the budget."""
    budget = check_positive("max_memory_mib", max_memory_mib) * 2**20
    return max(1, int(budget // (8 * copies * max(1, num_cols))))


def _as_stats(stats: Any) -> ClassStatistics:
    if not isinstance(stats, ClassStatistics):
        raise TypeError(
            f"Expected `stats` to be a ClassStatistics, but got {type(stats).__name__}."
        )
    return stats


def _check_weights(weights: Any, stats: ClassStatistics) -> torch.Tensor:
    W = check_matrix("weights", weights, nonzero_rows=True)
    if tuple(W.shape) != (stats.num_classes, stats.feature_dim):
        raise ValueError(
            f"Expected `weights` of shape ({stats.num_classes}, {stats.feature_dim}) to match the "
            f"class statistics, but got {tuple(W.shape)}."
        )
    return W.to(device=stats.means.device, dtype=torch.float64)


def _normalize_features(H: torch.Tensor, name: str) -> torch.Tensor:
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


def _pairwise_offdiag_mean(
    X: torch.Tensor,
    term: Any,
    *,
    max_memory_mib: float,
) -> torch.Tensor:
    """Mean over ordered pairs ``k != l`` of ``term(rows, sq_dists)``, tiled by rows.

    ``sq_dists`` is the ``(b, K)`` block of squared distances between rows ``rows`` of ``X`` and
    all rows; ``term`` returns a ``(b, K)`` tensor whose diagonal entries are ignored.
    """
    K = X.shape[0]
    sq = (X * X).sum(dim=1)
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    step = _rows_per_block(K, max_memory_mib)
    for start in range(0, K, step):
        stop = min(K, start + step)
        rows = torch.arange(start, stop, device=X.device)
        d2 = (sq[start:stop, None] + sq[None, :] - 2.0 * (X[start:stop] @ X.T)).clamp_min(0.0)
        d2[rows - start, rows] = 0.0
        vals = term(rows, d2)
        vals[rows - start, rows] = 0.0
        total = total + vals.sum()
    return total / (K * (K - 1))


# --------------------------------------------------------------------------------------------
# Statistics from dense features
# --------------------------------------------------------------------------------------------


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
        H = _normalize_features(H, "features")
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


# --------------------------------------------------------------------------------------------
# GNC metrics
# --------------------------------------------------------------------------------------------


def gnc1(stats: ClassStatistics) -> float:
    """GNC1 variability collapse: ``tr(Sigma_W Sigma_B^+) / K``.

    ``Sigma_W = within_scatter / N`` and ``Sigma_B = (1/K) sum_k (hbar_k - h_G)(hbar_k - h_G)^T``
    with ``h_G`` the mean of all ``N`` features (as in the paper's code). The pseudo-inverse is
    eigh-based with cutoff ``max(d, K) * eps * max eigenvalue`` (see :func:`pinv_trace`).

    Args:
        stats: Class statistics with every class non-empty.

    Returns:
        GNC1 ``>= 0``.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> gnc1(class_statistics(h, torch.tensor([0, 0, 1, 1]), 2))
        0.0
    """
    stats = _as_stats(stats)
    stats.require_nonempty()
    K, d = stats.num_classes, stats.feature_dim
    M = stats.centred_means
    sigma_b = (M.T @ M) / K
    sigma_w = stats.within_scatter / stats.num_samples
    rcond = max(d, K) * torch.finfo(torch.float64).eps
    return pinv_trace(sigma_w, sigma_b, rcond=rcond) / K


def gnc2(weights: Any, *, max_memory_mib: float = 1024.0) -> float:
    """GNC2: the exact minimum one-vs-rest distance ``rho(W / |W|)`` of the classifier rows.

    Uses :func:`gnc.geometry.min_one_vs_rest_distance` (exact, certified), unlike the paper's
    projected-subgradient estimate, which is only a lower bound.

    Args:
        weights: ``(K, d)`` classifier rows (normalized inside).
        max_memory_mib: Memory budget passed to the solver.

    Returns:
        ``rho(W / |W|)``; ``K / (K - 1)`` for a simplex ETF.
    """
    from gnc.geometry import min_one_vs_rest_distance

    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True)
    return float(min_one_vs_rest_distance(W, normalize=True, max_memory_mib=max_memory_mib).rho)


def gnc3(stats: ClassStatistics, weights: Any) -> float:
    """GNC3 self-duality: ``(1/K) sum_k (1 - cos(w_k, hbar_k - h_G))``.

    Args:
        stats: Class statistics with every class non-empty.
        weights: ``(K, d)`` classifier rows.

    Returns:
        GNC3 in ``[0, 2]``; 0 when every centred class mean points along its classifier row.

    Raises:
        ValueError: If a centred class mean is zero (its direction is undefined).

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> s = class_statistics(h, torch.tensor([0, 1]), 2)
        >>> gnc3(s, torch.tensor([[2.0, 0.0], [-1.0, 0.0]]))
        0.0
    """
    stats = _as_stats(stats)
    stats.require_nonempty()
    W = _check_weights(weights, stats)
    M = stats.centred_means
    m_norm = torch.linalg.vector_norm(M, dim=1)
    zero = m_norm == 0
    if bool(zero.any()):
        k = int(zero.nonzero()[0, 0])
        raise ValueError(
            f"Expected nonzero centred class means for GNC3, but class {k} has mean equal to the "
            "global mean."
        )
    cos = (W * M).sum(dim=1) / (torch.linalg.vector_norm(W, dim=1) * m_norm)
    return float((1.0 - cos).mean())


def gnc1_from_features(
    features: Any, labels: Any, num_classes: int, normalize: bool = True
) -> float:
    """GNC1 straight from dense features (see :func:`gnc1`).

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> gnc1_from_features(h, torch.tensor([0, 0, 1]), 2)
        0.0
    """
    return gnc1(class_statistics(features, labels, num_classes, normalize=normalize))


def gnc3_from_features(features: Any, labels: Any, weights: Any, normalize: bool = True) -> float:
    """GNC3 straight from dense features; ``K`` is ``weights.shape[0]`` (see :func:`gnc3`).

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> gnc3_from_features(h, torch.tensor([0, 1]), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
        0.5
    """
    W = check_matrix("weights", weights, nonzero_rows=True)
    stats = class_statistics(features, labels, int(W.shape[0]), normalize=normalize)
    return gnc3(stats, W)


# --------------------------------------------------------------------------------------------
# Classic NC metrics
# --------------------------------------------------------------------------------------------


def nc1_cdnv(stats: ClassStatistics, *, max_memory_mib: float = _DEFAULT_MEMORY_MIB) -> float:
    """NC1 as the class-distance-normalized variance (Galanti, Gyorgy and Hutter, 2022).

    ``CDNV = mean_{k != l} (var_k + var_l) / (2 |hbar_k - hbar_l|^2)`` with
    ``var_k = (1/n_k) sum_i |h_{k,i} - hbar_k|^2``. The ``K x K`` pair matrix is never formed:
    rows are tiled within ``max_memory_mib``.

    Args:
        stats: Class statistics with every class non-empty and ``K >= 2``.
        max_memory_mib: Memory budget for a tile of pairs.

    Returns:
        The mean CDNV over ordered pairs (``>= 0``).

    Raises:
        ValueError: If two classes have identical means.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        >>> nc1_cdnv(class_statistics(h, torch.tensor([0, 0, 1, 1]), 2))
        0.25
    """
    stats = _as_stats(stats)
    stats.require_nonempty()
    K = stats.num_classes
    if K < 2:
        raise ValueError(f"Expected at least 2 classes for the CDNV, but got {K}.")
    var = stats.class_scatter_traces.clamp_min(0.0) / stats.counts
    M = stats.centred_means
    zero_pairs: list[tuple[int, int]] = []

    def term(rows: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        off = torch.ones_like(d2, dtype=torch.bool)
        off[rows - rows[0], rows] = False
        bad = (d2 == 0) & off
        if bool(bad.any()) and not zero_pairs:
            i, j = bad.nonzero()[0].tolist()
            zero_pairs.append((int(rows[i]), int(j)))
        return (var[rows, None] + var[None, :]) / (2.0 * torch.where(off, d2, 1.0))

    value = _pairwise_offdiag_mean(M, term, max_memory_mib=max_memory_mib)
    if zero_pairs:
        k, l = zero_pairs[0]
        raise ValueError(
            f"Expected distinct class means for the CDNV, but classes {k} and {l} coincide."
        )
    return float(value)


def nc2_etf_error(vectors: Any) -> float:
    """NC2 ETF error of ``K`` vectors (centred class means, or ``W``), as in Papyan et al. (2020).

    ``| G / |G|_F - (I - 11^T/K) / sqrt(K - 1) |_F`` with ``G = V V^T``, evaluated without the
    ``K x K`` Gram: ``|G|_F = |V^T V|_F`` and ``<G, I - 11^T/K> = |V|_F^2 - |V^T 1|^2 / K``.

    Args:
        vectors: ``(K, d)``, ``K >= 2``, not all zero. Pass centred means for the usual NC2.

    Returns:
        The error in ``[0, 2]``; 0 iff ``V`` is a (scaled) simplex ETF.

    Example:
        >>> round(nc2_etf_error(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), 12)
        0.0
    """
    V = check_matrix("vectors", vectors, min_rows=2).to(torch.float64)
    K = V.shape[0]
    gram_fro = torch.linalg.matrix_norm(V.T @ V)
    if not float(gram_fro) > 0:
        raise ValueError("Expected `vectors` not all zero for the NC2 ETF error, but got zeros.")
    inner = ((V * V).sum() - (V.sum(dim=0) ** 2).sum() / K) / math.sqrt(K - 1)
    return math.sqrt(max(0.0, float(2.0 - 2.0 * inner / gram_fro)))


def nc2_equinorm(vectors: Any) -> float:
    """NC2 equinorm: coefficient of variation ``std / mean`` of the row norms (``std`` ddof=1).

    Args:
        vectors: ``(K, d)``, ``K >= 2`` (centred class means, or ``W``).

    Returns:
        ``std(|v_k|) / mean(|v_k|)``; 0 when all norms are equal.

    Example:
        >>> nc2_equinorm(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
        0.7071067811865476
    """
    V = check_matrix("vectors", vectors, min_rows=2).to(torch.float64)
    norms = torch.linalg.vector_norm(V, dim=1)
    mean = norms.mean()
    if not float(mean) > 0:
        raise ValueError("Expected `vectors` not all zero for the equinorm, but got zeros.")
    return float(norms.std(correction=1) / mean)


def nc3_self_duality(stats: ClassStatistics, weights: Any) -> float:
    """NC3 self-duality error ``| W / |W|_F - M / |M|_F |_F^2`` with ``M`` the centred means.

    Args:
        stats: Class statistics with every class non-empty.
        weights: ``(K, d)`` classifier rows.

    Returns:
        The error in ``[0, 4]``; 0 when ``W`` is a positive multiple of ``M``.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> s = class_statistics(h, torch.tensor([0, 1]), 2)
        >>> round(nc3_self_duality(s, torch.tensor([[3.0, 0.0], [-3.0, 0.0]])), 12)
        0.0
    """
    stats = _as_stats(stats)
    stats.require_nonempty()
    W = _check_weights(weights, stats)
    M = stats.centred_means
    m_fro = torch.linalg.matrix_norm(M)
    if not float(m_fro) > 0:
        raise ValueError("Expected distinct class means for NC3, but all coincide.")
    diff = W / torch.linalg.matrix_norm(W) - M / m_fro
    return float((diff * diff).sum())


def hyperspherical_uniformity(means: Any, *, max_memory_mib: float = _DEFAULT_MEMORY_MIB) -> float:
    """Hyperspherical uniformity: log-kernel (Riesz ``s = 0``) energy of the normalized rows.

    ``(1 / (K (K - 1))) sum_{k != l} log(1 / |u_k - u_l|)`` with ``u_k = v_k / |v_k|``; lower is
    more uniform. Pass centred class means (or ``W``). Tiled: no ``K x K`` matrix.

    Args:
        means: ``(K, d)`` nonzero rows, ``K >= 2``.
        max_memory_mib: Memory budget for a tile of pairs.

    Returns:
        The mean log-kernel energy (``+inf`` if two normalized rows coincide).

    Example:
        >>> round(hyperspherical_uniformity(torch.tensor([[1.0, 0.0], [-2.0, 0.0]])), 9)
        -0.693147181
    """
    V = check_matrix("means", means, min_rows=2, nonzero_rows=True).to(torch.float64)
    U = V / torch.linalg.vector_norm(V, dim=1, keepdim=True)

    def term(rows: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return -0.5 * torch.log(d2)

    return float(_pairwise_offdiag_mean(U, term, max_memory_mib=max_memory_mib))


# --------------------------------------------------------------------------------------------
# Nearest class mean
# --------------------------------------------------------------------------------------------


def ncc_predict(
    features: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float = _DEFAULT_MEMORY_MIB,
) -> torch.Tensor:
    """Nearest-class-mean predictions ``argmin_k |h - hbar_k|`` (Euclidean).

    Features are L2-normalized first when ``normalize`` (the class means are used as given: in
    :class:`~gnc.metrics.NCCAccumulator` they are the means of normalized features, not
    re-normalized, as in the paper's code). Rows are tiled within ``max_memory_mib``.

    Args:
        features: ``(N, d)``.
        class_means: ``(K, d)``.
        normalize: L2-normalize the features first.
        max_memory_mib: Memory budget for an ``(rows, K)`` tile.

    Returns:
        ``(N,)`` long predictions on the features' device.

    Example:
        >>> ncc_predict(torch.tensor([[0.9, 0.1], [0.0, 2.0]]), torch.eye(2))
        tensor([0, 1])
    """
    H = check_matrix("features", features, min_rows=0).to(torch.float64)
    C = check_matrix("class_means", class_means, cols=H.shape[1]).to(
        device=H.device, dtype=torch.float64
    )
    if normalize:
        H = _normalize_features(H, "features")
    return _ncc_predict_unchecked(H, C, max_memory_mib)


def _ncc_predict_unchecked(H: torch.Tensor, C: torch.Tensor, max_memory_mib: float) -> torch.Tensor:
    half_sq = 0.5 * (C * C).sum(dim=1)
    out = torch.empty(H.shape[0], dtype=torch.long, device=H.device)
    step = _rows_per_block(C.shape[0], max_memory_mib, copies=2)
    for start in range(0, H.shape[0], step):
        block = H[start : start + step] @ C.T - half_sq
        out[start : start + step] = block.argmax(dim=1)
    return out


def ncc_accuracy(
    features: Any,
    labels: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float = _DEFAULT_MEMORY_MIB,
) -> float:
    """Nearest-class-mean accuracy of labelled features (see :func:`ncc_predict`).

    Example:
        >>> ncc_accuracy(torch.tensor([[1.0, 0.1], [1.0, 0.0]]), torch.tensor([0, 1]), torch.eye(2))
        0.5
    """
    pred = ncc_predict(features, class_means, normalize=normalize, max_memory_mib=max_memory_mib)
    K = as_float_tensor("class_means", class_means).shape[0]
    y = check_labels("labels", labels, num_samples=pred.shape[0], num_classes=K)
    if pred.shape[0] == 0:
        raise ValueError("Expected at least one sample for the NCC accuracy, but got none.")
    return float((pred == y.to(pred.device)).to(torch.float64).mean())


def nc4_agreement(
    features: Any,
    logits: Any,
    class_means: Any,
    *,
    normalize: bool = True,
    max_memory_mib: float = _DEFAULT_MEMORY_MIB,
) -> float:
    """NC4: fraction of samples whose ``argmax`` logit equals the nearest-class-mean prediction.

    Args:
        features: ``(N, d)``.
        logits: ``(N, K)`` classifier outputs.
        class_means: ``(K, d)``.
        normalize: L2-normalize the features first.
        max_memory_mib: Memory budget for an ``(rows, K)`` tile.

    Returns:
        The agreement in ``[0, 1]``.

    Example:
        >>> nc4_agreement(torch.eye(2), torch.tensor([[5.0, 1.0], [5.0, 1.0]]), torch.eye(2))
        0.5
    """
    pred = ncc_predict(features, class_means, normalize=normalize, max_memory_mib=max_memory_mib)
    K = as_float_tensor("class_means", class_means).shape[0]
    Z = check_matrix("logits", logits, min_rows=0, cols=K, finite=False)
    if Z.shape[0] != pred.shape[0]:
        raise ValueError(
            f"Expected `logits` of shape ({pred.shape[0]}, {K}), but got {tuple(Z.shape)}."
        )
    if pred.shape[0] == 0:
        raise ValueError("Expected at least one sample for NC4, but got none.")
    return float((Z.argmax(dim=1).to(pred.device) == pred).to(torch.float64).mean())


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def gnc_metrics(
    stats: ClassStatistics,
    weights: Any = None,
    *,
    class_means_rho: bool = True,
    max_memory_mib: float = _DEFAULT_MEMORY_MIB,
) -> GNCMetrics:
    """Compute every one-pass metric from class statistics and (optionally) the classifier.

    Args:
        stats: Class statistics with every class non-empty and ``K >= 2``.
        weights: Optional ``(K, d)`` classifier rows; enables GNC2, GNC3, NC3 and ``W`` variants.
        class_means_rho: Also compute the exact ``rho`` of the normalized centred class means
            (one more one-vs-rest solve; ``None`` otherwise).
        max_memory_mib: Memory budget for tiled pairwise reductions and the geometry solver.

    Returns:
        A :class:`GNCMetrics`; NC4 and NCC fields are ``None`` (they need a second pass, see
        :class:`~gnc.metrics.NCCAccumulator`).

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-0.5, 0.75**0.5], [-0.5, -(0.75**0.5)]])
        >>> s = class_statistics(W, torch.arange(3), 3)
        >>> m = gnc_metrics(s, W, class_means_rho=False)
        >>> m.gnc1, round(m.gnc3, 12), round(m.gnc2, 6)
        (0.0, 0.0, 1.5)
    """
    stats = _as_stats(stats)
    stats.require_nonempty()
    K, d = stats.num_classes, stats.feature_dim
    if K < 2:
        raise ValueError(f"Expected at least 2 classes, but got {K}.")
    M = stats.centred_means
    W = None if weights is None else _check_weights(weights, stats)

    rho_w: float | None = None
    gap: float | None = None
    rho_m: float | None = None
    upper: float | None = None
    code: float | None = None
    if W is not None or class_means_rho:
        if W is not None:
            res = min_one_vs_rest_distance(W, normalize=True, max_memory_mib=max(max_memory_mib, 1))
            rho_w, gap = float(res.rho), float(res.gap)
            upper, code = rho_star_upper(K, d), rho_star_proven(K, d)
        if class_means_rho:
            zero = torch.linalg.vector_norm(M, dim=1) == 0
            if bool(zero.any()):
                k = int(zero.nonzero()[0, 0])
                raise ValueError(
                    f"Expected nonzero centred class means, but class {k} has mean equal to the "
                    "global mean."
                )
            rho_m = float(min_one_vs_rest_distance(M, normalize=True).rho)

    return GNCMetrics(
        num_classes=K,
        feature_dim=d,
        num_samples=stats.num_samples,
        normalized=stats.normalized,
        gnc1=gnc1(stats),
        gnc2=rho_w,
        gnc2_gap=gap,
        gnc2_class_means=rho_m,
        gnc3=None if W is None else gnc3(stats, W),
        nc1_cdnv=nc1_cdnv(stats, max_memory_mib=max_memory_mib),
        nc2_etf_error=nc2_etf_error(M),
        nc2_equinorm=nc2_equinorm(M),
        nc2_etf_error_weights=None if W is None else nc2_etf_error(W),
        nc2_equinorm_weights=None if W is None else nc2_equinorm(W),
        nc3_self_duality=None if W is None else nc3_self_duality(stats, W),
        nc4_agreement=None,
        ncc_train_accuracy=None,
        ncc_test_accuracy=None,
        hyperspherical_uniformity=hyperspherical_uniformity(M, max_memory_mib=max_memory_mib),
        gnc2_upper_bound=upper,
        gnc2_relative_to_upper_bound=(
            None if rho_w is None or upper is None or upper <= 0 else rho_w / upper
        ),
        gnc2_code_value=code,
        gnc2_relative_to_code_value=(
            None if rho_w is None or code is None or code <= 0 else rho_w / code
        ),
    )
