"""The at-scale engine: float32 passes under rounding bounds, tie-heavy codes, raw rows, tiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnc.geometry import _compiled as compiled
from gnc.geometry import _recertify as recertify
from gnc.geometry import _screening as screening
from gnc.geometry import _seeds as seeds_module
from gnc.geometry import _solve as solve_module
from gnc.geometry import _sweep as sweep_module
from gnc.geometry import _wolfe as wolfe
from gnc.geometry import configurations as cfg
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry._screening import rounding_factor
from helpers.sweeps import SWEEPS

# Tensor operations, and the compiled kernels where numba is.


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def _check_certificate(W: np.ndarray, res, tol: float = 1e-9) -> None:
    """Primal point from the support, dual bound over all rows: re-derived in NumPy."""
    for row, k in enumerate(res.classes.tolist()):
        sup = res.support[row].numpy()
        wts = res.support_weights[row].numpy()
        live = sup >= 0
        assert np.all(sup[live] != k) and np.all(wts[live] >= 0)
        assert abs(wts[live].sum() - 1) < 1e-12
        p = wts[live] @ W[sup[live]]
        D = float(res.distances[row])
        assert abs(np.linalg.norm(W[k] - p) - D) < 1e-12
        if D > 0:
            h = res.directions[row].numpy()
            dual = min(max(0.0, np.min((W[k] - np.delete(W, k, axis=0)) @ h)), D)
            assert D - dual <= tol
            assert abs(dual - float(res.lower_bounds[row])) < 1e-12
    assert res.certified and res.gap <= tol


def test_rounding_factor_bounds_float32_products() -> None:
    g = torch.Generator().manual_seed(3)
    for d in (3, 24, 640):
        A = torch.randn(200, d, generator=g, dtype=torch.float64)
        B = torch.randn(300, d, generator=g, dtype=torch.float64)
        exact = A @ B.T
        approx = (A.float() @ B.float().T).double()
        bound = rounding_factor(d) * A.norm(dim=1)[:, None] * B.norm(dim=1)[None, :]
        assert bool(((approx - exact).abs() <= bound).all())


@pytest.mark.parametrize(("T", "K"), [(1, 7), (300, 1100), (256, 512), (0, 5)])
def test_scores32_tiles_are_float32_products_within_the_bound(T: int, K: int) -> None:
    g = torch.Generator().manual_seed(T + K)
    d = 64
    Q = torch.randn(T, d, generator=g, dtype=torch.float64)
    W = torch.randn(K, d, generator=g, dtype=torch.float64)
    out = screening.scores32(Q.float(), W.float())
    assert out.shape == (T, K) and out.dtype == torch.float32
    exact = Q @ W.T
    bound = rounding_factor(d) * Q.norm(dim=1)[:, None] * W.norm(dim=1)[None, :]
    assert bool(((out.double() - exact).abs() <= bound).all())
    # Every tile is in place: the same float32 products as the untiled GEMM, to its rounding.
    untiled = (Q.float() @ W.float().T).double()
    assert bool(((out.double() - untiled).abs() <= 2 * bound).all())


@pytest.mark.parametrize("largest", [False, True])
@pytest.mark.parametrize(
    ("T", "K", "k", "ties"),
    [(5, 8192, 32, False), (3, 8250, 32, False), (4, 9000, 7, True), (2, 100, 5, False)],
    ids=["chunks", "ragged-last-chunk", "ties", "narrow-fallback"],
)
def test_extreme_k_gives_the_values_of_topk(
    T: int, K: int, k: int, ties: bool, largest: bool
) -> None:
    g = torch.Generator().manual_seed(K + k)
    tile = torch.randn(T, K, generator=g)
    if ties:  # few distinct values, so that many entries tie at the k-th
        tile = torch.randint(-20, 20, (T, K), generator=g).float()
    tile[:, 5] = torch.inf  # excluded entries (the class itself, its working set)
    tile[0, -1] = -torch.inf  # a row's extreme in the ragged last chunk
    tile[1, 3:] = torch.inf if not largest else -torch.inf  # fewer than k finite entries
    vals, idx = screening.extreme_k(tile, k, largest=largest)
    ref = tile.topk(k, dim=1, largest=largest).values
    assert torch.equal(vals, ref)
    # The indices point at those values, each at most once per row.
    assert torch.equal(tile.gather(1, idx), vals)
    assert all(len(set(row)) == k for row in idx.tolist())
    unsorted = screening.extreme_k(tile, k, largest=largest, sorted=False)[0]
    assert torch.equal(unsorted.sort(dim=1, descending=largest).values, ref)


@pytest.mark.parametrize(
    ("build", "expected"),
    [(cfg.e8_roots, 0.5), (cfg.cell600, None)],
    ids=["e8", "600-cell"],
)
def test_tie_heavy_codes_exact_at_every_class(build, expected: float | None) -> None:
    W = build()
    res = one_vs_rest_distances(W, working_set_size=8)  # working sets far smaller than the ties
    if expected is None:  # vertex-transitive: every class has the same D_k = 1 - s_k
        expected = 1.0 - float((W[:1] @ W[1:].T).max())
    assert torch.allclose(res.distances, torch.full_like(res.distances, expected), atol=1e-12)
    _check_certificate(W.numpy(), res)


def test_leech_kissing_code_all_classes_tie() -> None:
    W = cfg.leech_kissing_23()
    res = one_vs_rest_distances(W, classes=torch.arange(0, 4600, 23))
    _check_certificate(W.numpy(), res)
    # Vertex-transitive (Co_2 acts transitively): one value for every class.
    assert float(res.distances.max() - res.distances.min()) < 1e-9
    m = min_one_vs_rest_distance(W)
    assert m.certified and abs(m.rho - float(res.distances[0])) < 1e-9
    assert m.classes_solved == 1  # the exact screen settles every other class at once


def test_leech_minimal_vectors_have_distance_one_half() -> None:
    L = cfg.leech_minimal_vectors()
    assert L.shape == (196560, 24)
    sample = L[::4913]
    ip = sample @ L.T
    vals = torch.unique(torch.round(ip * 8) / 8)
    assert set(vals.tolist()) <= {-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0}
    assert bool(((ip - 0.5).abs() < 1e-12).sum(dim=1).eq(4600).all())
    res = one_vs_rest_distances(L, classes=[0, 98000, 196559])
    assert torch.allclose(res.distances, torch.full((3,), 0.5, dtype=torch.float64), atol=1e-12)
    assert res.certified


def test_tiled_equals_untiled_awkward_sizes() -> None:
    W = _anisotropic(301, 7, seed=1)
    big = one_vs_rest_distances(W, max_memory_mib=1024.0)
    tiny = one_vs_rest_distances(W, max_memory_mib=1e-6)  # one class per block
    assert torch.allclose(big.distances, tiny.distances, atol=1e-12, rtol=0)
    Wn = (W / W.norm(dim=1, keepdim=True)).numpy()
    _check_certificate(Wn, tiny)
    m_big = min_one_vs_rest_distance(W, max_memory_mib=1024.0)
    m_tiny = min_one_vs_rest_distance(W, max_memory_mib=1e-6)
    assert abs(m_big.rho - m_tiny.rho) < 1e-12 and abs(m_big.rho - big.rho) < 1e-12


def test_raw_rows_against_normalized_embedding() -> None:
    W = _anisotropic(120, 5, seed=2) * torch.linspace(0.5, 2.0, 120, dtype=torch.float64)[:, None]
    res = one_vs_rest_distances(W, normalize=False)
    _check_certificate(W.numpy(), res)
    m = min_one_vs_rest_distance(W, normalize=False)
    assert m.certified and abs(m.rho - res.rho) < 1e-9
    # Rows strictly inside the hull of the others have D_k = 0 (unargmaxable classes).
    inside = torch.cat([W, 0.1 * W[:3].mean(dim=0, keepdim=True)])
    r2 = one_vs_rest_distances(inside, normalize=False, classes=[120])
    assert float(r2.distances[0]) < 1e-12 and r2.certified


def test_float32_bound_undecided_entries_are_rechecked() -> None:
    # Near-ties below float32 resolution: two neighbours 1e-10 apart in inner product.
    d = 16
    g = torch.Generator().manual_seed(4)
    base = torch.randn(2000, d, generator=g, dtype=torch.float64)
    base = base / base.norm(dim=1, keepdim=True)
    w = base[0]
    v = torch.randn(d, generator=g, dtype=torch.float64)
    v = v - (v @ w) * w
    v = v / v.norm()
    t = 0.3
    a = math.cos(t) * w + math.sin(t) * v
    b = math.cos(t + 1e-10) * w + math.sin(t + 1e-10) * (-v)
    W = torch.cat([base, a[None], b[None]])
    m = min_one_vs_rest_distance(W)
    full = one_vs_rest_distances(W)
    assert m.certified and full.certified
    assert abs(m.rho - full.rho) < 1e-12
    expected_max = float(max((W[:1] @ W[1:].T).max(), (W @ W.T).fill_diagonal_(-2).max()))
    assert m.max_inner == pytest.approx(expected_max, abs=1e-15)
    _check_certificate(W.numpy(), full)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    W = _anisotropic(3000, 48, seed=5)
    W[7] = W[11]
    cpu = one_vs_rest_distances(W, classes=torch.arange(0, 3000, 7))
    gpu = one_vs_rest_distances(W.cuda(), classes=torch.arange(0, 3000, 7))
    assert gpu.distances.device.type == "cuda" and gpu.certified
    assert torch.allclose(gpu.distances.cpu(), cpu.distances, atol=1e-12, rtol=0)
    m = min_one_vs_rest_distance(W.cuda())
    assert m.certified and abs(m.rho - min_one_vs_rest_distance(W).rho) < 1e-12
    assert m.rho == 0.0


def test_without_points_same_distances_and_bounds() -> None:
    # keep_points=False drops the witnesses only: distances, bounds and gaps are unchanged.
    W = _anisotropic(400, 9, seed=6)
    full = one_vs_rest_distances(W, max_memory_mib=0.05)
    lean = one_vs_rest_distances(W, max_memory_mib=0.05, keep_points=False)
    assert torch.equal(full.distances, lean.distances)
    assert torch.equal(full.lower_bounds, lean.lower_bounds)
    assert lean.nearest_points.shape == (400, 0) and lean.directions.shape == (400, 0)
    assert lean.support.shape == (400, 0) and lean.support_weights.shape == (400, 0)
    assert lean.certified == full.certified


def test_rounds_split_by_budget_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Working sets that start at one row grow over many rounds (corral plus violators). With a
    # cost model in which a working set wider than the first one no longer fits, each later
    # round is split into single classes: the answer is the same as when the whole block is
    # solved at once.
    W = _anisotropic(150, 6, seed=8)
    whole = one_vs_rest_distances(W, working_set_size=1)
    assert whole.rounds > 1
    calls: list[int] = []

    def cost(K: int, d: int, m: int) -> int:
        calls.append(m)
        return 1 if m <= calls[0] else 1 << 40

    monkeypatch.setattr(solve_module, "_solve_bytes", cost)
    split = one_vs_rest_distances(W, working_set_size=1)
    assert max(calls) > calls[0]  # some round was split
    assert torch.allclose(whole.distances, split.distances, atol=1e-13, rtol=0)
    Wn = (W / W.norm(dim=1, keepdim=True)).numpy()
    _check_certificate(Wn, split)


@pytest.mark.parametrize(
    ("name", "W"),
    [
        ("anisotropic", _anisotropic(90, 7, seed=11)),
        (
            "unit",
            _anisotropic(120, 12, seed=12) / _anisotropic(120, 12, seed=12).norm(dim=1)[:, None],
        ),
        ("e8", cfg.e8_roots()),
    ],
)
def test_pruned_working_sets_equal_the_plain_algorithm(name: str, W: torch.Tensor) -> None:
    # Working sets pruned to their corral every round (one row to start, many rounds) against
    # the plain algorithm: every other row in the working set from the start (one round, no
    # pruning, no violator search). Same D_k at every class; the certificate is re-derived over
    # all rows, so a violator the pruning skipped would show.
    K = W.shape[0]
    pruned = one_vs_rest_distances(W, working_set_size=1)
    plain = one_vs_rest_distances(W, working_set_size=K - 1)
    assert pruned.rounds >= 2 and plain.rounds == 1
    assert torch.allclose(pruned.distances, plain.distances, atol=1e-12, rtol=0)
    _check_certificate((W / W.norm(dim=1, keepdim=True)).numpy(), pruned)


@pytest.mark.parametrize("grams_compiled", SWEEPS, ids=["tensors", "compiled"])
def test_next_working_sets_keep_corral_and_grams(
    grams_compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The corral (lam > 0) is kept with its weights, the violators join, padding is invalid and
    # points at the class itself; the Gram equals one computed from scratch (with tensor
    # operations and with the compiled kernel).
    monkeypatch.setattr(solve_module, "COMPILED_GRAMS", grams_compiled)
    W = _anisotropic(40, 5, seed=13)
    rows = torch.tensor([3, 7])
    ws = torch.tensor([[0, 1, 2, 4], [5, 6, 8, 9]])
    lam = torch.tensor([[0.0, 0.6, 0.0, 0.4], [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    Y = W[ws] - W[rows][:, None, :]
    G = Y @ Y.transpose(1, 2)
    new_idx = torch.tensor([[10, 11, 12], [13, 14, 15]])
    new_ok = torch.tensor([[True, False, True], [True, True, True]])
    vt = torch.tensor([0, 1])
    ws2, valid, lam2, G2 = solve_module._next_working_sets(W, rows, vt, ws, lam, G, new_idx, new_ok)
    assert ws2.tolist() == [[1, 4, 10, 3, 12], [8, 7, 13, 14, 15]]
    assert valid.tolist() == [[True, True, True, False, True], [True, False, True, True, True]]
    assert lam2[0, :2].tolist() == [0.6, 0.4] and lam2[1, 0] == 1.0
    assert float(lam2.sum(dim=1).sub(1).abs().max()) < 1e-15
    Y2 = W[ws2] - W[rows][:, None, :]
    assert torch.allclose(G2, Y2 @ Y2.transpose(1, 2), atol=1e-13, rtol=0)


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")
def test_compiled_points_equal_the_gathered_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # w_j - w_k by the compiled kernel, to the bit, for a non-contiguous working set (a slice)
    # and padding that points at the class itself (y = 0).
    W = _anisotropic(50, 7, seed=3)
    ws = torch.randint(0, 50, (6, 9), generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([4, 0, 49, 7, 7, 20])
    ws[:, -1] = rows
    got = solve_module._points(W, ws[:, 1:], rows)
    monkeypatch.setattr(solve_module, "COMPILED_GRAMS", False)
    ref = solve_module._points(W, ws[:, 1:], rows)
    assert torch.equal(got, ref) and torch.equal(got, W[ws[:, 1:]] - W[rows][:, None, :])
    assert not bool(got[:, -1].any())


def test_certify_against_float64_reference() -> None:
    # Candidate points x_k of three kinds: far from optimal (certain violators), exactly at a
    # vertex tie (undecided by the float32 bound, recomputed), and optimal solutions. Whether a
    # class violates, its dual bound and its candidates are checked against float64 products.
    W = _anisotropic(300, 16, seed=14)
    W = W / W.norm(dim=1, keepdim=True)
    W32 = W.float()
    opt = one_vs_rest_distances(W, classes=torch.arange(20))
    rows = torch.arange(60)
    x = torch.empty(60, 16, dtype=torch.float64)
    x[:20] = opt.nearest_points - W[:20]
    x[20:40] = W[(rows[20:40] + 1) % 300] - W[20:40]  # a neighbouring vertex: violators
    x[40:] = 0.5 * (W[rows[40:] + 100] + W[rows[40:] + 101]) - W[40:60]  # an edge midpoint
    ws = torch.stack([(rows + 1) % 300, rows + 100], dim=1)
    tol = torch.full((60,), 1e-12, dtype=torch.float64)
    cert = screening.certify(W, W32, rows, x, ws, tol, 8, 64.0, 1.0)
    viol = (W[None, :, :] - W[rows][:, None, :]) @ x[:, :, None]  # <w_j - w_k, x_k>
    viol = viol[:, :, 0] - (x * x).sum(dim=1)[:, None]  # < 0: violator
    viol[rows, rows] = torch.inf
    worst = viol.min(dim=1).values
    assert torch.equal(cert.violated, worst < -1e-12)
    n2 = (x * x).sum(dim=1)
    true_gmin = torch.minimum(n2, worst + n2)
    assert bool((cert.gmin <= true_gmin + 1e-12).all())
    assert torch.allclose(cert.gmin[~cert.violated], true_gmin[~cert.violated], atol=1e-12)
    for t in cert.violated.nonzero().squeeze(1).tolist():
        ok = cert.candidates[t][cert.candidates_ok[t]]
        assert ok.numel() > 0 and bool((viol[t, ok] < -1e-12).all())
        assert not set(ok.tolist()) & set(ws[t].tolist())
        # The best candidate is the worst violator off the working set (to float32 ranking).
        off = viol[t].clone()
        off[ws[t]] = torch.inf
        assert float(viol[t, ok].min()) <= float(off.min()) + 1e-6


# --------------------------------------------------------------------------------------------
# The Wolfe kernel: incremental Cholesky factor of the corral, against from-scratch solves
# --------------------------------------------------------------------------------------------


def _affine_reference(Y: np.ndarray, corral: list[int]) -> np.ndarray:
    """Affine min-norm weights on ``corral`` by the bordered KKT system in NumPy."""
    Gs = Y[corral] @ Y[corral].T
    s = len(corral)
    A = np.block([[Gs, np.ones((s, 1))], [np.ones((1, s)), np.zeros((1, 1))]])
    rhs = np.zeros(s + 1)
    rhs[-1] = 1.0
    return np.linalg.solve(A, rhs)[:s]


def test_incremental_factor_matches_from_scratch_solves() -> None:
    # Random corrals grown one point at a time and shrunk by drops, in a batch of 3 elements
    # moving differently; after every step the factor equals the from-scratch Cholesky factor
    # in the same slot order, and its minimizer equals the bordered KKT solve in NumPy.
    rng = np.random.default_rng(11)
    B, m, d = 3, 14, 20
    Y = rng.standard_normal((B, m, d))
    G = torch.from_numpy(Y @ Y.transpose(0, 2, 1))
    scale = G.diagonal(dim1=1, dim2=2).amax(dim=1)
    cap = m
    S = torch.zeros(B, m, dtype=torch.bool)
    S[:, 0] = True
    slot, cnt = wolfe._corral_slots(S, cap)
    R, ok = wolfe._factor(G, torch.arange(B), slot, cnt, scale)
    assert bool(ok.all())
    orders = [list(rng.permutation(np.arange(1, m))) for _ in range(B)]
    for step in range(18):
        if step % 5 == 4:  # drop a random corral point of every element with two or more
            for b in range(B):
                live = slot[b, : int(cnt[b])].tolist()
                if len(live) > 1:
                    S[b, live[int(rng.integers(len(live)))]] = False
            slot, cnt = wolfe._corral_slots(S, cap)
            R, ok = wolfe._factor(G, torch.arange(B), slot, cnt, scale)
            assert bool(ok.all())
        else:
            mask = torch.tensor([bool(orders[b]) and rng.random() < 0.8 for b in range(B)])
            j = torch.tensor([int(orders[b][0]) if orders[b] else 0 for b in range(B)])
            for b in range(B):
                if mask[b]:
                    orders[b].pop(0)
            R, slot, cnt, indep = wolfe._append(G, R, slot, cnt, j, scale, mask)
            assert bool(indep[mask].all())
            S[torch.arange(B)[mask], j[mask]] = True
        R0, _ = wolfe._factor(G, torch.arange(B), slot, cnt, scale)
        assert torch.allclose(R, R0, atol=1e-12, rtol=0)
        alpha = wolfe._factor_minimizers(R, slot, cnt, m)
        for b in range(B):
            corral = slot[b, : int(cnt[b])].tolist()
            assert sorted(corral) == S[b].nonzero().squeeze(1).tolist()
            ref = _affine_reference(Y[b], corral)
            assert np.allclose(alpha[b, corral].numpy(), ref, atol=1e-10, rtol=0)
            assert float(alpha[b].sum()) == pytest.approx(1.0, abs=1e-12)


def test_append_flags_points_in_the_affine_hull() -> None:
    # A point that is an affine combination of the corral cannot extend the factor.
    rng = np.random.default_rng(12)
    Y = rng.standard_normal((1, 4, 6))
    Y[0, 3] = 0.3 * Y[0, 0] + 0.7 * Y[0, 1]
    G = torch.from_numpy(Y @ Y.transpose(0, 2, 1))
    scale = G.diagonal(dim1=1, dim2=2).amax(dim=1)
    S = torch.tensor([[True, True, False, False]])
    slot, cnt = wolfe._corral_slots(S, 4)
    R, _ = wolfe._factor(G, torch.arange(1), slot, cnt, scale)
    mask = torch.tensor([True])
    R2, _, cnt2, indep = wolfe._append(G, R.clone(), slot, cnt, torch.tensor([3]), scale, mask)
    assert not bool(indep[0]) and int(cnt2[0]) == 2 and torch.equal(R2, R)
    _, _, cnt3, indep3 = wolfe._append(G, R.clone(), slot, cnt, torch.tensor([2]), scale, mask)
    assert bool(indep3[0]) and int(cnt3[0]) == 3


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "lockstep"])
@pytest.mark.parametrize("with_points", [True, False])
def test_wolfe_kernel_meets_optimality_conditions(
    with_points: bool, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Min-norm points of random polytopes (origin outside and inside the hull, duplicate
    # points): convex weights with <y_j, x> >= |x|^2 - tol for every j (KKT), checked in NumPy,
    # with the compiled kernel (where numba is installed) and the lockstep one.
    monkeypatch.setattr(wolfe, "COMPILED", compiled)
    rng = np.random.default_rng(13)
    B, m, d = 24, 40, 12
    Y = rng.standard_normal((B, m, d)) + np.where(np.arange(B) % 3 == 0, 0.0, 2.0)[:, None, None]
    Y[::4, 5] = Y[::4, 2]  # duplicates: the corral can never hold both
    Yt = torch.from_numpy(Y)
    G = torch.bmm(Yt, Yt.transpose(1, 2))
    lam = torch.zeros(B, m, dtype=torch.float64)
    lam[:, 0] = 1.0
    S = lam > 0
    valid = torch.ones(B, m, dtype=torch.bool)
    floor = 64 * torch.finfo(torch.float64).eps * G.diagonal(dim1=1, dim2=2).amax(dim=1)
    lam, it = wolfe._wolfe_batched(
        G, (lambda i: Yt[i]) if with_points else None, valid, lam, S, 1e-13, floor, 5000
    )
    L = lam.numpy()
    assert np.all(L >= 0) and np.allclose(L.sum(axis=1), 1.0, atol=1e-13)
    for b in range(B):
        x = L[b] @ Y[b]
        n2 = x @ x
        assert np.min(Y[b] @ x) >= n2 - 1e-11 * max(1.0, np.sqrt(n2))
        assert np.count_nonzero(L[b]) <= d + 1
    assert int(it.max()) < 5000


def test_budgets_change_no_distance_in_higher_dimension() -> None:
    # Supports of tens of points (the incremental factor's regime): tiles of every size give
    # the same D_k, each certified independently.
    W = _anisotropic(250, 32, seed=9)
    big = one_vs_rest_distances(W, max_memory_mib=1024.0)
    small = one_vs_rest_distances(W, max_memory_mib=2.0)
    assert int((big.support >= 0).sum(dim=1).max()) >= 15
    assert torch.allclose(big.distances, small.distances, atol=1e-12, rtol=0)
    assert torch.allclose(big.lower_bounds, small.lower_bounds, atol=1e-12, rtol=0)
    Wn = (W / W.norm(dim=1, keepdim=True)).numpy()
    _check_certificate(Wn, small)


def test_cache_sized_chunks_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lockstep batches of a few classes, point chunks of one class and float64 rechecks in
    # chunks of a few pairs (the CPU's cache-sized chunks, made tiny) against one batch of every
    # class: the same D_k and bounds, each certified independently.
    W = _anisotropic(200, 24, seed=14)
    whole = one_vs_rest_distances(W)
    monkeypatch.setattr(solve_module, "_CPU_SOLVE_BATCH", 7)
    monkeypatch.setattr(solve_module, "_POINTS_MIB", 1e-6)
    monkeypatch.setattr(screening, "_PAIRS_CPU_MIB", 1e-6)
    small = one_vs_rest_distances(W)
    assert torch.allclose(whole.distances, small.distances, atol=1e-12, rtol=0)
    assert torch.allclose(whole.lower_bounds, small.lower_bounds, atol=1e-12, rtol=0)
    assert small.rechecked > 0
    _check_certificate((W / W.norm(dim=1, keepdim=True)).numpy(), small)


def test_chunked_ranking_changes_no_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    # The violators and seeds ranked from chunk extremes (chunks of 4 columns, so that these
    # small tiles take that path) against torch.topk everywhere (chunks too wide to pay).
    W = _anisotropic(600, 16, seed=21)
    monkeypatch.setattr(screening, "_EXTREME_CHUNK", 10**6)
    plain = one_vs_rest_distances(W)
    calls: list[bool] = []
    chunked_k = screening.extreme_k

    def spy(g: torch.Tensor, k: int, **kw: bool) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(g.shape[1] >= 4 * screening._EXTREME_CHUNK * k)
        return chunked_k(g, k, **kw)

    monkeypatch.setattr(screening, "_EXTREME_CHUNK", 4)
    monkeypatch.setattr(screening, "extreme_k", spy)
    monkeypatch.setattr(seeds_module, "extreme_k", spy)
    chunked = one_vs_rest_distances(W)
    assert any(calls)  # the chunked path ran
    assert torch.allclose(plain.distances, chunked.distances, atol=1e-12, rtol=0)
    assert torch.allclose(plain.lower_bounds, chunked.lower_bounds, atol=1e-12, rtol=0)
    _check_certificate((W / W.norm(dim=1, keepdim=True)).numpy(), chunked)


def test_near_degenerate_face_stops_within_tolerance() -> None:
    # A best-known 120-point Tammes code (polished from two icosahedral orbits, stored as it
    # came out): each row's five nearest rows tie to 1e-13, and row 39's projection lies near
    # an edge of their pentagon, where successive corrals trade tied rows at rounding level. It
    # ran all 100 rounds (33 s) before rounds without progress stopped a class within tol.
    from pathlib import Path

    W = torch.from_numpy(np.load(Path(__file__).parent / "fixtures" / "tammes_120.npy"))
    res = one_vs_rest_distances(W, classes=torch.tensor([39]))
    assert 2 <= res.rounds <= 12
    _check_certificate(W.numpy(), res)
    cos = W[39] @ W.T
    cos[39] = -2.0
    assert abs(float(res.distances[0]) - (1 - float(cos.max()))) < 1e-9


# --------------------------------------------------------------------------------------------
# The streamed certification (CPU): cache-sized tiles, no (T, K) score tile
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
@pytest.mark.parametrize("tile_rows", [512, 64, 16])
def test_streamed_certification_equals_the_score_tile(
    tile_rows: int, sweep_compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Candidate points far from optimal, at a vertex, at an edge midpoint and optimal: the
    # streamed tiles (several tiles, a ragged last one, chunks within tiles) decide every class
    # as the (T, K) score tile does, with the same lower bounds, and their violators are real
    # violators off the working set, the worst among them the worst overall (float32 ranking).
    K, d = 333, 12
    W = _anisotropic(K, d, seed=31)
    W = W / W.norm(dim=1, keepdim=True)
    W32 = W.float()
    opt = one_vs_rest_distances(W, classes=torch.arange(30))
    rows = torch.arange(90)
    x = torch.empty(90, d, dtype=torch.float64)
    x[:30] = opt.nearest_points - W[:30]
    x[30:60] = W[(rows[30:60] + 7) % K] - W[30:60]
    x[60:] = 0.5 * (W[rows[60:] + 100] + W[rows[60:] + 201]) - W[60:90]
    ws = torch.stack([(rows + 7) % K, rows + 100, (rows + 201) % K], dim=1)
    tol = torch.full((90,), 1e-12, dtype=torch.float64)
    monkeypatch.setattr(screening, "_SCORE_W_ROWS", tile_rows)
    monkeypatch.setattr(sweep_module, "COMPILED", sweep_compiled)
    monkeypatch.setattr(sweep_module, "_KEEP_CAP", 4)  # the compiled sweep's buffers grow
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 10**9)
    ref = screening.certify(W, W32, rows, x, ws, tol, 8, 64.0, 1.0)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 0)
    got = screening.certify(W, W32, rows, x, ws, tol, 8, 64.0, 1.0)
    assert torch.equal(got.violated, ref.violated)
    assert torch.allclose(got.gmin, ref.gmin, atol=1e-13, rtol=0)
    # The working sets of classes with no certain violator are rechecked whole (in the solver
    # they are corrals, whose entries lie in the band anyway).
    assert ref.rechecked <= got.rechecked <= ref.rechecked + ws.numel()
    viol = (W[None, :, :] - W[rows][:, None, :]) @ x[:, :, None]
    viol = viol[:, :, 0] - (x * x).sum(dim=1)[:, None]
    viol[rows, rows] = torch.inf
    assert torch.equal(got.violated, viol.min(dim=1).values < -1e-12)
    assert bool(got.violated[30:].all()) and not bool(got.violated[:30].any())
    for t in got.violated.nonzero().squeeze(1).tolist():
        ok = got.candidates[t][got.candidates_ok[t]]
        assert ok.numel() > 0 and bool((viol[t, ok] < -1e-12).all())
        # The same violators as the score tile's ranking (up to the order of ties).
        ok_ref = ref.candidates[t][ref.candidates_ok[t]]
        assert torch.allclose(viol[t, ok].sort().values, viol[t, ok_ref].sort().values, atol=1e-12)
        assert len(set(ok.tolist())) == ok.numel()  # distinct rows
        assert not set(ok.tolist()) & set(ws[t].tolist())
        off = viol[t].clone()
        off[ws[t]] = torch.inf
        assert float(viol[t, ok].min()) <= float(off.min()) + 1e-6


def test_smallest_per_class_against_a_sort() -> None:
    # The n smallest values of each class's entries in increasing order, padded with +inf.
    g = torch.Generator().manual_seed(5)
    T, n = 6, 3
    k = torch.randint(0, T - 1, (40,), generator=g)  # class T - 1 has no entry
    j = torch.randint(0, 50, (40,), generator=g)
    v = torch.randn(40, generator=g, dtype=torch.float64)
    v[3] = v[4]  # a tie
    rows, vals = screening._smallest_per_class(k, j, v, T, n)
    for t in range(T):
        mine = sorted((float(v[i]), int(j[i])) for i in range(40) if int(k[i]) == t)[:n]
        m = len(mine)
        assert vals[t, :m].tolist() == [x for x, _ in mine]
        assert bool(torch.isinf(vals[t, m:]).all())
        got = sorted(zip(vals[t, :m].tolist(), rows[t, :m].tolist(), strict=True))
        assert [x for x, _ in got] == [x for x, _ in mine]
        for x, r in got:  # each row carries one of its own values
            assert x in v[(k == t) & (j == r)].tolist()


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize(("tile_rows", "ch", "cap"), [(64, 16, 4), (48, 16, 1 << 14), (512, 8, 1)])
def test_compiled_sweep_equals_the_tensor_sweep(tile_rows: int, ch: int, cap: int) -> None:
    # Each tile swept once by the compiled kernels: the same running minima and open classes as
    # the tensor operations' sweep, the same kept entries of open classes (in the same order),
    # and of the others a subset that still holds each class's n smallest scores off its working
    # set (tau tighter: updated every tile). Ragged last tile, a last group shorter than the
    # others, kept buffers that must grow.
    g = torch.Generator().manual_seed(8)
    K, d, T, m, n = 333, 10, 40, 5, 6
    W32 = torch.randn(K, d, generator=g)
    q = torch.randn(d, T, generator=g)
    rows = torch.randperm(K, generator=g)[:T]
    ws = torch.randint(0, K, (T, m), generator=g)
    ws[:, 0] = rows  # padding points at the class itself
    scores = (W32.double() @ q.double()).float()
    ar = torch.arange(T)
    ref = scores.clone()
    ref[rows, ar] = torch.inf
    hi = scores.quantile(0.3, dim=0)
    # Every other class stays open (no score below its lower threshold).
    lo = torch.where(ar % 2 == 0, hi.double(), ref.min(dim=0).values.double() - 0.5)
    n_tiles = -(-K // tile_rows)
    s_ord, s_at = sweep_module.tile_slices(rows, tile_rows, n_tiles)
    own = (rows[s_ord] % tile_rows * T + s_ord, s_at)
    ws_r = ws.reshape(-1)
    w_ord, w_at = sweep_module.tile_slices(ws_r, tile_rows, n_tiles)
    wsf = (ws_r[w_ord] % tile_rows * T + ar.repeat_interleave(m)[w_ord], w_at)
    out = []
    for sweep in (sweep_module.tensors, sweep_module.compiled):
        fmin = torch.full((T,), torch.inf)
        open_ = torch.ones(T, dtype=torch.bool)
        buf = torch.empty(tile_rows, T)
        old, sweep_module._KEEP_CAP = sweep_module._KEEP_CAP, cap
        try:
            line = torch.full((T,), -torch.inf)
            tiles = sweep_module.Tiles(W32, q, buf, own, wsf, ch, n, lo, hi, line, K)
            kept, vals, _ = sweep(tiles, fmin, open_)
        finally:
            sweep_module._KEEP_CAP = old
        out.append((fmin, open_, kept, vals))
    (f0, o0, k0, v0), (f1, o1, k1, v1) = out
    assert torch.equal(f0, f1) and torch.equal(o0, o1)
    assert 0 < int(o0.sum()) < T and k1.shape[0] > (cap if cap < 100 else 0)
    on0, on1 = o0[k0[:, 0]], o1[k1[:, 0]]
    assert torch.equal(k0[on0], k1[on1]) and torch.equal(v0[on0], v1[on1])
    pairs0 = {tuple(p) for p in k0[~on0].tolist()}
    pairs1 = {tuple(p) for p in k1[~on1].tolist()}
    assert pairs1 <= pairs0 and len(pairs1) < len(pairs0)
    off_ws = scores.T.clone()  # (class, row)
    off_ws[ar[:, None], ws] = torch.inf
    for t in (~o0).nonzero().squeeze(1).tolist():
        # The float32 scores of the compiled GEMM tiles are those of the tensor sweep.
        mine = v1[~on1][k1[~on1][:, 0] == t]
        theirs = v0[~on0][k0[~on0][:, 0] == t]
        assert torch.equal(mine.sort().values[:n], theirs.sort().values[:n])
        assert mine.numel() >= min(n, int(torch.isfinite(off_ws[t]).sum()))
    # Against the definition (float64 scores, to float32 rounding): the running minimum is the
    # smallest score off the class's own row; the kept entries are the scores of their pairs.
    assert torch.allclose(f0, ref.min(dim=0).values, atol=1e-5, rtol=0)
    assert torch.equal(o0, f0.double() >= lo)
    assert torch.allclose(v1, scores[k1[:, 1], k1[:, 0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("W", "m0", "tile_rows"),
    [
        (_anisotropic(600, 16, seed=22), None, 512),
        (_anisotropic(600, 16, seed=22), None, 48),
        (cfg.e8_roots(), 8, 64),
        (cfg.e8_roots(), 1, 32),
        (cfg.cell600(), 8, 80),
    ],
    ids=["anisotropic", "anisotropic-ragged", "e8", "e8-pruned", "600-cell"],
)
@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
def test_streamed_certification_changes_no_distance(
    W: torch.Tensor,
    m0: int | None,
    tile_rows: int,
    sweep_compiled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The whole solver with the streamed certification (small tiles: several per pass, a ragged
    # last one; tie-heavy codes whose every class ties with many rows) against the score-tile
    # certification: the same D_k and bounds, each certificate re-derived in NumPy.
    monkeypatch.setattr(sweep_module, "COMPILED", sweep_compiled)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 10**9)
    plain = one_vs_rest_distances(W, working_set_size=m0)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 0)
    monkeypatch.setattr(screening, "_SCORE_W_ROWS", tile_rows)
    streamed = one_vs_rest_distances(W, working_set_size=m0)
    assert torch.allclose(plain.distances, streamed.distances, atol=1e-12, rtol=0)
    assert torch.allclose(plain.lower_bounds, streamed.lower_bounds, atol=1e-12, rtol=0)
    _check_certificate((W / W.norm(dim=1, keepdim=True)).numpy(), streamed)


@pytest.mark.parametrize(
    ("W", "m0", "bounds_from", "margin"),
    [
        (_anisotropic(800, 16, seed=7), None, 1, 0.02),
        (_anisotropic(800, 16, seed=7), 4, 0, 0.1),
        (cfg.e8_roots(), 1, 0, 1.0),
        (cfg.cell600(), 4, 0, 1.0),
    ],
    ids=["anisotropic", "anisotropic-from-first", "e8", "600-cell"],
)
@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
def test_row_bounds_change_no_distance(
    W: torch.Tensor,
    m0: int | None,
    bounds_from: int,
    margin: float,
    sweep_compiled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The whole solver with and without certifications from row bounds: the same D_k and dual
    # bounds, each certificate re-derived; tie-heavy codes (every class ties with many rows;
    # wide margins, for their points jump between rounds) included. The bounds must have
    # certified some classes.
    monkeypatch.setattr(sweep_module, "COMPILED", sweep_compiled)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 0)
    monkeypatch.setattr(screening, "_SCORE_W_ROWS", 48)
    monkeypatch.setattr(solve_module, "_BOUNDS_FROM", bounds_from)
    monkeypatch.setattr(recertify, "MARGIN", margin)
    monkeypatch.setattr(solve_module, "ROW_BOUNDS", False)
    plain = one_vs_rest_distances(W, working_set_size=m0)
    monkeypatch.setattr(solve_module, "ROW_BOUNDS", True)
    used = []
    real = recertify.recertify

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        used.append(out[0].numel())
        return out

    monkeypatch.setattr(recertify, "recertify", spy)
    res = one_vs_rest_distances(W, working_set_size=m0)
    assert sum(used) > 0
    assert torch.allclose(plain.distances, res.distances, atol=1e-12, rtol=0)
    assert torch.allclose(plain.lower_bounds, res.lower_bounds, atol=1e-12, rtol=0)
    _check_certificate((W / W.norm(dim=1, keepdim=True)).numpy(), res)
