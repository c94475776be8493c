"""A compiled overlap penalty for the starts on ``S^2``, with numba (internal, optional).

:func:`orbit_penalty` is the overlap penalty that the symmetric and overlap starts descend
(:mod:`gnc.codes.symmetric`), ``E = 1/2 sum_{i < j} max(0, c^2 - |w_i - w_j|^2)^2`` over the
orbits of free vectors, with its gradient in the free vectors. Why it exists: a search on
``S^2`` evaluates it ~80,000 times a minute (N = 105), and NumPy spends most of each ~150 us
evaluation on small temporaries (``(N, N)`` arrays, two ``einsum``); compiled it takes a
fraction of that. Without numba (the ``fast`` extra)
:data:`AVAILABLE` is False and the NumPy form in :mod:`gnc.codes.symmetric` runs (the same
values to rounding; a test compares them).
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


# The orbit penalty calls _overlap by its global name: the Python function until
# _compiled_penalty() puts the compiled loop there (numba resolves the global when it compiles).
_overlap: Any = _overlap_py


@functools.cache
def _compiled_penalty() -> Any:
    global _overlap
    _overlap = compile_numba(_overlap_py)
    return compile_numba(_orbit_penalty_py)


def orbit_penalty(
    x: np.ndarray, group: np.ndarray, fixed: np.ndarray, chord2: float
) -> tuple[float, np.ndarray]:
    """The compiled :func:`_orbit_penalty_py` (numba imported and compiled on first call).

    ``x`` ``(m * 3,)``, ``group`` ``(g, 3, 3)`` and ``fixed`` ``(f, 3)``: writable C-contiguous
    float64 (the one array type that :func:`warm` compiles for).
    """
    energy, grad = _compiled_penalty()(x, group, fixed, chord2)
    return float(energy), grad


def warm() -> None:
    """Compile the penalty now (or load it from numba's disk cache), where numba is installed.

    A search calls it before its clock starts, so that the one-time compile (seconds on a
    machine whose cache is empty) is not taken out of its ``time_limit``.
    """
    if AVAILABLE:
        orbit_penalty(np.ones(3), np.eye(3)[None], np.zeros((0, 3)), 0.1)
