"""The sharp codes of d = 21-23: exact inner products, design strength, graphs, certified rho."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.special import eval_gegenbauer

from gnc.geometry import known_configuration, one_vs_rest_distances
from gnc.geometry import sharp_codes as sc
from helpers.qp_reference import scipy_one_vs_rest_solution

F = Fraction
# (builder, d, K, {inner product: count per point}, design strength t, graph (n, k, lambda, mu))
# written out from Cohn and Kumar (JAMS 2007, Table 1) and the graphs' parameters.
Case = tuple[
    Callable[..., torch.Tensor],
    int,
    int,
    dict[Fraction, int],
    int,
    tuple[int, int, int, int] | None,
]
CASES: list[Case] = [
    (sc.isotropic_21_112, 21, 112, {F(-1, 3): 30, F(1, 9): 81}, 3, (112, 30, 2, 10)),
    (sc.srg162_21_162, 21, 162, {F(-2, 7): 56, F(1, 7): 105}, 3, (162, 56, 10, 24)),
    (sc.higman_sims_22_100, 22, 100, {F(-4, 11): 22, F(1, 11): 77}, 3, (100, 22, 0, 6)),
    (sc.mclaughlin_22_275, 22, 275, {F(-1, 4): 112, F(1, 6): 162}, 4, (275, 112, 30, 56)),
    (sc.equiangular_23_552, 23, 552, {F(-1): 1, F(-1, 5): 275, F(1, 5): 275}, 5, None),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sharp_code_inner_products_rank_and_design(case: Case) -> None:
    build, d, K, inner, t, _graph = case
    W = build()
    assert W.dtype == torch.float64 and tuple(W.shape) == (K, d)
    A = W.numpy()
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0, atol=1e-14)
    assert np.linalg.matrix_rank(A, tol=1e-9) == d
    values = np.array([float(v) for v in inner])
    G = A @ A.T
    off = G[~np.eye(K, dtype=bool)].reshape(K, K - 1)
    nearest = np.abs(off[..., None] - values).argmin(axis=2)
    assert np.abs(off - values[nearest]).max() < 1e-12  # every inner product is one of the values
    for i, count in enumerate(inner.values()):
        assert ((nearest == i).sum(axis=1) == count).all()  # and each occurs `count` times per row
    # Sharp: a spherical t-design (Gegenbauer sums vanish for degrees 1..t), t = 2m - 1 or more.
    m = sum(v != -1 for v in inner) + (F(-1) in inner)
    assert t >= 2 * m - 1
    alpha = (d - 2) / 2
    for deg in range(1, t + 2):
        moment = eval_gegenbauer(deg, alpha, np.clip(G, -1.0, 1.0)).sum() / K**2
        if deg <= t:
            assert abs(moment) < 1e-10, deg
        else:
            assert moment > 1.0, deg  # not a (t + 1)-design: t is the strength


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sharp_code_rho_is_one_minus_max_cosine_at_every_class(case: Case) -> None:
    build, d, K, inner, _t, _graph = case
    W = build()
    s = float(max(inner))
    res = one_vs_rest_distances(W, normalize=False)
    assert res.certified
    np.testing.assert_allclose(res.distances.numpy(), 1.0 - s, rtol=0, atol=1e-12)
    assert float(res.rho) == pytest.approx(1.0 - s, abs=1e-12)
    A = W.numpy()
    for k in (0, K // 2, K - 1):  # the independent SciPy solver agrees
        sol = scipy_one_vs_rest_solution(A, k)
        assert sol.distance == pytest.approx(1.0 - s, abs=1e-10)
    c = known_configuration(build.__name__)
    assert (c.feature_dim, c.num_classes) == (d, K)
    assert c.rho == pytest.approx(1.0 - s, abs=1e-15)
    assert c.inner_products == pytest.approx(sorted(float(v) for v in inner), abs=1e-15)
    torch.testing.assert_close(c.build(), W, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES[:4], ids=IDS[:4])
def test_sharp_code_graphs_are_strongly_regular(case: Case) -> None:
    build, d, K, inner, _t, graph = case
    G = build().numpy() @ build().numpy().T
    adjacency = (np.abs(G - float(min(inner))) < 1e-9).astype(np.int64)
    assert sc.srg_parameters(adjacency) == graph
    # The spectral code of that graph has the same Gram matrix: two constructions agree.
    X = sc.strongly_regular_code(adjacency)
    assert X.shape == (K, d)
    np.testing.assert_allclose(X @ X.T, G, rtol=0, atol=1e-12)


def test_derived_codes_are_integral_with_exact_cosines() -> None:
    for rows, inner in [
        (sc._equiangular_integral(), {F(-1), F(-1, 5), F(1, 5)}),
        (sc._mclaughlin_integral(), {F(-1, 4), F(1, 6)}),
        (sc._mclaughlin_subconstituent(1, 6), {F(-2, 7), F(1, 7)}),
        (sc._mclaughlin_subconstituent(-1, 4), {F(-1, 3), F(1, 9)}),
    ]:
        assert rows.dtype == np.int64
        G = rows @ rows.T
        norm = int(G[0, 0])
        assert (G.diagonal() == norm).all()
        found = {F(int(v), norm) for v in np.unique(G[~np.eye(len(rows), dtype=bool)])}
        assert found == inner


def test_higman_sims_graph_from_the_steiner_system() -> None:
    A = sc.higman_sims_graph()
    assert sc.srg_parameters(A) == (100, 22, 0, 6)
    # S(3, 6, 22): 77 hexads, any 3 of the 22 points in exactly one.
    hexads = A[23:, 1:23]
    assert hexads.shape == (77, 22) and (hexads.sum(axis=1) == 6).all()
    triples = np.einsum("bi,bj,bk->ijk", hexads, hexads, hexads)
    distinct = [(a, b, c) for a in range(22) for b in range(a + 1, 22) for c in range(b + 1, 22)]
    assert all(triples[a, b, c] == 1 for a, b, c in distinct)
    assert math.comb(22, 3) == len(distinct) == 77 * math.comb(6, 3)


def test_srg_validation() -> None:
    with pytest.raises(ValueError, match="strongly regular"):
        sc.srg_parameters(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]]))  # not regular
    with pytest.raises(ValueError, match="symmetric 0/1"):
        sc.srg_parameters(np.array([[0, 1], [0, 0]]))
    pentagon = np.roll(np.eye(5, dtype=np.int64), 1, axis=1)
    pentagon = pentagon + pentagon.T
    assert sc.srg_parameters(pentagon) == (5, 2, 0, 1)
    with pytest.raises(ValueError, match="integral eigenvalues"):
        sc.strongly_regular_code(pentagon)  # a conference graph: eigenvalues (-1 +- sqrt 5) / 2
    # The Petersen graph, SRG(10, 3, 0, 1): eigenvalue -2 of multiplicity 4.
    outer = [(i, (i + 1) % 5) for i in range(5)]
    inner = [(5 + i, 5 + (i + 2) % 5) for i in range(5)]
    spokes = [(i, 5 + i) for i in range(5)]
    P = np.zeros((10, 10), dtype=np.int64)
    for a, b in outer + inner + spokes:
        P[a, b] = P[b, a] = 1
    X = sc.strongly_regular_code(P)
    G = X @ X.T
    assert X.shape == (10, 4)
    np.testing.assert_allclose(G[P == 1], -2 / 3, atol=1e-12)  # s / k
    np.testing.assert_allclose(G[(P == 0) & ~np.eye(10, dtype=bool)], 1 / 6, atol=1e-12)


def test_dtype_and_device(device: torch.device) -> None:
    W = sc.higman_sims_22_100(dtype=torch.float32, device=device)
    assert W.dtype == torch.float32 and W.device.type == device.type
    torch.testing.assert_close(W.double().cpu(), sc.higman_sims_22_100(), rtol=0, atol=1e-7)
