"""Known configurations: shapes, unit rows, exact inner-product sets, and rho against SciPy."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from gnc.geometry.configurations import (
    KNOWN_CONFIGURATIONS,
    cell24,
    cell600,
    clebsch_5_16,
    cross_polytope,
    e8_roots,
    gosset_7_56,
    icosahedron,
    known_configuration,
    known_configuration_names,
    regular_polygon,
    schlaefli_6_27,
    simplex_etf,
)
from helpers.qp_reference import scipy_one_vs_rest_solution

S5 = math.sqrt(5.0)
PHI = (1.0 + S5) / 2.0

# (id, builder, d, K, exact rho, exact off-diagonal inner-product set), written out by hand.
CASES: list[tuple[str, Callable[[], torch.Tensor], int, int, float, set[float]]] = [
    ("icosahedron", icosahedron, 3, 12, 1 - 1 / S5, {-1.0, 1 / S5, -1 / S5}),
    ("cell24", cell24, 4, 24, 0.5, {-1.0, -0.5, 0.0, 0.5}),
    (
        "cell600",
        cell600,
        4,
        120,
        (3 - S5) / 4,
        {-1.0, 0.0, 0.5, -0.5, PHI / 2, -PHI / 2, 1 / (2 * PHI), -1 / (2 * PHI)},
    ),
    ("clebsch_5_16", clebsch_5_16, 5, 16, 0.8, {0.2, -0.6}),
    ("schlaefli_6_27", schlaefli_6_27, 6, 27, 0.75, {0.25, -0.5}),
    ("gosset_7_56", gosset_7_56, 7, 56, 2 / 3, {-1.0, 1 / 3, -1 / 3}),
    ("e8_roots", e8_roots, 8, 240, 0.5, {-1.0, -0.5, 0.0, 0.5}),
    ("polygon2", lambda: regular_polygon(2), 2, 2, 2.0, {-1.0}),
    ("polygon3", lambda: regular_polygon(3), 2, 3, 1.5, {-0.5}),
    (
        "polygon7",
        lambda: regular_polygon(7),
        2,
        7,
        1 - math.cos(2 * math.pi / 7),
        {math.cos(2 * math.pi * j / 7) for j in (1, 2, 3)},
    ),
    (
        "polygon8",
        lambda: regular_polygon(8),
        2,
        8,
        1 - math.sqrt(0.5),
        {-1.0, 0.0, math.sqrt(0.5), -math.sqrt(0.5)},
    ),
    ("simplex2", lambda: simplex_etf(2), 1, 2, 2.0, {-1.0}),
    ("simplex5", lambda: simplex_etf(5), 4, 5, 5 / 4, {-1 / 4}),
    ("simplex10_in_12", lambda: simplex_etf(10, dim=12), 12, 10, 10 / 9, {-1 / 9}),
    ("cross4", lambda: cross_polytope(4), 4, 8, 1.0, {-1.0, 0.0}),
    ("cross5_sub7", lambda: cross_polytope(5, 7), 5, 7, 1.0, {-1.0, 0.0}),
    ("cross6_sub4", lambda: cross_polytope(6, 4), 6, 4, math.sqrt(4 / 3), {0.0}),
]
IDS = [c[0] for c in CASES]


def _offdiag_set(W: np.ndarray) -> np.ndarray:
    G = W @ W.T
    off = G[~np.eye(len(W), dtype=bool)]
    return np.unique(np.round(off, 9))


@pytest.mark.parametrize(("name", "build", "d", "K", "rho", "inner"), CASES, ids=IDS)
def test_shape_unit_rows_and_inner_products(
    name: str, build: Callable[[], torch.Tensor], d: int, K: int, rho: float, inner: set[float]
) -> None:
    W = build()
    assert W.dtype == torch.float64
    assert W.device.type == "cpu"
    assert tuple(W.shape) == (K, d)
    A = W.numpy()
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0, atol=1e-14)
    got = _offdiag_set(A)
    want = np.array(sorted(inner))
    assert got.shape == want.shape, (got, want)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # Exactness: every off-diagonal entry is within 1e-12 of the closed-form set.
    G = A @ A.T
    off = G[~np.eye(K, dtype=bool)]
    assert np.abs(off[:, None] - want[None, :]).min(axis=1).max() < 1e-12


@pytest.mark.parametrize(("name", "build", "d", "K", "rho", "inner"), CASES, ids=IDS)
def test_rho_matches_independent_qp(
    name: str, build: Callable[[], torch.Tensor], d: int, K: int, rho: float, inner: set[float]
) -> None:
    A = build().numpy()
    # All classes, except E8 (vertex-transitive; a spread of 12 classes keeps the suite fast).
    classes = range(0, K, 20) if K > 200 else range(K)
    dists = []
    for k in classes:
        sol = scipy_one_vs_rest_solution(A, k)
        assert sol.polished
        assert sol.distance - sol.lower_bound < 1e-12  # certified by the dual bound
        dists.append(sol.distance)
    assert min(dists) == pytest.approx(rho, abs=1e-12)
    if name in KNOWN_CONFIGURATIONS:  # symmetric codes: all D_k equal and rho = 1 - max cosine
        assert max(dists) == pytest.approx(rho, abs=1e-12)
        G = A @ A.T
        np.fill_diagonal(G, -np.inf)
        assert 1.0 - G.max() == pytest.approx(rho, abs=1e-12)


@pytest.mark.parametrize("name", ["icosahedron", "clebsch_5_16", "schlaefli_6_27"])
def test_slsqp_reference_matches_closed_form(name: str) -> None:
    A = known_configuration(name).build().numpy()
    for k in (0, 5):
        a = scipy_one_vs_rest_solution(A, k, method="slsqp").distance
        assert a == pytest.approx(known_configuration(name).rho, abs=1e-10)


def test_references_agree_on_random_configurations() -> None:
    rng = np.random.default_rng(1)
    for K, d in [(9, 2), (20, 4), (30, 6)]:
        W = rng.standard_normal((K, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        for k in range(3):
            a = scipy_one_vs_rest_solution(W, k)
            b = scipy_one_vs_rest_solution(W, k, method="slsqp")
            assert a.distance == pytest.approx(b.distance, abs=1e-9)
            assert a.distance - a.lower_bound < 1e-10
            # The lower bound of section 2 holds: D_k >= 1 - s_k.
            s = np.delete(W @ W[k], k).max()
            assert a.distance >= 1 - s - 1e-12


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_cross_polytope_subsets(d: int) -> None:
    for K in range(2, 2 * d + 1):
        A = cross_polytope(d, K).numpy()
        assert A.shape == (K, d)
        assert len({tuple(r) for r in A.tolist()}) == K  # distinct rows
        G = A @ A.T
        np.fill_diagonal(G, -1.0)
        assert G.max() <= 0.0  # all inner products <= 0, hence every D_k >= 1
        rho = min(scipy_one_vs_rest_solution(A, k).distance for k in range(K))
        if d >= K:
            assert rho == pytest.approx(math.sqrt(K / (K - 1)), abs=1e-12)
        else:  # K = d + 1 and the range d + 2 <= K <= 2d of Jiang et al. (ICML 2024)
            assert rho == pytest.approx(1.0, abs=1e-12)


def test_registry() -> None:
    names = known_configuration_names()
    assert set(names) == set(KNOWN_CONFIGURATIONS)
    keys = [
        (KNOWN_CONFIGURATIONS[n].feature_dim, KNOWN_CONFIGURATIONS[n].num_classes) for n in names
    ]
    assert keys == sorted(keys)
    for n in names:
        c = known_configuration(n)
        W = c.build()
        assert tuple(W.shape) == (c.num_classes, c.feature_dim)
        A = W.numpy()
        np.testing.assert_allclose(_offdiag_set(A), np.round(c.inner_products, 9), atol=1e-12)
        assert c.max_cosine == max(c.inner_products)
        assert c.rho == pytest.approx(1.0 - c.max_cosine, abs=1e-15)
        G = A @ A.T
        np.fill_diagonal(G, -np.inf)
        assert c.min_distance == pytest.approx(math.sqrt(2 - 2 * G.max()), abs=1e-12)


def test_simplex_gram_exact() -> None:
    for K in (2, 3, 7, 16):
        W = simplex_etf(K).numpy()
        G = W @ W.T
        np.testing.assert_allclose(G, np.eye(K) * (1 + 1 / (K - 1)) - 1 / (K - 1), atol=1e-14)
        np.testing.assert_allclose(W.sum(axis=0), 0.0, atol=1e-14)


@pytest.mark.parametrize(
    "build",
    [
        lambda **kw: regular_polygon(5, **kw),
        lambda **kw: simplex_etf(4, **kw),
        lambda **kw: cross_polytope(3, **kw),
        icosahedron,
        cell600,
        gosset_7_56,
    ],
)
def test_dtype_and_device(build: Callable[..., torch.Tensor], device: torch.device) -> None:
    W64 = build(device=device)
    assert W64.device.type == device.type
    W32 = build(dtype=torch.float32, device=device)
    assert W32.dtype == torch.float32
    assert W32.device.type == device.type
    torch.testing.assert_close(W32.double(), W64, rtol=0, atol=1e-7)


def test_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"num_points=5, dim=3"):
        simplex_etf(5, dim=3)
    with pytest.raises(ValueError, match=r"num_points=7, dim=3"):
        cross_polytope(3, 7)
    with pytest.raises(ValueError, match="num_points"):
        regular_polygon(1)
    with pytest.raises(TypeError, match="num_points"):
        regular_polygon(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim"):
        cross_polytope(0)
    with pytest.raises(TypeError, match="dtype"):
        icosahedron(dtype=torch.int64)
    with pytest.raises(KeyError, match="icosahedron"):
        known_configuration("dodecahedron")
