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
from dataclasses import dataclass, fields
from typing import Any

import torch

from gnc._checks import check_matrix
from gnc._runtime import resolve_budget, rows_per_budget
from gnc.geometry import min_one_vs_rest_distance
from gnc.geometry.bounds import rho_star_proven, rho_star_upper
from gnc.io import Record
from gnc.metrics.statistics import (
    ClassStatistics,
    as_statistics,
    class_statistics,
    pinv_trace,
    weights_for,
)

__all__ = [
    "GNCMetrics",
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
]


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GNCMetrics(Record):
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
        gap: Certified gap (upper minus lower bound) of ``gnc2``, the only certified metric.
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
        rho_star_upper: Upper bound on the best possible ``rho*(d, K)``
            (:func:`gnc.geometry.bounds.rho_star_upper`).
        gnc2_relative_to_rho_star_upper: ``gnc2 / rho_star_upper``.
        rho_star_proven: The proven optimum ``rho*(d, K)`` where one is known in closed form
            (:func:`gnc.geometry.bounds.rho_star_proven`), else ``None``.
        gnc2_relative_to_rho_star_proven: ``gnc2 / rho_star_proven``.
    """

    num_classes: int
    feature_dim: int
    num_samples: int
    normalized: bool
    gnc1: float
    gnc2: float | None
    gap: float | None
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
    rho_star_upper: float | None
    gnc2_relative_to_rho_star_upper: float | None
    rho_star_proven: float | None
    gnc2_relative_to_rho_star_proven: float | None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all fields, in order."""
        return tuple(f.name for f in fields(cls))


def _pairwise_offdiag_mean(
    X: torch.Tensor,
    term: Any,
    *,
    max_memory_mib: float | None,
) -> torch.Tensor:
    """Mean over ordered pairs ``k != l`` of ``term(rows, sq_dists)``, tiled by rows.

    ``sq_dists`` is the ``(b, K)`` block of squared distances between rows ``rows`` of ``X`` and
    all rows; ``term`` returns a ``(b, K)`` tensor whose diagonal entries are ignored.
    """
    K = X.shape[0]
    sq = (X * X).sum(dim=1)
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    step = rows_per_budget(8 * 4 * K, max_memory_mib)
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
    stats = as_statistics(stats)
    stats.require_nonempty()
    K, d = stats.num_classes, stats.feature_dim
    M = stats.centred_means
    sigma_b = (M.T @ M) / K
    sigma_w = stats.within_scatter / stats.num_samples
    rcond = max(d, K) * torch.finfo(torch.float64).eps
    return pinv_trace(sigma_w, sigma_b, rcond=rcond) / K


def gnc2(weights: Any, *, max_memory_mib: float | None = None) -> float:
    """GNC2: the exact minimum one-vs-rest distance ``rho(W / |W|)`` of the classifier rows.

    Uses :func:`gnc.geometry.min_one_vs_rest_distance` (exact, certified), unlike the paper's
    projected-subgradient estimate, which is only a lower bound.

    Args:
        weights: ``(K, d)`` classifier rows (normalized inside).
        max_memory_mib: Memory budget passed to the solver.

    Returns:
        ``rho(W / |W|)``; ``K / (K - 1)`` for a simplex ETF.
    """
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
    stats = as_statistics(stats)
    stats.require_nonempty()
    W = weights_for(weights, stats)
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


def nc1_cdnv(stats: ClassStatistics, *, max_memory_mib: float | None = None) -> float:
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
    stats = as_statistics(stats)
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
    stats = as_statistics(stats)
    stats.require_nonempty()
    W = weights_for(weights, stats)
    M = stats.centred_means
    m_fro = torch.linalg.matrix_norm(M)
    if not float(m_fro) > 0:
        raise ValueError("Expected distinct class means for NC3, but all coincide.")
    diff = W / torch.linalg.matrix_norm(W) - M / m_fro
    return float((diff * diff).sum())


def hyperspherical_uniformity(means: Any, *, max_memory_mib: float | None = None) -> float:
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
# Everything at once
# --------------------------------------------------------------------------------------------


def gnc_metrics(
    stats: ClassStatistics,
    weights: Any = None,
    *,
    class_means_rho: bool = True,
    max_memory_mib: float | None = None,
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
    stats = as_statistics(stats)
    stats.require_nonempty()
    K, d = stats.num_classes, stats.feature_dim
    if K < 2:
        raise ValueError(f"Expected at least 2 classes, but got {K}.")
    M = stats.centred_means
    W = None if weights is None else weights_for(weights, stats)

    rho_w: float | None = None
    gap: float | None = None
    rho_m: float | None = None
    upper: float | None = None
    code: float | None = None
    if W is not None or class_means_rho:
        if W is not None:
            res = min_one_vs_rest_distance(
                W, normalize=True, max_memory_mib=max(resolve_budget(max_memory_mib), 1.0)
            )
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
        gap=gap,
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
        rho_star_upper=upper,
        gnc2_relative_to_rho_star_upper=(
            None if rho_w is None or upper is None or upper <= 0 else rho_w / upper
        ),
        rho_star_proven=code,
        gnc2_relative_to_rho_star_proven=(
            None if rho_w is None or code is None or code <= 0 else rho_w / code
        ),
    )
