"""Independent SciPy reference for one-vs-rest distances (tests only, never imported by src/).

``D_k(W) = min_{lam in simplex} |w_k - sum_{j != k} lam_j w_j|`` is solved either exactly by an
active-set least-squares method (BVLS via scipy.optimize.lsq_linear, or Lawson-Hanson NNLS; both
unrelated to Wolfe's algorithm) on an equivalent non-negative least-squares problem, or by SLSQP
from several starts with the analytic gradient; either way the result is polished on its active
set with an exact equality-constrained least-squares solve, accepted only if the KKT conditions
hold.
A dual certificate ``min_{j != k} <w_k - w_j, h>`` with ``h = (w_k - p) / |w_k - p|`` is a lower
bound on ``D_k`` for any hull point ``p``; the result records both, so tests can check the gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear, minimize, nnls

__all__ = ["QPSolution", "scipy_one_vs_rest_distance", "scipy_one_vs_rest_solution"]


@dataclass(frozen=True)
class QPSolution:
    """Reference solution of one class's one-vs-rest problem.

    Attributes:
        distance: Best primal value ``|w_k - p|`` found (an upper bound on ``D_k``).
        lower_bound: Dual certificate ``min_{j != k} <w_k - w_j, h>`` (a lower bound on ``D_k``).
        weights: ``(K - 1,)`` convex weights over the other rows (in order, ``k`` skipped).
        point: ``(d,)`` the hull point ``p``.
        polished: Whether the active-set polish was accepted.
    """

    distance: float
    lower_bound: float
    weights: np.ndarray
    point: np.ndarray
    polished: bool


def _as_numpy(W: object) -> np.ndarray:
    if hasattr(W, "detach"):
        W = W.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(W, dtype=np.float64)


def _certificate(y: np.ndarray, V: np.ndarray, p: np.ndarray) -> float:
    r = y - p
    nr = float(np.linalg.norm(r))
    if nr == 0.0:
        return 0.0
    h = r / nr
    return float(np.min((y - V) @ h))


def _polish(
    G: np.ndarray, b: np.ndarray, V: np.ndarray, y: np.ndarray, lam: np.ndarray
) -> np.ndarray | None:
    """Exact minimizer on the support of ``lam`` if it is feasible and KKT-optimal, else None."""
    for rel in (1e-10, 1e-8, 1e-6, 1e-4):
        S = np.flatnonzero(lam > rel * lam.max())
        m = S.size
        A = np.zeros((m + 1, m + 1))
        A[:m, :m] = G[np.ix_(S, S)]
        A[:m, m] = 1.0
        A[m, :m] = 1.0
        rhs = np.concatenate([b[S], [1.0]])
        sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
        mu = sol[:m]
        if mu.min() < -1e-12:
            continue
        mu = np.clip(mu, 0.0, None)
        mu /= mu.sum()
        full = np.zeros_like(lam)
        full[S] = mu
        p = V.T @ full
        r = y - p
        # Optimality of p over the hull: <v_j - p, y - p> <= 0 for every j.
        scale = max(1.0, float(np.abs(V).max()) ** 2)
        if float(np.max((V - p) @ r)) <= 1e-12 * scale:
            return full
    return None


def _nnls_weights(y: np.ndarray, V: np.ndarray, *, bvls: bool = False) -> np.ndarray:
    """Exact active-set solve via NNLS (Lawson-Hanson) or BVLS (Stark-Parker).

    With ``Y_j = v_j - y``, ``min_{u >= 0} |Y^T u|^2 + (1 - sum u)^2`` has KKT conditions
    ``<Y_j, x> >= 1 - s`` (``x = Y^T u``, ``s = sum u``), with equality on the support, so
    ``|x|^2 = s (1 - s)`` and ``p = x / s`` satisfies ``<Y_j, p> >= |p|^2``: the optimality
    condition of the min-norm point of ``conv(Y)``. Hence ``lam = u / s``.
    """
    Y = V - y
    E = np.vstack([Y.T, np.ones((1, Y.shape[0]))])
    f = np.zeros(E.shape[0])
    f[-1] = 1.0
    if bvls:
        u = lsq_linear(E, f, bounds=(0.0, np.inf), method="bvls", tol=1e-15).x
        u = np.clip(u, 0.0, None)
    else:
        u, _ = nnls(E, f, maxiter=50 * E.shape[1])
    return np.asarray(u / u.sum())


def _slsqp_weights(G: np.ndarray, b: np.ndarray, c: float, num_starts: int) -> np.ndarray:
    def fun(lam: np.ndarray) -> float:
        return float(lam @ G @ lam - 2.0 * b @ lam + c)

    def jac(lam: np.ndarray) -> np.ndarray:
        return np.asarray(2.0 * (G @ lam - b))

    m = b.shape[0]
    starts = [np.full(m, 1.0 / m)]
    onehot = np.zeros(m)
    onehot[int(np.argmax(b))] = 1.0
    starts.append(onehot)
    z = np.exp(8.0 * (b - b.max()))
    starts.append(z / z.sum())
    cons = {"type": "eq", "fun": lambda lam: lam.sum() - 1.0, "jac": lambda lam: np.ones_like(lam)}
    best_lam = starts[0]
    best_val = fun(best_lam)
    for x0 in starts[:num_starts]:
        res = minimize(
            fun,
            x0,
            jac=jac,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * m,
            constraints=[cons],
            options={"ftol": 1e-13, "maxiter": 500},
        )
        lam = np.clip(res.x, 0.0, None)
        lam /= lam.sum()
        val = fun(lam)
        if val < best_val:
            best_val, best_lam = val, lam
    return best_lam


def scipy_one_vs_rest_solution(
    W: object, k: int, *, method: str = "auto", num_starts: int = 3
) -> QPSolution:
    """Solve ``min_{lam in simplex} |w_k - V^T lam|^2`` over the other rows ``V``.

    Args:
        W: ``(K, d)`` array or tensor (rows used as given).
        k: The class whose distance to the hull of the others is computed.
        method: ``"bvls"`` or ``"nnls"`` (exact active-set solves of the NNLS form, fast; scipy's
            NNLS stalls on some degenerate instances), ``"slsqp"`` (SQP with the analytic
            gradient from several starts: uniform, nearest vertex, softmax of inner products),
            or ``"auto"`` (default): BVLS, then NNLS, then SLSQP until the KKT check passes.
        num_starts: Number of SLSQP starting points.

    Returns:
        A :class:`QPSolution` with the primal value and a dual lower bound. Both methods are
        followed by the same active-set polish, accepted only when feasible and KKT-optimal.
    """
    A = _as_numpy(W)
    y = A[k]
    V = np.delete(A, k, axis=0)
    G = V @ V.T
    b = V @ y
    c = float(y @ y)
    methods = ("bvls", "nnls", "slsqp") if method == "auto" else (method,)
    best: tuple[float, np.ndarray, bool] | None = None
    for name in methods:
        if name in ("bvls", "nnls"):
            lam = _nnls_weights(y, V, bvls=name == "bvls")
        elif name == "slsqp":
            lam = _slsqp_weights(G, b, c, num_starts)
        else:
            raise ValueError(
                f"Expected `method` in ('auto', 'bvls', 'nnls', 'slsqp'), but got {method!r}."
            )
        polished = _polish(G, b, V, y, lam)
        ok = False
        if polished is not None and (
            np.linalg.norm(y - V.T @ polished) <= np.linalg.norm(y - V.T @ lam) + 1e-12
        ):
            lam, ok = polished, True
        val = float(np.linalg.norm(y - V.T @ lam))
        if best is None or (ok and not best[2]) or (ok == best[2] and val < best[0]):
            best = (val, lam, ok)
        if ok:
            break
    assert best is not None
    _, lam, ok = best
    p = V.T @ lam
    return QPSolution(
        distance=float(np.linalg.norm(y - p)),
        lower_bound=_certificate(y, V, p),
        weights=lam,
        point=p,
        polished=ok,
    )


def scipy_one_vs_rest_distance(W: object, k: int, *, method: str = "auto") -> float:
    """Reference ``D_k(W)``: distance of row ``k`` to the convex hull of the other rows."""
    return scipy_one_vs_rest_solution(W, k, method=method).distance
