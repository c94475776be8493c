"""Upper bounds on the Tammes optimum and on the softmax-code value ``rho*(d, K)``.

For ``K`` unit vectors in ``R^d`` with max cosine ``s = max_{j != k} <w_j, w_k>`` the minimum
pairwise distance is ``sqrt(2 - 2 s)``, and ``rho <= min_k sqrt(2 (1 - s_k)) =`` that distance
(Jiang et al., ICML 2024), so ``rho*(d, K) <= T(d, K)``, the Tammes optimum. Every lower bound
on the max cosine therefore gives an upper bound on both:

- simplex bound: ``s >= -1/(K-1)`` (any ``d``), exact for ``K <= d + 1``;
- orthoplex (Rankin) bound: ``s >= 0`` when ``K >= d + 2``, exact for ``d + 2 <= K <= 2d``;
- Levenshtein bound (Levenshtein 1979, 1983; all pieces ``L_m``, ``n = d``, in
  :func:`levenshtein_function`), exact for the regular polygons and the sharp codes (simplex,
  cross-polytope, icosahedron, ``(5, 16)``, ``(6, 27)``, ``(7, 56)``, ``E8`` roots, Leech
  lattice minimal vectors);
- Fejes Toth bound for ``d = 3``, exact for ``K in {3, 4, 6, 12}``.

The softmax-code value is also at most ``K / (K - 1)``: ``D_k`` only depends on the points, and
``K`` points span an affine space of dimension at most ``K - 1`` where the simplex is optimal.
It is at most ``1`` when ``K >= d + 2`` (:func:`radon_bound`, proved there from Radon's theorem),
which is tighter than the Tammes chord wherever ``T_ub > 1`` and proves that the cross-polytope
subsets (``rho = 1``) are optimal softmax codes for ``d + 2 <= K <= 2d``. Applied inside a
spherical cap that must hold ``d + 2`` rows, the same argument gives ``sin(theta*)`` for
``K > 2d + 2`` (:func:`cap_radon_bound`), tighter still.

Degenerate dimension ``d = 1``: ``S^0 = {-1, +1}``; two antipodal points give distance and ``rho``
``2``, while ``K >= 3`` points must repeat one, so the minimum distance and ``rho`` are ``0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq
from scipy.special import betainc, eval_jacobi, roots_jacobi

from gnc._checks import check_int
from gnc.geometry.configurations import KNOWN_CONFIGURATIONS
from gnc.io import Record

__all__ = [
    "MAX_LEVENSHTEIN_DEGREE",
    "BoundReport",
    "bound_report",
    "cap_fraction",
    "cap_radon_bound",
    "fejes_toth_bound",
    "levenshtein_bound",
    "levenshtein_breakpoints",
    "levenshtein_function",
    "levenshtein_max_cosine_bound",
    "min_distance_upper",
    "orthoplex_bound",
    "radon_bound",
    "rho_star_best_known",
    "rho_star_proven",
    "rho_star_upper",
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


def radon_bound(num_classes: int, dim: int) -> float | None:
    """Upper bound ``rho*(d, K) <= 1`` for ``K >= d + 2`` unit vectors (``None`` otherwise).

    Proof. ``K >= d + 2`` points of ``R^d`` admit a Radon partition: disjoint index sets
    ``P, N`` and a point ``x = sum_{k in P} a_k w_k = sum_{j in N} b_j w_j`` with ``a, b``
    probability weights, ``a_k > 0`` on ``P``. For unit ``w_k``,

        sum_{k in P} a_k |w_k - x|^2 = sum_k a_k (1 - 2 <w_k, x> + |x|^2) = 1 - |x|^2 <= 1,

    so some ``k in P`` has ``|w_k - x| <= 1``. As ``x in conv{w_j : j in N}`` and ``N`` does not
    contain ``k``, ``D_k(W) <= |w_k - x| <= 1``, hence ``rho(W) = min_k D_k(W) <= 1``. The
    cross-polytope subsets attain it for ``d + 2 <= K <= 2d`` (``rho = 1``), so
    ``rho*(d, K) = 1`` there. This bound is on ``rho`` only: the Tammes optimum is ``sqrt 2`` on
    that range.

    Args:
        num_classes: Number of classes ``K >= 2``.
        dim: Feature dimension ``d >= 1``.

    Returns:
        ``1.0`` when ``K >= d + 2``, else ``None`` (the bound does not apply).

    Example:
        >>> radon_bound(5, 3)
        1.0
        >>> radon_bound(4, 3) is None
        True
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    return 1.0 if d + 2 <= K else None


def cap_fraction(theta: float, dim: int) -> float:
    """Normalized area of a spherical cap of angular radius ``theta`` on ``S^{d-1}``.

    ``sigma_d(theta) = I_{sin^2 theta}((d - 1) / 2, 1 / 2) / 2`` for ``0 <= theta <= pi / 2``
    (regularized incomplete beta function), and ``1 - sigma_d(pi - theta)`` beyond.

    Example:
        >>> round(cap_fraction(math.pi / 3, 3), 12)  # (1 - cos theta) / 2 on S^2
        0.25
    """
    d = _check_dim(dim)
    if not 0.0 <= theta <= math.pi:
        raise ValueError(f"Expected `theta` in [0, pi] but got {theta}.")
    if d == 1:
        return 0.5 if theta < math.pi else 1.0
    if theta > math.pi / 2:
        return 1.0 - cap_fraction(math.pi - theta, d)
    return 0.5 * float(betainc((d - 1) / 2.0, 0.5, math.sin(theta) ** 2))


def cap_radon_bound(num_classes: int, dim: int) -> float | None:
    """Upper bound ``rho*(d, K) <= sin(theta*)`` with ``K sigma_d(theta*) = d + 1``.

    Applies when ``K > 2d + 2`` (``None`` otherwise; then :func:`radon_bound` gives ``1``).

    Proof. Let ``sigma_d(theta)`` be the normalized area of a cap of angular radius
    ``theta <= pi / 2`` (:func:`cap_fraction`). For a uniformly random centre ``c`` the expected
    number of rows with ``<w_k, c> >= cos(theta)`` is ``K sigma_d(theta)``; if it exceeds
    ``d + 1``, some cap holds ``d + 2`` rows. Radon's theorem splits those into disjoint ``P, N``
    with ``x = sum_{k in P} a_k w_k = sum_{j in N} b_j w_j`` (probability weights). Every row of
    the cap has ``<w, c> >= cos(theta)``, hence ``|x| >= <x, c> >= cos(theta)``, and, as in
    :func:`radon_bound`, ``sum_{k in P} a_k |w_k - x|^2 = 1 - |x|^2 <= sin^2(theta)``: some
    ``k in P`` has ``D_k <= |w_k - x| <= sin(theta)``, since ``x`` lies in the hull of rows
    other than ``w_k``. This holds for every ``theta > theta*``, so ``rho <= sin(theta*)``. At
    ``theta = pi / 2`` it is the Radon bound ``1``.

    The root is found by bisection (Brent) to ``1e-15`` in ``theta`` and the returned value is
    taken at ``theta* + 1e-12``, so rounding in the root finder cannot make the bound too small.

    Args:
        num_classes: Number of classes ``K >= 2``.
        dim: Feature dimension ``d >= 1``.

    Returns:
        The bound, or ``None`` when ``d = 1`` or ``K <= 2d + 2``.

    Example:
        >>> round(cap_radon_bound(12, 3), 6)  # 6 (1 - cos theta) = 4: sin(theta) = sqrt(8) / 3
        0.942809
        >>> cap_radon_bound(8, 3) is None
        True
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    if d < 2 or 2 * (d + 1) >= K:
        return None

    def excess(theta: float) -> float:
        return K * cap_fraction(theta, d) - (d + 1)

    theta = brentq(excess, 0.0, math.pi / 2, xtol=1e-15)
    return math.sin(min(math.pi / 2, float(theta) + 1e-12))


MAX_LEVENSHTEIN_DEGREE = 400
"""Largest half-degree ``k`` of the Levenshtein pieces used (pieces ``L_1 .. L_{2k}``)."""

_BREAKS: dict[int, list[float]] = {}


def _breakpoints(n: int, upto: float, max_pieces: int) -> list[float]:
    """Breakpoints ``b_0 = -1 < b_1 < b_2 < ...`` of Levenshtein's pieces in dimension ``n``.

    Piece ``L_m`` lives on ``[b_{m-1}, b_m]`` with ``b_{2k-1} = t_k^{1,0}`` and
    ``b_{2k} = t_k^{1,1}``, the largest zeros of the Jacobi polynomials
    ``P_k^{(a+1, a)}`` and ``P_k^{(a+1, a+1)}``, ``a = (n - 3)/2``. Extended lazily (cached) until
    the last one reaches ``upto`` or ``max_pieces`` pieces exist.
    """
    b = _BREAKS.setdefault(n, [-1.0])
    a = (n - 3) / 2.0
    while len(b) <= max_pieces and (len(b) < 2 or b[-1] < upto):
        m = len(b)
        k = (m + 1) // 2
        beta = a if m % 2 else a + 1.0
        b.append(float(roots_jacobi(k, a + 1.0, beta)[0].max()))
    return b


def _gegenbauer(k: int, n: int, s: float) -> float:
    """Gegenbauer polynomial of degree ``k`` for ``S^{n-1}``, normalized to ``P_k(1) = 1``."""
    a = (n - 3) / 2.0
    return float(eval_jacobi(k, a, a, s) / eval_jacobi(k, a, a, 1.0))


def _levenshtein_piece(m: int, n: int, s: float) -> float:
    """``L_m(n, s)`` (Levenshtein 1992), with ``P_k`` the normalized Gegenbauer polynomials."""
    if m % 2:
        k = (m + 1) // 2
        p0, p1 = _gegenbauer(k - 1, n, s), _gegenbauer(k, n, s)
        return math.comb(k + n - 3, k - 1) * (
            (2 * k + n - 3) / (n - 1) - (p0 - p1) / ((1 - s) * p1)
        )
    k = m // 2
    p0, p1 = _gegenbauer(k, n, s), _gegenbauer(k + 1, n, s)
    ratio = (1 + s) * (p0 - p1) / ((1 - s) * (p0 + p1))
    return math.comb(k + n - 2, k) * ((2 * k + n - 1) / (n - 1) - ratio)


def levenshtein_function(dim: int, s: float, *, max_degree: int = MAX_LEVENSHTEIN_DEGREE) -> float:
    """Levenshtein's function ``L(n, s)`` for ``n = dim >= 2``.

    A code on ``S^{n-1}`` with max cosine ``s`` has at most ``L(n, s)`` points (Levenshtein 1992).

    ``L = L_m`` on ``[b_{m-1}, b_m]`` (see :func:`levenshtein_breakpoints`), with
    ``L_{2k-1} = C(k+n-3, k-1) [(2k+n-3)/(n-1) - (P_{k-1} - P_k)/((1-s) P_k)]`` and
    ``L_{2k} = C(k+n-2, k) [(2k+n-1)/(n-1) - (1+s)(P_k - P_{k+1})/((1-s)(P_k + P_{k+1}))]``,
    ``P_k`` the Gegenbauer polynomials of ``S^{n-1}`` normalized by ``P_k(1) = 1``. The first four
    pieces are Levenshtein's ``L_1 = 1 - 1/s``, ``L_2 = 2n(1-s)/(1-ns)``,
    ``L_3 = n(1-s)(2+(n+1)s)/(1-ns^2)``, ``L_4 = 2n(1-s)(1+(n+2)s)/(1+2s-(n+2)s^2)``. The
    pieces join continuously and ``L`` increases from ``L(-1) = 2``.

    Args:
        dim: Dimension ``n >= 2``.
        s: Cosine in ``[-1, b_{2 max_degree}]`` (the end of the last piece used).
        max_degree: Largest half-degree ``k`` of the pieces (pieces ``L_1 .. L_{2k}``).

    Returns:
        ``L(n, s)``.

    Raises:
        ValueError: If ``s`` is outside the domain of the pieces used.

    Example:
        >>> round(levenshtein_function(3, 1 / 5**0.5), 9)  # icosahedron
        12.0
        >>> round(levenshtein_function(8, 0.5), 6)  # E8 roots (piece L_7)
        240.0
    """
    n = check_int("dim", dim, minimum=2)
    kmax = check_int("max_degree", max_degree, minimum=2)
    s = float(s)
    b = _breakpoints(n, s, 2 * kmax)
    end = b[min(len(b) - 1, 2 * kmax)]
    if not (-1.0 <= s <= end):
        raise ValueError(
            f"Expected `s` in [-1, {end}] (Levenshtein pieces up to degree {kmax} for dim={n}), "
            f"but got {s}."
        )
    m = next(i for i in range(1, len(b)) if s <= b[i])
    return _levenshtein_piece(m, n, s)


def levenshtein_breakpoints(dim: int, num_pieces: int) -> tuple[float, ...]:
    """The first ``num_pieces + 1`` breakpoints ``-1 = b_0 < b_1 < ...`` of Levenshtein's function.

    ``b_1 = -1/n``, ``b_2 = 0``, ``b_3 = (sqrt(n+3) - 1)/(n+2)``, ``b_4 = 1/sqrt(n+2)``, ...

    Example:
        >>> [round(x, 12) for x in levenshtein_breakpoints(7, 4)]
        [-1.0, -0.142857142857, 0.0, 0.240253073352, 0.333333333333]
    """
    n = check_int("dim", dim, minimum=2)
    m = check_int("num_pieces", num_pieces, minimum=1)
    return tuple(_breakpoints(n, 2.0, m)[: m + 1])


def levenshtein_max_cosine_bound(
    num_classes: int, dim: int, *, max_degree: int = MAX_LEVENSHTEIN_DEGREE
) -> float:
    """Lower bound ``s*`` on the max cosine of ``K`` unit vectors in ``R^n`` (``n = dim >= 2``).

    ``s*`` is the smallest ``s`` with ``L(n, s) >= K`` (bisection to ``1e-15`` inside the piece
    where ``L`` crosses ``K``; the returned value is the bisection's lower end, where ``L < K``, so
    it errs on the safe side). When ``K`` exceeds ``L`` at the end of the last piece used
    (half-degree ``max_degree``), the max cosine must exceed that end point, which is returned:
    the bound saturates there.

    Args:
        num_classes: Number of points ``K >= 2``.
        dim: Dimension ``n >= 2``.
        max_degree: Largest half-degree of the pieces used.

    Returns:
        ``s*`` in ``[-1, 1)``.

    Example:
        >>> round(levenshtein_max_cosine_bound(27, 6), 12)  # Schlaefli code, max cosine 1/4
        0.25
    """
    K = _check_classes(num_classes)
    n = check_int("dim", dim, minimum=2)
    kmax = check_int("max_degree", max_degree, minimum=2)
    if K <= 2:
        return -1.0
    m = 1
    while True:
        b = _breakpoints(n, 2.0, m)
        if _levenshtein_piece(m, n, b[m]) >= K:
            break
        if m >= 2 * kmax:
            return b[m]
        m += 1
    lo, hi = b[m - 1], b[m]
    while hi - lo > 1e-15:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _levenshtein_piece(m, n, mid) >= K:
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


def min_distance_upper(num_classes: int, dim: int) -> float:
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
        >>> round(min_distance_upper(12, 3), 9)
        1.051462224
    """
    return bound_report(num_classes, dim).min_distance_upper


def rho_star_proven(num_classes: int, dim: int) -> float | None:
    """Proven closed forms of ``rho*(d, K)``, else ``None``.

    ``d = 2``: ``1 - cos(2 pi / K)`` (regular ``K``-gon); ``K <= d + 1``: ``K / (K - 1)`` (simplex
    ETF); ``d + 2 <= K <= 2d``: ``1`` (cross-polytope subsets attain it and :func:`radon_bound`
    proves ``rho* <= 1``); ``d = 1``: ``2`` for ``K = 2``, ``0`` for ``K >= 3``.

    Example:
        >>> rho_star_proven(4, 3)
        1.3333333333333333
        >>> rho_star_proven(6, 3)
        1.0
        >>> rho_star_proven(7, 3) is None
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
    if 2 * d >= K:
        return 1.0
    return None


def rho_star_best_known(num_classes: int, dim: int) -> tuple[float, str] | None:
    """Best value ``rho`` of a configuration known to gnc in closed form, with its provenance.

    A proven optimum (:func:`rho_star_proven`) first; else ``1`` from a cross-polytope
    subset when ``d + 2 <= K <= 2d``; else the best registered configuration
    (:data:`~gnc.geometry.configurations.KNOWN_CONFIGURATIONS`) with ``K`` points in dimension
    ``<= d`` (embedding never lowers ``rho``). These are achieved values, so lower bounds on
    ``rho*``; beyond the proven cases their optimality is observed numerically only. The
    certified codes of the shipped catalogue (numerical searches included) are
    :func:`gnc.codes.best_known`'s.

    Returns:
        ``(value, label)`` or ``None`` when gnc knows no configuration for ``(d, K)``.

    Example:
        >>> rho_star_best_known(120, 4)  # doctest: +ELLIPSIS
        (0.190983005625..., 'known configuration cell600 ...')
    """
    K, d = _check_classes(num_classes), _check_dim(dim)
    proven = rho_star_proven(K, d)
    if proven is not None:
        label = "proven: degenerate d = 1" if d == 1 else "proven: regular polygon"
        if d > 2:
            label = "proven: simplex ETF" if d + 1 >= K else "proven: cross-polytope subset"
        return proven, label
    best: tuple[float, str] | None = None
    for c in KNOWN_CONFIGURATIONS.values():
        if c.num_classes == K and c.feature_dim <= d and (best is None or c.rho > best[0]):
            where = "" if c.feature_dim == d else f" embedded from R^{c.feature_dim}"
            best = (c.rho, f"known configuration {c.name}{where} (optimality observed numerically)")
    return best


@dataclass(frozen=True)
class BoundReport(Record):
    """All applicable upper bounds for ``(d, K)``: on the Tammes optimum and on ``rho*(d, K)``.

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        simplex: Simplex bound on the minimum distance.
        orthoplex: Orthoplex bound, ``None`` when ``K < d + 2``.
        levenshtein: Levenshtein bound, ``None`` when ``d < 2``.
        fejes_toth: Fejes Toth bound, ``None`` unless ``d = 3``.
        exact: Proven Tammes optimum when known (``d <= 2``, ``K <= d + 1``,
            ``d + 2 <= K <= 2d``), else ``None``.
        min_distance_upper: The smallest of the above (an upper bound on ``T(d, K)``).
        min_distance_bound: Name of the bound attaining ``min_distance_upper``.
        rho_star_upper: Upper bound on ``rho*(d, K)``: ``min(min_distance_upper, K / (K - 1),
            radon, cap-radon)``, or the proven closed form.
        rho_star_bound: Name of the bound giving ``rho_star_upper``: ``"proven"``,
            ``"affine-simplex"`` (``K / (K - 1)``), ``"radon"``, ``"cap-radon"`` or
            ``min_distance_bound``.
    """

    num_classes: int
    feature_dim: int
    simplex: float
    orthoplex: float | None
    levenshtein: float | None
    fejes_toth: float | None
    exact: float | None
    min_distance_upper: float
    min_distance_bound: str
    rho_star_upper: float
    rho_star_bound: str


def bound_report(num_classes: int, dim: int) -> BoundReport:
    """Compute every applicable bound for ``K = num_classes`` points in ``R^dim``.

    Example:
        >>> r = bound_report(12, 3)
        >>> r.min_distance_bound, round(r.min_distance_upper, 9), round(r.rho_star_upper, 9)
        ('fejes_toth', 1.051462224, 0.942809042)
        >>> r.rho_star_bound
        'cap-radon'
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
    proven = rho_star_proven(K, d)
    radon = radon_bound(K, d)
    cap_radon = cap_radon_bound(K, d)
    rho, rho_name = min(
        (best[0], best[1]),
        (K / (K - 1), "affine-simplex"),
        (math.inf if radon is None else radon, "radon"),
        (math.inf if cap_radon is None else cap_radon, "cap-radon"),
    )
    if proven is not None:
        rho, rho_name = proven, "proven"
    return BoundReport(
        K, d, simplex, orthoplex, levenshtein, fejes, exact, best[0], best[1], rho, rho_name
    )


def rho_star_upper(num_classes: int, dim: int) -> float:
    """Upper bound on the softmax-code value ``rho*(d, K)``.

    The proven closed form where known (``d <= 2``, ``K <= 2d``), else
    ``min(T_ub, K / (K - 1), 1, sin(theta*))`` with ``T_ub`` = :func:`min_distance_upper`, ``1``
    from :func:`radon_bound` (``K >= d + 2``) and ``sin(theta*)`` from :func:`cap_radon_bound`
    (``K > 2d + 2``).

    Args:
        num_classes: Number of classes ``K >= 2``.
        dim: Feature dimension ``d >= 1``.

    Returns:
        A float ``>= rho(W)`` for every configuration ``W`` of ``K`` unit vectors in ``R^d``.

    Note:
        Beyond ``2d`` this bound is loose: e.g. ``(K, d) = (100, 10)``: ``T_ub = 1.201``, Radon
        ``1``, cap-Radon ``0.916``, while codes with ``rho ~ 0.66`` are known; ``(240, 8)``:
        ``0.785`` against E8's ``0.5``.

    Example:
        >>> round(rho_star_upper(100, 10), 4)  # cap-Radon beats T_ub = 1.2013, K/(K-1) and 1
        0.9155
    """
    return bound_report(num_classes, dim).rho_star_upper
