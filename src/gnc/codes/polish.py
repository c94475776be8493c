"""Polishing to a local optimum of the true max-min objectives by sequential linear programming.

(Over 600 lines as one idea: the trust-region SLP of both objectives, with the pieces only it
uses: tangent bases, the linear programs' rows, their warm-started solver, tie equalization.)

Softmax codes: at ``W`` the exact solver gives every ``D_k`` and its max-margin direction ``h_k``.
With ``rho = min_k D_k`` the pairs ``(k, j)`` with margin ``m_kj = <w_k - w_j, h_k>`` within
``delta`` of ``rho`` are linearized jointly in ``(W, H)``::

    maximize t  s.t.  m_kj + <h_k, dw_k - dw_j> + <w_k - w_j, dh_k> >= t,
                      <w_i, dw_i> = 0,  <h_k, dh_k> = 0,

a first-order model of ``rho = max_H min_{k, j} m_kj`` on the tangent spaces of the product of
spheres. Each step is written in an orthonormal basis of its tangent space, ``dw_i = B_i a_i``
(``B_i``: the last ``d - 1`` columns of the Householder reflection that maps ``e_1`` to
``-+w_i``), so the equalities vanish and the trust region is the box ``|a|_inf <= r``
(measured: linear programs 1.3-1.4x faster than with the ``d`` coordinates and their equality
rows, at the same quality of optima on S^2, N = 85-105). The step ``W <- normalize(W + dW)`` is
accepted only when the exact, certified ``rho`` increases; the trust radius ``r`` grows after
good agreement with the model and shrinks after a rejection (a standard trust-region SLP,
convergent for max-min problems). ``delta`` bounds what a
step of radius ``r`` can change, so every constraint that can become active is in the model.
Tammes codes use the same scheme on ``max_{i != j} <w_i, w_j>`` (minimized).

The iteration stops when the model predicts less than ``tol`` gain, when accepted steps gain
less than ``tol`` twice in a row, or when the trust radius falls under ``min_radius``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import highspy
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from gnc.io import Record
from gnc.sphere import normalize_rows

__all__ = [
    "PolishResult",
    "equalize_ties",
    "hardmax_value",
    "max_cosine_value",
    "polish_softmax",
    "polish_tammes",
]


@dataclass(frozen=True)
class PolishResult(Record):
    """Outcome of a polishing run.

    ``to_dict()`` leaves out ``code``.

    Attributes:
        code: ``(K, d)`` polished unit rows (same device and dtype as the input).
        value: Final objective (``rho`` for softmax codes, ``1 - max cosine`` for Tammes codes).
        history: Objective after every accepted step, starting with the input's (non-decreasing).
        iterations: Linear programs solved.
        stop_reason: Why it stopped.
        seconds: Wall-clock time.
    """

    code: torch.Tensor
    value: float
    history: list[float]
    iterations: int
    stop_reason: str
    seconds: float

    _omit_from_dict: ClassVar[tuple[str, ...]] = ("code",)


class _Rows(NamedTuple):
    """Inequality rows of a linear program in compressed sparse row form (HiGHS's int32).

    Row ``r``'s columns are ``columns[starts[r]:starts[r + 1]]`` (distinct, in any order) with
    coefficients ``values[starts[r]:starts[r + 1]]``.
    """

    starts: np.ndarray
    columns: np.ndarray
    values: np.ndarray


#: Seconds allowed for one linear program (a timeout shrinks the trust radius instead).
LP_TIME_LIMIT = 20.0

# HiGHS basis statuses (``highspy.HighsBasisStatus``): nonbasic at the lower bound, basic.
_AT_LOWER, _BASIC = 0, 1
_STATUSES = [highspy.HighsBasisStatus(i) for i in range(5)]  # by value (building one: ~1 us)
_ROWWISE = int(highspy.MatrixFormat.kRowwise.value)
_MINIMIZE = int(highspy.ObjSense.kMinimize.value)


def _carry_over(
    keys: np.ndarray, old_keys: np.ndarray, old_status: np.ndarray, default: int
) -> np.ndarray:
    """Statuses of ``keys`` from a previous basis (``default`` for keys it did not have)."""
    out = np.full(keys.size, default, dtype=np.int64)
    if old_keys.size:
        order = np.argsort(old_keys, kind="stable")
        sorted_keys = old_keys[order]
        at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
        hit = sorted_keys[at] == keys
        out[hit] = old_status[order[at[hit]]]
    return out


def _balance(cols: np.ndarray, rows: np.ndarray) -> bool:
    """Make a carried basis have one basic entry per row, in place; whether it does now.

    A row that left while active (nonbasic) leaves one basic entry too many: that many basic
    columns (never the free column 0) go to their lower bound. A column that left while basic
    leaves one too few: that many nonbasic rows become basic (their slacks). HiGHS repairs a
    singular basis that results by slacks of its own.
    """
    excess = int((cols == _BASIC).sum() + (rows == _BASIC).sum()) - rows.size
    if excess > 0:
        basic = np.flatnonzero(cols[1:] == _BASIC)[:excess] + 1
        cols[basic] = _AT_LOWER
    elif excess < 0:
        rows[np.flatnonzero(rows != _BASIC)[:-excess]] = _BASIC
    return int((cols == _BASIC).sum() + (rows == _BASIC).sum()) == rows.size


class _WarmLP:
    """HiGHS's dual simplex, each linear program started from the previous one's basis.

    Successive programs of one polish differ a little: the same pairs mostly, other
    coefficients and another trust radius. Every column and row carries a key (a pair, a row
    coordinate) and the statuses of the last optimal basis are carried over by key: columns
    new to this program start at their lower bound, rows new to it basic (their slack), and
    :func:`_balance` evens out what rows and columns that left took with them. Measured on
    polishes of overlap starts (S^2, N = 105): 11x fewer simplex iterations than cold starts
    and polishes 2.3x faster than SciPy's ``linprog`` with HiGHS's interior-point method
    (which has no warm start and costs ~6 ms of wrapping per call). ``highspy._Highs`` is the
    bare solver: the public ``highspy.Highs`` prints a banner on construction, which would
    corrupt JSON on stdout.
    """

    def __init__(self) -> None:
        self._highs = highspy._Highs()  # type: ignore[attr-defined]
        self._highs.setOptionValue("output_flag", False)
        self._highs.setOptionValue("solver", "simplex")
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.warm_starts = 0  # programs started from a carried basis

    def solve(
        self,
        c: np.ndarray,
        a_ub: _Rows,
        b_ub: np.ndarray,
        radius: float,
        col_keys: np.ndarray,
        row_keys: np.ndarray,
        seconds: float = LP_TIME_LIMIT,
    ) -> np.ndarray | None:
        """``argmin c x`` s.t. ``a_ub x <= b_ub``, ``x_0`` free, ``|x_i| <= radius``.

        Returns ``None`` when no optimum was proven (a time limit, a numerical failure).
        """
        n, m = c.size, b_ub.size
        lower = np.full(n, -radius)
        upper = np.full(n, radius)
        lower[0], upper[0] = -highspy.kHighsInf, highspy.kHighsInf
        highs, ok = self._highs, highspy.HighsModelStatus.kOptimal
        highs.setOptionValue("time_limit", float(seconds))
        # The arrays as they are (no HighsLp, whose fields copy element by element); HiGHS
        # stores the rows column-wise, as SciPy's sparse matrices did before (same programs).
        highs.passModel(
            n,
            m,
            a_ub.columns.size,
            _ROWWISE,
            _MINIMIZE,
            0.0,
            c,
            lower,
            upper,
            np.full(m, -highspy.kHighsInf),
            b_ub,
            a_ub.starts,
            a_ub.columns,
            a_ub.values,
            np.zeros(n, dtype=np.int32),  # every column continuous
        )
        warm = False
        if self._last is not None:
            cols = _carry_over(col_keys, self._last[0], self._last[1], _AT_LOWER)
            rows = _carry_over(row_keys, self._last[2], self._last[3], _BASIC)
            if _balance(cols, rows):
                basis = highspy.HighsBasis()
                basis.col_status = [_STATUSES[s] for s in cols.tolist()]
                basis.row_status = [_STATUSES[s] for s in rows.tolist()]
                basis.valid = True
                warm = highs.setBasis(basis) == highspy.HighsStatus.kOk
                self.warm_starts += warm
        highs.run()
        status = highs.getModelStatus()
        if warm and status not in (ok, highspy.HighsModelStatus.kTimeLimit):
            highs.clearSolver()  # a carried basis that went wrong: once more from scratch
            highs.run()
        if highs.getModelStatus() != ok:
            self._last = None
            return None
        basis = highs.getBasis()
        self._last = (
            col_keys,
            np.array([s.value for s in basis.col_status], dtype=np.int64),
            row_keys,
            np.array([s.value for s in basis.row_status], dtype=np.int64),
        )
        return np.asarray(highs.getSolution().col_value, dtype=np.float64)


class _Tangents:
    """Orthonormal bases ``B_i`` of the tangent spaces of unit rows ``X`` (never formed).

    ``H_i = I - 2 v_i v_i^T / |v_i|^2`` with ``v_i = x_i + sign(x_i0) e_1`` maps ``e_1`` to
    ``-sign(x_i0) x_i``; being symmetric and orthogonal, its other columns ``B_i`` are an
    orthonormal basis of ``x_i``'s complement. ``B_i^T y = (H_i y)[1:]`` and
    ``B_i a = H_i (0, a)``.
    """

    def __init__(self, X: np.ndarray) -> None:
        self.v = X.copy()
        self.v[:, 0] += np.where(X[:, 0] >= 0, 1.0, -1.0)
        self.vv = (self.v * self.v).sum(1)

    def coords(self, rows: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``B_rows[i]^T Y[i]``: ``(n, d - 1)``."""
        v = self.v[rows]
        out: np.ndarray = (Y - 2.0 * v * ((v * Y).sum(1) / self.vv[rows])[:, None])[:, 1:]
        return out

    def vectors(self, rows: np.ndarray, A: np.ndarray) -> np.ndarray:
        """``B_rows[i] A[i]``: ``(n, d)`` tangent vectors."""
        v = self.v[rows]
        Z = np.concatenate([np.zeros((A.shape[0], 1)), A], axis=1)
        out: np.ndarray = Z - 2.0 * v * ((v * Z).sum(1) / self.vv[rows])[:, None]
        return out


def _pair_rows(t_coef: np.ndarray, blocks: list[tuple[np.ndarray, np.ndarray]], d: int) -> _Rows:
    """The inequality rows of the linear programs, one row per pair.

    ``t_coef`` goes on the variable ``t`` (column 0); each ``(first_columns, coefficients)``
    block puts its ``(pairs, d)`` coefficients on the ``d`` columns from ``first_columns``.
    Every row has ``1 + d * len(blocks)`` entries, so the rows are built in place (SciPy's
    COO-to-CSC conversion cost ~0.3 ms a program, ~6 % of a search's time on ``S^2``).
    """
    npair = t_coef.size
    width = 1 + d * len(blocks)
    columns = np.empty((npair, width), dtype=np.int32)
    values = np.empty((npair, width))
    columns[:, 0], values[:, 0] = 0, t_coef
    for b, (first, coef) in enumerate(blocks):
        columns[:, 1 + b * d : 1 + (b + 1) * d] = first[:, None] + np.arange(d)
        values[:, 1 + b * d : 1 + (b + 1) * d] = coef
    starts = np.arange(0, npair * width + 1, width, dtype=np.int32)
    return _Rows(starts, columns.reshape(-1), values.reshape(-1))


def _delta(radius: float, d: int) -> float:
    # Largest change of one linearized margin under a step of inf-norm radius r in tangent
    # coordinates (|dw_i| = |a_i| <= sqrt(d - 1) r), times 2.
    return 4.0 * math.sqrt(d) * radius + 1e-10


def _margins(W: np.ndarray, Hd: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Margins ``m[k, j] = <w_k - w_j, h_k>`` for the classes ``rows`` (self = +inf)."""
    M: np.ndarray = (W[rows] * Hd[rows]).sum(1)[:, None] - Hd[rows] @ W.T
    M[np.arange(rows.size), rows] = np.inf
    return M


def hardmax_value(W: np.ndarray, Hd: np.ndarray, block: int = 1024) -> float:
    """HardMax objective ``min_k min_{j != k} <w_k - w_j, h_k>`` (a lower bound on ``rho(W)``).

    Example:
        >>> W = np.eye(3)
        >>> hardmax_value(W, W)
        1.0
    """
    K = W.shape[0]
    return min(
        float(_margins(W, Hd, np.arange(a, min(K, a + block))).min()) for a in range(0, K, block)
    )


def _softmax_model_step(
    W: np.ndarray,
    Hd: np.ndarray,
    value: float,
    radius: float,
    max_variables: int,
    lp: _WarmLP,
    lp_seconds: float = LP_TIME_LIMIT,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    K, d = W.shape
    delta = _delta(radius, d)
    ks_list, js_list, m_list = [], [], []
    block = 1024
    for a in range(0, K, block):
        rows = np.arange(a, min(K, a + block))
        M = _margins(W, Hd, rows)
        ka, ja = np.nonzero(value + delta >= M)
        ks_list.append(rows[ka])
        js_list.append(ja)
        m_list.append(M[ka, ja])
    ks, js, b_ub = np.concatenate(ks_list), np.concatenate(js_list), np.concatenate(m_list)
    active = np.unique(ks)
    rows = np.unique(np.concatenate([active, js]))
    pos = np.full(K, -1)
    pos[rows] = np.arange(rows.size)
    apos = np.full(K, -1)
    apos[active] = np.arange(active.size)
    e = d - 1  # tangent coordinates per row
    nw, nh = rows.size * e, active.size * e
    nvar = 1 + nw + nh
    if nvar > max_variables:
        return None
    # Constraint: t - <h_k, dw_k> + <h_k, dw_j> - <w_k - w_j, dh_k> <= m_kj, with dw_i = B_i a_i
    # and dh_k = B'_k b_k in the tangent bases of W and H.
    tw, th = _Tangents(W), _Tangents(Hd)
    blocks = [
        (1 + pos[ks] * e, -tw.coords(ks, Hd[ks])),
        (1 + pos[js] * e, tw.coords(js, Hd[ks])),
        (1 + nw + apos[ks] * e, -th.coords(ks, W[ks] - W[js])),
    ]
    a_ub = _pair_rows(np.ones(ks.size), blocks, e)
    c = np.zeros(nvar)
    c[0] = -1.0
    coord = np.arange(e)
    col_keys = np.concatenate(
        [[-1], (rows[:, None] * e + coord).ravel(), ((K + active[:, None]) * e + coord).ravel()]
    )
    x = lp.solve(c, a_ub, b_ub, radius, col_keys, ks * K + js, lp_seconds)
    if x is None:
        return None
    step_w = np.zeros_like(W)
    step_w[rows] = tw.vectors(rows, x[1 : 1 + nw].reshape(rows.size, e))
    step_h = np.zeros_like(Hd)
    step_h[active] = th.vectors(active, x[1 + nw :].reshape(active.size, e))
    return step_w, step_h, float(x[0]) - value


def _cosine_pairs(W: np.ndarray, threshold: float, block: int = 1024) -> tuple[np.ndarray, ...]:
    """Pairs ``i < j`` with ``<w_i, w_j> >= threshold`` and their cosines, in row blocks."""
    K = W.shape[0]
    ii, jj, cc = [], [], []
    for a in range(0, K, block):
        b = min(K, a + block)
        G = W[a:b] @ W.T
        G[np.arange(b - a)[:, None] >= np.arange(K)[None, :] - a] = -np.inf  # keep j > i
        i, j = np.nonzero(threshold <= G)
        ii.append(i + a)
        jj.append(j)
        cc.append(G[i, j])
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(cc)


def max_cosine_value(W: np.ndarray, block: int = 1024) -> float:
    """``max_{i != j} <w_i, w_j>`` in row blocks.

    Example:
        >>> max_cosine_value(np.eye(2))
        0.0
    """
    K = W.shape[0]
    best = -np.inf
    for a in range(0, K, block):
        b = min(K, a + block)
        G = W[a:b] @ W.T
        G[np.arange(b - a), np.arange(a, b)] = -np.inf
        best = max(best, float(G.max()))
    return best


def _tammes_model_step(
    W: np.ndarray,
    value: float,
    radius: float,
    max_variables: int,
    lp: _WarmLP,
    lp_seconds: float = LP_TIME_LIMIT,
) -> tuple[np.ndarray, float] | None:
    K, d = W.shape
    smax = 1.0 - value
    ii, jj, cij = _cosine_pairs(W, smax - _delta(radius, d))
    rows = np.unique(np.concatenate([ii, jj]))
    pos = np.full(K, -1)
    pos[rows] = np.arange(rows.size)
    e = d - 1  # tangent coordinates per row
    nw = rows.size * e
    nvar = 1 + nw
    if nvar > max_variables:
        return None
    # Constraint: <w_j, dw_i> + <w_i, dw_j> - s <= -c_ij (minimize s), dw_i = B_i a_i.
    tw = _Tangents(W)
    blocks = [(1 + pos[ii] * e, tw.coords(ii, W[jj])), (1 + pos[jj] * e, tw.coords(jj, W[ii]))]
    a_ub = _pair_rows(-np.ones(ii.size), blocks, e)
    c = np.zeros(nvar)
    c[0] = 1.0
    col_keys = np.concatenate([[-1], (rows[:, None] * e + np.arange(e)).ravel()])
    x = lp.solve(c, a_ub, -cij, radius, col_keys, ii * K + jj, lp_seconds)
    if x is None:
        return None
    step = np.zeros_like(W)
    step[rows] = tw.vectors(rows, x[1:].reshape(rows.size, e))
    return step, smax - float(x[0])


def _trust_region(
    X0: np.ndarray,
    value_of: Callable[[np.ndarray], float],
    model_step: Callable[[np.ndarray, float, float], tuple[np.ndarray, float] | None],
    *,
    radius: float,
    tol: float,
    min_radius: float,
    max_iterations: int,
    should_stop: Callable[[], bool] | None,
) -> tuple[np.ndarray, float, list[float], int, str]:
    """Trust-region SLP on unit rows ``X``; returns ``(X, value, history, iterations, reason)``."""
    X = X0.copy()
    value = value_of(X)
    history = [value]
    small = 0
    reason = "max-iterations"
    it = 0
    while it < max_iterations:
        it += 1
        if should_stop is not None and should_stop():
            reason = "time-limit"
            break
        proposal = model_step(X, value, radius)
        if proposal is None:
            radius *= 0.25
            if radius < min_radius:
                reason = "model-too-large"
                break
            continue
        step, predicted = proposal
        if predicted < tol:
            reason = "stationary"
            break
        X_new = X + step
        X_new /= np.linalg.norm(X_new, axis=1, keepdims=True)
        new_value = value_of(X_new)
        gain = new_value - value
        if gain > 0:
            X, value = X_new, new_value
            history.append(value)
            if gain / predicted > 0.5:
                radius = min(radius * 2.0, 0.1)
            elif gain / predicted < 0.1:
                radius *= 0.5
            small = small + 1 if gain < tol else 0
            if small >= 2:
                reason = "converged"
                break
        else:
            radius *= 0.25
        if radius < min_radius:
            reason = "trust-radius"
            break
    return X, value, history, it, reason


def polish_softmax(
    code: torch.Tensor,
    directions: torch.Tensor,
    *,
    radius: float = 1e-4,
    tol: float = 1e-10,
    min_radius: float = 1e-12,
    max_iterations: int = 500,
    max_variables: int = 100_000,
    should_stop: Callable[[], bool] | None = None,
    lp_seconds: float = LP_TIME_LIMIT,
) -> PolishResult:
    """Trust-region SLP ascent of the HardMax objective ``min_k min_{j != k} <w_k - w_j, h_k>``.

    Every accepted step raises the objective, a certified lower bound on ``rho(W)`` (any unit
    ``h_k`` gives ``D_k >= min_j <w_k - w_j, h_k>``), so the history is non-decreasing and the
    exact ``rho`` of the result is at least its last entry.

    Args:
        code: ``(K, d)`` unit rows to polish.
        directions: ``(K, d)`` unit directions to start from (best: the exact max-margin
            directions of ``code`` from :func:`gnc.geometry.one_vs_rest_distances`).
        radius: Initial trust radius (inf-norm of a step).
        tol: Gain below which the ascent counts as converged.
        min_radius: Smallest trust radius before stopping.
        max_iterations: Cap on linear programs.
        max_variables: Largest linear program attempted.
        should_stop: Polled before each step.
        lp_seconds: Time limit of one linear program (on a timeout the trust radius shrinks).

    Returns:
        A :class:`PolishResult` whose ``history`` is non-decreasing.

    Example:
        >>> import math
        >>> angles = torch.tensor([0.0, 2.0, 4.1], dtype=torch.float64)
        >>> W = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> res = polish_softmax(W, W, radius=0.05)
        >>> abs(res.value - 1.5) < 1e-9  # the triangle: rho = 1 - cos(2 pi / 3)
        True
    """
    start = time.perf_counter()
    K, _d = code.shape
    W = code.detach().to("cpu", torch.float64).numpy()
    H = directions.detach().to("cpu", torch.float64).numpy()
    X0 = np.concatenate([W, H]) / np.linalg.norm(np.concatenate([W, H]), axis=1, keepdims=True)

    lp = _WarmLP()

    def value_of(X: np.ndarray) -> float:
        return hardmax_value(X[:K], X[K:])

    def model_step(X: np.ndarray, value: float, r: float) -> tuple[np.ndarray, float] | None:
        out = _softmax_model_step(X[:K], X[K:], value, r, max_variables, lp, lp_seconds)
        if out is None:
            return None
        return np.concatenate([out[0], out[1]]), out[2]

    X, value, history, it, reason = _trust_region(
        X0,
        value_of,
        model_step,
        radius=radius,
        tol=tol,
        min_radius=min_radius,
        max_iterations=max_iterations,
        should_stop=should_stop,
    )
    out = normalize_rows(torch.from_numpy(X[:K]).to(device=code.device, dtype=code.dtype))
    return PolishResult(out, value, history, it, reason, time.perf_counter() - start)


def polish_tammes(
    code: torch.Tensor,
    *,
    radius: float = 1e-4,
    tol: float = 1e-10,
    min_radius: float = 1e-12,
    max_iterations: int = 500,
    max_variables: int = 100_000,
    should_stop: Callable[[], bool] | None = None,
    lp_seconds: float = LP_TIME_LIMIT,
) -> PolishResult:
    """Trust-region SLP descent of the max cosine (``value`` is ``1 - max cosine``).

    Args:
        code: ``(K, d)`` unit rows to polish.
        radius: Initial trust radius.
        tol: Gain below which the descent counts as converged.
        min_radius: Smallest trust radius before stopping.
        max_iterations: Cap on linear programs.
        max_variables: Largest linear program attempted.
        should_stop: Polled before each step.
        lp_seconds: Time limit of one linear program (on a timeout the trust radius shrinks).

    Returns:
        A :class:`PolishResult` whose ``history`` is non-decreasing.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(4, 3, generator=g, dtype=torch.float64)
        >>> W = W / W.norm(dim=1, keepdim=True)
        >>> res = polish_tammes(W, radius=0.05)
        >>> abs(res.value - 4 / 3) < 1e-9  # regular simplex: max cosine -1/3
        True
    """
    start = time.perf_counter()
    X0 = code.detach().to("cpu", torch.float64).numpy().copy()
    X0 /= np.linalg.norm(X0, axis=1, keepdims=True)
    lp = _WarmLP()
    X, value, history, it, reason = _trust_region(
        X0,
        lambda X: 1.0 - max_cosine_value(X),
        lambda X, value, r: _tammes_model_step(X, value, r, max_variables, lp, lp_seconds),
        radius=radius,
        tol=tol,
        min_radius=min_radius,
        max_iterations=max_iterations,
        should_stop=should_stop,
    )
    out = normalize_rows(torch.from_numpy(X).to(device=code.device, dtype=code.dtype))
    return PolishResult(out, value, history, it, reason, time.perf_counter() - start)


def equalize_ties(
    code: torch.Tensor, *, tie: float = 1e-5, iterations: int = 20, tol: float = 1e-15
) -> torch.Tensor:
    """Symmetry-aware polish: make the near-tied closest pairs exactly tied (Gauss-Newton).

    The pairs whose cosine is within ``tie`` of the max cosine (near-ties: in a sharp code such
    as E8 every nearest pair) are driven to one common cosine ``c`` with unit rows, by
    minimum-norm Gauss-Newton steps on the residuals ``<w_i, w_j> - c`` and ``|w_i|^2 - 1``
    (sparse least squares). A rigid optimum with that contact graph is then reached to rounding
    in a few steps, where the linear programs of :func:`polish_tammes` converge linearly and
    each costs seconds. Returns the new code if its max cosine is lower, else ``code``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.86]], dtype=torch.float64)
        >>> X = equalize_ties(W, tie=0.1)
        >>> round(float((X @ X.T - 2 * torch.eye(3)).max()), 12)  # the triangle: -1/2
        -0.5
    """
    X0 = code.detach().to("cpu", torch.float64).numpy()
    X0 = X0 / np.linalg.norm(X0, axis=1, keepdims=True)
    K, d = X0.shape
    start = max_cosine_value(X0)
    ii, jj, _ = _cosine_pairs(X0, start - tie)
    X = X0.copy()
    c = start
    n = ii.size
    rows = np.concatenate([np.repeat(np.arange(n), d)] * 2 + [np.arange(n)])
    rows = np.concatenate([rows, n + np.repeat(np.arange(K), d)])
    dd = np.arange(d)
    cols = np.concatenate(
        [
            (ii[:, None] * d + dd).reshape(-1),
            (jj[:, None] * d + dd).reshape(-1),
            np.full(n, K * d),
            np.arange(K * d),
        ]
    )
    for _ in range(iterations):
        res = np.concatenate([(X[ii] * X[jj]).sum(1) - c, (X * X).sum(1) - 1.0])
        if float(np.abs(res).max()) < tol:
            break
        vals = np.concatenate(
            [X[jj].reshape(-1), X[ii].reshape(-1), -np.ones(n), 2.0 * X.reshape(-1)]
        )
        J = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n + K, K * d + 1))
        step = scipy.sparse.linalg.lsqr(J, -res, atol=1e-16, btol=1e-16, iter_lim=10 * K * d)[0]
        X = X + step[: K * d].reshape(K, d)
        c += float(step[-1])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    if not np.isfinite(X).all() or max_cosine_value(X) >= start:
        return code
    return torch.from_numpy(X).to(device=code.device, dtype=code.dtype)
