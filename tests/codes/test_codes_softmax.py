from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from gnc.codes import (
    AnnealSchedule,
    anneal,
    closed_form_code,
    polish_softmax,
    polish_tammes,
    softmax_code,
    tammes_code,
)
from gnc.codes.polish import _Tangents, equalize_ties, hardmax_value, max_cosine_value
from gnc.codes.surrogate import (
    competitors,
    riesz_batch,
    riesz_lbfgs,
    softmax_surrogate,
    tammes_surrogate,
)
from gnc.geometry import configurations, one_vs_rest_distances
from gnc.sphere import normalize_rows, random_points

ICOSA = 1 - 1 / math.sqrt(5)


@pytest.mark.parametrize(
    ("K", "d", "method", "rho"),
    [
        (4, 3, "closed-form:simplex-etf", 4 / 3),
        (11, 10, "closed-form:simplex-etf", 11 / 10),
        (3, 7, "closed-form:simplex-etf", 1.5),
        (7, 2, "closed-form:regular-polygon", 1 - math.cos(2 * math.pi / 7)),
        (9, 5, "closed-form:cross-polytope-subset", 1.0),
        (20, 10, "closed-form:cross-polytope-subset", 1.0),
    ],
)
def test_closed_forms(K: int, d: int, method: str, rho: float) -> None:
    res = softmax_code(K, d)
    assert res.method == method
    assert res.code.shape == (K, d)
    assert abs(res.rho - rho) < 1e-12
    assert res.certified and res.gap <= 1e-9
    assert res.rho <= res.rho_star_upper + 1e-9
    assert res.stop_reason == "closed-form"


def test_closed_form_none_beyond_2d() -> None:
    assert closed_form_code(12, 3) is None
    assert closed_form_code(7, 3) is None


def test_icosahedron_from_random_start() -> None:
    # The icosahedron attains the Tammes bound: the search stops there, certified.
    hit = softmax_code(12, 3, restarts=4, steps=(300, 300), seed=3, lattice_starts=False)
    assert hit.stop_reason == "bound-reached" and hit.restarts == 1
    assert abs(hit.rho - ICOSA) < 1e-9 and hit.certified
    assert hit.trace[0][1] >= ICOSA - 1e-9
    res = softmax_code(
        12, 3, restarts=1, steps=(300, 300), seed=3, stop_at_bound=False, lattice_starts=False
    )
    assert res.method == "optimized"
    assert abs(res.rho - ICOSA) < 1e-6
    assert res.certified and res.gap <= 1e-9
    # history is the polishing ascent: non-decreasing, a lower bound on the exact rho
    h = np.array(res.history)
    assert h.size >= 1 and np.all(np.diff(h) >= 0)
    assert h[-1] <= res.rho + 1e-12
    assert abs(res.max_cosine - 1 / math.sqrt(5)) < 1e-5
    assert res.rho <= res.rho_star_upper + 1e-9


def test_polish_converges_from_perturbed_icosahedron() -> None:
    g = torch.Generator().manual_seed(1)
    W = normalize_rows(
        configurations.icosahedron() + 1e-3 * torch.randn(12, 3, generator=g, dtype=torch.float64)
    )
    exact = one_vs_rest_distances(W)
    res = polish_softmax(W, exact.directions)
    h = np.array(res.history)
    assert np.all(np.diff(h) >= 0)
    assert h[0] <= exact.rho + 1e-12
    final = one_vs_rest_distances(res.code)
    assert abs(final.rho - ICOSA) < 1e-8
    assert final.rho >= res.value - 1e-12


def test_polish_tammes_monotone_to_octahedron() -> None:
    g = torch.Generator().manual_seed(2)
    W = normalize_rows(
        configurations.cross_polytope(3)
        + 1e-2 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    )
    res = polish_tammes(W, radius=1e-2)
    assert np.all(np.diff(np.array(res.history)) >= 0)
    assert abs(max_cosine_value(res.code.numpy())) < 1e-9


@pytest.mark.parametrize("d", [2, 3, 8])
def test_tangent_bases_span_each_rows_complement(d: int) -> None:
    # The polish's tangent coordinates against SciPy's null space: B_i is orthonormal,
    # orthogonal to x_i, and B_i B_i^T is the projector I - x_i x_i^T.
    X = random_points(7, d, generator=torch.Generator().manual_seed(d)).numpy()
    X[0] = -np.eye(d)[0]  # a row on -e_1 (the reflection's sign flips there)
    tangents = _Tangents(X)
    rows = np.arange(7)
    for i in rows:
        B = np.stack([tangents.vectors(rows[i : i + 1], e[None])[0] for e in np.eye(d - 1)], 1)
        assert np.allclose(B.T @ B, np.eye(d - 1), atol=1e-12)
        assert np.allclose(B.T @ X[i], 0.0, atol=1e-12)
        N = scipy.linalg.null_space(X[i][None])
        assert np.allclose(B @ B.T, N @ N.T, atol=1e-12)
    Y = np.random.default_rng(0).standard_normal((7, d))
    A = tangents.coords(rows, Y)
    assert np.allclose(tangents.vectors(rows, A), Y - (Y * X).sum(1)[:, None] * X, atol=1e-12)


def test_reproducible_for_a_seed() -> None:
    a = softmax_code(9, 3, restarts=2, steps=(100, 100), seed=5, polish=False)
    b = softmax_code(9, 3, restarts=2, steps=(100, 100), seed=5, polish=False)
    c = softmax_code(9, 3, restarts=2, steps=(100, 100), seed=6, polish=False)
    assert torch.equal(a.code, b.code)
    assert not torch.equal(a.code, c.code)


def test_restarts_and_record() -> None:
    res = softmax_code(8, 3, restarts=3, steps=(100, 200), seed=0, polish_seconds=20)
    assert res.restarts == 3 and len(res.restart_values) == 3
    # the record's numbers agree with independent recomputation
    W = res.code.numpy()
    G = W @ W.T
    np.fill_diagonal(G, -np.inf)
    assert abs(res.max_cosine - G.max()) < 1e-12
    assert abs(res.min_pairwise_distance - math.sqrt(2 - 2 * G.max())) < 1e-9
    assert max(res.restart_values) <= res.rho + 1e-9


def test_hardmax_value_is_lower_bound_of_rho() -> None:
    W = random_points(30, 4, generator=torch.Generator().manual_seed(0))
    exact = one_vs_rest_distances(W)
    H = random_points(30, 4, generator=torch.Generator().manual_seed(1))
    assert hardmax_value(W.numpy(), H.numpy()) <= exact.rho + 1e-12
    assert abs(hardmax_value(W.numpy(), exact.directions.numpy()) - exact.rho) < 1e-9


def test_surrogate_gradients_match_autograd() -> None:
    g = torch.Generator().manual_seed(0)
    W = random_points(20, 5, generator=g)
    H = random_points(20, 5, generator=g)
    for idx in (None, competitors(H, W, 6)):
        Wg, Hg = W.clone().requires_grad_(True), H.clone().requires_grad_(True)
        own = (Wg * Hg).sum(1)
        full_idx = competitors(H, W, 19) if idx is None else idx
        z = ((Wg[full_idx] * Hg[:, None, :]).sum(-1) - own[:, None]) / 0.1
        (0.1 * torch.logsumexp(z.reshape(-1), 0)).backward()
        loss, _, gW, gH = softmax_surrogate(W, H, idx, 0.1)
        assert abs(loss - float(0.1 * torch.logsumexp(z.detach().reshape(-1), 0))) < 1e-12
        assert torch.allclose(gW, Wg.grad, atol=1e-12)
        assert torch.allclose(gH, Hg.grad, atol=1e-12)
        Wt = W.clone().requires_grad_(True)
        s = (Wt[full_idx] * Wt[:, None, :]).sum(-1) / 0.1
        (0.1 * torch.logsumexp(s.reshape(-1), 0)).backward()
        _, _, gT = tammes_surrogate(W, idx, 0.1)
        assert torch.allclose(gT, Wt.grad, atol=1e-12)


def test_competitor_lists_blocked_equal_unblocked() -> None:
    g = torch.Generator().manual_seed(0)
    W = random_points(37, 4, generator=g)
    a = competitors(W, W, 5, max_memory_mib=1e-6)
    b = competitors(W, W, 5)
    assert torch.equal(a.sort(1).values, b.sort(1).values)
    assert not bool((a == torch.arange(37)[:, None]).any())


def test_neighbour_list_annealing_runs() -> None:
    W0 = random_points(60, 4, generator=torch.Generator().manual_seed(0))
    W, _H, hist, n = anneal(
        W0, None, AnnealSchedule(steps=60, num_competitors=8, refresh_every=10), kind="softmax"
    )
    assert n == 60 and len(hist) >= 6
    assert torch.allclose(W.norm(dim=1), torch.ones(60, dtype=W.dtype))
    assert hist[-1] > hist[0]


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"num_classes": 1, "feature_dim": 3}, ValueError),
        ({"num_classes": 5, "feature_dim": 0}, ValueError),
        ({"num_classes": 5.0, "feature_dim": 3}, TypeError),
        ({"num_classes": 5, "feature_dim": 1}, ValueError),
        ({"num_classes": 12, "feature_dim": 3, "time_limit": 0}, ValueError),
        ({"num_classes": 12, "feature_dim": 3, "time_limit": -1.0}, ValueError),
        ({"num_classes": 12, "feature_dim": 3, "restarts": 0}, ValueError),
        ({"num_classes": 12, "feature_dim": 3, "init": torch.ones(11, 3)}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], err: type[Exception]) -> None:
    with pytest.raises(err, match="Expected"):
        softmax_code(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(err, match="Expected"):
        tammes_code(**kwargs)  # type: ignore[arg-type]


def test_time_limit_is_respected_loosely() -> None:
    res = softmax_code(40, 4, restarts=50, steps=(2000, 2000), time_limit=2.0, polish_seconds=1.0)
    assert res.restarts < 50
    assert res.certified


# ----------------------------------------------------------------------------------------------
# Known optima from random starts (Jiang et al., ICML 2024)
# ----------------------------------------------------------------------------------------------

KNOWN = [
    (3, 12, 1 - 1 / math.sqrt(5), (300, 300)),
    (5, 16, 0.8, (1000, 1000)),
    (6, 27, 0.75, (1000, 1000)),
    (7, 56, 1 - 1 / 3, (2000, 1500)),
    (4, 120, (3 - math.sqrt(5)) / 4, (3000, 1500)),
    (8, 240, 0.5, (4000, 1500)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("d", "K", "rho", "steps"), KNOWN)
def test_known_softmax_codes(d: int, K: int, rho: float, steps: tuple[int, int]) -> None:
    res = softmax_code(
        K, d, restarts=4, steps=steps, seed=0, polish_seconds=300, lattice_starts=False
    )
    assert res.certified
    assert abs(res.rho - rho) < 1e-6, (res.rho, res.restart_values, res.stop_reason)


def test_schlaefli_fast() -> None:
    res = softmax_code(16, 5, restarts=1, steps=(400, 600), seed=0)
    assert abs(res.rho - 0.8) < 1e-6


def test_restarts_run_while_the_time_limit_lasts() -> None:
    from gnc.codes import tammes_code

    res = tammes_code(13, 3, time_limit=3.0, steps=(50, 50), polish=False)
    assert res.restarts > 4  # the default 4, then more while the budget lasts
    assert res.seconds < 3.0 + 30.0  # certification and one restart past the check at most
    fixed = tammes_code(13, 3, restarts=2, time_limit=3.0, steps=(50, 50), polish=False)
    assert fixed.restarts == 2


def test_start_codes_compete_with_restarts() -> None:
    from gnc.geometry.configurations import icosahedron

    # The icosahedron attains the proven bound, so it is taken without a polish.
    res = softmax_code(12, 3, restarts=1, steps=(5, 5), start_codes=[icosahedron()])
    assert res.method == "start-code"
    assert res.rho == pytest.approx(1 - 5**-0.5, abs=1e-9)
    with pytest.raises(ValueError, match="start_codes"):
        softmax_code(12, 3, restarts=1, steps=(5, 5), start_codes=[icosahedron()[:5]])


def test_equalize_ties_restores_e8_exactly() -> None:
    # E8's 240 roots have max cosine 1/2 with 56 ties per root; a 1e-7 jitter breaks the ties
    # and the Gauss-Newton tie polish restores 1/2 to rounding (closed-form oracle).
    g = torch.Generator().manual_seed(0)
    e8 = configurations.e8_roots()
    W = normalize_rows(e8 + 1e-7 * torch.randn(e8.shape, generator=g, dtype=e8.dtype))
    assert max_cosine_value(W.numpy()) > 0.5 + 1e-8
    X = equalize_ties(W)
    assert abs(max_cosine_value(X.numpy()) - 0.5) < 1e-12
    assert torch.allclose(X.norm(dim=1), torch.ones(240, dtype=X.dtype), atol=1e-14)
    # Nothing to equalize below the max: the input comes back unchanged.
    assert equalize_ties(e8) is e8


def test_riesz_lbfgs_minimizes_and_reaches_the_600_cell() -> None:
    # The 600-cell is universally optimal (Cohn and Kumar): the Riesz minimum from a random
    # start is it (max cosine (1 + sqrt 5) / 4) for this seed, and the energy went down.
    W0 = random_points(120, 4, generator=torch.Generator().manual_seed(0))

    def energy(W: torch.Tensor) -> float:
        sq = (2 - 2 * W @ W.T)[torch.triu_indices(120, 120, 1).unbind()]
        return float(sq.pow(-1.0).sum())

    W, n = riesz_lbfgs(W0, 2.0)
    assert n > 0 and energy(W) < energy(W0)
    assert abs(max_cosine_value(W.numpy()) - (1 + math.sqrt(5)) / 4) < 1e-5


def test_riesz_batch_matches_one_by_one() -> None:
    g = torch.Generator().manual_seed(2)
    W0 = torch.stack([random_points(8, 3, generator=g) for _ in range(3)])
    ends = torch.tensor([8.0, 16.0, 64.0], dtype=W0.dtype)
    W, n = riesz_batch(W0, steps=200, exponent_end=ends)
    assert n == 200
    for i in range(3):
        Wi, _ = riesz_batch(W0[i : i + 1], steps=200, exponent_end=float(ends[i]))
        assert torch.allclose(W[i], Wi[0], atol=1e-10)


@pytest.mark.slow
def test_e8_from_random_starts_stops_at_the_bound() -> None:
    # E8 attains the Tammes (Levenshtein) bound: the search stops there with rho = 1/2.
    res = softmax_code(240, 8, seed=0, time_limit=120, clock="cpu", lattice_starts=False)
    assert res.stop_reason == "bound-reached" and abs(res.rho - 0.5) < 1e-9 and res.certified
    assert res.trace and res.trace[-1][1] >= 0.5 - 1e-9


def test_target_and_clock() -> None:
    # A target below what the first restart reaches stops after one restart.
    t = tammes_code(13, 3, seed=0, restarts=32, target=0.5, steps=(300, 500))
    assert t.stop_reason == "target-reached" and t.restarts == 1
    assert t.min_pairwise_distance >= 0.5
    with pytest.raises(ValueError, match="Expected `clock`"):
        softmax_code(12, 3, clock="bogus")  # type: ignore[arg-type]
