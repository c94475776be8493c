"""The result record of the code solvers and its certification by the exact geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from gnc.geometry import bound_report, max_cosines, one_vs_rest_distances
from gnc.io import Record
from gnc.sphere import normalize_rows

__all__ = ["CodeResult", "certify_code"]


@dataclass(frozen=True)
class CodeResult(Record):
    """A softmax or Tammes code with its exact, certified quality.

    ``to_dict()`` leaves out ``code`` (save it with ``np.save``).

    Attributes:
        code: ``(K, d)`` unit rows.
        kind: ``"softmax"`` (maximizes ``rho``) or ``"tammes"`` (maximizes the min distance).
        num_classes: ``K``.
        feature_dim: ``d``.
        rho: Exact ``rho = min_k D_k`` from :func:`gnc.geometry.one_vs_rest_distances`.
        lower: Certified lower bound on ``rho`` (the solver's dual bound).
        gap: ``rho - lower``.
        certified: Whether the exact solver certified every ``D_k`` (gap within its tolerance).
        min_pairwise_distance: ``min_{j != k} |w_j - w_k|`` (the Tammes objective).
        max_cosine: ``max_{j != k} <w_j, w_k>``.
        rho_star_upper: Upper bound on the best possible ``rho*(d, K)``
            (:func:`gnc.geometry.bounds.rho_star_upper`).
        min_distance_upper: Upper bound on the best possible min pairwise distance
            (:func:`gnc.geometry.bounds.min_distance_upper`).
        method: ``"closed-form:simplex-etf"``, ``"closed-form:regular-polygon"``,
            ``"closed-form:cross-polytope-subset"``, ``"optimized"`` (a random restart won) or
            ``"start-code+polish"`` (a given start code, e.g. the catalogue's, won).
        iterations: Surrogate steps plus polishing linear programs, over all restarts.
        seconds: Wall time including certification.
        stop_reason: ``"bound-reached"`` or ``"target-reached"`` when the search stopped early (see
            :func:`gnc.codes.softmax_code`'s ``target`` and ``stop_at_bound``), else why the
            polishing of the returned code stopped (or ``"closed-form"``).
        history: Objective after each accepted polishing step (non-decreasing): the HardMax
            value ``min_k min_j <w_k - w_j, h_k>`` for softmax codes, ``1 - max cosine`` for
            Tammes codes; the first entry is the annealed start.
        anneal_history: Hard objective seen during annealing of the returned restart.
        restarts: Restarts run (each from its own random start).
        restart_values: Objective of every restart after annealing (Tammes codes: after the
            Riesz phase).
        trace: ``(seconds, best objective so far)`` after every restart, seconds on the
            search's clock (wall or CPU time, ``clock``) from its start; the objective is the
            certified HardMax lower bound on ``rho`` (softmax) or ``1 - max cosine`` (Tammes).
    """

    code: torch.Tensor
    kind: Literal["softmax", "tammes"]
    num_classes: int
    feature_dim: int
    rho: float
    lower: float
    gap: float
    certified: bool
    min_pairwise_distance: float
    max_cosine: float
    rho_star_upper: float
    min_distance_upper: float
    method: str
    iterations: int
    seconds: float
    stop_reason: str
    history: list[float] = field(default_factory=list)
    anneal_history: list[float] = field(default_factory=list)
    restarts: int = 0
    restart_values: list[float] = field(default_factory=list)
    trace: list[tuple[float, float]] = field(default_factory=list)

    _omit_from_dict: ClassVar[tuple[str, ...]] = ("code",)


def certify_code(
    code: torch.Tensor,
    *,
    kind: Literal["softmax", "tammes"],
    method: str,
    iterations: int,
    seconds: float,
    stop_reason: str,
    history: list[float] | None = None,
    anneal_history: list[float] | None = None,
    restarts: int = 0,
    restart_values: list[float] | None = None,
    trace: list[tuple[float, float]] | None = None,
    max_memory_mib: float | None = None,
) -> CodeResult:
    """Evaluate ``code`` exactly (certified ``rho``, pairwise statistics, bounds) into a record.

    The rows are normalized in float64 first; ``rho`` is the exact value of those unit rows.
    """
    K, d = code.shape
    unit = normalize_rows(code.detach().to(torch.float64))  # certify in float64
    exact = one_vs_rest_distances(unit, normalize=False, max_memory_mib=max_memory_mib)
    values, _ = max_cosines(unit, max_memory_mib=max_memory_mib)
    smax = float(values.max())
    bounds = bound_report(K, d)
    lower = float(exact.lower_bounds.min())
    return CodeResult(
        code=code,
        kind=kind,
        num_classes=K,
        feature_dim=d,
        rho=float(exact.rho),
        lower=lower,
        gap=float(exact.rho) - lower,
        certified=bool(exact.certified),
        min_pairwise_distance=math.sqrt(max(0.0, 2.0 - 2.0 * smax)),
        max_cosine=smax,
        rho_star_upper=bounds.rho_star_upper,
        min_distance_upper=bounds.min_distance_upper,
        method=method,
        iterations=iterations,
        seconds=seconds + exact.seconds,
        stop_reason=stop_reason,
        history=list(history or []),
        anneal_history=list(anneal_history or []),
        restarts=restarts,
        restart_values=list(restart_values or []),
        trace=list(trace or []),
    )
