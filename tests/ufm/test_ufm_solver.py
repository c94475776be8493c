"""Spherical UFM solver: closed-form optima (polygon, simplex, cross-polytope, icosahedron),
convergence criterion, warm starts, unbalanced classes, dtypes, devices and bad arguments."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from gnc.sphere import check_on_sphere
from gnc.ufm import class_labels, riemannian_gradient, solve_ufm, ufm_loss, ufm_metrics
from helpers.qp_reference import scipy_one_vs_rest_distance


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny matrices: intra-op threads only add contention on a shared machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _anneal(K: int, d: int, n: int, taus: list[float], seed: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    W = H = None
    res = None
    for tau in taus:
        res = solve_ufm(
            K,
            d,
            n,
            tau,
            generator=g,
            init_weights=W,
            init_features=H,
            **kw,  # type: ignore[arg-type]
        )
        W, H = res.weights, res.features
    assert res is not None
    return res


def _rho_reference_numpy(W: np.ndarray) -> float:
    """Independent rho(W): SciPy's min-norm point of each hull (small K only)."""
    return min(scipy_one_vs_rest_distance(W, k, method="slsqp") for k in range(W.shape[0]))


def test_d2_k7_regular_heptagon() -> None:
    res = _anneal(7, 2, 2, [1.0, 0.2, 0.05, 0.02], max_steps=5000)
    assert res.stop_reason == "converged"
    W = res.weights
    angles = torch.sort(torch.atan2(W[:, 1], W[:, 0])).values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    assert float((gaps - 2 * math.pi / 7).abs().max()) < 1e-3
    expected = 1 - math.cos(2 * math.pi / 7)
    rho = ufm_metrics(W, res.features, res.labels).gnc2
    assert rho == pytest.approx(expected, abs=1e-3)
    assert _rho_reference_numpy(W.numpy()) == pytest.approx(expected, abs=1e-3)


def test_k_le_d_plus_1_simplex_etf_and_self_duality() -> None:
    K, d = 5, 4
    res = _anneal(K, d, 3, [1.0, 0.1], seed=1)
    assert res.stop_reason == "converged"
    G = res.weights @ res.weights.T
    off = G[~torch.eye(K, dtype=torch.bool)]
    assert float((off + 1 / (K - 1)).abs().max()) < 1e-4
    # features collapse onto their class rows (GNC1 and self-duality for K <= d + 1)
    assert float((res.features - res.weights[res.labels]).abs().max()) < 1e-4
    m = ufm_metrics(res.weights, res.features, res.labels)
    assert m.gnc2 == pytest.approx(K / (K - 1), abs=1e-6)
    assert m.gnc1 < 1e-8
    assert m.gnc3 < 1e-8
    assert m.alignment == pytest.approx(1.0, abs=1e-8)


def test_k_eq_2d_cross_polytope() -> None:
    d = 3
    K = 2 * d
    res = _anneal(K, d, 2, [1.0, 0.2, 0.05, 0.02], seed=2)
    G = res.weights @ res.weights.T
    off = G[~torch.eye(K, dtype=torch.bool)]
    dist_to_set = torch.minimum((off + 1).abs(), off.abs())
    assert float(dist_to_set.max()) < 1e-3
    # each row has exactly one antipode
    assert torch.equal((G < -0.5).sum(dim=1), torch.ones(K, dtype=torch.long))
    assert ufm_metrics(res.weights, res.features, res.labels).gnc2 == pytest.approx(1.0, abs=1e-3)


def test_d3_k12_icosahedron() -> None:
    res = _anneal(12, 3, 1, [1.0, 0.2, 0.05], seed=0)
    G = res.weights @ res.weights.T
    off = G[~torch.eye(12, dtype=torch.bool)]
    s = 1 / math.sqrt(5)
    dist = torch.stack([(off + 1).abs(), (off - s).abs(), (off + s).abs()]).amin(dim=0)
    assert float(dist.max()) < 1e-4
    rho = ufm_metrics(res.weights, res.features, res.labels).gnc2
    assert rho == pytest.approx(1 - s, abs=1e-6)


def test_converges_with_reason_and_gradient_norm_below_tol() -> None:
    g = torch.Generator().manual_seed(3)
    res = solve_ufm(6, 3, 2, 0.3, tol=1e-8, max_steps=10_000, generator=g)
    assert res.stop_reason == "converged"
    assert res.grad_norm <= 1e-8
    _, rW, rH = riemannian_gradient(res.weights, res.features, res.labels, 0.3)
    recomputed = float(torch.linalg.vector_norm(torch.cat([rW, rH])))
    assert recomputed == pytest.approx(res.grad_norm, rel=1e-6, abs=1e-12)
    assert res.loss == pytest.approx(float(ufm_loss(res.weights, res.features, res.labels, 0.3)))
    assert res.objective == pytest.approx(0.3 * math.log(res.loss), rel=1e-10)


def test_hits_max_steps_when_tolerance_is_not_reached() -> None:
    g = torch.Generator().manual_seed(3)
    res = solve_ufm(6, 3, 2, 0.3, tol=1e-14, max_steps=7, generator=g)
    assert res.stop_reason == "max_steps"
    assert res.iterations == 7
    assert res.grad_norm > 1e-14


def test_objective_decreases_and_stays_on_sphere(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    res = solve_ufm(8, 3, 2, 0.1, max_steps=300, tol=1e-6, generator=g, dtype=dtype)
    assert res.weights.dtype == dtype and res.features.dtype == dtype
    assert check_on_sphere(res.weights)[0] and check_on_sphere(res.features)[0]
    g = torch.Generator().manual_seed(4)
    start = solve_ufm(8, 3, 2, 0.1, max_steps=1, generator=g, dtype=dtype)
    assert res.objective < start.objective


def test_runs_on_device(device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    res = solve_ufm(4, 3, 1, 0.2, max_steps=200, generator=g, device=device)
    assert res.weights.device.type == device.type
    assert res.labels.device.type == device.type


def test_seeded_runs_are_reproducible() -> None:
    a = solve_ufm(5, 2, 1, 0.5, max_steps=20, generator=torch.Generator().manual_seed(9))
    b = solve_ufm(5, 2, 1, 0.5, max_steps=20, generator=torch.Generator().manual_seed(9))
    c = solve_ufm(5, 2, 1, 0.5, max_steps=20, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a.weights, b.weights) and torch.equal(a.features, b.features)
    assert not torch.equal(a.weights, c.weights)


def test_warm_start_at_a_solution_stops_at_once() -> None:
    g = torch.Generator().manual_seed(5)
    first = solve_ufm(5, 3, 2, 0.2, tol=1e-9, generator=g)
    again = solve_ufm(
        5, 3, 2, 0.2, tol=1e-8, init_weights=first.weights, init_features=first.features
    )
    assert again.stop_reason == "converged"
    assert again.iterations == 0
    torch.testing.assert_close(again.weights, first.weights)


def test_unbalanced_classes() -> None:
    counts = [1, 2, 5, 3]
    labels = class_labels(counts, 4)
    assert torch.equal(torch.bincount(labels), torch.tensor(counts))
    g = torch.Generator().manual_seed(6)
    res = solve_ufm(4, 3, counts, 0.1, tol=1e-9, generator=g)
    assert res.stop_reason == "converged"
    assert res.features.shape == (11, 3)
    assert torch.equal(res.labels, labels)
    m = ufm_metrics(res.weights, res.features, res.labels)
    assert m.gnc1 < 1e-8  # variability collapse within every class
    assert m.alignment > 0.999  # at finite tau, unbalanced W is not symmetric: not exactly h_k


def test_plain_objective_and_adam_reach_the_same_simplex() -> None:
    g = torch.Generator().manual_seed(7)
    plain = solve_ufm(4, 3, 1, 0.5, objective="plain", tol=1e-10, generator=g)
    assert plain.stop_reason == "converged"
    off = (plain.weights @ plain.weights.T)[~torch.eye(4, dtype=torch.bool)]
    assert float((off + 1 / 3).abs().max()) < 1e-6
    g = torch.Generator().manual_seed(7)
    adam = solve_ufm(
        4, 3, 1, 0.5, method="adam", learning_rate=0.02, max_steps=3000, tol=1e-6, generator=g
    )
    off = (adam.weights @ adam.weights.T)[~torch.eye(4, dtype=torch.bool)]
    assert float((off + 1 / 3).abs().max()) < 1e-3
    assert adam.method == "adam"


def test_trajectory_is_recorded_with_exact_gnc2() -> None:
    g = torch.Generator().manual_seed(8)
    res = solve_ufm(5, 2, 2, 0.1, max_steps=23, tol=1e-14, record_every=5, generator=g)
    steps = [r.step for r in res.trajectory]
    assert steps == [0, 5, 10, 15, 20, 23]
    last = res.trajectory[-1]
    m = ufm_metrics(res.weights, res.features, res.labels, directions=False)
    assert last.gnc2 == pytest.approx(m.gnc2, abs=1e-9)
    assert last.gnc1 == pytest.approx(m.gnc1, rel=1e-9, abs=1e-15)
    assert last.loss == pytest.approx(res.loss)
    assert last.grad_norm == pytest.approx(res.grad_norm)
    objectives = [r.objective for r in res.trajectory]
    assert objectives[-1] < objectives[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"tau": math.inf}, "tau"),
        ({"samples_per_class": 0}, "samples_per_class"),
        ({"samples_per_class": [1, 2]}, "samples_per_class"),
        ({"max_steps": 0}, "max_steps"),
        ({"tol": 0.0}, "tol"),
        ({"method": "sgd"}, "method"),
        ({"objective": "square"}, "objective"),
        ({"init_weights": torch.ones(2, 2)}, "init_weights"),
        ({"init_features": torch.zeros(3, 2)}, "init_features"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "num_classes": 3,
        "feature_dim": 2,
        "samples_per_class": 1,
        "tau": 0.5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve_ufm(**args)  # type: ignore[arg-type]


def test_bad_argument_types() -> None:
    with pytest.raises(TypeError, match="num_classes"):
        solve_ufm(2.5, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype"):
        solve_ufm(3, 2, dtype=torch.int64)


def test_time_limit_stops_the_solver() -> None:
    g = torch.Generator().manual_seed(0)
    res = solve_ufm(5, 3, 1, 0.1, time_limit=1e-12, tol=1e-14, generator=g)
    assert res.stop_reason == "time_limit"
    assert res.iterations == 0


@pytest.mark.parametrize("tol", [1e-3, 1e-7, 1e-13])
def test_stop_reason_agrees_with_gradient_norm(dtype: torch.dtype, tol: float) -> None:
    g = torch.Generator().manual_seed(1)
    res = solve_ufm(6, 3, 1, 0.2, tol=tol, max_steps=400, dtype=dtype, generator=g)
    if res.stop_reason == "converged":
        assert res.grad_norm <= tol
    else:
        assert res.grad_norm > tol
        assert res.stop_reason in ("max_steps", "line_search_failed")
    if res.stop_reason == "max_steps":
        assert res.iterations == 400
    if tol == 1e-3:
        assert res.stop_reason == "converged"
