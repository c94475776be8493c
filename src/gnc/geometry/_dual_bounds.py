"""Cheap certified lower bounds on ``D_k`` for many classes, and the ``rho`` search built on them.

Internal; used by :func:`gnc.geometry.min_one_vs_rest_distance` and
:func:`gnc.analysis.rho_search`.

**Dual bounds.** Every direction ``h != 0`` bounds the one-vs-rest distance from below (Jiang et
al., *Generalized Neural Collapse for a Large Number of Classes*, ICML 2024, define
``D_k = min_{p in conv{w_j : j != k}} |w_k - p|``): for every such ``p``,
``|w_k - p| |h| >= <w_k - p, h> >= min_{j != k} <w_k - w_j, h>``, so

    D_k >= (<w_k, h> - max_{j != k} <w_j, h>) / |h|.

The bound needs no optimality, only a good ``h``: here ``h = -x`` for an approximate min-norm point
``x = sum_i lam_i (w_i - w_k)`` of a small working set (the class's nearest rows), from a fixed
number of accelerated projected-gradient steps on the simplex (FISTA with adaptive restart,
batched over classes; float32 is enough, since ``h`` only has to be good, not exact). The max over
all rows is one float32 GEMM ``h W^T`` per block of classes, bounded above under the rigorous
rounding bound of :mod:`gnc.geometry._screening`; ``<w_k, h>`` is a float64 dot product, less its
rounding bound. The same GEMM names each class's most violating rows (largest ``<w_j, h>``
outside the working set); classes whose bound is still low get them added and one more warm-started
solve and GEMM (the support of ``D_k`` often lies far down the neighbour ranking).

**The search.** Classes are taken in increasing order of a first lower bound (``1 - s_k`` of the
exact-max pass): the first one is solved exactly, the later chunks (growing fourfold) get the dual
bounds (an evenly spaced probe of each chunk first: where they settle too few of it, as in a tight
cluster of near-duplicate rows, the rest of the chunk goes without), and only the classes whose
bound is below the best distance found (less ``tol``) are solved exactly, those with the smallest
estimate ``|x|`` first, so that the best distance falls to ``rho`` early and prunes the rest. An
exact solve stops as soon as its certified bound reaches the best distance. Every exclusion is by a
certified lower bound; ``rho`` itself is an exact, certified solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gnc._runtime import rows_per_budget
from gnc.geometry._int8 import int8_backend, quantize_rows
from gnc.geometry._screening import (
    exact_float32_matmul,
    neighbour_pass,
    rounding_factor,
    scores32,
)
from gnc.geometry._solve import _all_gather_rows, _solve_sharded
from gnc.geometry.pairwise import iter_blocks

__all__: list[str] = []

_EPS = torch.finfo(torch.float64).eps

# Working set of the first solve (nearest rows, kept by the exact-max pass), rows added from the
# violators for the second solve, and projected-gradient steps of each solve. Measured on random
# anisotropic 50,000 x 576 rows (rho = 0.8209, D_k 0.82-0.85): the first bound settles 0.1 % of
# 1,000 random classes with the 32 nearest rows, 68 % with 64, 95 % with 96 (one GEMM each);
# the second solve (violators added) tightens the rest (on 300 classes, 32 nearest + 32 violators
# bound D_k within 0.0065 in the median, the 64 nearest alone within 0.018).
NEIGHBOURS = 96
_ADDED = 32
_STEPS = 60
# Classes solved at once (see _solve).
_SOLVE_BLOCK = 64
# Exact solves of the survivors per batch (their dual bounds are re-checked against the best
# distance found before each batch).
_EXACT_BATCH = 64
# Classes of a chunk given dual bounds first (evenly spaced), and the share of them the bounds
# must settle for the rest of the chunk to get them too. Measured on the Gemma 3 head (262,144
# rows, 2 threads): its 5,854 classes whose first bound is below rho lie in one tight cluster,
# where the dual bounds settle none (66 s for all of them) and the exact solves, stopping at the
# best distance, settle each in ~50 ms; a dual bound costs ~11 ms, so it pays for itself where it
# settles more than about a fifth.
_PROBE = 256
_PROBE_SETTLED = 0.25


@dataclass
class DualBounds:
    """Certified lower bounds on ``D_k`` for a set of classes.

    Attributes:
        lower: ``(C,)`` certified lower bounds (``0`` where ``h`` vanished).
        estimate: ``(C,)`` ``|x|`` of the approximate hull points (float32; an estimate of
            ``D_k`` from above, used only to order the exact solves).
    """

    lower: torch.Tensor
    estimate: torch.Tensor


def _project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of every row of ``v`` onto the probability simplex (sort-based)."""
    m = v.shape[1]
    u = v.sort(dim=1, descending=True).values
    css = u.cumsum(dim=1) - 1.0
    k = torch.arange(1, m + 1, dtype=v.dtype, device=v.device)
    count = (u - css / k > 0).sum(dim=1, keepdim=True).clamp_min(1)
    theta = css.gather(1, count - 1) / count.to(v.dtype)
    return (v - theta).clamp_min(0.0)


def simplex_min_norm(
    G: torch.Tensor, iterations: int, start: torch.Tensor | None = None
) -> torch.Tensor:
    """Approximate ``argmin_{lam in simplex} lam^T G lam`` for a batch of Grams ``(B, m, m)``.

    FISTA with the gradient restart of O'Donoghue and Candes, step ``1 / (2.2 lambda_max(G))``
    (eight power iterations estimate ``lambda_max``), started from ``start`` (``(B, m)`` on the
    simplex) or the uniform weights. Returns ``(B, m)`` weights on the simplex.
    """
    B, m, _ = G.shape
    v = torch.ones(B, m, 1, dtype=G.dtype, device=G.device)
    for _ in range(8):
        v = torch.bmm(G, v)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
    top = (v * torch.bmm(G, v)).sum(dim=(1, 2))
    step = 1.0 / (2.2 * top.clamp_min(1e-30))[:, None]
    lam = torch.full((B, m), 1.0 / m, dtype=G.dtype, device=G.device) if start is None else start
    y = lam.clone()
    t = torch.ones(B, 1, dtype=G.dtype, device=G.device)
    for _ in range(iterations):
        grad = 2.0 * torch.bmm(G, y[:, :, None])[:, :, 0]
        new = _project_simplex(y - step * grad)
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        restart = ((y - new) * (new - lam)).sum(dim=1, keepdim=True) > 0
        y = torch.where(restart, new, new + ((t - 1.0) / t_new) * (new - lam))
        t = torch.where(restart, torch.ones_like(t), t_new)
        lam = new
    return lam / lam.sum(dim=1, keepdim=True)


def _margin_bounds(
    W: torch.Tensor, W32: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, max_norm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified ``D_k >= (<w_k, h> - max_{j != k} <w_j, h>) / |h|`` for ``h = -x`` (float32).

    Returns the ``(B,)`` bounds (``0`` where ``x = 0``) and the float32 scores ``<w_j, h>``
    ``(B, K)`` with the own entries at ``-inf`` (for the violators).
    """
    B = rows.numel()
    d = W.shape[1]
    h32 = -x
    with exact_float32_matmul(W.device):
        g = scores32(h32, W32)
    g[torch.arange(B, device=W.device), rows] = -torch.inf
    h = h32.to(W.dtype)  # exact
    hn = h.norm(dim=1)
    gmax = g.max(dim=1).values.to(W.dtype)
    # max_j <w_j, h> <= fl32 max + e |h| max_j |w_j| (+ the rounding of the max itself);
    # <w_k, h> in float64 within 2 d eps |w_k| |h|; |h| in float64 within d eps |h|.
    own = (W[rows] * h).sum(dim=1) - 2 * d * _EPS * hn * max_norm
    top = gmax + rounding_factor(d) * hn * max_norm + 2**-23 * gmax.abs()
    pos = hn > 0
    lower = (own - top) / (hn * (1 + 2 * d * _EPS)).clamp_min(1e-300)
    return torch.where(pos, lower.clamp_min(0.0), 0.0), g


def _solve(
    W32: torch.Tensor,
    rows: torch.Tensor,
    ws: torch.Tensor,
    start: torch.Tensor | None,
    max_memory_mib: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate min-norm points ``x = sum_i lam_i (w_i - w_k)`` over the working sets ``ws``.

    ``(B, m)`` weights and ``(B, d)`` points, in float32, ``_SOLVE_BLOCK`` classes at a time
    (their points and Grams stay in cache over the iterations: 1.7x faster than one batch of
    1,536 classes of 96 rows in d = 576).
    """
    n, m = ws.shape
    d = W32.shape[1]
    lam = torch.empty(n, m, dtype=W32.dtype, device=W32.device)
    x = torch.empty(n, d, dtype=W32.dtype, device=W32.device)
    step = rows_per_budget(4 * (m * d + 8 * m * m), max_memory_mib, num_rows=_SOLVE_BLOCK)
    for a, b in iter_blocks(n, step):
        Y = W32[ws[a:b]] - W32[rows[a:b]][:, None, :]
        G = torch.bmm(Y, Y.transpose(1, 2))
        lam[a:b] = simplex_min_norm(G, _STEPS, None if start is None else start[a:b])
        x[a:b] = torch.bmm(lam[a:b, None, :], Y)[:, 0, :]
    return lam, x


def dual_bounds(
    W: torch.Tensor,
    W32: torch.Tensor,
    cls: torch.Tensor,
    neighbours: torch.Tensor | None,
    *,
    threshold: float,
    unit_rows: bool,
    max_memory_mib: float,
    group: Any = None,
    rank: int = 0,
    world: int = 1,
) -> DualBounds:
    """Certified lower bounds on ``D_k`` of the classes ``cls`` (see the module docstring).

    Args:
        W: ``(K, d)`` float64 rows.
        W32: The same rows in float32.
        cls: ``(C,)`` the classes.
        neighbours: ``(C, m)`` nearest other rows of each class (``-1`` where unknown), or
            ``None``: taken from a float32 neighbour pass over the rows whose neighbours are
            unknown.
        threshold: Classes whose first bound is below it get the second solve.
        unit_rows: Rows have norm 1 (neighbours by inner product).
        max_memory_mib: Budget of one block of classes (its ``(B, K)`` scores dominate).
        group: ``torch.distributed`` group: this rank bounds its share of ``cls`` and the
            bounds are all-gathered (``None``: one process).
        rank: This process's rank in ``group``.
        world: Size of ``group``.

    Returns:
        A :class:`DualBounds`.
    """
    if world > 1:
        parts = torch.tensor_split(torch.arange(cls.numel(), device=cls.device), world)
        i = parts[rank]
        db = dual_bounds(
            W,
            W32,
            cls[i],
            None if neighbours is None else neighbours[i],
            threshold=threshold,
            unit_rows=unit_rows,
            max_memory_mib=max_memory_mib,
        )
        counts = [p.numel() for p in parts]
        gather = _all_gather_rows
        return DualBounds(gather(db.lower, counts, group), gather(db.estimate, counts, group))
    K, d = W.shape
    dev = W.device
    C = cls.numel()
    m0 = min(NEIGHBOURS, K - 1)
    add = min(_ADDED, K - 1 - m0)
    m = m0 + add
    max_norm = float(W.norm(dim=1).max())
    lower = torch.empty(C, dtype=W.dtype, device=dev)
    estimate = torch.empty(C, dtype=W.dtype, device=dev)
    # Per class: the float32 scores and their top-k (12 K bytes), the weights and points (the
    # working sets' points and Grams are built _SOLVE_BLOCK classes at a time).
    per_class = 12 * K + 8 * (m + d)
    for a, b in iter_blocks(C, rows_per_budget(per_class, max_memory_mib, num_rows=C)):
        rows = cls[a:b]
        if neighbours is None:
            ws = torch.full((b - a, m0), -1, dtype=torch.long, device=dev)
        else:
            ws = neighbours[a:b, :m0].long()
        unknown = (ws < 0).any(dim=1).nonzero().squeeze(1)
        if unknown.numel():
            nb = neighbour_pass(
                W,
                W32,
                rows[unknown],
                m0,
                unit_rows=unit_rows,
                exact_max=False,
                max_memory_mib=max_memory_mib,
            )
            assert nb.neighbours is not None
            ws = ws.clone()
            ws[unknown] = nb.neighbours
        lam, x = _solve(W32, rows, ws, None, max_memory_mib)
        low, g = _margin_bounds(W, W32, rows, x, max_norm)
        lower[a:b] = low
        estimate[a:b] = x.norm(dim=1).to(W.dtype)
        o = (low < threshold).nonzero().squeeze(1)
        if add == 0 or o.numel() == 0:
            continue
        # The most violating rows outside the working set join it; one more solve and GEMM.
        g = g[o]
        g.scatter_(1, ws[o], -torch.inf)
        ws2 = torch.cat([ws[o], g.topk(add, dim=1, sorted=False).indices], dim=1)
        del g
        start = torch.cat([lam[o], lam.new_zeros(o.numel(), add)], dim=1)
        _, x2 = _solve(W32, rows[o], ws2, start, max_memory_mib)
        low2, _ = _margin_bounds(W, W32, rows[o], x2, max_norm)
        lower[a + o] = torch.maximum(lower[a + o], low2)
        estimate[a + o] = torch.minimum(estimate[a + o], x2.norm(dim=1).to(W.dtype))
    return DualBounds(lower, estimate)


@dataclass
class RhoSearch:
    """Outcome of :func:`search_rho`.

    Attributes:
        rho: The best distance found (an exact solve's primal value, or the initial upper bound).
        argmin: The class attaining it.
        lower: Certified lower bound on ``rho``.
        classes_solved: Classes solved exactly.
        classes_bounded: Classes given dual bounds.
    """

    rho: float
    argmin: int
    lower: float
    classes_solved: int
    classes_bounded: int


def search_rho(
    W: torch.Tensor,
    W32: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    neighbours: torch.Tensor | None,
    working_set_size: int,
    unit_rows: bool,
    tol: float,
    max_memory_mib: float,
    chunk_size: int = 256,
    group: Any = None,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    bar: Any = None,
) -> RhoSearch:
    """``min_k D_k`` from per-class bounds ``lower <= D_k <= upper`` (see the module docstring).

    Args:
        W: ``(K, d)`` float64 rows.
        W32: The same rows in float32.
        lower: ``(K,)`` certified lower bounds on ``D_k`` (the order of the search).
        upper: ``(K,)`` certified upper bounds on ``D_k``.
        neighbours: ``(K, m)`` nearest rows (``-1`` where unknown) or ``None``.
        working_set_size: Initial working set of the exact solves.
        unit_rows: Rows have norm 1.
        tol: Gap tolerance: a class whose bound is at least the best distance less ``tol`` is
            excluded.
        max_memory_mib: Budget of every tile.
        chunk_size: Classes of the second chunk (later chunks grow fourfold).
        group: ``torch.distributed`` group (``None``: one process).
        rank: This process's rank in ``group``.
        world: Size of ``group``.
        progress: Bars of the exact solves on stderr.
        bar: A tqdm bar advanced by the classes settled (or ``None``); its total is kept at the
            classes the search may still visit.
    """
    K = W.shape[0]
    order = torch.argsort(lower)
    lb_sorted = lower[order]
    best = float(upper.min())
    best_arg = int(upper.argmin())
    kw: dict[str, Any] = {
        "unit_rows": unit_rows,
        "max_memory_mib": max_memory_mib,
        "tol": tol,
        "group": group,
        "rank": rank,
        "world": world,
        "progress": progress and rank == 0,
        "keep_points": False,
    }
    bound = float("inf")
    solved = bounded = 0
    # The int8 rows of the exact solves' certifications, quantized once for all their batches
    # (measured on the Gemma 3 head, 262,144 rows: ~1.5 s a batch otherwise).
    int_mm = int8_backend(W.device, K, W.shape[1]) == "int_mm"
    kw["quantized"] = quantize_rows(W, max_memory_mib) if int_mm else None

    def exact(cls: torch.Tensor) -> None:
        nonlocal best, best_arg, bound, solved
        # Classes whose certified bound reaches the best distance stop there (they cannot
        # attain a smaller one); only the others are solved to the end.
        sol = _solve_sharded(W, W32, cls, working_set_size, max_rounds=100, stop_at=best, **kw)
        i = int(sol.D.argmin())
        if float(sol.D[i]) < best:
            best, best_arg = float(sol.D[i]), int(cls[i])
        bound = min(bound, float(sol.lower.min()))
        solved += cls.numel()

    def dual(cls: torch.Tensor, i: torch.Tensor, low: torch.Tensor, est: torch.Tensor) -> float:
        """Dual bounds of ``cls[i]`` into ``low`` and ``est``; the share they settle."""
        nonlocal bounded
        db = dual_bounds(
            W,
            W32,
            cls[i],
            None if neighbours is None else neighbours[cls[i]],
            threshold=best - tol,
            unit_rows=unit_rows,
            max_memory_mib=max_memory_mib,
            group=group,
            rank=rank,
            world=world,
        )
        bounded += i.numel()
        low[i] = torch.maximum(low[i], db.lower)
        est[i] = torch.minimum(est[i], db.estimate)
        return float((db.lower >= best - tol).to(torch.float64).mean())

    def retotal() -> None:
        """Set the bar's total to the classes the search may still visit.

        Those whose first bound is below the best distance (fewer as it falls), not all ``K``.
        """
        if bar is not None:
            cut = int(torch.searchsorted(lb_sorted, lb_sorted.new_tensor(best - tol)))
            bar.total = max(1, pos, cut)
            bar.refresh()

    pos, chunk = 0, 1
    retotal()
    while pos < K and (float(lb_sorted[pos]) < best - tol or solved == 0):
        stop = min(K, pos + chunk)
        cut = int(torch.searchsorted(lb_sorted[pos:stop], lb_sorted.new_tensor(best - tol)))
        stop = max(pos + 1, pos + cut)
        cls = order[pos:stop]
        if chunk == 1:
            exact(cls)
        else:
            # Dual bounds for an evenly spaced probe of the chunk, and for the rest only if
            # they settle enough of the probe; otherwise the rest goes to the exact solves
            # (which stop at the best distance) with its first bounds.
            n = cls.numel()
            low, est = lb_sorted[pos:stop].clone(), upper[cls]  # (indexing copies)
            p = min(n, _PROBE)
            probe = torch.arange(p, device=W.device) * n // p  # distinct: n >= p
            rest_of = torch.ones(n, dtype=torch.bool, device=W.device)
            rest_of[probe] = False
            settled = dual(cls, probe, low, est)
            if settled >= _PROBE_SETTLED and bool(rest_of.any()):
                dual(cls, rest_of.nonzero().squeeze(1), low, est)
            # Survivors, the smallest estimates first; re-checked against the best before
            # each batch of exact solves.
            by_estimate = torch.argsort(est)
            cls, low = cls[by_estimate], low[by_estimate]
            done = 0
            while done < cls.numel():
                rest = low[done:] < best - tol
                if not bool(rest.any()):
                    bound = min(bound, float(low[done:].min()))
                    break
                if not bool(rest.all()):
                    bound = min(bound, float(low[done:][~rest].min()))
                    cls = torch.cat([cls[:done], cls[done:][rest]])
                    low = torch.cat([low[:done], low[done:][rest]])
                step = 1 if done == 0 else _EXACT_BATCH
                exact(cls[done : done + step])
                done += step
        if bar is not None:
            bar.update(stop - pos)
            bar.set_postfix(rho=f"{best:.4g}", refresh=False)
        pos = stop
        retotal()
        chunk = max(1, chunk_size) if chunk == 1 else 4 * chunk
    if bar is not None:
        bar.total = max(1, pos)  # the rest is excluded by its first bound
        bar.refresh()
    rest_lower = float(lb_sorted[pos]) if pos < K else float("inf")
    return RhoSearch(best, best_arg, min(bound, rest_lower, best), solved, bounded)
