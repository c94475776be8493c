"""Two CPU processes (gloo) syncing accumulators == one process over all the data."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnc.metrics import GNCAccumulator, NCCAccumulator
from gnc.metrics.distributed import leave_process_group

K, D, N = 6, 4, 240


def shared_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    y = torch.randint(0, K, (N,), generator=g)
    centers = torch.randn(K, D, generator=g, dtype=torch.float64)
    H = centers[y] + 0.3 * torch.randn(N, D, generator=g, dtype=torch.float64)
    logits = torch.randn(N, K, generator=g, dtype=torch.float64)
    return H, y, logits


def single_process() -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    H, y, logits = shared_data()
    acc = GNCAccumulator(K, D)
    acc.update(H, y)
    acc.sync()  # not distributed: no-op
    stats = acc.statistics()
    ncc = NCCAccumulator(stats.means)
    ncc.update(H, y, logits)
    ncc.sync()
    tensors = {
        "means": stats.means,
        "within": stats.within_scatter,
        "traces": stats.class_scatter_traces,
        "counts": stats.counts,
    }
    return tensors, ncc.compute()


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        H, y, logits = shared_data()
        # Uneven, interleaved shards; rank 1 sees some classes only rarely.
        mine = torch.arange(N) % 3 == 0 if rank == 0 else torch.arange(N) % 3 != 0
        acc = GNCAccumulator(K, D)
        for part in torch.nonzero(mine).flatten().split(17):
            acc.update(H[part], y[part])
        acc.sync()
        acc.sync()  # a second sync is a no-op
        stats = acc.statistics()
        ncc = NCCAccumulator(stats.means)
        idx = torch.nonzero(mine).flatten()
        ncc.update(H[idx], y[idx], logits[idx])
        ncc.sync()
        try:
            acc.update(H[:2], y[:2])
            updated_after_sync = True
        except RuntimeError:
            updated_after_sync = False
        torch.save(
            {
                "means": stats.means,
                "within": stats.within_scatter,
                "traces": stats.class_scatter_traces,
                "counts": stats.counts,
                "ncc": ncc.compute(),
                "updated_after_sync": updated_after_sync,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        leave_process_group()


def test_two_process_gloo_sync_equals_single_process(tmp_path: Path) -> None:
    world = 2
    mp.spawn(
        _worker,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        join=True,
    )
    ref, ref_ncc = single_process()
    for rank in range(world):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        for key, value in ref.items():
            torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-12)
        assert got["ncc"] == ref_ncc
        assert got["updated_after_sync"] is False
