"""One float32 pass over ``W W^T`` that gives every row maximum a head analysis needs (internal).

``gnc head`` needs, for the same ``K x d`` head, (a) each raw row's largest inner product with
another raw row (the argmax screen of :func:`gnc.geometry.argmax.argmaxable`), (b) each row's
largest cosine with another row (the lower bounds ``1 - s_k`` of ``rho``, the nearest-row
distances) and (c) every pair of rows whose cosine is within a tolerance of 1 (coinciding
directions). All three come from the same tile of float32 inner products: the cosines are the
raw products scaled by the inverse norms. Each is made exact (float64) by recomputing only the
entries that the rigorous rounding bound

    |fl32(<a, b>) - <a, b>| <= e |a| |b|     (e = :func:`~gnc.geometry._screening.rounding_factor`)

cannot decide, so the GEMM dominates and the pass replaces three (one of them float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry._screening import exact_float32_matmul, rounding_factor
from gnc.geometry.pairwise import iter_blocks

__all__ = ["RowMaxima", "row_maxima"]

_U32 = 2.0**-24


@dataclass(frozen=True)
class RowMaxima:
    """Exact row maxima of one pass over ``W[rows] W^T`` (float64 values).

    Attributes:
        rows: ``(R,)`` the rows of the pass.
        max_cosine: ``(R,)`` ``s_r = max_{j != r} cos(w_r, w_j)`` over all rows ``j``.
        argmax_cosine: ``(R,)`` a row attaining it.
        max_inner: ``(R,)`` ``max_{j != r, raw_columns[j]} <w_r, w_j>`` of the raw rows (NaN for
            rows outside ``raw_columns`` and when the raw maxima were not asked for).
        raw_columns: ``(K,)`` bool, the columns of ``max_inner`` (``None`` if not asked for).
        pairs: ``(P, 2)`` long pairs ``i < j`` (indices into ``W``) with
            ``cos(w_i, w_j) >= 1 - coincide_tol`` in float64 (empty if not asked for).
        coincide_tol: The tolerance of ``pairs`` (``None`` if not asked for).
        rechecked: Entries recomputed in float64.
    """

    rows: torch.Tensor
    max_cosine: torch.Tensor
    argmax_cosine: torch.Tensor
    max_inner: torch.Tensor
    raw_columns: torch.Tensor | None
    pairs: torch.Tensor
    coincide_tol: float | None
    rechecked: int


def _dots(A: torch.Tensor, i: torch.Tensor, j: torch.Tensor, max_memory_mib: float) -> torch.Tensor:
    """``<A[i[p]], A[j[p]]>`` in float64 for every pair ``p``, chunked by memory."""
    out = torch.empty(i.numel(), dtype=A.dtype, device=A.device)
    step = rows_per_budget(2 * A.shape[1] * A.element_size(), max_memory_mib, num_rows=i.numel())
    for a, b in iter_blocks(i.numel(), step):
        out[a:b] = (A[i[a:b]] * A[j[a:b]]).sum(dim=1)
    return out


def _lowered(x: torch.Tensor) -> torch.Tensor:
    """Float64 thresholds rounded down safely to float32 (so ``fl32 >= result`` loses nothing)."""
    return (x - 2 * _U32 * x.abs() - 1e-300).to(torch.float32)


def _exact_max(
    W: torch.Tensor,
    scale: torch.Tensor | None,
    tile: torch.Tensor,
    r: torch.Tensor,
    err: torch.Tensor | float,
    max_memory_mib: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Exact (float64) row max of a float32 ``tile`` approximating ``<w_r, w_j> scale_r scale_j``.

    Every entry whose true value can reach the true max (``fl >= fl_max - 2 err``, ``err`` the
    entry's rounding bound) is recomputed in float64 from ``W`` (times ``scale``, if given).
    Returns ``(max, argmax, float32 max, entries recomputed)``; rows that are all ``-inf`` (no
    column counts) get ``-inf`` and argmax ``-1``.
    """
    n = r.numel()
    dev = W.device
    s32 = tile.max(dim=1).values
    thr = _lowered(s32.to(torch.float64) - 2.0 * err)
    cand = (tile >= thr[:, None]).nonzero()
    cand = cand[torch.isfinite(s32[cand[:, 0]])]
    exact = _dots(W, r[cand[:, 0]], cand[:, 1], max_memory_mib)
    if scale is not None:
        exact = exact * scale[r[cand[:, 0]]] * scale[cand[:, 1]]
    best = torch.full((n,), -torch.inf, dtype=torch.float64, device=dev)
    best.scatter_reduce_(0, cand[:, 0], exact, reduce="amax")
    hit = exact == best[cand[:, 0]]
    K = W.shape[0]
    first = torch.full((n,), K, dtype=torch.long, device=dev)
    first.scatter_reduce_(0, cand[hit, 0], cand[hit, 1], reduce="amin")
    return best, torch.where(first < K, first, -1), s32, int(cand.shape[0])


def row_maxima(
    W: torch.Tensor,
    *,
    rows: torch.Tensor | None = None,
    raw_columns: torch.Tensor | None = None,
    coincide_tol: float | None = None,
    cosines: bool = True,
    max_memory_mib: float,
    bar: Any = None,
) -> RowMaxima:
    """One tiled float32 pass over ``W[rows] W^T``: exact max cosines, raw maxima, coinciding pairs.

    Args:
        W: ``(K, d)`` float64 rows, none zero (not validated here).
        rows: ``(R,)`` rows of the pass (default: all).
        raw_columns: ``(K,)`` bool: also compute each row's exact max raw inner product over
            these columns (for the rows among them).
        coincide_tol: Also return the pairs with ``cos >= 1 - coincide_tol`` (exact in float64).
        cosines: Compute the max cosines (``False``: only the raw maxima; ``max_cosine`` is NaN).
        max_memory_mib: Budget of one ``(rows, K)`` tile and its temporaries.
        bar: Optional tqdm bar, advanced by rows.

    Returns:
        A :class:`RowMaxima`.
    """
    K, d = W.shape
    dev = W.device
    rows = torch.arange(K, device=dev) if rows is None else rows
    R = rows.numel()
    norms = W.norm(dim=1)
    nmax = float(norms.max())
    inv = 1.0 / norms
    e = rounding_factor(d)
    normalized = cosines or coincide_tol is not None
    # The GEMM runs on the unit rows (its entries are the cosines) unless only raw maxima are
    # asked for; the raw maxima then come from the same tile scaled by the column norms.
    G32 = (W * inv[:, None] if normalized else W).to(torch.float32)
    # Bounds: e covers float64 -> float32 and the dot product; unit rows in float64 have norms
    # 1 +- a few eps, and scaling by a float32 norm adds two roundings.
    err_cos = e + 4 * _U32
    err_raw: torch.Tensor | float = nmax * (err_cos + 4 * _U32) if normalized else e * norms * nmax
    n32 = norms.to(torch.float32)
    s = torch.full((R,), torch.nan, dtype=torch.float64, device=dev)
    arg = torch.full((R,), -1, dtype=torch.long, device=dev)
    smax = torch.full((R,), torch.nan, dtype=torch.float64, device=dev)
    pairs: list[torch.Tensor] = []
    rechecked = 0
    cols_off = None if raw_columns is None else (~raw_columns).nonzero(as_tuple=True)[0]
    step = rows_per_budget(8 * K, max_memory_mib, num_rows=R)
    dup_thr = None
    if coincide_tol is not None:
        dup_thr = _lowered(torch.tensor(1.0 - coincide_tol - err_cos, dtype=torch.float64))
    with exact_float32_matmul(dev):
        for a, b in iter_blocks(R, step):
            r = rows[a:b]
            ar = torch.arange(b - a, device=dev)
            tile = G32[r] @ G32.T
            tile[ar, r] = -torch.inf
            if cosines:
                s[a:b], arg[a:b], s32, n = _exact_max(W, inv, tile, r, err_cos, max_memory_mib)
                rechecked += n
            if dup_thr is not None and coincide_tol is not None:
                if not cosines:
                    s32 = tile.max(dim=1).values
                near = (s32 >= dup_thr).nonzero(as_tuple=True)[0]  # rows with a candidate
                cand = (tile[near] >= dup_thr).nonzero()
                i, j = r[near[cand[:, 0]]], cand[:, 1]
                keep = i < j
                i, j = i[keep], j[keep]
                exact = _dots(W, i, j, max_memory_mib) * inv[i] * inv[j]
                rechecked += int(i.numel())
                ok = exact >= 1.0 - coincide_tol
                pairs.append(torch.stack([i[ok], j[ok]], dim=1))
            if raw_columns is not None and bool(raw_columns[r].any()):
                if normalized:
                    tile.mul_(n32[None, :])  # n_j cos(w_r, w_j) = <w_r, w_j> / n_r
                if cols_off is not None and cols_off.numel():
                    tile[:, cols_off] = -torch.inf
                er = err_raw if normalized else err_raw[r]  # type: ignore[index]
                v, _, _, n = _exact_max(W, None, tile, r, er, max_memory_mib)
                smax[a:b] = torch.where(raw_columns[r], v, torch.nan)
                rechecked += n
            del tile
            if bar is not None:
                bar.update(b - a)
    return RowMaxima(
        rows=rows,
        max_cosine=s,
        argmax_cosine=arg,
        max_inner=smax,
        raw_columns=raw_columns,
        pairs=torch.cat(pairs) if pairs else torch.empty(0, 2, dtype=torch.long, device=dev),
        coincide_tol=coincide_tol,
        rechecked=rechecked,
    )
