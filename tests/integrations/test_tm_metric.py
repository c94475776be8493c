"""GNCMetric (torchmetrics) == GNCAccumulator on the same data; 2 gloo processes == 1; reset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytest.importorskip("torchmetrics")

from gnc.integrations.torchmetrics import GNCMetric
from gnc.metrics import GNCAccumulator
from gnc.metrics.distributed import leave_process_group

K, D, N = 7, 5, 300


def data(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % K  # every class present
    y = y[torch.randperm(N, generator=g)]
    centers = torch.randn(K, D, generator=g, dtype=torch.float64)
    H = centers[y] + 0.3 * torch.randn(N, D, generator=g, dtype=torch.float64)
    W = centers + 0.2 * torch.randn(K, D, generator=g, dtype=torch.float64)
    return H, y, W


def _numbers(m: object) -> dict[str, float]:
    return {
        f.name: float(v)
        for f in dataclasses.fields(m)  # type: ignore[arg-type]
        if isinstance(v := getattr(m, f.name), float | int) and not isinstance(v, bool)
    }


def _assert_records_close(got: object, want: object, rel: float = 1e-12) -> None:
    a, b = _numbers(got), _numbers(want)
    assert a.keys() == b.keys() and len(a) >= 8
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-14), key
    for f in dataclasses.fields(want):  # type: ignore[arg-type]
        assert (getattr(got, f.name) is None) == (getattr(want, f.name) is None), f.name


@pytest.mark.parametrize("normalize", [True, False])
def test_equals_accumulator_on_the_same_batches(normalize: bool) -> None:
    H, y, W = data()
    metric = GNCMetric(K, D, normalize=normalize)
    acc = GNCAccumulator(K, D, normalize=normalize)
    for part in torch.arange(N).split(37):
        metric.update(H[part].float(), y[part])  # float32 input: same float64 upcast in both
        acc.update(H[part].float(), y[part])
    _assert_records_close(metric.compute(), acc.compute())
    with_w = metric.compute(W)
    _assert_records_close(with_w, acc.compute(W))
    assert with_w.gnc2 is not None and with_w.gnc3 is not None and with_w.ncc_train_accuracy is None
    stats, ref = metric.statistics(), acc.statistics()
    torch.testing.assert_close(stats.means, ref.means, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(stats.within_scatter, ref.within_scatter, rtol=1e-12, atol=1e-13)


def test_reset_forward_and_errors() -> None:
    H, y, W = data()
    metric = GNCMetric(K, D)
    with pytest.raises(ValueError, match="update"):
        metric.compute()
    metric(H[:50], y[:50])  # forward == update, no per-batch value
    first = metric.compute(W)
    metric.reset()
    assert float(metric.counts.sum()) == 0 and not metric.update_called
    metric.update(H[:50], y[:50])
    _assert_records_close(metric.compute(W), first)
    # invalid rows are counted on the device and reported by compute, as by the accumulator
    metric.update(torch.full((2, D), float("nan")), torch.tensor([0, K]))
    with pytest.raises(ValueError, match="2 feature rows with NaN/Inf or zero-norm"):
        metric.compute()
    metric.reset()
    metric.update(H[:3], torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="class"):  # empty classes are named
        metric.compute()
    with pytest.raises(ValueError, match=r"Expected `features` of shape \(N, 5\)"):
        metric.update(H[:, :3], y)
    with pytest.raises(TypeError, match="integer"):
        metric.update(H, y.double())
    with pytest.raises(ValueError, match="labels"):
        metric.update(H, y[:-1])


def test_state_moves_with_the_module(device: torch.device) -> None:
    H, y, W = data()
    metric = GNCMetric(K, D).to(device)
    assert metric.counts.device.type == device.type and metric.scatter.dtype == torch.float64
    metric.update(H.to(device), y.to(device))
    ref = GNCAccumulator(K, D)
    ref.update(H, y)
    _assert_records_close(metric.compute(W.to(device)), ref.compute(W), rel=1e-10)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        H, y, W = data()
        mine = torch.arange(N) % 3 == 0 if rank == 0 else torch.arange(N) % 3 != 0  # uneven
        metric = GNCMetric(K, D)
        for part in torch.nonzero(mine).flatten().split(23):
            metric.update(H[part], y[part])
        local_count = float(metric.counts.sum())
        m = metric.compute(W)
        after = float(metric.counts.sum())  # torchmetrics restores the local state
        metric.reset()
        torch.save(
            {"metrics": _numbers(m), "local": local_count, "after": after},
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        leave_process_group()


def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    H, y, W = data()
    single = GNCMetric(K, D)
    single.update(H, y)
    want = _numbers(single.compute(W))
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(r, 2, str(tmp_path / "init"), str(tmp_path)))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    for r in range(2):
        out = torch.load(tmp_path / f"rank{r}.pt")
        assert out["local"] == out["after"] < N  # each rank fed only its shard
        for key, value in want.items():
            assert out["metrics"][key] == pytest.approx(value, rel=1e-12, abs=1e-14), key


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in ("gnc.integrations.torchmetrics", "gnc.integrations.lightning"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # import torchmetrics -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'gnc\[torchmetrics\]'"):
        importlib.import_module("gnc.integrations.torchmetrics")
    monkeypatch.setitem(sys.modules, "lightning.pytorch.callbacks", None)
    with pytest.raises(ImportError, match=r"pip install 'gnc\[lightning\]'"):
        importlib.import_module("gnc.integrations.lightning")
