"""A compiled overlap penalty for the starts on ``S^2``, and its descent, with numba (internal).

:func:`orbit_penalty` is the overlap penalty that the symmetric and overlap starts descend
(:mod:`gnc.codes.symmetric`), ``E = 1/2 sum_{i < j} max(0, c^2 - |w_i - w_j|^2)^2`` over the
orbits of free vectors, with its gradient in the free vectors. Why it exists: a search on
``S^2`` evaluates it ~80,000 times a minute (N = 105), and NumPy spends most of each ~150 us
evaluation on small temporaries (``(N, N)`` arrays, two ``einsum``); compiled it takes a
fraction of that. :func:`descend` runs L-BFGS on it in the same compiled loop: SciPy's
L-BFGS-B wraps each evaluation in ~120 us of Python, which was ~80 % of a descent once the
penalty was compiled. Without numba (the optional ``fast`` extra) :data:`AVAILABLE` is False
and the NumPy penalty in :mod:`gnc.codes.symmetric` runs under SciPy's L-BFGS-B (the same
values to rounding; tests compare them, and the loops' Python bodies).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any

import numpy as np

from gnc._runtime import compile_numba

__all__: list[str] = []

#: Whether the compiled penalty can run (numba is installed; it is imported, and the loop
#: compiled or loaded from numba's cache, on first use only).
AVAILABLE = importlib.util.find_spec("numba") is not None


def _overlap_py(W: np.ndarray, chord2: float, n_free: int) -> tuple[float, np.ndarray]:
    """``(E, dE/dW[:n_free])`` of the overlap penalty of the rows ``W`` at squared chord ``chord2``.

    ``|w_i - w_j|^2 = 2 - 2 <w_i, w_j>`` (unit rows), so ``dE/dw_i = 2 sum_j o_ij w_j`` with
    ``o_ij = max(0, c^2 - 2 + 2 <w_i, w_j>)``.
    """
    n, d = W.shape
    grad = np.zeros((n_free, d))
    energy = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            dot = 0.0
            for a in range(d):
                dot += W[i, a] * W[j, a]
            o = chord2 - (2.0 - 2.0 * dot)
            if o > 0.0:
                energy += o * o
                if i < n_free:
                    for a in range(d):
                        grad[i, a] += 2.0 * o * W[j, a]
                if j < n_free:
                    for a in range(d):
                        grad[j, a] += 2.0 * o * W[i, a]
    return 0.5 * energy, grad


def _orbit_penalty_py(
    x: np.ndarray, group: np.ndarray, fixed: np.ndarray, chord2: float
) -> tuple[float, np.ndarray]:
    """``(E, dE/dx)`` for the orbits of the free vectors ``x`` (``m * 3``, not normalized).

    The code is every rotation of every ``u_i = x_i / |x_i|`` (rotation-major), then ``fixed``;
    the gradient of each ``u_i`` is the sum over rotations of ``R^T dE/dw``, projected on the
    tangent space of ``u_i`` and divided by ``|x_i|``.
    """
    g, f = group.shape[0], fixed.shape[0]
    m = x.size // 3
    U = np.empty((m, 3))
    norms = np.empty(m)
    for i in range(m):
        norms[i] = math.sqrt(x[3 * i] ** 2 + x[3 * i + 1] ** 2 + x[3 * i + 2] ** 2)
        for a in range(3):
            U[i, a] = x[3 * i + a] / norms[i]
    W = np.empty((g * m + f, 3))
    for r in range(g):
        for i in range(m):
            for a in range(3):
                W[r * m + i, a] = (
                    group[r, a, 0] * U[i, 0] + group[r, a, 1] * U[i, 1] + group[r, a, 2] * U[i, 2]
                )
    for i in range(f):
        for a in range(3):
            W[g * m + i, a] = fixed[i, a]
    energy, grad_w = _overlap(W, chord2, g * m)
    out = np.zeros(m * 3)
    gu = np.empty(3)
    for i in range(m):
        gu[:] = 0.0
        for r in range(g):
            for b in range(3):
                for a in range(3):
                    gu[b] += group[r, a, b] * grad_w[r * m + i, a]
        radial = gu[0] * U[i, 0] + gu[1] * U[i, 1] + gu[2] * U[i, 2]
        for b in range(3):
            out[3 * i + b] = (gu[b] - radial * U[i, b]) / norms[i]
    return energy, out


#: L-BFGS: stored correction pairs (SciPy's ``maxcor`` default), Armijo's constant, halvings
#: of the step before a line search gives up.
MEMORY = 10
ARMIJO = 1e-4
MAX_HALVINGS = 60


def _direction_py(
    g: np.ndarray, S: np.ndarray, Y: np.ndarray, rho: np.ndarray, newest: int, count: int
) -> np.ndarray:
    """``-H g`` by L-BFGS's two-loop recursion over the ``count`` newest pairs of the ring.

    ``S``, ``Y`` ``(MEMORY, n)`` hold the steps and gradient changes, ``rho = 1 / <s, y>``,
    ``newest`` the ring slot of the last pair; the first inverse Hessian is
    ``<s, y> / <y, y>`` times the identity (Nocedal and Wright, algorithm 7.4).
    """
    mem, n = S.shape
    q = g.copy()
    alpha = np.zeros(mem)
    for i in range(count):
        k = (newest - i) % mem
        a = 0.0
        for c in range(n):
            a += S[k, c] * q[c]
        a *= rho[k]
        alpha[k] = a
        for c in range(n):
            q[c] -= a * Y[k, c]
    yy = 0.0
    for c in range(n):
        yy += Y[newest, c] * Y[newest, c]
    gamma = 1.0 / (rho[newest] * yy)
    for c in range(n):
        q[c] *= gamma
    for i in range(count - 1, -1, -1):
        k = (newest - i) % mem
        b = 0.0
        for c in range(n):
            b += Y[k, c] * q[c]
        b *= rho[k]
        for c in range(n):
            q[c] += S[k, c] * (alpha[k] - b)
    return -q


def _descend_py(
    x0: np.ndarray,
    group: np.ndarray,
    fixed: np.ndarray,
    chord2: float,
    max_iter: int,
    gtol: float,
    ftol: float,
) -> tuple[np.ndarray, float, int]:
    """A local minimum of the orbit penalty from ``x0`` by L-BFGS: ``(x, E(x), evaluations)``.

    The stopping rules are L-BFGS-B's (SciPy): ``max |grad| <= gtol``, a relative decrease
    ``(E_k - E_k+1) / max(|E_k|, |E_k+1|, 1) <= ftol``, ``max_iter`` iterations, or a line
    search that finds no decrease. The line search halves the step from 1 until Armijo's
    condition holds (the first step is ``1 / |grad|`` along ``-grad``); a pair whose curvature
    ``<s, y>`` is not positive is not stored, and a direction that does not descend restarts
    the memory from ``-grad``.
    """
    n = x0.size
    S = np.zeros((MEMORY, n))
    Y = np.zeros((MEMORY, n))
    rho = np.zeros(MEMORY)
    x = x0.copy()
    f, g = _orbit_penalty(x, group, fixed, chord2)
    evaluations = 1
    newest, count = MEMORY - 1, 0
    for _ in range(max_iter):
        gmax = 0.0
        gg = 0.0
        for c in range(n):
            gmax = max(gmax, abs(g[c]))
            gg += g[c] * g[c]
        if gmax <= gtol:
            break
        d = _direction(g, S, Y, rho, newest, count) if count > 0 else -g / math.sqrt(gg)
        slope = 0.0
        for c in range(n):
            slope += g[c] * d[c]
        if slope >= 0.0:  # not a descent direction: forget the pairs
            count = 0
            d = -g / math.sqrt(gg)
            slope = -math.sqrt(gg)
        t = 1.0
        accepted = False
        x_new = x + d
        f_new, g_new = f, g
        for _h in range(MAX_HALVINGS):
            x_new = x + t * d
            f_new, g_new = _orbit_penalty(x_new, group, fixed, chord2)
            evaluations += 1
            if f_new <= f + ARMIJO * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        s = x_new - x
        y = g_new - g
        sy = 0.0
        yy = 0.0
        for c in range(n):
            sy += s[c] * y[c]
            yy += y[c] * y[c]
        if sy > 2.2e-16 * yy and sy > 0.0:
            newest = (newest + 1) % MEMORY
            S[newest] = s
            Y[newest] = y
            rho[newest] = 1.0 / sy
            count = min(count + 1, MEMORY)
        decrease = f - f_new
        scale = max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if decrease <= ftol * scale:
            break
    return x, f, evaluations


# The orbit penalty calls _overlap, and the descent _orbit_penalty and _direction, by their
# global names: the Python functions until _compiled_penalty() and _compiled_descent() put the
# compiled loops there (numba resolves a global when it compiles).
_overlap: Any = _overlap_py
_orbit_penalty: Any = _orbit_penalty_py
_direction: Any = _direction_py


@functools.cache
def _compiled_penalty() -> Any:
    global _overlap
    _overlap = compile_numba(_overlap_py)
    return compile_numba(_orbit_penalty_py)


@functools.cache
def _compiled_descent() -> Any:
    global _orbit_penalty, _direction
    _orbit_penalty = _compiled_penalty()
    _direction = compile_numba(_direction_py)
    return compile_numba(_descend_py)


def _kernel_arrays(
    x: np.ndarray, group: np.ndarray, fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays as the one type the loops are compiled for: writable C-contiguous float64.

    numba compiles once per array type, and a read-only or strided array is another type (a
    second compile, seconds on a machine whose cache is empty; the rotation groups are
    read-only). No copy where an array already is of that type.
    """
    return (
        np.require(x, np.float64, ["C", "W"]),
        np.require(group, np.float64, ["C", "W"]),
        np.require(np.reshape(fixed, (-1, 3)), np.float64, ["C", "W"]),
    )


def orbit_penalty(
    x: np.ndarray, group: np.ndarray, fixed: np.ndarray, chord2: float
) -> tuple[float, np.ndarray]:
    """The compiled :func:`_orbit_penalty_py` (numba imported and compiled on first call).

    ``x`` ``(m * 3,)``, ``group`` ``(g, 3, 3)`` and ``fixed`` ``(f, 3)``.
    """
    energy, grad = _compiled_penalty()(*_kernel_arrays(x, group, fixed), float(chord2))
    return float(energy), grad


def descend(
    x: np.ndarray,
    group: np.ndarray,
    fixed: np.ndarray,
    chord2: float,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
) -> tuple[np.ndarray, float, int]:
    """The compiled :func:`_descend_py`: ``(x, E(x), evaluations)``.

    The arrays are as for :func:`orbit_penalty`.
    """
    x_min, energy, evaluations = _compiled_descent()(
        *_kernel_arrays(x, group, fixed), float(chord2), int(max_iter), float(gtol), float(ftol)
    )
    return x_min, float(energy), int(evaluations)


def warm() -> None:
    """Compile the penalty and the descent now (or load them from numba's disk cache).

    Where numba is installed. A search calls it before its clock starts, so that the one-time
    compile (seconds on a machine whose cache is empty) is not taken out of its ``time_limit``.
    """
    if AVAILABLE:
        group, fixed = np.eye(3)[None], np.zeros((0, 3))
        orbit_penalty(np.ones(3), group, fixed, 0.1)
        descend(np.ones(3), group, fixed, 0.1, max_iter=1, gtol=0.0, ftol=0.0)
