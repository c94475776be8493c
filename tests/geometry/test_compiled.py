"""The compiled per-class Wolfe kernel against the lockstep one and against the KKT conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _compiled as compiled
from gnc.geometry import _wolfe as wolfe
from gnc.geometry import configurations as cfg
from gnc.geometry import one_vs_rest_distances

pytestmark = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")


def _problems(seed: int, B: int = 24, m: int = 40, d: int = 12) -> tuple[np.ndarray, ...]:
    """Random polytopes: origin outside and inside the hull, duplicate points."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((B, m, d)) + np.where(np.arange(B) % 3 == 0, 0.0, 2.0)[:, None, None]
    Y[::4, 5] = Y[::4, 2]
    return (Y,)


def _anisotropic(K: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    rows = torch.randn(K, d, generator=g, dtype=torch.float64)
    return rows * torch.linspace(0.3, 1.5, d, dtype=torch.float64)


def _start(G: torch.Tensor) -> tuple[torch.Tensor, ...]:
    B, m, _ = G.shape
    lam = torch.zeros(B, m, dtype=torch.float64)
    lam[:, 0] = 1.0
    valid = torch.ones(B, m, dtype=torch.bool)
    floor = 64 * torch.finfo(torch.float64).eps * G.diagonal(dim1=1, dim2=2).amax(dim=1)
    return lam, lam > 0, valid, floor


def _kkt(Y: np.ndarray, L: np.ndarray, d: int) -> None:
    """Convex weights whose point x has <y_j, x> >= |x|^2 - tol for every j, in NumPy."""
    assert np.all(L >= 0) and np.allclose(L.sum(axis=1), 1.0, atol=1e-13)
    for b in range(Y.shape[0]):
        x = L[b] @ Y[b]
        n2 = x @ x
        assert np.min(Y[b] @ x) >= n2 - 1e-11 * max(1.0, np.sqrt(n2))
        assert np.count_nonzero(L[b]) <= d + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_kernel_follows_the_lockstep_kernel(seed: int) -> None:
    # The same algorithm: the same final corrals and weights (before the shared polish) for
    # every class the compiled kernel keeps, and the KKT conditions hold for both.
    (Y,) = _problems(seed)
    Yt = torch.from_numpy(Y)
    G = torch.bmm(Yt, Yt.transpose(1, 2))
    lam, S, valid, floor = _start(G)
    lc, Sc, itc, fb = compiled.wolfe_compiled(G, valid, lam, S, 1e-13, floor, 5000)
    ll, Sl, itl = wolfe._wolfe_lockstep(G, valid, lam, S, 1e-13, floor, 5000, None)
    keep = ~fb
    assert int(keep.sum()) >= Y.shape[0] - 2
    assert torch.equal(Sc[keep], Sl[keep])
    assert torch.allclose(lc[keep], ll[keep], atol=1e-10, rtol=0)
    assert torch.equal(itc[keep], itl[keep])
    _kkt(Y[keep.numpy()], lc[keep].numpy(), Y.shape[2])


def test_dependent_corrals_go_back_to_the_lockstep_kernel() -> None:
    # Points on a line in R^3 and a start whose corral holds three of them (affinely
    # dependent: no Cholesky factor): the compiled kernel hands that class back, keeps the
    # other, and the dispatcher's answer meets the KKT conditions, with the origin's distance
    # to the line as the closed form.
    t = np.linspace(-1.0, 2.0, 7)
    base, step = np.array([1.0, 0.5, 0.0]), np.array([0.0, 1.0, 1.0])
    line = base[None, :] + t[:, None] * step[None, :]
    tri = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.9, 0.05, 0.05]])
    Y = np.stack([line[[0, 6, 2, 3, 4, 5, 1]], np.vstack([tri, tri[:3] + 1.0])])
    Yt = torch.from_numpy(Y)
    G = torch.bmm(Yt, Yt.transpose(1, 2))
    lam, S, valid, floor = _start(G)
    S[0, :3] = True
    lam[0, :3] = 1.0 / 3
    _, _, _, fb = compiled.wolfe_compiled(G, valid, lam, S, 1e-13, floor, 500)
    assert fb.tolist() == [True, False]
    L, _ = wolfe._wolfe_batched(G, lambda i: Yt[i], valid, lam, S, 1e-13, floor, 500)
    _kkt(Y, L.numpy(), 3)
    x = L[0].numpy() @ Y[0]
    foot = base - (base @ step) / (step @ step) * step  # its t lies inside [-1, 2]
    assert abs(np.linalg.norm(x) - np.linalg.norm(foot)) < 1e-12
    assert abs(np.linalg.norm(L[1].numpy() @ Y[1]) - 1 / np.sqrt(3)) < 1e-12


@pytest.mark.parametrize(
    "W",
    [
        pytest.param(lambda: cfg.e8_roots(), id="e8"),
        pytest.param(lambda: cfg.cell600(), id="600-cell"),
        pytest.param(lambda: _anisotropic(300, 20), id="anisotropic"),
    ],
)
def test_every_distance_is_the_same_with_either_kernel(W, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = W()
    with_compiled = one_vs_rest_distances(rows)
    monkeypatch.setattr(wolfe, "COMPILED", False)
    lockstep = one_vs_rest_distances(rows)
    assert with_compiled.certified and lockstep.certified
    assert torch.allclose(with_compiled.distances, lockstep.distances, atol=1e-12, rtol=0)
    assert torch.allclose(with_compiled.lower_bounds, lockstep.lower_bounds, atol=1e-12, rtol=0)
