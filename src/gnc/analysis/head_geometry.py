"""GNC2 of a real classifier head: exact ``rho`` with its argmin, duplicates, ``D_k`` and baselines.

For the unit rows ``w_k = W_k / |W_k|`` of a head, ``rho(W) = min_k D_k`` with
``D_k = dist(w_k, conv{w_j : j != k})`` is the GNC2 metric of Jiang et al. (ICML 2024). Real heads
hold *dead classes* (tokens or characters that training never or hardly saw): their rows drift to
one common direction, so several rows coincide up to rounding and ``rho`` is 0 or numerically 0.
This module therefore reports

- ``rho_all``: ``rho`` of all rows; when rows coincide (``1 - cos <= duplicate_tolerance``) it is
  bracketed by ``[0, smallest nearest-row distance]`` instead of solving thousands of degenerate
  zero-distance problems;
- ``rho_distinct``: the exact, certified ``rho`` after merging each group of coinciding rows into
  one class (its lowest index), with the argmin decoded to its token or character;
- the distribution of ``D_k`` on a random sample of classes (exact per class, certified) and the
  cheap lower bounds ``1 - s_k`` (``s_k`` = max cosine) for every class;
- reference values: the upper bound on a softmax code's ``rho*`` for ``(K, d)``, the exact ``rho``
  of uniformly random unit rows of the same ``(K, d)``, and a numerical softmax code's value for a
  reduced ``(K', d')`` with the same ratio ``K / d`` (with the bound and random value there too).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from gnc._checks import check_int, check_matrix, check_positive
from gnc.analysis.heads import HeadMatrix
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry.argmax import ArgmaxResult, argmaxable
from gnc.geometry.pairwise import block_rows, iter_blocks, max_cosines

__all__ = [
    "DuplicateGroups",
    "HeadGeometry",
    "HeadGeometryConfig",
    "ReferenceValues",
    "RhoSummary",
    "analyze_head_geometry",
    "duplicate_groups",
    "estimate_all_classes_seconds",
    "random_rho",
    "random_rho_bracket",
    "reduced_shape",
    "reference_values",
]


@dataclass(frozen=True)
class HeadGeometryConfig:
    """Options of :func:`analyze_head_geometry`.

    Attributes:
        sample_classes: Classes whose exact ``D_k`` form the histogram; ``None`` (the default)
            means every distinct class when :func:`estimate_all_classes_seconds` fits in
            ``time_budget``, else a sample of ``fallback_sample_classes``.
        seed: Seed of the class sample and the random baseline.
        max_memory_mib: Memory budget of one tile (solvers and pairwise passes).
        duplicate_tolerance: Rows with ``1 - cos <= duplicate_tolerance`` count as one direction.
        tol: Certificate tolerance (gap) of the exact solvers.
        random_baseline: ``"full"`` (same ``(K, d)``), ``"reduced"`` (only at ``(K', d')``) or
            ``"off"``.
        code_baseline: Compute a numerical softmax code at the reduced ``(K', d')``.
        code_max_classes: Largest ``K'`` of the reduced comparison.
        code_time_limit: Seconds given to the softmax-code solver.
        random_exact_max_classes: Largest ``K`` whose random baseline is solved exactly; above
            it the random ``rho`` is bracketed (see :func:`random_rho_bracket`), since random
            rows leave no class prunable and every class would have to be solved.
        random_solved_classes: Classes solved exactly for that bracket.
        progress: Show tqdm bars of the exact solves on stderr.
        time_budget: Seconds the all-classes ``D_k`` may take (estimated beforehand).
        fallback_sample_classes: Sample size when all classes do not fit the budget.
        argmax: Decide which classes can be the argmax (raw rows and bias; see
            :func:`gnc.geometry.argmax.argmaxable`).
        raw_distances: Also solve the raw (unnormalized) ``D_k`` of the sampled classes.
    """

    sample_classes: int | None = None
    seed: int = 0
    max_memory_mib: float = 1024.0
    duplicate_tolerance: float = 1e-9
    tol: float = 1e-9
    random_baseline: Literal["full", "reduced", "off"] = "full"
    code_baseline: bool = True
    code_max_classes: int = 512
    code_time_limit: float = 60.0
    random_exact_max_classes: int = 4096
    random_solved_classes: int = 256
    progress: bool = False
    time_budget: float = 300.0
    fallback_sample_classes: int = 1024
    argmax: bool = False
    raw_distances: bool = False

    def __post_init__(self) -> None:
        if self.sample_classes is not None:
            check_int("sample_classes", self.sample_classes, minimum=0)
        check_positive("time_budget", self.time_budget)
        check_int("fallback_sample_classes", self.fallback_sample_classes, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_positive("max_memory_mib", self.max_memory_mib)
        check_positive("tol", self.tol)
        if not 0.0 <= float(self.duplicate_tolerance) < 1.0:
            raise ValueError(
                f"Expected `duplicate_tolerance` in [0, 1), but got {self.duplicate_tolerance}."
            )
        if self.random_baseline not in ("full", "reduced", "off"):
            raise ValueError(
                "Expected `random_baseline` in ('full', 'reduced', 'off'), but got "
                f"{self.random_baseline!r}."
            )
        check_int("code_max_classes", self.code_max_classes, minimum=3)
        check_positive("code_time_limit", self.code_time_limit)
        check_int("random_exact_max_classes", self.random_exact_max_classes, minimum=2)
        check_int("random_solved_classes", self.random_solved_classes, minimum=1)


@dataclass(frozen=True)
class RhoSummary:
    """``rho`` of a set of unit rows with its argmin and certificate.

    Attributes:
        rho: The value reported (the solver's primal value, an upper bound within ``gap``).
        lower_bound: Certified lower bound.
        upper_bound: Certified upper bound.
        gap: ``upper_bound - lower_bound``.
        certified: Whether ``gap <= tol``.
        argmin: The class attaining ``rho`` (index into the head's rows).
        label: Its decoded token or character.
        classes_solved: Classes solved exactly (the rest excluded by their lower bound).
        num_classes: Number of rows considered.
        seconds: Wall time.
        method: How it was obtained.
    """

    rho: float
    lower_bound: float
    upper_bound: float
    gap: float
    certified: bool
    argmin: int
    label: str
    classes_solved: int
    num_classes: int
    seconds: float
    method: str


@dataclass(frozen=True)
class DuplicateGroups:
    """Groups of rows pointing the same way (``1 - cos <= tolerance`` chains).

    Attributes:
        representative: ``(K,)`` long, the lowest row index of each row's group.
        num_groups: Groups of two or more rows.
        num_merged: Rows merged away (``K`` minus the number of distinct directions).
        largest: Size of the largest group.
        nearest_distance: ``(K,)`` float64 distance of each unit row to its nearest other row.
        max_cosines: ``(K,)`` float64 ``s_k = max_{j != k} <w_k, w_j>``.
        tolerance: The tolerance used.
    """

    representative: torch.Tensor
    num_groups: int
    num_merged: int
    largest: int
    nearest_distance: torch.Tensor
    max_cosines: torch.Tensor
    tolerance: float

    @property
    def distinct(self) -> torch.Tensor:
        """``(K_distinct,)`` indices of the rows kept (one per direction), increasing."""
        K = self.representative.numel()
        return (self.representative == torch.arange(K, device=self.representative.device)).nonzero(
            as_tuple=True
        )[0]


@dataclass(frozen=True)
class ReferenceValues:
    """Reference values of ``rho`` for a shape ``(K, d)``.

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        upper_bound: Upper bound on the best possible ``rho*(d, K)`` (``None`` if unavailable).
        random_rho: ``rho`` of ``K`` uniformly random unit rows (``None`` if skipped): exact,
            or the certified upper end of a bracket (then ``random_lower`` is its lower end).
        random_certified: Whether that value is certified exact (gap <= tol).
        code_rho: ``rho`` of a numerical softmax code (a lower bound on ``rho*``), or ``None``.
        seconds: Wall time.
        notes: What was skipped or unavailable, and why.
        random_lower: Certified lower bound on the random rows' ``rho``.
    """

    num_classes: int
    feature_dim: int
    upper_bound: float | None
    random_rho: float | None
    random_certified: bool | None
    code_rho: float | None
    seconds: float
    notes: tuple[str, ...] = ()
    random_lower: float | None = None


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
        sample_classes: ``(C,)`` classes of the ``D_k`` sample (sorted row indices).
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


# --------------------------------------------------------------------------------------------
# Pure pieces
# --------------------------------------------------------------------------------------------


def duplicate_groups(
    weights: torch.Tensor, *, tolerance: float = 1e-9, max_memory_mib: float = 1024.0
) -> DuplicateGroups:
    """Group rows whose directions coincide: ``1 - cos(w_i, w_j) <= tolerance`` (transitively).

    One tiled pass over the ``K x K`` inner products (never materialized) also yields each row's
    max cosine ``s_k`` and nearest-row distance ``sqrt(2 - 2 s_k)``.

    Args:
        weights: ``(K, d)`` rows (normalized here), ``K >= 2``.
        tolerance: Largest ``1 - cos`` of two rows counted as the same direction (>= 0).
        max_memory_mib: Memory budget of one block of inner products.

    Returns:
        A :class:`DuplicateGroups`.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> groups = duplicate_groups(W)
        >>> groups.representative.tolist(), groups.num_merged, groups.distinct.tolist()
        ([0, 0, 2, 3], 1, [0, 2, 3])
    """
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True).to(torch.float64)
    if not 0.0 <= float(tolerance) < 1.0:
        raise ValueError(f"Expected `tolerance` in [0, 1), but got {tolerance}.")
    W = W / W.norm(dim=1, keepdim=True)
    K = W.shape[0]
    s = torch.empty(K, dtype=torch.float64, device=W.device)
    pairs: list[torch.Tensor] = []
    step = block_rows(K, 2 * K * 8, max_memory_mib)
    for a, b in iter_blocks(K, step):
        block = W[a:b] @ W.T
        block[torch.arange(b - a, device=W.device), torch.arange(a, b, device=W.device)] = -2.0
        s[a:b] = block.max(dim=1).values
        hit = (block >= 1.0 - tolerance).nonzero()
        if hit.numel():
            hit[:, 0] += a
            pairs.append(hit[hit[:, 0] < hit[:, 1]].cpu())
    if pairs:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        edges = torch.cat(pairs).numpy()
        graph = coo_matrix(
            (np.ones(edges.shape[0], dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(K, K)
        )
        _, component = connected_components(graph, directed=False)
        # Representative = lowest row index of each component.
        first = np.full(int(component.max()) + 1, K, dtype=np.int64)
        np.minimum.at(first, component, np.arange(K))
        roots = first[component]
    else:
        roots = np.arange(K, dtype=np.int64)
    counts = np.bincount(roots, minlength=K)
    rep = torch.from_numpy(roots).to(W.device)
    nearest = (2.0 - 2.0 * s).clamp_min(0.0).sqrt()
    return DuplicateGroups(
        representative=rep,
        num_groups=int((counts >= 2).sum()),
        num_merged=int(K - (counts > 0).sum()),
        largest=int(counts.max()),
        nearest_distance=nearest,
        max_cosines=s,
        tolerance=float(tolerance),
    )


def reduced_shape(num_classes: int, feature_dim: int, max_classes: int) -> tuple[int, int]:
    """A smaller ``(K', d')`` with about the same ratio ``K / d`` and ``K' <= max_classes``.

    ``(K, d)`` itself when ``K <= max_classes``; otherwise ``d' = max(2, floor(max_classes d / K))``
    and ``K' = min(max_classes, max(d' + 1, round(d' K / d)))`` (the ratio is only approximate
    when ``K / d > max_classes / 2``).

    Example:
        >>> reduced_shape(49152, 576, 512), reduced_shape(100, 10, 512)
        ((512, 6), (100, 10))
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    cap = check_int("max_classes", max_classes, minimum=3)
    if cap >= K:
        return K, d
    ratio = K / d
    d_red = max(2, min(d, math.floor(cap / ratio)))
    K_red = min(cap, max(d_red + 1, round(d_red * ratio)))
    return int(K_red), int(d_red)


def random_rho(
    num_classes: int,
    feature_dim: int,
    *,
    seed: int = 0,
    max_memory_mib: float = 1024.0,
    tol: float = 1e-9,
    progress: bool = False,
) -> tuple[float, bool, float]:
    """Exact ``rho`` of ``K`` uniformly random unit rows in ``R^d`` (normalized Gaussians).

    Returns:
        ``(rho, certified, seconds)``.

    Example:
        >>> rho, certified, _ = random_rho(6, 2, seed=0)
        >>> 0.0 < rho <= 1.0 - math.cos(2 * math.pi / 6) + 1e-12, certified
        (True, True)
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    gen = torch.Generator().manual_seed(int(seed))
    W = torch.randn(K, d, generator=gen, dtype=torch.float64)
    res = min_one_vs_rest_distance(W, max_memory_mib=max_memory_mib, tol=tol, progress=progress)
    return float(res.rho), bool(res.certified), float(res.seconds)


def random_rho_bracket(
    num_classes: int,
    feature_dim: int,
    *,
    num_solved: int = 256,
    seed: int = 0,
    max_memory_mib: float = 1024.0,
    tol: float = 1e-9,
    progress: bool = False,
) -> tuple[float, float, float]:
    """Certified bracket ``[lower, upper]`` on ``rho`` of ``K`` random unit rows, for large ``K``.

    Solves exactly only the ``num_solved`` classes with the smallest lower bounds
    ``1 - s_k``: ``upper`` is the least ``D_k`` among them, ``lower`` the least of their dual
    bounds and the next unsolved ``1 - s_k`` (the rows are the same as :func:`random_rho`'s).

    Returns:
        ``(lower, upper, seconds)``.

    Example:
        >>> lower, upper, _ = random_rho_bracket(50, 3, num_solved=50)
        >>> exact, _, _ = random_rho(50, 3)
        >>> abs(upper - exact) < 1e-9, upper - lower < 1e-9
        (True, True)
    """
    start = time.perf_counter()
    K = check_int("num_classes", num_classes, minimum=3)
    d = check_int("feature_dim", feature_dim, minimum=1)
    m = min(K, check_int("num_solved", num_solved, minimum=1))
    gen = torch.Generator().manual_seed(int(seed))
    W = torch.randn(K, d, generator=gen, dtype=torch.float64)
    W = W / W.norm(dim=1, keepdim=True)
    lb = 1.0 - max_cosines(W, max_memory_mib=max_memory_mib)[0]
    order = torch.argsort(lb)
    res = one_vs_rest_distances(
        W, classes=order[:m], max_memory_mib=max_memory_mib, tol=tol, progress=progress
    )
    upper = float(res.rho)
    lower = float(res.lower_bounds.min())
    if m < K:
        lower = min(lower, max(0.0, float(lb[order[m]])))
    return min(lower, upper), upper, time.perf_counter() - start


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
    dev = torch.device(device)
    n = min(K, 4096)
    m = min(K, 512)
    A = torch.randn(m, d, dtype=torch.float64, device=dev)
    B = torch.randn(n, d, dtype=torch.float64, device=dev)
    (A @ B.T).sum().item()  # warm-up
    t0 = time.perf_counter()
    (A @ B.T).sum().item()
    rate = 2.0 * m * n * d / max(time.perf_counter() - t0, 1e-6)
    return PASSES_PER_ALL_CLASSES * 2.0 * K * K * d / rate


def _upper_bound(K: int, d: int) -> tuple[float | None, str | None]:
    try:
        from gnc.geometry.bounds import rho_upper_bound
    except ImportError:
        return None, "upper bound unavailable (gnc.geometry.bounds not installed)"
    return float(rho_upper_bound(K, d)), None


def _code_value(
    K: int, d: int, time_limit: float, progress: bool = False
) -> tuple[float | None, str | None]:
    try:
        from gnc.codes import softmax_code
    except ImportError:
        return None, "softmax code unavailable (gnc.codes.softmax_code not importable)"
    result = softmax_code(K, d, time_limit=time_limit, progress=progress)
    return float(result.rho), None


def reference_values(
    num_classes: int,
    feature_dim: int,
    *,
    random_baseline: bool = True,
    code_baseline: bool = False,
    seed: int = 0,
    max_memory_mib: float = 1024.0,
    tol: float = 1e-9,
    code_time_limit: float = 60.0,
    random_exact_max_classes: int = 4096,
    random_solved_classes: int = 256,
    progress: bool = False,
) -> ReferenceValues:
    """Upper bound, random value and (optionally) a softmax code's value for ``(K, d)``.

    Args:
        num_classes: ``K``.
        feature_dim: ``d``.
        random_baseline: Compute the exact ``rho`` of random unit rows.
        code_baseline: Run the softmax-code solver (only sensible for small ``K``).
        seed: Seed of the random rows.
        max_memory_mib: Memory budget of the exact solver.
        tol: Certificate tolerance of the exact solver.
        code_time_limit: Seconds given to the code solver.
        random_exact_max_classes: Above this ``K`` the random value is a certified bracket.
        random_solved_classes: Classes solved exactly for the bracket.
        progress: Show tqdm bars of the exact solves on stderr.

    Returns:
        A :class:`ReferenceValues`.
    """
    start = time.perf_counter()
    notes: list[str] = []
    bound, why = _upper_bound(num_classes, feature_dim)
    if why:
        notes.append(why)
    rnd: float | None = None
    rnd_cert: bool | None = None
    rnd_lower: float | None = None
    if random_baseline and num_classes > random_exact_max_classes:
        rnd_lower, rnd, _ = random_rho_bracket(
            num_classes,
            feature_dim,
            num_solved=random_solved_classes,
            seed=seed,
            max_memory_mib=max_memory_mib,
            tol=tol,
            progress=progress,
        )
        rnd_cert = rnd - rnd_lower <= tol
        notes.append(
            f"random rows: certified bracket [{rnd_lower:.6f}, {rnd:.6f}] from the "
            f"{random_solved_classes} classes with the smallest 1 - max cosine"
        )
    elif random_baseline:
        rnd, rnd_cert, _ = random_rho(
            num_classes,
            feature_dim,
            seed=seed,
            max_memory_mib=max_memory_mib,
            tol=tol,
            progress=progress,
        )
        rnd_lower = rnd
    else:
        notes.append("random baseline skipped")
    code: float | None = None
    if code_baseline:
        code, why = _code_value(num_classes, feature_dim, code_time_limit, progress)
        if why:
            notes.append(why)
    return ReferenceValues(
        num_classes=num_classes,
        feature_dim=feature_dim,
        upper_bound=bound,
        random_rho=rnd,
        random_certified=rnd_cert,
        code_rho=code,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
        random_lower=rnd_lower,
    )


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


def _exact_rho(
    head: HeadMatrix, W: torch.Tensor, rows: torch.Tensor | None, config: HeadGeometryConfig
) -> RhoSummary:
    sub = W if rows is None else W[rows]
    res = min_one_vs_rest_distance(
        sub, max_memory_mib=config.max_memory_mib, tol=config.tol, progress=config.progress
    )
    arg = res.argmin if rows is None else int(rows[res.argmin])
    return RhoSummary(
        rho=float(res.rho),
        lower_bound=float(res.lower_bound),
        upper_bound=float(res.upper_bound),
        gap=float(res.gap),
        certified=bool(res.certified),
        argmin=arg,
        label=head.decode(arg),
        classes_solved=int(res.classes_solved),
        num_classes=int(sub.shape[0]),
        seconds=float(res.seconds),
        method="exact (min_one_vs_rest_distance)",
    )


def _raw_distances(
    head: HeadMatrix, classes: torch.Tensor, cfg: HeadGeometryConfig
) -> torch.Tensor:
    """Raw ``D_k`` (no normalization) of ``classes`` among the exactly distinct raw rows.

    A row equal to another has raw ``D_k = 0``.
    """
    W = head.weights.to(torch.float64)
    K = W.shape[0]
    _, inverse = torch.unique(W.cpu(), dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), K, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(K), reduce="amin")
    twin = first[inverse]
    counts = torch.bincount(inverse)
    keep = (twin == torch.arange(K)).nonzero(as_tuple=True)[0]
    local = torch.full((K,), -1, dtype=torch.long)
    local[keep] = torch.arange(keep.numel())
    out = torch.zeros(classes.numel(), dtype=torch.float64)
    alone = counts[inverse[classes]] == 1
    if keep.numel() >= 2 and bool(alone.any()):
        res = one_vs_rest_distances(
            W[keep.to(W.device)],
            normalize=False,
            classes=local[classes[alone]].to(W.device),
            max_memory_mib=cfg.max_memory_mib,
            tol=cfg.tol * max(1.0, float(W.norm(dim=1).max())),
            progress=cfg.progress,
        )
        out[alone] = res.distances.cpu()
    return out


def analyze_head_geometry(
    head: HeadMatrix, config: HeadGeometryConfig | None = None
) -> HeadGeometry:
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
        >>> head = HeadMatrix(octagon, None, "octagon")
        >>> config = HeadGeometryConfig(code_baseline=False, random_baseline="off")
        >>> geo = analyze_head_geometry(head, config)
        >>> round(geo.rho_all.rho, 9), geo.rho_all.certified, geo.rho_distinct is None
        (0.292893219, True, True)
    """
    cfg = config if config is not None else HeadGeometryConfig()
    start = time.perf_counter()
    W = check_matrix("weights", head.weights, min_rows=3, nonzero_rows=True).to(torch.float64)
    W = W / W.norm(dim=1, keepdim=True)
    K, d = W.shape
    dup = duplicate_groups(W, tolerance=cfg.duplicate_tolerance, max_memory_mib=cfg.max_memory_mib)
    if dup.num_merged == 0:
        rho_all = _exact_rho(head, W, None, cfg)
        rho_distinct = None
    else:
        # Coinciding rows: D_k <= |w_k - w_j| for the nearest row j; 0 is the lower bound.
        t0 = time.perf_counter()
        arg = int(dup.nearest_distance.argmin())
        ub = float(dup.nearest_distance[arg])
        rho_all = RhoSummary(
            rho=ub,
            lower_bound=0.0,
            upper_bound=ub,
            gap=ub,
            certified=ub <= cfg.tol,
            argmin=arg,
            label=head.decode(arg),
            classes_solved=0,
            num_classes=K,
            seconds=time.perf_counter() - t0,
            method="coinciding rows: [0, nearest-row distance]",
        )
        rho_distinct = _exact_rho(head, W, dup.distinct, cfg)
    # Examples of the largest duplicate groups.
    rep = dup.representative.cpu()
    counts = torch.bincount(rep, minlength=K)
    examples: list[tuple[str, ...]] = []
    for root in torch.argsort(counts, descending=True, stable=True)[:5].tolist():
        if counts[root] < 2:
            break
        members = (rep == root).nonzero(as_tuple=True)[0][:8].tolist()
        examples.append(tuple(head.decode(i) for i in members))
    # Exact D_k on all distinct directions when they fit the time budget, else on a sample.
    distinct = dup.distinct.cpu()
    gen = torch.Generator().manual_seed(cfg.seed)
    estimate: float | None = None
    if cfg.sample_classes is None:
        estimate = estimate_all_classes_seconds(distinct.numel(), d, W.device)
        if estimate <= cfg.time_budget:
            n_sample = distinct.numel()
            reason = f"all classes (estimated {estimate:.0f} s <= budget {cfg.time_budget:.0f} s)"
        else:
            n_sample = min(distinct.numel(), cfg.fallback_sample_classes)
            reason = (
                f"random sample of {n_sample}: all classes estimated at {estimate:.0f} s > "
                f"budget {cfg.time_budget:.0f} s"
            )
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
    else:
        pick = torch.randperm(distinct.numel(), generator=gen)[:n_sample].sort()[0]
        if sample_is_all:
            pick = torch.arange(distinct.numel())
        sub = W if dup.num_merged == 0 else W[distinct.to(W.device)]
        ovr = one_vs_rest_distances(
            sub,
            classes=pick.to(W.device),
            max_memory_mib=cfg.max_memory_mib,
            tol=cfg.tol,
            progress=cfg.progress,
        )
        classes = distinct[pick]
        dists, sample_cert, sample_seconds = ovr.distances.cpu(), ovr.certified, ovr.seconds
        if cfg.raw_distances:
            raw_dists = _raw_distances(head, classes, cfg)
    argmax_res = None
    if cfg.argmax:
        argmax_res = argmaxable(
            head.weights,
            head.bias,
            max_memory_mib=cfg.max_memory_mib,
            progress=cfg.progress,
        )
    # Reference values at (K, d) and at a reduced (K', d') with the same K / d.
    reference = reference_values(
        K,
        d,
        random_baseline=cfg.random_baseline == "full",
        code_baseline=cfg.code_baseline and cfg.code_max_classes >= K,
        seed=cfg.seed,
        max_memory_mib=cfg.max_memory_mib,
        tol=cfg.tol,
        code_time_limit=cfg.code_time_limit,
        random_exact_max_classes=cfg.random_exact_max_classes,
        random_solved_classes=cfg.random_solved_classes,
        progress=cfg.progress,
    )
    reduced = None
    K_red, d_red = reduced_shape(K, d, cfg.code_max_classes)
    if (K_red, d_red) != (K, d) and (cfg.code_baseline or cfg.random_baseline != "off"):
        reduced = reference_values(
            K_red,
            d_red,
            random_baseline=cfg.random_baseline != "off",
            code_baseline=cfg.code_baseline,
            seed=cfg.seed,
            max_memory_mib=cfg.max_memory_mib,
            tol=cfg.tol,
            code_time_limit=cfg.code_time_limit,
            progress=cfg.progress,
        )
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
        argmax=argmax_res,
    )
