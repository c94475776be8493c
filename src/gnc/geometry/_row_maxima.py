"""One float32 pass over ``W W^T`` that gives every row maximum a head analysis needs (internal).

``gnc head`` needs, for the same ``K x d`` head, (a) each raw row's largest inner product with
another raw row (the argmax screen of :func:`gnc.geometry.argmax.argmaxable`), (b) each row's
largest cosine with another row (the lower bounds ``1 - s_k`` of ``rho``, the nearest-row
distances) and (c) every pair of rows whose cosine is within a tolerance of 1 (coinciding
directions). All three come from the same tile of float32 products of the unit rows: the raw
products (of centred rows, if asked) are the cosines scaled in place by the norms. Each is made
exact (float64) by recomputing only the entries that the rigorous rounding bound

    |fl32(<a, b>) - <a, b>| <= e |a| |b|     (e = :func:`~gnc.geometry._screening.rounding_factor`)

cannot decide, so the GEMM dominates and the pass replaces three (one of them float64).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from gnc._runtime import rows_per_budget
from gnc.geometry._screening import exact_float32_matmul, rounding_factor, scores32
from gnc.geometry.pairwise import iter_blocks

__all__ = ["RowMaxima", "row_bar", "row_maxima"]

_U32 = 2.0**-24


@dataclass(frozen=True)
class RowMaxima:
    """Exact row maxima of one pass over ``W[rows] W^T`` (float64 values).

    Attributes:
        rows: ``(R,)`` the rows of the pass.
        max_cosine: ``(R,)`` ``s_r = max_{j != r} cos(w_r, w_j)`` over all rows ``j``.
        argmax_cosine: ``(R,)`` a row attaining it.
        max_inner: ``(R,)`` ``max_{j != r, raw_columns[j]} <w_r - c, w_j - c>`` of the raw rows
            (NaN for rows outside ``raw_columns`` and when the raw maxima were not asked for).
        raw_columns: ``(K,)`` bool, the columns of ``max_inner`` (``None`` if not asked for).
        center: ``(d,)`` the centre ``c`` of ``max_inner`` (``None``: 0).
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
    center: torch.Tensor | None
    pairs: torch.Tensor
    coincide_tol: float | None
    rechecked: int


def _dots(
    A: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    max_memory_mib: float,
    center: torch.Tensor | None = None,
) -> torch.Tensor:
    """``<A[i[p]] - c, A[j[p]] - c>`` in float64 for every pair ``p`` (``c = 0`` by default)."""
    out = torch.empty(i.numel(), dtype=A.dtype, device=A.device)
    step = rows_per_budget(3 * A.shape[1] * A.element_size(), max_memory_mib, num_rows=i.numel())
    for a, b in iter_blocks(i.numel(), step):
        x, y = A[i[a:b]], A[j[a:b]]
        if center is not None:
            x, y = x - center, y - center
        out[a:b] = (x * y).sum(dim=1)
    return out


def row_bar(total: int, desc: str, progress: bool) -> Any:
    """A transient tqdm bar of rows on stderr (a no-op unless ``progress``)."""
    return tqdm(
        total=total, desc=desc, unit="row", disable=not progress, leave=False, file=sys.stderr
    )


def _gram_tile(G32: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``G32[r] G32^T`` with ``-inf`` where a row meets itself."""
    tile = scores32(G32[r], G32)
    tile[torch.arange(r.numel(), device=G32.device), r] = -torch.inf
    return tile


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
    center: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Exact (float64) row max of a float32 ``tile`` approximating ``<w_r, w_j> scale_r scale_j``.

    Every entry whose true value can reach the true max (``fl >= fl_max - 2 err``, ``err`` the
    entry's rounding bound) is recomputed in float64 from ``W`` (times ``scale``, if given; from
    ``W - center`` if given).
    Returns ``(max, argmax, float32 max, entries recomputed)``; rows that are all ``-inf`` (no
    column counts) get ``-inf`` and argmax ``-1``.
    """
    n = r.numel()
    dev = W.device
    s32 = tile.max(dim=1).values
    thr = _lowered(s32.to(torch.float64) - 2.0 * err)
    cand = (tile >= thr[:, None]).nonzero()
    cand = cand[torch.isfinite(s32[cand[:, 0]])]
    exact = _dots(W, r[cand[:, 0]], cand[:, 1], max_memory_mib, center)
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
    center: torch.Tensor | None = None,
    coincide_tol: float | None = None,
    cosines: bool = True,
    max_memory_mib: float,
    bar: Any = None,
) -> RowMaxima:
    """One tiled float32 pass over ``W[rows] W^T``: exact max cosines, raw maxima, coinciding pairs.

    Args:
        W: ``(K, d)`` float64 rows (not validated here; zero rows only with ``cosines=False``
            and no ``coincide_tol``).
        rows: ``(R,)`` rows of the pass (default: all).
        raw_columns: ``(K,)`` bool: also compute each row's exact max raw inner product over
            these columns (for the rows among them).
        center: ``(d,)`` float64: the raw maxima are those of the centred rows,
            ``max_j <w_r - c, w_j - c>`` (the rows ``w - c`` evaluated in float64).
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
    zero = norms == 0  # only raw maxima are defined for zero rows (done apart, below)
    inv = torch.where(zero, 0.0, 1.0 / norms)
    e = rounding_factor(d)
    # The GEMM runs on the unit rows (its entries are the cosines); the raw maxima come from the
    # same tile scaled in place by the column norms, less the centre's column offsets.
    G32 = (W * inv[:, None]).to(torch.float32)
    # Bounds: e covers float64 -> float32 and the dot product; unit rows in float64 have norms
    # 1 +- a few eps, and scaling by a float32 norm adds two roundings.
    err_cos = e + 4 * _U32
    err_raw: torch.Tensor | float = nmax * (err_cos + 4 * _U32)
    m32 = None
    if center is not None:
        # t_rj = (<w_r, w_j> - m_j) / n_r with m_j = <w_j, c>: the float32 roundings of
        # 1 / n_r, m_j, their product and the sum add at most 6 u |c| nmax / n_r (and 2 u on t).
        cn = float(center.norm())
        m32 = (W @ center).to(torch.float32)
        err_raw = nmax * (err_cos + 6 * _U32) + 6 * _U32 * cn * nmax * inv
    n32 = norms.to(torch.float32)
    inv32 = inv.to(torch.float32)
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
            tile = _gram_tile(G32, r)
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
                tile.mul_(n32[None, :])  # n_j cos(w_r, w_j) = <w_r, w_j> / n_r
                if m32 is not None:
                    tile.addr_(-inv32[r], m32)
                if cols_off is not None and cols_off.numel():
                    tile[:, cols_off] = -torch.inf
                tile[zero[r]] = -torch.inf
                er = err_raw if isinstance(err_raw, float) else err_raw[r]
                v, _, _, n = _exact_max(W, None, tile, r, er, max_memory_mib, center)
                smax[a:b] = torch.where(raw_columns[r], v, torch.nan)
                rechecked += n
            del tile
            if bar is not None:
                bar.update(b - a)
    if raw_columns is not None:
        # Zero rows (a tile row scaled by 1 / |w_r| cannot hold them): one float64 product each.
        c = torch.zeros(d, dtype=W.dtype, device=dev) if center is None else center
        for p in (zero[rows] & raw_columns[rows]).nonzero(as_tuple=True)[0].tolist():
            k = int(rows[p])
            v = (W - c) @ (W[k] - c)
            v[k] = -torch.inf
            smax[p] = v.masked_fill(~raw_columns, -torch.inf).max()
    return RowMaxima(
        rows=rows,
        max_cosine=s,
        argmax_cosine=arg,
        max_inner=smax,
        raw_columns=raw_columns,
        center=center,
        pairs=torch.cat(pairs) if pairs else torch.empty(0, 2, dtype=torch.long, device=dev),
        coincide_tol=coincide_tol,
        rechecked=rechecked,
    )
