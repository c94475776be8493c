"""The int8 screen: exact integer GEMMs under rigorous bounds give the float32 screen's D_k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _int8 as int8
from gnc.geometry import _screening as screening
from gnc.geometry import configurations as cfg
from gnc.geometry import one_vs_rest_distances
from gnc.geometry._int8 import quantize, quantize_rows, rounding_slack, scores

pytestmark = pytest.mark.skipif(not hasattr(torch, "_int_mm"), reason="no torch._int_mm")


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def _spiky(K: int, d: int, seed: int) -> torch.Tensor:
    # Rows with one large coordinate (the worst case of a per-row scale) and zero rows.
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, d, generator=g, dtype=torch.float64)
    X[::7, 0] *= 50.0
    X[3] = 0.0
    return X


@pytest.mark.parametrize("build", [_anisotropic, _spiky], ids=["anisotropic", "spiky"])
def test_quantize_remainder_bound_holds(build) -> None:
    X = build(300, 40, 1)
    q, s, e = quantize(X)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    rem = X - s[:, None] * q.double()
    # The bound holds (against an independent NumPy remainder) and is not vacuous.
    rem_np = np.linalg.norm(X.numpy() - s.numpy()[:, None] * q.numpy().astype(np.float64), axis=1)
    assert np.all(rem_np <= e.numpy())
    assert torch.allclose(rem.norm(dim=1), e, rtol=1e-9, atol=1e-13)
    nz = X.norm(dim=1) > 0
    assert float((e[nz] / X.norm(dim=1)[nz]).median()) < 0.05
    if build is _spiky:
        assert float(e[3]) == 0.0 and int(q[3].abs().max()) == 0  # the zero row


def test_score_bound_contains_every_inner_product() -> None:
    # <w_j, x_k> lies within s_x (a_k + b_k err_j) of s_x g_kj: the bound certify relies on.
    W = _spiky(500, 64, 2)
    X = _anisotropic(40, 64, 3)
    q8 = quantize_rows(W, 1.0)  # blocks of a few rows
    qx, sx, ex = quantize(X)
    g = scores(q8, qx).double()
    exact = X @ W.T
    xn = X.norm(dim=1)
    a = q8.max_norm * ex + rounding_slack(q8, xn, ex)
    bound = a[:, None] + q8.err[None, :] * (xn + ex)[:, None]
    dev = (sx[:, None] * g - exact).abs()
    assert bool((dev <= bound).all())
    assert float((dev / bound).max()) > 0.05  # the bound is not loose by orders of magnitude


def _perturbed(build, noise: float):
    # Near-ties whose violations (~1e-9) lie far below float32's resolution of a score: the
    # violators must still be ranked first (a float32 ranking of unshifted scores lost them).
    W = build()
    g = torch.Generator().manual_seed(1)
    return W + noise * torch.randn(W.shape, generator=g, dtype=W.dtype)


@pytest.mark.parametrize(
    "build",
    [
        lambda: _anisotropic(600, 48, 4),
        lambda: _spiky(400, 32, 5),
        lambda: cfg.e8_roots(),
        lambda: cfg.cell600(),
        lambda: _perturbed(cfg.e8_roots, 1e-9),
        lambda: _perturbed(cfg.gosset_7_56, 1e-9),
    ],
    ids=["anisotropic", "spiky", "e8", "600-cell", "e8-near-ties", "gosset-near-ties"],
)
def test_int8_screen_matches_float32_screen(build, monkeypatch: pytest.MonkeyPatch) -> None:
    W = build()
    W = W[W.norm(dim=1) > 0]
    monkeypatch.setattr(int8, "ENABLED", False)
    ref = one_vs_rest_distances(W)
    monkeypatch.setattr(int8, "ENABLED", True)
    monkeypatch.setattr(int8, "MIN_ROWS", 0)
    monkeypatch.setattr(int8, "INSTRUCTIONS", True)  # also on CPUs where it would be slow
    calls = []
    real = screening._certify_int8
    monkeypatch.setattr(
        screening, "_certify_int8", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    got = one_vs_rest_distances(W)
    assert calls  # the int8 screen ran
    assert got.certified and ref.certified
    assert torch.allclose(got.distances, ref.distances, atol=1e-12, rtol=0)
    assert torch.allclose(got.lower_bounds, ref.lower_bounds, atol=1e-12, rtol=0)
    # The certificate re-derived in NumPy: primal point from the support, dual over all rows.
    Wn = (W / W.norm(dim=1, keepdim=True)).numpy()
    for row, k in enumerate(got.classes.tolist()):
        sup = got.support[row].numpy()
        wts = got.support_weights[row].numpy()
        live = sup >= 0
        p = wts[live] @ Wn[sup[live]]
        D = float(got.distances[row])
        assert abs(np.linalg.norm(Wn[k] - p) - D) < 1e-12
        h = got.directions[row].numpy()
        dual = min(max(0.0, np.min((Wn[k] - np.delete(Wn, k, axis=0)) @ h)), D)
        assert D - dual <= 1e-9


def test_int8_screen_only_from_min_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(int8, "INSTRUCTIONS", True)
    assert int8.int8_screen(cpu, int8.MIN_ROWS, 640)
    assert not int8.int8_screen(cpu, int8.MIN_ROWS - 1, 640)
    assert not int8.int8_screen(torch.device("meta"), int8.MIN_ROWS, 640)
    monkeypatch.setattr(int8, "ENABLED", False)
    assert not int8.int8_screen(cpu, int8.MIN_ROWS, 640)


def test_int8_screen_only_with_int8_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without AVX-512 VNNI or AMX torch._int_mm is ~100x slower than float32: float32 screen.
    cpu = torch.device("cpu")
    monkeypatch.setattr(int8, "INSTRUCTIONS", False)
    assert not int8.int8_screen(cpu, int8.MIN_ROWS, 640)
    monkeypatch.setattr(int8, "INSTRUCTIONS", None)  # PyTorch's answer for this CPU
    vnni = torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported()
    assert int8.int8_instructions() == vnni
    assert int8.int8_screen(cpu, int8.MIN_ROWS, 640) == vnni


def test_scores_of_a_single_transposed_row_are_exact() -> None:
    # A one-row slice of the (d, K) layout, transposed, has strides (1, 1) and counts as
    # contiguous; torch._int_mm read it as garbage until scores() copied it to row-major.
    W = _anisotropic(60, 4, 3)
    q8 = quantize_rows(W, 1.0)
    for r in range(3):
        one = q8.qt[:, [r]].T.contiguous()
        exact = (one.long() @ q8.qt.long()).float() * q8.scale32[None, :]
        assert torch.equal(scores(q8, one), exact)
