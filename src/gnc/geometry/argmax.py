"""Which classes of a linear head can ever be the argmax? Exact, with a certificate either way.

(About 670 lines, kept as one idea, the argmax decision for every row: its record, the shared
screen, the exact solves and the LP path with a bias, which share their tolerances and
certificates, and the reuse of LP bases; the boundary refinement is in
:mod:`gnc.geometry._boundary`.)

A head with raw rows ``w_1..w_K`` (no normalization) and optional bias ``b`` predicts
``argmax_j <w_j, h> + b_j``. Class ``k`` is *argmaxable* iff some hidden state ``h`` gives

    <w_k - w_j, h> + b_k - b_j > 0   for every j != k.

Without a bias this fails iff ``w_k`` lies in the convex hull of the other rows (Grivas, Bogoychev
and Lopez, "Low-Rank Softmax Can Have Unargmaxable Classes in Theory but Rarely in Practice",
ACL 2022); with a bias, by Farkas' lemma, iff some convex combination ``sum_j lam_j w_j = w_k``
has ``sum_j lam_j b_j >= b_k``. Without a bias the best margin per unit ``|h|`` is exactly the raw
one-vs-rest distance ``D_k = dist(w_k, conv{w_j : j != k})`` of Jiang et al. (ICML 2024).

**Certificates.** Argmaxable: a hidden state ``h`` and a lower bound on its margin
``min_j <w_k - w_j, h> + b_k - b_j`` that already subtracts a rigorous bound on the rounding of
the float32 or float64 arithmetic that evaluated it. Not argmaxable: the convex weights ``lam``
with the residual ``|w_k - sum_j lam_j w_j|`` (float64) and the bias excess
``sum_j lam_j b_j - b_k``; for any ``h`` the margin of ``k`` is then at most
``residual * |h| - excess``.

**Method.** Rows that coincide exactly with another (bias included) are set apart first: they can
tie for the maximum but never win it strictly. On the distinct rows one tiled float32 pass of
``W W^T`` screens every class with ``h = alpha_k (w_k - c)``, ``c`` the mean row (margins do not
change under translation, and centring exposes the rows that a large common component of the
head hides from ``h = w_k``; ``alpha_k`` large enough to beat the
bias): it needs only ``s_k = max_{j != k} <w_j, w_k>``, which the pass makes exact in float64 by
recomputing the few entries that the rounding bound ``|fl(<a, b>) - <a, b>| <= gamma_{d+2} |a| |b|``
cannot rule out (the GEMM dominates; no float64 work on whole tiles). The class with the strictly
largest bias is screened with ``h = 0``. Only the undecided rest is solved exactly:
without a bias by the one-vs-rest engine on the raw rows (its direction ``h_k`` or its hull
point), with a bias by the engine's direction lifted over the bias deficit where the raw row is
clearly off the hull of the others (3 working-set rounds, then to the end), else by a linear
program (HiGHS through ``scipy.optimize.linprog``, cutting planes over working sets of rows
checked against all rows) whose dual gives the convex combination. Every full LP basis
(``d + 1`` rows) is kept and tried first on the next rows by one LU solve: a group of
near-coinciding rows inside the hull (PP-OCRv6's 3,300 never-trained characters) shares one basis
instead of one LP each.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from gnc._checks import check_matrix, check_positive
from gnc._runtime import resolve_budget, rows_per_budget
from gnc.geometry._boundary import inside_from_support, inside_level, refine_row, residual_bound
from gnc.geometry._coinciding import first_equal_rows
from gnc.geometry._row_maxima import RowMaxima, row_bar, row_maxima
from gnc.geometry._screening import gamma
from gnc.geometry.one_vs_rest import one_vs_rest_distances
from gnc.geometry.pairwise import iter_blocks
from gnc.io import Record, record_to_dict, to_jsonable

__all__ = [
    "ARGMAXABLE",
    "COINCIDING",
    "INSIDE_HULL",
    "UNDECIDED",
    "ArgmaxResult",
    "argmaxable",
    "coinciding_rows",
    "screen_center",
]

#: Status codes of :attr:`ArgmaxResult.status`.
ARGMAXABLE, INSIDE_HULL, COINCIDING, UNDECIDED = 1, 0, 2, -1

_U64 = 2.0**-53
#: Working-set rounds of the raw engine before a bias head's rows go to the LP.
_BIAS_ROUNDS = 3
#: Raw distance (relative to the largest row) under which a bias head's row skips the full solve.
_NEAR_HULL = 1e-6


@dataclass(frozen=True)
class ArgmaxResult(Record):
    """Argmaxability of every class of a head, with certificates.

    Per-class tensors have length ``K`` and hold NaN where a value was not computed (``None`` in
    :meth:`to_dict`).

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        has_bias: Whether a bias took part.
        status: ``(K,)`` int8: ``ARGMAXABLE`` (1), ``INSIDE_HULL`` (0, never the argmax),
            ``COINCIDING`` (2, equals another row and bias exactly: ties, never wins strictly)
            or ``UNDECIDED`` (-1, on the hull boundary within the tolerance).
        twin: ``(K,)`` long, the lowest index of the row each row coincides with (itself if none).
        margins: ``(K,)`` float64 certified lower bound on the margin of the certificate state
            of each argmaxable class.
        scales: ``(K,)`` float64 ``alpha_k`` where the certificate state is
            ``h = alpha_k (w_k - center)`` (0 for ``h = 0``), NaN where it is a solved state (see
            ``solved_states``).
        center: ``(d,)`` float64 centre of the screen's states (the mean of the distinct rows).
        solved_classes: ``(M,)`` classes whose certificate state came from an exact solve.
        solved_states: ``(M, d)`` float64 those hidden states.
        inside: ``(U,)`` the classes inside the hull (``status == INSIDE_HULL``).
        support: ``(U, s)`` row indices of their convex combinations, ``-1`` padded.
        support_weights: ``(U, s)`` the convex weights (0 on padding).
        residuals: ``(U,)`` float64 ``|w_k - sum_j lam_j w_j|`` evaluated in float64.
        bias_excess: ``(U,)`` float64 ``sum_j lam_j b_j - b_k`` (0 without a bias).
        raw_distances: ``(K,)`` float64 raw ``D_k`` (no bias) of the classes solved to the end
            (those that one working-set round did not already certify).
        refined: ``(R,)`` classes (no bias) that the solve left on the hull boundary within its
            resolution, decided in the frame of their own row
            (:func:`gnc.geometry._boundary.refine_row`): their status says which certificate
            each got (a margin, or a convex combination whose rigorous residual bound is at the
            float64 rounding level of the rows, in ``residuals``); still ``UNDECIDED`` if neither.
        num_screened: Classes decided by the screen.
        num_solved: Classes sent to the exact solver.
        tol: The solves' tolerance (relative to the largest row norm; see :func:`argmaxable`).
        certified: Whether every class was decided with a certificate (none ``UNDECIDED``).
        seconds: Wall time.
    """

    _omit_from_dict: ClassVar[tuple[str, ...]] = (
        "solved_states",
        "support",
        "support_weights",
        "center",
    )

    num_classes: int
    feature_dim: int
    has_bias: bool
    status: torch.Tensor
    twin: torch.Tensor
    margins: torch.Tensor
    scales: torch.Tensor
    center: torch.Tensor
    solved_classes: torch.Tensor
    solved_states: torch.Tensor
    inside: torch.Tensor
    support: torch.Tensor
    support_weights: torch.Tensor
    residuals: torch.Tensor
    bias_excess: torch.Tensor
    raw_distances: torch.Tensor
    refined: torch.Tensor
    num_screened: int
    num_solved: int
    tol: float
    certified: bool
    seconds: float

    @property
    def unargmaxable(self) -> torch.Tensor:
        """Indices of the classes strictly inside (or on) the hull: never the argmax."""
        return (self.status == INSIDE_HULL).nonzero(as_tuple=True)[0]

    @property
    def coinciding(self) -> torch.Tensor:
        """Indices of the rows equal to another row (and bias): they can only tie."""
        return (self.status == COINCIDING).nonzero(as_tuple=True)[0]

    @property
    def undecided(self) -> torch.Tensor:
        """Indices left undecided (boundary cases within the tolerance)."""
        return (self.status == UNDECIDED).nonzero(as_tuple=True)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields and the index lists ``unargmaxable``, ``coinciding``, ``undecided``.

        ``(K,)`` and ``(U,)`` tensors become lists (NaN becomes ``None``); the ``(M, d)`` solved
        states and the ``(U, s)`` supports and their weights are left out (use the tensors).
        """
        out = record_to_dict(self, omit=self._omit_from_dict)
        for name in ("unargmaxable", "coinciding", "undecided"):
            out[name] = to_jsonable(getattr(self, name))
        return out

    def hidden_state(self, weights: torch.Tensor, k: int) -> torch.Tensor | None:
        """The certificate hidden state of argmaxable class ``k`` (``None`` otherwise)."""
        if int(self.status[k]) != ARGMAXABLE:
            return None
        scale = float(self.scales[k])
        if scale == scale:  # not NaN: h = alpha_k (w_k - center)
            return scale * (weights[k].to(torch.float64) - self.center)
        pos = (self.solved_classes == k).nonzero(as_tuple=True)[0]
        return self.solved_states[int(pos[0])]


def coinciding_rows(W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``twin[k]`` = lowest index of a row equal to row ``k`` (bias included), by value.

    Exact, in O(K) memory beyond one block of rows (:mod:`gnc.geometry._coinciding`: 64-bit keys
    of the rows' bits, then exact comparisons of the rows that share a key).

    Example:
        >>> coinciding_rows(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), None).tolist()
        [0, 1, 0]
    """
    return first_equal_rows(W, b)


def screen_center(weights: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The centre of the argmax screen: the float64 mean of ``weights[rows]`` (the distinct rows).

    Example:
        >>> screen_center(torch.tensor([[1.0, 0.0], [3.0, 2.0], [1.0, 0.0]]), torch.tensor([0, 1]))
        tensor([2., 1.], dtype=torch.float64)
    """
    return weights[rows].to(torch.float64).mean(dim=0)


def _screen(
    U: torch.Tensor, b: torch.Tensor | None, s: torch.Tensor, center: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified margins of ``h = alpha_k (u_k - c)`` on distinct rows ``U``: ``(margins, alpha)``.

    The margins ``<u_k - u_j, h> + b_k - b_j`` do not change when every row moves by ``-c``, so
    the screen works on the centred rows (written ``u`` below; real heads share a large common
    component, which hides most rows from ``h = u_k`` uncentred). With
    ``a_j = |u_k|^2 - <u_j, u_k>`` and ``A_k = min_{j != k} a_j``: if ``A_k > 0``, ``h = u_k``
    (``alpha = 1``) has margin ``>= A_k`` when no other bias exceeds ``b_k``; otherwise, with the
    bias deficit ``delta_k = max_{j != k} b_j - b_k > 0``, ``alpha = 2 delta_k / A_k`` gives
    ``alpha a_j + b_k - b_j >= 2 delta_k - delta_k = delta_k``. ``s`` holds the exact (float64)
    ``s_k = max_{j != k} <u_j, u_k>`` of one float32 pass
    (:func:`~gnc.geometry._row_maxima.row_maxima`); ``A_k`` is ``|u_k|^2 - s_k`` less the float64
    rounding of both and of the centring ``u - c`` itself.
    """
    K, d = U.shape
    dev = U.device
    V = U - center
    norms = V.norm(dim=1)
    g64 = gamma(d + 2, _U64) + 3 * _U64
    A = (V * V).sum(dim=1) * (1.0 - g64) - s - g64 * norms * float(norms.max())
    del V
    ok = A > 0
    alpha = torch.ones(K, dtype=torch.float64, device=dev)
    margin = A.clone()
    if b is not None:
        top = torch.topk(b, 2)
        deficit = torch.where(
            torch.arange(K, device=dev) == top.indices[0], top.values[1], top.values[0]
        )
        deficit = deficit - b
        lift = deficit > 0
        alpha = torch.where(lift, 2.0 * deficit / A, alpha)
        margin = torch.where(lift, deficit, margin)
    margin = torch.where(ok, margin * (1.0 - 1e-12), torch.nan)
    alpha = torch.where(ok, alpha, torch.nan)
    return margin, alpha


def _verified_margins(
    U: torch.Tensor,
    b: torch.Tensor | None,
    cls: torch.Tensor,
    H: torch.Tensor,
    max_memory_mib: float,
) -> torch.Tensor:
    """Certified lower bounds of ``min_{j != k} <u_k - u_j, h> + b_k - b_j`` in float64.

    Tiled over the states: one ``(rows, K)`` block of logits within ``max_memory_mib``.
    """
    K, d = U.shape
    norms = U.norm(dim=1)
    hn = H.norm(dim=1)
    bmax = 0.0 if b is None else float(b.abs().max())
    err = gamma(d + 4, _U64) * (2.0 * hn * float(norms.max()) + 2.0 * bmax) * 2.0
    out = torch.empty(cls.numel(), dtype=torch.float64, device=U.device)
    step = rows_per_budget(3 * 8 * K, max_memory_mib, num_rows=cls.numel())
    for a, c in iter_blocks(cls.numel(), step):
        P = H[a:c] @ U.T  # (rows, K)
        m = P.gather(1, cls[a:c, None]) - P
        if b is not None:
            m += b[cls[a:c], None] - b[None, :]
        m[torch.arange(c - a, device=U.device), cls[a:c]] = torch.inf
        out[a:c] = m.min(dim=1).values - err[a:c]
        del P, m
    return out


def _lp(
    U: np.ndarray, b: np.ndarray, k: int, *, working_set: int = 256, max_rounds: int = 50
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """``max t : <u_j - u_k, h> + t <= b_k - b_j, t <= 1`` by cutting planes.

    The LP is solved on a working set of rows (those with the largest ``<u_j, u_k> + b_j``),
    its solution checked against all rows, the most violated rows added, until none is left.
    Returns ``(h, None, rows)`` if ``t* > 0`` on all rows, ``(None, lam, rows)`` with the convex
    weights of the dual over the working set ``rows`` if ``t* <= 0`` (a combination of real rows:
    a certificate for all rows), or ``(None, None, rows)`` if the solver failed.
    """
    from scipy.optimize import linprog

    K, d = U.shape
    score = U @ U[k] + b
    score[k] = -np.inf
    m = min(K - 1, working_set)
    rows = np.argpartition(-score, m - 1)[:m]
    cost = np.zeros(d + 1)
    cost[-1] = -1.0
    bounds = [(None, None)] * d + [(None, 1.0)]
    for _ in range(max_rounds):
        A = np.hstack([U[rows] - U[k], np.ones((rows.size, 1))])
        res = linprog(cost, A_ub=A, b_ub=b[k] - b[rows], bounds=bounds, method="highs")
        if res.status != 0:
            return None, None, rows
        if -res.fun <= 0:
            lam = np.clip(-np.asarray(res.ineqlin.marginals), 0.0, None)
            total = lam.sum()
            return None, (lam / total if total > 0 else None), rows
        h = np.asarray(res.x[:d])
        margin = (U[k] - U) @ h + (b[k] - b)
        margin[k] = np.inf
        bad = np.flatnonzero(margin <= 0)
        if bad.size == 0:
            return h, None, rows
        add = bad[np.argsort(margin[bad])[:64]]
        rows = np.union1d(rows, add)
    return None, None, rows


def _from_bases(
    U: np.ndarray, b: np.ndarray, k: int, bases: list[tuple[np.ndarray, Any]], *, tries: int = 512
) -> tuple[np.ndarray, np.ndarray] | None:
    """An inside certificate of row ``k`` from a basis of an earlier LP, without an LP.

    Each basis is ``d + 1`` rows ``S`` with the LU factors of ``[U_S^T; 1]``: if the solution of
    ``sum lam_j u_j = u_k, sum lam_j = 1`` on ``S`` is ``>= 0`` with ``sum lam_j b_j >= b_k``,
    it is a convex combination with a bias excess (re-checked in float64 by the caller). Rows near
    each other (a group of near-coinciding rows) share their basis, so one LP decides them all.
    """
    from scipy.linalg import lu_solve

    rhs = np.append(U[k], 1.0)
    for rows, lu in bases[-tries:][::-1]:
        if bool((rows == k).any()):
            continue
        lam = lu_solve(lu, rhs, check_finite=False)
        if (
            bool(np.isfinite(lam).all())
            and float(lam.min()) >= 0.0
            and float(lam @ b[rows]) >= b[k]
        ):
            return rows, lam
    return None


def argmaxable(
    weights: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    max_memory_mib: float | None = None,
    tol: float = 1e-9,
    progress: bool = False,
    maxima: RowMaxima | None = None,
) -> ArgmaxResult:
    """Decide for every class whether some hidden state makes it the argmax (exact, certified).

    Args:
        weights: ``(K, d)`` raw classifier rows (not normalized), ``K >= 2``.
        bias: ``(K,)`` bias or ``None``.
        max_memory_mib: Memory budget (MiB) of every tile (default: the working memory).
        tol: Tolerance of the solves (relative to ``max_k |w_k|``). With a bias, a class is
            inside when the LP's convex combination has residual at most ``tol * max_k |w_k|``
            and bias excess at least ``-tol * max |b|``; without one, the classes the solve
            leaves within ``tol`` of the hull are decided by
            :func:`gnc.geometry._boundary.refine_row` (a certified margin, or a residual bound at
            the float64 rounding level).
        progress: Show a tqdm bar of the exact solves on stderr.
        maxima: The screening pass when the caller already ran it (shared with other analyses
            of the same head): :func:`gnc.geometry._row_maxima.row_maxima` of ``weights`` as
            float64 over all rows with ``raw_columns = coinciding_rows(weights, bias) ==
            arange(K)`` and ``center = screen_center(weights, raw_columns.nonzero())``; run here
            otherwise.

    Returns:
        An :class:`ArgmaxResult`.

    Raises:
        ValueError: On a non-finite or non-2-D matrix, fewer than two rows, or a bias of the
            wrong shape.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.1, 0.1], [0.0, 1.0]])
        >>> res = argmaxable(W)
        >>> res.status.tolist(), res.unargmaxable.tolist(), res.coinciding.tolist()
        ([1, 2, 1, 0, 2], [3], [1, 4])
        >>> argmaxable(W, torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0])).status.tolist()
        [1, 2, 1, 1, 2]
    """
    start = time.perf_counter()
    W = check_matrix("weights", weights, min_rows=2).to(torch.float64)
    K, d = W.shape
    dev = W.device
    b: torch.Tensor | None = None
    if bias is not None:
        b = torch.as_tensor(bias).to(device=dev, dtype=torch.float64)
        if b.shape != (K,) or not bool(torch.isfinite(b).all()):
            raise ValueError(
                f"Expected `bias` of shape ({K},) with finite values to match `weights` "
                f"{tuple(W.shape)}, but got shape {tuple(b.shape)}."
            )
    tol = check_positive("tol", tol)
    max_memory_mib = resolve_budget(max_memory_mib)
    status = torch.full((K,), UNDECIDED, dtype=torch.int8, device=dev)
    margins = torch.full((K,), torch.nan, dtype=torch.float64, device=dev)
    scales = torch.full((K,), torch.nan, dtype=torch.float64, device=dev)
    raw = torch.full((K,), torch.nan, dtype=torch.float64, device=dev)
    twin = coinciding_rows(W, b)
    ar = torch.arange(K, device=dev)
    center = screen_center(W, (twin == ar).nonzero(as_tuple=True)[0])
    if maxima is not None and (
        maxima.rows.numel() != K
        or maxima.raw_columns is None
        or not torch.equal(maxima.raw_columns, twin == ar)
        or maxima.center is None
        or not torch.equal(maxima.center, center)
    ):
        raise ValueError(
            f"Expected `maxima` of all {K} rows with raw_columns = the rows that coincide with no "
            "earlier row (bias included) and center = screen_center of those rows, but got a "
            "pass over other rows, columns or centre."
        )
    status[twin != ar] = COINCIDING
    status[twin[twin != ar]] = COINCIDING
    distinct = (twin == ar).nonzero(as_tuple=True)[0]
    U = W if distinct.numel() == K else W[distinct]  # no copy when every row is distinct
    bu = None if b is None else b[distinct]
    n = U.shape[0]
    empty_i = torch.empty(0, dtype=torch.long, device=dev)
    empty_f = torch.empty(0, dtype=torch.float64, device=dev)
    refined_idx = empty_i
    solved_cls, solved_h = empty_i, torch.empty(0, d, dtype=torch.float64, device=dev)
    # The convex-combination certificates of rows inside the hull (none unless found below).
    inside_idx, residuals, excess = empty_i, empty_f, empty_f
    support = torch.empty(0, 1, dtype=torch.long, device=dev)
    sweights = torch.empty(0, 1, dtype=torch.float64, device=dev)
    inside_local: list[int] = []
    inside_sup: list[np.ndarray] = []
    inside_w: list[np.ndarray] = []
    num_screened = num_solved = 0
    if n == 1:  # every row is the same: all tie
        status[:] = COINCIDING
    else:
        local = torch.full((n,), UNDECIDED, dtype=torch.int8, device=dev)
        with row_bar(K, f"argmax screen K={K}", progress) as bar:
            if maxima is None:
                maxima = row_maxima(
                    W,
                    raw_columns=twin == ar,
                    center=center,
                    cosines=False,
                    max_memory_mib=max_memory_mib,
                    bar=bar,
                )
            else:
                bar.update(K)
            m, alpha = _screen(U, bu, maxima.max_inner[distinct], center)
        hit = m > 0
        local[hit] = ARGMAXABLE
        if bu is not None:  # h = 0 for the strictly largest bias
            top = torch.topk(bu, 2).values
            k0 = int(bu.argmax())
            if float(top[0] - top[1]) > 0 and not bool(hit[k0]):
                local[k0] = ARGMAXABLE
                m[k0], alpha[k0] = float(top[0] - top[1]), 0.0
        num_screened = int((local == ARGMAXABLE).sum())
        todo = (local == UNDECIDED).nonzero(as_tuple=True)[0]
        num_solved = int(todo.numel())
        scale_max = float(U.norm(dim=1).max())
        level = inside_level(d, scale_max)
        states: list[torch.Tensor] = []
        state_cls: list[int] = []
        lp_todo: list[int] = []
        refined: list[int] = []
        refined_residual: dict[int, float] = {}
        # The raw one-vs-rest engine (no bias): a positive distance gives a direction h_k with
        # margin >= lb_k per unit; with a bias, alpha h_k wins once alpha lb_k exceeds the largest
        # bias deficit max_j b_j - b_k. One working-set round first (its dual bound is checked
        # against all rows, so a positive one is a certificate): most classes are settled there,
        # and only the rest are solved to the end.
        open_cls = todo
        last = 100
        for rounds in (1, last) if bu is None else (1, _BIAS_ROUNDS, last):
            if open_cls.numel() == 0:
                break
            res = one_vs_rest_distances(
                U,
                normalize=False,
                classes=open_cls,
                max_memory_mib=max_memory_mib,
                tol=tol * max(scale_max, 1e-300),
                max_rounds=rounds,
                progress=progress,
            )
            if bu is None and rounds > 1:
                raw[distinct[open_cls]] = res.distances
            pos = res.lower_bounds > 0
            good = torch.zeros_like(pos)
            if bool(pos.any()):
                cand = open_cls[pos]
                H = res.directions[pos]
                if bu is not None:
                    top2 = torch.topk(bu, 2)
                    best_other = torch.where(
                        top2.indices[0] == cand, top2.values[1], top2.values[0]
                    )
                    deficit = (best_other - bu[cand]).clamp_min(0.0)
                    lift = torch.clamp(2.0 * deficit / res.lower_bounds[pos], min=1.0)
                    H = H * lift[:, None]
                mv = _verified_margins(U, bu, cand, H, max_memory_mib)
                good[pos] = mv > 0
                local[cand[mv > 0]] = ARGMAXABLE
                m[cand[mv > 0]] = mv[mv > 0]
                states.extend(H[mv > 0])
                state_cls.extend(cand[mv > 0].tolist())
            if rounds == _BIAS_ROUNDS and bu is not None:
                # Rows within the engine's resolution of the raw hull (a near-coinciding group)
                # go to the LP; only those clearly outside it are worth solving to the end.
                near = res.distances <= _NEAR_HULL * scale_max
                lp_todo.extend(open_cls[near & ~good].tolist())
                open_cls = open_cls[~near & ~good]
                continue
            if rounds == 1:
                open_cls = open_cls[~good]
                continue
            for i in (~good).nonzero(as_tuple=True)[0].tolist():
                if bu is not None:  # inside the raw hull: a bias may still rescue it
                    lp_todo.append(int(open_cls[i]))
                    continue
                # On the hull within the engine's resolution: decide in the frame of w_k.
                # The solve's own combination first (most rows inside the hull: one polish and
                # one residual bound instead of the local solves of refine_row).
                k = int(open_cls[i])
                sup = res.support[i]
                in_sup = sup >= 0
                dec = inside_from_support(
                    U, k, sup[in_sup], res.support_weights[i][in_sup], level
                ) or refine_row(U, k, sup[in_sup])
                refined.append(k)
                if dec.status == "argmaxable":
                    assert dec.state is not None
                    local[k] = ARGMAXABLE
                    m[k] = dec.margin
                    states.append(dec.state)
                    state_cls.append(k)
                elif dec.status == "inside":
                    refined_residual[k] = dec.residual
                    inside_local.append(k)
                    inside_sup.append(dec.support.cpu().numpy())
                    inside_w.append(dec.weights.cpu().numpy())
        if lp_todo:
            assert bu is not None
            from scipy.linalg import lu_factor

            Un, bn = U.cpu().numpy(), bu.cpu().numpy()
            # Near rows one after another, so that they meet each other's bases.
            order = np.argsort(Un[lp_todo] @ Un[lp_todo].mean(axis=0), kind="stable")
            lp_todo = [lp_todo[i] for i in order]
            bar = tqdm(
                lp_todo,
                desc="argmax LP",
                unit="class",
                disable=not progress,
                leave=False,
                file=sys.stderr,
            )
            bases: list[tuple[np.ndarray, Any]] = []
            for k in bar:
                hit_basis = _from_bases(Un, bn, k, bases)
                if hit_basis is not None:
                    inside_local.append(k)
                    inside_sup.append(hit_basis[0])
                    inside_w.append(hit_basis[1])
                    continue
                h, lam, rest = _lp(Un, bn, k)
                if h is not None:
                    ht = torch.from_numpy(h).to(dev)
                    mv = _verified_margins(
                        U, bu, torch.tensor([k], device=dev), ht[None, :], max_memory_mib
                    )
                    if float(mv[0]) > 0:
                        local[k] = ARGMAXABLE
                        m[k] = mv[0]
                        states.append(ht)
                        state_cls.append(k)
                elif lam is not None:
                    on = lam > 0
                    if int(on.sum()) == d + 1:
                        basis = np.vstack([Un[rest[on]].T, np.ones(d + 1)])
                        bases.append((rest[on], lu_factor(basis, check_finite=False)))
                    inside_local.append(k)
                    inside_sup.append(rest[on])
                    inside_w.append(lam[on])
        # Re-derive every convex combination's residual and bias excess in float64.
        keep: list[int] = []
        resid_l: list[float] = []
        excess_l: list[float] = []
        bscale = 0.0 if bu is None else float(bu.abs().max())
        for k, sup_np, wts in zip(inside_local, inside_sup, inside_w, strict=True):
            lam_t = torch.from_numpy(np.asarray(wts, dtype=np.float64)).to(dev)
            idx = torch.from_numpy(np.asarray(sup_np, dtype=np.int64)).to(dev)
            if k in refined_residual:  # rigorous bound, at the rounding level (refine_row)
                r = refined_residual[k]
            else:
                r = residual_bound(U, k, idx, lam_t) if idx.numel() else float(U[k].norm())
            e = 0.0 if bu is None else float(lam_t @ bu[idx] - bu[k])
            if k in refined_residual or (
                idx.numel() and r <= tol * scale_max and e >= -tol * max(bscale, 1e-300)
            ):
                local[k] = INSIDE_HULL
                keep.append(len(resid_l))
            resid_l.append(r)
            excess_l.append(e)
        ok = local == ARGMAXABLE
        per_row = torch.full((K,), UNDECIDED, dtype=torch.int8, device=dev)
        per_row[distinct] = local
        per_row = per_row[twin]
        grouped = status == COINCIDING
        status = torch.where(grouped & (per_row == ARGMAXABLE), COINCIDING, per_row)
        margins[distinct[ok]] = m[ok]
        scales[distinct[ok]] = alpha[ok]
        margins[grouped] = torch.nan
        scales[grouped] = torch.nan
        if state_cls:
            solved_cls = distinct[torch.tensor(state_cls, dtype=torch.long, device=dev)]
            solved_h = torch.stack(states)
            scales[solved_cls] = torch.nan
        sel = [inside_local[i] for i in keep]
        inside_idx = distinct[torch.tensor(sel, dtype=torch.long, device=dev)] if sel else empty_i
        s = max([1] + [len(inside_sup[i]) for i in keep])
        support = torch.full((len(keep), s), -1, dtype=torch.long, device=dev)
        sweights = torch.zeros(len(keep), s, dtype=torch.float64, device=dev)
        for row, i in enumerate(keep):
            cnt = len(inside_sup[i])
            support[row, :cnt] = distinct[torch.from_numpy(np.asarray(inside_sup[i])).to(dev)]
            sweights[row, :cnt] = torch.from_numpy(np.asarray(inside_w[i], dtype=np.float64))
        residuals = torch.tensor([resid_l[i] for i in keep], dtype=torch.float64, device=dev)
        if refined:
            refined_idx = distinct[torch.tensor(refined, dtype=torch.long, device=dev)]
        excess = torch.tensor([excess_l[i] for i in keep], dtype=torch.float64, device=dev)
    return ArgmaxResult(
        num_classes=K,
        feature_dim=d,
        has_bias=b is not None,
        status=status,
        twin=twin,
        margins=margins,
        scales=scales,
        center=center,
        solved_classes=solved_cls,
        solved_states=solved_h,
        inside=inside_idx,
        support=support,
        support_weights=sweights,
        residuals=residuals,
        bias_excess=excess,
        raw_distances=raw,
        refined=refined_idx,
        num_screened=num_screened,
        num_solved=num_solved,
        tol=tol,
        certified=bool((status != UNDECIDED).all()),
        seconds=time.perf_counter() - start,
    )
