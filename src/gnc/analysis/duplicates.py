"""Rows of a head that point the same way: groups, max cosines and nearest-row distances.

Real heads hold *dead classes* (tokens or characters that training never or hardly saw): their
rows drift to one common direction, so several rows coincide up to rounding. One tiled pass over
the ``K x K`` inner products (never materialized) groups them and also gives every row's max
cosine ``s_k`` and nearest-row distance ``sqrt(2 - 2 s_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gnc._checks import check_matrix
from gnc._runtime import rows_per_budget

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
        tolerance: The tolerance used.
    """

    representative: torch.Tensor
    num_groups: int
    num_merged: int
    largest: int
    nearest_distance: torch.Tensor
    max_cosines: torch.Tensor
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
    weights: torch.Tensor, *, tolerance: float = 1e-9, max_memory_mib: float | None = None
) -> DuplicateGroups:
    """Group rows whose directions coincide: ``1 - cos(w_i, w_j) <= tolerance`` (transitively).

    Args:
        weights: ``(K, d)`` rows (normalized here), ``K >= 2``.
        tolerance: Largest ``1 - cos`` of two rows counted as the same direction (>= 0).
        max_memory_mib: Memory budget of one block of inner products (``None``: the
            working-memory setting of :mod:`gnc._runtime`).

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
    W = W / W.norm(dim=1, keepdim=True)
    K = W.shape[0]
    s = torch.empty(K, dtype=torch.float64, device=W.device)
    pairs: list[torch.Tensor] = []
    step = rows_per_budget(2 * K * 8, max_memory_mib, num_rows=K)
    for a in range(0, K, step):
        b = min(K, a + step)
        block = W[a:b] @ W.T
        block[torch.arange(b - a, device=W.device), torch.arange(a, b, device=W.device)] = -2.0
        s[a:b] = block.max(dim=1).values
        hit = (block >= 1.0 - tolerance).nonzero()
        if hit.numel():
            hit[:, 0] += a
            pairs.append(hit[hit[:, 0] < hit[:, 1]].cpu())
    if pairs:
        edges = torch.cat(pairs).numpy()
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
        tolerance=float(tolerance),
    )
