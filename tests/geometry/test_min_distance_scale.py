"""rho alone at scale: the exact-max screen (float32 bound or float64 tiles) and the rho search."""

from __future__ import annotations

import pytest
import torch

from gnc.geometry import configurations as cfg
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry._screening import exact_max_pass


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def _dense_max(W: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The NumPy-free reference: one float64 ``W[rows] W^T`` with the own entry masked."""
    ip = W[rows] @ W.T
    ip[torch.arange(rows.numel()), rows] = -torch.inf
    return ip


@pytest.mark.parametrize("float64_tiles", [None, False, True], ids=["auto", "screen", "f64"])
@pytest.mark.parametrize(
    "build",
    [
        lambda: cfg.leech_kissing_23()[::3],  # every row ties with many neighbours
        lambda: _anisotropic(700, 9, seed=0) * torch.linspace(0.5, 2.0, 700)[:, None].double(),
        lambda: torch.cat([_anisotropic(300, 5, seed=1)] * 2),  # exact duplicates
    ],
    ids=["leech23", "raw", "duplicates"],
)
@pytest.mark.parametrize("budget", [1024.0, 0.05])
def test_exact_max_pass_matches_float64_reference(build, float64_tiles, budget: float) -> None:
    W = build()
    K = W.shape[0]
    rows = torch.randperm(K, generator=torch.Generator().manual_seed(2))[: K // 2]
    nb = exact_max_pass(W, W.float(), rows, max_memory_mib=budget, float64_tiles=float64_tiles)
    ip = _dense_max(W, rows)
    ref = ip.max(dim=1).values
    atol = 1e-15 * float(W.norm(dim=1).max()) ** 2  # float64 rounding of the dot products
    assert nb.neighbours is None
    assert torch.allclose(nb.max_inner, ref, atol=atol, rtol=0)
    assert bool((nb.argmax != rows).all())
    attained = ip[torch.arange(rows.numel()), nb.argmax]
    assert torch.allclose(attained, ref, atol=atol, rtol=0)


def test_dense_ties_switch_to_float64_tiles() -> None:
    W = cfg.leech_kissing_23()
    rows = torch.arange(W.shape[0])
    auto = exact_max_pass(W, W.float(), rows, max_memory_mib=1024.0)
    screen = exact_max_pass(W, W.float(), rows, max_memory_mib=1024.0, float64_tiles=False)
    assert auto.rechecked == 0  # no tie was gathered one by one
    assert screen.rechecked > 100 * W.shape[0]  # hundreds of ties per row
    assert torch.allclose(auto.max_inner, screen.max_inner, atol=1e-15, rtol=0)
    # Sparse near-ties stay on the float32 screen.
    R = _anisotropic(500, 16, seed=3)
    nb = exact_max_pass(R, R.float(), torch.arange(500), max_memory_mib=1024.0)
    assert 500 <= nb.rechecked < 5 * 500


def test_leech_slice_rho_one_solve() -> None:
    L = cfg.leech_minimal_vectors()[::16]
    m = min_one_vs_rest_distance(L)
    ref = one_vs_rest_distances(L, classes=[int(m.argmin)])
    assert m.certified and m.gap <= 1e-9
    assert abs(m.rho - float(ref.distances[0])) < 1e-12
    assert m.classes_solved == 1
    ip = L[:64] @ L.T
    ip[torch.arange(64), torch.arange(64)] = -torch.inf
    assert m.max_inner >= float(ip.max()) - 1e-15
