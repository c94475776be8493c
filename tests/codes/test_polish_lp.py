"""The polish's warm-started linear programs against SciPy's HiGHS, solved cold."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse

from gnc.codes.polish import _balance, _carry_over, _pair_rows, _Rows, _WarmLP


def _rows(A: scipy.sparse.spmatrix) -> _Rows:
    R = scipy.sparse.csr_matrix(A)
    return _Rows(R.indptr.astype(np.int32), R.indices.astype(np.int32), R.data)


def _program(
    rng: np.random.Generator, keys: np.ndarray, n: int
) -> tuple[np.ndarray, scipy.sparse.coo_matrix, np.ndarray]:
    # minimize -t s.t. t - <a_r, x> <= b_r for the rows `keys` (each row's data fixed by its
    # key, plus noise: successive programs share rows and differ a little, as in a polish).
    A = np.empty((keys.size, n))
    for i, key in enumerate(keys):
        A[i] = np.random.default_rng(int(key)).standard_normal(n)
    A[:, 0] = 1.0
    A[:, 1:] += 0.05 * rng.standard_normal((keys.size, n - 1))
    b = 1.0 + 0.1 * rng.random(keys.size)
    c = np.zeros(n)
    c[0] = -1.0
    return c, scipy.sparse.coo_matrix(A), b


def test_carry_over_maps_statuses_by_key_and_defaults_new_keys() -> None:
    old = np.array([7, 3, 11])
    status = np.array([1, 0, 2])
    got = _carry_over(np.array([3, 5, 11, 7]), old, status, default=1)
    np.testing.assert_array_equal(got, [0, 1, 2, 1])
    np.testing.assert_array_equal(_carry_over(np.array([4]), old[:0], status[:0], 0), [0])


@pytest.mark.parametrize(("cols", "rows"), [([1, 1, 1, 0], [1, 0, 0]), ([0, 0, 0], [0, 0, 1])])
def test_balance_leaves_one_basic_entry_per_row(cols: list[int], rows: list[int]) -> None:
    c, r = np.array(cols), np.array(rows)
    assert _balance(c, r)
    assert int((c == 1).sum() + (r == 1).sum()) == r.size
    assert c[0] == cols[0]  # the free column keeps its status


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warm_started_programs_reach_the_cold_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    lp = _WarmLP()
    keys = np.arange(40)
    for step in range(8):
        # Rows come and go between programs: drop a few, add new keys.
        keys = np.unique(
            np.concatenate([rng.choice(keys, keys.size - 3, replace=False), rng.integers(0, 80, 4)])
        )
        radius = float(rng.uniform(0.2, 2.0))
        c, A, b = _program(rng, keys, n)
        x = lp.solve(c, _rows(A), b, radius, np.arange(-1, n - 1), keys)
        ref = scipy.optimize.linprog(
            c,
            A_ub=A.tocsr(),
            b_ub=b,
            bounds=[(None, None)] + [(-radius, radius)] * (n - 1),
            method="highs",
        )
        assert ref.status == 0 and x is not None, step
        assert abs(float(c @ x) - ref.fun) <= 1e-9 * max(1.0, abs(ref.fun))
        assert float((A @ x - b).max()) <= 1e-9
        assert float(np.abs(x[1:]).max()) <= radius * (1 + 1e-12)
    assert lp.warm_starts >= 4  # most programs started from a carried basis


def test_a_program_without_optimum_returns_none_and_the_next_starts_cold() -> None:
    lp = _WarmLP()
    c = np.array([-1.0, 0.0])
    # t <= -1 and -t <= -1 (t >= 1): infeasible.
    A = _rows(scipy.sparse.coo_matrix(np.array([[1.0, 0.0], [-1.0, 0.0]])))
    assert lp.solve(c, A, np.array([-1.0, -1.0]), 1.0, np.array([-1, 0]), np.array([0, 1])) is None
    x = lp.solve(c, A, np.array([2.0, 0.0]), 1.0, np.array([-1, 0]), np.array([0, 1]))
    assert x is not None and abs(x[0] - 2.0) < 1e-12


def test_pair_rows_are_the_dense_rows_in_compressed_form() -> None:
    # Dense oracle: row r has t_coef[r] in column 0 and each block's d coefficients from its
    # first column; the blocks of one row may come in any column order (softmax: k after j).
    rng = np.random.default_rng(0)
    npair, d, nvar = 6, 2, 13
    t = rng.standard_normal(npair)
    firsts = [1 + 2 * rng.permutation(6)[:npair], 1 + 2 * rng.permutation(6)[:npair]]
    firsts[1] = np.where(firsts[1] == firsts[0], 1 + (firsts[0] + 1) % 12, firsts[1])
    blocks = [(f, rng.standard_normal((npair, d))) for f in firsts]
    dense = np.zeros((npair, nvar))
    dense[:, 0] = t
    for first, coef in blocks:
        for r in range(npair):
            dense[r, first[r] : first[r] + d] = coef[r]
    rows = _pair_rows(t, blocks, d)
    assert rows.starts.dtype == rows.columns.dtype == np.int32
    got = scipy.sparse.csr_matrix((rows.values, rows.columns, rows.starts), shape=(npair, nvar))
    np.testing.assert_array_equal(got.toarray(), dense)
