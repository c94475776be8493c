"""Lattice slices: exact invariants, the known codes they contain, and the starts they give."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

from gnc.codes import softmax_code
from gnc.geometry import KNOWN_CONFIGURATIONS, one_vs_rest_distances
from gnc.geometry.slices import farthest_subset, lattice_slices, slice_starts


def _cosines(rows: np.ndarray) -> set[Fraction]:
    """The exact off-diagonal cosines of integer rows of one norm."""
    G = rows @ rows.T
    norm = int(G[0, 0])
    off = G[~np.eye(len(rows), dtype=bool)]
    return {Fraction(int(v), norm) for v in np.unique(off)}


def _known_cosines(name: str) -> set[Fraction]:
    return {Fraction(v).limit_denominator(100) for v in KNOWN_CONFIGURATIONS[name].inner_products}


def test_every_slice_is_a_code_of_distinct_equal_norm_integer_rows() -> None:
    S = lattice_slices()
    assert len(S) > 100
    assert len({s.name for s in S}) == len(S)
    for s in S:
        assert s.rows.dtype == np.int64 and not s.rows.flags.writeable
        assert s.rows.shape[0] == s.num_points >= 4
        norms = (s.rows * s.rows).sum(axis=1)
        assert np.all(norms == norms[0]) and norms[0] > 0, s.name
        assert len(np.unique(s.rows, axis=0)) == s.num_points, s.name
        assert np.linalg.matrix_rank(s.rows.astype(np.float64)) == s.rank, s.name
        assert abs(s.rows).max() < 2**20  # inner products stay exact in int64


@pytest.mark.parametrize(
    ("K", "d", "known"),
    [
        (240, 8, "e8_roots"),
        (56, 7, "gosset_7_56"),
        (27, 6, "schlaefli_6_27"),
        (16, 5, "clebsch_5_16"),
        (24, 4, "cell24"),
        (275, 22, "mclaughlin_22_275"),
        (162, 21, "srg162_21_162"),
        (112, 21, "isotropic_21_112"),
    ],
)
def test_the_tree_contains_the_known_codes(K: int, d: int, known: str) -> None:
    # Oracle: the closed-form inner products of the registered configurations (Cohn and Kumar).
    hits = [s for s in lattice_slices() if (s.num_points, s.rank) == (K, d)]
    assert any(_cosines(s.rows) == _known_cosines(known) for s in hits), [s.name for s in hits]


def test_d5_roots_are_a_slice() -> None:
    # D5's 40 roots: cosines {-1, -1/2, 0, 1/2}, each root with 12 neighbours at 1/2.
    (s,) = [s for s in lattice_slices(leech=False) if (s.num_points, s.rank) == (40, 5)]
    assert _cosines(s.rows) == {Fraction(-1), Fraction(-1, 2), Fraction(0), Fraction(1, 2)}
    G = s.rows @ s.rows.T
    assert np.all((G[0, 0] == 2 * G).sum(axis=1) == 12)


def test_farthest_subset_against_brute_force() -> None:
    gen = np.random.default_rng(0)
    for _ in range(5):
        X = gen.standard_normal((9, 3))
        U = X / np.linalg.norm(X, axis=1, keepdims=True)

        def value(idx: tuple[int, ...] | np.ndarray, U: np.ndarray = U) -> float:
            G = U[list(idx)] @ U[list(idx)].T
            np.fill_diagonal(G, -np.inf)
            return float(G.max())

        best = min(value(c) for c in itertools.combinations(range(9), 4))
        got = farthest_subset(X, 4, tries=9)
        assert len(set(got.tolist())) == 4
        assert value(got) >= best - 1e-12  # greedy: never better than the optimum
    # A cross-polytope hidden among near-copies of its points: the greedy keeps the polytope.
    P = np.concatenate([np.eye(4), -np.eye(4)])
    X = np.concatenate([P + 0.05 * gen.standard_normal(P.shape), P])
    got = farthest_subset(X, 8)
    G = X[got] @ X[got].T / np.outer(*(2 * [np.linalg.norm(X[got], axis=1)]))
    np.fill_diagonal(G, -1)
    assert G.max() < 0.2
    with pytest.raises(ValueError, match="k"):
        farthest_subset(X, 17)


def test_slice_starts_shapes_and_values() -> None:
    (name, X), *_ = slice_starts(40, 5)
    assert name.startswith("e8") and X.shape == (40, 5) and X.dtype == torch.float64
    torch.testing.assert_close(X.norm(dim=1), torch.ones(40, dtype=torch.float64))
    G = X @ X.T
    G.fill_diagonal_(-2.0)
    assert abs(G.max().item() - 0.5) < 1e-12
    cut = slice_starts(100, 20)  # 100 of a 105-point slice of R^20 at max cosine 1/8
    assert cut and ", 100 of " in cut[0][0]
    W = cut[0][1]
    assert W.shape == (100, 20) and torch.linalg.matrix_rank(W).item() == 20
    assert (W @ W.T).fill_diagonal_(-2.0).max().item() == pytest.approx(1 / 8, abs=1e-12)
    assert slice_starts(30, 10) == []  # no slice of rank 10
    assert slice_starts(40, 5, count=0) == []
    with pytest.raises(ValueError, match="num_classes"):
        slice_starts(1, 5)


def test_search_starts_from_the_slices_and_can_do_without() -> None:
    res = softmax_code(112, 21, target=8 / 9, time_limit=60, clock="cpu")
    assert res.method == "lattice-slice" and res.stop_reason.endswith("-reached")
    assert res.rho == pytest.approx(8 / 9, abs=1e-12) and res.certified
    D = one_vs_rest_distances(res.code).distances  # every class ties at 1 - 1/9
    assert torch.allclose(D, torch.full_like(D, 8 / 9), atol=1e-12)
    plain = softmax_code(40, 5, restarts=1, steps=(20, 20), polish=False, lattice_starts=False)
    assert plain.method == "optimized"
    cut = softmax_code(40, 5, restarts=1, steps=(20, 20), polish=False)
    assert cut.method == "lattice-slice" and cut.rho >= 0.5 - 1e-12
