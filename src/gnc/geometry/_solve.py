"""The solver behind :mod:`gnc.geometry.one_vs_rest`: blocks of classes solved in lockstep.

Each block of classes takes its working sets from one float32 seed pass (the rows most violating a
whitened direction, :mod:`gnc.geometry._seeds`), is solved on them by the batched Wolfe kernel
(:mod:`gnc.geometry._wolfe`), checked against all rows (:mod:`gnc.geometry._recertify`: one GEMM
per batch of :mod:`gnc.geometry._screening`, or the row bounds of the last round, or a first
round's int8 ranking), and re-solved until no row violates: each round only the classes still
running are solved, on the corral of their last solve plus the best-scoring violators (rows off the
corral are dropped, so a working set stays near its support's size); the corrals' Grams are kept
over the rounds (a round computes the columns of the rows that joined), built from the points a few
classes at a time. Every tile, round and batch is sized by the memory budget. The sharded variant
splits the classes over a ``torch.distributed`` group. The public functions and records are in
:mod:`gnc.geometry.one_vs_rest`; this module is private (split out to keep both readable).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import rows_per_budget
from gnc.geometry import _compiled, _recertify
from gnc.geometry._int8 import Int8Rows, int8_backend, quantize_rows
from gnc.geometry._screening import neighbour_pass
from gnc.geometry._seeds import seed_pass, whitening
from gnc.geometry._wolfe import _wolfe_batched
from gnc.geometry.pairwise import iter_blocks

_EPS = torch.finfo(torch.float64).eps
#: Rounds without a fall of the norm after which a class within tolerance stops.
_FLAT_ROUNDS = 8
#: Seed working sets by a whitened direction (:mod:`gnc.geometry._seeds`) when at least ``4 d``
#: classes are solved, else by nearest rows.
WHITENED_SEEDS = True
#: Certify a class from the row bounds of its last certification where they decide it
#: (:mod:`gnc.geometry._recertify`; streamed CPU certifications only), from its
#: ``_BOUNDS_FROM``-th certification (0-based) on, with the keep margin
#: :data:`gnc.geometry._recertify.MARGIN`. Measured on the Gemma 3 head (65,536 rows, 4,096
#: classes): from the second certification to the third the points move by more than 4 % of
#: ``|x|`` for 10 % of the classes, from the first to the second for 88 % (there the bounds
#: rarely decide and cost keeping thousands of violators).
ROW_BOUNDS = True
_BOUNDS_FROM = 1
#: With the packed int8 rows of the seed pass, a first round's classes take their violators from
#: an int8 ranking, each checked in float64 (:func:`gnc.geometry._seeds.int8_violators`); only
#: the classes with no violator among them take a float32 certification. Measured on the Gemma 3
#: head (65,536 rows): the packed int8 pass costs ~0.6 of a float32 certification's.
INT8_FIRST_ROUND = True


def _default_working_set(K: int, d: int) -> int:
    return min(K - 1, max(16, min(64, 2 * d + 2)))


@dataclass
class _ClassSolution:
    D: torch.Tensor
    lower: torch.Tensor
    points: torch.Tensor
    directions: torch.Tensor
    support: torch.Tensor
    weights: torch.Tensor
    rounds: int
    iterations: int
    rechecked: int


# Budget (MiB) of the point coordinates built at once for the Grams (a few classes' worth), and
# the classes solved in lockstep on a CPU: batches whose Grams and score tiles stay in cache.
# Measured on 4,096 rows of the Gemma 3 head, one thread: 9.8 s of CPU with budget-sized batches
# (~2,000 classes) and 16 MiB of points, 8.1-8.3 s with batches of 128 and 2 MiB (8.9 s with
# batches of 64 or 512, 10.6 s with 32). Since the whitened seeds (session 28, same CPU, runs
# one after the other): 8,192 rows 43.1 / 43.7 s with 128, 38.9 / 35.0 s with 256, 40.0 / 33.8 s
# with 512; 16,384 rows 111.2 / 112.1 s with 128, 99.2 / 106.3 s with 256.
_POINTS_MIB = 2.0
#: Whether a CPU gathers the working sets' points and builds the next rounds' Grams with the
#: compiled kernels of :mod:`gnc.geometry._compiled` (where numba is installed) rather than
#: tensor operations.
COMPILED_GRAMS = True
_CPU_SOLVE_BATCH = 256


def _solve_bytes(K: int, d: int, m: int) -> int:
    """Bytes per class of one solve round with working sets of ``m`` rows.

    Float32 scores against all ``K`` rows (a copy and two masks), the Gram ``G`` of the working
    set and the solver's temporaries in float64, and the solution ``x`` (the points themselves
    are built a few classes at a time, within ``_POINTS_MIB``).
    """
    return 10 * K + 8 * (2 * d + 6 * m * m)


def _solve_classes(
    W: torch.Tensor,
    W32: torch.Tensor,
    cls: torch.Tensor,
    m0: int,
    *,
    unit_rows: bool,
    max_memory_mib: float,
    tol: float,
    max_rounds: int,
    keep_points: bool = True,
    bar: Any = None,
    stop_at: float | None = None,
    quantized: Int8Rows | None = None,
) -> _ClassSolution:
    """Exact ``D_k`` for the classes ``cls`` of float64 rows ``W`` (no validation).

    Blocks of classes are solved one after the other; each block first takes its initial working
    sets (the ``m0`` rows most violating its whitened direction, or its nearest rows without
    :data:`WHITENED_SEEDS`) from a float32 pass over its rows, so no ``K x m0``
    table is ever held. Every tile (the seed pass, each round's solves and their
    certification against all rows) stays within ``max_memory_mib``: a round whose working sets
    have grown is split into smaller batches of classes. Without ``keep_points`` the nearest
    points, directions and supports are not kept (empty ``(C, 0)`` tensors). ``bar`` (a tqdm bar
    or None) advances by the classes of each finished block. ``stop_at``: a class also stops once
    its certified lower bound reaches it (``D`` is then that round's upper bound ``|x|``).
    ``quantized``: the rows already quantized for the int8 backend, reused where it wants them.
    """
    K, d = W.shape
    dev = W.device
    C = cls.numel()
    # Rows of one block: the solve of the first round (the working sets then grow by violators,
    # and later rounds are split to stay within the budget).
    n_add = min(_violators_per_round(m0), K - 1)
    step = rows_per_budget(_solve_bytes(K, d, m0 + n_add), max_memory_mib, num_rows=C)

    D = torch.empty(C, dtype=W.dtype, device=dev)
    lower = torch.empty(C, dtype=W.dtype, device=dev)
    width = d if keep_points else 0
    points = torch.empty(C, width, dtype=W.dtype, device=dev)
    dirs = torch.zeros(C, width, dtype=W.dtype, device=dev)
    # Supports: at most d + 1 points in exact arithmetic (Caratheodory), rarely more than a
    # working set: that wide at first, grown if ever wider (d + 1 columns for every class of the
    # Gemma 3 head would be 2.7 GB).
    cap = min(d + 1, K - 1, m0 + n_add) if keep_points else 0
    support = torch.full((C, cap), -1, dtype=torch.long, device=dev)
    support_w = torch.zeros(C, cap, dtype=W.dtype, device=dev)
    s_all = 1 if keep_points else 0
    total_rounds = 0
    max_iters = 0
    rechecked = 0
    max_norm = float(W.norm(dim=1).max())
    # Whitening costs K d^2 + d^3, at most a quarter of the seed pass (C K d) from 4 d classes:
    # fewer classes (the small solves of rho searches and argmax) keep the nearest rows.
    whiten = WHITENED_SEEDS and cls.numel() >= 4 * d
    seed_map = whitening(W, max_memory_mib) if whiten else None
    backend = int8_backend(dev, K, d)
    # The packed backend's coarser queries leave too many entries open for a certification
    # (measured: slower than float32 there): it ranks the whitened seeds only, and its rows are
    # quantized and packed only then (not for every small solve of a rho search).
    q8: Int8Rows | None = None
    if backend == "int_mm" or (backend == "packed" and whiten):
        packed = backend == "packed"
        if quantized is not None and (quantized.packed is not None) == packed:
            q8 = quantized
        else:
            q8 = quantize_rows(W, max_memory_mib, packed=packed)
    q8_cert = q8 if backend == "int_mm" else None
    # The first round's violators from an int8 ranking (not in a last round: its classes keep
    # their gmin as the dual bound).
    rank_ok = INT8_FIRST_ROUND and max_rounds > 1 and q8 is not None and q8.packed is not None
    q8_rank = q8 if rank_ok else None
    for a, b in iter_blocks(C, step):
        rows = cls[a:b]
        Bn = rows.numel()
        if seed_map is not None:
            ws = seed_pass(W32, rows, m0, *seed_map, max_memory_mib, q8)
        else:
            nb = neighbour_pass(
                W,
                W32,
                rows,
                m0,
                unit_rows=unit_rows,
                exact_max=False,
                max_memory_mib=max_memory_mib,
                q8=q8_cert,
            )
            assert nb.neighbours is not None
            ws = nb.neighbours
            del nb
        x = torch.zeros(Bn, d, dtype=W.dtype, device=dev)
        gmin_all = torch.zeros(Bn, dtype=W.dtype, device=dev)
        retried = torch.zeros(Bn, dtype=torch.bool, device=dev)
        last_n2 = torch.full((Bn,), torch.inf, dtype=W.dtype, device=dev)
        flat = torch.zeros(Bn, dtype=torch.long, device=dev)
        # The classes still running (indices into the block) and their working sets: the
        # corral of the last solve and the violators that joined; their Grams are kept over
        # the rounds (a round computes only the columns of the rows that joined).
        act = torch.arange(Bn, device=dev)
        valid = torch.ones_like(ws, dtype=torch.bool)
        lam = torch.zeros(Bn, m0, dtype=W.dtype, device=dev)
        lam[:, 0] = 1.0
        G = _gram_rows(W, ws, rows, 0)
        fin_ws = torch.empty(Bn, 0, dtype=torch.long, device=dev)
        fin_lam = torch.empty(Bn, 0, dtype=W.dtype, device=dev)
        # Row bounds of the classes still running (aligned with act), from the last round.
        bnd: _recertify.RowBounds | None = None
        for rnd in range(max_rounds):
            total_rounds = max(total_rounds, rnd + 1)
            rows_a = rows[act]
            x_a = torch.zeros(act.numel(), d, dtype=W.dtype, device=dev)
            S = lam > 0
            viol_tol = torch.empty(act.numel(), dtype=W.dtype, device=dev)
            keep_bounds = ROW_BOUNDS and q8_cert is None and rnd >= _BOUNDS_FROM
            sub = rows_per_budget(
                _solve_bytes(K, d, ws.shape[1]), max_memory_mib, num_rows=act.numel()
            )
            if dev.type == "cpu":
                sub = min(sub, _CPU_SOLVE_BATCH)
            for ta, tb in iter_blocks(act.numel(), sub):
                it = _solve_batch(
                    W, rows_a, slice(ta, tb), ws, valid, G, lam, S, x_a, viol_tol, tol
                )
                max_iters = max(max_iters, it)
            corral = torch.where(lam > 0, ws, rows_a[:, None])
            cert, bnd = _recertify.certify_round(
                W, W32, rows_a, x_a, corral, viol_tol, n_add, sub, max_memory_mib, max_norm,
                q8_cert, bnd, keep_bounds, q8_rank if rnd == 0 else None,
            )  # fmt: skip
            rechecked += cert.rechecked
            gmin_all[act] = cert.gmin
            x[act] = x_a
            # The supports of this round (final for the classes that stop now).
            order, live = _compact(ws, lam)
            sup_ws = torch.where(live, ws.gather(1, order), -1)
            sup_lam = torch.where(live, lam.gather(1, order), 0.0)
            if sup_ws.shape[1] > fin_ws.shape[1]:
                fin_ws = torch.nn.functional.pad(fin_ws, (0, sup_ws.shape[1] - fin_ws.shape[1]))
                fin_lam = torch.nn.functional.pad(fin_lam, (0, sup_ws.shape[1] - fin_lam.shape[1]))
            fin_ws[act] = torch.nn.functional.pad(sup_ws, (0, fin_ws.shape[1] - sup_ws.shape[1]))
            fin_lam[act] = torch.nn.functional.pad(
                sup_lam, (0, fin_lam.shape[1] - sup_lam.shape[1])
            )
            violated = cert.violated
            # A class whose norm has not fallen for _FLAT_ROUNDS rounds (a near-degenerate face,
            # where the corrals of successive rounds trade tied rows at rounding level) stops
            # once its gap is within tol: its certificate holds as it is (measured: one class
            # of the best-known 120-point Tammes code ran all 100 rounds at a gap of 1.5e-11).
            n2_a = (x_a * x_a).sum(dim=1)
            norm_a = n2_a.sqrt()
            gap_a = norm_a - gmin_all[act] / norm_a.clamp_min(1e-300)
            still = n2_a >= last_n2[act] * (1.0 - 8 * _EPS)
            flat[act] = torch.where(still, flat[act] + 1, 0)
            last_n2[act] = n2_a
            violated = violated & ~((flat[act] >= _FLAT_ROUNDS) & (gap_a <= tol))
            if stop_at is not None:
                # Settled for the caller: D_k >= gmin / |x| >= stop_at (the bound reported).
                violated = violated & ~(gmin_all[act] / norm_a.clamp_min(1e-300) >= stop_at)
            if not bool(violated.any()) or rnd == max_rounds - 1:
                break
            vt = violated.nonzero().squeeze(1)
            new_idx = cert.candidates[vt]
            new_ok = cert.candidates_ok[vt]
            del cert
            # Classes whose only violators are already in the corral (rounding): one more
            # solve with the tolerance of the current |x|, then stop (the gap is reported as is).
            stalled = ~new_ok.any(dim=1)
            if bool(stalled.any()):
                again = act[vt[stalled]]
                retried_now = retried[again].clone()
                retried[again] = True
                keep = torch.ones_like(stalled)
                keep[stalled.nonzero().squeeze(1)[retried_now]] = False
                vt, new_idx, new_ok = vt[keep], new_idx[keep], new_ok[keep]
            if vt.numel() == 0:
                break
            ws, valid, lam, G = _next_working_sets(W, rows_a, vt, ws, lam, G, new_idx, new_ok)
            act = act[vt]
            # (certify_round returns bounds only when every class of the round has them)
            bnd = bnd[vt] if bnd is not None else None
        del G
        n2 = (x * x).sum(dim=1)
        Dk = n2.sqrt()
        pos = Dk > 0
        lo = torch.where(pos, gmin_all / torch.where(pos, Dk, 1.0), 0.0).clamp_min(0.0)
        D[a:b] = Dk
        lower[a:b] = torch.minimum(lo, Dk)
        if keep_points:
            points[a:b] = W[rows] + x
            dirs[a:b] = torch.where(pos[:, None], -x / torch.where(pos, Dk, 1.0)[:, None], 0.0)
            s = max(1, fin_ws.shape[1])
            if s > support.shape[1]:  # wider than d + 1 (rounding in degenerate faces)
                support = torch.nn.functional.pad(support, (0, s - support.shape[1]), value=-1)
                support_w = torch.nn.functional.pad(support_w, (0, s - support_w.shape[1]))
            s_all = max(s_all, s)
            support[a:b, : fin_ws.shape[1]] = torch.where(fin_lam > 0, fin_ws, -1)
            support_w[a:b, : fin_ws.shape[1]] = fin_lam
        if bar is not None:
            bar.update(Bn)
    # A view of the first s_all columns (no copy of the buffer).
    return _ClassSolution(
        D,
        lower,
        points,
        dirs,
        support[:, :s_all],
        support_w[:, :s_all],
        total_rounds,
        max_iters,
        rechecked,
    )


def _violators_per_round(m0: int) -> int:
    """Rows that join a working set per round: the best-scoring violators of the certification.

    Measured on the Gemma 3 head (4,096 rows, corrals pruned every round): 32, 64, 128 and 256
    violators per round cost 2.68, 2.55, 2.45 and 2.37 certification passes (the support is
    rarely among even the top 256 rows of the first solution), while the Grams and solves of
    the larger working sets grow as their square: half of ``m0`` is fastest end to end.
    """
    return max(16, m0 // 2)


def _compact(ws: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The corral (``lam > 0``) of each working set first: ``(order, live)``.

    ``order`` ``(n, s)`` are working-set columns (the corral's, then arbitrary ones), ``live`` marks
    the corral's, ``s`` is the largest corral (at least 1).
    """
    on = lam > 0
    cnt = on.sum(dim=1)
    s = max(1, int(cnt.max())) if cnt.numel() else 1
    order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :s]
    live = torch.arange(order.shape[1], device=ws.device)[None, :] < cnt[:, None]
    return order, live


def _next_working_sets(
    W: torch.Tensor,
    rows: torch.Tensor,
    vt: torch.Tensor,
    ws: torch.Tensor,
    lam: torch.Tensor,
    G: torch.Tensor,
    new_idx: torch.Tensor,
    new_ok: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Working sets of the next round for the classes ``rows[vt]``: corral plus new violators.

    Rows off the corral are dropped (the norm of the solution still falls strictly each round,
    as every added row violates the optimality of the last one, so no support repeats); their
    place goes to the ``new_idx`` (valid where ``new_ok``). The Grams of the corrals are kept,
    the columns of the rows that joined are computed. Padding columns point at the class itself
    (``y = 0``) and are never valid. Returns ``(ws, valid, lam, G)``.
    """
    r = rows[vt]
    n = vt.numel()
    lam_v = lam[vt]
    order, live = _compact(ws[vt], lam_v)
    s = order.shape[1]
    n_add = new_idx.shape[1]
    keep = torch.where(live, ws[vt].gather(1, order), r[:, None])
    ws_new = torch.cat([keep, torch.where(new_ok, new_idx, r[:, None])], dim=1)
    valid = torch.cat([live, new_ok], dim=1)
    lam_new = torch.cat(
        [torch.where(live, lam_v.gather(1, order), 0.0), lam_v.new_zeros(n, n_add)], dim=1
    )
    new_rows = _gram_rows(W, ws_new, r, s)
    if COMPILED_GRAMS and _compiled.AVAILABLE and G.device.type == "cpu":
        return ws_new, valid, lam_new, _compiled.next_grams(G, vt, order, live, new_rows)
    # The corrals' Grams by one gather of their entries (not a copy of the violated classes'
    # whole Grams first).
    m_old = G.shape[1]
    Gv = G.reshape(-1)[(vt[:, None, None] * m_old + order[:, :, None]) * m_old + order[:, None, :]]
    G_new = torch.empty(n, s + n_add, s + n_add, dtype=G.dtype, device=G.device)
    lf = live.to(G.dtype)
    G_new[:, :s, :s] = Gv * lf[:, :, None] * lf[:, None, :]
    G_new[:, s:, :] = new_rows
    G_new[:, :s, s:] = new_rows[:, :, :s].transpose(1, 2)
    return ws_new, valid, lam_new, G_new


def _points(W: torch.Tensor, ws: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``y = w_j - w_k`` for the working sets ``ws`` ``(n, m)`` of the classes ``rows``.

    Padding columns point at the class itself: their y is 0. (``index_select`` copies whole rows:
    1.5x faster than advanced indexing for these gathers on a CPU.)
    """
    if COMPILED_GRAMS and _compiled.AVAILABLE and W.device.type == "cpu" and W.is_contiguous():
        return _compiled.points(W, ws, rows)
    n, m = ws.shape
    Y = torch.index_select(W, 0, ws.reshape(-1)).view(n, m, W.shape[1])
    Y -= W[rows][:, None, :]
    return Y


def _gram_rows(W: torch.Tensor, ws: torch.Tensor, rows: torch.Tensor, c: int) -> torch.Tensor:
    """``<y_i, y_j>`` for the working-set rows ``i >= c`` and every row ``j``: ``(n, m - c, m)``.

    Built from the points a few classes at a time (within ``_POINTS_MIB``). As rows, not columns:
    MKL runs the short, wide product ``(m - c, d) x (d, m)`` ~2x faster than the tall, thin one
    on an AVX2 core (float64, m = 96, m - c = 32: 21-25 against 10-14 GFlop/s).
    """
    n, m = ws.shape
    out = torch.empty(n, m - c, m, dtype=W.dtype, device=W.device)
    chunk = rows_per_budget(8 * m * W.shape[1], _POINTS_MIB, num_rows=n)
    for a, b in iter_blocks(n, chunk):
        Y = _points(W, ws[a:b], rows[a:b])
        torch.bmm(Y[:, c:], Y.transpose(1, 2), out=out[a:b])
    return out


def _solve_batch(
    W: torch.Tensor,
    rows: torch.Tensor,
    t: slice,
    ws: torch.Tensor,
    ws_valid: torch.Tensor,
    G_block: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    x: torch.Tensor,
    viol_tol: torch.Tensor,
    tol: float,
) -> int:
    """Solve the classes ``rows[t]`` on their working sets.

    ``G_block`` holds the Grams of the block's working sets; ``t`` is a slice, so that they
    are not copied. Updates ``lam``, ``S``, ``x`` and the certification's violation tolerance
    ``viol_tol`` at ``t`` in place; returns the largest Wolfe iteration count.
    """
    ws_t, rows_t = ws[t], rows[t]
    T = ws_t.shape[0]

    def points(i: torch.Tensor) -> torch.Tensor:
        return _points(W, ws_t[i], rows_t[i])

    G = G_block[t]
    scale = torch.where(ws_valid[t], G.diagonal(dim1=1, dim2=2), 0).amax(dim=1)
    # Stop when the gap in D is below a small fraction of tol (or at rounding level).
    floor = 64 * _EPS * scale.clamp_min(1e-300)
    lam_t, it = _wolfe_batched(
        G,
        points,
        ws_valid[t],
        lam[t],
        S[t] & ws_valid[t],
        1e-3 * tol,
        floor,
        50 * ws.shape[1] + 100,
    )
    del G
    # x = sum_i lam_i y_i over the support only.
    on = lam_t > 0
    s = max(1, int(on.sum(dim=1).max()))
    order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :s]
    lam_s = lam_t.gather(1, order)  # 0 past the support
    ws_s = ws_t.gather(1, order)
    if COMPILED_GRAMS and _compiled.AVAILABLE and W.device.type == "cpu" and W.is_contiguous():
        x_t = _compiled.combine(W, ws_s, rows_t, lam_s)
    else:
        x_t = torch.empty(T, W.shape[1], dtype=W.dtype, device=W.device)
        chunk = rows_per_budget(8 * s * W.shape[1], _POINTS_MIB, num_rows=T)
        for a, b in iter_blocks(T, chunk):
            Y = _points(W, ws_s[a:b], rows_t[a:b])
            x_t[a:b] = torch.bmm(lam_s[a:b, None, :], Y)[:, 0, :]
    lam[t] = lam_t
    S[t] = lam_t > 0
    x[t] = x_t
    n2 = (x_t * x_t).sum(dim=1)
    viol_tol[t] = torch.maximum(1e-3 * tol * n2.sqrt(), 64 * _EPS * scale.clamp_min(1e-300))
    return int(it.max()) if it.numel() else 0


def _class_bar(total: int, desc: str, progress: bool) -> Any:
    """A transient tqdm bar of classes on stderr (a no-op unless ``progress``)."""
    return tqdm(
        total=total, desc=desc, unit="class", disable=not progress, leave=False, file=sys.stderr
    )


def _prepare(
    weights: torch.Tensor, normalize: bool, tol: float, working_set_size: int | None
) -> tuple[torch.Tensor, float, int]:
    """Validate the public arguments: float64 rows, the gap tolerance, the working-set size."""
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=normalize)
    W = W.to(torch.float64)
    if normalize:
        W = W / W.norm(dim=1, keepdim=True)
    tol = check_positive("tol", tol)
    K, d = W.shape
    if working_set_size is None:
        return W, tol, _default_working_set(K, d)
    return W, tol, min(K - 1, check_int("working_set_size", working_set_size, minimum=1))


# --------------------------------------------------------------------------------------------
# Sharding over torch.distributed
# --------------------------------------------------------------------------------------------


def _group(distributed: bool, process_group: Any) -> tuple[Any, int, int]:
    """``(group, rank, world_size)``; ``(None, 0, 1)`` when not distributed."""
    if process_group is None and not distributed:
        return None, 0, 1
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            "Expected an initialized torch.distributed process group for `distributed=True` "
            "or `process_group`, but got none (call torch.distributed.init_process_group, or "
            "launch with torchrun)."
        )
    group = process_group if process_group is not None else dist.group.WORLD
    return group, dist.get_rank(group), dist.get_world_size(group)


def _all_gather_rows(x: torch.Tensor, counts: list[int], group: Any) -> torch.Tensor:
    """Concatenate each rank's ``x`` (``counts[r]`` rows, same trailing shape) on every rank."""
    n = max(counts)
    cpu = dist.get_backend(group) == "gloo"
    src = x.cpu() if cpu else x
    pad = torch.zeros((n - src.shape[0], *src.shape[1:]), dtype=src.dtype, device=src.device)
    mine = torch.cat([src, pad])
    out = [torch.empty_like(mine) for _ in counts]
    dist.all_gather(out, mine, group=group)
    full = torch.cat([o[:c] for o, c in zip(out, counts, strict=True)])
    return full.to(x.device)


def _all_reduce_max(values: list[int], group: Any) -> list[int]:
    t = torch.tensor(values, dtype=torch.long)
    if dist.get_backend(group) != "gloo" and torch.cuda.is_available():
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return [int(v) for v in t.cpu()]


def _solve_sharded(
    W: torch.Tensor,
    W32: torch.Tensor,
    cls: torch.Tensor,
    m0: int,
    *,
    unit_rows: bool,
    max_memory_mib: float,
    tol: float,
    max_rounds: int,
    group: Any,
    rank: int,
    world: int,
    progress: bool,
    keep_points: bool = True,
    stop_at: float | None = None,
    quantized: Int8Rows | None = None,
) -> _ClassSolution:
    """Solve this rank's share of ``cls`` (neighbours per block), gathered over the group."""
    K = W.shape[0]
    parts = torch.tensor_split(cls, world)
    mine = parts[rank]
    with _class_bar(mine.numel(), f"one-vs-rest K={K}", progress) as bar:
        sol = _solve_classes(
            W,
            W32,
            mine,
            m0,
            unit_rows=unit_rows,
            max_memory_mib=max_memory_mib,
            tol=tol,
            max_rounds=max_rounds,
            keep_points=keep_points,
            bar=bar,
            stop_at=stop_at,
            quantized=quantized,
        )
    if world == 1:
        return sol
    counts = [p.numel() for p in parts]
    s_all, rounds, iters, _ = _all_reduce_max(
        [sol.support.shape[1], sol.rounds, sol.iterations, 0], group
    )
    pad = s_all - sol.support.shape[1]
    support = torch.nn.functional.pad(sol.support, (0, pad), value=-1)
    weights = torch.nn.functional.pad(sol.weights, (0, pad), value=0.0)
    rechecked = _all_gather_rows(torch.tensor([sol.rechecked], device=W.device), [1] * world, group)
    return _ClassSolution(
        _all_gather_rows(sol.D, counts, group),
        _all_gather_rows(sol.lower, counts, group),
        _all_gather_rows(sol.points, counts, group),
        _all_gather_rows(sol.directions, counts, group),
        _all_gather_rows(support, counts, group),
        _all_gather_rows(weights, counts, group),
        rounds,
        iters,
        int(rechecked.sum()),
    )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
