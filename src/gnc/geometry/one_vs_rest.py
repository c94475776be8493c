"""Exact one-vs-rest distances with certificates.

For rows ``w_1..w_K`` the one-vs-rest distance of class ``k`` is

    D_k = min_{v in conv{w_j : j != k}} |w_k - v|,

the distance from ``w_k`` to the convex hull of the other rows (Jiang et al., *Generalized Neural
Collapse for a Large Number of Classes*, ICML 2024). With ``y_j = w_j - w_k`` this is the norm of
the min-norm point ``x`` of ``conv{y_j}``; the nearest hull point is ``p_k = w_k + x`` and the
max-margin direction is ``h_k = -x / |x|``.

**Method.** Wolfe's min-norm-point algorithm (an exact active-set method), run in lockstep on a
batch of classes. One tiled float32 pass over ``W P W^T`` gives every class a *working set*: the
rows most violating the whitened direction ``P (w_k - mu)`` (``mu`` and ``P`` from the rows' mean
and ridge-regularized covariance; the nearest rows when the rows are isotropic). The solution on the
working set is then checked against all ``K`` rows with one float32 GEMM per batch of classes
(tiled, never a ``K x K`` matrix): ``x`` is optimal over the whole hull iff ``<y_j, x> >= |x|^2``
for every ``j``. The float32 products are decided under the rigorous bound ``|fl(<a, b>) - <a, b>|
<= gamma_{d+2} |a| |b|``; the few entries it does not decide (the support and its near-ties) are
recomputed in float64. Violators join the working set and only those classes are re-solved,
warm-started, until none is left.

**Certificate.** For the returned hull point, ``|x|`` is a primal upper bound on ``D_k`` and
``max(0, min_{j != k} <y_j, x> / |x|) = max(0, min_{j != k} <w_k - w_j, h_k>)`` is a dual lower
bound (a feasible margin direction), evaluated against all rows (float64 wherever the float32
bound does not already place an entry above ``|x|^2``). Their difference is the reported gap.

**Sharding.** With ``distributed=True`` (or a ``process_group``) the classes are split across the
ranks of a ``torch.distributed`` group, ``W`` is replicated, and the results are all-gathered, so
every rank (rank 0 in particular) returns the full record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from gnc._checks import check_int
from gnc._runtime import resolve_budget, rows_per_budget
from gnc.geometry._dual_bounds import NEIGHBOURS, search_rho
from gnc.geometry._screening import exact_max_pass
from gnc.geometry._solve import (
    _all_gather_rows,
    _class_bar,
    _group,
    _prepare,
    _solve_sharded,
)
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
            its seed pass, each round's solves (default: ``gnc._runtime`` working memory,
            1024 unless set). Beyond the tiles the call holds ``W`` in float64 (a copy when
            ``normalize`` or when the input is not float64), ``W`` in float32 and the result.
        working_set_size: Initial working set per class (default
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
    rounding bound cannot rule out is recomputed in float64, and where those are dense (codes in
    which every class ties with thousands of neighbours) the rows are recomputed as float64 GEMM
    tiles instead; the same pass keeps the 96 nearest rows of the classes that may need them (when
    they fit a quarter of the budget; else they are found per chunk). Classes are then taken in
    increasing order of that bound: the first is solved exactly; the later chunks get certified
    dual bounds ``(<w_k, h> - max_{j != k} <w_j, h>) / |h|`` from approximate min-norm points of
    small working sets (their nearest rows, then the rows most violating the first direction)
    and one float32 GEMM ``h W^T`` per block of classes, and only the classes whose dual bound
    is below the best distance found (less ``tol``) are solved exactly, the most promising first
    (where the dual bounds settle too little of an evenly spaced probe of a chunk, as in a tight
    cluster of near-duplicate rows, the rest of it goes to the exact solves without them); an
    exact solve stops as soon as its certified bound reaches the best distance. The search stops
    as soon as the next first bound is at least the best distance found (less ``tol``).

    Args:
        weights: ``(K, d)`` classifier rows.
        normalize: Normalize rows first.
        max_memory_mib: Memory budget (MiB) of every tile (default: the working memory).
        working_set_size: Initial working-set size (see :func:`one_vs_rest_distances`).
        tol: Gap tolerance for ``certified``.
        chunk_size: Classes bounded per batch after the first class (quadruples as the search
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
        nb = exact_max_pass(
            W,
            W32,
            parts[rank],
            max_memory_mib=max_memory_mib,
            # Kept when they fit a quarter of the budget (int32), else found per chunk.
            num_neighbours=NEIGHBOURS if max_memory_mib * 2**18 >= 4 * NEIGHBOURS * K else 0,
            unit_rows=normalize,
            bar=bar,
        )
    s, arg, nbrs = nb.max_inner, nb.argmax, nb.neighbours
    if world > 1:
        counts = [p.numel() for p in parts]
        s = _all_gather_rows(s, counts, group)
        arg = _all_gather_rows(arg, counts, group)
        nbrs = None if nbrs is None else _all_gather_rows(nbrs, counts, group)
    # s is exact up to float64 rounding of a d-term dot product: allow for it.
    slack = 2 * d * _EPS * norms * norms.max()
    lb = (norms - (s + slack) / norms).clamp_min(0.0)
    ub = torch.empty(K, dtype=W.dtype, device=W.device)
    for a, b in iter_blocks(K, rows_per_budget(3 * d * 8, max_memory_mib, num_rows=K)):
        ub[a:b] = (W[a:b] - W[arg[a:b]]).norm(dim=1)
    with _class_bar(K, f"rho search K={K}", progress and rank == 0) as bar:
        found = search_rho(
            W,
            W32,
            lb,
            ub,
            neighbours=nbrs,
            working_set_size=m0,
            unit_rows=normalize,
            tol=tol,
            max_memory_mib=max_memory_mib,
            chunk_size=chunk_size,
            group=group,
            rank=rank,
            world=world,
            bar=bar,
        )
    gap = found.rho - found.lower
    return MinDistanceResult(
        rho=found.rho,
        argmin=found.argmin,
        lower=found.lower,
        upper=found.rho,
        gap=gap,
        certified=gap <= tol,
        classes_solved=found.classes_solved,
        num_classes=K,
        seconds=time.perf_counter() - start,
        tol=tol,
        world_size=world,
        max_inner=float(s.max()),
    )
