"""The sharp codes of dimensions 21-23 (Cohn and Kumar, JAMS 2007, Table 1), built exactly.

A code is *sharp* when it has ``m`` inner products between distinct points and is a spherical
``(2m - 1)``-design; sharp codes meet the Levenshtein bound, so they are optimal spherical codes
and universally optimal (Cohn and Kumar, "Universally optimal distribution of points on
spheres", JAMS 20 (2007)). In each code below the nearest neighbours of every point ``w`` have
their centroid at ``s w`` (``s`` the max cosine), so ``rho = 1 - s`` at every class (the lower
bound ``D_k >= 1 - s_k`` of Jiang et al., "Generalized Neural Collapse for a Large Number of
Classes", ICML 2024, is attained). For an SRG code (below) the rows ``X`` satisfy ``A X = e X``
(``e`` the graph's smallest eigenvalue) and ``J X = 0``, so the non-neighbours of ``x`` in the
graph (its nearest points) sum to ``-(1 + e) x``. The tests certify every class of every code
with :func:`gnc.geometry.one_vs_rest_distances`.

==========================  =========  ================================  ==========  ========
builder                     (d, K)     inner products (count per point)  max cosine  design
==========================  =========  ================================  ==========  ========
``equiangular_23_552()``    (23, 552)  ``-1 (1), -1/5 (275), 1/5 (275)`` ``1/5``     5-design
``mclaughlin_22_275()``     (22, 275)  ``-1/4 (112), 1/6 (162)``         ``1/6``     4-design
``higman_sims_22_100()``    (22, 100)  ``-4/11 (22), 1/11 (77)``         ``1/11``    3-design
``srg162_21_162()``         (21, 162)  ``-2/7 (56), 1/7 (105)``          ``1/7``     3-design
``isotropic_21_112()``      (21, 112)  ``-1/3 (30), 1/9 (81)``           ``1/9``     3-design
==========================  =========  ================================  ==========  ========

The graphs of the smaller cosine are strongly regular: McLaughlin SRG(275, 112, 30, 56),
Higman-Sims SRG(100, 22, 0, 6), SRG(162, 56, 10, 24) and GQ(3, 9)'s SRG(112, 30, 2, 10).

Constructions, in integer arithmetic until the final rotation into ``R^d``:

- **Derived codes of the Leech lattice** (minimal vectors at norm 4): a type-3 vector ``c``
  (norm 6, the sum of two minimal vectors at inner product -1) has 552 minimal vectors ``v``
  with ``<v, c> = 3``; the ``v - c/2`` form 276 antipodal pairs at cosines ``+-1/5`` (the 276
  equiangular lines of ``R^23``). Fixing one of them, the 275 vectors at cosine ``+1/5`` to it,
  projected onto its orthogonal complement, are the McLaughlin code (cosines ``1/6, -1/4``;
  the graph of cosine ``-1/4`` is the McLaughlin graph). Fixing one McLaughlin point, its
  162 points at cosine ``1/6`` and its 112 points at cosine ``-1/4``, projected, are the two
  codes of ``R^21`` (the McLaughlin graph's second and first subconstituents; the latter is the
  collinearity graph of the generalized quadrangle GQ(3, 9), whose points are the totally
  isotropic lines of the Hermitian space of ``F_9^4``). Each projection of ``p`` along ``c``
  is written as ``|c|^2 p - <p, c> c`` and divided by the common gcd, so it stays integral.
- **Spectral embedding of a strongly regular graph** (:func:`strongly_regular_code`): for an
  SRG with eigenvalues ``k > r > s``, the orthogonal projections of the standard basis onto the
  ``s``-eigenspace have the Gram matrix ``(A - r I)(A - k I) / ((s - r)(s - k))``: cosine
  ``s / k`` between adjacent vertices and ``-(1 + s) / (n - k - 1)`` between the others. The
  Higman-Sims graph is built from the Steiner system ``S(3, 6, 22)`` of the Golay code's octads
  through two fixed coordinates: a point ``inf``, the 22 points and the 77 hexads, with ``inf``
  joined to the points, a point to the hexads through it, and two hexads when disjoint.

No ``(K, d) = (176, 22)`` sharp code exists: ``m = 2`` would need a 3-design meeting the
Levenshtein bound ``L_3(22, s) = 176``, whose root ``s = (sqrt(4113) - 21) / 306`` is irrational,
while two-distance sets with ``K > 2d + 3`` have rational inner products (Larman, Rogers and
Seidel 1977); ``m >= 3`` would need a 5-design, which has at least ``2 binom(23, 2) = 506``
points (Delsarte, Goethals and Seidel 1977). Table 1 of Cohn and Kumar lists none.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from gnc._checks import check_matrix
from gnc.geometry.configurations import Device, _finish, golay_code, leech_minimal_vectors
from gnc.geometry.pairwise import max_cosines
from gnc.io import Record

__all__ = [
    "TieCertificate",
    "equiangular_23_552",
    "higman_sims_22_100",
    "higman_sims_graph",
    "isotropic_21_112",
    "mclaughlin_22_275",
    "srg162_21_162",
    "srg_parameters",
    "strongly_regular_code",
    "tie_certificate",
]


def _leech_integral() -> np.ndarray:
    """The 196,560 minimal Leech vectors in integer coordinates (norm 32, ``sqrt 8`` scale)."""
    return np.rint(leech_minimal_vectors().numpy() * math.sqrt(32.0)).astype(np.int64)


def _derive(points: np.ndarray, center: np.ndarray, value: int) -> np.ndarray:
    """The integer ``points`` with ``<p, center> = value``, projected onto ``center``'s complement.

    The projection of ``p`` is ``|c|^2 p - <p, c> c`` divided by the gcd of all entries (a
    common positive scale, so every cosine is kept).
    """
    chosen = points[points @ center == value]
    out: np.ndarray = int(center @ center) * chosen - value * center[None, :]
    out //= int(np.gcd.reduce(np.abs(out).ravel()))
    if np.abs(out).max() > 2**20:  # inner products must stay far inside int64
        raise OverflowError("integer coordinates of a derived code grew too large")
    return out


@functools.lru_cache(maxsize=1)
def _equiangular_integral() -> np.ndarray:
    """The 552 integer vectors ``2v - c`` of the 276 equiangular lines (in ``R^24``, norm 80)."""
    L = _leech_integral()
    a = L[0]
    b = L[np.flatnonzero(L @ a == -8)[0]]  # cosine -1/4 (norm 32 each)
    c = a + b  # a type-3 vector: norm 48 = 6 * 8
    v = L[L @ c == 24]  # <v, c> = 3 at norm 4
    out: np.ndarray = 2 * v - c[None, :]
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=1)
def _mclaughlin_integral() -> np.ndarray:
    """The 275 integer vectors of the McLaughlin code (in ``R^24``)."""
    X = _equiangular_integral()
    x0 = X[0]
    out = _derive(X, x0, int(x0 @ x0) // 5)  # cosine +1/5 to the fixed line
    out.setflags(write=False)
    return out


def _mclaughlin_subconstituent(numerator: int, denominator: int) -> np.ndarray:
    """McLaughlin points at cosine ``numerator / denominator`` to the first one, projected."""
    M = _mclaughlin_integral()
    z0 = M[0]
    return _derive(M, z0, int(z0 @ z0) * numerator // denominator)


def _to_span(points: np.ndarray, rank: int) -> np.ndarray:
    """Integer rows of rank ``rank`` written in an orthonormal basis of their span (float64)."""
    P = points.astype(np.float64)
    _, sv, Vt = np.linalg.svd(P, full_matrices=False)
    if rank < len(sv) and sv[rank] > 1e-9 * sv[0]:
        raise ValueError(f"Expected rank {rank}, but got singular values {sv[: rank + 2]}.")
    coords: np.ndarray = P @ Vt[:rank].T
    return coords


def equiangular_23_552(
    *, dtype: torch.dtype = torch.float64, device: Device = None
) -> torch.Tensor:
    """The 552 unit vectors of the 276 equiangular lines of ``R^23`` (cosines ``+-1/5``).

    Derived from the Leech lattice (module docstring); a sharp code (5-design, 3 inner
    products) whose ``rho = 4/5``.

    Returns:
        Tensor of shape ``(552, 23)`` with unit rows.

    Example:
        >>> W = equiangular_23_552()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-1.0, -0.2, 0.2, 1.0]
    """
    return _finish(_to_span(_equiangular_integral(), 23), dtype, device)


def mclaughlin_22_275(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 275-point McLaughlin code of ``R^22`` (cosines ``1/6`` and ``-1/4``).

    The equiangular lines at cosine ``+1/5`` to a fixed one, projected (module docstring); the
    graph of cosine ``-1/4`` is the McLaughlin graph SRG(275, 112, 30, 56). A sharp code (two
    inner products, a spherical 4-design) with ``rho = 5/6``.

    Returns:
        Tensor of shape ``(275, 22)`` with unit rows.

    Example:
        >>> W = mclaughlin_22_275()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.25, 0.166666667, 1.0]
    """
    return _finish(_to_span(_mclaughlin_integral(), 22), dtype, device)


def srg162_21_162(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 162-point code of ``R^21`` (cosines ``1/7`` and ``-2/7``), SRG(162, 56, 10, 24).

    The McLaughlin points at cosine ``1/6`` to a fixed one (its non-neighbours in the
    McLaughlin graph), projected onto its complement. A sharp code with ``rho = 6/7``.

    Returns:
        Tensor of shape ``(162, 21)`` with unit rows.

    Example:
        >>> W = srg162_21_162()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.285714286, 0.142857143, 1.0]
    """
    return _finish(_to_span(_mclaughlin_subconstituent(1, 6), 21), dtype, device)


def isotropic_21_112(*, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """The 112-point code of ``R^21`` (cosines ``1/9`` and ``-1/3``), the GQ(3, 9) code.

    The McLaughlin points at cosine ``-1/4`` to a fixed one (its neighbours), projected onto its
    complement; the graph of cosine ``-1/3`` is the collinearity graph SRG(112, 30, 2, 10) of the
    generalized quadrangle GQ(3, 9) (Cohn and Kumar's isotropic subspaces with ``q = 3``). A sharp
    code with ``rho = 8/9``.

    Returns:
        Tensor of shape ``(112, 21)`` with unit rows.

    Example:
        >>> W = isotropic_21_112()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.333333333, 0.111111111, 1.0]
    """
    return _finish(_to_span(_mclaughlin_subconstituent(-1, 4), 21), dtype, device)


def srg_parameters(adjacency: np.ndarray) -> tuple[int, int, int, int]:
    """``(n, k, lambda, mu)`` of a strongly regular graph, checked exactly.

    Args:
        adjacency: ``(n, n)`` symmetric 0/1 matrix with a zero diagonal.

    Raises:
        ValueError: If the graph is not strongly regular (or not a simple graph).

    Example:
        >>> srg_parameters(higman_sims_graph())
        (100, 22, 0, 6)
    """
    A = np.asarray(adjacency, dtype=np.int64)
    n = A.shape[0]
    if A.shape != (n, n) or not np.array_equal(A, A.T) or A.diagonal().any() or (A > 1).any():
        raise ValueError(f"Expected a symmetric 0/1 `adjacency` with zero diagonal, got {A.shape}.")
    degrees = A.sum(axis=1)
    k = int(degrees[0])
    common = A @ A
    off = ~np.eye(n, dtype=bool)
    lam = set(common[(A == 1) & off].tolist())
    mu = set(common[(A == 0) & off].tolist())
    if (degrees != k).any() or len(lam) > 1 or len(mu) != 1:
        raise ValueError("Expected a strongly regular `adjacency`, but it is not.")
    return n, k, (lam.pop() if lam else 0), mu.pop()


def strongly_regular_code(adjacency: np.ndarray) -> np.ndarray:
    """The spectral code of an SRG: the standard basis projected onto its smallest eigenspace.

    With eigenvalues ``k > r > s`` the projection has the Gram matrix
    ``M / ((s - r)(s - k))``, ``M = (A - r I)(A - k I)`` (exact, integral for integral ``r, s``);
    the coordinates come from ``M``'s eigenvectors and the rows are normalized. Cosines: ``s/k``
    (adjacent), ``-(1 + s)/(n - k - 1)`` (non-adjacent).

    Args:
        adjacency: ``(n, n)`` adjacency matrix of a strongly regular graph.

    Returns:
        ``(n, m)`` float64 unit rows, ``m`` the multiplicity of ``s``.

    Example:
        >>> W = strongly_regular_code(higman_sims_graph())
        >>> W.shape, round(float((W @ W.T)[0, 1:].max()), 12)
        ((100, 22), 0.090909090909)
    """
    n, k, lam, mu = srg_parameters(adjacency)
    disc = math.isqrt((lam - mu) ** 2 + 4 * (k - mu))
    if disc * disc != (lam - mu) ** 2 + 4 * (k - mu) or (lam - mu + disc) % 2:
        raise ValueError("Expected an SRG with integral eigenvalues (a conference graph is not).")
    r, s = (lam - mu + disc) // 2, (lam - mu - disc) // 2
    A = np.asarray(adjacency, dtype=np.int64)
    eye = np.eye(n, dtype=np.int64)
    M = (A - r * eye) @ (A - k * eye)  # (s - r)(s - k) times the idempotent of s
    scale = (s - r) * (s - k)
    m = int(np.trace(M)) // scale  # the multiplicity of s
    values, vectors = np.linalg.eigh(M.astype(np.float64))
    coords = vectors[:, -m:] * np.sqrt(values[-m:])
    out: np.ndarray = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    return out


def higman_sims_graph() -> np.ndarray:
    """The Higman-Sims graph SRG(100, 22, 0, 6) from the Steiner system ``S(3, 6, 22)``.

    The 77 hexads are the Golay octads through coordinates 0 and 1, without them. Vertex 0 is
    ``inf``, vertices ``1..22`` the points, ``23..99`` the hexads.

    Returns:
        ``(100, 100)`` 0/1 adjacency matrix (``int64``).

    Example:
        >>> int(higman_sims_graph().sum()) // 2  # edges
        1100
    """
    code = golay_code()
    octads = code[(code.sum(axis=1) == 8) & (code[:, 0] == 1) & (code[:, 1] == 1)]
    hexads = octads[:, 2:].astype(np.int64)  # (77, 22)
    n = 1 + 22 + len(hexads)
    A = np.zeros((n, n), dtype=np.int64)
    A[0, 1:23] = 1
    A[1:23, 23:] = hexads.T
    A[23:, 23:] = (hexads @ hexads.T == 0).astype(np.int64)
    out: np.ndarray = A | A.T
    return out


def higman_sims_22_100(
    *, dtype: torch.dtype = torch.float64, device: Device = None
) -> torch.Tensor:
    """The 100-point Higman-Sims code of ``R^22`` (cosines ``1/11`` and ``-4/11``).

    The spectral code of the Higman-Sims graph in its eigenvalue ``-8`` (multiplicity 22), see
    :func:`strongly_regular_code`. A sharp code with ``rho = 10/11``.

    Returns:
        Tensor of shape ``(100, 22)`` with unit rows.

    Example:
        >>> W = higman_sims_22_100()
        >>> sorted(set(((W @ W.T).round(decimals=9) + 0.0).flatten().tolist()))
        [-0.363636364, 0.090909091, 1.0]
    """
    return _finish(strongly_regular_code(higman_sims_graph()), dtype, device)


@dataclass(frozen=True)
class TieCertificate(Record):
    """A proof that ``rho = 1 - max cosine`` for a code, without solving every class.

    Every point ``v`` of the hull of the other rows has ``<v, w_k> <= s`` (``s`` the max cosine),
    so ``D_k >= 1 - s`` at every class (Jiang et al., ICML 2024): ``lower``. At the witness class
    a linear program finds convex weights on its nearest neighbours with ``sum l_j w_j = s w_k``,
    a hull point at distance ``1 - s``: ``rho <= D_k <= upper``.

    Attributes:
        num_classes: ``K``.
        feature_dim: ``d``.
        rho: ``upper`` (attained at the witness class; ``rho`` lies in ``[lower, upper]``).
        lower: ``1 - s`` minus a rigorous bound on the float64 rounding of ``s`` and the norms.
        upper: ``|w_k - v|`` for the hull point ``v`` of the witness class.
        gap: ``upper - lower``.
        certified: Whether ``gap <= tol``.
        max_cosine: ``s``.
        witness: The class whose hull point gives ``upper``.
        support: Neighbours with a positive weight in that hull point.
        seconds: Wall time.
    """

    num_classes: int
    feature_dim: int
    rho: float
    lower: float
    upper: float
    gap: float
    certified: bool
    max_cosine: float
    witness: int
    support: int
    seconds: float


def tie_certificate(
    weights: torch.Tensor, *, tol: float = 1e-9, max_memory_mib: float | None = None
) -> TieCertificate:
    """Certify ``rho = 1 - max cosine`` by one linear program (for tie-heavy codes).

    For codes such as the Kerdock codes, whose classes have thousands of exactly tied nearest
    neighbours, this is much cheaper than solving every class with
    :func:`gnc.geometry.one_vs_rest_distances`: one tiled pass for the max cosine and one
    linear program (SciPy's HiGHS) at the class attaining it.

    Args:
        weights: ``(K, d)`` unit rows (``| |w| - 1 | <= 1e-12``), ``K >= 2``.
        tol: Gap tolerance for ``certified``.
        max_memory_mib: Memory budget of one block of inner products.

    Returns:
        A :class:`TieCertificate`.

    Raises:
        ValueError: If the rows are not unit, or if ``s w_k`` is not in the hull of the witness
            class's nearest neighbours (then ``rho > 1 - s`` may hold: use the exact solver).

    Example:
        >>> cert = tie_certificate(higman_sims_22_100())
        >>> cert.certified, round(cert.rho, 12), cert.support <= 23
        (True, 0.909090909091, True)
    """
    start = time.perf_counter()
    W = check_matrix("weights", weights, min_rows=2).detach().to("cpu", torch.float64)
    K, d = W.shape
    deviation = float((W.norm(dim=1) - 1.0).abs().max())
    if deviation > 1e-12:
        raise ValueError(f"Expected unit rows in `weights`, but got |norm - 1| = {deviation:.3g}.")
    values, _ = max_cosines(W, max_memory_mib=max_memory_mib)
    k = int(values.argmax())
    s = float(values[k])
    u = torch.finfo(torch.float64).eps / 2
    gamma = (d + 2) * u / (1 - (d + 2) * u)  # |fl(<a, b>) - <a, b>| <= gamma |a| |b|
    lower = 1.0 - s - gamma * (1.0 + deviation) ** 2 - 4.0 * deviation
    A = W.numpy()
    cos = A @ A[k]
    cos[k] = -np.inf
    near = np.flatnonzero(cos >= s - 1e-12)
    eq = np.vstack([A[near].T, np.ones(len(near))])
    rhs = np.concatenate([s * A[k], [1.0]])
    lp = linprog(np.zeros(len(near)), A_eq=eq, b_eq=rhs, bounds=(0, None), method="highs")
    if lp.status != 0:
        raise ValueError(
            f"Expected s w_k in the hull of class {k}'s {len(near)} nearest neighbours "
            "(rho = 1 - max cosine), but it is not: use one_vs_rest_distances."
        )
    weights_ = np.clip(lp.x, 0.0, None)
    weights_ /= weights_.sum()
    upper = float(np.linalg.norm(A[k] - weights_ @ A[near]))
    return TieCertificate(
        num_classes=K,
        feature_dim=d,
        rho=upper,
        lower=lower,
        upper=upper,
        gap=upper - lower,
        certified=upper - lower <= tol,
        max_cosine=s,
        witness=k,
        support=int((weights_ > 0).sum()),
        seconds=time.perf_counter() - start,
    )
