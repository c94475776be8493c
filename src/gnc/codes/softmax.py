"""Softmax codes: unit vectors maximizing ``rho = min_k D_k`` (Jiang et al., ICML 2024).

Pipeline for each random start (closed forms are returned directly); ``restarts`` starts, or
with a time limit and ``restarts=None`` (the default) as many as the budget allows:

1. Softmax codes, three restarts in four: Riesz-energy descent (exponent
   ``min(12, max(1, d - 2))``; 4000 steps from ``K = 100``) spreads the points so the run lands
   in the basin of the highly symmetric optima (E8, 600-cell) more often than the hard
   objectives do from raw random points. Every fourth restart of softmax codes, and all
   restarts of Tammes codes, start from the raw random points on the Tammes surrogate
   (``rho >= 1 - max cosine``, and that landscape reaches other basins).
2. Annealed surrogate of the HardMax problem (:mod:`gnc.codes.surrogate`): Riemannian steps on
   ``(W, H)`` over the product of spheres with the log-sum-exp temperature ``tau -> 0``.
3. Every restart (``K <= 160``) or the best after annealing (by its certified HardMax lower
   bound) is polished by trust-region
   sequential linear programming on the true max-min objective (:mod:`gnc.codes.polish`),
   starting from the exact max-margin directions, until the gain drops under ``1e-10``.
4. The result is certified by :func:`gnc.geometry.one_vs_rest_distances`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import make_generator, resolve_device
from gnc.codes.polish import (
    PolishResult,
    hardmax_value,
    max_cosine_value,
    polish_softmax,
    polish_tammes,
)
from gnc.codes.result import CodeResult, certify_code
from gnc.codes.surrogate import AnnealSchedule, anneal
from gnc.geometry import configurations, one_vs_rest_distances
from gnc.sphere import normalize_rows, random_points

__all__ = ["closed_form_code", "softmax_code"]

#: Largest ``K`` for which every restart is polished (else only the best after annealing).
POLISH_EACH_LIMIT = 160

#: Restarts when none are given: at least these, then more while a time limit lasts.
DEFAULT_RESTARTS = 4

#: Largest ``K`` for which every class is every other's competitor (one dense block).
DENSE_LIMIT = 2048


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
) -> CodeResult:
    """Shared driver of :func:`softmax_code` and :func:`gnc.codes.tammes_code`."""
    start = time.perf_counter()
    R_given = restarts
    K, d, R, seed_, limit = _validate(
        num_classes,
        feature_dim,
        DEFAULT_RESTARTS if restarts is None else restarts,
        seed,
        time_limit,
    )
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"Expected `dtype` float32 or float64, but got {dtype}.")
    dev = resolve_device(device) if device is not None else torch.device("cpu")
    if init is not None:
        init = check_matrix("init", init, min_rows=K, cols=d, nonzero_rows=True)
        if init.shape[0] != K:
            raise ValueError(f"Expected `init` of shape ({K}, {d}), but got {tuple(init.shape)}.")
    deadline = None if limit is None else start + limit

    def should_stop() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    closed = closed_form_code(K, d, dtype=torch.float64, device=dev) if init is None else None
    if closed is not None:
        code, name = closed
        return certify_code(
            code.to(dtype),
            kind=kind,
            method=name,
            iterations=0,
            seconds=time.perf_counter() - start,
            stop_reason="closed-form",
            max_memory_mib=max_memory_mib,
        )

    energy_steps, anneal_steps = steps if steps is not None else default_steps(K, d)
    dense = K <= DENSE_LIMIT and num_competitors is None
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
    polish_end = time.perf_counter() + check_positive("polish_seconds", polish_seconds)

    def polish_stop() -> bool:
        return should_stop() or time.perf_counter() > polish_end

    def polish_one(W: torch.Tensor) -> PolishResult:
        W = W.to(torch.float64)
        if kind == "softmax":
            start_dirs = one_vs_rest_distances(W, normalize=False).directions
            return polish_softmax(W, start_dirs, should_stop=polish_stop)
        return polish_tammes(W, should_stop=polish_stop)

    best: tuple[float, torch.Tensor, list[float], PolishResult | None] | None = None
    values: list[float] = []
    iterations = 0
    done_restarts = 0
    restart_seconds: list[float] = []
    # Restarts past the first R run while the time budget lasts (``restarts=None`` with a time
    # limit): each must fit in what is left, minus a reserve for the final polish.
    reserve = 0.0 if polish_each or not polish else 0.3 * (limit or 0.0)
    from_start = False
    for X in start_codes:
        X = check_matrix("start_codes[i]", X, min_rows=K, cols=d, nonzero_rows=True)
        W = normalize_rows(X.to(device=dev, dtype=dtype))
        polished = polish_one(W) if polish else None
        value = polished.value if polished is not None else _hard_value(kind, W, W)
        if polished is not None:
            W = polished.code
        if best is None or value > best[0]:
            best, from_start = (value, W, [], polished), True
    r = 0
    while True:
        if r >= R and not until_deadline:
            break
        if r and should_stop():
            break
        if r >= R and deadline is not None and restart_seconds:
            left = deadline - time.perf_counter() - reserve
            if left < max(restart_seconds):
                break
        t_restart = time.perf_counter()
        # Part r - 1 gives the seed seed * 1_000_003 + r, the stream the shipped catalogue's
        # searches were run with.
        gen = make_generator(seed_, r - 1)
        # Softmax codes mix two start types: Riesz spreading, then the softmax surrogate (three
        # restarts in four), and the Tammes surrogate alone (every fourth): rho >= 1 - max
        # cosine, and the Tammes landscape reaches other basins.
        surrogate = "tammes" if kind == "tammes" or (alternate and r % 4 == 3) else "softmax"
        if r == 0 and init is not None:
            W = normalize_rows(init.to(device=dev, dtype=dtype))
        else:
            W = random_points(K, d, generator=gen, dtype=dtype).to(dev)
            if surrogate == "softmax":
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
        done_restarts += 1
        value = _hard_value(kind, W, H)
        values.append(value)
        polished = None
        if polish_each:
            polished = polish_one(W)
            iterations += polished.iterations
            W, value = polished.code, polished.value
        if best is None or value > best[0]:
            best, from_start = (value, W, hist, polished), False
        bar.set_postfix(best=f"{best[0]:.6f}", refresh=False)
        bar.update(1)
        restart_seconds.append(time.perf_counter() - t_restart)
        r += 1
    assert best is not None
    _, W, anneal_hist, result = best
    if polish and result is None:
        result = polish_one(W)
        iterations += result.iterations
        W = result.code
    bar.close()
    return certify_code(
        W.to(dtype),
        kind=kind,
        method="start-code+polish" if from_start else "optimized",
        iterations=iterations,
        seconds=time.perf_counter() - start,
        stop_reason=result.stop_reason if result is not None else "not-polished",
        history=result.history if result is not None else [],
        anneal_history=anneal_hist,
        restarts=done_restarts,
        restart_values=values,
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
            annealing). ``None``: 4, and with a ``time_limit`` more while the budget lasts.
        seed: Seed of the random starts (same seed, same code).
        time_limit: Seconds for optimization (restarts and polishing stop when it passes; the
            final certification runs regardless).
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
