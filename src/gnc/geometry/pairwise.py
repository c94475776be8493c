"""Pairwise statistics of configurations, tiled by a memory budget (never a full K x K matrix).

For rows ``w_1..w_K`` (unit rows in the usual case) this module computes each class's max cosine
``s_k = max_{j != k} <w_k, w_j>``, its nearest neighbours, and the minimum pairwise distance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gnc._checks import check_int, check_matrix
from gnc._runtime import rows_per_budget
from gnc.io import Record

__all__ = [
    "PairwiseStatistics",
    "iter_blocks",
    "max_cosines",
    "min_pairwise_distance",
    "nearest_neighbors",
    "pairwise_statistics",
]


def iter_blocks(num_rows: int, rows_per_block: int) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` ranges covering ``range(num_rows)``.

    Example:
        >>> list(iter_blocks(5, 2))
        [(0, 2), (2, 4), (4, 5)]
    """
    for start in range(0, num_rows, rows_per_block):
        yield start, min(num_rows, start + rows_per_block)


def _neighbor_scores(W: torch.Tensor, rows: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """Scores ``2 <w_j, w_r> - |w_j|^2`` (larger = nearer) of every j for each row r; self -inf."""
    scores = 2.0 * (W[rows] @ W.T) - sq_norms[None, :]
    scores[torch.arange(rows.numel(), device=W.device), rows] = -torch.inf
    return scores


def max_cosines(
    weights: torch.Tensor, *, max_memory_mib: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's largest inner product with another row, ``s_k = max_{j != k} <w_k, w_j>``.

    Rows are used as given (normalize first for cosines).

    Args:
        weights: Tensor of shape ``(K, d)``, ``K >= 2``.
        max_memory_mib: Memory budget (MiB) of one ``(rows, K)`` block of inner products
            (``None``: the working-memory setting of :mod:`gnc._runtime`).

    Returns:
        ``(values, argmax)``, both of shape ``(K,)``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> max_cosines(W)
        (tensor([0., 0., 0.]), tensor([1, 0, 1]))
    """
    W = check_matrix("weights", weights, min_rows=2)
    K = W.shape[0]
    values = torch.empty(K, dtype=W.dtype, device=W.device)
    argmax = torch.empty(K, dtype=torch.long, device=W.device)
    step = rows_per_budget(2 * K * W.element_size(), max_memory_mib, num_rows=K)
    for a, b in iter_blocks(K, step):
        block = W[a:b] @ W.T
        block[
            torch.arange(b - a, device=W.device), torch.arange(a, b, device=W.device)
        ] = -torch.inf
        v, i = block.max(dim=1)
        values[a:b], argmax[a:b] = v, i
    return values, argmax


def nearest_neighbors(
    weights: torch.Tensor, num_neighbors: int, *, max_memory_mib: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``num_neighbors`` nearest other rows of each row (Euclidean distance), nearest first.

    Args:
        weights: Tensor of shape ``(K, d)``.
        num_neighbors: Number of neighbours ``m`` with ``1 <= m <= K - 1``.
        max_memory_mib: Memory budget (MiB) of one block of scores (``None``: the
            working-memory setting).

    Returns:
        ``(distances, indices)``, both of shape ``(K, m)``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> nearest_neighbors(W, 1)[1].squeeze(1)
        tensor([1, 0, 1])
    """
    W = check_matrix("weights", weights, min_rows=2)
    K = W.shape[0]
    m = check_int("num_neighbors", num_neighbors, minimum=1)
    if m > K - 1:
        raise ValueError(f"Expected `num_neighbors` <= K - 1 = {K - 1}, but got {m}.")
    sq = (W * W).sum(dim=1)
    dist = torch.empty(K, m, dtype=W.dtype, device=W.device)
    idx = torch.empty(K, m, dtype=torch.long, device=W.device)
    step = rows_per_budget(3 * K * W.element_size(), max_memory_mib, num_rows=K)
    for a, b in iter_blocks(K, step):
        rows = torch.arange(a, b, device=W.device)
        _scores, i = _neighbor_scores(W, rows, sq).topk(m, dim=1)
        idx[a:b] = i
        dist[a:b] = (W[i] - W[rows, None, :]).norm(dim=-1)
    return dist, idx


def min_pairwise_distance(weights: torch.Tensor, *, max_memory_mib: float | None = None) -> float:
    """Smallest distance ``min_{j != k} |w_j - w_k|`` (computed from the nearest pair directly).

    Example:
        >>> min_pairwise_distance(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # doctest: +ELLIPSIS
        1.414...
    """
    dist, _ = nearest_neighbors(weights, 1, max_memory_mib=max_memory_mib)
    return float(dist.min())


@dataclass(frozen=True)
class PairwiseStatistics(Record):
    """Per-class pairwise statistics of a configuration.

    Attributes:
        max_cosines: ``(K,)`` largest inner product with another row, ``s_k``.
        nearest: ``(K,)`` index of that row.
        nearest_distances: ``(K,)`` Euclidean distance to the nearest other row.
        max_cosine: ``max_k s_k``.
        min_distance: ``min_k`` nearest distance (the Tammes objective).
    """

    max_cosines: torch.Tensor
    nearest: torch.Tensor
    nearest_distances: torch.Tensor
    max_cosine: float
    min_distance: float


def pairwise_statistics(
    weights: torch.Tensor, *, max_memory_mib: float | None = None
) -> PairwiseStatistics:
    """Max cosines, nearest neighbours and min pairwise distance of unit rows, tiled.

    Example:
        >>> stats = pairwise_statistics(torch.eye(3, dtype=torch.float64))
        >>> stats.max_cosine, round(stats.min_distance ** 2, 12)
        (0.0, 2.0)
    """
    W = check_matrix("weights", weights, min_rows=2)
    values, arg = max_cosines(W, max_memory_mib=max_memory_mib)
    dists = (W - W[arg]).norm(dim=1)
    return PairwiseStatistics(
        max_cosines=values,
        nearest=arg,
        nearest_distances=dists,
        max_cosine=float(values.max()),
        min_distance=float(dists.min()),
    )
