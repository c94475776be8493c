"""Softmax codes: unit vectors maximizing ``rho = min_k D_k`` (Jiang et al., ICML 2024).

(Over 600 lines as one idea: the search driver shared by softmax and Tammes codes, its
schedule of starts and the measurements behind each constant; the pieces it composes live in
:mod:`gnc.codes.surrogate`, :mod:`gnc.codes.polish` and :mod:`gnc.codes.symmetric`.)

Before any random start, the given ``start_codes`` and up to two cuts of the E8 and Leech
lattice slices of rank ``d`` (:func:`gnc.geometry.slices.slice_starts`; ``d <= 8`` from E8,
``17 <= d <= 23`` from the Leech lattice) are polished (step 3; the cuts within
``LATTICE_POLISH_SHARE`` of the budget) and compared; they reach optima that random starts miss
(D5's 40 roots in ``R^5``, the sharp codes of ``R^21`` and ``R^22``).

Pipeline for each random start (closed forms are returned directly); ``restarts`` starts, or
with a time limit and ``restarts=None`` (the default) as many as the budget allows:

1. Softmax codes, three restarts in four: Riesz-energy minimization (below; past
   ``K = 2048`` normalized gradient steps, exponent ``min(12, max(1, d - 2))``) spreads the
   points so the run lands in the basin of the highly symmetric optima (E8, 600-cell) more
   often than the hard objectives do from raw random points. Every fourth restart starts from
   the raw random points on the Tammes surrogate (``rho >= 1 - max cosine``, and that landscape
   reaches other basins).
2. Annealed surrogate of the HardMax problem (:mod:`gnc.codes.surrogate`): Riemannian steps on
   ``(W, H)`` over the product of spheres with the log-sum-exp temperature ``tau -> 0``.
   Tammes codes (``K <= 2048``) alternate it (8 restarts on the Tammes surrogate from raw
   random points first) with the classic recipe, batched: 16 starts as one ``(R, K, d)`` tensor
   descend the Riesz energy with the exponent rising from 1 to 8-64
   (:func:`gnc.codes.surrogate.riesz_batch`), so the closest pairs dominate at the end. On
   ``S^2`` with the default ``restarts`` a round of symmetric starts comes first (and, under a
   time limit, again after every Riesz batch, or instead of it from 80 points on): unions of
   orbits of rotation groups, each with a few free vectors (:mod:`gnc.codes.symmetric`), whose
   20 best distinct configurations are polished like restarts. From 80 points on, under a time
   limit, symmetric rounds alternate with rounds of 16 random starts jammed on the same overlap
   penalty without symmetry (:func:`gnc.codes.symmetric.overlap_starts`, all polished), and
   neither Riesz batches nor annealed restarts run.
   Softmax codes spread each restart's start as the best of 8 L-BFGS Riesz minima
   (:func:`gnc.codes.surrogate.riesz_lbfgs`, exponent ``min(20, max(1, d - 2))``); one near the
   stop value (a sharp code's basin) gets its near-tied pairs tied exactly
   (:func:`gnc.codes.polish.equalize_ties`) and, if still short, the Tammes polish.
3. Every restart (``K <= 160``; best spread first for Tammes batches), or the best after
   annealing and every restart near the stop value, is polished by trust-region
   sequential linear programming on the true max-min objective (:mod:`gnc.codes.polish`),
   starting from the exact max-margin directions, until the gain drops under ``1e-10``.
4. The search stops early when the objective reaches its stop value (``stop_at_bound``,
   ``target``). The result is certified by :func:`gnc.geometry.one_vs_rest_distances`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import make_generator, resolve_device, rows_per_budget
from gnc.codes._compiled import warm as warm_compiled
from gnc.codes.polish import (
    LP_TIME_LIMIT,
    PolishResult,
    equalize_ties,
    hardmax_value,
    max_cosine_value,
    polish_softmax,
    polish_tammes,
)
from gnc.codes.result import CodeResult, certify_code
from gnc.codes.surrogate import AnnealSchedule, anneal, riesz_batch, riesz_lbfgs
from gnc.codes.symmetric import overlap_starts, symmetric_starts
from gnc.geometry import configurations, one_vs_rest_distances
from gnc.geometry.bounds import min_distance_upper
from gnc.geometry.slices import slice_starts
from gnc.sphere import normalize_rows, random_points

__all__ = ["closed_form_code", "softmax_code"]

#: Largest ``K`` for which every restart is polished (else only the best after annealing).
POLISH_EACH_LIMIT = 160

#: Restarts when none are given: at least these, then more while a time limit lasts.
DEFAULT_RESTARTS = 4

#: Largest ``K`` for which every class is every other's competitor (one dense block).
DENSE_LIMIT = 2048

#: Share of the time limit (else of ``polish_seconds``) that polishing lattice-slice starts may
#: take, all of them together.
LATTICE_POLISH_SHARE = 0.2

#: Random starts spread by L-BFGS per softmax restart (the best spread one is annealed).
SPREAD_BATCH = 8

#: Final Riesz exponents of the Tammes batch, cycled over its codes (low ones reach more
#: varied basins, high ones approach the max-min objective).
TAMMES_EXPONENTS = (8.0, 16.0, 8.0, 64.0)

#: Tammes restarts spread together as one ``(R, K, d)`` batch (fewer when memory is short).
TAMMES_BATCH = 16

#: Tammes restarts on the annealed surrogate before each batch.
TAMMES_ANNEALED = 8

#: The search stops once the objective is within this of the stop value (see ``stop_at_bound``).
STOP_TOLERANCE = 1e-9

#: Stop reasons of a search that reached its stop value (``target``, then the bound).
GOAL_REASONS = ("target-reached", "bound-reached")

#: Set by :mod:`gnc.codes.parallel` while workers search together: a stop signal (``is_set()``,
#: ``set()``) that stops this process's search, and that a search reaching its stop value sets.
_EXTERNAL_STOP: Any = None

#: Tammes codes on ``S^2``: free-vector draws per orbit layout in one symmetric round, and how
#: many of the round's best distinct configurations are polished (:mod:`gnc.codes.symmetric`).
SYMMETRIC_TRIALS = 10
SYMMETRIC_COUNT = 20
SYMMETRIC_STREAM = 7919  # part of the seed stream of symmetric rounds, apart from the restarts'
#: From this many points on S^2, under a time budget, a symmetric round replaces each Riesz
#: batch. Measured at 60 s of CPU: N = 85, 90, 95, 105 (seeds 0-3) 4 of 16 runs succeed, 0 of 16
#: with Riesz batches (at these N a batch of 16 took 13-33 s and never gave the best code);
#: N = 115, 125 (seeds 1-3) 3 of 6, 2 of 6 before. Lowered from 80 to 60 with the overlap
#: starts (two workers, 60 s of wall time, seeds 0-9, best-known within 1e-4): N = 65 9/10
#: against 6/10 with the batches; N = 60, 70, 75 10/10 either way (N = 70 in a median 7 s
#: against 20 s; N = 75 8/10 within 1e-6 either way). Below 60 the batches stay (not measured
#: without them).
SYMMETRIC_INSTEAD_FROM = 60
#: From ``SYMMETRIC_INSTEAD_FROM`` points under a time budget, each symmetric round is followed
#: by this many random starts jammed on the overlap penalty (:func:`overlap_starts`), all
#: polished; their seeds come from a stream of their own.
OVERLAP_COUNT = 16
OVERLAP_STREAM = 104729
#: Annealed restarts between two symmetric rounds when those replace the Riesz batches: none.
#: Measured with the overlap starts (60 s of CPU, seeds 0-3, best-known within 1e-4): N = 85,
#: 90, 95 reached 1, 4, 2 of 4 runs without them and 0, 4, 2 with 8 (each cycle took ~12 s
#: longer, so fewer symmetric rounds ran); N = 105 failed both ways.
SYMMETRIC_ANNEALED = 0

#: Restarts past ``POLISH_EACH_LIMIT`` whose annealed value is this close to the stop value
#: are polished at once.
NEAR_GOAL = 1e-3


def closed_form_code(
    num_classes: int,
    feature_dim: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, str] | None:
    """The known optimal code for ``(K, d)``, if any, with its name.

    ``K <= d + 1``: simplex ETF (``rho = K / (K - 1)``); ``d = 2``: regular ``K``-gon
    (``rho = 1 - cos(2 pi / K)``); ``d + 2 <= K <= 2d``: cross-polytope subset (``rho = 1``).
    These are optimal for the Tammes problem as well (simplex, polygon and Rankin bounds).

    Example:
        >>> code, name = closed_form_code(4, 3)
        >>> name, tuple(code.shape)
        ('closed-form:simplex-etf', (4, 3))
        >>> closed_form_code(12, 3) is None
        True
    """
    K, d = num_classes, feature_dim
    if d + 1 >= K:
        return configurations.simplex_etf(
            K, d, dtype=dtype, device=device
        ), "closed-form:simplex-etf"
    if d == 2:
        return configurations.regular_polygon(K, dtype=dtype, device=device), (
            "closed-form:regular-polygon"
        )
    if d + 2 <= K <= 2 * d:
        return configurations.cross_polytope(d, K, dtype=dtype, device=device), (
            "closed-form:cross-polytope-subset"
        )
    return None


def _validate(
    num_classes: Any, feature_dim: Any, restarts: Any, seed: Any, time_limit: Any
) -> tuple[int, int, int, int, float | None]:
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    if d == 1 and K > 2:
        raise ValueError(
            f"Expected `num_classes` <= 2 when `feature_dim` = 1 (S^0 has two points), but got {K}."
        )
    R = check_int("restarts", restarts, minimum=1)
    s = check_int("seed", seed, minimum=0)
    t = None if time_limit is None else check_positive("time_limit", time_limit)
    return K, d, R, s, t


def default_steps(num_classes: int, feature_dim: int) -> tuple[int, int]:
    """Default ``(energy steps, annealing steps)`` per restart.

    Example:
        >>> default_steps(12, 3)
        (2000, 2000)
    """
    if num_classes <= DENSE_LIMIT:
        return (4000 if num_classes >= 100 else 2000), 2000
    return 300, 600


def _stop_values(
    kind: str, K: int, d: int, target: float | None, stop_at_bound: bool
) -> list[tuple[float, str]]:
    """Objectives (internal units) at which the search stops early, with the stop reason."""
    goals = []
    if target is not None:
        t = check_positive("target", target)
        goals.append((t if kind == "softmax" else t * t / 2.0, GOAL_REASONS[0]))
    if stop_at_bound and d >= 2:
        goals.append((min_distance_upper(K, d) ** 2 / 2.0 - STOP_TOLERANCE, GOAL_REASONS[1]))
    return goals


def solve_code(
    kind: Literal["softmax", "tammes"],
    num_classes: Any,
    feature_dim: Any,
    *,
    restarts: Any = None,
    seed: Any = 0,
    time_limit: Any = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    init: torch.Tensor | None = None,
    progress: bool = False,
    steps: tuple[int, int] | None = None,
    polish: bool = True,
    polish_seconds: float = 60.0,
    num_competitors: int | None = None,
    max_memory_mib: float = 256.0,
    alternate_starts: bool = True,
    start_codes: Sequence[torch.Tensor] = (),
    lattice_starts: bool = True,
    clock: Literal["wall", "cpu"] = "wall",
    target: float | None = None,
    stop_at_bound: bool = True,
    workers: int = 1,
) -> CodeResult:
    """Shared driver of :func:`softmax_code` and :func:`gnc.codes.tammes_code`."""
    call = dict(locals())  # the arguments, for the parallel workers
    if clock not in ("wall", "cpu"):
        raise ValueError(f"Expected `clock` 'wall' or 'cpu', but got {clock!r}.")
    if kind == "tammes" and feature_dim == 3 and restarts is None and init is None:
        warm_compiled()  # the starts' compiled penalty and descent, before the clock starts
    now = time.perf_counter if clock == "wall" else time.process_time
    wall_start = time.perf_counter()
    start = now()
    R_given = restarts
    K, d, R, seed_, limit = _validate(
        num_classes,
        feature_dim,
        DEFAULT_RESTARTS if restarts is None else restarts,
        seed,
        time_limit,
    )
    workers = check_int("workers", workers, minimum=1)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"Expected `dtype` float32 or float64, but got {dtype}.")
    dev = resolve_device(device) if device is not None else torch.device("cpu")
    if init is not None:
        init = check_matrix("init", init, min_rows=K, cols=d, nonzero_rows=True)
        if init.shape[0] != K:
            raise ValueError(f"Expected `init` of shape ({K}, {d}), but got {tuple(init.shape)}.")
    deadline = None if limit is None else start + limit
    goals = _stop_values(kind, K, d, target, stop_at_bound)
    goal = min(g for g, _ in goals) if goals else None

    def should_stop() -> bool:
        stopped = _EXTERNAL_STOP is not None and _EXTERNAL_STOP.is_set()
        return stopped or (deadline is not None and now() > deadline)

    def reached(value: float) -> bool:
        return goal is not None and value >= goal

    def reason(value: float) -> str:
        return next(name for g, name in goals if value >= g)

    closed = closed_form_code(K, d, dtype=torch.float64, device=dev) if init is None else None
    if closed is not None:
        code, name = closed
        return certify_code(
            code.to(dtype),
            kind=kind,
            method=name,
            iterations=0,
            seconds=time.perf_counter() - wall_start,
            stop_reason="closed-form",
            max_memory_mib=max_memory_mib,
        )

    if workers > 1 and limit is not None and R_given is None:
        from gnc.codes.parallel import search_in_workers  # it imports this module

        return search_in_workers(call, workers)
    energy_steps, anneal_steps = steps if steps is not None else default_steps(K, d)
    dense = K <= DENSE_LIMIT and num_competitors is None
    batched = kind == "tammes" and dense
    if batched and R_given is None:
        R = TAMMES_BATCH + TAMMES_ANNEALED
    m = None if dense else min(K - 1, num_competitors or 32)
    refresh = 10 if dense else 50
    energy = AnnealSchedule(
        steps=energy_steps,
        lr_start=0.03,
        lr_end=3e-3,
        num_competitors=m,
        refresh_every=refresh,
        exponent=float(min(12, max(1, d - 2))),
    )
    schedule = AnnealSchedule(
        steps=anneal_steps,
        tau_start=0.02,
        tau_end=1e-5,
        lr_start=0.01,
        lr_end=1e-5,
        num_competitors=m,
        refresh_every=refresh,
    )
    until_deadline = R_given is None and limit is not None
    bar = tqdm(
        total=None if until_deadline else R,
        desc=f"{kind} code K={K} d={d}",
        unit="restart",
        leave=False,
        file=sys.stderr,
        disable=not progress,
    )
    polish_each = polish and K <= POLISH_EACH_LIMIT
    alternate = kind == "softmax" and alternate_starts
    polish_end = now() + check_positive("polish_seconds", polish_seconds)

    def polish_stop() -> bool:
        return should_stop() or now() > polish_end

    def polish_one(
        W: torch.Tensor,
        stop: Callable[[], bool] = polish_stop,
        lp_seconds: float = LP_TIME_LIMIT,
    ) -> PolishResult:
        W = W.to(torch.float64)
        if kind == "softmax":
            start_dirs = one_vs_rest_distances(W, normalize=False).directions
            return polish_softmax(W, start_dirs, should_stop=stop, lp_seconds=lp_seconds)
        return polish_tammes(W, should_stop=stop, lp_seconds=lp_seconds)

    best: tuple[float, torch.Tensor, list[float], PolishResult | None] | None = None
    values: list[float] = []
    trace: list[tuple[float, float]] = []
    iterations = 0
    done_restarts = 0
    restart_seconds: list[float] = []
    # Restarts past the first R run while the time budget lasts (``restarts=None`` with a time
    # limit): each must fit in what is left, minus a reserve for the final polish.
    reserve = 0.0 if polish_each or not polish else 0.3 * (limit or 0.0)
    # Start codes, then cuts of lattice slices (gnc.geometry.slices), before any random start.
    # Cuts of tie-heavy slices polish slowly (one linear program of a 100-point cut of the
    # McLaughlin code takes ~15 s), so together they get a share of the budget.
    labelled = [("start-code", X) for X in start_codes]
    if lattice_starts and init is None and K <= DENSE_LIMIT:
        labelled += [("lattice-slice", X) for _, X in slice_starts(K, d, dtype=dtype)]
    cut_end = now() + LATTICE_POLISH_SHARE * (limit if limit is not None else polish_seconds)

    def cut_stop() -> bool:
        return polish_stop() or now() > cut_end

    from_start: str | None = None
    for label, X in labelled:
        if best is not None and reached(best[0]):
            break
        X = check_matrix("start_codes[i]", X, min_rows=K, cols=d, nonzero_rows=True)
        W = normalize_rows(X.to(device=dev, dtype=dtype))
        value = _hard_value(kind, W, W)
        polished = None
        if polish and not reached(value) and label == "start-code":
            polished = polish_one(W)
        elif polish and not reached(value) and not cut_stop():
            polished = polish_one(W, cut_stop, max(0.1, cut_end - now()))
        if polished is not None:
            W, value = polished.code, polished.value
            iterations += polished.iterations
            label += "+polish"
        if best is None or value > best[0]:
            best, from_start = (value, W, [], polished), label
        trace.append((now() - start, best[0]))
    stop_reason = reason(best[0]) if best is not None and reached(best[0]) else None

    def starts(r: int, count: int) -> list[torch.Tensor]:
        # Restart r draws from the stream seed * 1_000_003 + r (part r - 1), the stream the
        # shipped catalogue's searches were run with.
        return [
            random_points(K, d, generator=make_generator(seed_, i - 1), dtype=dtype).to(dev)
            for i in range(r, r + count)
        ]

    def spread(W: torch.Tensor, r: int) -> tuple[torch.Tensor, int]:
        # SPREAD_BATCH random starts minimize the Riesz energy by L-BFGS (cheap); the best
        # spread one (least max cosine) goes on to annealing and polishing.
        exponent = float(min(20, max(1, d - 2)))
        best_w, best_cos, total = W, float("inf"), 0
        for i in range(SPREAD_BATCH):
            if i and should_stop():
                break
            X = W if i == 0 else random_points(K, d, generator=make_generator(seed_, r - 1, i))
            X, n = riesz_lbfgs(X.to(device=dev, dtype=dtype), exponent)
            total += n
            cos = max_cosine_value(X.detach().to("cpu", torch.float64).numpy())
            if cos < best_cos:
                best_w, best_cos = X, cos
        return best_w, total

    def batch_size() -> int:
        # About five dense (K, K) float64 blocks per code in the batched Riesz phase.
        size = rows_per_budget(40 * K * K, max_memory_mib, num_rows=TAMMES_BATCH)
        return size if until_deadline else max(1, min(size, R - r))

    pending: list[tuple[torch.Tensor, torch.Tensor, list[float]]] = []
    # Tammes codes alternate TAMMES_ANNEALED restarts on the annealed Tammes surrogate (from
    # raw random points) with a Riesz batch: each reaches optima the other misses (measured:
    # N = 13, 14, 19, 21 by annealing, N = 15 only by the Riesz batch).
    annealed_left = TAMMES_ANNEALED
    # On S^2, with the default restarts, a round of symmetric starts (unions of orbits of
    # rotation groups) comes first, and while a time budget lasts again after every Riesz
    # batch: it reaches best-known codes that random starts miss (N = 120: 10 of 10 seeds in
    # 60 s, 0 of 10 before). Without a budget its starts come on top of the R restarts; an
    # explicit `restarts` keeps the random restarts alone. From SYMMETRIC_INSTEAD_FROM points
    # on, under a budget, symmetric rounds alternate with rounds of overlap starts (no Riesz
    # batch, SYMMETRIC_ANNEALED annealed restarts in between).
    symmetric = batched and d == 3 and init is None and R_given is None
    symmetric_due = symmetric
    overlap_due = False
    riesz_rounds = not (symmetric and until_deadline and K >= SYMMETRIC_INSTEAD_FROM)
    if not riesz_rounds:
        annealed_left = SYMMETRIC_ANNEALED
    if symmetric and not until_deadline:
        R += SYMMETRIC_COUNT
    r = 0
    while stop_reason is None:
        if r >= R and not until_deadline:
            break
        if r and should_stop():
            break
        if r >= R and not pending and deadline is not None and restart_seconds:
            left = deadline - now() - reserve
            if left < max(restart_seconds):
                break
        t_restart = now()
        if not pending:
            # Fill the queue: one restart, or for Tammes codes a batch spread at once.
            if r == 0 and init is not None:
                W = normalize_rows(init.to(device=dev, dtype=dtype))
                if batched:
                    pending.append((W, W, []))
            if (
                not pending
                and batched
                and annealed_left == 0
                and r
                and not riesz_rounds
                and not overlap_due
            ):
                annealed_left = SYMMETRIC_ANNEALED  # a symmetric round instead of the Riesz batch
                symmetric_due = True
            if not pending and symmetric_due:
                symmetric_due = False
                found = symmetric_starts(
                    K,
                    generator=make_generator(seed_, r, SYMMETRIC_STREAM),
                    trials=SYMMETRIC_TRIALS,
                    count=SYMMETRIC_COUNT,
                    should_stop=should_stop,
                )
                for _, X in found:
                    X = X.to(device=dev, dtype=dtype)
                    pending.append((X, X, []))
                overlap_due = not riesz_rounds
            if not pending and overlap_due:
                overlap_due = False
                for X in overlap_starts(
                    K,
                    generator=make_generator(seed_, r, OVERLAP_STREAM),
                    count=OVERLAP_COUNT,
                    should_stop=should_stop,
                ):
                    X = X.to(device=dev, dtype=dtype)
                    pending.append((X, X, []))
            if not pending and batched and annealed_left == 0 and r:
                annealed_left = TAMMES_ANNEALED
                symmetric_due = symmetric and until_deadline
                size = batch_size()
                ends = [TAMMES_EXPONENTS[(r + i) % len(TAMMES_EXPONENTS)] for i in range(size)]
                X, n = riesz_batch(
                    torch.stack(starts(r, size)),
                    steps=energy_steps + anneal_steps,
                    exponent_end=torch.tensor(ends, dtype=dtype),
                    should_stop=should_stop,
                )
                iterations += n * X.shape[0]
                cos = X @ X.transpose(1, 2) - 2.0 * torch.eye(K, dtype=dtype, device=dev)
                order = cos.amax(dim=(1, 2)).argsort().tolist()  # best spread first
                pending += [(X[i], X[i], []) for i in order]
            if not pending:
                annealed_left = max(0, annealed_left - 1)
                surrogate = (
                    "tammes" if kind == "tammes" or (alternate and r % 4 == 3) else "softmax"
                )
                if r != 0 or init is None:
                    W = starts(r, 1)[0]
                    if surrogate == "softmax" and dense:
                        W, n = spread(W, r)
                        iterations += n
                        # Near the stop value (a sharp code's basin) the ties are made exact
                        # (then, if need be, the Tammes polish): rho >= 1 - max cosine is
                        # certified at once and no annealing is needed.
                        if (
                            polish
                            and goal is not None
                            and _hard_value(kind, W, W) >= goal - NEAR_GOAL
                        ):
                            W = equalize_ties(W)
                            if not reached(_hard_value(kind, W, W)):
                                near = polish_tammes(W.to(torch.float64), should_stop=polish_stop)
                                iterations += near.iterations
                                W = near.code.to(dtype)
                            if reached(_hard_value(kind, W, W)):
                                pending.append((W, W, []))
                    elif surrogate == "softmax":
                        W, _, _, n = anneal(
                            W,
                            None,
                            energy,
                            kind="riesz",
                            should_stop=should_stop,
                            max_memory_mib=max_memory_mib,
                            dense_limit=DENSE_LIMIT,
                        )
                        iterations += n
            if not pending:
                W, H, hist, n = anneal(
                    W,
                    None,
                    schedule,
                    kind=surrogate,  # type: ignore[arg-type]
                    should_stop=should_stop,
                    max_memory_mib=max_memory_mib,
                    dense_limit=DENSE_LIMIT,
                )
                iterations += n
                pending.append((W, H, hist))
        W, H, hist = pending.pop(0)
        done_restarts += 1
        value = _hard_value(kind, W, H)
        values.append(value)
        polished = None
        # Past POLISH_EACH_LIMIT a restart is polished only when it is near the stop value
        # (a sharp code's basin): the polish then certifies it and the search ends.
        near_goal = goal is not None and goal - NEAR_GOAL <= value < goal
        if not reached(value) and (polish_each or (polish and near_goal)):
            polished = polish_one(W)
            iterations += polished.iterations
            W, value = polished.code, polished.value
        if best is None or value > best[0]:
            best, from_start = (value, W, hist, polished), None
        trace.append((now() - start, best[0]))
        if reached(best[0]):
            stop_reason = reason(best[0])
        bar.set_postfix(best=f"{best[0]:.6f}", refresh=False)
        bar.update(1)
        restart_seconds.append(now() - t_restart)
        r += 1
    assert best is not None
    _, W, anneal_hist, result = best
    if polish and result is None and stop_reason is None:
        result = polish_one(W)
        iterations += result.iterations
        W = result.code
        if from_start is not None and not from_start.endswith("+polish"):
            from_start += "+polish"
    bar.close()
    if stop_reason is not None and _EXTERNAL_STOP is not None:
        _EXTERNAL_STOP.set()  # the stop value is reached: parallel workers stop too
    if stop_reason is None:
        stop_reason = result.stop_reason if result is not None else "not-polished"
    return certify_code(
        W.to(dtype),
        kind=kind,
        method=from_start or "optimized",
        iterations=iterations,
        seconds=time.perf_counter() - wall_start,
        stop_reason=stop_reason,
        history=result.history if result is not None else [],
        anneal_history=anneal_hist,
        restarts=done_restarts,
        restart_values=values,
        trace=trace,
        max_memory_mib=max_memory_mib,
    )


def _hard_value(kind: str, W: torch.Tensor, H: torch.Tensor) -> float:
    """Certified lower bound on ``rho`` (softmax) or ``1 - max cosine`` (Tammes), tiled."""
    Wn = W.detach().to("cpu", torch.float64).numpy()
    if kind == "softmax":
        return hardmax_value(Wn, normalize_rows(H.detach().to("cpu", torch.float64)).numpy())
    return 1.0 - max_cosine_value(Wn)


def softmax_code(
    num_classes: int,
    feature_dim: int,
    *,
    restarts: int | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    init: torch.Tensor | None = None,
    progress: bool = False,
    steps: tuple[int, int] | None = None,
    polish: bool = True,
    polish_seconds: float = 60.0,
    num_competitors: int | None = None,
    max_memory_mib: float = 256.0,
    start_codes: Sequence[torch.Tensor] = (),
    lattice_starts: bool = True,
    clock: Literal["wall", "cpu"] = "wall",
    target: float | None = None,
    stop_at_bound: bool = True,
    workers: int = 1,
) -> CodeResult:
    """A softmax code for ``(K, d)``: ``K`` unit vectors in ``R^d`` maximizing ``rho``.

    Closed forms are used where known (see :func:`closed_form_code`; ``method`` says which).
    Otherwise the module pipeline runs (Riesz spreading, annealed HardMax surrogate, SLP
    polishing to a local optimum of the true max-min objective) and the code's ``rho`` is
    certified by the exact one-vs-rest solver.

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 1`` (``K <= 2`` when ``d = 1``).
        restarts: Random starts (each is polished up to ``K = 160``, else the best after
            annealing and any near the stop value). ``None``: 4 (Tammes codes: 8 annealed, then
            a batch of 16), and with a ``time_limit`` more while the budget lasts.
        seed: Seed of the random starts (same seed, same code).
        time_limit: Seconds for optimization (restarts and polishing stop when it passes; the
            final certification runs regardless). The one-time compile of the starts' numba
            loops on ``S^2`` (a machine's first search, then cached on disk) comes before.
        device: Device of the optimization (CPU by default); polishing runs on the CPU.
        dtype: Dtype of the optimization and of the returned code.
        init: Optional ``(K, d)`` start for the first restart (skips closed forms and the
            spreading phase).
        progress: Show a tqdm progress bar on stderr.
        steps: ``(energy steps, annealing steps)`` per restart (default by size).
        polish: Run the polishing phase.
        polish_seconds: Time budget of the polishing phase (its linear programs grow with the
            number of near-active pairs; ``stop_reason`` says whether it converged).
        num_competitors: Competitor list length for the surrogates (default: all classes up
            to ``K = 2048``, else 32).
        max_memory_mib: Memory budget of one block.
        start_codes: ``(K, d)`` codes polished and compared before the random restarts (e.g.
            :func:`gnc.codes.best_known`'s); ``method`` is ``"start-code+polish"`` when one wins.
        lattice_starts: Also start from cuts of the E8 and Leech lattice slices of rank ``d``
            (:func:`gnc.geometry.slices.slice_starts`: up to two, for ``d <= 8`` and
            ``17 <= d <= 23``; none for other shapes), polished within a fifth of the budget;
            ``method`` is ``"lattice-slice"`` (``"+polish"`` when polished) when one wins.
            ``False``: random starts only (with ``start_codes``).
        clock: ``"wall"`` (``time.perf_counter``) or ``"cpu"`` (``time.process_time``: CPU
            time of this process, all its threads) for ``time_limit``, ``polish_seconds`` and
            ``trace``; ``seconds`` is wall time either way.
        target: Stop as soon as a restart reaches this ``rho`` (its certified HardMax lower
            bound); for Tammes codes this minimum pairwise distance.
        stop_at_bound: Stop as soon as the objective reaches ``T_bound^2 / 2``, where
            ``T_bound`` is the proven bound on the minimum distance
            (:func:`gnc.geometry.bounds.min_distance_upper`). For Tammes codes the code is then
            proven optimal. For softmax codes it is the ``rho = 1 - max cosine`` of a code
            attaining the Tammes bound (the sharp codes: icosahedron, 600-cell, E8, ...), where
            ``rho*`` is expected to be reached (Jiang et al., ICML 2024); pass ``False`` to search
            on for more.
        workers: Processes that search at once, each a stream of restarts of its own, when
            the search runs until ``time_limit`` (``restarts=None``); the best code wins and
            the first to reach the stop value stops them all (:mod:`gnc.codes.parallel`).
            ``1``: this process only, and the search is the same for a seed.

    Returns:
        A :class:`gnc.codes.CodeResult` with ``kind="softmax"``.

    Raises:
        TypeError: On non-integer sizes.
        ValueError: On ``K < 2``, ``d < 1``, ``K > 2`` with ``d = 1``, a non-positive
            ``time_limit`` or an ``init`` of the wrong shape.

    Example:
        >>> res = softmax_code(12, 3, restarts=1, steps=(300, 300))
        >>> abs(res.rho - (1 - 5 ** -0.5)) < 1e-6, res.certified  # the icosahedron
        (True, True)
        >>> softmax_code(10, 9).method
        'closed-form:simplex-etf'
    """
    return solve_code("softmax", **locals())  # the arguments above, as they are
