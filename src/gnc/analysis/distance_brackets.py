"""Certified brackets ``[lower_k, upper_k]`` of every class's ``D_k``, and of their quantiles.

The exact one-vs-rest distance ``D_k = dist(w_k, conv{w_j : j != k})`` of every class (Jiang et
al., "Generalized Neural Collapse for a Large Number of Classes", ICML 2024) costs several passes
over ``W W^T``; at the ``K`` of a language model's head that is more than an analysis should
spend. A few working-set rounds of the exact engine
(:func:`gnc.geometry.one_vs_rest_distances` with ``max_rounds`` small) already bracket every
``D_k``:

- ``upper_k``: the distance from ``w_k`` to the hull of its working set, a subset of the other
  rows, so ``upper_k >= D_k`` (primal);
- ``lower_k``: the margin ``min_{j != k} <w_k - w_j, h_k>`` of that solution's direction, evaluated
  against **all** rows under a rigorous rounding bound, so ``lower_k <= D_k`` (dual).

A quantile is monotone in every entry (the order statistics are, and so is their linear
interpolation), so ``q(lower) <= q(D) <= q(upper)`` for every level: the quantiles of all
classes' ``D_k`` come as certified intervals, exact where the gaps close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from gnc._checks import check_int
from gnc.geometry import one_vs_rest_distances
from gnc.io import Record

__all__ = ["QUANTILES", "DistanceBrackets", "bracket_quantiles", "distance_brackets"]

#: Quantile levels reported by :func:`bracket_quantiles` and ``gnc head``.
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class DistanceBrackets(Record):
    """Certified ``[lower_k, upper_k]`` of ``D_k`` for a set of classes.

    Attributes:
        classes: ``(C,)`` the classes (row indices of the matrix that was bracketed).
        lower_bounds: ``(C,)`` certified lower bounds of ``D_k`` (dual, against all rows).
        distances: ``(C,)`` certified upper bounds of ``D_k`` (primal: distance to the hull of
            the working set).
        gaps: ``(C,)`` ``distances - lower_bounds`` (>= 0).
        rounds: Working-set rounds run.
        exact_classes: Classes whose gap is at most ``tol``.
        tol: Gap under which a class counts as exact.
        seconds: Wall time.
    """

    _omit_from_dict: ClassVar[tuple[str, ...]] = ("classes", "lower_bounds", "distances", "gaps")

    classes: torch.Tensor
    lower_bounds: torch.Tensor
    distances: torch.Tensor
    gaps: torch.Tensor
    rounds: int
    exact_classes: int
    tol: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Counts, the largest gap and the quantile intervals (:func:`bracket_quantiles`)."""
        out = super().to_dict()
        out["size"] = int(self.classes.numel())
        out["max_gap"] = float(self.gaps.max()) if self.gaps.numel() else None
        out["quantiles"] = bracket_quantiles(self.lower_bounds, self.distances)
        return out


def bracket_quantiles(
    lower: torch.Tensor, upper: torch.Tensor, levels: tuple[float, ...] = QUANTILES
) -> dict[str, dict[str, float]] | None:
    """Certified intervals of the quantiles of values known only within ``[lower, upper]``.

    For every level ``p``: ``q_p(lower) <= q_p(x) <= q_p(upper)`` for any ``x`` with
    ``lower <= x <= upper`` elementwise (quantiles are monotone in every entry). Also the mean,
    which is monotone too. ``None`` when empty.

    Example:
        >>> q = bracket_quantiles(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 2.0]))
        >>> q["q50"], q["q00"]
        ({'lower': 1.0, 'upper': 1.0, 'width': 0.0}, {'lower': 0.0, 'upper': 0.5, 'width': 0.5})
    """
    if lower.shape != upper.shape or lower.ndim != 1:
        raise ValueError(
            "Expected `lower` and `upper` to be 1-D of the same shape, but got "
            f"{tuple(lower.shape)} and {tuple(upper.shape)}."
        )
    if lower.numel() == 0:
        return None
    lo, hi = lower.double().cpu(), upper.double().cpu()
    if bool((lo > hi).any()):
        raise ValueError("Expected `lower <= upper` elementwise, but got a larger lower bound.")
    p = torch.tensor(levels, dtype=torch.float64)
    qlo, qhi = torch.quantile(lo, p), torch.quantile(hi, p)
    out = {
        f"q{round(level * 100):02d}": {"lower": float(a), "upper": float(b), "width": float(b - a)}
        for level, a, b in zip(levels, qlo, qhi, strict=True)
    }
    mlo, mhi = float(lo.mean()), float(hi.mean())
    out["mean"] = {"lower": mlo, "upper": mhi, "width": mhi - mlo}
    return out


def distance_brackets(
    weights: torch.Tensor,
    *,
    classes: torch.Tensor | None = None,
    rounds: int = 1,
    normalize: bool = True,
    tol: float = 1e-9,
    max_memory_mib: float | None = None,
    progress: bool = False,
) -> DistanceBrackets:
    """Certified brackets of ``D_k`` from ``rounds`` working-set rounds of the exact engine.

    Args:
        weights: ``(K, d)`` rows (normalized first unless ``normalize=False``).
        classes: Classes to bracket (default: all).
        rounds: Working-set rounds (1: one neighbour pass, the solves on the working sets and
            one check against all rows; each more round re-solves the classes whose check found
            violators, warm-started).
        normalize: Normalize the rows (the GNC2 convention).
        tol: Gap under which a class counts as exact.
        max_memory_mib: Memory budget of a tile (default: the working memory).
        progress: tqdm bar of the solves on stderr.

    Returns:
        A :class:`DistanceBrackets`.

    Example:
        >>> import math
        >>> angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        >>> octagon = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> br = distance_brackets(octagon)
        >>> bool((br.lower_bounds <= 1 - math.cos(math.pi / 4) + 1e-12).all()), br.exact_classes
        (True, 8)
    """
    rounds = check_int("rounds", rounds, minimum=1)
    start = time.perf_counter()
    res = one_vs_rest_distances(
        weights,
        normalize=normalize,
        classes=classes,
        max_memory_mib=max_memory_mib,
        tol=tol,
        max_rounds=rounds,
        keep_points=False,
        progress=progress,
    )
    lower = res.lower_bounds.clamp_max(res.distances)  # equal up to rounding where exact
    gaps = res.distances - lower
    return DistanceBrackets(
        classes=res.classes,
        lower_bounds=lower,
        distances=res.distances,
        gaps=gaps,
        rounds=res.rounds,
        exact_classes=int((gaps <= res.tol).sum()),
        tol=res.tol,
        seconds=time.perf_counter() - start,
    )
