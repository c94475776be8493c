"""Rows of a head that point the same way: groups, max cosines and nearest-row distances.

Real heads hold *dead classes* (tokens or characters that training never or hardly saw): their
rows drift to one common direction, so several rows coincide up to rounding. One tiled float32
pass over the ``K x K`` inner products (never materialized; exact in float64 where the rounding
bound does not decide) groups them and also gives every row's max cosine ``s_k`` and nearest-row
distance ``sqrt(2 - 2 s_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gnc._checks import check_matrix
from gnc._runtime import resolve_budget
from gnc.geometry._row_maxima import RowMaxima, row_maxima

__all__ = ["DuplicateGroups", "duplicate_groups"]


@dataclass(frozen=True)
class DuplicateGroups:
    """Groups of rows pointing the same way (``1 - cos <= tolerance`` chains).

    Attributes:
        representative: ``(K,)`` long, the lowest row index of each row's group.
        num_groups: Groups of two or more rows.
        num_merged: Rows merged away (``K`` minus the number of distinct directions).
        largest: Size of the largest group.
        nearest_distance: ``(K,)`` float64 distance of each unit row to its nearest other row.
        max_cosines: ``(K,)`` float64 ``s_k = max_{j != k} <w_k, w_j>``.
        nearest_row: ``(K,)`` long, a row attaining ``s_k``.
        tolerance: The tolerance used.
    """

    representative: torch.Tensor
    num_groups: int
    num_merged: int
    largest: int
    nearest_distance: torch.Tensor
    max_cosines: torch.Tensor
    nearest_row: torch.Tensor
    tolerance: float

    @property
    def distinct(self) -> torch.Tensor:
        """``(K_distinct,)`` indices of the rows kept (one per direction), increasing."""
        K = self.representative.numel()
        return (self.representative == torch.arange(K, device=self.representative.device)).nonzero(
            as_tuple=True
        )[0]

    def to_dict(self) -> dict[str, Any]:
        """The counts and the tolerance (the per-row tensors are left out).

        Example:
            >>> duplicate_groups(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])).to_dict()
            {'tolerance': 1e-09, 'groups': 1, 'rows_merged': 1, 'distinct_directions': 2, 'largest_group': 2}
        """  # noqa: E501
        return {
            "tolerance": self.tolerance,
            "groups": self.num_groups,
            "rows_merged": self.num_merged,
            "distinct_directions": int(self.representative.numel()) - self.num_merged,
            "largest_group": self.largest,
        }


def duplicate_groups(
    weights: torch.Tensor,
    *,
    tolerance: float = 1e-9,
    max_memory_mib: float | None = None,
    maxima: RowMaxima | None = None,
    bar: Any = None,
) -> DuplicateGroups:
    """Group rows whose directions coincide: ``1 - cos(w_i, w_j) <= tolerance`` (transitively).

    One tiled float32 pass over ``W W^T`` (:func:`gnc.geometry._row_maxima.row_maxima`) gives the
    max cosines and the candidate pairs; both are made exact in float64 wherever the float32
    rounding bound does not decide.

    Args:
        weights: ``(K, d)`` rows (normalized here), ``K >= 2``.
        tolerance: Largest ``1 - cos`` of two rows counted as the same direction (>= 0).
        max_memory_mib: Memory budget of one block of inner products (``None``: the
            working-memory setting of :mod:`gnc._runtime`).
        maxima: The pass, when the caller already ran it over all rows of ``weights`` with
            ``coincide_tol=tolerance`` (shared with other analyses); computed here otherwise.
        bar: Optional tqdm bar of the pass, advanced by rows.

    Returns:
        A :class:`DuplicateGroups`.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> groups = duplicate_groups(W)
        >>> groups.representative.tolist(), groups.num_merged, groups.distinct.tolist()
        ([0, 0, 2, 3], 1, [0, 2, 3])
    """
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True).to(torch.float64)
    if not 0.0 <= float(tolerance) < 1.0:
        raise ValueError(f"Expected `tolerance` in [0, 1), but got {tolerance}.")
    K = W.shape[0]
    if maxima is None:
        maxima = row_maxima(
            W, coincide_tol=float(tolerance), max_memory_mib=resolve_budget(max_memory_mib), bar=bar
        )
    elif maxima.coincide_tol != float(tolerance) or maxima.rows.numel() != K:
        raise ValueError(
            f"Expected `maxima` of all {K} rows with coincide_tol={tolerance}, but got "
            f"{maxima.rows.numel()} rows with coincide_tol={maxima.coincide_tol}."
        )
    s = maxima.max_cosine
    if maxima.pairs.numel():
        edges = maxima.pairs.cpu().numpy()
        graph = coo_matrix(
            (np.ones(edges.shape[0], dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(K, K)
        )
        _, component = connected_components(graph, directed=False)
        # Representative = lowest row index of each component.
        first = np.full(int(component.max()) + 1, K, dtype=np.int64)
        np.minimum.at(first, component, np.arange(K))
        roots = first[component]
    else:
        roots = np.arange(K, dtype=np.int64)
    counts = np.bincount(roots, minlength=K)
    rep = torch.from_numpy(roots).to(W.device)
    nearest = (2.0 - 2.0 * s).clamp_min(0.0).sqrt()
    return DuplicateGroups(
        representative=rep,
        num_groups=int((counts >= 2).sum()),
        num_merged=int(K - (counts > 0).sum()),
        largest=int(counts.max()),
        nearest_distance=nearest,
        max_cosines=s,
        nearest_row=maxima.argmax_cosine,
        tolerance=float(tolerance),
    )
