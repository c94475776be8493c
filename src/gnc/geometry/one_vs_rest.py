"""Exact one-vs-rest distances with certificates.

For rows ``w_1..w_K`` the one-vs-rest distance of class ``k`` is

    D_k = min_{v in conv{w_j : j != k}} |w_k - v|,

the distance from ``w_k`` to the convex hull of the other rows (Jiang et al., *Generalized Neural
Collapse for a Large Number of Classes*, ICML 2024). With ``y_j = w_j - w_k`` this is the norm of
the min-norm point ``x`` of ``conv{y_j}``; the nearest hull point is ``p_k = w_k + x`` and the
max-margin direction is ``h_k = -x / |x|``.

**Method.** Wolfe's min-norm-point algorithm (an exact active-set method), run in lockstep on a
batch of classes. One tiled float32 pass over ``W W^T`` gives every class a *working set* of its
nearest neighbours; the solution on the working set is then checked against all ``K`` rows with one
float32 GEMM per batch of classes (tiled, never a ``K x K`` matrix): ``x`` is optimal over the
whole hull iff ``<y_j, x> >= |x|^2`` for every ``j``. The float32 products are decided under the
rigorous bound ``|fl(<a, b>) - <a, b>| <= gamma_{d+2} |a| |b|``; the few entries it does not decide
(the support and its near-ties) are recomputed in float64. Violators join the working set and
only those classes are re-solved, warm-started, until none is left.

**Certificate.** For the returned hull point, ``|x|`` is a primal upper bound on ``D_k`` and
``max(0, min_{j != k} <y_j, x> / |x|) = max(0, min_{j != k} <w_k - w_j, h_k>)`` is a dual lower
bound (a feasible margin direction), evaluated against all rows (float64 wherever the float32
bound does not already place an entry above ``|x|^2``). Their difference is the reported gap.

**Sharding.** With ``distributed=True`` (or a ``process_group``) the classes are split across the
ranks of a ``torch.distributed`` group, ``W`` is replicated, and the results are all-gathered, so
every rank (rank 0 in particular) returns the full record.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import resolve_budget, rows_per_budget
from gnc.geometry._screening import Certification, certify, neighbour_pass
from gnc.geometry._wolfe import _wolfe_batched
from gnc.geometry.pairwise import iter_blocks
from gnc.io import Record

__all__ = [
    "MinDistanceResult",
    "OneVsRestResult",
    "min_one_vs_rest_distance",
    "one_vs_rest_distances",
]

_EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class OneVsRestResult(Record):
    """Exact one-vs-rest distances of a set of classes, with certificates.

    ``to_dict()`` gives the ``(C,)`` tensors as lists and leaves out the ``(C, d)`` and
    ``(C, s)`` ones.

    Attributes:
        classes: ``(C,)`` indices of the classes solved (all ``K`` by default).
        distances: ``(C,)`` ``D_k`` (primal value ``|w_k - p_k|``; an upper bound within ``gaps``).
        lower_bounds: ``(C,)`` certified lower bounds ``max(0, min_{j != k} <w_k - w_j, h_k>)``.
        gaps: ``(C,)`` ``distances - lower_bounds`` (>= 0).
        nearest_points: ``(C, d)`` nearest hull points ``p_k``.
        directions: ``(C, d)`` unit max-margin directions ``h_k`` (zero rows where ``D_k = 0``).
        support: ``(C, s)`` indices of the hull points carrying ``p_k``, ``-1`` padded.
        support_weights: ``(C, s)`` their convex weights (``0`` on padding).
        gap: Largest of ``gaps`` (the certificate of every ``D_k`` at once).
        certified: Whether ``gap <= tol``.
        rho: ``min_k D_k`` over the solved classes.
        argmin: The class attaining ``rho``.
        rounds: Working-set rounds (violator checks against all rows).
        iterations: Largest number of Wolfe iterations of a class.
        seconds: Wall time.
        tol: The gap tolerance used for ``certified``.
        rechecked: Inner products recomputed in float64 (those the float32 bound left open).
        world_size: Ranks the classes were split over (1 without ``torch.distributed``).
    """

    classes: torch.Tensor
    distances: torch.Tensor
    lower_bounds: torch.Tensor
    gaps: torch.Tensor
    nearest_points: torch.Tensor
    directions: torch.Tensor
    support: torch.Tensor
    support_weights: torch.Tensor
    gap: float
    certified: bool
    rho: float
    argmin: int
    rounds: int
    iterations: int
    seconds: float
    tol: float
    rechecked: int = 0
    world_size: int = 1

    _omit_from_dict: ClassVar[tuple[str, ...]] = (
        "nearest_points",
        "directions",
        "support",
        "support_weights",
    )


@dataclass(frozen=True)
class MinDistanceResult(Record):
    """``rho = min_k D_k`` with its argmin and a certificate.

    Attributes:
        rho: The minimum one-vs-rest distance (primal value of the argmin class).
        argmin: The class attaining it.
        lower: Certified lower bound on ``rho``: the smaller of the solved classes' dual
            bounds and the unsolved classes' bounds ``|w_k| - max_j <w_j, w_k> / |w_k|``.
        upper: Certified upper bound on ``rho`` (equal to ``rho``).
        gap: ``upper - lower``.
        certified: Whether ``gap <= tol``.
        classes_solved: Classes solved exactly; the rest were excluded by their lower bound.
        num_classes: ``K``.
        seconds: Wall time.
        tol: Gap tolerance used for ``certified``.
        world_size: Ranks the work was split over (1 without ``torch.distributed``).
        max_inner: ``max_{j != k} <w_j, w_k>`` over all pairs (exact; the max cosine for unit
            rows), from the screening pass.
    """

    rho: float
    argmin: int
    lower: float
    upper: float
    gap: float
    certified: bool
    classes_solved: int
    num_classes: int
    seconds: float
    tol: float
    world_size: int = 1
    max_inner: float | None = None


# --------------------------------------------------------------------------------------------
# Solving a set of classes against all rows
# --------------------------------------------------------------------------------------------


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


def _solve_bytes(K: int, d: int, m: int) -> int:
    """Bytes per class of one solve round with working sets of ``m`` rows.

    Float32 scores against all ``K`` rows (a copy and two masks), and the working set's points
    ``Y`` (``m x d``), Gram ``G`` and solver temporaries in float64.
    """
    return 10 * K + 8 * (2 * m * d + 6 * m * m)


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
) -> _ClassSolution:
    """Exact ``D_k`` for the classes ``cls`` of float64 rows ``W`` (no validation).

    Blocks of classes are solved one after the other; each block first takes its initial working
    sets (its ``m0`` nearest other rows) from a float32 pass over its rows, so no ``K x m0``
    neighbour table is ever held. Every tile (the neighbour pass, each round's solves and their
    certification against all rows) stays within ``max_memory_mib``: a round whose working sets
    have grown is split into smaller batches of classes. Without ``keep_points`` the nearest
    points, directions and supports are not kept (empty ``(C, 0)`` tensors). ``bar`` (a tqdm bar
    or None) advances by the classes of each finished block.
    """
    K, d = W.shape
    dev = W.device
    C = cls.numel()
    # Rows of one block: the solve of the first round (the working sets then grow by violators,
    # and later rounds are split to stay within the budget).
    step = rows_per_budget(_solve_bytes(K, d, m0 + 64), max_memory_mib, num_rows=C)

    D = torch.empty(C, dtype=W.dtype, device=dev)
    lower = torch.empty(C, dtype=W.dtype, device=dev)
    width = d if keep_points else 0
    points = torch.empty(C, width, dtype=W.dtype, device=dev)
    dirs = torch.zeros(C, width, dtype=W.dtype, device=dev)
    # Supports: at most d + 1 points in exact arithmetic (Caratheodory); grown if ever wider.
    cap = min(d + 1, K - 1) if keep_points else 0
    support = torch.full((C, cap), -1, dtype=torch.long, device=dev)
    support_w = torch.zeros(C, cap, dtype=W.dtype, device=dev)
    s_all = 1 if keep_points else 0
    total_rounds = 0
    max_iters = 0
    rechecked = 0
    n_add = min(max(16, m0 // 2), K - 1)
    max_norm = float(W.norm(dim=1).max())
    for a, b in iter_blocks(C, step):
        rows = cls[a:b]
        Bn = rows.numel()
        nb = neighbour_pass(
            W, W32, rows, m0, unit_rows=unit_rows, exact_max=False, max_memory_mib=max_memory_mib
        )
        assert nb.neighbours is not None
        ws = nb.neighbours
        del nb
        ws_valid = torch.ones_like(ws, dtype=torch.bool)
        lam = torch.zeros(Bn, m0, dtype=W.dtype, device=dev)
        lam[:, 0] = 1.0
        S = torch.zeros(Bn, m0, dtype=torch.bool, device=dev)
        S[:, 0] = True
        todo = torch.ones(Bn, dtype=torch.bool, device=dev)
        x = torch.zeros(Bn, d, dtype=W.dtype, device=dev)
        gmin_all = torch.zeros(Bn, dtype=W.dtype, device=dev)
        retried = torch.zeros(Bn, dtype=torch.bool, device=dev)
        for rnd in range(max_rounds):
            total_rounds = max(total_rounds, rnd + 1)
            t_all = todo.nonzero().squeeze(1)
            violated_l: list[torch.Tensor] = []
            cand_l: list[torch.Tensor] = []
            cand_ok_l: list[torch.Tensor] = []
            sub = rows_per_budget(
                _solve_bytes(K, d, ws.shape[1]), max_memory_mib, num_rows=t_all.numel()
            )
            for ta, tb in iter_blocks(t_all.numel(), sub):
                t = t_all[ta:tb]
                it, cert = _solve_round(
                    W, W32, rows, t, ws, ws_valid, lam, S, x, tol, n_add, max_memory_mib, max_norm
                )
                max_iters = max(max_iters, it)
                rechecked += cert.rechecked
                gmin_all[t] = cert.gmin
                violated_l.append(cert.violated)
                cand_l.append(cert.candidates)
                cand_ok_l.append(cert.candidates_ok)
            t = t_all
            violated = torch.cat(violated_l)
            if not bool(violated.any()) or rnd == max_rounds - 1:
                todo[t] = False
                break
            vt = t[violated]
            new_idx_i = torch.cat(cand_l)[violated]
            new_ok = torch.cat(cand_ok_l)[violated]
            del violated_l, cand_l, cand_ok_l
            # Classes whose only violators are already in the working set: one more solve
            # with the tolerance of the current |x|, then stop (the gap is reported as is).
            stalled = ~new_ok.any(dim=1)
            if bool(stalled.any()):
                again = vt[stalled]
                retried_now = retried[again].clone()
                retried[again] = True
                keep = torch.ones_like(stalled)
                keep[stalled.nonzero().squeeze(1)[retried_now]] = False
                vt, new_idx_i, new_ok = vt[keep], new_idx_i[keep], new_ok[keep]
            if vt.numel() == 0:
                todo[t] = False
                break
            # Grow the working sets of the block (padding stays invalid).
            ws = torch.cat([ws, torch.zeros(Bn, n_add, dtype=ws.dtype, device=dev)], dim=1)
            ws_valid = torch.cat(
                [ws_valid, torch.zeros(Bn, n_add, dtype=torch.bool, device=dev)], dim=1
            )
            ws[vt, -n_add:] = new_idx_i
            ws_valid[vt, -n_add:] = new_ok
            lam = torch.cat([lam, torch.zeros(Bn, n_add, dtype=W.dtype, device=dev)], dim=1)
            S = torch.cat([S, torch.zeros(Bn, n_add, dtype=torch.bool, device=dev)], dim=1)
            todo = torch.zeros(Bn, dtype=torch.bool, device=dev)
            todo[vt] = True
            # Padding columns point at the class itself (y = 0) but are never valid.
            ws[~ws_valid] = rows[:, None].expand_as(ws)[~ws_valid]
        n2 = (x * x).sum(dim=1)
        Dk = n2.sqrt()
        pos = Dk > 0
        lo = torch.where(pos, gmin_all / torch.where(pos, Dk, 1.0), 0.0).clamp_min(0.0)
        D[a:b] = Dk
        lower[a:b] = torch.minimum(lo, Dk)
        if keep_points:
            points[a:b] = W[rows] + x
            dirs[a:b] = torch.where(pos[:, None], -x / torch.where(pos, Dk, 1.0)[:, None], 0.0)
            # Compact supports into the shared buffer.
            on = lam > 0
            cnt = on.sum(dim=1)
            s = max(1, int(cnt.max()))
            if s > support.shape[1]:  # wider than d + 1 (rounding in degenerate faces)
                support = torch.nn.functional.pad(support, (0, s - support.shape[1]), value=-1)
                support_w = torch.nn.functional.pad(support_w, (0, s - support_w.shape[1]))
            s_all = max(s_all, s)
            order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :s]
            live = torch.arange(s, device=dev)[None, :] < cnt[:, None]
            support[a:b, :s] = torch.where(live, torch.gather(ws, 1, order), -1)
            support_w[a:b, :s] = torch.where(live, torch.gather(lam, 1, order), 0.0)
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


def _solve_round(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    t: torch.Tensor,
    ws: torch.Tensor,
    ws_valid: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    x: torch.Tensor,
    tol: float,
    n_add: int,
    max_memory_mib: float,
    max_norm: float,
) -> tuple[int, Certification]:
    """Solve the classes ``rows[t]`` on their working sets and certify them against all rows.

    Updates ``lam``, ``S`` and ``x`` at ``t`` in place; returns the largest Wolfe iteration
    count and the certification.
    """
    Y = W[ws[t]] - W[rows[t]][:, None, :]
    Y = Y * ws_valid[t][:, :, None]
    G = torch.bmm(Y, Y.transpose(1, 2))
    scale = torch.where(ws_valid[t], G.diagonal(dim1=1, dim2=2), 0).amax(dim=1)
    # Stop when the gap in D is below a small fraction of tol (or at rounding level).
    floor = 64 * _EPS * scale.clamp_min(1e-300)
    lam_t, it = _wolfe_batched(
        G,
        Y,
        ws_valid[t],
        lam[t],
        S[t] & ws_valid[t],
        1e-3 * tol,
        floor,
        50 * ws.shape[1] + 100,
    )
    x_t = torch.bmm(lam_t[:, None, :], Y)[:, 0, :]
    del G, Y
    lam[t] = lam_t
    S[t] = lam_t > 0
    x[t] = x_t
    n2 = (x_t * x_t).sum(dim=1)
    viol_tol = torch.maximum(1e-3 * tol * n2.sqrt(), 64 * _EPS * scale.clamp_min(1e-300))
    # Certify against all rows: one float32 GEMM, float64 where the bound is undecided.
    cert = certify(W, W32, rows[t], x_t, ws[t], viol_tol, n_add, max_memory_mib, max_norm)
    return (int(it.max()) if it.numel() else 0), cert


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


def one_vs_rest_distances(
    weights: torch.Tensor,
    *,
    normalize: bool = True,
    classes: torch.Tensor | list[int] | None = None,
    max_memory_mib: float | None = None,
    working_set_size: int | None = None,
    tol: float = 1e-9,
    max_rounds: int = 100,
    keep_points: bool = True,
    progress: bool = False,
    distributed: bool = False,
    process_group: Any = None,
) -> OneVsRestResult:
    """Exact one-vs-rest distances ``D_k = dist(w_k, conv{w_j : j != k})`` with certificates.

    Computation is in float64 on the device of ``weights`` (inputs of lower precision are
    upcast, never the other way round); the shared passes over ``W`` run in float32 under
    rigorous rounding bounds, with float64 recomputation wherever the bound does not decide.

    Args:
        weights: ``(K, d)`` classifier rows, ``K >= 2``.
        normalize: Normalize rows to the unit sphere first (the GNC2 convention).
        classes: Indices of the classes to solve (default: all ``K``).
        max_memory_mib: Memory budget (MiB) of every tile: a block of classes against all rows,
            its neighbour pass, each round's solves (default: ``gnc._runtime`` working memory,
            1024 unless set). Beyond the tiles the call holds ``W`` in float64 (a copy when
            ``normalize`` or when the input is not float64), ``W`` in float32 and the result.
        working_set_size: Initial nearest-neighbour working set per class (default
            ``min(K-1, max(16, min(64, 2d+2)))``); only speed depends on it.
        tol: Gap tolerance for ``certified``.
        max_rounds: Cap on working-set rounds.
        keep_points: Keep each class's nearest hull point, direction and support (the
            witnesses of its distance: ``(2 d + 2 s) x 8`` bytes per class, several times ``W``
            for all classes). ``False`` returns them as empty ``(C, 0)`` tensors, for callers
            that need only the distances and their certified lower bounds; nothing else changes.
        progress: Show a tqdm bar of solved classes on stderr.
        distributed: Split the classes over the default ``torch.distributed`` group (which
            must be initialized); every rank gets the full result.
        process_group: Split over this group instead (implies ``distributed``).

    Returns:
        An :class:`OneVsRestResult`.

    Raises:
        ValueError: On a non-2-D or non-finite matrix, fewer than two rows, zero rows when
            ``normalize``, class indices out of range, or ``distributed`` without a group.

    Example:
        >>> import math
        >>> angles = torch.arange(6, dtype=torch.float64) * 2 * math.pi / 6
        >>> hexagon = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> res = one_vs_rest_distances(hexagon)
        >>> round(res.rho, 12), res.certified  # 1 - cos(2 pi / 6)
        (0.5, True)
    """
    start = time.perf_counter()
    W, tol, m0 = _prepare(weights, normalize, tol, working_set_size)
    max_memory_mib = resolve_budget(max_memory_mib)
    group, rank, world = _group(distributed, process_group)
    K = W.shape[0]
    if classes is None:
        cls = torch.arange(K, device=W.device)
    else:
        cls = torch.as_tensor(classes, device=W.device)
        if cls.is_floating_point() or cls.ndim != 1 or cls.numel() == 0:
            raise ValueError(
                f"Expected `classes` to be a non-empty 1-D integer index, but got {classes!r}."
            )
        cls = cls.long()
        if int(cls.min()) < 0 or int(cls.max()) >= K:
            raise ValueError(f"Expected `classes` in [0, {K}), but got {cls.min()}..{cls.max()}.")
    max_rounds = check_int("max_rounds", max_rounds, minimum=1)
    sol = _solve_sharded(
        W,
        W.to(torch.float32),
        cls,
        m0,
        unit_rows=normalize,
        max_memory_mib=max_memory_mib,
        tol=tol,
        max_rounds=max_rounds,
        group=group,
        rank=rank,
        world=world,
        progress=progress and rank == 0,
        keep_points=keep_points,
    )
    gaps = sol.D - sol.lower
    arg = int(sol.D.argmin())
    gap = float(gaps.max())
    return OneVsRestResult(
        classes=cls,
        distances=sol.D,
        lower_bounds=sol.lower,
        gaps=gaps,
        nearest_points=sol.points,
        directions=sol.directions,
        support=sol.support,
        support_weights=sol.weights,
        gap=gap,
        certified=gap <= tol,
        rho=float(sol.D[arg]),
        argmin=int(cls[arg]),
        rounds=sol.rounds,
        iterations=sol.iterations,
        seconds=time.perf_counter() - start,
        tol=tol,
        rechecked=sol.rechecked,
        world_size=world,
    )


def min_one_vs_rest_distance(
    weights: torch.Tensor,
    *,
    normalize: bool = True,
    max_memory_mib: float | None = None,
    working_set_size: int | None = None,
    tol: float = 1e-9,
    chunk_size: int = 256,
    progress: bool = False,
    distributed: bool = False,
    process_group: Any = None,
) -> MinDistanceResult:
    """``rho = min_k D_k`` and its argmin, solving only the classes that can attain it.

    One float32 pass over ``W W^T`` gives every class the certified lower bound
    ``D_k >= |w_k| - s_k / |w_k|`` with ``s_k = max_{j != k} <w_j, w_k>`` (``1 - s_k`` for unit
    rows: the margin of ``h = w_k / |w_k|``), where ``s_k`` is exact: every entry the float32
    rounding bound cannot rule out is recomputed in float64 (codes in which thousands of
    neighbours tie included). Classes are then solved exactly in increasing order of that bound,
    and the search stops as soon as the next bound is at least the best distance found (less
    ``tol``).

    Args:
        weights: ``(K, d)`` classifier rows.
        normalize: Normalize rows first.
        max_memory_mib: Memory budget (MiB) of every tile (default: the working memory).
        working_set_size: Initial working-set size (see :func:`one_vs_rest_distances`).
        tol: Gap tolerance for ``certified``.
        chunk_size: Classes solved per batch after the first class (quadruples as the search
            goes on).
        progress: Show tqdm bars on stderr: the screening pass, then classes settled.
        distributed: Split the pass and the solves over the default ``torch.distributed`` group.
        process_group: Split over this group instead (implies ``distributed``).

    Returns:
        A :class:`MinDistanceResult`.

    Example:
        >>> square = torch.cat([torch.eye(2), -torch.eye(2)]).double()
        >>> res = min_one_vs_rest_distance(square)
        >>> round(res.rho, 12), res.certified  # 1 - cos(2 pi / 4)
        (1.0, True)
    """
    start = time.perf_counter()
    W, tol, m0 = _prepare(weights, normalize, tol, working_set_size)
    max_memory_mib = resolve_budget(max_memory_mib)
    group, rank, world = _group(distributed, process_group)
    K, d = W.shape
    W32 = W.to(torch.float32)
    norms = W.norm(dim=1)
    parts = torch.tensor_split(torch.arange(K, device=W.device), world)
    with _class_bar(parts[rank].numel(), f"screening K={K}", progress and rank == 0) as bar:
        nb = neighbour_pass(
            W,
            W32,
            parts[rank],
            0,
            unit_rows=normalize,
            exact_max=True,
            max_memory_mib=max_memory_mib,
            bar=bar,
        )
    s, arg = nb.max_inner, nb.argmax
    if world > 1:
        counts = [p.numel() for p in parts]
        s = _all_gather_rows(s, counts, group)
        arg = _all_gather_rows(arg, counts, group)
    # s is exact up to float64 rounding of a d-term dot product: allow for it.
    slack = 2 * d * _EPS * norms * norms.max()
    lb = (norms - (s + slack) / norms).clamp_min(0.0)
    ub = torch.empty(K, dtype=W.dtype, device=W.device)
    for a, b in iter_blocks(K, rows_per_budget(3 * d * 8, max_memory_mib, num_rows=K)):
        ub[a:b] = (W[a:b] - W[arg[a:b]]).norm(dim=1)
    order = torch.argsort(lb)
    lb_sorted = lb[order]
    best = float(ub.min())
    best_arg = int(ub.argmin())
    solved_lower = torch.inf
    pos = 0
    solved = 0
    # One class first (in codes where every class ties it settles the search at once), then
    # chunks of `chunk_size`, growing fourfold.
    chunk = 1
    have_solution = False
    # A class whose lower bound is >= best - tol cannot lower rho by more than tol: skipping it
    # keeps the certificate (gap <= tol), and stops the search at once when rho is at rounding
    # level (near-duplicate rows), where the lower bounds 1 - s_k are all ~0.
    with _class_bar(K, f"rho search K={K}", progress and rank == 0) as bar:
        while pos < K and (float(lb_sorted[pos]) < best - tol or not have_solution):
            stop = min(K, pos + chunk)
            # Only classes whose lower bound is still below the best distance.
            cut = int(torch.searchsorted(lb_sorted[pos:stop], lb_sorted.new_tensor(best - tol)))
            stop = max(pos + 1, pos + cut)
            cls = order[pos:stop]
            kw: dict[str, Any] = {
                "unit_rows": normalize,
                "max_memory_mib": max_memory_mib,
                "tol": tol,
                "group": group,
                "rank": rank,
                "world": world,
                "progress": False,
                "keep_points": False,
            }
            # Subset solves on the nearest-neighbour working sets (one round): |x| >= D_k is an
            # upper bound, min_j <w_k - w_j, h> a dual lower bound from the same GEMM.
            sub = _solve_sharded(W, W32, cls, m0, max_rounds=1, **kw)
            i = int(sub.D.argmin())
            if not have_solution or float(sub.D[i]) < best:
                best, best_arg = float(sub.D[i]), int(cls[i])
            have_solution = True
            settled = sub.lower >= best - tol
            if bool(settled.any()):
                solved_lower = min(solved_lower, float(sub.lower[settled].min()))
            # Exact solves only for the survivors.
            survivors = cls[~settled]
            if survivors.numel():
                sol = _solve_sharded(W, W32, survivors, m0, max_rounds=100, **kw)
                i = int(sol.D.argmin())
                if float(sol.D[i]) < best:
                    best, best_arg = float(sol.D[i]), int(survivors[i])
                solved_lower = min(solved_lower, float(sol.lower.min()))
            bar.update(cls.numel())
            solved += cls.numel()
            pos = stop
            chunk = max(1, chunk_size) if chunk == 1 else 4 * chunk
            bar.set_postfix(rho=f"{best:.4g}", refresh=False)
        bar.update(K - pos)  # the rest is excluded by its lower bound
    rest_lower = float(lb_sorted[pos]) if pos < K else torch.inf
    best_lower = min(solved_lower, rest_lower, best)
    gap = best - best_lower
    return MinDistanceResult(
        rho=best,
        argmin=best_arg,
        lower=best_lower,
        upper=best,
        gap=gap,
        certified=gap <= tol,
        classes_solved=solved,
        num_classes=K,
        seconds=time.perf_counter() - start,
        tol=tol,
        world_size=world,
        max_inner=float(s.max()),
    )
