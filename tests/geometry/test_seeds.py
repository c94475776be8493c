"""Whitened seeds of the all-classes solver: the ranking against NumPy, and D_k unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnc.geometry._solve as solve
from gnc.geometry import _int8 as int8
from gnc.geometry import one_vs_rest_distances
from gnc.geometry._int8 import quantize_rows
from gnc.geometry._seeds import seed_pass, whitening


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.2 + 1.5 * torch.rand(d, generator=g, dtype=torch.float64)
    shift = torch.randn(d, generator=g, dtype=torch.float64)  # a common mean, as in embeddings
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale + shift


def test_whitening_matches_numpy() -> None:
    W = _anisotropic(700, 24, 0)
    mu, P = whitening(W, max_memory_mib=0.05)  # blocks of a few rows
    X = W.numpy()
    C = np.cov(X, rowvar=False, bias=True)
    want = np.linalg.inv(C + np.trace(C) / X.shape[1] * np.eye(X.shape[1]))
    np.testing.assert_allclose(mu.numpy(), X.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(P.numpy(), want, rtol=1e-10, atol=1e-12)


def test_whitening_of_equal_rows_is_the_identity() -> None:
    W = torch.ones(5, 3, dtype=torch.float64)
    mu, P = whitening(W, max_memory_mib=1.0)
    assert torch.equal(P, torch.eye(3, dtype=torch.float64))
    assert torch.allclose(mu, torch.ones(3, dtype=torch.float64))


def test_seed_pass_ranks_rows_by_the_whitened_direction() -> None:
    W = _anisotropic(400, 16, 1)
    W = W / W.norm(dim=1, keepdim=True)
    mu, P = whitening(W, 1.0)
    rows = torch.tensor([0, 7, 399, 123])
    got = seed_pass(W.float(), rows, 10, mu, P, max_memory_mib=0.01)
    X, Pn, mun = W.numpy(), P.numpy(), mu.numpy()
    for i, k in enumerate(rows.tolist()):
        s = X @ (Pn @ (X[k] - mun))
        s[k] = -np.inf
        want = np.argsort(-s)[:10]
        # Float32 scores: the same set up to near-ties at the cut.
        assert len(set(got[i].tolist()) & set(want.tolist())) >= 9
        assert k not in got[i].tolist()


@pytest.mark.parametrize("normalize", [True, False])
def test_distances_do_not_depend_on_the_seeds(
    normalize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    W = _anisotropic(300, 12, 2)
    monkeypatch.setattr(solve, "WHITENED_SEEDS", False)
    ref = one_vs_rest_distances(W, normalize=normalize, working_set_size=8)
    monkeypatch.setattr(solve, "WHITENED_SEEDS", True)
    calls = []
    real = solve.seed_pass
    monkeypatch.setattr(solve, "seed_pass", lambda *a: calls.append(1) or real(*a))
    got = one_vs_rest_distances(W, normalize=normalize, working_set_size=8)
    assert calls  # 300 classes >= 4 d: whitened seeds
    few = one_vs_rest_distances(W, normalize=normalize, classes=list(range(40)))
    assert len(calls) == 1  # 40 classes < 4 d: nearest rows, no whitening
    assert torch.allclose(few.distances, ref.distances[:40], rtol=0, atol=1e-12)
    assert ref.certified and got.certified
    assert torch.allclose(got.distances, ref.distances, rtol=0, atol=1e-12)
    assert torch.allclose(got.lower_bounds, ref.lower_bounds, rtol=0, atol=1e-12)


def test_seed_pass_with_int8_rows_ranks_nearly_as_float32() -> None:
    # The int8 GEMMs only seed working sets: their ranking may differ at near-ties, no more.
    W = _anisotropic(2000, 64, 3)
    W = W / W.norm(dim=1, keepdim=True)
    mu, P = whitening(W, 1.0)
    rows = torch.arange(0, 2000, 50)
    ref = seed_pass(W.float(), rows, 32, mu, P, 1.0)
    backends = [False] + ([True] if int8.packed_available(64) else [])
    for packed in backends:
        q8 = quantize_rows(W, 1.0, packed=packed)
        got = seed_pass(W.float(), rows, 32, mu, P, 1.0, q8)
        overlap = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(got, ref, strict=True)]
        assert float(np.mean(overlap)) >= 0.8 * 32
        assert all(int(k) not in g.tolist() for k, g in zip(rows, got, strict=True))
