"""Compiled CPU kernels of the int8 rankings, with numba (internal, optional).

**Row quantization** (:func:`quantize`): ``X = s q + e`` row by row for the int8 screens and
rankings, the clipping levels tried in one sweep of each (cache-resident) row instead of five
tensor passes over the whole block per level: 4.9 s -> 0.6 s for the 65,536 x 640 rows of the
Gemma 3 head slice (one thread, the other core busy).

**Scaled top-k** (:func:`scaled_top_k`): the ``k`` largest ``ip_j * scale_j`` of each row of an
int8 ranking tile, the scaling fused into the selection, instead of a scaling pass over the tile
and :func:`gnc.geometry._screening.extreme_k`: 0.19 -> 0.07 ms a row of 65,536 in tiles of
3,072 rows (0.09 -> 0.07 ms in tiles of 256). What costs is not the sweeps but the branches
of the selections, hence a threshold from a few hundred coarse group maxima, which leaves
~200 candidates a row.

Without numba :data:`gnc.geometry._compiled.AVAILABLE` is False and the callers keep the tensor
operations (the same quantization; the same selected values, ties possibly broken otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gnc._runtime import compile_numba

__all__: list[str] = []


def _quantize_py(
    X: np.ndarray,
    levels: float,
    clips: np.ndarray,
    q: np.ndarray,
    s: np.ndarray,
    e: np.ndarray,
    norm: np.ndarray,
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """Per row ``i``: the scale ``s[i]`` of the clip with the smallest ``e[i] = |X_i - s q_i|``.

    The arithmetic of :func:`gnc.geometry._int8.quantize`'s tensor path: ``s = c amax / levels``,
    ``q = round_half_even(X / s)`` clamped to ``+-levels``; zero rows take ``s = 1``, ``q = 0``.
    """
    n, d = X.shape
    for i in range(n):
        x = X[i]
        amax = 0.0
        n2 = 0.0
        for t in range(d):
            a = abs(x[t])
            amax = max(amax, a)
            n2 += x[t] * x[t]
        norm[i] = np.sqrt(n2)
        if not amax > 0.0:
            s[i] = 1.0
            e[i] = 0.0
            q[i, :] = 0
            continue
        best = np.inf
        bs = 1.0
        for c in clips:
            si = c * amax / levels
            acc = 0.0
            for t in range(d):
                r = min(max(np.rint(x[t] / si), -levels), levels)
                diff = x[t] - si * r
                acc += diff * diff
            if acc < best:
                best = acc
                bs = si
        s[i] = bs
        e[i] = np.sqrt(best)
        for t in range(d):
            q[i, t] = np.int8(min(max(np.rint(x[t] / bs), -levels), levels))


_quantize: Any = None


def quantize(
    X: torch.Tensor, levels: int, clips: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_quantize_py` of float64 CPU rows ``X``: ``(q int8, s, |X - s q|, |X|)``."""
    global _quantize
    if _quantize is None:
        _quantize = compile_numba(_quantize_py)
    n, d = X.shape
    q = torch.empty(n, d, dtype=torch.int8)
    s = torch.empty(n, dtype=torch.float64)
    e = torch.empty(n, dtype=torch.float64)
    norm = torch.empty(n, dtype=torch.float64)
    c = np.asarray(clips, dtype=np.float64)
    Xn = X.contiguous().numpy()
    _quantize(Xn, float(levels), c, q.numpy(), s.numpy(), e.numpy(), norm.numpy())
    return q, s, e, norm


def _stride_max_py(prod: np.ndarray, ext: np.ndarray, groups: int, full: int) -> None:
    """``ext[g] = max prod[j]`` over ``j < full``, ``j = g mod groups`` (``full``: a multiple)."""
    ext[:] = prod[:groups]
    # np.maximum on whole strides: numba vectorizes it (in a function of its own: ~5x faster
    # than the same loop inlined in the kernel, measured).
    for b in range(groups, full, groups):
        np.maximum(ext, prod[b : b + groups], ext)


def _select_py(a: np.ndarray, n: int, r: int) -> float:
    """The value of rank ``r`` (ascending) of ``a[:n]``, which it permutes.

    Hoare's quickselect with median-of-three pivots (a selection's mispredicted branches, not
    its arithmetic, cost: on 2,048 values of a ranking row it took ~0.02 ms, as long as the
    sweep of the row itself).
    """
    lo = 0
    hi = n - 1
    while hi > lo:
        x, y, z = a[lo], a[(lo + hi) >> 1], a[hi]
        if x > y:
            x, y = y, x
        if y > z:
            y = max(x, z)
        pivot = y
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if r <= j:
            hi = j
        elif r >= i:
            lo = i
        else:
            break
    return float(a[r])


def _scaled_top_k_py(
    ip: np.ndarray, scale: np.ndarray, groups: int, fold: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled; its Python body runs only under NUMBA_DISABLE_JIT
    """``out[i]``: columns of the ``k`` largest keys ``ip[i, j] * scale[j]`` (float32).

    Any ``t`` at most the ``k``-th largest maximum of ``k`` or more disjoint groups of keys is at
    most the ``k``-th largest key (each of those maxima is a key at least ``t``), so the ``k``
    largest keys are among the keys ``>= t``. The groups: the columns ``j mod groups`` below
    the last whole stride (their maxima by vectorized strides), merged ``fold`` at a time into
    ``groups / fold`` coarse groups whose ``k``-th largest maximum is ``t``; only the groups
    with a maximum ``>= t`` are read again. Ties at the ``k``-th key go to the lowest columns
    among the candidates. ``groups = 0``: every column is a candidate.
    """
    T, K = ip.shape
    k = out.shape[1]
    full = (K // groups) * groups if groups > 0 else 0
    n_c = groups // fold if groups > 0 else 0
    prod = np.empty(K, dtype=np.float32)
    ext = np.empty(max(groups, 1), dtype=np.float32)
    coarse = np.empty(max(n_c, 1), dtype=np.float32)
    keys = np.empty(K, dtype=np.float32)
    scratch = np.empty(K, dtype=np.float32)  # the selection permutes a copy of the keys
    cols = np.empty(K, dtype=np.int64)
    for i in range(T):
        np.multiply(ip[i], scale, prod)
        n = 0
        thr = -np.inf
        if full > 0:
            _stride_max(prod, ext, groups, full)
            for c in range(n_c):
                m = ext[c * fold]
                for g in range(c * fold + 1, (c + 1) * fold):
                    m = max(m, ext[g])
                coarse[c] = m
            thr = _select(coarse, n_c, n_c - k)
            for g in range(groups):
                if ext[g] >= thr:
                    for j in range(g, full, groups):
                        if prod[j] >= thr:
                            keys[n] = prod[j]
                            cols[n] = j
                            n += 1
        for j in range(full, K):
            if prod[j] >= thr:
                keys[n] = prod[j]
                cols[n] = j
                n += 1
        # The k-th largest candidate, then every larger one and the lowest-column ties.
        scratch[:n] = keys[:n]
        kth = _select(scratch, n, n - k)
        p = 0
        for q in range(n):
            if keys[q] > kth:
                out[i, p] = cols[q]
                p += 1
        for q in range(n):
            if p == k:
                break
            if keys[q] == kth:
                out[i, p] = cols[q]
                p += 1


# The kernel calls _stride_max and _select by their global names (as _kernel_py calls _factor).
_stride_max: Any = _stride_max_py
_select: Any = _select_py
_scaled_top_k: Any = None


def scaled_top_k(ip: torch.Tensor, scale: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Columns ``(T, k)``, unsorted, of the ``k`` extreme entries of ``ip * scale`` of a CPU tile.

    ``largest`` or smallest; ``ip`` and ``scale`` (positive) float32; by
    :func:`_scaled_top_k_py`. The smallest are the largest of ``ip * (-scale)``: the same
    products, negated exactly.
    """
    global _scaled_top_k, _stride_max, _select
    if _scaled_top_k is None:
        _stride_max = compile_numba(_stride_max_py)
        _select = compile_numba(_select_py)
        _scaled_top_k = compile_numba(_scaled_top_k_py)
    K = ip.shape[1]
    # 4 k coarse groups of ~sqrt(K k) fine ones: a selection among 4 k maxima leaves ~k
    # candidates on rows without structure (the selections' branches, not the sweeps, cost).
    n_c = 4 * k
    fold = max(1, int((K * k) ** 0.5) // n_c)
    groups = n_c * fold if 2 * n_c * fold <= K else 0
    sc = scale if largest else -scale
    out = torch.empty(ip.shape[0], k, dtype=torch.long)
    _scaled_top_k(ip.contiguous().numpy(), sc.contiguous().numpy(), groups, fold, out.numpy())
    return out
