"""Compiled helpers against their tensor twins: quantization, the scaled top-k, float64 pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _compiled as compiled
from gnc.geometry import _compiled_int8 as compiled_int8
from gnc.geometry import _int8 as int8
from gnc.geometry import _screening as screening

pytestmark = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")


def _rows(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, d, generator=g, dtype=torch.float64)
    X *= 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    X[::7, 0] *= 50.0  # one large coordinate: the clips below 1 win there
    X[3] = 0.0
    return X


@pytest.mark.parametrize("levels", [127, 63])
def test_compiled_quantize_is_the_tensor_quantize(levels: int, monkeypatch) -> None:
    X = _rows(400, 48, levels)
    q, s, e = int8.quantize(X, levels)
    monkeypatch.setattr(int8, "COMPILED", False)
    q_t, s_t, e_t = int8.quantize(X, levels)
    # The same clip and the same integers; the remainders' norms differ at rounding only.
    assert torch.equal(s, s_t) and torch.equal(q, q_t)
    assert torch.allclose(e, e_t, rtol=1e-12, atol=1e-300)
    # And the bound holds against an independent NumPy remainder.
    rem = np.linalg.norm(X.numpy() - s.numpy()[:, None] * q.numpy().astype(np.float64), axis=1)
    assert np.all(rem <= e.numpy()) and int(q.abs().max()) <= levels
    assert float(s[3]) == 1.0 and float(e[3]) == 0.0 and not bool(q[3].any())


def _tiles(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wide = torch.randn(16, 5000, generator=g)
    ties = torch.randint(-40, 40, (16, 3001), generator=g).float()  # many equal keys
    masked = torch.randn(16, 4096, generator=g)
    masked[:, ::3] = torch.inf  # excluded for a smallest-k
    masked[:, 1::3] = -torch.inf  # excluded for a largest-k
    narrow = torch.randn(16, 70, generator=g)  # too narrow for groups: every column a candidate
    return [wide, ties, masked, narrow]


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("k", [1, 32, 64])
def test_scaled_top_k_selects_the_extreme_products(largest: bool, k: int) -> None:
    for i, ip in enumerate(_tiles(k)):
        K = ip.shape[1]
        g = torch.Generator().manual_seed(i)
        scale = (0.5 + torch.rand(K, generator=g)).to(torch.float32)
        cols = compiled_int8.scaled_top_k(ip, scale, k, largest)
        assert cols.shape == (ip.shape[0], k)
        assert all(len(set(r.tolist())) == k for r in cols)  # k distinct columns a row
        prod = ip * scale
        want = prod.topk(k, dim=1, largest=largest).values.sort(dim=1).values
        got = prod.gather(1, cols).sort(dim=1).values
        assert torch.equal(got, want)  # the same values (ties may pick other columns)


def test_scaled_extreme_k_is_the_same_with_either_path(monkeypatch) -> None:
    ip = _tiles(5)[1]
    scale = torch.linspace(0.5, 2.0, ip.shape[1], dtype=torch.float32)
    fast = screening.scaled_extreme_k(ip.clone(), scale, 20, largest=True)
    monkeypatch.setattr(screening, "COMPILED_TOP_K", False)
    slow = screening.scaled_extreme_k(ip.clone(), scale, 20, largest=True)
    prod = ip * scale
    assert torch.equal(
        prod.gather(1, fast).sort(dim=1).values, prod.gather(1, slow).sort(dim=1).values
    )


def test_compiled_pairs_dot_is_numpy(monkeypatch) -> None:
    g = torch.Generator().manual_seed(7)
    A = torch.randn(300, 45, generator=g, dtype=torch.float64)  # d not a multiple of 8
    B = torch.randn(20, 45, generator=g, dtype=torch.float64) * 1e3
    ia = torch.randint(0, 300, (5000,), generator=g)
    ib = torch.randint(0, 20, (5000,), generator=g)
    want = np.einsum("pd,pd->p", A.numpy()[ia.numpy()], B.numpy()[ib.numpy()])
    scale = np.linalg.norm(A.numpy()[ia.numpy()], axis=1) * np.linalg.norm(B.numpy()[ib], axis=1)
    fast = screening._pairs_dot(A, B, ia, ib, 1.0)
    monkeypatch.setattr(screening, "COMPILED_PAIRS", False)
    slow = screening._pairs_dot(A, B, ia, ib, 1.0)
    for got in (fast, slow):
        assert np.all(np.abs(got.numpy() - want) <= 1e-14 * scale)


def test_compiled_combine_is_numpy() -> None:
    # x_i = sum_p lam_ip (w_{ws_ip} - w_{rows_i}), zero weights skipped (padding columns).
    g = torch.Generator().manual_seed(8)
    W = torch.randn(200, 13, generator=g, dtype=torch.float64)
    ws = torch.randint(0, 200, (30, 9), generator=g)
    rows = torch.randint(0, 200, (30,), generator=g)
    lam = torch.rand(30, 9, generator=g, dtype=torch.float64)
    lam[:, 6:] = 0.0
    lam /= lam.sum(dim=1, keepdim=True)
    Wn = W.numpy()
    want = np.einsum("np,npd->nd", lam.numpy(), Wn[ws.numpy()] - Wn[rows.numpy()][:, None, :])
    got = compiled.combine(W, ws, rows, lam).numpy()
    assert np.allclose(got, want, rtol=0, atol=1e-14)
