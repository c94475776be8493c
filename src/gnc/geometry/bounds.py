"""Upper bounds on the Tammes optimum and on the softmax-code value ``rho*(d, K)``.

For ``K`` unit vectors in ``R^d`` with max cosine ``s = max_{j != k} <w_j, w_k>`` the minimum
pairwise distance is ``sqrt(2 - 2 s)``, and ``rho <= min_k sqrt(2 (1 - s_k)) =`` that distance
(PAPER.md section 2), so ``rho*(d, K) <= T(d, K)``, the Tammes optimum. Every lower bound on the
max cosine therefore gives an upper bound on both (PAPER.md section 8):

- simplex bound: ``s >= -1/(K-1)`` (any ``d``), exact for ``K <= d + 1``;
- orthoplex (Rankin) bound: ``s >= 0`` when ``K >= d + 2``, exact for ``d + 2 <= K <= 2d``;
- Levenshtein bound (pieces ``L_1..L_4``, ``n = d``), exact for the sharp codes (icosahedron,
  ``(5, 16)``, ``(6, 27)``, ``(7, 56)``, regular pentagon and hexagon);
- Fejes Toth bound for ``d = 3``, exact for ``K in {3, 4, 6, 12}``.

The softmax-code value is also at most ``K / (K - 1)``: ``D_k`` only depends on the points, and
``K`` points span an affine space of dimension at most ``K - 1`` where the simplex is optimal.

Degenerate dimension ``d = 1``: ``S^0 = {-1, +1}``; two antipodal points give distance and ``rho``
``2``, while ``K >= 3`` points must repeat one, so the minimum distance and ``rho`` are ``0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gnc._checks import check_int
from gnc.geometry.configurations import KNOWN_CONFIGURATIONS

__all__ = [
    "BoundReport",
    "best_known_softmax_code_value",
    "bound_report",
    "fejes_toth_bound",
    "known_softmax_code_value",
    "levenshtein_bound",
    "levenshtein_function",
    "levenshtein_max_cosine_bound",
    "min_distance_upper_bound",
    "orthoplex_bound",
    "rho_upper_bound",
    "simplex_bound",
]


def _check_classes(num_classes: object) -> int:
    return check_int("num_classes", num_classes, minimum=2)


def _check_dim(dim: object) -> int:
    return check_int("dim", dim, minimum=1)


def simplex_bound(num_classes: int) -> float:
    """Simplex bound on the minimum distance of ``K`` unit vectors: ``sqrt(2 + 2 / (K - 1))``.

    From ``|sum_k w_k|^2 >= 0``: the max cosine is at least ``-1 / (K - 1)``. Valid in every
    dimension, attained by the simplex ETF when ``K <= d + 1``.

    Args:
        num_classes: Number of points ``K >= 2``.

    Returns:
        The bound ``sqrt(2 K / (K - 1))``.

    Example:
        >>> simplex_bound(4)  # regular tetrahedron
        1.632993161855452
    """
    K = _check_classes(num_classes)
    return math.sqrt(2.0 * K / (K - 1))


def orthoplex_bound(num_classes: int, dim: int) -> float | None:
    """Rankin's orthoplex bound: ``K >= d + 2`` unit vectors have max cosine ``>= 0``.

    Args:
        num_classes: Number of points ``K >= 2``.
        dim: Dimension ``d >= 1``.

    Returns:
        ``sqrt(2)`` when ``K >= d + 2``, else ``None`` (the bound does not apply).

    Example:
        >>> orthoplex_bound(5, 3)
        1.4142135623730951
        >>> orthoplex_bound(4, 3) is None
        True
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    return math.sqrt(2.0) if d + 2 <= K else None


def _levenshtein_breaks(n: int) -> tuple[float, float, float, float]:
    return -1.0 / n, 0.0, (math.sqrt(n + 3.0) - 1.0) / (n + 2.0), 1.0 / math.sqrt(n + 2.0)


def levenshtein_function(dim: int, s: float) -> float:
    """Levenshtein's function ``L(n, s)`` (pieces ``L_1..L_4``) for ``n = dim >= 2``.

    A code on ``S^{n-1}`` with max cosine ``s <= 1/sqrt(n+2)`` has at most ``L(n, s)`` points:

    - ``L_1 = 1 - 1/s`` on ``[-1, -1/n]``;
    - ``L_2 = 2n(1 - s) / (1 - n s)`` on ``[-1/n, 0]``;
    - ``L_3 = n(1 - s)(2 + (n + 1) s) / (1 - n s^2)`` on ``[0, (sqrt(n + 3) - 1) / (n + 2)]``;
    - ``L_4 = 2n(1 - s)(1 + (n + 2) s) / (1 + 2 s - (n + 2) s^2)`` on
      ``[(sqrt(n + 3) - 1) / (n + 2), 1 / sqrt(n + 2)]``.

    The pieces join continuously and ``L`` increases from ``L(-1) = 2``.

    Args:
        dim: Dimension ``n >= 2``.
        s: Cosine in ``[-1, 1/sqrt(n + 2)]``.

    Returns:
        ``L(n, s)``.

    Raises:
        ValueError: If ``s`` is outside the domain of the four pieces.

    Example:
        >>> round(levenshtein_function(3, 1 / 5**0.5), 9)  # icosahedron
        12.0
    """
    n = check_int("dim", dim, minimum=2)
    b1, b2, b3, b4 = _levenshtein_breaks(n)
    if not (-1.0 <= s <= b4):
        raise ValueError(f"Expected `s` in [-1, 1/sqrt(dim + 2)] = [-1, {b4}], but got {s}.")
    if s <= b1:
        return 1.0 - 1.0 / s
    if s <= b2:
        return 2.0 * n * (1.0 - s) / (1.0 - n * s)
    if s <= b3:
        return n * (1.0 - s) * (2.0 + (n + 1.0) * s) / (1.0 - n * s * s)
    return 2.0 * n * (1.0 - s) * (1.0 + (n + 2.0) * s) / (1.0 + 2.0 * s - (n + 2.0) * s * s)


def levenshtein_max_cosine_bound(num_classes: int, dim: int) -> float:
    """Lower bound ``s*`` on the max cosine of ``K`` unit vectors in ``R^n`` (``n = dim >= 2``).

    ``s*`` is the smallest ``s`` with ``L(n, s) >= K`` (bisection to ``1e-15``; the returned value
    is the bisection's lower end, where ``L < K``, so it errs on the safe side). When ``K`` exceeds
    ``L(n, 1/sqrt(n + 2))`` (the end of piece ``L_4``) the max cosine must exceed
    ``1/sqrt(n + 2)`` and that value is returned: the bound saturates there (higher pieces
    ``L_5, L_6, ...`` would be needed to improve it).

    Args:
        num_classes: Number of points ``K >= 2``.
        dim: Dimension ``n >= 2``.

    Returns:
        ``s*`` in ``[-1, 1/sqrt(n + 2)]``.

    Example:
        >>> round(levenshtein_max_cosine_bound(27, 6), 12)  # Schlaefli code, max cosine 1/4
        0.25
    """
    K = _check_classes(num_classes)
    n = check_int("dim", dim, minimum=2)
    top = _levenshtein_breaks(n)[3]
    if levenshtein_function(n, -1.0) >= K:
        return -1.0
    if levenshtein_function(n, top) < K:
        return top
    lo, hi = -1.0, top
    while hi - lo > 1e-15:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if levenshtein_function(n, mid) >= K:
            hi = mid
        else:
            lo = mid
    return lo


def levenshtein_bound(num_classes: int, dim: int) -> float:
    """Levenshtein bound on the minimum distance, ``sqrt(2 - 2 s*)`` (``dim >= 2``).

    ``s*`` is :func:`levenshtein_max_cosine_bound`.

    Example:
        >>> round(levenshtein_bound(12, 3), 9)  # icosahedron: sqrt(2 - 2/sqrt5)
        1.051462224
    """
    return math.sqrt(2.0 - 2.0 * levenshtein_max_cosine_bound(num_classes, dim))


def fejes_toth_bound(num_classes: int) -> float:
    """Fejes Toth's bound for ``K >= 3`` points on ``S^2``: ``sqrt(4 - csc^2(pi K / (6 (K - 2))))``.

    Exact for ``K = 3, 4, 6, 12`` (triangle, tetrahedron, octahedron, icosahedron).

    Example:
        >>> round(fejes_toth_bound(6), 12)  # octahedron
        1.414213562373
    """
    K = check_int("num_classes", num_classes, minimum=3)
    angle = math.pi * K / (6.0 * (K - 2))
    return math.sqrt(max(0.0, 4.0 - 1.0 / math.sin(angle) ** 2))


def _degenerate(K: int, d: int) -> float | None:
    """Exact values (distance and rho coincide) for ``d = 1``."""
    if d == 1:
        return 2.0 if K == 2 else 0.0
    return None


def min_distance_upper_bound(num_classes: int, dim: int) -> float:
    """Best upper bound on the Tammes optimum ``T(d, K)`` (largest minimum distance).

    Exact where the optimum is proven: ``d = 2`` (``2 sin(pi / K)``), ``K <= d + 1`` (simplex,
    ``sqrt(2K / (K - 1))``), ``d + 2 <= K <= 2d`` (Rankin, ``sqrt 2``) and ``d = 1``. Otherwise the
    smallest of the simplex, orthoplex, Levenshtein and (``d = 3``) Fejes Toth bounds.

    Args:
        num_classes: Number of points ``K >= 2``.
        dim: Dimension ``d >= 1``.

    Returns:
        An upper bound on the minimum pairwise distance of any ``K`` unit vectors in ``R^d``.

    Example:
        >>> round(min_distance_upper_bound(12, 3), 9)
        1.051462224
    """
    return bound_report(num_classes, dim).min_distance


def known_softmax_code_value(num_classes: int, dim: int) -> float | None:
    """Proven closed forms of ``rho*(d, K)``, else ``None``.

    ``d = 2``: ``1 - cos(2 pi / K)`` (regular ``K``-gon); ``K <= d + 1``: ``K / (K - 1)`` (simplex
    ETF); ``d = 1``: ``2`` for ``K = 2``, ``0`` for ``K >= 3``. The value ``1`` for
    ``d + 2 <= K <= 2d`` is only observed numerically (PAPER.md section 4) and is not returned.

    Example:
        >>> known_softmax_code_value(4, 3)
        1.3333333333333333
        >>> known_softmax_code_value(6, 3) is None
        True
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    deg = _degenerate(K, d)
    if deg is not None:
        return deg
    if d == 2:
        return 1.0 - math.cos(2.0 * math.pi / K)
    if d + 1 >= K:
        return K / (K - 1)
    return None


def best_known_softmax_code_value(num_classes: int, dim: int) -> tuple[float, str] | None:
    """Best value ``rho`` of a configuration known to gnc, with its provenance.

    A proven optimum (:func:`known_softmax_code_value`) first; else ``1`` from a cross-polytope
    subset when ``d + 2 <= K <= 2d``; else the best registered configuration
    (:data:`~gnc.geometry.configurations.KNOWN_CONFIGURATIONS`) with ``K`` points in dimension
    ``<= d`` (embedding never lowers ``rho``). These are achieved values, so lower bounds on
    ``rho*``; their optimality is observed numerically only.

    Returns:
        ``(value, label)`` or ``None`` when gnc knows no configuration for ``(d, K)``.

    Example:
        >>> best_known_softmax_code_value(120, 4)  # doctest: +ELLIPSIS
        (0.190983005625..., 'known configuration cell600 ...')
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    proven = known_softmax_code_value(K, d)
    if proven is not None:
        label = "proven: degenerate d = 1" if d == 1 else "proven: regular polygon"
        if d > 2:
            label = "proven: simplex ETF"
        return proven, label
    if d + 2 <= K <= 2 * d:
        return 1.0, "cross-polytope subset (rho = 1 exactly; optimality observed numerically)"
    best: tuple[float, str] | None = None
    for c in KNOWN_CONFIGURATIONS.values():
        if c.num_points == K and c.dim <= d and (best is None or c.rho > best[0]):
            where = "" if c.dim == d else f" embedded from R^{c.dim}"
            best = (c.rho, f"known configuration {c.name}{where} (optimality observed numerically)")
    return best


@dataclass(frozen=True)
class BoundReport:
    """All applicable upper bounds for ``(d, K)``.

    Attributes:
        num_classes: ``K``.
        dim: ``d``.
        simplex: Simplex bound on the minimum distance.
        orthoplex: Orthoplex bound, ``None`` when ``K < d + 2``.
        levenshtein: Levenshtein bound, ``None`` when ``d < 2``.
        fejes_toth: Fejes Toth bound, ``None`` unless ``d = 3``.
        exact: Proven Tammes optimum when known (``d <= 2``, ``K <= d + 1``,
            ``d + 2 <= K <= 2d``), else ``None``.
        min_distance: The smallest of the above (an upper bound on ``T(d, K)``).
        best: Name of the bound attaining ``min_distance``.
        rho: Upper bound on ``rho*(d, K)``: ``min(min_distance, K / (K - 1))``, or the proven
            closed form.
    """

    num_classes: int
    dim: int
    simplex: float
    orthoplex: float | None
    levenshtein: float | None
    fejes_toth: float | None
    exact: float | None
    min_distance: float
    best: str
    rho: float


def bound_report(num_classes: int, dim: int) -> BoundReport:
    """Compute every applicable bound for ``K = num_classes`` points in ``R^dim``.

    Example:
        >>> r = bound_report(12, 3)
        >>> r.best, round(r.min_distance, 9), round(r.rho, 9)
        ('fejes_toth', 1.051462224, 1.051462224)
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    simplex = simplex_bound(K)
    orthoplex = orthoplex_bound(K, d)
    levenshtein = levenshtein_bound(K, d) if d >= 2 else None
    fejes = fejes_toth_bound(K) if d == 3 and K >= 3 else None
    exact = _degenerate(K, d)
    if exact is None:
        if d == 2:
            exact = 2.0 * math.sin(math.pi / K)
        elif d + 1 >= K:
            exact = simplex
        elif 2 * d >= K:
            exact = math.sqrt(2.0)
    candidates = {
        "exact": exact,
        "fejes_toth": fejes,
        "levenshtein": levenshtein,
        "orthoplex": orthoplex,
        "simplex": simplex,
    }
    best = min((v, name) for name, v in candidates.items() if v is not None)
    rho_proven = known_softmax_code_value(K, d)
    rho = rho_proven if rho_proven is not None else min(best[0], K / (K - 1))
    return BoundReport(K, d, simplex, orthoplex, levenshtein, fejes, exact, best[0], best[1], rho)


def rho_upper_bound(num_classes: int, dim: int) -> float:
    """Upper bound on the softmax-code value ``rho*(d, K)``.

    The proven closed form where known (``d <= 2`` or ``K <= d + 1``), else
    ``min(T_ub, K / (K - 1))`` with ``T_ub`` = :func:`min_distance_upper_bound`. For
    ``d + 2 <= K <= 2d`` this is ``min(sqrt 2, K / (K - 1))``, not ``1``: ``rho* = 1`` there is
    only observed numerically.

    Args:
        num_classes: Number of classes ``K >= 2``.
        dim: Feature dimension ``d >= 1``.

    Returns:
        A float ``>= rho(W)`` for every configuration ``W`` of ``K`` unit vectors in ``R^d``.

    Note:
        For ``K >> d`` this bound is weak (close to ``1``, while e.g. ``rho*(10, 100)`` is about
        ``0.66``): no sharper general bound on ``rho*`` than ``T`` and ``K / (K - 1)`` is known to
        us; Levenshtein's higher pieces ``L_5, L_6, ...`` would only sharpen ``T_ub``.

    Note:
        For ``K >> d`` this bound is weak (close to ``1``, while e.g. ``rho*(10, 100)`` is about
        ``0.66``): no sharper general bound on ``rho*`` than ``T`` and ``K / (K - 1)`` is known to
        us; Levenshtein's higher pieces ``L_5, L_6, ...`` would only sharpen ``T_ub``.

    Example:
        >>> round(rho_upper_bound(100, 10), 6)  # K / (K - 1) beats T_ub = 1.2013 here
        1.010101
    """
    return bound_report(num_classes, dim).rho
