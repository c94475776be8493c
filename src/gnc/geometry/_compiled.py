"""Compiled CPU kernels of the all-classes solver, with numba (internal, optional).

**Wolfe per class** (:func:`wolfe_compiled`): the same algorithm and stopping rule as the lockstep
kernel of :mod:`gnc.geometry._wolfe` (an upper Cholesky factor of ``e e^T + G_S / c`` over the
corral, one triangular solve per added point), run one class at a time. Why it exists: on a CPU
the lockstep kernel is bound by per-operation overhead (~50 small tensor operations per
iteration for batches of a few hundred classes, each batch waiting for its slowest class), not
arithmetic; a class's own iterations cost ``O(m s)`` flops for ``m`` working-set rows and ``s``
corral points. Only the fast path is compiled: a class whose factor fails (an affinely dependent
corral to working precision) or loses the affine optimality of its minimizer (a nearly flat
corral) is reported, and the caller solves it again from its start with the lockstep kernel,
whose accurate path (bordered Gram system, QR of the point coordinates) handles it.

**Streamed certification tiles** (:func:`tile_kernels`): the per-tile work of
:func:`gnc.geometry._screening._certify_streamed` (masks, group and column minima, the entries
kept below each class's threshold) in one sweep of the cache-resident tile, instead of a dozen
tensor operations that each sweep it again; the GEMM that fills the tile stays PyTorch's.

**Points** (:func:`points`): the working sets' points ``w_j - w_k`` gathered and
subtracted in one pass over the rows (index_select and a broadcast subtraction take two):
~180 -> ~110 us for 4 classes of 96 rows of 640 on an AVX2 core.

**Next Grams** (:func:`next_grams`): the Grams of the next round's working sets, from the
corrals' entries of the last ones and the rows of the points that joined, in one loop instead
of an advanced-indexing gather, a mask and two strided copies (~60 ms -> ~10 ms for 900 classes
on an AVX2 core).

**Combinations** (:func:`combine`): a solve's points ``x = sum_p lam_p (w_p - w_k)`` in one pass
over the support's rows, without building their points for a batched product: 39 -> 9 ms for
256 classes of 40 support rows of 640.

**Pairs** (:func:`pairs_dot`): the float64 rechecks ``<w_j, x_k>`` of listed pairs, each row read
in place with eight partial sums, instead of gathered copies multiplied and summed.

Without numba (the ``fast`` extra) :data:`AVAILABLE` is False and the callers keep the lockstep
kernel and the tensor operations (the same ``D_k`` to rounding; the same screening decisions).
Measurements are in ``docs/measurements.md``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import torch

from gnc._runtime import compile_numba

__all__: list[str] = []

#: Whether the compiled kernel can run (numba is installed; it is imported, and the kernel
#: compiled or loaded from numba's cache, on first use only).
AVAILABLE = importlib.util.find_spec("numba") is not None

# Status codes of the kernel, per class.
_OK = 0
_FALLBACK = 1


def _kernel_py(
    G: np.ndarray,
    valid: np.ndarray,
    lam0: np.ndarray,
    S0: np.ndarray,
    stop_rel: float,
    floor: np.ndarray,
    max_iter: int,
    lam_out: np.ndarray,
    S_out: np.ndarray,
    iters: np.ndarray,
    status: np.ndarray,
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """Wolfe's algorithm for each class ``b`` of the Grams ``G`` ``(B, m, m)`` (see module doc).

    Writes ``lam_out``, ``S_out``, ``iters`` and ``status`` (``_OK`` or ``_FALLBACK``) in place.
    """
    B, m, _ = G.shape
    R = np.zeros((m, m))
    cor = np.empty(m, np.int64)
    a = np.empty(m)
    z = np.empty(m)
    ga = np.empty(m)
    g = np.empty(m)
    lam = np.empty(m)
    new = np.empty(m)
    keep = np.empty(m, np.bool_)
    inS = np.empty(m, np.bool_)
    tiny = np.finfo(np.float64).tiny
    for b in range(B):
        Gb = G[b]
        sc = tiny
        for i in range(m):
            if valid[b, i] and Gb[i, i] > sc:
                sc = Gb[i, i]
        s = 0
        for i in range(m):
            lam[i] = lam0[b, i]
            inS[i] = S0[b, i]
            if inS[i]:
                cor[s] = i
                s += 1
        fail = not _factor(Gb, cor, s, sc, R)
        for i in range(m):
            acc = 0.0
            for c in range(s):
                acc += Gb[i, cor[c]] * lam[cor[c]]
            g[i] = acc
        nm = True
        it = 0
        for _ in range(max_iter):
            if fail:
                break
            if nm:
                # Major cycle: add the most violating point, or stop.
                n2 = 0.0
                for c in range(s):
                    n2 += lam[cor[c]] * g[cor[c]]
                gmin = np.inf
                j = -1
                for i in range(m):
                    if valid[b, i] and not inS[i] and g[i] < gmin:
                        gmin = g[i]
                        j = i
                thresh = max(stop_rel * np.sqrt(max(n2, 0.0)), floor[b])
                if n2 - gmin <= thresh:
                    break
                inS[j] = True
                # Append column j: R^T r = e + G_{S j} / sc, diagonal sqrt(1 + G_jj / sc - |r|^2).
                rr = 0.0
                for c in range(s):
                    v = Gb[cor[c], j] / sc + 1.0
                    for q in range(c):
                        v -= R[q, c] * R[q, s]
                    v /= R[c, c]
                    R[c, s] = v
                    rr += v * v
                djj = Gb[j, j] / sc + 1.0
                rho2 = djj - rr
                if not rho2 > 1e-10 * djj:
                    fail = True
                    break
                R[s, s] = np.sqrt(rho2)
                cor[s] = j
                s += 1
            it += 1
            # Minor cycle: the affine minimizer of the corral, R^{-1} R^{-T} e normalized.
            for c in range(s):
                v = 1.0
                for q in range(c):
                    v -= R[q, c] * z[q]
                z[c] = v / R[c, c]
            tot = 0.0
            for c in range(s - 1, -1, -1):
                v = z[c]
                for q in range(c + 1, s):
                    v -= R[c, q] * a[q]
                a[c] = v / R[c, c]
            for c in range(s):
                tot += a[c]
            for c in range(s):
                a[c] /= tot
            for i in range(m):
                acc = 0.0
                for c in range(s):
                    acc += Gb[i, cor[c]] * a[c]
                ga[i] = acc
            # Affine optimality <y_i, x> = |x|^2 on the corral, or the accurate path.
            n2a = 0.0
            for c in range(s):
                n2a += a[c] * ga[cor[c]]
            resid = 0.0
            for c in range(s):
                resid = max(resid, abs(ga[cor[c]] - n2a))
            if not resid <= 1e-11 * sc:
                fail = True
                break
            pos = True
            for c in range(s):
                if not a[c] > 0:
                    pos = False
            if pos:
                for c in range(s):
                    lam[cor[c]] = a[c]
                for i in range(m):
                    g[i] = ga[i]
                nm = True
                continue
            # Step back to the hull and drop the points that reached zero.
            theta = np.inf
            for c in range(s):
                den = lam[cor[c]] - a[c]
                if not a[c] > 0 and den > 0:
                    theta = min(theta, lam[cor[c]] / den)
            theta = min(max(theta, 0.0), 1.0)
            tot = 0.0
            for c in range(s):
                lc = lam[cor[c]]
                v = lc + theta * (a[c] - lc)
                hit = (not a[c] > 0) and lc - a[c] > 0 and lc / (lc - a[c]) <= theta
                keep[c] = not (hit or v <= 0)
                new[c] = max(v, 0.0) if keep[c] else 0.0
                tot += new[c]
            if not tot > 0:
                fail = True
                break
            for i in range(m):
                g[i] = (g[i] + theta * (ga[i] - g[i])) / tot
            s2 = 0
            for c in range(s):
                k = cor[c]
                if keep[c]:
                    lam[k] = new[c] / tot
                else:
                    lam[k] = 0.0
                    inS[k] = False
            # The corral in column order (as the lockstep kernel refactors it), then refactor.
            for i in range(m):
                if inS[i]:
                    cor[s2] = i
                    s2 += 1
            s = s2
            if not _factor(Gb, cor, s, sc, R):
                fail = True
                break
            nm = False
        status[b] = _FALLBACK if fail else _OK
        iters[b] = it
        for i in range(m):
            lam_out[b, i] = lam[i] if inS[i] else 0.0
            S_out[b, i] = inS[i]


def _factor_py(Gb: np.ndarray, cor: np.ndarray, s: int, sc: float, R: np.ndarray) -> bool:
    """Upper Cholesky factor of ``e e^T + G_S / sc`` on ``cor[:s]`` into ``R`` (False: not PD)."""
    for jj in range(s):
        for ii in range(jj + 1):
            v = Gb[cor[ii], cor[jj]] / sc + 1.0
            for q in range(ii):
                v -= R[q, ii] * R[q, jj]
            if ii < jj:
                R[ii, jj] = v / R[ii, ii]
            else:
                if not v > 0:
                    return False
                R[jj, jj] = np.sqrt(v)
    return True


# The kernel calls _factor by its global name: the Python function until _compiled_kernel()
# replaces it by its compiled twin (numba resolves the global when it compiles the kernel).
_factor: Any = _factor_py
_kernel: Any = None


def _compiled_kernel() -> Any:
    """The compiled kernel (numba imported and the kernel compiled on the first call)."""
    global _factor, _kernel
    if _kernel is None:
        _factor = compile_numba(_factor_py)
        _kernel = compile_numba(_kernel_py)
    return _kernel


def wolfe_compiled(
    G: torch.Tensor,
    valid: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    stop_rel: float,
    stop_floor: torch.Tensor,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the compiled kernel on CPU tensors (arguments as :func:`_wolfe_batched`'s).

    Returns ``(lam, S, iterations, fallback)``: the final weights (in the dtype of ``G``) and
    corrals ``(B, m)``, the iterations per class ``(B,)``, and which classes the caller must
    solve again with the lockstep kernel ``(B,)`` (their other outputs are meaningless).
    """
    B, m = lam.shape
    Gn = np.ascontiguousarray(G.detach().numpy(), dtype=np.float64)
    lam_out = np.zeros((B, m))
    S_out = np.zeros((B, m), np.bool_)
    iters = np.zeros(B, np.int64)
    status = np.zeros(B, np.int8)
    _compiled_kernel()(
        Gn,
        np.ascontiguousarray(valid.numpy()),
        np.ascontiguousarray(lam.detach().numpy(), dtype=np.float64),
        np.ascontiguousarray(S.numpy()),
        float(stop_rel),
        np.ascontiguousarray(stop_floor.detach().numpy(), dtype=np.float64),
        int(max_iter),
        lam_out,
        S_out,
        iters,
        status,
    )
    return (
        torch.from_numpy(lam_out).to(G.dtype),
        torch.from_numpy(S_out),
        torch.from_numpy(iters),
        torch.from_numpy(status != _OK),
    )


def _tile_scan_py(
    tile: np.ndarray,
    self_f: np.ndarray,
    ws_f: np.ndarray,
    ch: int,
    fmin: np.ndarray,
    lo: np.ndarray,
    open_: np.ndarray,
    hi: np.ndarray,
    line: np.ndarray,
    heap: np.ndarray,
    tau_up: np.ndarray,
    thr: np.ndarray,
    colmin: np.ndarray,
    gmin: np.ndarray,
    cols: np.ndarray,
) -> int:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """One ``(R, T)`` float32 score tile of a streamed certification, swept once.

    Sets the flat entries ``self_f`` (each class's own row) to ``+inf``; folds the entries
    ``ws_f`` (working sets) into ``fmin`` and sets them to ``+inf``; writes the minima of the
    ``ch``-row groups into ``gmin`` and their column minima into ``colmin``; updates ``fmin``
    and ``open_ &= fmin >= lo`` (in float64). ``heap`` ``(T, n)`` holds, as a max-heap per
    class, the ``n`` smallest group minima so far; ``tau_up`` is just above its largest (so ``n``
    rows score below ``tau_up``: rows above it are never among the ``n`` smallest). The keep
    thresholds are ``thr = max(hi if open_ else min(tau_up, hi), line)``. Returns how many
    columns have an entry below their threshold; those columns, increasing, are ``cols[:n]``.
    """
    R, T = tile.shape
    n_heap = heap.shape[1]
    flat = tile.reshape(R * T)
    inf = np.float32(np.inf)
    for f in self_f:
        flat[f] = inf
    for f in ws_f:
        t = f % T
        v = flat[f]
        if v < fmin[t]:
            fmin[t] = v
        flat[f] = inf
    # np.minimum on whole rows: numba vectorizes it (4x faster than an element loop; the
    # scores are never NaN, so it is the comparison's minimum).
    colmin[:] = inf
    ng = (R + ch - 1) // ch
    for g in range(ng):
        gm = gmin[g]
        gm[:] = tile[g * ch]
        for r in range(g * ch + 1, min(R, (g + 1) * ch)):
            np.minimum(gm, tile[r], gm)
        np.minimum(colmin, gm, colmin)
    n = 0
    for t in range(T):
        h = heap[t]
        for g in range(ng):
            v = gmin[g, t]
            if v < h[0]:  # replaces the largest: sift it down
                i = 0
                while True:
                    c = 2 * i + 1
                    if c >= n_heap:
                        break
                    if c + 1 < n_heap and h[c + 1] > h[c]:
                        c += 1
                    if not h[c] > v:
                        break
                    h[i] = h[c]
                    i = c
                h[i] = v
        tau_up[t] = np.nextafter(h[0], inf)
        if colmin[t] < fmin[t]:
            fmin[t] = colmin[t]
        if not np.float64(fmin[t]) >= lo[t]:
            open_[t] = False
        hh = hi[t]
        th = hh if open_[t] or not tau_up[t] < hh else tau_up[t]
        if line[t] > th:
            th = line[t]
        thr[t] = th
        if colmin[t] < th:
            cols[n] = t
            n += 1
    return n


def _tile_keep_py(
    tile: np.ndarray,
    a: int,
    cols: np.ndarray,
    n: int,
    thr: np.ndarray,
    out_c: np.ndarray,
    out_r: np.ndarray,
    out_v: np.ndarray,
    pos: int,
    counts: np.ndarray,
    line: np.ndarray,
    cap: int,
) -> int:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """The entries of the columns ``cols[:n]`` below their threshold ``thr``, row by row.

    Writes ``(column, a + row, value)`` into ``out_*[pos:]`` while they have room, in the
    order of ``nonzero`` on the tile's rows; returns ``pos`` plus the number of entries
    (larger than the buffers' length when they ran out of room: nothing past it is written).
    Counts each column's entries in ``counts`` (only when they were written) and drops the
    keep ``line`` (to ``-inf``) of a column past ``cap`` of them.
    """
    R = tile.shape[0]
    room = out_c.shape[0]
    start = pos
    for r in range(R):
        row = tile[r]
        for i in range(n):
            c = cols[i]
            v = row[c]
            if v < thr[c]:
                if pos < room:
                    out_c[pos] = c
                    out_r[pos] = a + r
                    out_v[pos] = v
                pos += 1
    if pos <= room:  # all written: counted once (an overflowed call is made again)
        for p in range(start, pos):
            counts[out_c[p]] += 1
        for i in range(n):
            c = cols[i]
            if counts[c] > cap:
                line[c] = -np.inf
    return pos


_tile_kernels: tuple[Any, Any] | None = None


def tile_kernels() -> tuple[Any, Any]:
    """``(tile_scan, tile_keep)`` compiled (numba imported on the first call)."""
    global _tile_kernels
    if _tile_kernels is None:
        _tile_kernels = (compile_numba(_tile_scan_py), compile_numba(_tile_keep_py))
    return _tile_kernels


def _next_grams_py(
    G: np.ndarray,
    vt: np.ndarray,
    order: np.ndarray,
    live: np.ndarray,
    new_rows: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """``out[i]``: the Gram of class ``vt[i]``'s corral ``order[i]`` (zero off ``live``), bordered.

    ``out`` ``(n, s + a, s + a)``: its ``(s, s)`` block is ``G[vt[i]]`` at the corral's rows and
    columns, its last ``a`` rows are ``new_rows[i]`` ``(a, s + a)`` and the columns above them
    their transpose.
    """
    n, s = order.shape
    a = new_rows.shape[1]
    for i in range(n):
        Gi = G[vt[i]]
        for p in range(s):
            if live[i, p]:
                src = Gi[order[i, p]]
                for q in range(s):
                    out[i, p, q] = src[order[i, q]] if live[i, q] else 0.0
            else:
                for q in range(s):
                    out[i, p, q] = 0.0
            for q in range(a):
                out[i, p, s + q] = new_rows[i, q, p]
        for q in range(a):
            out[i, s + q, :] = new_rows[i, q, :]


_next_grams: Any = None


def next_grams(
    G: torch.Tensor,
    vt: torch.Tensor,
    order: torch.Tensor,
    live: torch.Tensor,
    new_rows: torch.Tensor,
) -> torch.Tensor:
    """:func:`_next_grams_py` on CPU tensors (numba imported and compiled on the first call)."""
    global _next_grams
    if _next_grams is None:
        _next_grams = compile_numba(_next_grams_py)
    n, s = order.shape
    m = s + new_rows.shape[1]
    out = torch.empty(n, m, m, dtype=G.dtype)
    _next_grams(
        G.contiguous().numpy(),
        vt.contiguous().numpy(),
        order.contiguous().numpy(),
        live.contiguous().numpy(),
        new_rows.contiguous().numpy(),
        out.numpy(),
    )
    return out


def _points_py(
    W: np.ndarray, ws: np.ndarray, rows: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """``out[i, p] = W[ws[i, p]] - W[rows[i]]``."""
    n, m = ws.shape
    for i in range(n):
        wk = W[rows[i]]
        for p in range(m):
            np.subtract(W[ws[i, p]], wk, out[i, p])


_points: Any = None


def points(W: torch.Tensor, ws: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(n, m, d)``: ``W[ws[i, p]] - W[rows[i]]`` for CPU tensors, ``W`` contiguous."""
    global _points
    if _points is None:
        _points = compile_numba(_points_py)
    out = torch.empty(*ws.shape, W.shape[1], dtype=W.dtype)
    _points(W.numpy(), ws.contiguous().numpy(), rows.contiguous().numpy(), out.numpy())
    return out


def _pairs_dot_py(
    A: np.ndarray, B: np.ndarray, ia: np.ndarray, ib: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """``out[p] = <A[ia[p]], B[ib[p]]>``, eight partial sums a pair (float64)."""
    d = A.shape[1]
    d8 = d - d % 8
    for p in range(ia.shape[0]):
        a = A[ia[p]]
        b = B[ib[p]]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for t in range(0, d8, 8):
            s0 += a[t] * b[t]
            s1 += a[t + 1] * b[t + 1]
            s2 += a[t + 2] * b[t + 2]
            s3 += a[t + 3] * b[t + 3]
            s4 += a[t + 4] * b[t + 4]
            s5 += a[t + 5] * b[t + 5]
            s6 += a[t + 6] * b[t + 6]
            s7 += a[t + 7] * b[t + 7]
        for t in range(d8, d):
            s0 += a[t] * b[t]
        out[p] = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


_pairs_dot: Any = None


def pairs_dot(A: torch.Tensor, B: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """:func:`_pairs_dot_py` of contiguous float64 CPU tensors: one read of each row, no copies."""
    global _pairs_dot
    if _pairs_dot is None:
        _pairs_dot = compile_numba(_pairs_dot_py)
    out = torch.empty(ia.numel(), dtype=A.dtype)
    _pairs_dot(A.numpy(), B.numpy(), ia.contiguous().numpy(), ib.contiguous().numpy(), out.numpy())
    return out


def _combine_py(
    W: np.ndarray, ws: np.ndarray, rows: np.ndarray, lam: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """``out[i] = sum_p lam[i, p] (W[ws[i, p]] - W[rows[i]])`` over the nonzero weights."""
    n, m = ws.shape
    d = W.shape[1]
    for i in range(n):
        o = out[i]
        o[:] = 0.0
        wk = W[rows[i]]
        for p in range(m):
            c = lam[i, p]
            if c != 0.0:
                wj = W[ws[i, p]]
                for t in range(d):
                    o[t] += c * (wj[t] - wk[t])


_combine: Any = None


def combine(
    W: torch.Tensor, ws: torch.Tensor, rows: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """:func:`_combine_py` of CPU tensors (``W`` contiguous): no points built, one pass."""
    global _combine
    if _combine is None:
        _combine = compile_numba(_combine_py)
    out = torch.empty(ws.shape[0], W.shape[1], dtype=W.dtype)
    _combine(
        W.numpy(),
        ws.contiguous().numpy(),
        rows.contiguous().numpy(),
        lam.contiguous().numpy(),
        out.numpy(),
    )
    return out
