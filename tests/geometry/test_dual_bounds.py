"""Dual lower bounds on D_k (the rho search's screen) and the rho search built on them."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gnc.geometry import _dual_bounds as dual_mod
from gnc.geometry import _int8 as int8
from gnc.geometry import _solve as solve_mod
from gnc.geometry import configurations as cfg
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry._dual_bounds import dual_bounds, simplex_min_norm
from gnc.geometry._screening import exact_max_pass
from gnc.geometry._solve import _solve_classes


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def _unit(W: torch.Tensor) -> torch.Tensor:
    return W / W.norm(dim=1, keepdim=True)


CASES = {
    "anisotropic": lambda: _unit(_anisotropic(600, 24, seed=0)),
    "random": lambda: _unit(
        torch.randn(400, 8, generator=torch.Generator().manual_seed(1)).double()
    ),
    "e8": lambda: _unit(cfg.e8_roots()),  # 240 roots, 56 ties per class
    "cell600": lambda: cfg.cell600(),  # 120 vertices, 12 ties per class
    "leech23": lambda: cfg.leech_kissing_23()[::5],  # hundreds of ties per class
    "duplicates": lambda: torch.cat([_unit(_anisotropic(150, 6, seed=2))] * 2),  # D_k = 0
}


@pytest.mark.parametrize("name", list(CASES))
def test_dual_bounds_never_exceed_exact_distances(name: str) -> None:
    W = CASES[name]()
    K = W.shape[0]
    cls = torch.randperm(K, generator=torch.Generator().manual_seed(3))[:96]
    db = dual_bounds(W, W.float(), cls, None, threshold=2.0, unit_rows=True, max_memory_mib=64.0)
    ref = one_vs_rest_distances(W, classes=cls, keep_points=False)
    assert ref.certified
    # Certified: never above D_k (nor its certified lower bound, beyond the certificate's gap).
    assert bool((db.lower <= ref.lower_bounds + 1e-12).all())
    assert bool((db.lower >= 0).all())
    # Approximate hull points: |x| estimates D_k from above up to float32 rounding.
    assert bool((db.estimate >= ref.distances - 1e-5).all())
    if name != "duplicates":  # a useful bound, not just a valid one
        assert float((ref.distances - db.lower).median()) < 0.05
    else:
        assert bool((db.lower == 0).all())


def test_dual_bounds_tight_on_symmetric_codes() -> None:
    # E8: every D_k is attained on the 56 nearest roots' face; the bound is (nearly) exact.
    W = _unit(cfg.e8_roots())
    cls = torch.arange(W.shape[0])
    db = dual_bounds(W, W.float(), cls, None, threshold=2.0, unit_rows=True, max_memory_mib=64.0)
    ref = one_vs_rest_distances(W, keep_points=False)
    assert float((ref.distances - db.lower).max()) < 1e-3


def test_dual_bounds_float32_input_and_tiles_agree() -> None:
    W = _unit(_anisotropic(500, 16, seed=4))
    cls = torch.arange(0, 500, 3)
    nb = exact_max_pass(W, W.float(), cls, max_memory_mib=1024.0, num_neighbours=32)
    assert nb.neighbours is not None
    kw = {"threshold": 2.0, "unit_rows": True}
    whole = dual_bounds(W, W.float(), cls, nb.neighbours, max_memory_mib=1024.0, **kw)
    tiled = dual_bounds(W, W.float(), cls, nb.neighbours, max_memory_mib=0.05, **kw)
    fresh = dual_bounds(W, W.float(), cls, None, max_memory_mib=1024.0, **kw)
    # Blocks of any size, neighbours from the pass or fresh: the float32 solves differ in
    # rounding (batched kernels sum in other orders), the certified bounds stay valid and close.
    ref = one_vs_rest_distances(W, classes=cls, keep_points=False)
    for db in (whole, tiled, fresh):
        assert bool((db.lower <= ref.lower_bounds + 1e-12).all())
        assert torch.allclose(db.lower, whole.lower, atol=1e-2, rtol=0)
    # float32 rows (upcast at the boundary) give the same rho as their float64 copy.
    W32 = W.float()
    a = min_one_vs_rest_distance(W32, chunk_size=4)
    b = min_one_vs_rest_distance(W32.double(), chunk_size=4)
    assert a.certified and b.certified
    assert a.rho == b.rho and a.argmin == b.argmin


def test_exact_max_pass_neighbours_are_the_nearest_rows() -> None:
    W = _anisotropic(400, 12, seed=5) * torch.linspace(0.5, 2.0, 400)[:, None].double()
    rows = torch.arange(0, 400, 7)
    for unit in (True, False):
        V = _unit(W) if unit else W
        nb = exact_max_pass(
            V, V.float(), rows, max_memory_mib=0.05, num_neighbours=8, unit_rows=unit
        )
        assert nb.neighbours is not None
        dist = torch.cdist(V[rows], V)
        dist[torch.arange(rows.numel()), rows] = torch.inf
        # Kept for the rows whose bound is below the least nearest-row distance seen so far.
        have = (nb.neighbours >= 0).all(dim=1)
        assert bool(have.any()) and bool(((nb.neighbours >= 0) == have[:, None]).all())
        dist, nbrs = dist[have], nb.neighbours[have]
        kth = dist.topk(8, dim=1, largest=False).values[:, -1]
        got = dist.gather(1, nbrs)
        assert bool((got <= kth[:, None] + 1e-5).all())
        assert bool((nbrs != rows[have][:, None]).all())
    # A row whose bound is above the nearest distances (far outside the others) is left out.
    near = _unit(torch.randn(240, 8, generator=torch.Generator().manual_seed(7)).double())
    far = torch.cat([near, 3 * _unit(torch.ones(1, 8).double())])
    nb = exact_max_pass(
        far,
        far.float(),
        torch.arange(241),
        max_memory_mib=1024.0,
        num_neighbours=4,
        unit_rows=False,
    )
    assert nb.neighbours is not None
    assert float((nb.neighbours[:240] >= 0).all(dim=1).double().mean()) > 0.9
    assert bool((nb.neighbours[240] == -1).all())
    # Rows computed as float64 tiles leave their neighbours to the caller.
    f64 = exact_max_pass(
        W, W.float(), rows, max_memory_mib=1.0, float64_tiles=True, num_neighbours=4
    )
    assert f64.neighbours is not None and bool((f64.neighbours == -1).all())


def test_simplex_min_norm_weights_and_value() -> None:
    # Points of a square's far side in 2-D: the min-norm point of conv{(1, -1), (1, 1)} is (1, 0).
    Y = torch.tensor([[[1.0, -1.0], [1.0, 1.0], [3.0, 0.0]]], dtype=torch.float64)
    lam = simplex_min_norm(Y @ Y.transpose(1, 2), 200)
    assert torch.allclose(lam.sum(dim=1), torch.ones(1, dtype=torch.float64))
    assert bool((lam >= 0).all())
    x = (lam[:, :, None] * Y).sum(dim=1)
    assert torch.allclose(x, torch.tensor([[1.0, 0.0]], dtype=torch.float64), atol=1e-8)


@pytest.mark.parametrize("name", ["anisotropic", "random", "e8", "leech23", "duplicates"])
@pytest.mark.parametrize("chunk_size", [4, 256])
def test_rho_search_equals_exact_minimum(name: str, chunk_size: int) -> None:
    W = CASES[name]()
    ref = one_vs_rest_distances(W, keep_points=False)
    m = min_one_vs_rest_distance(W, chunk_size=chunk_size)
    assert m.certified and m.gap <= 1e-9
    assert abs(m.rho - ref.rho) <= 1e-9
    assert m.lower <= float(ref.distances.min()) + 1e-12
    assert float(ref.distances[m.argmin]) <= ref.rho + 1e-9


def test_rho_search_raw_rows_and_small_budget() -> None:
    W = _anisotropic(300, 10, seed=6) * torch.linspace(0.5, 2.0, 300)[:, None].double()
    ref = one_vs_rest_distances(W, normalize=False, keep_points=False)
    m = min_one_vs_rest_distance(W, normalize=False, chunk_size=4, max_memory_mib=0.05)
    assert m.certified
    assert abs(m.rho - ref.rho) <= 1e-9
    # The dual bounds settle most classes: far fewer exact solves than classes.
    a = min_one_vs_rest_distance(_unit(_anisotropic(600, 24, seed=0)), chunk_size=4)
    assert a.classes_solved < 100


def _cluster(seed: int) -> torch.Tensor:
    """150 near-duplicate unit rows around one direction and 300 random ones (d = 16)."""
    g = torch.Generator().manual_seed(seed)
    c = _unit(torch.randn(1, 16, generator=g, dtype=torch.float64))
    near = c + 0.01 * torch.randn(150, 16, generator=g, dtype=torch.float64)
    return _unit(torch.cat([near, torch.randn(300, 16, generator=g, dtype=torch.float64)]))


def test_exact_solves_stop_at_a_bound() -> None:
    W = CASES["anisotropic"]()
    ref = one_vs_rest_distances(W, keep_points=False)
    cls = torch.arange(W.shape[0])
    stop = float(ref.distances.median())

    def solve(stop_at: float | None) -> Any:
        return _solve_classes(
            W, W.float(), cls, 32, unit_rows=True, max_memory_mib=64.0, tol=1e-9,
            max_rounds=100, keep_points=False, stop_at=stop_at,
        )  # fmt: skip

    full, part = solve(None), solve(stop)
    dist = ref.distances
    # Still bounds of D_k: a certified lower bound and a hull point's distance above it.
    upper = part.D
    assert bool((part.lower <= dist + 1e-12).all()) and bool((upper >= dist - 1e-12).all())
    stopped = part.lower >= stop
    # Every class is either settled by its bound or solved to the tolerance...
    assert bool((stopped | (part.D - part.lower <= 1e-9)).all())
    # ...the classes below the bound all solved, and some above it stopped before the end.
    below = dist < stop - 1e-9
    assert bool((dist[below] - part.D[below]).abs().max() <= 1e-9)
    assert int((stopped & (part.D - part.lower > 1e-9)).sum()) > 0
    assert part.rounds <= full.rounds


@pytest.mark.parametrize("settled", [0.0, 2.0])
def test_rho_search_probe_decides_the_rest_of_a_chunk(
    monkeypatch: pytest.MonkeyPatch, settled: float
) -> None:
    # 0.0: every chunk gets dual bounds; 2.0: only its probe (the rest goes to the exact solves
    # with its first bounds). Either way the same certified rho.
    W = _cluster(seed=4)
    ref = one_vs_rest_distances(W, keep_points=False)
    monkeypatch.setattr(dual_mod, "_PROBE", 4)
    monkeypatch.setattr(dual_mod, "_PROBE_SETTLED", settled)
    sizes: list[int] = []
    real = dual_mod.dual_bounds
    monkeypatch.setattr(
        dual_mod,
        "dual_bounds",
        lambda W, W32, c, *a, **k: sizes.append(c.numel()) or real(W, W32, c, *a, **k),
    )
    m = min_one_vs_rest_distance(W, chunk_size=4)
    assert m.certified and abs(m.rho - ref.rho) <= 1e-9
    assert m.lower <= float(ref.distances.min()) + 1e-12
    assert sizes and (max(sizes) <= 4) == (settled > 1.0)


def test_rho_search_quantizes_the_rows_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the int_mm backend every exact solve certifies by int8 GEMMs: the rows are
    # quantized once for the search, not once per batch of exact solves.
    W = _cluster(seed=5)
    monkeypatch.setattr(int8, "ENABLED", False)
    ref = one_vs_rest_distances(W, keep_points=False)
    monkeypatch.setattr(int8, "ENABLED", True)
    monkeypatch.setattr(int8, "MIN_ROWS", 0)
    monkeypatch.setattr(int8, "INSTRUCTIONS", True)
    calls: list[int] = []
    real = solve_mod.quantize_rows
    monkeypatch.setattr(
        solve_mod, "quantize_rows", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    m = min_one_vs_rest_distance(W, chunk_size=4)
    assert m.certified and abs(m.rho - ref.rho) <= 1e-9
    assert m.classes_solved > 1 and not calls
