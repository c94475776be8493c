"""UFM cross-entropy: values against independent references, gradients by Taylor tests."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp

from gnc.sphere import normalize_rows, random_points, retract, tangent_project
from gnc.ufm import (
    log_softplus,
    riemannian_gradient,
    ufm_loss,
    ufm_objective,
    ufm_objective_and_gradient,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _problem(
    K: int, d: int, N: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W = random_points(K, d, generator=g, dtype=dtype)
    H = random_points(N, d, generator=g, dtype=dtype)
    y = torch.randint(0, K, (N,), generator=g)
    return W, H, y


def _numpy_loss(W: np.ndarray, H: np.ndarray, y: np.ndarray, tau: float) -> float:
    Z = H @ W.T / tau
    return float(np.mean(logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]))


@pytest.mark.parametrize("tau", [2.0, 1.0, 0.3, 0.05])
def test_loss_matches_numpy_and_torch_cross_entropy(tau: float) -> None:
    W, H, y = _problem(6, 4, 15)
    ref = _numpy_loss(W.numpy(), H.numpy(), y.numpy(), tau)
    torch_ref = float(torch.nn.functional.cross_entropy(H @ W.T / tau, y))
    got = float(ufm_loss(W, H, y, tau))
    assert got == pytest.approx(ref, rel=1e-12)
    assert got == pytest.approx(torch_ref, rel=1e-12)


def test_log_objective_is_tau_log_loss_where_the_loss_is_representable() -> None:
    W, H, y = _problem(5, 3, 12, seed=1)
    for tau in (1.0, 0.2, 0.05):
        ref = tau * math.log(_numpy_loss(W.numpy(), H.numpy(), y.numpy(), tau))
        assert float(ufm_objective(W, H, y, tau, "log")) == pytest.approx(ref, rel=1e-10)
        assert float(ufm_objective(W, H, y, tau, "plain")) == pytest.approx(
            _numpy_loss(W.numpy(), H.numpy(), y.numpy(), tau), rel=1e-10
        )


def test_log_objective_survives_underflow_of_the_loss() -> None:
    # Well-separated configuration: the simplex with features on their class rows.
    W = torch.tensor([[1.0, 0.0], [-0.5, 3**0.5 / 2], [-0.5, -(3**0.5) / 2]], dtype=torch.float64)
    y = torch.arange(3)
    tau = 1e-3  # margins 1.5 / tau = 1500: L = 2 exp(-1500) underflows to 0
    assert float(ufm_loss(W, W, y, tau)) == 0.0
    value = float(ufm_objective(W, W, y, tau, "log"))
    # Oracle: L = log(1 + 2 e^{-1.5/tau}) ~ 2 e^{-1.5/tau}, so tau log L = -1.5 + tau log 2.
    assert value == pytest.approx(-1.5 + tau * math.log(2.0), abs=1e-12)
    _, gW, gH = ufm_objective_and_gradient(W, W, y, tau, "log")
    assert torch.isfinite(gW).all() and torch.isfinite(gH).all()


def test_log_softplus_against_numpy_and_asymptotics() -> None:
    a = np.linspace(-30.0, 30.0, 121)
    ref = np.log(np.log1p(np.exp(a)))
    got = log_softplus(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    # Far left: log softplus(a) = a + log(1 - e^a / 2 + ...) -> a (exact when e^a underflows).
    far = torch.tensor([-800.0, -5000.0, -1e300], dtype=torch.float64)
    assert torch.equal(log_softplus(far), far)
    mid = torch.tensor([-60.0], dtype=torch.float64)
    assert float(log_softplus(mid)) == pytest.approx(-60.0 - math.exp(-60.0) / 2, abs=1e-15)


def test_log_softplus_gradient_is_finite_everywhere() -> None:
    a = torch.tensor([-1e4, -800.0, -1.0, 0.0, 1.0, 50.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(log_softplus(a).sum(), a)
    assert torch.isfinite(g).all()
    # d/da log softplus(a) = sigmoid(a) / softplus(a) -> 1 as a -> -inf
    expected = torch.sigmoid(a.detach()) / torch.nn.functional.softplus(a.detach())
    expected[:2] = 1.0  # 0 / 0 in the reference; the limit is 1
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("objective", ["log", "plain"])
@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01])
def test_analytic_gradient_matches_autograd(objective: str, tau: float) -> None:
    W, H, y = _problem(7, 3, 20, seed=2)
    W.requires_grad_(True)
    H.requires_grad_(True)
    f = ufm_objective(W, H, y, tau, objective)  # type: ignore[arg-type]
    gW_ref, gH_ref = torch.autograd.grad(f, [W, H])
    value, gW, gH = ufm_objective_and_gradient(W.detach(), H.detach(), y, tau, objective)  # type: ignore[arg-type]
    assert float(value) == pytest.approx(float(f.detach()), rel=1e-13, abs=1e-15)
    torch.testing.assert_close(gW, gW_ref, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(gH, gH_ref, rtol=1e-10, atol=1e-14)


def _taylor_slope(
    f: object, x: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, curve: object
) -> tuple[float, np.ndarray]:
    ts = np.logspace(-6, -1, 11)
    f0 = float(f(x))  # type: ignore[operator]
    slope_term = float((grad * v).sum())
    errs = np.array(
        [abs(float(f(curve(x, t * v))) - f0 - t * slope_term) for t in ts]  # type: ignore[operator]
    )
    # fit on the part of the range where the error is well above round-off
    mask = errs > 1e-13
    slope = np.polyfit(np.log(ts[mask]), np.log(errs[mask]), 1)[0]
    return float(slope), errs


@pytest.mark.parametrize("objective", ["log", "plain"])
@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_riemannian_gradient_taylor_check_along_retraction(objective: str, tau: float) -> None:
    """f(R(x, t v)) - f(x) - t <grad f(x), v> = O(t^2): slope 2 on a log-log plot."""
    K, d, N = 6, 4, 18
    W, H, y = _problem(K, d, N, seed=3)
    x = torch.cat([W, H])
    g = torch.Generator().manual_seed(4)
    v = tangent_project(x, torch.randn(x.shape, generator=g, dtype=x.dtype))
    v = v / torch.linalg.vector_norm(v)

    def f(z: torch.Tensor) -> torch.Tensor:
        return ufm_objective(z[:K], z[K:], y, tau, objective)  # type: ignore[arg-type]

    _, rW, rH = riemannian_gradient(W, H, y, tau, objective)  # type: ignore[arg-type]
    rgrad = torch.cat([rW, rH])
    assert float((rgrad * x).sum(dim=1).abs().max()) < 1e-14  # tangent
    slope, errs = _taylor_slope(f, x, rgrad, v, retract)
    assert errs[0] < 1e-9
    assert slope == pytest.approx(2.0, abs=0.1)
    # and the first-order term is right: a wrong gradient leaves slope 1
    wrong = rgrad + 1e-3 * v
    bad_slope, _ = _taylor_slope(f, x, wrong, v, retract)
    assert bad_slope == pytest.approx(1.0, abs=0.15)


def test_euclidean_gradient_taylor_check() -> None:
    W, H, y = _problem(5, 3, 10, seed=5)
    x = torch.cat([W, H])
    g = torch.Generator().manual_seed(6)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype)
    _, gW, gH = ufm_objective_and_gradient(W, H, y, 0.2, "log")
    grad = torch.cat([gW, gH])

    def f(z: torch.Tensor) -> torch.Tensor:
        return ufm_objective(z[:5], z[5:], y, 0.2, "log")

    slope, _ = _taylor_slope(f, x, grad, v, lambda z, u: z + u)
    assert slope == pytest.approx(2.0, abs=0.1)


@given(seed=st.integers(0, 2**16), tau=st.floats(0.01, 3.0))
def test_loss_invariant_under_rotation_and_class_permutation(seed: int, tau: float) -> None:
    K, d, N = 5, 3, 9
    W, H, y = _problem(K, d, N, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    perm = torch.randperm(K, generator=g)
    inv = torch.argsort(perm)
    base = float(ufm_objective(W, H, y, tau))
    rotated = float(ufm_objective(W @ Q, H @ Q, y, tau))
    permuted = float(ufm_objective(W[perm], H, inv[y], tau))
    assert rotated == pytest.approx(base, rel=1e-10, abs=1e-12)
    assert permuted == pytest.approx(base, rel=1e-10, abs=1e-12)


def test_float32_values_close_to_float64() -> None:
    W, H, y = _problem(6, 4, 12, seed=7)
    f64 = float(ufm_objective(W, H, y, 0.1))
    f32 = float(ufm_objective(W.float(), H.float(), y, 0.1))
    assert f32 == pytest.approx(f64, rel=1e-5)
    assert normalize_rows(W.float()).dtype == torch.float32
