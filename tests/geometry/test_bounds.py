"""Upper bounds: validity on known optimal codes, tightness where exact, monotonicity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnc.geometry.bounds import (
    bound_report,
    cap_fraction,
    cap_radon_bound,
    fejes_toth_bound,
    levenshtein_bound,
    levenshtein_breakpoints,
    levenshtein_function,
    levenshtein_max_cosine_bound,
    min_distance_upper,
    orthoplex_bound,
    radon_bound,
    rho_star_best_known,
    rho_star_proven,
    rho_star_upper,
    simplex_bound,
)
from gnc.geometry.configurations import (
    KNOWN_CONFIGURATIONS,
    cross_polytope,
    regular_polygon,
    simplex_etf,
)

S5 = math.sqrt(5.0)


def _min_distance(W: torch.Tensor) -> float:
    A = W.numpy()
    G = A @ A.T
    np.fill_diagonal(G, -np.inf)
    return math.sqrt(max(0.0, 2.0 - 2.0 * G.max()))


def _configurations() -> list[tuple[str, torch.Tensor, float]]:
    """(name, W, rho) with rho from closed forms (verified against SciPy in test_configurations)."""
    out = [(n, c.build(), c.rho) for n, c in KNOWN_CONFIGURATIONS.items()]
    out += [(f"polygon{K}", regular_polygon(K), 1 - math.cos(2 * math.pi / K)) for K in (3, 5, 9)]
    out += [(f"simplex{K}", simplex_etf(K), K / (K - 1)) for K in (2, 4, 7)]
    out += [(f"simplex{K}in{d}", simplex_etf(K, d), K / (K - 1)) for K, d in ((3, 5), (5, 9))]
    out += [(f"cross{d}_{K}", cross_polytope(d, K), 1.0) for d, K in ((3, 6), (4, 7), (6, 8))]
    return out


CONFIGS = _configurations()


@pytest.mark.parametrize(("name", "W", "rho"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bounds_hold_on_known_configurations(name: str, W: torch.Tensor, rho: float) -> None:
    K, d = W.shape
    dist = _min_distance(W)
    report = bound_report(K, d)
    tol = 1e-12
    assert report.simplex >= dist - tol
    for value in (report.orthoplex, report.levenshtein, report.fejes_toth, report.exact):
        if value is not None:
            assert value >= dist - tol
    assert min_distance_upper(K, d) >= dist - tol
    assert rho_star_upper(K, d) >= rho - tol
    # rho <= T: the softmax value never exceeds the minimum distance.
    assert rho <= dist + tol
    # Embedding in a larger dimension keeps the configuration valid there too.
    assert min_distance_upper(K, d + 3) >= dist - tol
    assert rho_star_upper(K, d + 3) >= rho - tol
    best = rho_star_best_known(K, d)
    assert best is not None
    assert best[0] >= rho - tol


@pytest.mark.parametrize(
    ("name", "d", "K", "max_cosine"),
    [
        ("icosahedron", 3, 12, 1 / S5),
        ("clebsch_5_16", 5, 16, 0.2),
        ("schlaefli_6_27", 6, 27, 0.25),
        ("gosset_7_56", 7, 56, 1 / 3),
        ("pentagon", 2, 5, math.cos(2 * math.pi / 5)),
        ("hexagon", 2, 6, 0.5),
        ("tetrahedron", 3, 4, -1 / 3),
        ("octahedron", 3, 6, 0.0),
        ("heptagon", 2, 7, math.cos(2 * math.pi / 7)),
        ("13-gon", 2, 13, math.cos(2 * math.pi / 13)),
        ("e8_roots", 8, 240, 0.5),  # piece L_7
        ("leech", 24, 196560, 0.5),  # kissing configuration of the Leech lattice, piece L_11
    ],
)
def test_levenshtein_is_tight_on_sharp_codes(name: str, d: int, K: int, max_cosine: float) -> None:
    assert levenshtein_max_cosine_bound(K, d) == pytest.approx(max_cosine, abs=1e-12)
    assert levenshtein_max_cosine_bound(K, d) <= max_cosine + 1e-14  # errs on the safe side
    assert levenshtein_bound(K, d) == pytest.approx(math.sqrt(2 - 2 * max_cosine), abs=1e-12)
    if name in KNOWN_CONFIGURATIONS:
        assert min_distance_upper(K, d) == pytest.approx(
            KNOWN_CONFIGURATIONS[name].min_distance, abs=1e-12
        )


def test_levenshtein_pieces_hand_values() -> None:
    # L1 = 1 - 1/s: at s = -1/2 (n = 3): 3.
    assert levenshtein_function(3, -0.5) == pytest.approx(3.0, abs=1e-14)
    # L2 = 2n(1 - s)/(1 - n s): n = 3, s = -0.1 -> 6 * 1.1 / 1.3.
    assert levenshtein_function(3, -0.1) == pytest.approx(6.6 / 1.3, abs=1e-14)
    # L3 = n(1 - s)(2 + (n + 1)s)/(1 - n s^2): n = 3, s = 0.1 -> 3 * 0.9 * 2.4 / 0.97.
    assert levenshtein_function(3, 0.1) == pytest.approx(6.48 / 0.97, abs=1e-13)
    # L4 = 2n(1 - s)(1 + (n + 2)s)/(1 + 2s - (n + 2)s^2): n = 3, s = 0.4 -> 6*0.6*3/(1.8 - 0.8).
    assert levenshtein_function(3, 0.4) == pytest.approx(10.8, abs=1e-13)
    # n = 10, s = 0.25 (L4 piece, since (sqrt13 - 1)/12 = 0.217): 20 * 0.75 * 4 / (1.5 - 0.75).
    assert levenshtein_function(10, 0.25) == pytest.approx(80.0, abs=1e-12)


def _paper_pieces(n: int, s: float) -> float:
    """Levenshtein's closed forms L_1..L_4, written out independently of gnc."""
    if s <= -1 / n:
        return 1 - 1 / s
    if s <= 0:
        return 2 * n * (1 - s) / (1 - n * s)
    if s <= (math.sqrt(n + 3) - 1) / (n + 2):
        return n * (1 - s) * (2 + (n + 1) * s) / (1 - n * s * s)
    return 2 * n * (1 - s) * (1 + (n + 2) * s) / (1 + 2 * s - (n + 2) * s * s)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 50, 512])
def test_general_levenshtein_matches_paper_pieces(n: int) -> None:
    b = levenshtein_breakpoints(n, 4)
    expected = (-1.0, -1 / n, 0.0, (math.sqrt(n + 3) - 1) / (n + 2), 1 / math.sqrt(n + 2))
    np.testing.assert_allclose(b, expected, atol=1e-13)
    for s in np.linspace(-1.0, 1 / math.sqrt(n + 2), 301):
        assert levenshtein_function(n, float(s)) == pytest.approx(
            _paper_pieces(n, float(s)), rel=1e-11
        )
    # The end of L_4 has the closed form n (n + 1).
    assert levenshtein_function(n, 1 / math.sqrt(n + 2)) == pytest.approx(n * (n + 1.0), rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 50])
def test_levenshtein_breakpoints_continuous_and_increasing(n: int) -> None:
    b = levenshtein_breakpoints(n, 12)
    assert np.all(np.diff(b) > 0)
    assert levenshtein_function(n, -1.0) == pytest.approx(2.0)
    assert levenshtein_function(n, -1 / n) == pytest.approx(n + 1.0)  # simplex
    assert levenshtein_function(n, 0.0) == pytest.approx(2.0 * n)  # cross-polytope
    for x in b[1:-1]:
        left = levenshtein_function(n, x - 1e-10)
        right = levenshtein_function(n, x + 1e-10)
        assert abs(left - right) < 1e-6 * max(1.0, abs(left))
    s = np.linspace(-1.0, b[-1], 3001)
    values = np.array([levenshtein_function(n, float(x)) for x in s])
    assert np.all(np.diff(values) > 0)


def test_levenshtein_saturates_beyond_last_piece() -> None:
    n = 8  # with pieces L_1..L_4 only, L ends at s = 1/sqrt(10) with L = n(n + 1) = 72
    top = 1 / math.sqrt(10)
    assert levenshtein_max_cosine_bound(72, n, max_degree=2) == pytest.approx(top, abs=1e-13)
    assert levenshtein_max_cosine_bound(240, n, max_degree=2) == pytest.approx(top, abs=1e-15)
    assert levenshtein_max_cosine_bound(240, n) == pytest.approx(0.5, abs=1e-12)
    # Saturated values stay valid for E8 (max cosine 1/2 > 1/sqrt 10).
    assert levenshtein_bound(240, n) >= KNOWN_CONFIGURATIONS["e8_roots"].min_distance - 1e-12
    with pytest.raises(ValueError, match="`s` in"):
        levenshtein_function(n, 0.5, max_degree=2)


def test_levenshtein_valid_on_600_cell_and_random_codes() -> None:
    cell = KNOWN_CONFIGURATIONS["cell600"]
    assert levenshtein_max_cosine_bound(120, 4) <= cell.max_cosine
    rng = np.random.default_rng(0)
    for K, d in [(50, 3), (200, 5), (1000, 10)]:
        W = rng.standard_normal((K, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        G = W @ W.T
        np.fill_diagonal(G, -np.inf)
        assert levenshtein_max_cosine_bound(K, d) <= G.max()


def test_fejes_toth_exact_cases_and_tammes_optima() -> None:
    exact = {3: math.sqrt(3), 4: math.sqrt(8 / 3), 6: math.sqrt(2), 12: math.sqrt(2 - 2 / S5)}
    for K, value in exact.items():
        assert fejes_toth_bound(K) == pytest.approx(value, abs=1e-12)
    # Known Tammes optima on S^2 (max cosines from the literature; N = 13 Musin-Tarasov 2012,
    # N = 24 Robinson 1961, the snub cube).
    for K, c in ((13, 0.5426364868), (24, 0.7230784683)):
        dist = math.sqrt(2 - 2 * c)
        assert fejes_toth_bound(K) >= dist
        assert min_distance_upper(K, 3) >= dist
        # ... and not vacuous: within 10 % of the optimum (6.0 % for N = 13, 2.2 % for N = 24).
        assert fejes_toth_bound(K) < 1.1 * dist


def test_exact_values() -> None:
    for K in range(2, 30):
        assert min_distance_upper(K, 2) == pytest.approx(2 * math.sin(math.pi / K))
        assert rho_star_upper(K, 2) == pytest.approx(1 - math.cos(2 * math.pi / K))
        assert rho_star_proven(K, 2) == pytest.approx(1 - math.cos(2 * math.pi / K))
    for d in range(3, 12):
        for K in range(2, d + 2):
            assert min_distance_upper(K, d) == pytest.approx(math.sqrt(2 * K / (K - 1)))
            assert rho_star_upper(K, d) == K / (K - 1)
            assert rho_star_proven(K, d) == K / (K - 1)
            assert rho_star_best_known(K, d) == (K / (K - 1), "proven: simplex ETF")
        for K in range(d + 2, 2 * d + 1):
            assert min_distance_upper(K, d) == pytest.approx(math.sqrt(2))
            # rho* = 1 there: attained by cross-polytope subsets, bounded by the Radon bound.
            assert radon_bound(K, d) == 1.0
            assert rho_star_upper(K, d) == 1.0
            assert rho_star_proven(K, d) == 1.0
            value, label = rho_star_best_known(K, d)  # type: ignore[misc]
            assert value == 1.0
            assert label == "proven: cross-polytope subset"


def test_degenerate_dimension_one() -> None:
    assert min_distance_upper(2, 1) == 2.0
    assert rho_star_upper(2, 1) == 2.0
    for K in (3, 4, 10):
        assert min_distance_upper(K, 1) == 0.0
        assert rho_star_upper(K, 1) == 0.0
        assert rho_star_proven(K, 1) == 0.0
    assert bound_report(5, 1).levenshtein is None


def test_best_known_values() -> None:
    assert rho_star_best_known(12, 3) == (
        pytest.approx(1 - 1 / S5),
        "known configuration icosahedron (optimality observed numerically)",
    )
    value, label = rho_star_best_known(12, 5)  # type: ignore[misc]
    assert value == pytest.approx(1 - 1 / S5)
    assert "embedded from R^3" in label
    assert rho_star_best_known(120, 4)[0] == pytest.approx((3 - S5) / 4)  # type: ignore[index]
    assert rho_star_best_known(13, 3) is None
    assert rho_star_proven(12, 3) is None


def test_individual_bounds() -> None:
    assert simplex_bound(2) == 2.0
    assert orthoplex_bound(4, 3) is None
    assert orthoplex_bound(5, 3) == math.sqrt(2)
    r = bound_report(100, 10)
    values = [v for v in (r.simplex, r.orthoplex, r.levenshtein, r.fejes_toth, r.exact) if v]
    assert r.min_distance_upper == min(values)
    assert r.min_distance_bound == "levenshtein"
    cap = cap_radon_bound(100, 10)
    assert cap is not None
    assert r.rho_star_upper == min(r.min_distance_upper, 100 / 99, 1.0, cap) == cap
    assert r.rho_star_bound == "cap-radon"


def test_monotone_grid() -> None:
    dims, Ks = range(1, 14), range(2, 90)
    T = np.array([[min_distance_upper(K, d) for K in Ks] for d in dims])
    R = np.array([[rho_star_upper(K, d) for K in Ks] for d in dims])
    for M in (T, R):
        assert np.all(np.diff(M, axis=1) <= 1e-12)  # non-increasing in K
        assert np.all(np.diff(M, axis=0) >= -1e-12)  # non-decreasing in d
    assert np.all(R <= T + 1e-12)


@given(K=st.integers(2, 5000), d=st.integers(2, 600))
def test_bounds_properties(K: int, d: int) -> None:
    t = min_distance_upper(K, d)
    r = rho_star_upper(K, d)
    assert 0.0 < r <= t + 1e-12 <= 2.0 + 1e-12
    assert min_distance_upper(K + 1, d) <= t + 1e-12
    assert min_distance_upper(K, d + 1) >= t - 1e-12
    # The bound never falls below the value of a construction: T >= 2 sin(pi / K) (a K-gon).
    assert t >= 2 * math.sin(math.pi / K) - 1e-12


def test_validation() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        rho_star_upper(1, 3)
    with pytest.raises(ValueError, match="dim"):
        min_distance_upper(3, 0)
    with pytest.raises(TypeError, match="num_classes"):
        rho_star_upper(2.0, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`s` in \[-1"):
        levenshtein_function(3, 1.5, max_degree=3)
    with pytest.raises(ValueError, match="num_classes"):
        fejes_toth_bound(2)


def test_radon_bound_applies_from_d_plus_2() -> None:
    assert radon_bound(4, 3) is None
    assert radon_bound(5, 3) == 1.0
    assert bound_report(100, 10).min_distance_upper > 1.2  # Radon's 1 is tighter than T_ub
    # K <= 2d + 2: no cap need hold d + 2 rows, Radon's 1 stands (the cross-polytope attains it).
    assert cap_radon_bound(22, 10) is None
    assert bound_report(22, 10).rho_star_bound == "radon"
    assert bound_report(22, 10).rho_star_upper == 1.0


def test_cap_fraction_closed_forms() -> None:
    for theta in np.linspace(0.0, math.pi, 13):
        assert cap_fraction(float(theta), 2) == pytest.approx(theta / math.pi, abs=1e-14)
        assert cap_fraction(float(theta), 3) == pytest.approx((1 - math.cos(theta)) / 2, abs=1e-14)
    # Monte Carlo on S^9 (independent of the incomplete beta function): 4 sigma.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200_000, 10))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    for theta in (0.8, 1.2, 2.0):
        p = float((X[:, 0] >= math.cos(theta)).mean())
        q = cap_fraction(theta, 10)
        assert abs(p - q) <= 4 * math.sqrt(q * (1 - q) / X.shape[0])


def test_cap_radon_bound_closed_form_and_order() -> None:
    # d = 3: K (1 - cos theta) / 2 = 4 -> cos theta = 1 - 8 / K.
    for K in (9, 12, 30, 100):
        assert cap_radon_bound(K, 3) == pytest.approx(math.sqrt(1 - (1 - 8 / K) ** 2), rel=1e-10)
    for d in (3, 5, 10, 24):
        values = [cap_radon_bound(K, d) for K in range(2 * d + 3, 2 * d + 400, 7)]
        assert all(v is not None and 0.0 < v < 1.0 for v in values)
        assert all(a >= b for a, b in itertools.pairwise(values))  # non-increasing in K


@pytest.mark.parametrize("d", [3, 5, 8])
def test_cap_radon_proof_step_on_random_codes(d: int) -> None:
    """The proof's step: d + 2 rows in a cap of angular radius theta give some D_k <= sin(theta)."""
    import torch

    from gnc.geometry import one_vs_rest_distances

    rng = np.random.default_rng(100 + d)
    for _ in range(10):
        W = rng.standard_normal((8 * d, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        c = W[int(rng.integers(W.shape[0]))]
        cap = np.argsort(-(W @ c))[: d + 2]  # the d + 2 rows nearest to c
        theta = math.acos(float(np.clip((W[cap] @ c).min(), -1.0, 1.0)))
        res = one_vs_rest_distances(torch.from_numpy(W[cap]))
        assert res.certified
        assert float(res.rho) <= math.sin(theta) + 1e-12
        # D_k among all rows is at most D_k among the cap's rows (a larger hull of the others).
        full = one_vs_rest_distances(torch.from_numpy(W)).distances[torch.from_numpy(cap)]
        assert float(full.min()) <= float(res.rho) + 1e-12


@pytest.mark.parametrize("d", [2, 3, 5, 8])
def test_radon_bound_proof_step_on_random_codes(d: int) -> None:
    """The proof's inequality on random codes: a Radon point x with some |w_k - x| <= 1."""
    import numpy as np
    import torch

    from gnc.geometry import one_vs_rest_distances

    rng = np.random.default_rng(d)
    for _ in range(20):
        K = d + 2
        W = rng.standard_normal((K, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        # Radon partition from an affine dependency: sum c_k w_k = 0, sum c_k = 0.
        A = np.vstack([W.T, np.ones(K)])
        c = np.linalg.svd(A)[2][-1]
        P, N = c > 0, c <= 0
        x = (c[P] @ W[P]) / c[P].sum()
        assert np.allclose(x, (-c[N]) @ W[N] / (-c[N]).sum())
        a = c[P] / c[P].sum()
        dist2 = ((W[P] - x) ** 2).sum(1)
        assert a @ dist2 == pytest.approx(1 - x @ x)
        assert dist2.min() <= 1 + 1e-12
        rho = float(one_vs_rest_distances(torch.from_numpy(W)).rho)
        assert rho <= 1.0 + 1e-9
        assert rho <= math.sqrt(dist2.min()) + 1e-9
