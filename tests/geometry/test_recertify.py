"""Row bounds kept by a streamed certification, and the next round certified from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.geometry import _recertify as recertify_module
from gnc.geometry import _screening as screening
from gnc.geometry import _sweep as sweep_module
from gnc.geometry import one_vs_rest_distances
from helpers.sweeps import SWEEPS


def _unit_anisotropic(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    W = torch.randn(K, d, generator=g, dtype=torch.float64) * scale
    return W / W.norm(dim=1, keepdim=True)


def _streamed(monkeypatch: pytest.MonkeyPatch, sweep_compiled: bool, tile_rows: int = 64) -> None:
    monkeypatch.setattr(sweep_module, "COMPILED", sweep_compiled)
    monkeypatch.setattr(screening, "_STREAM_MIN_ROWS", 0)
    monkeypatch.setattr(screening, "_SCORE_W_ROWS", tile_rows)


@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
@pytest.mark.parametrize("cap", [10**6, 25])
def test_sweeps_keep_every_entry_below_their_last_threshold(sweep_compiled: bool, cap: int) -> None:
    # The keep line: every entry below a class's last threshold (off its own row and working
    # set) is kept, the threshold is at least the line while it stands, and a class past `cap`
    # kept entries loses its line.
    g = torch.Generator().manual_seed(3)
    K, d, T, m, n, tr, ch = 300, 12, 30, 4, 5, 64, 16
    W32 = torch.randn(K, d, generator=g)
    q = torch.randn(d, T, generator=g)
    rows = torch.randperm(K, generator=g)[:T]
    ws = torch.randint(0, K, (T, m), generator=g)
    scores = (W32 @ q).T  # (class, row), the sweep's own float32 products up to order
    ar = torch.arange(T)
    hi = scores.quantile(0.05, dim=1)
    lo = torch.where(ar % 3 == 0, hi.double(), -torch.inf)  # a third with certain violators
    line = torch.where(ar % 2 == 0, scores.quantile(0.1, dim=1), -torch.inf)
    n_tiles = -(-K // tr)
    s_ord, s_at = sweep_module.tile_slices(rows, tr, n_tiles)
    ws_r = ws.reshape(-1)
    w_ord, w_at = sweep_module.tile_slices(ws_r, tr, n_tiles)
    own = (rows[s_ord] % tr * T + s_ord, s_at)
    wsf = (ws_r[w_ord] % tr * T + ar.repeat_interleave(m)[w_ord], w_at)
    sweep = sweep_module.compiled if sweep_compiled else sweep_module.tensors
    tiles = sweep_module.Tiles(
        W32, q, torch.empty(tr, T), own, wsf, ch, n, lo, hi, line.clone(), cap
    )
    fmin = torch.full((T,), torch.inf)
    open_ = torch.ones(T, dtype=torch.bool)
    kept, _, thr = sweep(tiles, fmin, open_)
    counts = torch.bincount(kept[:, 0], minlength=T)
    dropped = torch.isinf(tiles.line) & torch.isfinite(line)
    assert bool(dropped.any()) == (cap < 100)
    assert bool((counts[dropped] > cap).all())
    for t in range(T):
        off = scores[t].clone()
        off[rows[t]] = torch.inf
        off[ws[t]] = torch.inf
        mine = set(kept[kept[:, 0] == t, 1].tolist())
        below = set((off < thr[t]).nonzero().squeeze(1).tolist())
        assert below <= mine
        if bool(torch.isfinite(tiles.line[t])):
            assert float(thr[t]) >= float(line[t])


def _bounds_at(
    W: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, margin: float
) -> recertify_module.RowBounds:
    # A streamed certification of the points x keeping a margin of `margin |x|`.
    tol = torch.full((rows.numel(),), 1e-12, dtype=torch.float64)
    m = margin * x.norm(dim=1)
    cert = screening.certify(W, W.float(), rows, x, ws, tol, 6, 64.0, 1.0, None, m)
    assert cert.kept is not None and cert.floor is not None
    return recertify_module.from_certification(cert, rows, x, ws)


@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
def test_row_bounds_hold_for_every_row(
    sweep_compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every row j != k of a class with a floor is bounded: <w_j, x_k> >= its listed bound, or
    # the floor if unlisted (float64 products in NumPy); the working set is listed unbounded.
    _streamed(monkeypatch, sweep_compiled)
    W = _unit_anisotropic(500, 12, seed=4)
    opt = one_vs_rest_distances(W, classes=torch.arange(40))
    rows = torch.arange(40)
    x = opt.nearest_points - W[:40]
    x[20:] = W[rows[20:] + 100] - W[20:40]  # a far vertex: many violators
    ws = opt.support.clamp_min(0)
    ws = torch.where(opt.support >= 0, ws, rows[:, None])
    b = _bounds_at(W, rows, x, ws, 0.3)
    ip = (W.numpy() @ x.numpy().T).T  # <w_j, x_k>
    has = torch.isfinite(b.floor)
    assert int(has.sum()) > 20
    n2 = (x * x).sum(dim=1)
    base = n2 + (W[rows] * x).sum(dim=1)
    for t in has.nonzero().squeeze(1).tolist():
        listed = b.lb[t] < torch.inf
        lr, lv = b.rows[t][listed].numpy(), b.lb[t][listed].numpy()
        assert len(set(lr.tolist())) == lr.size and t not in lr.tolist()
        assert np.all(ip[t, lr] >= lv)
        assert set(ws[t][ws[t] != t].tolist()) <= set(lr[np.isneginf(lv)].tolist())
        rest = np.ones(W.shape[0], dtype=bool)
        rest[lr] = False
        rest[t] = False
        assert np.all(ip[t, rest] >= float(b.floor[t]))
        # The margin was kept: the floor clears the threshold by most of it.
        assert float(b.floor[t]) >= float(base[t]) + 0.29 * float(n2[t].sqrt())


def _reference(W: torch.Tensor, rows: torch.Tensor, x: torch.Tensor):
    viol = (W @ x.T).T - (W[rows] * x).sum(dim=1)[:, None] - (x * x).sum(dim=1)[:, None]
    viol[torch.arange(rows.numel()), rows] = torch.inf
    return viol  # <w_j - w_k, x_k> - |x_k|^2: < 0 is a violator


@pytest.mark.parametrize("sweep_compiled", SWEEPS, ids=["tensors", "compiled"])
def test_recertify_equals_a_full_certification(
    sweep_compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Points moved a little from those of a certification (twice, the second time from the bounds
    # the first recertification left): the classes the bounds decide get the violations, dual
    # bounds and best candidates of a float64 reference; points moved far are left to a full pass.
    _streamed(monkeypatch, sweep_compiled)
    W = _unit_anisotropic(500, 12, seed=5)
    T = 60
    rows = torch.arange(T)
    opt = one_vs_rest_distances(W, classes=rows)
    x0 = opt.nearest_points - W[:T]
    ws = torch.where(opt.support >= 0, opt.support, rows[:, None])
    b = _bounds_at(W, rows, x0, ws, 0.2)
    g = torch.Generator().manual_seed(6)
    tol = torch.full((T,), 1e-12, dtype=torch.float64)
    x = x0
    for _ in range(2):
        size = torch.where(rows < 40, 1e-3, 0.5).to(torch.float64)
        size[rows % 10 == 0] = 0.0  # unmoved
        dx = torch.randn(T, 12, generator=g, dtype=torch.float64)
        x = x + size[:, None] * x.norm(dim=1, keepdim=True) * dx / dx.norm(dim=1, keepdim=True)
        done, cert, b_new = recertify_module.recertify(W, rows, x, b, ws, tol, 6, 1.0, 64.0)
        assert done.tolist() == [*range(41), 50]
        viol = _reference(W, rows[done], x[done])
        worst = viol.min(dim=1).values
        assert torch.equal(cert.violated, worst < -1e-12)
        assert bool(cert.violated.any()) and not bool(cert.violated.all())
        n2 = (x[done] * x[done]).sum(dim=1)
        true_gmin = torch.minimum(n2, worst + n2)
        assert bool((cert.gmin <= true_gmin + 1e-12).all())
        assert torch.allclose(cert.gmin, true_gmin, atol=1e-12, rtol=0)
        for i in cert.violated.nonzero().squeeze(1).tolist():
            t = int(done[i])
            off = viol[i].clone()
            off[ws[t]] = torch.inf
            ok = cert.candidates[i][cert.candidates_ok[i]]
            expect = off.topk(min(6, int((off < -1e-12).sum())), largest=False).indices
            assert set(ok.tolist()) == set(expect.tolist())
        # The new bounds hold at the new points.
        ip = (W @ x[done].T).T
        listed = b_new.lb < torch.inf
        assert bool((ip.gather(1, b_new.rows)[listed] >= b_new.lb[listed]).all())
        b = recertify_module.scatter([(done, b_new)], T, W)
