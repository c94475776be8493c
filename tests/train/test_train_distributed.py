"""Two gloo processes (DDP, global batch split across ranks) against one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnc.train.config import load_config
from gnc.train.loop import train
from helpers.launch import launch_ranks
from helpers.train_ddp import ddp_worker

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.toml")


@pytest.mark.parametrize("kind", ["cmf", pytest.param("normalized", marks=pytest.mark.slow)])
def test_gloo_two_processes_match_single_process(tmp_path: Path, kind: str) -> None:
    overrides = [f"head.kind={kind}", "optim.epochs=3", "plots=false", "head.beta=0.5"]
    single = train(load_config(TINY, overrides), tmp_path / "single", progress=False)
    out = tmp_path / "ddp"
    mp.spawn(
        ddp_worker,
        args=(2, str(tmp_path / "init"), TINY, overrides, str(out)),
        nprocs=2,
        join=True,
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rank1 = json.loads((out / "rank1.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    keys = ["train_loss", "train_accuracy", "test_accuracy", "ncc_train_accuracy",
            "ncc_test_accuracy", "gnc1", "gnc2", "gnc3", "test_loss"]  # fmt: skip
    for ddp_row, one_row in zip(rows, [r.to_dict() for r in single.history], strict=True):
        for key in keys:
            assert ddp_row[key] == pytest.approx(one_row[key], rel=1e-5, abs=1e-6), key
    for key in keys:
        assert rank1[key] == rows[-1][key], key  # every rank computes the same synced metrics
    a = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_gnc_train_under_torchrun_trains_on_two_ranks_and_leaves_cleanly(tmp_path: Path) -> None:
    # `gnc train` as torchrun starts it: both ranks exit 0 (they leave the group together),
    # rank 0 alone writes the run folder and prints the summary, which matches the DDP run.
    out = tmp_path / "run"
    sets = ["head.kind=cmf", "optim.epochs=2", "plots=false", "head.beta=0.5"]
    argv = ["-m", "gnc", "train", "--config", TINY, "--out", str(out), "--json", "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    stdouts = launch_ranks(argv, world=2, timeout=300)
    summary = json.loads(stdouts[0])
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2 and summary["epochs_completed"] == 2
    assert summary["final"] == results["final"]
