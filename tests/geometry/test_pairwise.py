from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnc.geometry import max_cosines, min_pairwise_distance, nearest_neighbors, pairwise_statistics
from gnc.sphere import random_points


def _dense(W: torch.Tensor):
    C = (W @ W.T).numpy()
    np.fill_diagonal(C, -np.inf)
    return C.max(axis=1), C.argmax(axis=1)


@given(
    K=st.integers(2, 40),
    d=st.integers(1, 6),
    seed=st.integers(0, 999),
    budget=st.sampled_from([1e-6, 1e-3, 64.0]),
)
def test_tiled_equals_dense(K: int, d: int, seed: int, budget: float) -> None:
    W = random_points(K, d, generator=torch.Generator().manual_seed(seed))
    v, i = max_cosines(W, max_memory_mib=budget)
    vr, _ = _dense(W)
    assert np.allclose(v.numpy(), vr, atol=1e-14)
    assert np.allclose((W @ W[i].T).diagonal().numpy(), vr, atol=1e-14)
    m = min(3, K - 1)
    dist, _idx = nearest_neighbors(W, m, max_memory_mib=budget)
    D = torch.cdist(W, W).numpy()
    np.fill_diagonal(D, np.inf)
    assert np.allclose(dist.numpy(), np.sort(D, axis=1)[:, :m], atol=1e-12)
    assert abs(min_pairwise_distance(W, max_memory_mib=budget) - D.min()) < 1e-12


def test_pairwise_statistics_fields() -> None:
    W = random_points(30, 3, generator=torch.Generator().manual_seed(0))
    s = pairwise_statistics(W)
    vr, _ = _dense(W)
    assert abs(s.max_cosine - vr.max()) < 1e-14
    assert abs(s.min_distance - np.sqrt(2 - 2 * vr.max())) < 1e-7
    assert torch.all(s.nearest != torch.arange(30))


def test_nearest_neighbors_validation() -> None:
    W = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_neighbors"):
        nearest_neighbors(W, 3)
    with pytest.raises(TypeError, match="integer"):
        nearest_neighbors(W, 1.5)  # type: ignore[arg-type]
