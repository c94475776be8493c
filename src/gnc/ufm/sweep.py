"""Temperature sweeps of the spherical UFM: rho(W) against tau, compared with softmax codes.

As ``tau -> 0`` the global minimizers of the spherical UFM converge to solutions of the HardMax
problem, whose classifiers are softmax codes (Jiang et al., ICML 2024, Thm. 3.3); so ``rho(W)``
of the UFM solution should rise towards the softmax-code value ``rho*(d, K)`` as ``tau``
decreases, the features should collapse (GNC1 -> 0) onto the max-margin directions ``h_k`` of
``W``, and self-duality (GNC3) should hold for the non-rattler classes.

The sweep anneals: temperatures are solved from the largest to the smallest, and with
``warm_start=True`` the previous solution is one candidate start at the next temperature, next to
``restarts`` random ones; the candidate with the lowest objective is kept. Annealing alone is
not enough at ``K >> d``: for ``(K, d) = (100, 10)`` the basin reached at ``tau = 1`` carries
over to ``tau = 1/20`` with ``rho(W)`` about 0.01 lower than fresh random starts at ``1/20``
(and a higher objective), so the random candidates matter there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from gnc._checks import check_int, check_positive
from gnc.codes import softmax_code
from gnc.geometry.bounds import rho_star_best_known, rho_star_proven, rho_star_upper
from gnc.io import Record
from gnc.ufm.loss import Objective
from gnc.ufm.measure import ufm_metrics
from gnc.ufm.solver import Method, UFMResult, solve_ufm

__all__ = ["SweepPoint", "SweepResult", "reference_code_value", "temperature_sweep"]


@dataclass(frozen=True)
class SweepPoint(Record):
    """Measurements of the UFM solution at one temperature.

    Attributes:
        tau: Temperature.
        loss: Final mean cross-entropy.
        gnc1: Within-class variability of the features.
        gnc2: ``rho(W)``, exact.
        gnc3: Self-duality.
        alignment: Mean ``cos(hbar_k, h_k)`` with the max-margin directions of ``W``.
        code_value: Reference softmax-code value for ``(K, d)`` (``None`` if unavailable).
        ratio: ``gnc2 / code_value`` (``None`` without a code value).
        rho_star_upper: Upper bound on ``rho*(d, K)``
            (:func:`gnc.geometry.bounds.rho_star_upper`).
        steps: Iterations of the solver (for the kept run).
        seconds: Wall time of the solve.
        stop_reason: The solver's stop reason.
        grad_norm: Final Riemannian gradient norm.
        certified: Whether ``gnc2`` was certified by the exact distance solver.
    """

    tau: float
    loss: float
    gnc1: float
    gnc2: float
    gnc3: float
    alignment: float | None
    code_value: float | None
    ratio: float | None
    rho_star_upper: float
    steps: int
    seconds: float
    stop_reason: str
    grad_norm: float
    certified: bool


@dataclass(frozen=True)
class SweepResult(Record):
    """Result of :func:`temperature_sweep`.

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        points: One :class:`SweepPoint` per temperature, largest ``tau`` first.
        results: The solver results, in the same order.
        code_value: Reference softmax-code value (``None`` if unavailable).
        code_source: Where it came from (``"closed form"``, ``"softmax_code"``, ``"given"``,
            ``"none"``).
        rho_star_upper: Upper bound on ``rho*(d, K)``.
    """

    num_classes: int
    feature_dim: int
    points: tuple[SweepPoint, ...]
    results: tuple[UFMResult, ...]
    code_value: float | None
    code_source: str
    rho_star_upper: float


def reference_code_value(
    num_classes: int,
    feature_dim: int,
    *,
    restarts: int = 4,
    seed: int = 0,
    time_limit: float | None = 60.0,
) -> tuple[float, str]:
    """The softmax-code value ``rho*(d, K)`` to compare the UFM with, and its source.

    In order: the proven closed form (:func:`gnc.geometry.bounds.rho_star_proven`:
    regular polygon, simplex ETF); else the best configuration known to gnc
    (:func:`gnc.geometry.bounds.rho_star_best_known`: cross-polytope subsets for
    ``d + 2 <= K <= 2d``, icosahedron, 600-cell, E8, ...); else the numerical softmax-code solver
    (:func:`gnc.codes.softmax_code`). The last two are achieved values, i.e. lower bounds on
    ``rho*``.

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 1``.
        restarts: Restarts of the numerical solver.
        seed: Seed of the numerical solver.
        time_limit: Time limit of the numerical solver in seconds.

    Returns:
        ``(value, source)``; source is ``"closed form"``, ``"known configuration: ..."`` or
        ``"softmax_code"``.

    Example:
        >>> value, source = reference_code_value(7, 2)
        >>> round(value, 6), source
        (0.37651, 'closed form')
        >>> value, source = reference_code_value(12, 3)  # the icosahedron: 1 - 1/sqrt(5)
        >>> round(value, 6), source.startswith("known configuration")
        (0.552786, True)
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    known = rho_star_proven(K, d)
    if known is not None:
        return float(known), "closed form"
    best = rho_star_best_known(K, d)
    if best is not None:
        return float(best[0]), f"known configuration: {best[1]}"
    code = softmax_code(K, d, restarts=restarts, seed=seed, time_limit=time_limit)
    return float(code.rho), "softmax_code"


def temperature_sweep(
    num_classes: int,
    feature_dim: int,
    taus: Sequence[float],
    samples_per_class: int | Sequence[int] = 1,
    *,
    warm_start: bool = True,
    restarts: int = 1,
    max_steps: int = 5000,
    tol: float = 1e-9,
    method: Method = "rgd",
    objective: Objective = "log",
    record_every: int = 0,
    code_value: float | None = None,
    solve_code: bool = True,
    code_restarts: int = 4,
    code_time_limit: float | None = 60.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SweepResult:
    """Solve the UFM at each temperature (annealed) and compare ``rho(W)`` with the code value.

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 1``.
        taus: Temperatures ``> 0``; solved in decreasing order.
        samples_per_class: ``n`` per class or ``K`` counts.
        warm_start: Start each temperature from the previous solution.
        restarts: Random initial points per temperature (``>= 1``); the run with the lowest
            objective is kept (the theory concerns global minimizers, and on this nonconvex
            landscape a lower objective went with a larger ``rho(W)`` in our runs). With
            ``warm_start`` the previous solution is one more candidate.
        max_steps: Iteration cap per temperature.
        tol: Riemannian gradient-norm tolerance per temperature.
        method: Solver method (see :func:`gnc.ufm.solve_ufm`).
        objective: ``"log"`` or ``"plain"``.
        record_every: Trajectory recording period (``0``: none).
        code_value: Reference ``rho*(d, K)``; if ``None`` and ``solve_code``, it comes from
            :func:`reference_code_value`.
        solve_code: Whether to compute the code value when not given.
        code_restarts: Restarts of the numerical code solver.
        code_time_limit: Time limit of the numerical code solver.
        dtype: Floating dtype of the iterates.
        device: Device of the iterates.
        generator: ``torch.Generator`` for the initial point.
        progress: Show tqdm bars on stderr: the solves (temperatures times starts) and the
            steps of the current solve.

    Returns:
        A :class:`SweepResult` with one point per temperature, largest first.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sweep = temperature_sweep(4, 3, [1.0, 0.1], generator=g)
        >>> [round(p.gnc2, 6) for p in sweep.points]  # the regular simplex: K / (K - 1)
        [1.333333, 1.333333]
        >>> sweep.code_source, round(sweep.points[-1].ratio, 6)
        ('closed form', 1.0)
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    if isinstance(taus, int | float) or len(taus) == 0:
        raise ValueError(f"Expected `taus` to be a non-empty sequence, but got {taus!r}.")
    restarts = check_int("restarts", restarts, minimum=1)
    tau_list = sorted((check_positive("taus[i]", t) for t in taus), reverse=True)
    source = "given"
    if code_value is not None:
        code_value = check_positive("code_value", code_value)
    elif solve_code:
        code_value, source = reference_code_value(
            K, d, restarts=code_restarts, time_limit=code_time_limit
        )
    else:
        source = "none"
    upper = rho_star_upper(K, d)

    points: list[SweepPoint] = []
    results: list[UFMResult] = []
    W0: torch.Tensor | None = None
    H0: torch.Tensor | None = None
    runs = len(tau_list) * (restarts + 1) - 1 if warm_start else len(tau_list) * restarts
    bar = tqdm(total=runs, desc="UFM sweep", unit="solve", file=sys.stderr, disable=not progress)
    for tau in tau_list:
        bar.set_postfix(tau=f"{tau:.3g}", refresh=False)
        starts: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
        if W0 is not None:
            starts.append((W0, H0))
        starts.extend([(None, None)] * restarts)

        started = time.perf_counter()
        best: UFMResult | None = None
        for init_W, init_H in starts:
            candidate = solve_ufm(
                K,
                d,
                samples_per_class,
                tau,
                max_steps=max_steps,
                tol=tol,
                method=method,
                objective=objective,
                record_every=record_every,
                init_weights=init_W,
                init_features=init_H,
                dtype=dtype,
                device=device,
                generator=generator,
                progress=progress,
            )
            bar.update(1)
            if best is None or candidate.objective < best.objective:
                best = candidate
        assert best is not None
        res = best
        seconds = time.perf_counter() - started
        if warm_start:
            W0, H0 = res.weights, res.features
        m = ufm_metrics(res.weights, res.features, res.labels, directions=True)
        points.append(
            SweepPoint(
                tau=tau,
                loss=res.loss,
                gnc1=m.gnc1,
                gnc2=m.gnc2,
                gnc3=m.gnc3,
                alignment=m.alignment,
                code_value=code_value,
                ratio=m.gnc2 / code_value if code_value else None,
                rho_star_upper=upper,
                steps=res.iterations,
                seconds=seconds,
                stop_reason=res.stop_reason,
                grad_norm=res.grad_norm,
                certified=m.certified,
            )
        )
        results.append(res)
    bar.close()
    return SweepResult(
        num_classes=K,
        feature_dim=d,
        points=tuple(points),
        results=tuple(results),
        code_value=code_value,
        code_source=source,
        rho_star_upper=upper,
    )
