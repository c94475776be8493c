"""Exactly coinciding rows by keys and exact comparisons, against ``torch.unique`` (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _coinciding as coinciding
from gnc.geometry.argmax import coinciding_rows


def _oracle(W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """Lowest index of an equal row, from ``torch.unique(dim=0)`` (value equality)."""
    X = W.double().cpu() if b is None else torch.cat([W.double(), b.double()[:, None]], 1).cpu()
    _, inverse = torch.unique(X, dim=0, return_inverse=True)
    K = X.shape[0]
    first = torch.full((int(inverse.max()) + 1,), K, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(K), reduce="amin")
    return first[inverse]


def _with_duplicates(K: int, d: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(K, d, generator=g, dtype=torch.float64).to(dtype)
    src = torch.randint(0, K, (K // 4,), generator=g)
    dst = torch.randint(0, K, (K // 4,), generator=g)
    W[dst] = W[src]  # groups of all sizes, in any order of indices
    W[5:9] = W[2]  # one larger group
    W[10, 0] = 0.0
    W[11] = W[10]
    W[11, 0] = -0.0  # equal by value to row 10
    W[12] = W[3]
    W[12, -1] = torch.nextafter(W[3, -1], torch.tensor(np.inf, dtype=dtype))  # one ulp apart
    return W


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_torch_unique(device: torch.device, dtype: torch.dtype, with_bias: bool) -> None:
    W = _with_duplicates(400, 7, seed=1, dtype=dtype)
    b = None
    if with_bias:
        b = torch.zeros(400, dtype=dtype)
        b[6] = 1.0  # row 6 no longer equals rows 2, 5, 7, 8
    twin = coinciding_rows(W.to(device), None if b is None else b.to(device))
    assert twin.device.type == device.type
    assert torch.equal(twin.cpu(), _oracle(W, b))
    assert int(twin[11]) == 10 and int(twin[12]) == 12
    assert (int(twin[6]) == 6) == with_bias


def test_colliding_keys_are_separated_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key equal (all-zero multipliers): the exact comparisons alone decide."""
    monkeypatch.setattr(coinciding, "_coefficients", lambda n: np.zeros(n, dtype=np.uint64))
    W = _with_duplicates(300, 5, seed=2, dtype=torch.float64)
    assert len(set(coinciding.row_keys(W).tolist())) == 1
    assert torch.equal(coinciding_rows(W, None), _oracle(W, None))


def test_keys_do_not_depend_on_the_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    W = _with_duplicates(1000, 9, seed=3, dtype=torch.float64)
    whole = coinciding.row_keys(W)
    monkeypatch.setattr(coinciding, "_BLOCK_MIB", 1e-4)  # one row a block
    assert np.array_equal(coinciding.row_keys(W), whole)
    assert torch.equal(coinciding_rows(W, None), _oracle(W, None))


def test_all_rows_equal_and_all_distinct() -> None:
    same = torch.ones(50, 4, dtype=torch.float64)
    assert torch.equal(coinciding_rows(same, None), torch.zeros(50, dtype=torch.long))
    eye = torch.eye(6, dtype=torch.float64)
    assert torch.equal(coinciding_rows(eye, None), torch.arange(6))
