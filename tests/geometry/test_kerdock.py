"""Kerdock codes: the Z4 construction, weight distributions, the Gray map, the tie certificate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import one_vs_rest_distances
from gnc.geometry.kerdock import _hensel_lift, kerdock_code, kerdock_z4, primitive_polynomial
from gnc.geometry.sharp_codes import tie_certificate

LEE = np.array([0, 1, 2, 1])


def _gf2_mod(a: int, f: int) -> int:
    while a.bit_length() >= f.bit_length():
        a ^= f << (a.bit_length() - f.bit_length())
    return a


@pytest.mark.parametrize(("r", "want"), [(3, 0b1011), (5, 0b100101), (7, 0b10000011)])
def test_primitive_polynomials(r: int, want: int) -> None:
    f = primitive_polynomial(r)
    assert f == want
    # Irreducible: no factor of degree 1..r/2 (brute force).
    assert all(_gf2_mod(f, g) for g in range(2, 1 << (r // 2 + 1)))
    # x has order 2^r - 1: its powers run through every nonzero residue.
    seen, x = set(), 1
    for _ in range(2**r - 1):
        x = _gf2_mod(x << 1, f)
        seen.add(x)
    assert len(seen) == 2**r - 1


@pytest.mark.parametrize("r", [3, 5, 7])
def test_hensel_lift_divides_x_to_the_n_minus_one_mod_4(r: int) -> None:
    h = _hensel_lift(primitive_polynomial(r))
    assert h[-1] == 1 and len(h) == r + 1
    assert np.array_equal(h % 2, [(primitive_polynomial(r) >> i) & 1 for i in range(r + 1)])
    # x^(2^r - 1) = 1 in Z4[x]/(h): reduce x^n by h.
    n = 2**r - 1
    poly = np.zeros(n + 1, dtype=np.int64)
    poly[n], poly[0] = 1, -1
    for top in range(n, r - 1, -1):
        c = poly[top] % 4
        if c:
            poly[top - r : top + 1] -= c * h
    assert not (poly % 4).any()
    if r == 3:  # the octacode's polynomial (Hammons et al. 1994)
        assert h.tolist() == [3, 1, 2, 1]


@pytest.mark.parametrize("m", [4, 6, 8])
def test_lee_weight_distribution(m: int) -> None:
    Z = kerdock_z4(m)
    n = 2**m
    assert Z.shape == (n * n, n // 2) and Z.dtype == np.int8
    weights, counts = np.unique(LEE[Z.astype(np.int64)].sum(axis=1), return_counts=True)
    root = round(n**0.5)
    want = {0: 1, n // 2 - root // 2: n * (n // 2 - 1), n // 2: 2 * n - 2}
    want |= {n // 2 + root // 2: n * (n // 2 - 1), n: 1}
    assert dict(zip(weights.tolist(), counts.tolist(), strict=True)) == want
    assert len({row.tobytes() for row in Z}) == n * n  # distinct words


def test_z4_linear_and_gray_isometry() -> None:
    Z = kerdock_z4(4).astype(np.int64)
    words = {row.tobytes() for row in Z.astype(np.int8)}
    for a in Z[::7]:
        sums = ((Z + a) % 4).astype(np.int8)
        assert all(row.tobytes() in words for row in sums)  # closed under addition
    W = kerdock_code(4).numpy()  # Nordstrom-Robinson
    G = W @ W.T
    lee = LEE[(Z[:, None, :] - Z[None, :, :]) % 4].sum(axis=2)
    np.testing.assert_array_equal(G, 1.0 - 2.0 * lee / 16.0)  # exact: entries are +-1/4
    values, counts = np.unique(G[0], return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        -1.0: 1,
        -0.25: 112,
        0.0: 30,
        0.25: 112,
        1.0: 1,
    }


def test_kerdock_code_rows_padding_and_validation() -> None:
    W = kerdock_code(8, 300, 512, dtype=torch.float32)
    assert W.shape == (300, 512) and W.dtype == torch.float32
    assert set(W[:, :256].abs().unique().tolist()) == {1 / 16} and not W[:, 256:].any()
    assert torch.equal(W.double(), kerdock_code(8, 300, 512))
    G = W.double() @ W.double().T
    G.fill_diagonal_(-2.0)
    assert float(G.max()) == 1 / 16
    with pytest.raises(ValueError, match="even"):
        kerdock_code(5)
    with pytest.raises(ValueError, match="num_points=257"):
        kerdock_code(4, 257)
    with pytest.raises(ValueError, match="dim=15"):
        kerdock_code(4, 10, 15)


def test_tie_certificate_agrees_with_the_exact_solver() -> None:
    W = kerdock_code(6, 1200)  # 1,200 words of length 64: hundreds of ties per class
    cert = tie_certificate(W)
    assert cert.certified and cert.max_cosine == 1 / 8
    assert cert.rho == pytest.approx(7 / 8, abs=1e-14) and cert.lower <= cert.rho
    assert cert.support <= 65  # a basic solution: at most d + 1 neighbours
    exact = one_vs_rest_distances(W, normalize=False, classes=[cert.witness])
    assert exact.certified
    assert float(exact.distances[0]) == pytest.approx(cert.rho, abs=1e-12)
    with pytest.raises(ValueError, match="unit rows"):
        tie_certificate(2 * W)
    with pytest.raises(ValueError, match="hull"):
        tie_certificate(kerdock_code(4, 20))  # rho > 1 - max cosine on this subset
