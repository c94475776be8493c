"""The shared float32 pass of ``gnc head``: exact row maxima and coinciding pairs vs brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry._row_maxima import row_maxima


def _head() -> torch.Tensor:
    """Random rows of mixed norms with exact twins, scaled copies and float32-level near-ties."""
    gen = torch.Generator().manual_seed(5)
    W = torch.randn(40, 16, generator=gen, dtype=torch.float64)
    W *= torch.rand(40, 1, generator=gen, dtype=torch.float64) + 0.5
    W[7] = W[3]  # exact twin
    W[9] = 3.0 * W[3]  # same direction, other norm
    W[11] = W[12] * (1 + 1e-12)  # coincide within 1e-9 but not exactly
    W[20] = W[21] + 1e-9 * torch.randn(16, generator=gen, dtype=torch.float64)  # float32-level tie
    return W


@pytest.mark.parametrize("budget", [1024.0, 1e-6])
def test_maxima_and_pairs_match_brute_force(budget: float) -> None:
    W = _head()
    K = W.shape[0]
    cols = torch.ones(K, dtype=torch.bool)
    cols[7] = False  # the twin of row 3 does not count for the raw maxima
    res = row_maxima(W, raw_columns=cols, coincide_tol=1e-9, max_memory_mib=budget)
    X = W.numpy()
    n = np.linalg.norm(X, axis=1)
    C = (X @ X.T) / n[:, None] / n[None, :]
    np.fill_diagonal(C, -np.inf)
    np.testing.assert_allclose(res.max_cosine.numpy(), C.max(axis=1), rtol=0, atol=1e-15)
    for k in range(K):  # the reported argmax attains the max
        assert C[k, int(res.argmax_cosine[k])] == pytest.approx(C[k].max(), abs=1e-15)
    G = X @ X.T
    np.fill_diagonal(G, -np.inf)
    G[:, 7] = -np.inf
    expected = np.where(cols.numpy(), G.max(axis=1), np.nan)
    np.testing.assert_allclose(res.max_inner.numpy(), expected, rtol=1e-15, atol=1e-13)
    i, j = np.nonzero(np.triu(C >= 1 - 1e-9, 1))
    assert sorted(map(tuple, res.pairs.tolist())) == sorted(
        zip(i.tolist(), j.tolist(), strict=True)
    )
    assert {(3, 7), (3, 9), (7, 9), (11, 12)} <= set(map(tuple, res.pairs.tolist()))


def test_subset_of_rows_and_unit_rows() -> None:
    W = _head()
    W = W / W.norm(dim=1, keepdim=True)
    rows = torch.tensor([0, 20, 21, 39])
    res = row_maxima(W, rows=rows, max_memory_mib=1024.0)
    C = W.numpy() @ W.numpy().T
    np.fill_diagonal(C, -np.inf)
    np.testing.assert_allclose(res.max_cosine.numpy(), C[rows.numpy()].max(axis=1), atol=1e-15)
    assert res.pairs.shape == (0, 2) and torch.isnan(res.max_inner).all()


def test_raw_maxima_only() -> None:
    W = _head()
    res = row_maxima(
        W, raw_columns=torch.ones(40, dtype=torch.bool), cosines=False, max_memory_mib=1024.0
    )
    assert torch.isnan(res.max_cosine).all()
    G = W.numpy() @ W.numpy().T
    np.fill_diagonal(G, -np.inf)
    np.testing.assert_allclose(res.max_inner.numpy(), G.max(axis=1), rtol=1e-15, atol=1e-13)


def test_centred_raw_maxima_with_zero_rows() -> None:
    W = _head()
    W[30] = 0.0
    W[31] = 0.0
    c = W.mean(dim=0) + 0.3
    cols = torch.ones(40, dtype=torch.bool)
    cols[31] = False
    res = row_maxima(W, raw_columns=cols, center=c, cosines=False, max_memory_mib=1e-3)
    V = (W - c).numpy()
    G = V @ V.T
    np.fill_diagonal(G, -np.inf)
    G[:, 31] = -np.inf
    expected = np.where(cols.numpy(), G.max(axis=1), np.nan)
    np.testing.assert_allclose(res.max_inner.numpy(), expected, rtol=1e-14, atol=1e-13)
