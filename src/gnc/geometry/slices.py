"""Slices of two lattice shells (E8's roots, the Leech lattice's minimal vectors) as code starts.

A *slice* of a finite set ``C`` of integer vectors through a center ``c`` at value ``t`` is
``{x in C : <x, c> = t}`` projected onto ``c``'s orthogonal complement. When ``c`` is a point of
``C`` this is Delsarte, Goethals and Seidel's *derived code*; every point of a slice has the same
norm, so the slice is again a spherical code, in one dimension less. Slicing a good code again
and again gives codes with fewer points in fewer dimensions that keep its large angles: the E8
roots give Gosset's 56 points (``R^7``), E7's roots, D5's 40 roots and the 24-cell; the
Leech lattice's minimal vectors give, through a center of type 3, the 276 equiangular lines of
``R^23`` and from them the sharp codes of 275 points in ``R^22`` and 162 and 112 points in
``R^21`` (see :mod:`gnc.geometry.sharp_codes`), and many more codes in ``R^20``-``R^23``.

:func:`lattice_slices` walks that tree once (cached): E8 down to ``R^3`` through a root and a
norm-4 vector, the Leech vectors down to ``R^20`` through centers of types 2, 3 and 4; below the
first level each slice is sliced through its first point at each of its inner products, and
slices with the same size, rank and inner-product profile of their first point are kept once.
:func:`slice_starts` turns the slices of rank exactly ``d`` with at least ``K`` points into
``(K, d)`` starting codes for the code search: ``K`` points picked by farthest insertion in angle
(:func:`farthest_subset`), in an orthonormal basis of their span. All slicing is in integer
arithmetic (as in :mod:`gnc.geometry.sharp_codes`), so the inner products are exact until the
final rotation.

Measured on gnc's catalogue (session 31): these cuts alone, unpolished, beat the searched codes
of 36 softmax shapes, e.g. ``(40, 5)`` (D5's roots, ``1 - max cosine = 1/2`` against 0.487),
``(50, 7)`` (50 of Gosset's points: 2/3 against 0.602), ``(100, 20)`` (0.875 against 0.848)
and ``(200, 20)`` (0.808 against 0.751).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from gnc._checks import check_int
from gnc.geometry.configurations import Device, e8_roots
from gnc.geometry.sharp_codes import _derive, _leech_integral, _to_span
from gnc.io import Record

__all__ = ["LatticeSlice", "farthest_subset", "lattice_slices", "slice_starts"]

#: Slices with more points are neither kept nor sliced further (the Leech shell's largest
#: slices have 93,150 and 48,600 points; every code the search starts from is far smaller).
MAX_SLICE_POINTS = 20_000

#: Slices with fewer points are not kept.
MIN_SLICE_POINTS = 4

#: Largest ``N * K`` for which a slice of ``N`` points is reduced to ``K`` (``O(N K d)`` work).
MAX_SUBSET_WORK = 20_000_000


@dataclass(frozen=True)
class LatticeSlice(Record):
    """One slice of a lattice shell.

    ``to_dict()`` leaves out ``rows``.

    Attributes:
        name: The path from the shell, e.g. ``"leech > type-3 center at 3 > 1/5 > -1/4"``:
            the first center and its inner product (in the lattice's units: Leech minimal
            vectors of norm 4, E8 roots of norm 2), then the cosine at each further slice.
        num_points: Points of the slice.
        rank: Dimension of their span.
        rows: ``(num_points, 24)`` or ``(num_points, 8)`` integer rows of equal norm (read-only).
    """

    name: str
    num_points: int
    rank: int
    rows: np.ndarray

    _omit_from_dict = ("rows",)


def _rank(P: np.ndarray) -> int:
    s = np.linalg.svd(P.astype(np.float64), compute_uv=False)
    return int((s > 1e-9 * s[0]).sum())


def _max_cosine(P: np.ndarray) -> float:
    X = P.astype(np.float64)
    G = (X @ X.T) / float(X[0] @ X[0])
    np.fill_diagonal(G, -np.inf)
    return float(G.max())


def _walk(
    P: np.ndarray, name: str, depth: int, found: dict[tuple[object, ...], LatticeSlice]
) -> None:
    """Keep ``P`` (unless seen) and slice it through its first point, ``depth`` more levels."""
    if not MIN_SLICE_POINTS <= len(P) <= MAX_SLICE_POINTS:
        return
    P = np.unique(P[np.any(P != 0, axis=1)], axis=0)  # projections can merge points
    if len(P) < MIN_SLICE_POINTS:
        return
    products = P @ P[0]
    values, counts = np.unique(products, return_counts=True)
    key = (len(P), _rank(P), tuple(counts.tolist()))
    if key in found:
        return
    P.setflags(write=False)
    found[key] = LatticeSlice(name, len(P), key[1], P)  # type: ignore[arg-type]
    if depth == 0:
        return
    norm = int(P[0] @ P[0])
    for v, n in zip(values.tolist(), counts.tolist(), strict=True):
        if v == norm or n < MIN_SLICE_POINTS:
            continue
        try:
            Q = _derive(P, P[0], int(v))
        except OverflowError:  # integer coordinates too large to slice on exactly
            continue
        _walk(Q, f"{name} > {Fraction(int(v), norm)}", depth - 1, found)


def _first_level(
    shell: np.ndarray,
    centers: dict[str, np.ndarray],
    unit: int,
    label: str,
    depth: int,
    found: dict[tuple[object, ...], LatticeSlice],
) -> None:
    """Slice ``shell`` through each center at each non-negative inner product, then walk on."""
    for cname, c in centers.items():
        values = np.unique(shell @ c)
        for v in values.tolist():
            if v < 0 or v == int(c @ c):  # negative values mirror positive ones
                continue
            Q = _derive(shell, c, int(v))
            _walk(Q, f"{label} > {cname} at {Fraction(int(v), unit)}", depth, found)


@functools.lru_cache(maxsize=1)
def _e8_slices() -> tuple[LatticeSlice, ...]:
    found: dict[tuple[object, ...], LatticeSlice] = {}
    # E8 roots scaled to integers (norm 8); a root and a norm-4 vector (two orthogonal roots).
    E = np.rint(math.sqrt(8.0) * e8_roots().numpy()).astype(np.int64)
    r = E[0]
    _walk(E.copy(), "e8", 0, found)
    centers = {"root": r, "norm-4 center": r + E[np.flatnonzero(E @ r == 0)[0]]}
    _first_level(E, centers, 4, "e8", 4, found)
    return tuple(found.values())


@functools.lru_cache(maxsize=1)
def _leech_slices() -> tuple[LatticeSlice, ...]:
    found: dict[tuple[object, ...], LatticeSlice] = {}
    # Leech minimal vectors scaled by sqrt 8 (norm 32): centers of types 2, 3 and 4.
    L = _leech_integral()
    a = L[0]
    centers = {
        "type-2 center": a,
        "type-3 center": a + L[np.flatnonzero(L @ a == -8)[0]],
        "type-4 center": a + L[np.flatnonzero(L @ a == 0)[0]],
    }
    _first_level(L, centers, 8, "leech", 3, found)
    return tuple(found.values())


def _sorted(slices: tuple[LatticeSlice, ...]) -> tuple[LatticeSlice, ...]:
    return tuple(sorted(slices, key=lambda s: (-s.rank, s.num_points, s.name)))


def lattice_slices(*, leech: bool = True) -> tuple[LatticeSlice, ...]:
    """The slices of the E8 roots (to ``R^3``) and of the Leech minimal vectors (to ``R^20``).

    Each tree is computed once per process (E8: milliseconds; Leech: a few seconds). The E8
    roots themselves are included; the Leech shell (196,560 points) is not.

    Args:
        leech: Include the Leech slices.

    Returns:
        The distinct slices, largest rank first, then fewest points.

    Example:
        >>> S = lattice_slices()
        >>> sorted(s.num_points for s in S if s.rank == 21)[:4]
        [42, 64, 112, 112]
        >>> any(s.num_points == 56 and s.rank == 7 for s in S)  # Gosset's 56 points
        True
    """
    return _sorted(_e8_slices() + (_leech_slices() if leech else ()))


def farthest_subset(X: np.ndarray, k: int, *, tries: int = 4) -> np.ndarray:
    """Indices of ``k`` rows of ``X`` with a small largest cosine, by farthest insertion.

    From each of the first ``tries`` rows in turn, repeatedly add the row whose largest cosine
    to the rows chosen so far is smallest (greedy max-min dispersion); keep the choice with the
    smallest largest cosine.

    Args:
        X: ``(N, d)`` nonzero rows.
        k: ``1 <= k <= N``.
        tries: Starting rows tried.

    Returns:
        ``k`` distinct indices (``int64``).

    Example:
        >>> X = np.array([[1.0, 0.0], [0.99, 0.1], [-1.0, 0.0], [0.0, 1.0]])
        >>> sorted(farthest_subset(X, 3).tolist())
        [0, 2, 3]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"Expected `X` of shape (N, d) with N >= 1, but got shape {X.shape}.")
    N = len(X)
    k = check_int("k", k, minimum=1)
    if k > N:
        raise ValueError(f"Expected `k` <= {N} rows, but got {k}.")
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    best: tuple[float, np.ndarray] | None = None
    for s in range(min(tries, N)):
        chosen = np.empty(k, dtype=np.int64)
        chosen[0] = s
        nearest = U @ U[s]
        nearest[s] = np.inf
        for i in range(1, k):
            j = int(np.argmin(nearest))
            chosen[i] = j
            np.maximum(nearest, U @ U[j], out=nearest)
            nearest[chosen[: i + 1]] = np.inf
        G = U[chosen] @ U[chosen].T
        np.fill_diagonal(G, -np.inf)
        value = float(G.max()) if k > 1 else -1.0
        if best is None or value < best[0]:
            best = (value, chosen)
    assert best is not None
    return best[1]


def slice_starts(
    num_classes: int,
    feature_dim: int,
    *,
    count: int = 2,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> list[tuple[str, torch.Tensor]]:
    """Up to ``count`` ``(K, d)`` codes cut from the lattice slices of rank exactly ``d``.

    Every slice of rank ``d`` with ``K <= N`` points (and ``N K`` at most
    :data:`MAX_SUBSET_WORK`) gives ``K`` of its points by :func:`farthest_subset`, written in an
    orthonormal basis of the slice's span and normalized; the ``count`` with the smallest
    largest cosine are returned, best first. Empty for shapes no slice covers (all shapes with
    ``9 <= d <= 16`` or ``d >= 24``, and most with ``17 <= d <= 19``).

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 1``.
        count: Codes returned at most.
        dtype: Dtype of the codes.
        device: Device of the codes.

    Returns:
        ``(name, code)`` pairs; ``name`` is the slice's, with ``", K of N"`` when a subset.

    Example:
        >>> [(name, tuple(X.shape)) for name, X in slice_starts(40, 5)][:1]
        [('e8 > norm-4 center at 0 > 0 > 0', (40, 5))]
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    count = check_int("count", count, minimum=0)
    return [
        (name, torch.from_numpy(X.copy()).to(device=device, dtype=dtype))
        for name, X in _cuts(K, d)[:count]
    ]


@functools.lru_cache(maxsize=64)
def _cuts(K: int, d: int) -> tuple[tuple[str, np.ndarray], ...]:
    """Every cut of :func:`slice_starts`, best first, as read-only unit rows in ``R^d``.

    Cached: a catalogue build asks for the same shape's cuts once per search.
    """
    cands: list[tuple[float, str, np.ndarray]] = []
    # The Leech slices of rank < 15 have at most 2 rank points (closed-form shapes), so the
    # Leech tree is only walked for d >= 15; E8's slices have rank <= 8.
    for s in lattice_slices(leech=d >= 15):
        if s.rank != d or s.num_points < K or s.num_points * K > MAX_SUBSET_WORK:
            continue
        rows = s.rows
        name = s.name
        if s.num_points > K:
            rows = rows[np.sort(farthest_subset(rows.astype(np.float64), K))]
            name = f"{name}, {K} of {s.num_points}"
        cands.append((_max_cosine(rows), name, rows))
    cands.sort(key=lambda c: (c[0], c[1]))
    out = []
    for _, name, rows in cands:
        X = _to_span(rows, d)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        X.setflags(write=False)
        out.append((name, X))
    return tuple(out)
