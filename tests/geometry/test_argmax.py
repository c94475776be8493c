"""Unargmaxable classes: hand-built hulls, scipy's ConvexHull, an independent LP with a bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

from gnc.geometry.argmax import ARGMAXABLE, COINCIDING, INSIDE_HULL, argmaxable


def _check_certificates(W: torch.Tensor, b: torch.Tensor | None, res) -> None:
    """Re-derive every certificate independently in float64 NumPy."""
    Wn = W.double().numpy()
    bn = np.zeros(W.shape[0]) if b is None else b.double().numpy()
    for k in (res.status == ARGMAXABLE).nonzero(as_tuple=True)[0].tolist():
        h = res.hidden_state(W, k).numpy()
        logits = Wn @ h + bn
        others = np.delete(logits, k)
        margin = logits[k] - others.max()
        assert margin > 0, k
        assert float(res.margins[k]) <= margin + 1e-9 * (1 + abs(margin))
    for row, k in enumerate(res.inside.tolist()):
        sup = res.support[row]
        live = sup >= 0
        lam = res.support_weights[row][live].numpy()
        idx = sup[live].numpy()
        assert k not in idx.tolist()
        assert np.all(lam >= 0) and abs(lam.sum() - 1) < 1e-9
        resid = np.linalg.norm(Wn[k] - lam @ Wn[idx])
        assert resid <= 1e-7 * np.abs(Wn).max() + 1e-12
        assert lam @ bn[idx] - bn[k] >= -1e-7


def test_hand_built_hull() -> None:
    square = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]
    inner = [[0.0, 0.0], [0.5, -0.25], [1.0, 0.0]]  # the last one on an edge: never wins strictly
    outer = [[2.0, 0.0]]
    W = torch.tensor(square + inner + outer + [[1.0, 1.0]])
    res = argmaxable(W)
    # Row 0 and its copy (last row) tie; [2, 0] cuts the square's right edge off the hull, so
    # [1, 1] and [1, -1] are still vertices; the inner points and [1, 0] are inside.
    assert res.status.tolist() == [2, 1, 1, 1, 0, 0, 0, 1, 2]
    assert res.coinciding.tolist() == [0, 8]
    assert res.unargmaxable.tolist() == [4, 5, 6]
    assert res.certified
    _check_certificates(W, None, res)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_random_cloud_matches_convex_hull(d: int) -> None:
    gen = np.random.default_rng(d)
    K = 60
    X = gen.standard_normal((K, d)) * gen.uniform(0.3, 1.5, size=(K, 1))
    W = torch.from_numpy(X)
    res = argmaxable(W, max_memory_mib=0.01)  # one row per tile
    vertices = set(ConvexHull(X).vertices.tolist())
    got = set((res.status == ARGMAXABLE).nonzero(as_tuple=True)[0].tolist())
    assert got == vertices
    assert set(res.unargmaxable.tolist()) == set(range(K)) - vertices
    assert res.certified
    _check_certificates(W, None, res)


def test_on_device_matches_convex_hull(device: torch.device) -> None:
    gen = np.random.default_rng(11)
    X = gen.standard_normal((80, 3)) * gen.uniform(0.2, 1.5, size=(80, 1))
    res = argmaxable(torch.from_numpy(X).to(device))
    assert res.status.device.type == device.type
    vertices = set(ConvexHull(X).vertices.tolist())
    assert set((res.status == ARGMAXABLE).nonzero(as_tuple=True)[0].tolist()) == vertices
    assert res.certified


def test_float32_rows_many_classes_screen_and_solve() -> None:
    gen = torch.Generator().manual_seed(3)
    K, d = 3000, 5  # qhull's cost grows fast with d: keep the oracle cheap
    W = torch.randn(K, d, generator=gen) * torch.rand(K, 1, generator=gen).pow(3)
    res = argmaxable(W)
    vertices = set(ConvexHull(W.double().numpy()).vertices.tolist())
    assert set((res.status == ARGMAXABLE).nonzero(as_tuple=True)[0].tolist()) == vertices
    assert res.num_screened + res.num_solved == K
    _check_certificates(W, None, res)


def _lp_argmaxable(W: np.ndarray, b: np.ndarray, k: int) -> bool:
    """Independent oracle: maximize t s.t. <w_k - w_j, h> + b_k - b_j >= t in a box."""
    K, d = W.shape
    rest = np.delete(np.arange(K), k)
    A = np.hstack([W[rest] - W[k], np.ones((K - 1, 1))])
    res = linprog(
        np.r_[np.zeros(d), -1.0],
        A_ub=A,
        b_ub=b[k] - b[rest],
        bounds=[(-1e3, 1e3)] * d + [(None, 1.0)],
        method="highs-ipm",
    )
    return bool(-res.fun > 1e-9)


def test_bias_against_independent_lp() -> None:
    gen = np.random.default_rng(7)
    K, d = 40, 3
    X = gen.standard_normal((K, d)) * gen.uniform(0.2, 1.2, size=(K, 1))
    b = gen.standard_normal(K) * 0.3
    res = argmaxable(torch.from_numpy(X), torch.from_numpy(b))
    expected = [_lp_argmaxable(X, b, k) for k in range(K)]
    assert (res.status == ARGMAXABLE).tolist() == expected
    assert set(res.unargmaxable.tolist()) == {k for k in range(K) if not expected[k]}
    assert res.has_bias and res.certified
    _check_certificates(torch.from_numpy(X), torch.from_numpy(b), res)
    # A bias can rescue an interior row: with a large enough bias it wins at h = 0.
    inner = int(res.unargmaxable[0])
    b2 = b.copy()
    b2[inner] = 100.0
    again = argmaxable(torch.from_numpy(X), torch.from_numpy(b2))
    assert int(again.status[inner]) == ARGMAXABLE
    assert float(again.scales[inner]) == 0.0


def test_coinciding_rows_inside_the_hull_are_inside() -> None:
    W = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    res = argmaxable(W)
    assert res.status.tolist() == [1, 1, 1, INSIDE_HULL, INSIDE_HULL]
    # Same rows, different biases: they no longer coincide.
    res_b = argmaxable(W, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.1]))
    assert int(res_b.status[3]) == INSIDE_HULL and int(res_b.status[4]) != COINCIDING


def test_all_rows_equal_tie() -> None:
    res = argmaxable(torch.ones(4, 3))
    assert res.status.tolist() == [COINCIDING] * 4


def test_bad_bias_is_one_line() -> None:
    with pytest.raises(ValueError, match="Expected `bias` of shape \\(3,\\)"):
        argmaxable(torch.eye(3), torch.zeros(2))


def test_screen_margins_and_to_dict() -> None:
    # Rows of very different norms: the screen decides the vertices, its margins are certified
    # (checked against float64 logits), and the record serializes to JSON with None for NaN.
    import json

    gen = torch.Generator().manual_seed(5)
    W = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    W = W * torch.rand(500, 1, generator=gen, dtype=torch.float64).pow(2)
    b = 0.05 * torch.randn(500, generator=gen, dtype=torch.float64)
    for bias in (None, b):
        res = argmaxable(W, bias, max_memory_mib=0.01)
        assert res.num_screened > 0 and res.certified
        _check_certificates(W, bias, res)
        out = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        assert out["certified"] is True and out["num_classes"] == 500
        assert out["unargmaxable"] == res.unargmaxable.tolist()
        assert len(out["margins"]) == 500 and None in out["margins"]
        assert "solved_states" not in out and "support" not in out


def test_shared_pass_gives_the_same_result_and_is_checked() -> None:
    from gnc.geometry._row_maxima import row_maxima
    from gnc.geometry.argmax import coinciding_rows, screen_center

    gen = torch.Generator().manual_seed(8)
    W = torch.randn(60, 5, generator=gen, dtype=torch.float64)
    W[50] = W[:4].mean(dim=0)  # inside the hull
    W[51] = W[10]  # exact twin
    b = torch.zeros(60, dtype=torch.float64)
    for bias in (None, b):
        free = coinciding_rows(W, bias) == torch.arange(60)
        center = screen_center(W, free.nonzero(as_tuple=True)[0])
        maxima = row_maxima(
            W, raw_columns=free, center=center, coincide_tol=1e-9, max_memory_mib=1024.0
        )
        shared = argmaxable(W, bias, maxima=maxima)
        alone = argmaxable(W, bias)
        assert torch.equal(shared.status, alone.status)
        assert 50 in shared.unargmaxable.tolist() and shared.coinciding.tolist() == [10, 51]
        torch.testing.assert_close(shared.margins, alone.margins, equal_nan=True)
        _check_certificates(W, bias, shared)
    free = coinciding_rows(W, None) == torch.arange(60)
    uncentred = row_maxima(W, raw_columns=free, max_memory_mib=1024.0)
    all_columns = row_maxima(
        W, raw_columns=torch.ones(60, dtype=torch.bool), center=center, max_memory_mib=1024.0
    )
    for wrong in (uncentred, all_columns):
        with pytest.raises(ValueError, match="Expected `maxima`"):
            argmaxable(W, maxima=wrong)


def test_bias_head_with_a_near_coinciding_group_and_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PP-OCRv6-like head: a tight group of never-trained rows (spread 1e-6, equal low bias)
    inside the hull of the trained ones, two exact duplicates. The group shares one LP basis, so
    it costs a few LPs, not one per row; every status matches an independent LP."""
    import gnc.geometry.argmax as am

    gen = np.random.default_rng(3)
    d, outer, group = 4, 30, 40
    X = gen.standard_normal((outer, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    centre = 0.05 * gen.standard_normal(d)
    G = centre + 1e-6 * gen.standard_normal((group, d))
    W = np.vstack([X, G, X[:2]])
    b = np.r_[0.2 + 0.05 * gen.standard_normal(outer), -0.01 + 1e-9 * gen.standard_normal(group)]
    b = np.r_[b, b[:2]]
    calls = []
    real_lp = am._lp
    monkeypatch.setattr(am, "_lp", lambda *a, **k: calls.append(a[2]) or real_lp(*a, **k))
    res = argmaxable(torch.from_numpy(W), torch.from_numpy(b))
    K = W.shape[0]
    assert res.coinciding.tolist() == [0, 1, K - 2, K - 1]
    expected = [_lp_argmaxable(W, b, k) for k in range(2, outer + group)]
    assert (res.status[2 : outer + group] == ARGMAXABLE).tolist() == expected
    assert set(range(outer, outer + group)) <= set(res.unargmaxable.tolist())
    assert res.certified
    assert 0 < len(calls) < group // 4
    _check_certificates(torch.from_numpy(W), torch.from_numpy(b), res)
