"""Exact known configurations of unit vectors (softmax codes and spherical codes).

(Over 600 lines: most of it is the exact coordinates of the ten configurations built here and
the table of every registered one; the d = 21-23 sharp codes are built in
:mod:`gnc.geometry.sharp_codes`.)

Every builder returns a float64 (by default) tensor of shape ``(K, d)`` whose rows are unit
vectors, built from exact integer or closed-form coordinates. Their softmax-code values
``rho(W) = min_k D_k(W)`` (Jiang et al., ICML 2024) are known in closed form:

========================  =========  ===========================  =============================
builder                   (d, K)     inner products (off-diag.)    rho
========================  =========  ===========================  =============================
``regular_polygon(K)``    (2, K)     ``cos(2 pi j / K)``           ``1 - cos(2 pi / K)``
``simplex_etf(K)``        (K-1, K)   ``-1/(K-1)``                  ``K / (K-1)``
``cross_polytope(d)``     (d, 2d)    ``{-1, 0}``                   ``1``
``icosahedron()``         (3, 12)    ``{-1, +-1/sqrt5}``           ``1 - 1/sqrt5``
``cell24()``              (4, 24)    ``{-1, +-1/2, 0}``            ``1/2``
``cell600()``             (4, 120)   ``{-1, +-phi/2, +-1/2, ...}`` ``1 - phi/2 = (3 - sqrt5)/4``
``clebsch_5_16()``        (5, 16)    ``{1/5, -3/5}``               ``4/5``
``schlaefli_6_27()``      (6, 27)    ``{1/4, -1/2}``               ``3/4``
``gosset_7_56()``         (7, 56)    ``{-1, +-1/3}``               ``2/3``
``e8_roots()``            (8, 240)   ``{-1, +-1/2, 0}``            ``1/2``
========================  =========  ===========================  =============================

The sharp codes of dimensions 21-23 (Cohn and Kumar, JAMS 2007: ``(d, K) = (21, 112),
(21, 162), (22, 100), (22, 275), (23, 552)``, ``rho = 8/9, 6/7, 10/11, 5/6, 4/5``) are built in
:mod:`gnc.geometry.sharp_codes` from the Leech vectors below and registered here.

For the symmetric codes (icosahedron and below) ``rho = 1 - max cosine``: the nearest
neighbours of each point ``w`` have their centroid at ``s w`` (``s`` the max cosine), so the
lower bound ``D_k >= 1 - s_k`` of Jiang et al. (ICML 2024) is attained.

:data:`KNOWN_CONFIGURATIONS` registers the fixed-size ones with their ``(d, K)``, exact ``rho``
and inner-product set.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gnc._checks import check_int
from gnc.io import Record

__all__ = [
    "KNOWN_CONFIGURATIONS",
    "KnownConfiguration",
    "cell24",
    "cell600",
    "clebsch_5_16",
    "cross_polytope",
    "e8_roots",
    "golay_code",
    "gosset_7_56",
    "icosahedron",
    "known_configuration",
    "known_configuration_names",
    "leech_kissing_23",
    "leech_minimal_vectors",
    "regular_polygon",
    "schlaefli_6_27",
    "simplex_etf",
]

_PHI = (1.0 + math.sqrt(5.0)) / 2.0

Device = torch.device | str | None


def _finish(points: np.ndarray, dtype: torch.dtype, device: Device) -> torch.Tensor:
    """Normalize rows in float64 and convert to the requested dtype and device."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"Expected `dtype` to be a floating torch.dtype, but got {dtype!r}.")
    pts = np.asarray(points, dtype=np.float64)
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    return torch.as_tensor(pts, dtype=torch.float64).to(dtype=dtype, device=device)


def _sum_zero_basis(n: int) -> np.ndarray:
    """Orthonormal basis of ``{x in R^n : sum(x) = 0}`` as rows (Helmert), shape ``(n - 1, n)``."""
    H = np.zeros((n - 1, n))
    for j in range(1, n):
        H[j - 1, :j] = 1.0
        H[j - 1, j] = -float(j)
        H[j - 1] /= math.sqrt(j * (j + 1))
    return H


def regular_polygon(
    num_points: int, *, dtype: torch.dtype = torch.float64, device: Device = None
) -> torch.Tensor:
    """The regular ``K``-gon on the unit circle, the softmax code for ``d = 2``.

    Row ``j`` is ``(cos(2 pi j / K), sin(2 pi j / K))``; ``rho = 1 - cos(2 pi / K)``
    (Jiang et al., ICML 2024).

    Args:
        num_points: Number of points ``K >= 2``.
        dtype: Floating dtype of the result.
        device: Device of the result (CPU by default).

    Returns:
        Tensor of shape ``(K, 2)`` with unit rows.

    Example:
        >>> regular_polygon(4)
        tensor([[ 1.0000e+00,  0.0000e+00],
                [ 6.1232e-17,  1.0000e+00],
                [-1.0000e+00,  1.2246e-16],
                [-1.8370e-16, -1.0000e+00]], dtype=torch.float64)
    """
    K = check_int("num_points", num_points, minimum=2)
    angles = 2.0 * np.pi * np.arange(K) / K
    return _finish(np.stack([np.cos(angles), np.sin(angles)], axis=1), dtype, device)


def simplex_etf(
    num_points: int,
    dim: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> torch.Tensor:
    """The simplex equiangular tight frame: ``K`` unit vectors with Gram off-diagonal ``-1/(K-1)``.

    Built from the centred standard basis ``e_i - 1/K`` of ``R^K`` written in an orthonormal
    basis of the hyperplane ``sum(x) = 0`` and padded with zeros up to ``dim``. It is the softmax
    code for ``K <= d + 1`` with ``rho = K / (K - 1)`` (classic neural collapse).

    Args:
        num_points: Number of points ``K >= 2``.
        dim: Ambient dimension ``d >= K - 1`` (default ``K - 1``).
        dtype: Floating dtype of the result.
        device: Device of the result (CPU by default).

    Returns:
        Tensor of shape ``(K, dim)`` with unit rows.

    Raises:
        ValueError: If ``K > dim + 1`` (no simplex of ``K`` points fits in ``R^dim``).

    Example:
        >>> W = simplex_etf(3)
        >>> (W @ W.T).round(decimals=12)
        tensor([[ 1.0000, -0.5000, -0.5000],
                [-0.5000,  1.0000, -0.5000],
                [-0.5000, -0.5000,  1.0000]], dtype=torch.float64)
    """
    K = check_int("num_points", num_points, minimum=2)
    d = K - 1 if dim is None else check_int("dim", dim, minimum=1)
    if d + 1 < K:
        raise ValueError(
            f"Expected `num_points` <= `dim` + 1 for a simplex, but got num_points={K}, dim={d}."
        )
    centred = np.eye(K) - 1.0 / K
    coords = centred @ _sum_zero_basis(K).T  # (K, K - 1)
    out = np.zeros((K, d))
    out[:, : K - 1] = coords
    return _finish(out, dtype, device)


def cross_polytope(
    dim: int,
    num_points: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> torch.Tensor:
    """The cross-polytope ``{+-e_i}`` of ``R^dim``, or a subset of it with ``num_points`` rows.

    With ``m = max(0, K - d)`` the rows are ``+e_0, -e_0, ..., +e_{m-1}, -e_{m-1}`` (``m``
    antipodal pairs) followed by the single vectors ``+e_m, ..., +e_{d-1}`` (or ``+e_0..+e_{K-1}``
    when ``K <= d``). All inner products are ``<= 0``, so every ``D_k >= 1``; for
    ``d + 2 <= K <= 2d`` there are at least two antipodal pairs, so ``0`` lies in the hull of the
    other points of every ``k`` and ``D_k = 1`` exactly: ``rho = 1`` on the whole range
    ``d + 2 <= K <= 2d`` (the value Jiang et al. (ICML 2024) reports numerically for softmax codes).
    For ``K <= d`` (orthonormal rows) ``rho = sqrt(K / (K - 1))``; for ``K = d + 1`` ``rho = 1``
    (the simplex ETF is better there).

    Args:
        dim: Ambient dimension ``d >= 1``.
        num_points: Number of points ``2 <= K <= 2d`` (default ``2d``).
        dtype: Floating dtype of the result.
        device: Device of the result (CPU by default).

    Returns:
        Tensor of shape ``(K, dim)`` with unit rows.

    Example:
        >>> cross_polytope(2)
        tensor([[ 1.,  0.],
                [-1.,  0.],
                [ 0.,  1.],
                [ 0., -1.]], dtype=torch.float64)
        >>> cross_polytope(3, 5)
        tensor([[ 1.,  0.,  0.],
                [-1.,  0.,  0.],
                [ 0.,  1.,  0.],
                [ 0., -1.,  0.],
                [ 0.,  0.,  1.]], dtype=torch.float64)
    """
    d = check_int("dim", dim, minimum=1)
    K = 2 * d if num_points is None else check_int("num_points", num_points, minimum=2)
    if 2 * d < K:
        raise ValueError(
            f"Expected `num_points` <= 2 * `dim` for a cross-polytope, "
            f"but got num_points={K}, dim={d}."
        )
    m = max(0, K - d)
    out = np.zeros((K, d))
    row = 0
    for i in range(m):
        out[row, i] = 1.0
        out[row + 1, i] = -1.0
        row += 2
    for i in range(m, m + K - 2 * m):
        out[row, i] = 1.0
        row += 1
    return _finish(out, dtype, device)


def icosahedron(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 12 vertices of the regular icosahedron, cyclic permutations of ``(0, +-1, +-phi)``.

    Inner products ``{-1, +-1/sqrt5}``; ``rho = 1 - 1/sqrt5`` (Jiang et al., ICML 2024). It is the
    Tammes optimum for 12 points on ``S^2`` and meets the Fejes Toth and Levenshtein bounds.

    Returns:
        Tensor of shape ``(12, 3)`` with unit rows.

    Example:
        >>> icosahedron().shape
        torch.Size([12, 3])
    """
    pts = []
    for a, b in itertools.product((1.0, -1.0), repeat=2):
        base = (0.0, a, b * _PHI)
        for shift in range(3):
            pts.append(base[-shift:] + base[:-shift] if shift else base)
    return _finish(np.array(pts), dtype, device)


def cell24(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 24 vertices of the 24-cell (the ``D_4`` roots ``+-e_i +- e_j``), normalized.

    Inner products ``{-1, +-1/2, 0}``; ``rho = 1/2``: the 8 nearest neighbours of ``w`` form a
    cube centred at ``w / 2``. It is the kissing configuration of ``R^4``; its optimality for the
    Tammes problem with 24 points is conjectured, not proven.

    Returns:
        Tensor of shape ``(24, 4)`` with unit rows.

    Example:
        >>> W = cell24()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    pts = []
    for i, j in itertools.combinations(range(4), 2):
        for a, b in itertools.product((1.0, -1.0), repeat=2):
            v = [0.0] * 4
            v[i], v[j] = a, b
            pts.append(v)
    return _finish(np.array(pts), dtype, device)


def _even_permutations(n: int) -> list[tuple[int, ...]]:
    out = []
    for perm in itertools.permutations(range(n)):
        inversions = sum(perm[a] > perm[b] for a in range(n) for b in range(a + 1, n))
        if inversions % 2 == 0:
            out.append(perm)
    return out


def cell600(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 120 vertices of the 600-cell (unit icosians).

    The 8 permutations of ``(+-1, 0, 0, 0)``, the 16 points ``(+-1/2, +-1/2, +-1/2, +-1/2)`` and
    the 96 even permutations of ``(+-phi, +-1, +-1/phi, 0) / 2``. The max cosine is
    ``phi / 2 = cos 36 deg`` and ``rho = 1 - phi/2 = (3 - sqrt5) / 4`` (Jiang et al., ICML 2024; the
    12 neighbours form an icosahedron centred at ``(phi/2) w``). Tammes-optimal (Andreev 1996).

    Returns:
        Tensor of shape ``(120, 4)`` with unit rows.

    Example:
        >>> cell600().shape
        torch.Size([120, 4])
    """
    pts: list[list[float]] = []
    for i in range(4):
        for a in (1.0, -1.0):
            v = [0.0] * 4
            v[i] = a
            pts.append(v)
    for signs in itertools.product((0.5, -0.5), repeat=4):
        pts.append(list(signs))
    base = (_PHI / 2.0, 0.5, 1.0 / (2.0 * _PHI), 0.0)
    for signs in itertools.product((1.0, -1.0), repeat=3):
        signed = (signs[0] * base[0], signs[1] * base[1], signs[2] * base[2], 0.0)
        for perm in _even_permutations(4):
            v = [0.0] * 4
            for src, dst in enumerate(perm):
                v[dst] = signed[src]
            pts.append(v)
    return _finish(np.array(pts), dtype, device)


def clebsch_5_16(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 16 points ``(+-1, ..., +-1) / sqrt5`` of ``R^5`` with an even number of minus signs.

    The vertices of the halved (demi-) 5-cube; inner products ``1 - 2h/5`` for Hamming distance
    ``h in {2, 4}``, i.e. ``{1/5, -3/5}``. A sharp code (it meets the Levenshtein bound, so it
    is Tammes-optimal); ``rho = 1 - 1/5 = 4/5`` (Jiang et al., ICML 2024).

    Returns:
        Tensor of shape ``(16, 5)`` with unit rows.

    Example:
        >>> W = clebsch_5_16()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.6, 0.2, 1.0]
    """
    pts = [s for s in itertools.product((1.0, -1.0), repeat=5) if s.count(-1.0) % 2 == 0]
    return _finish(np.array(pts), dtype, device)


def schlaefli_6_27(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 27 lines on a cubic surface as unit vectors of ``R^6`` (minimal vectors of ``E6*``).

    In the Picard lattice ``I^{1,6}`` (form ``diag(1, -1, ..., -1)``, basis ``L, E_1..E_6``) the
    lines are ``E_i`` (6), ``L - E_i - E_j`` (15) and ``2L - sum_{k != i} E_k`` (6). Projected
    onto the orthogonal complement of the canonical class ``K = -3L + sum E_i``, on which minus
    the form is positive definite, two lines ``l, m`` get the normalized inner product
    ``1/4 - (3/4) l.m``: ``1/4`` for skew lines and ``-1/2`` for intersecting ones. Coordinates:
    ``x = (x_0, u)`` in ``K^perp`` has ``-x.x = |u - mean(u)|^2 + x_0^2 / 2``, so ``R^6`` gets the
    5 Helmert coordinates of ``u`` and ``x_0 / sqrt2``. A sharp code; ``rho = 3/4``.

    Returns:
        Tensor of shape ``(27, 6)`` with unit rows.

    Example:
        >>> W = schlaefli_6_27()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.5, 0.25, 1.0]
    """
    lines: list[np.ndarray] = []
    for i in range(6):
        v = np.zeros(7)
        v[1 + i] = 1.0
        lines.append(v)
    for i, j in itertools.combinations(range(6), 2):
        v = np.zeros(7)
        v[0] = 1.0
        v[1 + i] = v[1 + j] = -1.0
        lines.append(v)
    for i in range(6):
        v = np.full(7, -1.0)
        v[0] = 2.0
        v[1 + i] = 0.0
        lines.append(v)
    canonical = np.array([-3.0] + [1.0] * 6)
    # canonical . canonical = 9 - 6 = 3 and l . canonical = -1, so the projection is l + K/3.
    proj = np.array(lines) + canonical / 3.0
    x0, u = proj[:, 0], proj[:, 1:]
    coords = np.concatenate([u @ _sum_zero_basis(6).T, x0[:, None] / math.sqrt(2.0)], axis=1)
    return _finish(coords, dtype, device)


def gosset_7_56(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 56 minimal vectors of ``E7*`` (vertices of the Gosset polytope ``3_21``) in ``R^7``.

    In ``R^8`` they are the permutations of ``+-(3, 3, -1, -1, -1, -1, -1, -1)``, which lie in the
    hyperplane ``sum(x) = 0``; they are written in an orthonormal basis of that hyperplane.
    Inner products ``{-1, +-1/3}``; a sharp code; ``rho = 1 - 1/3 = 2/3``.

    Returns:
        Tensor of shape ``(56, 7)`` with unit rows.

    Example:
        >>> W = gosset_7_56()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-1.0, -0.333333333, 0.333333333, 1.0]
    """
    pts = []
    for i, j in itertools.combinations(range(8), 2):
        v = np.full(8, -1.0)
        v[i] = v[j] = 3.0
        pts.extend([v, -v])
    coords = np.array(pts) @ _sum_zero_basis(8).T
    return _finish(coords, dtype, device)


def e8_roots(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 240 roots of ``E8``, normalized.

    ``+-e_i +- e_j`` (112) and ``(+-1/2)^8`` with an even number of minus signs (128). Inner
    products ``{-1, +-1/2, 0}``; ``rho = 1/2``. The kissing configuration of ``R^8``, a
    sharp code (universally optimal, Cohn and Kumar 2007).

    Returns:
        Tensor of shape ``(240, 8)`` with unit rows.

    Example:
        >>> e8_roots().shape
        torch.Size([240, 8])
    """
    pts: list[np.ndarray] = []
    for i, j in itertools.combinations(range(8), 2):
        for a, b in itertools.product((1.0, -1.0), repeat=2):
            v = np.zeros(8)
            v[i], v[j] = a, b
            pts.append(v)
    for signs in itertools.product((0.5, -0.5), repeat=8):
        if sum(s < 0 for s in signs) % 2 == 0:
            pts.append(np.array(signs))
    return _finish(np.array(pts), dtype, device)


def golay_code() -> np.ndarray:
    """The 4,096 codewords of the extended binary Golay code ``[24, 12, 8]``.

    Generator ``[I_12 | J - A]`` with ``A`` the adjacency matrix of the icosahedron (Conway and
    Sloane, *Sphere Packings, Lattices and Groups*, ch. 3); weights ``0^1 8^759 12^2576 16^759
    24^1``.

    Returns:
        ``(4096, 24)`` array of 0/1 (``uint8``).

    Example:
        >>> np.bincount(golay_code().sum(axis=1))[[0, 8, 12, 16, 24]].tolist()
        [1, 759, 2576, 759, 1]
    """
    P = icosahedron().numpy()
    G = P @ P.T
    np.fill_diagonal(G, -2.0)
    A = (G.max() - 1e-9 < G).astype(np.int64)
    gen = np.concatenate([np.eye(12, dtype=np.int64), 1 - A], axis=1)
    msgs = np.array(list(itertools.product((0, 1), repeat=12)), dtype=np.int64)
    out: np.ndarray = ((msgs @ gen) % 2).astype(np.uint8)
    return out


def leech_minimal_vectors(
    *, dtype: torch.dtype = torch.float64, device: Device = None
) -> torch.Tensor:
    """The 196,560 minimal vectors of the Leech lattice in ``R^24``, normalized.

    In coordinates scaled by ``sqrt 8`` (Conway and Sloane, ch. 4): ``(+-2^8, 0^16)`` on the 759
    octads with an even number of minus signs (97,152), ``(-+3, +-1^23)`` with the upper signs on
    a Golay codeword (98,304), and ``(+-4^2, 0^22)`` (1,104). Inner products
    ``{-1, +-1/2, +-1/4, 0}``; every vector has 4,600 neighbours at cosine 1/2, which are
    symmetric about ``w/2`` (``u -> w - u``), so ``w/2`` is in their hull and ``D_k = 1/2`` for
    every class: a tie-heavy code with ``K > 10^5``.

    Returns:
        Tensor of shape ``(196560, 24)`` with unit rows.

    Example:
        >>> W = leech_minimal_vectors()
        >>> W.shape, int((W[:1] @ W.T > 0.49).sum()) - 1  # neighbours of one vector
        (torch.Size([196560, 24]), 4600)
    """
    code = golay_code().astype(np.int64)
    octads = code[code.sum(axis=1) == 8]
    parts = []
    for octad in octads:
        pos = np.flatnonzero(octad)
        signs = np.array([s for s in itertools.product((1, -1), repeat=8) if s.count(-1) % 2 == 0])
        v = np.zeros((len(signs), 24), dtype=np.int64)
        v[:, pos] = 2 * signs
        parts.append(v)
    base = 1 - 2 * code  # +1 off the codeword, -1 on it
    v = np.repeat(base, 24, axis=0)
    at = np.tile(np.arange(24), len(base))
    v[np.arange(len(v)), at] *= -3
    parts.append(v)
    for i, j in itertools.combinations(range(24), 2):
        for a, b in itertools.product((4, -4), repeat=2):
            w = np.zeros((1, 24), dtype=np.int64)
            w[0, i], w[0, j] = a, b
            parts.append(w)
    return _finish(np.concatenate(parts).astype(np.float64), dtype, device)


def leech_kissing_23(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 4,600 neighbours of one minimal Leech vector, projected to ``R^23`` and normalized.

    The points ``u`` with ``<u, w> = 1/2`` for ``w = (4, 4, 0^22) / sqrt 32``, minus ``w / 2``,
    in an orthonormal basis of ``w^perp``. Centrally symmetric (``u -> w - u``); every point ties
    with many equidistant nearest neighbours: a tie-heavy test code.

    Returns:
        Tensor of shape ``(4600, 23)`` with unit rows.

    Example:
        >>> leech_kissing_23().shape
        torch.Size([4600, 23])
    """
    L = leech_minimal_vectors().numpy()
    w = np.zeros(24)
    w[0] = w[1] = 4.0 / math.sqrt(32.0)
    u = L[np.abs(L @ w - 0.5) < 1e-9] - w / 2
    Q, _ = np.linalg.qr(np.concatenate([w[:, None], np.eye(24)[:, 1:]], axis=1))
    return _finish(u @ Q[:, 1:], dtype, device)


def _sharp(name: str) -> Callable[..., torch.Tensor]:
    """The builder ``name`` of :mod:`gnc.geometry.sharp_codes`, imported when it is called.

    That module builds on this one (the Golay code, the Leech vectors), so this one cannot
    import it while loading.
    """

    def build(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
        from gnc.geometry import sharp_codes

        builder: Callable[..., torch.Tensor] = getattr(sharp_codes, name)
        return builder(dtype=dtype, device=device)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"The code of :func:`gnc.geometry.sharp_codes.{name}`."
    return build


@dataclass(frozen=True)
class KnownConfiguration(Record):
    """A registered fixed-size configuration with its exact invariants.

    ``to_dict()`` leaves out ``build``.

    Attributes:
        name: Registry key.
        feature_dim: Ambient dimension ``d``.
        num_classes: Number of points ``K``.
        rho: Exact softmax-code value ``rho(W) = min_k D_k`` (closed form, as a float).
        max_cosine: Exact largest off-diagonal inner product.
        inner_products: Sorted set of off-diagonal inner products (closed forms, as floats).
        build: Builder accepting ``dtype=`` and ``device=`` keywords.
        note: Provenance and optimality status.
    """

    name: str
    feature_dim: int
    num_classes: int
    rho: float
    max_cosine: float
    inner_products: tuple[float, ...]
    build: Callable[..., torch.Tensor]
    note: str

    @property
    def min_distance(self) -> float:
        """Minimum pairwise distance ``sqrt(2 - 2 max_cosine)`` (the Tammes objective)."""
        return math.sqrt(2.0 - 2.0 * self.max_cosine)

    _omit_from_dict: ClassVar[tuple[str, ...]] = ("build",)


_S5 = math.sqrt(5.0)

#: The known optimal configurations by name, each with its closed-form rho and how to build it.
KNOWN_CONFIGURATIONS: dict[str, KnownConfiguration] = {
    c.name: c
    for c in (
        KnownConfiguration(
            "icosahedron",
            3,
            12,
            1.0 - 1.0 / _S5,
            1.0 / _S5,
            (-1.0, -1.0 / _S5, 1.0 / _S5),
            icosahedron,
            "Tammes optimum (Schuette-van der Waerden 1951); softmax code (Jiang et al. 2024).",
        ),
        KnownConfiguration(
            "cell24",
            4,
            24,
            0.5,
            0.5,
            (-1.0, -0.5, 0.0, 0.5),
            cell24,
            "24-cell, kissing configuration of R^4; Tammes optimality conjectured.",
        ),
        KnownConfiguration(
            "cell600",
            4,
            120,
            (3.0 - _S5) / 4.0,
            _PHI / 2.0,
            tuple(
                sorted(
                    {-1.0, 0.0}
                    | {s * v for s in (1.0, -1.0) for v in (0.5, _PHI / 2.0, 1.0 / (2.0 * _PHI))}
                )
            ),
            cell600,
            "600-cell, Tammes optimum (Andreev 1996); softmax code (Jiang et al. 2024).",
        ),
        KnownConfiguration(
            "clebsch_5_16",
            5,
            16,
            0.8,
            0.2,
            (-0.6, 0.2),
            clebsch_5_16,
            "Halved 5-cube, sharp code (meets Levenshtein); softmax code (Jiang et al. 2024).",
        ),
        KnownConfiguration(
            "schlaefli_6_27",
            6,
            27,
            0.75,
            0.25,
            (-0.5, 0.25),
            schlaefli_6_27,
            "27 lines / E6*, sharp code (meets Levenshtein); softmax code (Jiang et al. 2024).",
        ),
        KnownConfiguration(
            "gosset_7_56",
            7,
            56,
            2.0 / 3.0,
            1.0 / 3.0,
            (-1.0, -1.0 / 3.0, 1.0 / 3.0),
            gosset_7_56,
            "E7* minimal vectors, sharp code (meets Levenshtein); softmax code (Jiang et al.).",
        ),
        KnownConfiguration(
            "e8_roots",
            8,
            240,
            0.5,
            0.5,
            (-1.0, -0.5, 0.0, 0.5),
            e8_roots,
            "E8 roots, sharp and universally optimal code; softmax code (Jiang et al. 2024).",
        ),
        KnownConfiguration(
            "isotropic_21_112",
            21,
            112,
            8.0 / 9.0,
            1.0 / 9.0,
            (-1.0 / 3.0, 1.0 / 9.0),
            _sharp("isotropic_21_112"),
            "GQ(3, 9) code, sharp (Cohn-Kumar 2007); McLaughlin's first subconstituent.",
        ),
        KnownConfiguration(
            "srg162_21_162",
            21,
            162,
            6.0 / 7.0,
            1.0 / 7.0,
            (-2.0 / 7.0, 1.0 / 7.0),
            _sharp("srg162_21_162"),
            "SRG(162, 56, 10, 24) code, sharp (Cohn-Kumar 2007); McLaughlin's second one.",
        ),
        KnownConfiguration(
            "higman_sims_22_100",
            22,
            100,
            10.0 / 11.0,
            1.0 / 11.0,
            (-4.0 / 11.0, 1.0 / 11.0),
            _sharp("higman_sims_22_100"),
            "Higman-Sims code, sharp (Cohn-Kumar 2007).",
        ),
        KnownConfiguration(
            "mclaughlin_22_275",
            22,
            275,
            5.0 / 6.0,
            1.0 / 6.0,
            (-0.25, 1.0 / 6.0),
            _sharp("mclaughlin_22_275"),
            "McLaughlin code, sharp (Cohn-Kumar 2007), a derived code of the Leech lattice.",
        ),
        KnownConfiguration(
            "equiangular_23_552",
            23,
            552,
            0.8,
            0.2,
            (-1.0, -0.2, 0.2),
            _sharp("equiangular_23_552"),
            "276 equiangular lines of R^23, sharp (Cohn-Kumar 2007), derived from Leech.",
        ),
    )
}


def known_configuration_names() -> tuple[str, ...]:
    """Names accepted by :func:`known_configuration`, sorted by ``(d, K)``.

    Example:
        >>> known_configuration_names()[:2]
        ('icosahedron', 'cell24')
    """
    return tuple(
        sorted(
            KNOWN_CONFIGURATIONS,
            key=lambda n: (
                KNOWN_CONFIGURATIONS[n].feature_dim,
                KNOWN_CONFIGURATIONS[n].num_classes,
            ),
        )
    )


def known_configuration(name: str) -> KnownConfiguration:
    """Look up a registered configuration by name.

    Args:
        name: One of :func:`known_configuration_names`.

    Returns:
        The :class:`KnownConfiguration`; call ``.build()`` for the ``(K, d)`` tensor.

    Raises:
        KeyError: If ``name`` is not registered.

    Example:
        >>> c = known_configuration("icosahedron")
        >>> (c.feature_dim, c.num_classes, round(c.rho, 7))
        (3, 12, 0.5527864)
        >>> c.build().shape
        torch.Size([12, 3])
    """
    if not isinstance(name, str) or name not in KNOWN_CONFIGURATIONS:
        raise KeyError(
            f"Expected `name` in {sorted(KNOWN_CONFIGURATIONS)}, but got {name!r}."
        ) from None
    return KNOWN_CONFIGURATIONS[name]
