"""Worker for the two-process gloo test of ``gnc.train`` (importable by spawned children)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist


def ddp_worker(
    rank: int, world: int, init_file: str, config_path: str, overrides: list[str], out: str
) -> None:
    """Join a gloo group through ``init_file``, train the config, report rank 1's metrics."""
    from gnc.metrics.distributed import leave_process_group
    from gnc.train.config import load_config
    from gnc.train.loop import train

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ok = False
    try:
        res = train(load_config(config_path, overrides), out, progress=False)
        if rank == 1:
            # Rank 1 writes nothing into the run folder; it reports its own final metrics.
            Path(out, "rank1.json").write_text(json.dumps(res.final.to_dict()))
        ok = True
    finally:
        # Rank 1 used to destroy its group while rank 0 was still writing results.json; once
        # in a CI run rank 1 then aborted in gloo's threads. Both ranks now leave together.
        leave_process_group(ok)
