"""Rows that coincide exactly, in O(K) memory beyond one block of rows (internal).

``torch.unique(X, dim=0)`` finds them by sorting whole rows: at 262,144 x 640 float64 rows it
allocates ~2.6 GiB more than the matrix and takes ~8 s on one core, and ``gnc head`` calls it
twice (the shared pass and the argmax analysis). Here each row gets a 64-bit key, a fixed random
linear form of its bits modulo 2^64 (``-0.0`` read as ``0.0``: equality is by value, as
``torch.unique``'s), computed block by block; rows are sorted by key, and rows that share a key
are compared exactly, so a collision of keys costs time, never a wrong answer.
"""

from __future__ import annotations

import numpy as np
import torch

from gnc._runtime import rows_per_budget
from gnc.geometry.pairwise import iter_blocks

__all__: list[str] = []

# Memory (MiB) of one block of rows while their keys are computed (a float64 copy and the
# products): cache-sized, so the rows are read once.
_BLOCK_MIB = 32.0


def _coefficients(n: int) -> np.ndarray:
    """``n`` odd 64-bit multipliers, the same in every call (a fixed seed)."""
    return np.random.default_rng(0x5EED).integers(0, 2**64, size=n, dtype=np.uint64) | np.uint64(1)


def _bits(block: torch.Tensor) -> np.ndarray:
    """The float64 bits of ``block`` as uint64, with ``-0.0`` as ``0.0`` (a CPU copy)."""
    x = block.detach().to("cpu", torch.float64).numpy() + 0.0  # -0.0 + 0.0 = +0.0
    return x.view(np.uint64)


def row_keys(W: torch.Tensor, b: torch.Tensor | None = None) -> np.ndarray:
    """A uint64 key of each row of ``[W, b]``: equal rows (by value) have equal keys."""
    K, d = W.shape
    c = _coefficients(d + 1)
    keys = np.empty(K, dtype=np.uint64)
    step = rows_per_budget(16 * d, _BLOCK_MIB, num_rows=K)
    for a, e in iter_blocks(K, step):
        keys[a:e] = (_bits(W[a:e]) * c[:d]).sum(axis=1, dtype=np.uint64)  # wraps modulo 2^64
        if b is not None:
            keys[a:e] += _bits(b[a:e]) * c[d]
    return keys


def first_equal_rows(W: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``twin[k]`` = the lowest index of a row equal to row ``k`` of ``[W, b]`` (by value).

    Rows are grouped by :func:`row_keys`; within a group of equal keys the rows equal to its
    lowest-indexed member take that index, and the rest (rows whose keys collided) are grouped
    again the same way. Returned on the device of ``W``.
    """
    K = W.shape[0]
    keys = row_keys(W, b)
    order = np.argsort(keys, kind="stable")  # equal keys in increasing row index
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, K])
    twin = np.arange(K, dtype=np.int64)
    for s, n in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        members = order[s : s + n]
        while members.size > 1:
            rows = torch.from_numpy(members).to(W.device)
            first = rows[:1]
            same = (W[rows] == W[first]).all(dim=1)
            if b is not None:
                same &= b[rows] == b[first]
            eq = same.cpu().numpy()
            twin[members[eq]] = members[0]
            members = members[~eq]
    return torch.from_numpy(twin).to(W.device)
