"""Tammes codes: unit vectors maximizing the minimum pairwise distance (Jiang et al., ICML 2024).

Same driver as :mod:`gnc.codes.softmax`: 8 restarts on the annealed soft max cosine alternate
with batches of 16 starts descending the Riesz energy with a rising exponent (the classic
recipe), and each is polished by SLP on ``max_{i != j} <w_i, w_j>``; the record carries the
exact one-vs-rest ``rho`` of the Tammes code too, so softmax and Tammes codes can be compared
(``T^2 / 2 <= rho* <= T``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from gnc.codes.result import CodeResult
from gnc.codes.softmax import solve_code

__all__ = ["tammes_code"]


def tammes_code(
    num_classes: int,
    feature_dim: int,
    *,
    restarts: int | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    init: torch.Tensor | None = None,
    progress: bool = False,
    steps: tuple[int, int] | None = None,
    polish: bool = True,
    polish_seconds: float = 60.0,
    num_competitors: int | None = None,
    max_memory_mib: float = 256.0,
    start_codes: Sequence[torch.Tensor] = (),
    lattice_starts: bool = True,
    clock: Literal["wall", "cpu"] = "wall",
    target: float | None = None,
    stop_at_bound: bool = True,
    workers: int = 1,
) -> CodeResult:
    """A Tammes code for ``(K, d)``: ``K`` unit vectors with the largest minimum distance.

    Arguments as in :func:`gnc.codes.softmax_code`; ``history`` holds ``1 - max cosine``.

    Returns:
        A :class:`gnc.codes.CodeResult` with ``kind="tammes"``.

    Example:
        >>> res = tammes_code(6, 3, restarts=1, steps=(200, 200))  # the octahedron
        >>> res.method, round(res.max_cosine, 12)
        ('closed-form:cross-polytope-subset', 0.0)
        >>> res = tammes_code(12, 3, restarts=1, steps=(300, 300))
        >>> abs(res.max_cosine - 5 ** -0.5) < 1e-6  # the icosahedron
        True
    """
    return solve_code("tammes", **locals())  # the arguments above, as they are
