"""A compiled overlap penalty for the starts on ``S^2``, with numba (internal, optional).

:func:`overlap_energy` is the pair loop of the overlap penalty that the symmetric and overlap
starts descend (:mod:`gnc.codes.symmetric`): ``E = 1/2 sum_{i < j} max(0, c^2 - |w_i - w_j|^2)^2``
and its gradient on the first ``n_free`` rows. Why it exists: a search on ``S^2`` evaluates the
penalty ~80,000 times a minute (N = 105), and NumPy spends most of each ~150 us evaluation on
temporaries of ``(N, N)`` arrays; the loop takes ~50 us. Without numba (the ``fast`` extra)
:data:`AVAILABLE` is False and the NumPy form in :mod:`gnc.codes.symmetric` runs (the same
values to rounding; a test compares them).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

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


_overlap: Any = None


def overlap_energy(W: np.ndarray, chord2: float, n_free: int) -> tuple[float, np.ndarray]:
    """The compiled :func:`_overlap_py` (numba imported and the loop compiled on first call)."""
    global _overlap
    if _overlap is None:
        import numba

        try:
            _overlap = numba.njit(cache=True, nogil=True)(_overlap_py)
        except RuntimeError:  # pragma: no cover - no writable cache location: compile each run
            _overlap = numba.njit(nogil=True)(_overlap_py)
    energy, grad = _overlap(np.ascontiguousarray(W, dtype=np.float64), float(chord2), n_free)
    return float(energy), grad
