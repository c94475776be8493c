"""GNC2 of a real classifier head: exact ``rho`` with its argmin, duplicates, ``D_k`` and baselines.

(Over 600 lines: one idea, the analysis of one head; its configuration, its result record with
the JSON that `gnc head` prints, and the pipeline that fills it are kept together.)

For the unit rows ``w_k = W_k / |W_k|`` of a head, ``rho(W) = min_k D_k`` with
``D_k = dist(w_k, conv{w_j : j != k})`` is the GNC2 metric of Jiang et al., "Generalized Neural
Collapse for a Large Number of Classes", ICML 2024. Real heads hold *dead classes* whose rows
coincide up to rounding (:mod:`gnc.analysis.duplicates`), so ``rho`` is 0 or numerically 0.
:func:`analyze_head_geometry` therefore reports

- ``rho_all``: ``rho`` of all rows; when rows coincide (``1 - cos <= duplicate_tolerance``) it is
  bracketed by ``[0, smallest nearest-row distance]`` instead of solving thousands of degenerate
  zero-distance problems;
- ``rho_distinct``: the exact, certified ``rho`` after merging each group of coinciding rows into
  one class (its lowest index), with the argmin decoded to its token or character;
- the distribution of ``D_k`` on every distinct class: exact when that fits a time budget, else
  a certified bracket ``[lower_k, upper_k]`` of every class from a few working-set rounds
  (:mod:`gnc.analysis.distance_brackets`; its quantiles are certified intervals) when those fit
  it, else exact on a random sample (as when one is asked for); and the cheap lower bounds
  ``1 - s_k`` (``s_k`` = max cosine) for every class;
- which classes can be the argmax at all (raw rows and bias;
  :func:`gnc.geometry.argmax.argmaxable`);
- reference values (:mod:`gnc.analysis.reference`) at ``(K, d)`` and at a reduced ``(K', d')``
  with the same ratio ``K / d``.

The duplicates, the lower bounds ``1 - s_k`` of the rho search and the argmax screen share one
tiled float32 pass over ``W W^T`` (:func:`gnc.geometry._row_maxima.row_maxima`), exact in float64
wherever its rounding bound does not decide; each phase's wall time is in
:attr:`HeadGeometry.phase_seconds`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import make_generator, resolve_budget, resolve_device
from gnc.analysis.distance_brackets import (
    QUANTILES,
    DistanceBrackets,
    bracket_quantiles,
    distance_brackets,
)
from gnc.analysis.duplicates import DuplicateGroups, duplicate_groups
from gnc.analysis.head_rho import RhoSummary, rho_search
from gnc.analysis.reference import ReferenceValues, reduced_shape, reference_values
from gnc.geometry import one_vs_rest_distances
from gnc.geometry._row_maxima import row_bar, row_maxima
from gnc.geometry.argmax import ArgmaxResult, argmaxable, coinciding_rows, screen_center
from gnc.pretrained import Head

__all__ = [
    "HeadGeometry",
    "HeadGeometryConfig",
    "analyze_head_geometry",
    "estimate_all_classes_seconds",
    "estimate_bracket_seconds",
]

#: Examples of each kind of argmax status that :meth:`HeadGeometry.to_dict` lists.
ARGMAX_EXAMPLES = 20
_EPS = torch.finfo(torch.float64).eps


def _bar(cfg: HeadGeometryConfig, total: int, desc: str) -> Any:
    """A transient tqdm bar of one phase on stderr (a no-op unless ``cfg.progress``)."""
    return row_bar(total, desc, cfg.progress)


@dataclass(frozen=True)
class HeadGeometryConfig:
    """Options of :func:`analyze_head_geometry`.

    Attributes:
        sample_classes: Classes whose exact ``D_k`` are solved (a random sample of distinct
            classes); ``None`` (the default) means every distinct class, exactly when
            :func:`estimate_all_classes_seconds` fits in ``time_budget``, else bracketed by
            ``bracket_rounds`` working-set rounds (:func:`distance_brackets`) when their
            estimate (:func:`estimate_bracket_seconds`) fits, else an exact random sample of
            ``fallback_sample_classes``.
        all_classes: With ``sample_classes=None``: ``"auto"`` (the choice above by the time
            budget) or ``"brackets"`` (bracket every distinct class whatever the estimates).
        seed: Seed of the class sample and the random baseline.
        max_memory_mib: Memory budget of one tile (solvers and pairwise passes; ``None``: the
            working-memory setting of :mod:`gnc._runtime`).
        duplicate_tolerance: Rows with ``1 - cos <= duplicate_tolerance`` count as one direction.
        tol: Certificate tolerance (gap) of the exact solvers.
        random_baseline: ``"auto"`` (the default: ``"full"`` when one pass over ``K`` random rows
            is estimated to fit ``time_budget``, else ``"reduced"``; at ``K = 262,144`` that pass
            would cost as much as the whole analysis of the head), ``"full"`` (same ``(K, d)``),
            ``"reduced"`` (only at ``(K', d')``) or ``"off"``.
        code_baseline: Compute a numerical softmax code at the reduced ``(K', d')``.
        code_max_classes: Largest ``K'`` of the reduced comparison.
        code_time_limit: Seconds given to the softmax-code solver.
        random_exact_max_classes: Largest ``K`` whose random baseline is solved exactly; above
            it the random ``rho`` is bracketed (see :func:`random_rho_bracket`), since random
            rows leave no class prunable and every class would have to be solved.
        random_solved_classes: Classes solved exactly for that bracket.
        progress: Show tqdm bars of the exact solves on stderr.
        time_budget: Seconds the exact all-classes ``D_k`` may take (estimated beforehand).
        bracket_rounds: Working-set rounds of the all-classes brackets (each round after the
            first re-solves, warm-started, the classes whose check found violators).
        fallback_sample_classes: Exact sample size when neither all classes nor their brackets
            fit ``time_budget``.
        argmax: Decide which classes can be the argmax (raw rows and bias; see
            :func:`gnc.geometry.argmax.argmaxable`).
        raw_distances: Also solve the raw (unnormalized) ``D_k`` of the sampled classes.
    """

    sample_classes: int | None = None
    seed: int = 0
    max_memory_mib: float | None = None
    duplicate_tolerance: float = 1e-9
    tol: float = 1e-9
    random_baseline: Literal["auto", "full", "reduced", "off"] = "auto"
    code_baseline: bool = True
    code_max_classes: int = 512
    code_time_limit: float = 60.0
    random_exact_max_classes: int = 4096
    random_solved_classes: int = 256
    progress: bool = False
    time_budget: float = 300.0
    bracket_rounds: int = 2
    fallback_sample_classes: int = 1024
    all_classes: Literal["auto", "brackets"] = "auto"
    argmax: bool = False
    raw_distances: bool = False

    def __post_init__(self) -> None:
        if self.sample_classes is not None:
            check_int("sample_classes", self.sample_classes, minimum=0)
        check_positive("time_budget", self.time_budget)
        check_int("bracket_rounds", self.bracket_rounds, minimum=1)
        check_int("fallback_sample_classes", self.fallback_sample_classes, minimum=0)
        if self.all_classes not in ("auto", "brackets"):
            raise ValueError(
                f"Expected `all_classes` to be 'auto' or 'brackets', but got {self.all_classes!r}."
            )
        check_int("seed", self.seed, minimum=0)
        if self.max_memory_mib is not None:
            resolve_budget(self.max_memory_mib)
        check_positive("tol", self.tol)
        if not 0.0 <= float(self.duplicate_tolerance) < 1.0:
            raise ValueError(
                f"Expected `duplicate_tolerance` in [0, 1), but got {self.duplicate_tolerance}."
            )
        if self.random_baseline not in ("auto", "full", "reduced", "off"):
            raise ValueError(
                "Expected `random_baseline` in ('auto', 'full', 'reduced', 'off'), but got "
                f"{self.random_baseline!r}."
            )
        check_int("code_max_classes", self.code_max_classes, minimum=3)
        check_positive("code_time_limit", self.code_time_limit)
        check_int("random_exact_max_classes", self.random_exact_max_classes, minimum=2)
        check_int("random_solved_classes", self.random_solved_classes, minimum=1)


@dataclass(frozen=True)
class HeadGeometry:
    """GNC2 analysis of one head (see the module docstring).

    Attributes:
        name: The head's name.
        num_classes: ``K``.
        feature_dim: ``d``.
        rho_all: ``rho`` of all rows.
        rho_distinct: Exact ``rho`` after merging coinciding rows (``None`` if none coincide,
            then ``rho_all`` is exact).
        duplicates: The duplicate groups (sizes, nearest distances, max cosines).
        duplicate_examples: Decoded labels of the largest groups (up to 5 groups, 8 labels each).
        max_cosine: ``max_k s_k`` over all rows.
        sample_classes: ``(C,)`` classes of the exact ``D_k`` (sorted row indices; empty when
            every class is bracketed instead).
        sample_distances: ``(C,)`` their exact ``D_k`` among the distinct directions (all rows
            when none coincide).
        sample_is_all: Whether the sample is every distinct direction.
        sample_certified: Whether every sampled ``D_k`` is certified.
        sample_seconds: Wall time of the sample.
        reference: Reference values at ``(K, d)``.
        reduced: Reference values at the reduced ``(K', d')`` (``None`` if not computed).
        seconds: Total wall time.
        sample_reason: Why the sample is what it is (all classes, the requested size, or the
            time estimate that did not fit the budget).
        estimated_all_seconds: The estimate of all classes' ``D_k`` time (``None`` if the
            sample size was given).
        raw_sample_distances: ``(C,)`` raw ``D_k`` of the sampled classes among the distinct
            raw rows (``None`` unless asked for).
        argmax: Which classes can be the argmax (``None`` if skipped).
        argmax_labels: Decoded labels of the classes :meth:`to_dict` lists as argmax examples.
        phase_seconds: Wall time of each phase: ``pass`` (the shared float32 pass), ``duplicates``,
            ``rho``, ``distances`` (all, bracketed or sampled ``D_k``), ``argmax`` (after the
            screen), ``reference``, ``reduced``.
        brackets: Certified ``[lower_k, upper_k]`` of every distinct class's ``D_k`` (classes
            are row indices of ``W``), ``None`` unless the exact all-classes run did not fit.
    """

    name: str
    num_classes: int
    feature_dim: int
    rho_all: RhoSummary
    rho_distinct: RhoSummary | None
    duplicates: DuplicateGroups
    duplicate_examples: tuple[tuple[str, ...], ...]
    max_cosine: float
    sample_classes: torch.Tensor
    sample_distances: torch.Tensor
    sample_is_all: bool
    sample_certified: bool
    sample_seconds: float
    reference: ReferenceValues
    reduced: ReferenceValues | None
    seconds: float
    sample_reason: str = ""
    estimated_all_seconds: float | None = None
    raw_sample_distances: torch.Tensor | None = None
    argmax: ArgmaxResult | None = None
    argmax_labels: dict[int, str] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    brackets: DistanceBrackets | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: scalars, quantiles of the per-class tensors, decoded examples.

        The per-class tensors themselves (``sample_classes``, ``sample_distances``,
        ``raw_sample_distances``, the duplicates' and the argmax result's) are left out; their
        quantiles and up to :data:`ARGMAX_EXAMPLES` examples are in. ``rho`` is the exact
        ``rho`` of the distinct rows (of all rows when none coincide); ``rho_star_upper`` is the
        bound on the best possible ``rho*(K, d)``.
        """
        exact = self.rho_distinct if self.rho_distinct is not None else self.rho_all
        reduced = None
        code, code_shape = self.reference.code_rho, [self.num_classes, self.feature_dim]
        if self.reduced is not None:
            reduced = self.reduced.to_dict()
            reduced["label"] = (
                f"reduced shape K'={self.reduced.num_classes}, d'={self.reduced.feature_dim} "
                f"(about the same K/d = {self.num_classes / self.feature_dim:.3g})"
            )
            if code is None and self.reduced.code_rho is not None:
                code = self.reduced.code_rho
                code_shape = [self.reduced.num_classes, self.reduced.feature_dim]
        dup = self.duplicates
        size = int(self.sample_classes.numel())
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "dim": self.feature_dim,
            "rho": exact.rho,
            "coinciding_rows": dup.num_merged,
            "unargmaxable": None if self.argmax is None else int(self.argmax.unargmaxable.numel()),
            "certified": bool(
                exact.certified
                and self.sample_certified
                and (self.argmax is None or self.argmax.certified)
            ),
            "argmax": self._argmax_dict(),
            "feature_dim": self.feature_dim,
            "classes_per_dim": self.num_classes / self.feature_dim,
            "gnc2": self.rho_all.rho,
            "gnc2_distinct": exact.rho,
            "rho_all": self.rho_all.to_dict(),
            "rho_distinct": None if self.rho_distinct is None else self.rho_distinct.to_dict(),
            "duplicates": {**dup.to_dict(), "examples": [list(g) for g in self.duplicate_examples]},
            "max_cosine": self.max_cosine,
            "one_minus_max_cosine_all": _quantiles(1.0 - dup.max_cosines),
            "distances_sample": {
                "size": size,
                "population": self.num_classes - dup.num_merged,
                "is_all": self.sample_is_all,
                "certified": self.sample_certified,
                "seconds": self.sample_seconds,
                "quantiles": _quantiles(self.sample_distances),
                "label": (
                    "all distinct classes"
                    if self.sample_is_all
                    else "none"
                    if size == 0
                    else f"random sample of {size} distinct classes"
                ),
                "reason": self.sample_reason,
                "estimated_all_seconds": self.estimated_all_seconds,
            },
            "distances_all": self._distances_all(),
            "rho_star_upper": self.reference.rho_star_upper,
            "random_rho": self.reference.random_rho,
            "random_lower": self.reference.random_lower,
            "code_rho": code,
            "code_shape": code_shape,
            "reference": self.reference.to_dict(),
            "reduced": reduced,
            "phase_seconds": dict(self.phase_seconds),
            "seconds": self.seconds,
        }

    def _distances_all(self) -> dict[str, Any] | None:
        """Quantiles of every distinct class's ``D_k``: exact, or certified intervals."""
        if self.brackets is not None:
            br = self.brackets
            return {
                "exact": False,
                "label": f"all distinct classes, certified brackets ({br.rounds} rounds)",
                **br.to_dict(),
            }
        if not self.sample_is_all or self.sample_distances.numel() == 0:
            return None
        return {
            "exact": True,
            "label": "all distinct classes, exact",
            "size": int(self.sample_distances.numel()),
            "exact_classes": int(self.sample_distances.numel()),
            "seconds": self.sample_seconds,
            "quantiles": bracket_quantiles(self.sample_distances, self.sample_distances),
        }

    def _argmax_dict(self) -> dict[str, Any] | None:
        """Counts and decoded examples of the argmax analysis (raw rows, bias included)."""
        res = self.argmax
        if res is None:
            return None

        def _items(idx: torch.Tensor, with_residual: bool) -> list[dict[str, Any]]:
            out = []
            for row, k in enumerate(idx[:ARGMAX_EXAMPLES].tolist()):
                item: dict[str, Any] = {"id": k, "token": self.argmax_labels.get(k, f"#{k}")}
                if with_residual and row < res.residuals.numel():
                    item["raw_distance_at_most"] = float(res.residuals[row])
                    item["support"] = int((res.support[row] >= 0).sum())
                else:
                    item["twin"] = int(res.twin[k])
                out.append(item)
            return out

        finite = ~torch.isnan(res.margins)
        return {
            "unargmaxable": int(res.unargmaxable.numel()),
            "coinciding": int(res.coinciding.numel()),
            "undecided": int(res.undecided.numel()),
            "argmaxable": int((res.status == 1).sum()),
            "certified": res.certified,
            "has_bias": res.has_bias,
            "screened": res.num_screened,
            "solved_exactly": res.num_solved,
            "refined": int(res.refined.numel()),
            "refined_argmaxable": int((res.status[res.refined] == 1).sum()),
            "refined_inside": int((res.status[res.refined] == 0).sum()),
            "min_certified_margin": (
                float(res.margins[finite].min()) if bool(finite.any()) else None
            ),
            "seconds": res.seconds,
            "examples": _items(res.inside, True),
            "coinciding_examples": _items(res.coinciding, False),
        }


def _quantiles(x: torch.Tensor) -> dict[str, float] | None:
    """Quantiles :data:`QUANTILES` and the mean of ``x`` (``None`` when empty)."""
    if x.numel() == 0:
        return None
    q = torch.quantile(x.double().cpu(), torch.tensor(QUANTILES, dtype=torch.float64))
    out = {f"q{round(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q, strict=True)}
    out["mean"] = float(x.double().mean())
    return out


#: Exact all-classes ``D_k`` costs about this many float64 ``W W^T`` passes (working-set
#: rounds, certification against all rows); an assumption of the estimate, measured on random
#: and real heads to lie between 2 and 8.
PASSES_PER_ALL_CLASSES = 8.0


def estimate_all_classes_seconds(
    num_classes: int, feature_dim: int, device: torch.device | str = "cpu"
) -> float:
    """Estimated wall time of every class's exact ``D_k`` on ``device``.

    Times one small float64 GEMM on the device to get its rate ``r`` (flop/s), then returns
    ``PASSES_PER_ALL_CLASSES * 2 K^2 d / r``. An estimate, not a bound.

    Example:
        >>> estimate_all_classes_seconds(100, 4) < estimate_all_classes_seconds(10_000, 64)
        True
    """
    K = check_int("num_classes", num_classes, minimum=1)
    d = check_int("feature_dim", feature_dim, minimum=1)
    dev = resolve_device(device)
    n = min(K, 4096)
    m = min(K, 512)
    A = torch.randn(m, d, dtype=torch.float64, device=dev)
    B = torch.randn(n, d, dtype=torch.float64, device=dev)
    (A @ B.T).sum().item()  # warm-up
    t0 = time.perf_counter()
    (A @ B.T).sum().item()
    rate = 2.0 * m * n * d / max(time.perf_counter() - t0, 1e-6)
    return PASSES_PER_ALL_CLASSES * 2.0 * K * K * d / rate


def estimate_bracket_seconds(all_classes_seconds: float, rounds: int) -> float:
    """Estimated wall time of the all-classes brackets of ``rounds`` working-set rounds.

    The neighbour pass and one certification pass per round, out of the
    ``PASSES_PER_ALL_CLASSES`` of the exact run (``all_classes_seconds``, from
    :func:`estimate_all_classes_seconds`). An estimate, not a bound (measured: 418 s for
    SmolLM2's 49,141 distinct rows with 2 rounds, against this estimate's 325 s).

    Example:
        >>> estimate_bracket_seconds(800.0, 2)
        300.0
    """
    check_int("rounds", rounds, minimum=1)
    return all_classes_seconds * (rounds + 1) / PASSES_PER_ALL_CLASSES


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


def _raw_distances(head: Head, classes: torch.Tensor, cfg: HeadGeometryConfig) -> torch.Tensor:
    """Raw ``D_k`` (no normalization) of ``classes`` among the exactly distinct raw rows.

    A row equal to another has raw ``D_k = 0``.
    """
    W = head.weights.to(torch.float64)
    K = W.shape[0]
    budget = resolve_budget(cfg.max_memory_mib)
    twin = coinciding_rows(W, None).cpu()
    counts = torch.bincount(twin, minlength=K)
    keep = (twin == torch.arange(K)).nonzero(as_tuple=True)[0]
    local = torch.full((K,), -1, dtype=torch.long)
    local[keep] = torch.arange(keep.numel())
    out = torch.zeros(classes.numel(), dtype=torch.float64)
    alone = counts[twin[classes]] == 1
    if keep.numel() >= 2 and bool(alone.any()):
        res = one_vs_rest_distances(
            W[keep.to(W.device)],
            normalize=False,
            classes=local[classes[alone]].to(W.device),
            max_memory_mib=budget,
            tol=cfg.tol * max(1.0, float(W.norm(dim=1).max())),
            progress=cfg.progress,
        )
        out[alone] = res.distances.cpu()
    return out


def analyze_head_geometry(head: Head, config: HeadGeometryConfig | None = None) -> HeadGeometry:
    """Exact GNC2 of a head with its duplicates, ``D_k`` sample and reference values.

    Computation is in float64 on the device of ``head.weights``.

    Args:
        head: The head (``K >= 3`` rows, none zero).
        config: Options (defaults: :class:`HeadGeometryConfig`).

    Returns:
        A :class:`HeadGeometry`.

    Raises:
        ValueError: On zero or non-finite rows, or fewer than 3 rows.

    Example:
        >>> import math
        >>> angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        >>> octagon = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> head = Head(octagon, None, "octagon")
        >>> config = HeadGeometryConfig(code_baseline=False, random_baseline="off")
        >>> geo = analyze_head_geometry(head, config)
        >>> round(geo.rho_all.rho, 9), geo.rho_all.certified, geo.rho_distinct is None
        (0.292893219, True, True)
    """
    cfg = config if config is not None else HeadGeometryConfig()
    start = time.perf_counter()
    phases: dict[str, float] = {}
    raw = check_matrix("weights", head.weights, min_rows=3, nonzero_rows=True).to(torch.float64)
    K, d = raw.shape
    budget = resolve_budget(cfg.max_memory_mib)
    # One float32 pass shared by the duplicates, the lower bounds of rho and the argmax screen.
    twin_free: torch.Tensor | None = None
    center: torch.Tensor | None = None
    if cfg.argmax:
        bias = None if head.bias is None else head.bias.to(raw.device, torch.float64)
        twin_free = coinciding_rows(raw, bias) == torch.arange(K, device=raw.device)
        center = screen_center(raw, twin_free.nonzero(as_tuple=True)[0])
    with _bar(cfg, K, f"shared pass K={K}") as bar:
        maxima = row_maxima(
            raw,
            raw_columns=twin_free,
            center=center,
            coincide_tol=cfg.duplicate_tolerance,
            max_memory_mib=budget,
            bar=bar,
        )
    phases["pass"] = time.perf_counter() - start
    t0 = time.perf_counter()
    dup = duplicate_groups(raw, tolerance=cfg.duplicate_tolerance, maxima=maxima)
    W = raw / raw.norm(dim=1, keepdim=True)
    del raw
    phases["duplicates"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    distinct = dup.distinct
    search: dict[str, Any] = {"tol": cfg.tol, "max_memory_mib": budget, "progress": cfg.progress}
    if dup.num_merged == 0:
        with _bar(cfg, K, f"rho search K={K}") as bar:
            rho_all = rho_search(head, W, None, dup.max_cosines, dup.nearest_row, bar=bar, **search)
        rho_distinct = None
    else:
        # Coinciding rows: D_k <= |w_k - w_j| for the nearest row j; 0 is the lower bound.
        arg = int(dup.nearest_distance.argmin())
        ub = float(dup.nearest_distance[arg])
        rho_all = RhoSummary(
            rho=ub,
            lower=0.0,
            upper=ub,
            gap=ub,
            certified=ub <= cfg.tol,
            argmin=arg,
            label=head.decode(arg),
            classes_solved=0,
            num_classes=K,
            seconds=0.0,
            method="coinciding rows: [0, nearest-row distance]",
        )
        # The distinct rows' max cosines: the shared pass's, except where the nearest row was
        # merged away (then one pass over those rows against the distinct ones).
        sub = W[distinct]
        local = torch.full((K,), -1, dtype=torch.long, device=W.device)
        local[distinct] = torch.arange(distinct.numel(), device=W.device)
        s_d = dup.max_cosines[distinct].clone()
        near_d = local[dup.nearest_row[distinct]]
        redo = (near_d < 0).nonzero(as_tuple=True)[0]
        if redo.numel():
            fix = row_maxima(sub, rows=redo, max_memory_mib=budget)
            s_d[redo], near_d[redo] = fix.max_cosine, fix.argmax_cosine
        with _bar(cfg, distinct.numel(), f"rho search K={distinct.numel()}") as bar:
            rho_distinct = rho_search(head, sub, distinct, s_d, near_d, bar=bar, **search)
        del sub
    phases["rho"] = time.perf_counter() - t0
    # Examples of the largest duplicate groups.
    rep = dup.representative.cpu()
    counts = torch.bincount(rep, minlength=K)
    examples: list[tuple[str, ...]] = []
    for root in torch.argsort(counts, descending=True, stable=True)[:5].tolist():
        if counts[root] < 2:
            break
        members = (rep == root).nonzero(as_tuple=True)[0][:8].tolist()
        examples.append(tuple(head.decode(i) for i in members))
    # Exact D_k on all distinct directions when they fit the time budget, else certified
    # brackets of all of them (or an exact sample when one is asked for).
    t0 = time.perf_counter()
    distinct = distinct.cpu()
    gen = make_generator(cfg.seed)
    estimate: float | None = None
    brackets: DistanceBrackets | None = None
    sub = W if dup.num_merged == 0 else W[distinct.to(W.device)]
    if cfg.sample_classes is None:
        estimate = estimate_all_classes_seconds(distinct.numel(), d, W.device)
        bracket_estimate = estimate_bracket_seconds(estimate, cfg.bracket_rounds)
        forced = cfg.all_classes == "brackets"
        if estimate <= cfg.time_budget and not forced:
            n_sample = distinct.numel()
            reason = f"all classes (estimated {estimate:.0f} s <= budget {cfg.time_budget:.0f} s)"
        elif bracket_estimate > cfg.time_budget and not forced:
            n_sample = min(distinct.numel(), cfg.fallback_sample_classes)
            reason = (
                f"random sample of {n_sample}: all classes estimated at {estimate:.0f} s, their "
                f"brackets at {bracket_estimate:.0f} s > budget {cfg.time_budget:.0f} s"
            )
        else:
            n_sample = 0
            reason = (
                f"all classes bracketed ({cfg.bracket_rounds} working-set rounds), as requested"
                if forced
                else f"all classes bracketed ({cfg.bracket_rounds} working-set rounds): exact "
                f"estimated at {estimate:.0f} s > budget {cfg.time_budget:.0f} s"
            )
            brackets = distance_brackets(
                sub,
                rounds=cfg.bracket_rounds,
                normalize=False,
                tol=cfg.tol,
                max_memory_mib=budget,
                progress=cfg.progress,
            )
            brackets = replace(brackets, classes=distinct[brackets.classes.cpu()])
    else:
        n_sample = min(distinct.numel(), cfg.sample_classes)
        reason = f"sample of {n_sample} requested"
    sample_is_all = n_sample == distinct.numel()
    if sample_is_all and n_sample:
        reason = reason if cfg.sample_classes is None else "all classes"
    raw_dists: torch.Tensor | None = None
    if n_sample == 0:
        classes = torch.empty(0, dtype=torch.long)
        dists = torch.empty(0, dtype=torch.float64)
        sample_cert, sample_seconds = True, 0.0
        sample_is_all = False
    else:
        pick = torch.randperm(distinct.numel(), generator=gen)[:n_sample].sort()[0]
        if sample_is_all:
            pick = torch.arange(distinct.numel())
        ovr = one_vs_rest_distances(
            sub,
            classes=pick.to(W.device),
            max_memory_mib=budget,
            tol=cfg.tol,
            keep_points=False,
            progress=cfg.progress,
        )
        classes = distinct[pick]
        dists, sample_cert, sample_seconds = ovr.distances.cpu(), ovr.certified, ovr.seconds
        if cfg.raw_distances:
            raw_dists = _raw_distances(head, classes, cfg)
    # The normalized rows are done with: the argmax analysis makes its own float64 copy of the
    # raw rows, and both at once were the peak of a whole Gemma 3 run (6.2 GiB).
    dev = W.device
    del sub, W
    phases["distances"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    argmax_res = None
    argmax_labels: dict[int, str] = {}
    if cfg.argmax:
        argmax_res = argmaxable(
            head.weights,
            head.bias,
            max_memory_mib=budget,
            progress=cfg.progress,
            maxima=maxima,
        )
        listed = (argmax_res.inside[:ARGMAX_EXAMPLES], argmax_res.coinciding[:ARGMAX_EXAMPLES])
        argmax_labels = {k: head.decode(k) for idx in listed for k in idx.tolist()}
    del maxima
    phases["argmax"] = time.perf_counter() - t0
    # Reference values at (K, d) and at a reduced (K', d') with the same K / d.
    t0 = time.perf_counter()
    random_full = cfg.random_baseline == "full"
    if cfg.random_baseline == "auto":
        one_pass = estimate_all_classes_seconds(K, d, dev) / PASSES_PER_ALL_CLASSES
        random_full = one_pass <= cfg.time_budget
    reference = reference_values(
        K,
        d,
        random_baseline=random_full,
        code_baseline=cfg.code_baseline and cfg.code_max_classes >= K,
        seed=cfg.seed,
        max_memory_mib=budget,
        tol=cfg.tol,
        code_time_limit=cfg.code_time_limit,
        random_exact_max_classes=cfg.random_exact_max_classes,
        random_solved_classes=cfg.random_solved_classes,
        progress=cfg.progress,
        device=dev,
    )
    if cfg.random_baseline == "auto" and not random_full:
        note = (
            f"random rows at (K, d) = ({K}, {d}) only at the reduced shape: one pass over them "
            f"is estimated at {one_pass:.0f} s > budget {cfg.time_budget:.0f} s"
        )
        reference = replace(reference, notes=(*reference.notes, note))
    phases["reference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    reduced = None
    K_red, d_red = reduced_shape(K, d, cfg.code_max_classes)
    if (K_red, d_red) != (K, d) and (cfg.code_baseline or cfg.random_baseline != "off"):
        reduced = reference_values(
            K_red,
            d_red,
            random_baseline=cfg.random_baseline != "off",
            code_baseline=cfg.code_baseline,
            seed=cfg.seed,
            max_memory_mib=budget,
            tol=cfg.tol,
            code_time_limit=cfg.code_time_limit,
            progress=cfg.progress,
            device=dev,
        )
    phases["reduced"] = time.perf_counter() - t0
    return HeadGeometry(
        name=head.name,
        num_classes=K,
        feature_dim=d,
        rho_all=rho_all,
        rho_distinct=rho_distinct,
        duplicates=dup,
        duplicate_examples=tuple(examples),
        max_cosine=float(dup.max_cosines.max()),
        sample_classes=classes,
        sample_distances=dists,
        sample_is_all=sample_is_all,
        sample_certified=bool(sample_cert),
        sample_seconds=float(sample_seconds),
        reference=reference,
        reduced=reduced,
        seconds=time.perf_counter() - start,
        sample_reason=reason,
        estimated_all_seconds=estimate,
        raw_sample_distances=raw_dists,
        brackets=brackets,
        argmax=argmax_res,
        argmax_labels=argmax_labels,
        phase_seconds=phases,
    )
