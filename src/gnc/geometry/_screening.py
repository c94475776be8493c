"""Float32 passes over ``W W^T`` and ``W x`` under rigorous rounding bounds (internal).

Every inner product here is computed by a float32 GEMM and then decided with the a-priori bound

    |fl32(<a, b>) - <a, b>| <= gamma_{d+2} |a| |b|,    gamma_n = n u / (1 - n u),  u = 2^-24,

which covers the rounding of both float64 operands to float32 (``2u``) and the float32 dot product
in any summation order (``gamma_d``; Higham, *Accuracy and Stability of Numerical Algorithms*,
3.1). Entries the bound does not decide are recomputed in float64 from their indices. TF32 is
switched off for these GEMMs (it has no useful bound). With enough rows on a CPU, the passes of
the all-classes solver are int8 GEMMs instead, under the bounds of :mod:`gnc.geometry._int8`.

Over 600 lines as one idea: every screen of the exact solvers (the neighbour pass, the exact
row maxima, the float32, streamed and int8 certifications) shares the same float32 score tiles
(:func:`scores32`), the same bound, the same float64
rechecks of the entries it leaves open and the same violator ranking; split apart, those
shared pieces would be imported back and forth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry import _compiled, _compiled_int8, _sweep
from gnc.geometry._int8 import Int8Rows, quantize, rounding_slack, scores
from gnc.geometry.pairwise import iter_blocks

__all__: list[str] = []

_U32 = 2.0**-24


def gamma(n: int, u: float = 2.0**-53) -> float:
    """``gamma_n = n u / (1 - n u)``: the relative error bound of ``n`` rounded operations.

    ``u`` is the unit roundoff (default float64's; ``2^-24`` for float32).

    Example:
        >>> gamma(2, 0.25)
        1.0
    """
    return n * u / (1.0 - n * u)


def rounding_factor(d: int) -> float:
    """``e`` with ``|fl32(<a, b>) - <a, b>| <= e |a| |b|`` for float64 ``a, b`` of length ``d``.

    ``gamma_{d+2}`` with a 1 % margin, plus the rounding of the float32 result itself.
    """
    return 1.01 * gamma(d + 2, _U32) + 2 * _U32


@contextlib.contextmanager
def exact_float32_matmul(device: torch.device) -> Iterator[None]:
    """Disable TF32 matmuls on CUDA for the duration (their rounding error has no useful bound)."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


# Tiles of :func:`scores32` on a CPU: query rows x rows of W per GEMM. A short wide product
# ``(256, 640) x (640, 65,536)`` runs MKL's float32 GEMM at 37-40 GFlop/s on one AVX2 core; the
# same product as transposed ``(512, 640) x (640, 256)`` tiles, each copied into place, at
# 54-60 (1,024 query rows: 44 either way; the benchmark's 1,170-row blocks of a pass over 65,536
# rows: 2.0-2.1 s against 2.4-2.7 s).
_SCORE_QUERY_ROWS = 256
_SCORE_W_ROWS = 512


def scores32(Q: torch.Tensor, W32: torch.Tensor) -> torch.Tensor:
    """``Q W32^T`` as a ``(T, K)`` float32 tile (the caller disables TF32 on CUDA).

    On a CPU it is computed as cache-sized transposed tiles (see :data:`_SCORE_W_ROWS`); each
    entry is still one float32 dot product of length ``d``, so the bound of
    :func:`rounding_factor` holds whatever the order of its sums.
    """
    if Q.device.type != "cpu":
        return Q @ W32.T
    T, K = Q.shape[0], W32.shape[0]
    out = torch.empty(T, K, dtype=torch.float32)
    buf = torch.empty(_SCORE_W_ROWS, min(T, _SCORE_QUERY_ROWS), dtype=torch.float32)
    for r0, r1 in iter_blocks(T, _SCORE_QUERY_ROWS):
        q = Q[r0:r1].T
        for a, b in iter_blocks(K, _SCORE_W_ROWS):
            tile = buf[: b - a, : r1 - r0]
            torch.mm(W32[a:b], q, out=tile)
            out[r0:r1, a:b] = tile.T
    return out


# Columns per chunk of :func:`extreme_k`. Measured on a (256, 65,536) float32 tile, one thread
# of an AVX2 EPYC: torch.topk of the 32 smallest 42 ms (unsorted 37 ms), chunks of 64 columns
# 20 ms (128: 25 ms, 256: 30 ms, 512: 70 ms).
_EXTREME_CHUNK = 64


def extreme_k(
    g: torch.Tensor, k: int, *, largest: bool = False, sorted: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``g.topk(k, dim=1, largest=largest)`` of a 2-d tile, from the extremes of column chunks.

    The ``k`` smallest entries of a row lie in the ``k`` chunks of smallest minimum (and the
    columns past the last whole chunk, always taken): an entry of any other chunk is at least
    that chunk's minimum, which is at least each of the ``k`` chosen minima, so ``k`` entries
    of the chosen chunks come before it (or tie with it).
    One reduction over the tile and a ``topk`` over ``k`` chunks replace the ``topk`` over
    every column: the same values, and the same indices up to the order of ties. Falls back to
    :func:`torch.topk` on tiles too narrow for it to pay (or not on a CPU, where it was not
    measured).
    """
    T, K = g.shape
    c = _EXTREME_CHUNK
    narrow = 4 * c * k > K
    if narrow or g.device.type != "cpu" or g.stride(1) != 1 or not g.is_floating_point():
        return g.topk(k, dim=1, largest=largest, sorted=sorted)
    n_full = K // c
    full = n_full * c
    reduce = torch.amax if largest else torch.amin
    ext = reduce(g[:, :full].view(T, n_full, c), dim=2)
    chunks = ext.topk(k, dim=1, largest=largest, sorted=False).indices
    cols = (chunks[:, :, None] * c + torch.arange(c, device=g.device)).reshape(T, k * c)
    if full < K:  # the columns past the last whole chunk are always candidates
        tail = torch.arange(full, K, device=g.device).expand(T, K - full)
        cols = torch.cat([cols, tail], dim=1)
    vals = g.gather(1, cols)
    v, j = vals.topk(k, dim=1, largest=largest, sorted=sorted)
    return v, cols.gather(1, j)


#: Select an int8 ranking's extremes with the compiled kernel (scaling fused) on a CPU with numba.
COMPILED_TOP_K = True


def scaled_extreme_k(ip: torch.Tensor, scale: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Columns ``(T, k)``, unsorted, of the ``k`` largest (or smallest) entries of ``ip * scale``.

    ``ip`` ``(T, K)`` float32 (a scratch tile: it may be scaled in place), ``scale`` ``(K,)``
    float32, positive. On a CPU with numba one compiled sweep per row selects them without a
    scaled copy (:func:`gnc.geometry._compiled_int8.scaled_top_k`: the same products, the same
    values selected, ties possibly broken otherwise); else :func:`extreme_k` of the product.
    """
    if COMPILED_TOP_K and _compiled.AVAILABLE and ip.device.type == "cpu":
        return _compiled_int8.scaled_top_k(ip, scale, k, largest)
    return extreme_k(ip.mul_(scale[None, :]), k, largest=largest, sorted=False)[1]


# Chunks (MiB) of the gathered rows of the float64 rechecks on a CPU: chunks that stay in cache
# are ~20x faster than budget-sized ones (120,000 pairs of 640-d rows, one thread: 0.16 s in
# 4 MiB chunks, 0.28 s in 16 MiB, 3.4 s in 1 GiB).
_PAIRS_CPU_MIB = 4.0
#: Recompute float64 pairs with the compiled loop on a CPU with numba.
COMPILED_PAIRS = True


def _pairs_dot(
    A: torch.Tensor, B: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, max_memory_mib: float
) -> torch.Tensor:
    """``<A[ia[p]], B[ib[p]]>`` in the dtype of ``A`` for every pair ``p``, chunked by memory.

    On a CPU with numba, float64 rows are read in place by a compiled loop
    (:func:`gnc.geometry._compiled.pairs_dot`: 2.5 -> 1.3 us a pair of random 640-d rows of
    a 65,536-row matrix, no gathered copies).
    """
    if (
        COMPILED_PAIRS
        and _compiled.AVAILABLE
        and A.device.type == "cpu"
        and A.dtype == B.dtype == torch.float64
        and A.is_contiguous()
        and B.is_contiguous()
    ):
        return _compiled.pairs_dot(A, B, ia, ib)
    P = ia.numel()
    d = A.shape[1]
    if A.device.type == "cpu":
        max_memory_mib = min(max_memory_mib, _PAIRS_CPU_MIB)
    out = torch.empty(P, dtype=A.dtype, device=A.device)
    step = rows_per_budget(2 * d * A.element_size(), max_memory_mib, num_rows=P)
    for a, b in iter_blocks(P, step):
        # index_select copies whole rows (faster than advanced indexing on a CPU).
        rows_a = torch.index_select(A, 0, ia[a:b])
        out[a:b] = (rows_a * torch.index_select(B, 0, ib[a:b])).sum(dim=1)
    return out


def _max_candidates(ip: torch.Tensor, s32: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """``(P, 2)`` (row, column) of the float32 entries whose true value can reach the row max.

    ``err`` bounds each row's float32 error: a true value can reach the true max only where
    ``fl >= fl_max - 2 err`` (the threshold itself rounded down in float32).
    """
    thr = s32.to(err.dtype) - 2.0 * err
    thr = (thr - 2 * _U32 * thr.abs()).to(torch.float32)
    return (ip >= thr[:, None]).nonzero()


def _exact_max(
    W: torch.Tensor, r: torch.Tensor, cand: torch.Tensor, j32: torch.Tensor, max_memory_mib: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 max over the candidates of each row of ``r``, and the first column attaining it."""
    K = W.shape[0]
    n = r.numel()
    exact = _pairs_dot(W, W, r[cand[:, 0]], cand[:, 1], max_memory_mib / 4)
    best = torch.full((n,), -torch.inf, dtype=W.dtype, device=W.device)
    best.scatter_reduce_(0, cand[:, 0], exact, reduce="amax")
    # Rows where the candidate set is empty cannot happen (the float32 max itself is a
    # candidate); keep the argmax of the exact values.
    hit = exact == best[cand[:, 0]]
    first = torch.full((n,), K, dtype=torch.long, device=W.device)
    first.scatter_reduce_(0, cand[hit, 0], cand[hit, 1], reduce="amin")
    return best, torch.where(first < K, first, j32)


@dataclass
class NeighbourPass:
    """What one float32 pass over ``W W^T`` leaves behind.

    Attributes:
        neighbours: ``(R, m)`` indices of each row's ``m`` nearest other rows (Euclidean), or
            ``None`` when ``m = 0``.
        max_inner: ``(R,)`` exact (float64) ``s_r = max_{j != r} <w_r, w_j>``.
        argmax: ``(R,)`` a row attaining it.
        rechecked: Number of entries recomputed in float64.
    """

    neighbours: torch.Tensor | None
    max_inner: torch.Tensor
    argmax: torch.Tensor
    rechecked: int


def neighbour_pass(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    num_neighbours: int,
    *,
    unit_rows: bool,
    exact_max: bool,
    max_memory_mib: float,
    bar: Any = None,
    q8: Int8Rows | None = None,
) -> NeighbourPass:
    """One tiled float32 pass ``W[rows] W^T``: top-``m`` neighbours and the exact max inner product.

    The max ``s_r`` is exact in float64: every entry within twice the rounding bound of the
    float32 row max is recomputed in float64 (rows with thousands of exact ties included).
    With ``q8`` (only without ``exact_max``) the tiles are int8 GEMMs instead: the neighbours are
    then ranked by approximate inner products (they only seed working sets) and ``max_inner`` is
    approximate too.

    Args:
        W: ``(K, d)`` float64 rows.
        W32: The same rows in float32.
        rows: ``(R,)`` the rows of this pass.
        num_neighbours: ``m`` (0: only the max).
        unit_rows: Rows have norm 1 (neighbours by inner product, no norm correction).
        exact_max: Recompute the max in float64 (otherwise ``max_inner`` is the float32 max).
        max_memory_mib: Budget of one ``(rows, K)`` tile.
        bar: Optional tqdm bar, advanced by rows.
        q8: The rows quantized to int8 (:mod:`gnc.geometry._int8`), for an int8 pass
            (``torch._int_mm`` rows: their queries are the rows' own 127-level codes).
    """
    if q8 is not None and q8.packed is not None:
        raise ValueError("Expected int8 rows for torch._int_mm, but got packed rows.")
    if q8 is not None and exact_max:
        raise ValueError("The int8 pass gives approximate maxima only: pass exact_max=False.")
    K, d = W.shape
    dev = W.device
    R = rows.numel()
    m = min(num_neighbours, K - 1)
    norms = W.norm(dim=1)
    nmax = float(norms.max())
    e = rounding_factor(d)
    sq32 = None if unit_rows else (W * W).sum(dim=1).to(torch.float32)
    nbrs = torch.empty(R, m, dtype=torch.long, device=dev) if m > 0 else None
    smax = torch.empty(R, dtype=W.dtype, device=dev)
    arg = torch.empty(R, dtype=torch.long, device=dev)
    rechecked = 0
    step = rows_per_budget((14 if unit_rows else 22) * K, max_memory_mib, num_rows=R)
    with exact_float32_matmul(dev):
        for a, b in iter_blocks(R, step):
            r = rows[a:b]
            ar = torch.arange(b - a, device=dev)
            row_scale = None
            if q8 is None:
                ip = scores32(W32[r], W32)
            else:  # <q_r, q_j> s_j: the row's own scale only where the ranking needs it
                ip = scores(q8, q8.qt[:, r].T.contiguous())
                row_scale = q8.scale32[r]
                if not unit_rows:
                    ip.mul_(row_scale[:, None])
                    row_scale = None
            ip[ar, r] = -torch.inf
            if nbrs is not None:
                if unit_rows:
                    nbrs[a:b] = ip.topk(m, dim=1, sorted=False).indices
                else:
                    assert sq32 is not None
                    nbrs[a:b] = (2.0 * ip - sq32[None, :]).topk(m, dim=1, sorted=False).indices
            s32, j32 = ip.max(dim=1)
            if row_scale is not None:
                s32 = s32 * row_scale
            if not exact_max:
                smax[a:b], arg[a:b] = s32.to(W.dtype), j32
                del ip
                if bar is not None:
                    bar.update(b - a)
                continue
            cand = _max_candidates(ip, s32, e * norms[r] * nmax)
            del ip
            rechecked += cand.shape[0]
            smax[a:b], arg[a:b] = _exact_max(W, r, cand, j32, max_memory_mib)
            if bar is not None:
                bar.update(b - a)
    return NeighbourPass(nbrs, smax, arg, rechecked)


@dataclass
class Certification:
    """Float32 certification of a batch of candidate hull points ``x`` against all rows.

    Attributes:
        gmin: ``(T,)`` rigorous lower bound on ``min_{j != k} <w_j - w_k, x>`` when ``decided``
            (at most ``|x|^2``; the exact minimum over the undecided entries otherwise).
        violated: ``(T,)`` whether some row violates optimality by more than the tolerance.
        candidates: ``(T, n)`` most violating rows outside the working set.
        candidates_ok: ``(T, n)`` which of them violate by more than the tolerance.
        rechecked: Entries recomputed in float64.
        kept: With a keep ``margin`` (streamed certifications only): the entries ``(class,
            row)`` kept by the sweep, with rigorous lower bounds of ``<w_j, x_k>``.
        floor: ``(T,)`` with ``kept``: ``<w_j, x_k> >= floor_k`` for every other row ``j`` off
            the working set and ``j != k`` (``-inf`` for a class that kept too many entries).
    """

    gmin: torch.Tensor
    violated: torch.Tensor
    candidates: torch.Tensor
    candidates_ok: torch.Tensor
    rechecked: int
    kept: tuple[torch.Tensor, torch.Tensor] | None = None
    floor: torch.Tensor | None = None


def certify(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    x: torch.Tensor,
    working_set: torch.Tensor,
    viol_tol: torch.Tensor,
    num_candidates: int,
    max_memory_mib: float,
    max_norm: float,
    q8: Int8Rows | None = None,
    margin: torch.Tensor | None = None,
) -> Certification:
    """Check ``<w_j - w_k, x_k> >= |x_k|^2`` for all ``j != k`` with one float32 GEMM.

    With ``q8`` the GEMM is an int8 one under the bounds of :mod:`gnc.geometry._int8`
    (:func:`_certify_int8`); the result means the same. With ``margin`` ``(T,)`` a streamed
    certification also keeps every entry less than ``margin_k`` above class ``k``'s threshold
    (up to :data:`_KEPT_CAP` a class) and returns them with ``kept`` and ``floor``, the row
    bounds from which :mod:`gnc.geometry._recertify` checks the next round's points.

    Args:
        W: ``(K, d)`` float64 rows.
        W32: The same rows in float32.
        rows: ``(T,)`` the classes ``k``.
        x: ``(T, d)`` float64 candidates ``x_k = p_k - w_k``.
        working_set: ``(T, m)`` rows already in each working set (excluded from ``candidates``).
        viol_tol: ``(T,)`` violation tolerance.
        num_candidates: Violators returned per class.
        max_memory_mib: Budget for the float64 rechecks.
        max_norm: ``max_j |w_j|``.
        q8: The rows quantized to int8, for the int8 GEMM.
        margin: ``(T,)`` keep margin of the row bounds (see above), or None.
    """
    if q8 is not None:
        return _certify_int8(
            W, W32, q8, rows, x, working_set, viol_tol, num_candidates, max_memory_mib
        )
    th = _thresholds(W, rows, x, max_norm)
    if W.device.type == "cpu" and W.shape[0] >= _STREAM_MIN_ROWS:
        return _certify_streamed(
            W, W32, rows, x, th, working_set, viol_tol, num_candidates, max_memory_mib, margin
        )
    n2, c, base, err = th
    K = W.shape[0]
    dev = W.device
    T = rows.numel()
    ar = torch.arange(T, device=dev)
    with exact_float32_matmul(dev):
        g = scores32(x.to(torch.float32), W32)  # (T, K)
    g[ar, rows] = torch.inf
    hi = (base + err).to(torch.float32)
    lo = (base - err - viol_tol).to(torch.float64)
    fmin = g.min(dim=1).values
    definite = fmin.to(torch.float64) < lo
    # Entries the bound does not decide, for the classes without a certain violator only (the
    # (T, K) tile is not swept again for the others).
    nd = (~definite).nonzero().squeeze(1)
    und = (g[nd] < hi[nd, None]).nonzero()
    pairs = torch.stack([nd[und[:, 0]], und[:, 1]], dim=1)
    del und
    exact = _pairs_dot(W, x, pairs[:, 1], pairs[:, 0], max_memory_mib) - c[pairs[:, 0]]
    gmin_definite = (fmin.to(torch.float64) - err - 4 * _U32 * fmin.abs()) - c
    gmin, violated = _settle(definite, gmin_definite, pairs, exact, n2, viol_tol)
    # The most violating rows off the working set: ranked by the float32 scores themselves (a
    # constant per class away from the violation) where a violator is certain, by the
    # violations (exact where recomputed) for the few others.
    g.scatter_(1, working_set, torch.inf)
    n = min(num_candidates, K - 1)
    ok = torch.zeros(T, n, dtype=torch.bool, device=dev)
    idx, vd, vd_vals, vu, vu_vals = _rank_violators(
        g, definite, violated, pairs, exact, n2, base, torch.ones_like(base), n
    )
    ok[vd] = vd_vals.to(torch.float64) - base[vd, None] < -viol_tol[vd, None]
    ok[vu] = vu_vals.to(torch.float64) < -viol_tol[vu, None]
    return Certification(gmin, violated, idx, ok, int(pairs.shape[0]))


# Rows from which a CPU certification streams cache-sized tiles (:func:`_certify_streamed`)
# instead of filling a ``(T, K)`` score tile. Measured on one AVX2 core with the Gemma 3 head:
# every certification of 4,096 classes against 65,536 rows 27.3-27.9 s -> 21.7-23.6 s; of all
# 16,384 classes of the first 16,384 rows 22.1-22.3 s -> 23.2-23.8 s (a 16 MiB tile stays in
# the cache there).
_STREAM_MIN_ROWS = 32768
# Rows per group of the streamed certification's running bound on each class's ``n``-th smallest
# score (a power of two: the groups tile the ``_SCORE_W_ROWS``-row tiles).
_STREAM_CHUNK = 16
# Entries a class may keep for its row bounds (beyond those it keeps for the certification):
# past it the class keeps no bounds (measured on the Gemma 3 head, 65,536 rows: a keep margin of
# 0.02 |x| keeps ~240 rows a class on average, a few classes ~8,000; 0.04 |x| ~930 and ~15,000).
_KEPT_CAP = 4096


def _certify_streamed(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    x: torch.Tensor,
    thresholds: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    working_set: torch.Tensor,
    viol_tol: torch.Tensor,
    n: int,
    max_memory_mib: float,
    margin: torch.Tensor | None = None,
) -> Certification:
    """:func:`certify` on a CPU without a ``(T, K)`` score tile: one cache-sized tile at a time.

    ``thresholds`` are :func:`_thresholds` of ``x``.

    Each ``(rows of W, T)`` tile of ``W x^T`` is used while it is in cache and then dropped:

    - its column minima update each class's smallest score (the class's own row masked);
    - a class is *open* while that minimum leaves a violation uncertain. Of an open class every
      entry below its upper threshold is kept, to be recomputed in float64 as :func:`certify`
      does (its working set, a corral in the solver, whose entries sit at the threshold, is
      recomputed whole instead of being found tile by tile);
    - of a class with a certain violator only the entries that can still be among its ``n``
      most violating rows off the working set are kept: those at most ``tau``, the largest of
      the ``n`` smallest minima of disjoint ``_STREAM_CHUNK``-row groups (working set masked)
      of the tiles so far (``n`` such rows score at most ``tau``; updated after every tile by
      the compiled sweep, after tiles 1, 2, 4, 8, ... by the tensor one: see
      :mod:`gnc.geometry._sweep`). Column minima pick the few columns compared entry by entry.

    The bound, the thresholds and the float64 rechecks are those of :func:`certify`, so
    ``gmin`` and ``violated`` are the same, and so are the candidates up to the order of ties.
    Writing a ``(T, K)`` tile out of cache and reading it back is what this saves: at 65,536
    rows and 256 classes, ~0.2 s of a ~0.7 s certification (a 64 MiB tile).
    """
    K = W.shape[0]
    dev = W.device
    T = rows.numel()
    n2, c, base, err = thresholds
    hi = (base + err).to(torch.float32)
    lo = base - err - viol_tol
    n = min(n, K - 1)
    tr = _SCORE_W_ROWS
    ch = _STREAM_CHUNK
    while tr % ch:  # groups tile the tiles
        ch //= 2
    n_tiles = -(-K // tr)
    q = x.to(torch.float32).T
    buf = torch.empty(min(K, tr), T, dtype=torch.float32, device=dev)
    fmin = torch.full((T,), torch.inf, dtype=torch.float32, device=dev)
    ar = torch.arange(T, device=dev)
    # The classes' own rows and working sets by tile, as flat indices (row in tile * T + class).
    s_ord, s_at = _sweep.tile_slices(rows, tr, n_tiles)
    s_flat = rows[s_ord] % tr * T + s_ord
    ws_r = working_set.reshape(-1)
    w_ord, w_at = _sweep.tile_slices(ws_r, tr, n_tiles)
    w_flat = ws_r[w_ord] % tr * T + ar.repeat_interleave(working_set.shape[1])[w_ord]
    open_ = torch.ones(T, dtype=torch.bool, device=dev)
    sweep = _sweep.compiled if _sweep.COMPILED and _compiled.AVAILABLE else _sweep.tensors
    if margin is None:
        line = torch.full((T,), -torch.inf, dtype=torch.float32, device=dev)
    else:
        line = (base + margin).to(torch.float32)
    own_f, ws_f = (s_flat, s_at), (w_flat, w_at)
    tiles = _sweep.Tiles(W32, q, buf, own_f, ws_f, ch, n, lo, hi, line, _KEPT_CAP)
    kept, vals, thr = sweep(tiles, fmin, open_)
    definite = ~open_
    # Recomputed in float64: the kept entries of the open classes below their upper threshold
    # (those above it were kept for the row bounds only) and their working sets.
    own = working_set != rows[:, None]
    ws_pairs = torch.stack([ar[:, None].expand_as(working_set)[own], working_set[own]], dim=1)
    on_open = ~definite[kept[:, 0]]
    recheck = on_open & (vals < hi[kept[:, 0]])
    pairs = torch.cat([kept[recheck], ws_pairs[~definite[ws_pairs[:, 0]]]])
    exact = _pairs_dot(W, x, pairs[:, 1], pairs[:, 0], max_memory_mib) - c[pairs[:, 0]]
    f64 = fmin.to(torch.float64)
    gmin_definite = (f64 - err - 4 * _U32 * f64.abs()) - c
    gmin, violated = _settle(definite, gmin_definite, pairs, exact, n2, viol_tol)
    # Certain violators: ranked by their float32 scores (a constant per class away from the
    # violation); the others by their exact violations (all their violators were recomputed).
    idx, v = _smallest_per_class(kept[~on_open, 0], kept[~on_open, 1], vals[~on_open], T, n)
    ok = v.to(torch.float64) - base[:, None] < -viol_tol[:, None]
    vu = violated & ~definite
    n_kept = int(recheck.sum())
    pk, pj = pairs[:n_kept, 0], pairs[:n_kept, 1]
    tu = vu[pk]
    idx_u, v_u = _smallest_per_class(pk[tu], pj[tu], exact[:n_kept][tu] - n2[pk[tu]], T, n)
    idx = torch.where(vu[:, None], idx_u, idx)
    ok = torch.where(vu[:, None], v_u < -viol_tol[:, None], ok & definite[:, None])
    if margin is None:
        return Certification(gmin, violated, idx, ok, int(pairs.shape[0]))
    # Row bounds: a kept score is within err of <w_j, x_k>; every other entry (off the own row
    # and working set) scored at least the last keep threshold.
    lb = vals.to(torch.float64) - err[kept[:, 0]]
    floor = torch.where(torch.isfinite(line), thr.to(torch.float64) - err, -torch.inf)
    return Certification(gmin, violated, idx, ok, int(pairs.shape[0]), (kept, lb), floor)


def _smallest_per_class(
    k: torch.Tensor, j: torch.Tensor, v: torch.Tensor, T: int, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class ``t < T``, the ``n`` entries ``(k, j, v)`` with ``k = t`` of smallest ``v``.

    Returns ``(rows, values)``, ``(T, n)``: the ``j`` and ``v`` of those entries in increasing
    ``v``, padded with row 0 and ``+inf``.
    """
    dev = k.device
    order = torch.argsort(v, stable=True)
    order = order[torch.argsort(k[order], stable=True)]
    k, j, v = k[order], j[order], v[order]
    rank = torch.arange(k.numel(), device=dev) - torch.searchsorted(k, k, side="left")
    take = rank < n
    rows = torch.zeros(T, n, dtype=torch.long, device=dev)
    vals = torch.full((T, n), torch.inf, dtype=v.dtype, device=dev)
    rows[k[take], rank[take]] = j[take]
    vals[k[take], rank[take]] = v[take]
    return rows, vals


def _thresholds(
    W: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, max_norm: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(|x|^2, c, base, err)`` of a float32 certification of the points ``x``.

    Row ``j`` violates class ``k``'s optimality when ``<w_j, x_k> < base_k = |x_k|^2 + c_k``
    (``c_k = <w_k, x_k>``); a float32 score is within ``err_k`` of ``<w_j, x_k>`` (the bound of
    :func:`rounding_factor`, and the rounding of ``base`` itself).
    """
    n2 = (x * x).sum(dim=1)
    c = (W[rows] * x).sum(dim=1)
    base = n2 + c
    err = rounding_factor(W.shape[1]) * n2.sqrt() * max_norm + 4 * _U32 * base.abs()
    return n2, c, base, err


def _settle(
    definite: torch.Tensor,
    gmin_definite: torch.Tensor,
    pairs: torch.Tensor,
    exact: torch.Tensor,
    n2: torch.Tensor,
    viol_tol: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gmin, violated)`` of a certification from its recomputed pairs ``(k, j)``.

    ``exact`` holds ``<w_j - w_k, x_k>`` (or a rigorous lower bound of it that is at least
    ``|x_k|^2``) for every entry the screen left open; the classes with a certain violator keep
    ``gmin_definite``.
    """
    emin = torch.full_like(n2, torch.inf)
    emin.scatter_reduce_(0, pairs[:, 0], exact, reduce="amin")
    gmin = torch.where(definite, torch.minimum(n2, gmin_definite), torch.minimum(n2, emin))
    return gmin, definite | (n2 - emin > viol_tol)


def _rank_violators(
    g: torch.Tensor,
    definite: torch.Tensor,
    violated: torch.Tensor,
    pairs: torch.Tensor,
    exact: torch.Tensor,
    n2: torch.Tensor,
    base: torch.Tensor,
    scale: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``n`` most violating rows of each violated class, from the score tile ``g``.

    ``g`` holds ``<w_j, x_k> / scale_k`` (``+inf`` where excluded). Classes with a certain
    violator (``vd``) are ranked by the scores themselves; the others (``vu``) by their
    violations relative to the threshold ``base / scale`` (small numbers, so that float32 keeps
    the recomputed ones apart: violations far below its resolution of ``g`` itself do occur),
    exact where recomputed. Returns ``(idx, vd, vd_vals, vu, vu_vals)``: ``vd_vals`` are scores,
    ``vu_vals`` violations.
    """
    T = g.shape[0]
    dev = g.device
    idx = torch.zeros(T, n, dtype=torch.long, device=dev)
    vd = definite.nonzero().squeeze(1)
    vd_vals = g.new_empty(0, n)
    if vd.numel():
        if 2 * vd.numel() > T:  # most rows: no copy of the tile
            vd_vals, iv = extreme_k(g, n)
            vd_vals, iv = vd_vals[vd], iv[vd]
        else:
            vd_vals, iv = extreme_k(g[vd], n)
        idx[vd] = iv
    vu = (violated & ~definite).nonzero().squeeze(1)
    vu_vals = g.new_empty(0, n)
    if vu.numel():
        pos = torch.full((T,), -1, dtype=torch.long, device=dev)
        pos[vu] = torch.arange(vu.numel(), device=dev)
        gu = g[vu] - (base[vu] / scale[vu]).to(torch.float32)[:, None]
        at = pos[pairs[:, 0]]
        mine = (at >= 0) & torch.isfinite(gu[at.clamp_min(0), pairs[:, 1]])
        k_m = pairs[mine, 0]
        gu[at[mine], pairs[mine, 1]] = ((exact[mine] - n2[k_m]) / scale[k_m]).to(torch.float32)
        vu_vals, iv = extreme_k(gu, n)
        idx[vu] = iv
    return idx, vd, vd_vals, vu, vu_vals


def _refine_pairs(
    W: torch.Tensor,
    W32: torch.Tensor,
    x: torch.Tensor,
    pairs: torch.Tensor,
    c: torch.Tensor,
    n2: torch.Tensor,
    max_norm: float,
    max_memory_mib: float,
) -> torch.Tensor:
    """``<w_j - w_k, x_k>`` for the pairs ``(k, j)``, or a rigorous lower bound ``>= |x_k|^2``.

    Float32 dot products first (half the memory traffic of float64 gathers), decided with the
    a-priori bound of :func:`rounding_factor`; the pairs that may fall below ``|x_k|^2`` (may
    violate, or tie) are recomputed in float64.
    """
    k, j = pairs[:, 0], pairs[:, 1]
    d = W.shape[1]
    f = _pairs_dot(W32, x.to(torch.float32), j, k, max_memory_mib).to(torch.float64)
    err = rounding_factor(d) * max_norm * n2.sqrt()[k] + 4 * _U32 * f.abs()
    eps = torch.finfo(torch.float64).eps
    out: torch.Tensor = f - err - c[k] - 4 * eps * (f.abs() + c[k].abs())
    open_ = (out < n2[k]).nonzero().squeeze(1)
    out[open_] = _pairs_dot(W, x, j[open_], k[open_], max_memory_mib) - c[k[open_]]
    return out


def _certify_int8(
    W: torch.Tensor,
    W32: torch.Tensor,
    q8: Int8Rows,
    rows: torch.Tensor,
    x: torch.Tensor,
    working_set: torch.Tensor,
    viol_tol: torch.Tensor,
    num_candidates: int,
    max_memory_mib: float,
) -> Certification:
    """:func:`certify` with one int8 GEMM ``q_x Q^T`` (exact int32 sums) under rigorous bounds.

    In units of ``s_x`` (the query's scale), entry ``g_kj`` is within ``a_k + b_k err_j`` of
    ``<w_j, x_k> / s_x`` (:mod:`gnc.geometry._int8`). A class certainly has a violator when its
    smallest entry is below the threshold by more than the largest error; otherwise every entry
    whose interval reaches the threshold is recomputed (:func:`_refine_pairs`). The violators that
    join a
    working set are ranked by the int8 scores (exact values where recomputed) and their
    violations recomputed in float64, so ``candidates_ok`` is exact.
    """
    K = W.shape[0]
    dev = W.device
    T = rows.numel()
    ar = torch.arange(T, device=dev)
    n2 = (x * x).sum(dim=1)
    c = (W[rows] * x).sum(dim=1)
    base = n2 + c  # optimality: <w_j, x> >= base
    qx, sx, ex = quantize(x, q8.query_levels)
    xn = n2.sqrt()
    g = scores(q8, qx)  # (T, K): <w_j, x_k> / s_x within a + b err_j
    g[ar, rows] = torch.inf
    a = (q8.max_norm * ex + rounding_slack(q8, xn, ex)) / sx
    b = (xn + ex) / sx
    # |g_kj| <= b (max |w_j| + max err): the float32 rounding of g - b err_j stays below this.
    slack32 = 8 * _U32 * b * (q8.max_norm + 2 * q8.max_err)
    err32 = (q8.err * (1 + 2.0**-20)).to(torch.float32)  # rounded up
    b32 = (b * (1 + 2.0**-20)).to(torch.float32)  # rounded up
    fmin = g.min(dim=1).values.to(torch.float64)
    lo = (base - viol_tol) / sx - a
    definite = fmin + b * q8.max_err < lo
    # The others, with each row's own error bound (the largest is several times the median).
    nd = (~definite).nonzero().squeeze(1)
    if nd.numel():
        up = torch.addcmul(g[nd], b32[nd, None], err32[None, :]).amin(dim=1).to(torch.float64)
        definite[nd] = up + slack32[nd] < lo[nd]
        nd = (~definite).nonzero().squeeze(1)
    # Entries that may violate (or reach the threshold), for the classes without a certain
    # violator only.
    hi = (base[nd] / sx[nd] + a[nd] + slack32[nd]).to(torch.float32)
    und = (torch.addcmul(g[nd], b32[nd, None], err32[None, :], value=-1.0) < hi[:, None]).nonzero()
    pairs = torch.stack([nd[und[:, 0]], und[:, 1]], dim=1)
    del und
    exact = _refine_pairs(W, W32, x, pairs, c, n2, q8.max_norm, max_memory_mib)
    gmin, violated = _settle(
        definite, sx * (fmin - a - b * q8.max_err) - c, pairs, exact, n2, viol_tol
    )
    g.scatter_(1, working_set, torch.inf)
    n = min(num_candidates, K - 1)
    ok = torch.zeros(T, n, dtype=torch.bool, device=dev)
    finite = torch.zeros(T, n, dtype=torch.bool, device=dev)
    idx, vd, vd_vals, vu, vu_vals = _rank_violators(
        g, definite, violated, pairs, exact, n2, base, sx, n
    )
    finite[vd], finite[vu] = torch.isfinite(vd_vals), torch.isfinite(vu_vals)
    vv = violated.nonzero().squeeze(1)
    if vv.numel():
        kk = vv[:, None].expand(-1, n).reshape(-1)
        jj = idx[vv].reshape(-1)
        viol = _pairs_dot(W, x, jj, kk, max_memory_mib) - base[kk]
        ok[vv] = finite[vv] & (viol.view(-1, n) < -viol_tol[vv, None])
    return Certification(gmin, violated, idx, ok, int(pairs.shape[0]))


# Float64 tiles of the exact-max pass on a CPU: rows x columns of one tile (128 MiB: each
# multithreaded GEMM must be large enough to amortize its synchronization, which on a busy
# machine costs more than the arithmetic of a cache-sized tile: 256 x 4096 tiles took 2x the
# time of one float32 pass with 2 threads, 0.4x with one), and the
# candidate density (entries the float32 bound leaves open, per entry of a row block) beyond
# which gathering them one by one costs more than recomputing the block as float64 tiles.
_F64_TILE_ROWS = 2048
_F64_TILE_COLS = 8192
_DENSE_CANDIDATES = 1.0 / 64


def exact_max_pass(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    *,
    max_memory_mib: float,
    float64_tiles: bool | None = None,
    num_neighbours: int = 0,
    unit_rows: bool = True,
    bar: Any = None,
) -> NeighbourPass:
    """Exact ``s_r = max_{j != r} <w_r, w_j>`` and a row attaining it, for every row of ``rows``.

    Row blocks start as in :func:`neighbour_pass` (a float32 ``(rows, K)`` tile, float64
    recomputation of the entries within twice the rounding bound of the row max). When a block
    leaves too many entries open (codes in which every row ties with thousands of neighbours, each
    of which the bound cannot separate from the max), that block and all later ones are computed
    directly as float64 GEMM tiles with a running row max (``2048 x 8192`` on a CPU, within the
    budget; budget-sized on an accelerator): one float64 pass costs less than gathering the ties
    one by one. Either way ``s_r`` is a float64 dot product (error at most ``gamma_d |w_r| |w_j|``).

    Args:
        W: ``(K, d)`` float64 rows.
        W32: The same rows in float32.
        rows: ``(R,)`` the rows of this pass.
        max_memory_mib: Budget of one tile.
        float64_tiles: Force the float64 tiles (``True``) or the float32 screen (``False``);
            ``None`` (default) starts with the screen and switches on dense ties.
        num_neighbours: ``m``: also keep the ``m`` nearest other rows (Euclidean) from the
            float32 tiles (a top-``m`` of a tile row, ~10 % of its GEMM) of the rows whose
            bound ``|w_r| - s_r / |w_r|`` is below the smallest nearest-row distance seen so far
            (the rows a rho search may bound further); the other rows, and rows computed as
            float64 tiles, get ``-1`` (their neighbours are left to the caller). Int32.
        unit_rows: Rows have norm 1 (neighbours by inner product, no norm correction).
        bar: Optional tqdm bar, advanced by rows.

    Returns:
        A :class:`NeighbourPass` (``neighbours`` is ``None`` when ``num_neighbours`` is 0).
    """
    K, d = W.shape
    dev = W.device
    R = rows.numel()
    norms = W.norm(dim=1)
    nmax = float(norms.max())
    e = rounding_factor(d)
    smax = torch.empty(R, dtype=W.dtype, device=dev)
    arg = torch.empty(R, dtype=torch.long, device=dev)
    m = min(num_neighbours, K - 1)
    nbrs = torch.full((R, m), -1, dtype=torch.int32, device=dev) if m > 0 else None
    sq32 = None if unit_rows or m == 0 else (W * W).sum(dim=1).to(torch.float32)
    least = float("inf")
    rechecked = 0
    dense = bool(float64_tiles)
    step32 = rows_per_budget(14 * K, max_memory_mib, num_rows=R)
    cpu = dev.type == "cpu"
    width = min(K, _F64_TILE_COLS) if cpu else K
    step64 = rows_per_budget(
        12 * width, max_memory_mib, num_rows=min(R, _F64_TILE_ROWS) if cpu else R
    )
    a = 0
    with exact_float32_matmul(dev):
        while a < R:
            if dense:
                b = min(R, a + step64)
                smax[a:b], arg[a:b] = _float64_row_max(W, rows[a:b], width, max_memory_mib)
            else:
                b = min(R, a + step32)
                r = rows[a:b]
                ar = torch.arange(b - a, device=dev)
                ip = scores32(W32[r], W32)
                ip[ar, r] = -torch.inf
                s32, j32 = ip.max(dim=1)
                cand = _max_candidates(ip, s32, e * norms[r] * nmax)
                if float64_tiles is None and cand.shape[0] > _DENSE_CANDIDATES * (b - a) * K:
                    dense = True  # this block again, as float64 tiles
                    del ip
                    continue
                if nbrs is not None:
                    # Only rows whose bound |w_r| - s_r / |w_r| is below the smallest distance
                    # to a nearest row seen so far can need them (float32 estimates: speed only).
                    s64, n_r = s32.to(W.dtype), norms[r]
                    near = (n_r**2 + norms[j32] ** 2 - 2 * s64).clamp_min(0.0).sqrt()
                    least = min(least, float(near.min()))
                    want = (n_r - s64 / n_r < least).nonzero().squeeze(1)
                    if want.numel():
                        score = ip[want] if sq32 is None else 2.0 * ip[want] - sq32[None, :]
                        nbrs[a + want] = score.topk(m, dim=1, sorted=False).indices.int()
                del ip
                rechecked += cand.shape[0]
                smax[a:b], arg[a:b] = _exact_max(W, r, cand, j32, max_memory_mib)
            if bar is not None:
                bar.update(b - a)
            a = b
    return NeighbourPass(nbrs, smax, arg, rechecked)


def _float64_row_max(
    W: torch.Tensor, r: torch.Tensor, max_cols: int, max_memory_mib: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_{j != r} <w_r, w_j>`` and a row attaining it, by float64 GEMM tiles.

    Two operations per tile (the GEMM into a reused buffer, the row max into a column of a small
    table; the own entry is masked only in the tiles that hold it): on a busy machine every
    multithreaded operation costs a synchronization, so the tiles do no more than that.
    """
    K = W.shape[0]
    dev = W.device
    n = r.numel()
    cols = max(1, min(max_cols, K, rows_per_budget(12 * n, max_memory_mib)))
    starts = range(0, K, cols)
    vals = torch.empty(len(starts), n, dtype=W.dtype, device=dev)
    idx = torch.empty(len(starts), n, dtype=torch.long, device=dev)
    own_tile = torch.div(r, cols, rounding_mode="floor")
    masked = set(torch.unique(own_tile).tolist())
    Wr = W[r]
    buf = torch.empty(n, cols, dtype=W.dtype, device=dev)
    for t, c in enumerate(starts):
        e = min(K, c + cols)
        ip = torch.matmul(Wr, W[c:e].T, out=buf) if e - c == cols else Wr @ W[c:e].T
        if t in masked:
            own = (own_tile == t).nonzero().squeeze(1)
            ip[own, r[own] - c] = -torch.inf
        torch.max(ip, dim=1, out=(vals[t], idx[t]))
    best, tile = vals.max(dim=0)
    arg = idx.gather(0, tile[None, :])[0] + tile * cols
    return best, arg
