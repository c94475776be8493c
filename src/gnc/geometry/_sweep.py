"""The tiles of a streamed certification on a CPU, swept while they are in cache (internal).

:func:`gnc.geometry._screening._certify_streamed` fills one ``(rows of W, T)`` float32 tile of
``W x^T`` at a time; a sweep uses each tile and drops it: it masks each class's own row and
working set, keeps each class's smallest score and whether a violation is still uncertain
(*open*), the minima of ``ch``-row groups (the running bound ``tau`` on each class's ``n``-th
smallest score) and the entries below each class's threshold. The bound, thresholds and float64
rechecks are the certification's; see its docstring.

Two sweeps: :func:`tensors` (tensor operations, each sweeping the tile again) and
:func:`compiled` (the numba kernels of :mod:`gnc.geometry._compiled`, one sweep per tile; used
where numba is installed, :data:`COMPILED`). They give the same minima and open classes and the
same kept entries of open classes; of the others the compiled sweep keeps a subset that still
holds each class's ``n`` smallest (its ``tau`` is updated every tile), so the certification's
results are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gnc.geometry import _compiled

__all__: list[str] = []


def tile_slices(r: torch.Tensor, tile_rows: int, n_tiles: int) -> tuple[torch.Tensor, list[int]]:
    """Order of the row indices ``r`` by tile, and each tile's start in that order."""
    order = torch.argsort(r)
    bounds = torch.searchsorted(
        r[order], torch.arange(n_tiles + 1, device=r.device) * tile_rows
    ).tolist()
    return order, bounds


#: Whether a CPU streamed certification sweeps its tiles with the compiled kernels of
#: :mod:`gnc.geometry._compiled` (where numba is installed) rather than tensor operations.
COMPILED = True
# Kept entries the compiled sweep makes room for first (the buffers double when they fill).
_KEEP_CAP = 1 << 14

_Flat = tuple[torch.Tensor, list[int]]


@dataclass(frozen=True)
class Tiles:
    """What a sweep reads: the tiles of ``W32 q`` and each class's thresholds.

    Attributes:
        W32: ``(K, d)`` float32 rows.
        q: ``(d, T)`` float32 points, one column per class.
        buf: ``(tile rows, T)`` float32 buffer of one tile.
        own: The flat tile indices (row in tile * T + class) of the classes' own rows, ordered
            by tile, with each tile's start among them (:func:`tile_slices`).
        ws: The same for the working sets.
        ch: Rows per group of the running bound ``tau`` (divides the tile rows).
        n: Entries of each class kept at least (its ``n`` smallest off its working set).
        lo: ``(T,)`` float64: a score below it is a certain violation.
        hi: ``(T,)`` float32: a score at or above it is certainly no violation.
        line: ``(T,)`` float32: every entry below it is kept too (``-inf``: none), for the
            row bounds of the next round (:mod:`gnc.geometry._recertify`); set to ``-inf``
            in place for a class once it has more than ``cap`` kept entries.
        cap: Kept entries per class past which its ``line`` is dropped.
    """

    W32: torch.Tensor
    q: torch.Tensor
    buf: torch.Tensor
    own: _Flat
    ws: _Flat
    ch: int
    n: int
    lo: torch.Tensor
    hi: torch.Tensor
    line: torch.Tensor
    cap: int


def tensors(
    tiles: Tiles, fmin: torch.Tensor, open_: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tiles of a streamed certification, swept with tensor operations.

    Updates ``fmin`` and ``open_`` in place; returns the kept entries ``(class, row)``, their
    float32 scores and each class's last keep threshold ``thr = max(hi if open else min(tau,
    hi), line)``. The thresholds never rise from tile to tile, so every entry below the last
    one (off the class's own row and working set) is kept.
    """
    W32, q, buf, ch, n = tiles.W32, tiles.q, tiles.buf, tiles.ch, tiles.n
    K, T = W32.shape[0], q.shape[1]
    tr = buf.shape[0]
    n_tiles = -(-K // tr)
    (s_flat, s_at), (w_flat, w_at) = tiles.own, tiles.ws
    best = torch.full((n, T), torch.inf, dtype=torch.float32, device=q.device)
    tau_up = torch.full((T,), torch.inf, dtype=torch.float32, device=q.device)
    inf = torch.tensor(torch.inf, dtype=torch.float32, device=q.device)
    kept_at: list[torch.Tensor] = []
    kept_v: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []
    line = tiles.line
    counts = torch.zeros(T, dtype=torch.long, device=q.device)
    thr = tiles.hi.clone()
    for i in range(n_tiles):
        a, b = i * tr, min(K, (i + 1) * tr)
        tile = buf[: b - a]
        torch.mm(W32[a:b], q, out=tile)
        if s_at[i + 1] > s_at[i]:
            tile.view(-1).index_fill_(0, s_flat[s_at[i] : s_at[i + 1]], torch.inf)
        torch.minimum(fmin, tile.amin(dim=0), out=fmin)
        open_ &= fmin.to(torch.float64) >= tiles.lo
        if w_at[i + 1] > w_at[i]:
            tile.view(-1).index_fill_(0, w_flat[w_at[i] : w_at[i + 1]], torch.inf)
        # Entries to keep (off the working set: its entries are rechecked anyway): column
        # minima first, so that only the few columns with one are compared entry by entry.
        thr = torch.where(open_, tiles.hi, torch.minimum(tau_up, tiles.hi))
        thr = torch.maximum(thr, line)
        need = tile.amin(dim=0) < thr
        if bool(need.any()):
            cols = need.nonzero().squeeze(1)
            sub = tile[:, cols]
            nz = (sub < thr[cols]).nonzero()
            kept_v.append(sub[nz[:, 0], nz[:, 1]])
            kept_at.append(torch.stack([cols[nz[:, 1]], nz[:, 0] + a], dim=1))
            counts += torch.bincount(kept_at[-1][:, 0], minlength=T)
            line.masked_fill_(counts > tiles.cap, -torch.inf)
        pending.append(tile[: (b - a) // ch * ch].view(-1, ch, T).amin(dim=1))
        if (b - a) % ch:
            pending.append(tile[(b - a) // ch * ch :].amin(dim=0, keepdim=True))
        if (i + 1) & i == 0 or i == n_tiles - 1:  # after tiles 1, 2, 4, 8, ...: tau again
            best = torch.cat([best, *pending]).topk(n, dim=0, largest=False, sorted=False).values
            tau_up = best.amax(dim=0).nextafter(inf)
            pending = []
    if not kept_at:
        return torch.empty(0, 2, dtype=torch.long), torch.empty(0, dtype=torch.float32), thr
    return torch.cat(kept_at), torch.cat(kept_v), thr


def compiled(
    tiles: Tiles, fmin: torch.Tensor, open_: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`tensors` with each tile swept once by the compiled kernels (CPU only).

    The same masks, minima and open classes. The kept entries differ in one way: ``tau`` is
    updated after every tile, the tile's own groups included (a max-heap of each class's ``n``
    smallest group minima), instead of after tiles 1, 2, 4, 8, ...; it is never above the
    tensor sweep's, so fewer entries are kept, and still every one of a class's ``n`` smallest
    off its working set. Measured in ``docs/measurements.md``: the tensor operations swept each
    tile ~5 times at ~0.5 ms a tile.
    """
    W32, q, buf, ch, n = tiles.W32, tiles.q, tiles.buf, tiles.ch, tiles.n
    scan, keep = _compiled.tile_kernels()
    K, T = W32.shape[0], q.shape[1]
    tr = buf.shape[0]
    n_tiles = -(-K // tr)
    (s_flat, s_at), (w_flat, w_at) = tiles.own, tiles.ws
    heap = np.full((T, n), np.inf, np.float32)
    tau_up = np.full(T, np.inf, np.float32)
    gmin = np.empty((-(-tr // ch), T), np.float32)
    thr = tiles.hi.numpy().copy()
    colmin = np.empty(T, np.float32)
    cols = np.empty(T, np.int64)
    room = _KEEP_CAP
    out: tuple[np.ndarray, ...] = (
        np.empty(room, np.int64),
        np.empty(room, np.int64),
        np.empty(room, np.float32),
    )
    pos = 0
    buf_n = buf.numpy()
    s_n, w_n = s_flat.numpy(), w_flat.numpy()
    lo_n, hi_n = tiles.lo.contiguous().numpy(), tiles.hi.contiguous().numpy()
    line = tiles.line.numpy()
    counts = np.zeros(T, np.int64)
    args = (fmin.numpy(), lo_n, open_.numpy(), hi_n, line, heap, tau_up, thr, colmin, gmin, cols)
    for i in range(n_tiles):
        a, b = i * tr, min(K, (i + 1) * tr)
        torch.mm(W32[a:b], q, out=buf[: b - a])
        tile = buf_n[: b - a]
        nc = scan(tile, s_n[s_at[i] : s_at[i + 1]], w_n[w_at[i] : w_at[i + 1]], ch, *args)
        if nc:
            end = keep(tile, a, cols, nc, thr, *out, pos, counts, line, tiles.cap)
            if end > room:  # room for this tile's entries and as many again
                room = 2 * end
                out = tuple(np.concatenate([o[:pos], np.empty(room - pos, o.dtype)]) for o in out)
                end = keep(tile, a, cols, nc, thr, *out, pos, counts, line, tiles.cap)
            pos = end
    kept = torch.stack([torch.from_numpy(out[0][:pos]), torch.from_numpy(out[1][:pos])], dim=1)
    return kept, torch.from_numpy(out[2][:pos].copy()), torch.from_numpy(thr)
