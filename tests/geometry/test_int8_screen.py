"""The int8 screen: exact integer GEMMs under rigorous bounds give the float32 screen's D_k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _int8 as int8
from gnc.geometry import _recertify as recertify
from gnc.geometry import _screening as screening
from gnc.geometry import _seeds as seeds
from gnc.geometry import configurations as cfg
from gnc.geometry import one_vs_rest_distances
from gnc.geometry._int8 import quantize, quantize_rows, rounding_slack, scores

pytestmark = pytest.mark.skipif(not hasattr(torch, "_int_mm"), reason="no torch._int_mm")


def _anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def _spiky(K: int, d: int, seed: int) -> torch.Tensor:
    # Rows with one large coordinate (the worst case of a per-row scale) and zero rows.
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, d, generator=g, dtype=torch.float64)
    X[::7, 0] *= 50.0
    X[3] = 0.0
    return X


@pytest.mark.parametrize("build", [_anisotropic, _spiky], ids=["anisotropic", "spiky"])
def test_quantize_remainder_bound_holds(build) -> None:
    X = build(300, 40, 1)
    q, s, e = quantize(X)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    rem = X - s[:, None] * q.double()
    # The bound holds (against an independent NumPy remainder) and is not vacuous.
    rem_np = np.linalg.norm(X.numpy() - s.numpy()[:, None] * q.numpy().astype(np.float64), axis=1)
    assert np.all(rem_np <= e.numpy())
    assert torch.allclose(rem.norm(dim=1), e, rtol=1e-9, atol=1e-13)
    nz = X.norm(dim=1) > 0
    assert float((e[nz] / X.norm(dim=1)[nz]).median()) < 0.05
    if build is _spiky:
        assert float(e[3]) == 0.0 and int(q[3].abs().max()) == 0  # the zero row


def test_score_bound_contains_every_inner_product() -> None:
    # <w_j, x_k> lies within s_x (a_k + b_k err_j) of s_x g_kj: the bound certify relies on.
    W = _spiky(500, 64, 2)
    X = _anisotropic(40, 64, 3)
    q8 = quantize_rows(W, 1.0)  # blocks of a few rows
    qx, sx, ex = quantize(X)
    g = scores(q8, qx).double()
    exact = X @ W.T
    xn = X.norm(dim=1)
    a = q8.max_norm * ex + rounding_slack(q8, xn, ex)
    bound = a[:, None] + q8.err[None, :] * (xn + ex)[:, None]
    dev = (sx[:, None] * g - exact).abs()
    assert bool((dev <= bound).all())
    assert float((dev / bound).max()) > 0.05  # the bound is not loose by orders of magnitude


def _perturbed(build, noise: float):
    # Near-ties whose violations (~1e-9) lie far below float32's resolution of a score: the
    # violators must still be ranked first (a float32 ranking of unshifted scores lost them).
    W = build()
    g = torch.Generator().manual_seed(1)
    return W + noise * torch.randn(W.shape, generator=g, dtype=W.dtype)


@pytest.mark.parametrize(
    "build",
    [
        lambda: _anisotropic(600, 48, 4),
        lambda: _spiky(400, 32, 5),
        lambda: cfg.e8_roots(),
        lambda: cfg.cell600(),
        lambda: _perturbed(cfg.e8_roots, 1e-9),
        lambda: _perturbed(cfg.gosset_7_56, 1e-9),
    ],
    ids=["anisotropic", "spiky", "e8", "600-cell", "e8-near-ties", "gosset-near-ties"],
)
@pytest.mark.parametrize("backend", ["int_mm", "packed"])
def test_int8_screen_matches_float32_screen(
    build, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # int_mm: seeds and certifications are int8 GEMMs; packed: the seeds only (its 63-level
    # queries leave too many entries open for a certification).
    if backend == "packed" and not int8.packed_available(640):
        pytest.skip("no exact quantized linear layer in this PyTorch build")
    W = build()
    W = W[W.norm(dim=1) > 0]
    monkeypatch.setattr(int8, "ENABLED", False)
    ref = one_vs_rest_distances(W)
    monkeypatch.setattr(int8, "ENABLED", True)
    monkeypatch.setattr(int8, "MIN_ROWS", 0)
    # int_mm also on CPUs where it would be slow; packed where int_mm would be chosen.
    monkeypatch.setattr(int8, "INSTRUCTIONS", backend == "int_mm")
    assert int8.int8_backend(torch.device("cpu"), W.shape[0], W.shape[1]) == backend
    calls = []
    real = screening._certify_int8
    monkeypatch.setattr(
        screening, "_certify_int8", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    packed_queries = []
    real_packed = int8._packed_scores
    monkeypatch.setattr(
        int8, "_packed_scores", lambda *a: packed_queries.append(1) or real_packed(*a)
    )
    ranked = []
    real_ranked = seeds.int8_violators
    monkeypatch.setattr(recertify, "int8_violators", lambda *a: ranked.append(1) or real_ranked(*a))
    got = one_vs_rest_distances(W)
    assert bool(calls) == (backend == "int_mm")  # the int8 certification ran
    assert bool(packed_queries) == (backend == "packed")  # the packed seed pass ran
    assert bool(ranked) == (backend == "packed")  # and the first round's int8 violators
    assert got.certified and ref.certified
    assert torch.allclose(got.distances, ref.distances, atol=1e-12, rtol=0)
    assert torch.allclose(got.lower_bounds, ref.lower_bounds, atol=1e-12, rtol=0)
    # The certificate re-derived in NumPy: primal point from the support, dual over all rows.
    Wn = (W / W.norm(dim=1, keepdim=True)).numpy()
    for row, k in enumerate(got.classes.tolist()):
        sup = got.support[row].numpy()
        wts = got.support_weights[row].numpy()
        live = sup >= 0
        p = wts[live] @ Wn[sup[live]]
        D = float(got.distances[row])
        assert abs(np.linalg.norm(Wn[k] - p) - D) < 1e-12
        h = got.directions[row].numpy()
        dual = min(max(0.0, np.min((Wn[k] - np.delete(Wn, k, axis=0)) @ h)), D)
        assert D - dual <= 1e-9


def test_int8_screen_only_from_min_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(int8, "INSTRUCTIONS", True)
    assert int8.int8_backend(cpu, int8.MIN_ROWS, 640) == "int_mm"
    assert int8.int8_backend(cpu, int8.MIN_ROWS - 1, 640) is None
    assert int8.int8_backend(torch.device("meta"), int8.MIN_ROWS, 640) is None
    monkeypatch.setattr(int8, "ENABLED", False)
    assert int8.int8_backend(cpu, int8.MIN_ROWS, 640) is None


def test_int8_screen_only_with_int8_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without AVX-512 VNNI or AMX torch._int_mm is ~100x slower than float32: the packed
    # backend where PyTorch's quantized linear layer is exact, else the float32 screen.
    cpu = torch.device("cpu")
    monkeypatch.setattr(int8, "INSTRUCTIONS", False)
    packed = int8.packed_available(640)
    assert int8.int8_backend(cpu, int8.MIN_ROWS, 640) == ("packed" if packed else None)
    # Too wide for exact float32 sums of 63 x 127 products: no packed backend.
    assert int8.int8_backend(cpu, int8.MIN_ROWS, 2**24 // (63 * 127) + 1) is None
    monkeypatch.setattr(int8, "INSTRUCTIONS", None)  # PyTorch's answer for this CPU
    vnni = torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported()
    assert int8.int8_instructions() == vnni
    assert int8.int8_backend(cpu, int8.MIN_ROWS, 640) == (
        "int_mm" if vnni else "packed" if packed else None
    )


def test_packed_scores_are_exact_integer_sums() -> None:
    # The quantized linear layer, fed one extra row that pins its input range, returns the
    # int8 sums exactly: against NumPy's int64 product, at the extremes of both ranges.
    if int8.packed_engine() is None:
        pytest.skip("no exact quantized linear layer in this PyTorch build")
    g = torch.Generator().manual_seed(7)
    W = _spiky(300, 640, 8)
    q8 = quantize_rows(W, 1.0, packed=True)
    assert q8.query_levels == int8.PACKED_LEVELS
    qx = torch.randint(-63, 64, (33, 640), generator=g, dtype=torch.int8)
    qx[0], qx[1], qx[2] = 63, -63, 0
    q_rows = q8.qt.T.numpy().astype(np.int64)
    want = (qx.numpy().astype(np.int64) @ q_rows.T).astype(np.float64)
    assert np.abs(want).max() > 1e5  # large sums, not only small ones
    assert np.array_equal(int8._packed_scores(q8.packed, qx).double().numpy(), want)
    # Scaled by the rows' float32 scales: one rounding more.
    got = scores(q8, qx).double().numpy() / q8.scale32.double().numpy()[None, :]
    np.testing.assert_allclose(got, want, rtol=2**-23, atol=0)
    # Queries beyond 63 levels would be clipped by the layer: refused.
    with pytest.raises(ValueError, match="within"):
        scores(q8, torch.full((1, 640), 64, dtype=torch.int8))


def test_scores_of_a_single_transposed_row_are_exact() -> None:
    # A one-row slice of the (d, K) layout, transposed, has strides (1, 1) and counts as
    # contiguous; torch._int_mm read it as garbage until scores() copied it to row-major.
    W = _anisotropic(60, 4, 3)
    q8 = quantize_rows(W, 1.0)
    for r in range(3):
        one = q8.qt[:, [r]].T.contiguous()
        exact = (one.long() @ q8.qt.long()).float() * q8.scale32[None, :]
        assert torch.equal(scores(q8, one), exact)


def test_packed_rows_only_for_the_whitened_seed_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # The packed rows only rank whitened seeds: a small solve (fewer than 4 d classes, as in a
    # rho search) neither quantizes nor packs the K rows, and neighbour_pass refuses them.
    if not int8.packed_available(640):
        pytest.skip("no exact quantized linear layer in this PyTorch build")
    import gnc.geometry._solve as solve

    monkeypatch.setattr(int8, "MIN_ROWS", 0)
    monkeypatch.setattr(int8, "INSTRUCTIONS", False)
    built = []
    real = solve.quantize_rows
    monkeypatch.setattr(solve, "quantize_rows", lambda *a, **k: built.append(k) or real(*a, **k))
    W = _anisotropic(300, 12, 6)
    one_vs_rest_distances(W, classes=list(range(20)))
    assert built == []
    one_vs_rest_distances(W)
    assert built == [{"packed": True}]
    q8 = quantize_rows(W, 1.0, packed=True)
    with pytest.raises(ValueError, match="packed rows"):
        screening.neighbour_pass(
            W,
            W.float(),
            torch.arange(3),
            4,
            unit_rows=False,
            exact_max=False,
            max_memory_mib=1.0,
            q8=q8,
        )


def test_int8_violators_are_checked_in_float64() -> None:
    # The first round's violators from the packed int8 ranking: off the class and its excluded
    # rows, their violations exactly the float64 ones, and the best of them near the true worst
    # violator (the ranking is int8's; only the float64 check proves a violation).
    if not int8.packed_available(16):
        pytest.skip("no exact quantized linear layer in this PyTorch build")
    W = _anisotropic(3000, 16, seed=31)
    W = W / W.norm(dim=1, keepdim=True)
    q8 = quantize_rows(W, 64.0, packed=True)
    rows = torch.arange(50)
    x = W[rows + 1000] - W[rows]  # far from optimal: many violators
    excl = torch.stack([(rows + 1) % 3000, rows + 2], dim=1)
    cand, v = seeds.int8_violators(W, q8, rows, x, excl, 8, 64.0)
    ref = (W @ x.T).T - ((W[rows] + x) * x).sum(dim=1)[:, None]  # <w_j - w_k, x> - |x|^2
    assert torch.allclose(v, ref.gather(1, cand), atol=1e-12, rtol=0)
    assert not bool((cand == rows[:, None]).any())
    assert not bool((cand[:, :, None] == excl[:, None, :]).any())
    ref[rows, rows] = torch.inf
    ref.scatter_(1, excl, torch.inf)
    assert bool((v.min(dim=1).values < 0).all())
    assert bool((v.min(dim=1).values <= ref.min(dim=1).values + 0.05 * x.norm(dim=1)).all())
