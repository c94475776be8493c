"""Exact one-vs-rest distances against closed forms, an independent SciPy solve, certificates."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnc.geometry import configurations as cfg
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.sphere import random_points
from helpers.qp_reference import scipy_one_vs_rest_distance


def _random(K: int, d: int, seed: int) -> torch.Tensor:
    return random_points(K, d, generator=torch.Generator().manual_seed(seed))


def _check_certificate(W: torch.Tensor, res, tol: float = 1e-9) -> None:
    """Re-derive primal and dual bounds independently in NumPy from the returned record."""
    Wn = W.double().numpy()
    Wn = Wn / np.linalg.norm(Wn, axis=1, keepdims=True)
    for row, k in enumerate(res.classes.tolist()):
        sup = res.support[row].numpy()
        wts = res.support_weights[row].numpy()
        live = sup >= 0
        assert np.all(sup[live] != k)
        assert np.all(wts[live] >= 0) and abs(wts[live].sum() - 1) < 1e-12
        p = wts[live] @ Wn[sup[live]]
        assert np.allclose(p, res.nearest_points[row].numpy(), atol=1e-12)
        primal = np.linalg.norm(Wn[k] - p)
        assert abs(primal - float(res.distances[row])) < 1e-12
        D = float(res.distances[row])
        if D > 0:
            h = res.directions[row].numpy()
            assert abs(np.linalg.norm(h) - 1) < 1e-12
            others = np.delete(Wn, k, axis=0)
            dual = np.min((Wn[k] - others) @ h)
            assert dual <= D + 1e-12
            assert D - dual <= tol
    assert res.gap <= tol and res.certified


@pytest.mark.parametrize("K", [3, 4, 5, 7, 12, 31])
def test_regular_polygon_closed_form(K: int) -> None:
    res = one_vs_rest_distances(cfg.regular_polygon(K))
    expected = 1 - math.cos(2 * math.pi / K)
    assert torch.allclose(
        res.distances, torch.full((K,), expected, dtype=torch.float64), atol=1e-12
    )
    _check_certificate(cfg.regular_polygon(K), res)


@pytest.mark.parametrize(("K", "d"), [(2, 1), (3, 2), (4, 3), (5, 4), (6, 10), (11, 10)])
def test_simplex_etf_closed_form(K: int, d: int) -> None:
    W = cfg.simplex_etf(K, d)
    res = one_vs_rest_distances(W)
    assert torch.allclose(res.distances, torch.full((K,), K / (K - 1), dtype=torch.float64))
    _check_certificate(W, res)


@pytest.mark.parametrize(("d", "K"), [(3, 6), (4, 8), (5, 7), (6, 9), (10, 20)])
def test_cross_polytope_and_subsets(d: int, K: int) -> None:
    W = cfg.cross_polytope(d, K)
    res = one_vs_rest_distances(W)
    assert torch.allclose(res.distances, torch.ones(K, dtype=torch.float64), atol=1e-12)
    _check_certificate(W, res)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (cfg.icosahedron, 1 - 1 / math.sqrt(5)),
        (cfg.cell24, 1 - 0.5),
        (cfg.cell600, (3 - math.sqrt(5)) / 4),
        (cfg.e8_roots, 0.5),
    ],
)
def test_symmetric_codes(build, expected: float) -> None:
    W = build()
    res = one_vs_rest_distances(W)
    assert abs(res.rho - expected) < 1e-12
    assert float(res.distances.max()) - expected < 1e-12
    _check_certificate(W, res)


@pytest.mark.parametrize(
    ("K", "d", "seed"), [(8, 3, 0), (40, 3, 1), (60, 5, 2), (30, 20, 3), (25, 40, 4)]
)
def test_random_against_scipy(K: int, d: int, seed: int) -> None:
    W = _random(K, d, seed)
    res = one_vs_rest_distances(W)
    _check_certificate(W, res)
    for k in range(0, K, max(1, K // 8)):
        ref = scipy_one_vs_rest_distance(W, k, method="slsqp")
        D = float(res.distances[k])
        # Ours is certified optimal: never above a feasible SciPy point, and close to it.
        assert ref + 1e-12 >= D
        assert abs(D - ref) < 1e-6


def test_generic_value_exceeds_one_minus_max_cosine() -> None:
    W = _random(50, 4, 7)
    res = one_vs_rest_distances(W)
    C = W @ W.T
    C.fill_diagonal_(-2)
    s = C.max(dim=1).values
    assert bool((res.distances >= 1 - s - 1e-12).all())
    assert bool((res.distances <= torch.sqrt(2 * (1 - s)) + 1e-12).all())
    assert bool((res.distances > 1 - s + 1e-9).any())


def test_duplicates_give_exact_zero() -> None:
    W = _random(30, 4, 3)
    W[7] = W[12]
    res = one_vs_rest_distances(W)
    assert float(res.distances[7]) == 0.0 and float(res.distances[12]) == 0.0
    assert res.rho == 0.0 and res.argmin in (7, 12)
    assert res.certified
    m = min_one_vs_rest_distance(W)
    assert m.rho == 0.0 and m.certified


def test_point_inside_hull_unnormalized() -> None:
    W = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1], [0.1, 0.2]], dtype=torch.float64)
    res = one_vs_rest_distances(W, normalize=False)
    assert float(res.distances[4]) < 1e-12
    ref = scipy_one_vs_rest_distance(W, 0, method="slsqp")
    assert abs(float(res.distances[0]) - ref) < 1e-6


def test_tiled_equals_untiled_and_small_working_sets() -> None:
    W = _random(97, 6, 11)
    a = one_vs_rest_distances(W)
    b = one_vs_rest_distances(W, max_memory_mib=1e-6)  # one class per block
    c = one_vs_rest_distances(W, working_set_size=1)  # grows by violators over many rounds
    assert torch.allclose(a.distances, b.distances, atol=1e-13)
    assert torch.allclose(a.distances, c.distances, atol=1e-13)
    assert c.rounds > 1 and c.certified


def test_subset_of_classes() -> None:
    W = _random(40, 5, 5)
    full = one_vs_rest_distances(W)
    sub = one_vs_rest_distances(W, classes=[3, 17, 39])
    assert torch.equal(sub.classes, torch.tensor([3, 17, 39]))
    assert torch.allclose(sub.distances, full.distances[[3, 17, 39]], atol=1e-13)


@pytest.mark.parametrize("chunk", [1, 4, 256])
def test_min_matches_full(chunk: int) -> None:
    W = _random(120, 5, 9)
    full = one_vs_rest_distances(W)
    m = min_one_vs_rest_distance(W, chunk_size=chunk)
    assert abs(m.rho - full.rho) < 1e-13 and m.argmin == full.argmin
    assert m.certified and m.gap <= 1e-9 and m.lower <= m.rho
    assert 1 <= m.classes_solved <= 120


def test_progress_bars_report_on_stderr_and_change_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    W = _random(60, 4, 3)
    quiet = one_vs_rest_distances(W, max_memory_mib=1e-3)
    loud = one_vs_rest_distances(W, max_memory_mib=1e-3, progress=True)
    assert torch.equal(quiet.distances, loud.distances)
    m_quiet = min_one_vs_rest_distance(W, chunk_size=2)
    m_loud = min_one_vs_rest_distance(W, chunk_size=2, progress=True)
    assert (m_quiet.rho, m_quiet.argmin) == (m_loud.rho, m_loud.argmin)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "one-vs-rest K=60" in captured.err and "/60 [" in captured.err
    assert "rho search K=60" in captured.err
    # The search's bar counts the classes it may visit (not all K) and ends full.
    last = re.findall(r"rho search K=60: +(\d+)%\|[^|]*\| (\d+)/(\d+)", captured.err)[-1]
    assert last[0] == "100" and last[1] == last[2] and 1 <= int(last[2]) < 60


def test_min_float32_screening_path() -> None:
    # K >= 2048 screens in float32 with a rigorous rounding margin; the answer must stay exact.
    W = _random(2100, 3, 1)
    m = min_one_vs_rest_distance(W)
    full = one_vs_rest_distances(W)
    assert abs(m.rho - full.rho) < 1e-13 and m.argmin == full.argmin
    assert m.classes_solved < 2100


def test_float32_input_is_upcast(device: torch.device) -> None:
    W = _random(20, 3, 2).float().to(device)
    res = one_vs_rest_distances(W)
    assert res.distances.dtype == torch.float64 and res.distances.device == W.device
    ref = one_vs_rest_distances(W.double())
    assert torch.allclose(res.distances, ref.distances)


@given(seed=st.integers(0, 10_000), K=st.integers(3, 25), d=st.integers(2, 6))
def test_invariance_rotation_permutation(seed: int, K: int, d: int) -> None:
    g = torch.Generator().manual_seed(seed)
    W = random_points(K, d, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    perm = torch.randperm(K, generator=g)
    base = one_vs_rest_distances(W)
    rot = one_vs_rest_distances(W @ Q.T)
    per = one_vs_rest_distances(W[perm])
    assert torch.allclose(base.distances, rot.distances, atol=1e-11)
    assert torch.allclose(base.distances[perm], per.distances, atol=1e-11)
    assert base.certified and rot.certified and per.certified


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.ones(5), "2-D"),
        (torch.ones(1, 3), "at least 2 rows"),
        (torch.tensor([[1.0, 0.0], [float("nan"), 1.0]]), "NaN"),
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "row 1 is all zeros"),
    ],
)
def test_bad_input(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        one_vs_rest_distances(bad)
    with pytest.raises(ValueError, match=match):
        min_one_vs_rest_distance(bad)


def test_bad_classes() -> None:
    with pytest.raises(ValueError, match="classes"):
        one_vs_rest_distances(_random(5, 2, 0), classes=[0, 5])
    with pytest.raises(TypeError):
        one_vs_rest_distances("not a matrix")  # type: ignore[arg-type]


def test_min_stops_at_rounding_level_near_duplicates() -> None:
    # Many near-duplicate rows: rho is at rounding level and every lower bound 1 - s_k is ~0.
    # The search must stop once no class can lower rho by more than tol, still certified.
    g = torch.Generator().manual_seed(4)
    W = random_points(400, 6, generator=g)
    W[200:] = W[:200] + 1e-10 * torch.randn(200, 6, generator=g, dtype=torch.float64)
    m = min_one_vs_rest_distance(W)
    assert m.rho < 1e-8 and m.certified and m.gap <= 1e-9
    assert m.classes_solved <= 256


@pytest.mark.parametrize("build", [cfg.cell600, cfg.e8_roots, cfg.gosset_7_56, cfg.icosahedron])
@pytest.mark.parametrize("noise", [1e-9, 1e-6])
def test_nearly_degenerate_codes_stay_certified(build, noise: float) -> None:
    # Optimized codes have many near-ties: corrals whose Gram solve loses the affine optimality
    # (the minimizer is then recomputed by QR). Perturbed symmetric codes reproduce that.
    W = build()
    W = W + noise * torch.randn(W.shape, generator=torch.Generator().manual_seed(1), dtype=W.dtype)
    res = one_vs_rest_distances(W)
    _check_certificate(W, res)


def test_supports_wider_than_a_working_set_grow() -> None:
    # The supports start a working set wide (4 + 16 columns here); the extra class's support is
    # all 40 basis rows (its nearest point is their centroid: D = 1 - 1/sqrt(d), closed form).
    d = 40
    W = torch.cat([torch.eye(d, dtype=torch.float64), torch.full((1, d), d**-0.5).double()])
    res = one_vs_rest_distances(W, working_set_size=4)
    assert res.certified and res.support.shape[1] == d
    assert int((res.support[d] >= 0).sum()) == d
    assert abs(float(res.distances[d]) - (1 - d**-0.5)) < 1e-14
    idx = res.support.clamp_min(0)
    rebuilt = (res.support_weights[:, :, None] * W[idx]).sum(dim=1)
    assert torch.allclose(rebuilt, res.nearest_points, atol=1e-14)
