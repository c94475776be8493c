"""The engine as a GPU (or a CPU without numba) runs it: no CPU-only kernel, same answers.

On CUDA every CPU-only branch of the at-scale engine is skipped: the numba kernels (Wolfe
solves, Grams, points, pairs, tile sweeps, int8 top-k), the int8 screen and the streamed
certifications. These tests switch all of them off at once on a CPU, so that the tensor code a
GPU executes is exercised end to end on every machine, and check it against closed forms,
certificates re-derived in NumPy and the default CPU path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import numpy as np
import pytest
import torch

from gnc.geometry import _compiled as compiled
from gnc.geometry import _compiled_int8 as compiled_int8
from gnc.geometry import _dual_bounds as dual_bounds
from gnc.geometry import _int8 as int8
from gnc.geometry import _screening as screening
from gnc.geometry import _seeds as seeds_module
from gnc.geometry import _solve as solve_module
from gnc.geometry import _sweep as sweep_module
from gnc.geometry import configurations as cfg
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances


def _switch_off_cpu_branches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CPU-only branch off: what ``device.type != "cpu"`` selects."""
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    monkeypatch.setattr(int8, "ENABLED", False)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 10**12)


@pytest.fixture
def generic(monkeypatch: pytest.MonkeyPatch) -> None:
    _switch_off_cpu_branches(monkeypatch)


def _near_duplicates(K: int, d: int, seed: int) -> torch.Tensor:
    """Anisotropic rows, 1 % of them perturbed copies of others (tiny ``D_k``)."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    W = torch.randn(K, d, generator=g, dtype=torch.float64) * scale
    n = K // 100
    src = torch.randint(n, K, (n,), generator=g)
    W[:n] = W[src] + 1e-4 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(W, dim=1)


def _dual_bounds_numpy(W: np.ndarray, classes: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``min_{j != k} <w_k - w_j, h_k>`` for unit ``h_k``: each class's dual bound, in NumPy."""
    out = np.empty(len(classes))
    for row, k in enumerate(classes):
        margins = (W[k] - np.delete(W, k, axis=0)) @ directions[row]
        out[row] = max(0.0, margins.min())
    return out


@pytest.mark.parametrize(
    ("build", "expected"),
    [(cfg.e8_roots, 0.5), (cfg.cell600, None)],
    ids=["e8", "600-cell"],
)
def test_tie_heavy_codes_on_the_generic_path(
    generic: None, build: Callable[[], torch.Tensor], expected: float | None
) -> None:
    W = build()
    res = one_vs_rest_distances(W, working_set_size=8)
    if expected is None:  # vertex-transitive: every class has D_k = 1 - s_k
        expected = 1.0 - float((W[:1] @ W[1:].T).max())
    assert torch.allclose(res.distances, torch.full_like(res.distances, expected), atol=1e-12)
    assert res.certified
    dual = _dual_bounds_numpy(W.numpy(), res.classes.numpy(), res.directions.numpy())
    assert np.all(np.abs(dual - res.lower_bounds.numpy()) < 1e-12)
    m = min_one_vs_rest_distance(W)
    assert m.certified and abs(m.rho - expected) < 1e-12


def test_generic_path_equals_the_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    W = _near_duplicates(2000, 12, seed=5)
    cls = torch.cat([torch.arange(0, 20), torch.arange(20, 2000, 13)])
    ref = one_vs_rest_distances(W, classes=cls, keep_points=False)
    ref_rho = min_one_vs_rest_distance(W)
    _switch_off_cpu_branches(monkeypatch)
    res = one_vs_rest_distances(W, classes=cls)
    assert ref.certified and res.certified
    assert float((res.distances - ref.distances).abs().max()) < 1e-12
    # The certificates of the generic path, re-derived from its directions over all rows.
    dual = _dual_bounds_numpy(W.numpy(), cls.numpy(), res.directions.numpy())
    assert np.all(np.abs(dual - res.lower_bounds.numpy()) < 1e-12)
    assert float((res.distances - res.lower_bounds).max()) <= 1e-9
    rho = min_one_vs_rest_distance(W)
    assert rho.certified and abs(rho.rho - ref_rho.rho) < 1e-12
    assert rho.rho <= float(res.distances.min()) + 1e-12  # the sample cannot beat the minimum


@pytest.mark.parametrize("switched", [True, False], ids=["generic", "cpu"])
def test_generic_path_runs_no_cpu_only_kernel(
    monkeypatch: pytest.MonkeyPatch, switched: bool
) -> None:
    """The switches above are the only ways into the CPU-only code: none of it runs.

    With the switches left on (``cpu``) the same spies must fire: the check can fail.
    """

    def forbidden(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a CPU-only kernel ran")

    monkeypatch.setattr(int8, "MIN_ROWS", 0)  # the int8 screen and the streamed certifications
    monkeypatch.setattr(int8, "INSTRUCTIONS", True)  # would run at this size on a CPU
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 0)
    if switched:
        _switch_off_cpu_branches(monkeypatch)
    for name in ("wolfe_compiled", "next_grams", "points", "pairs_dot", "combine"):
        monkeypatch.setattr(compiled, name, forbidden)
    for name in ("quantize", "scaled_top_k"):
        monkeypatch.setattr(compiled_int8, name, forbidden)
    monkeypatch.setattr(screening, "_certify_streamed", forbidden)
    monkeypatch.setattr(sweep_module, "compiled", forbidden)
    for module, name in [
        (screening, "quantize"),
        (seeds_module, "quantize"),
        (solve_module, "quantize_rows"),
        (dual_bounds, "quantize_rows"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    W = _near_duplicates(600, 8, seed=2)
    for run in (one_vs_rest_distances, min_one_vs_rest_distance):
        if switched:
            assert run(W).certified
        else:
            with pytest.raises(AssertionError, match="CPU-only kernel"):
                run(W)
