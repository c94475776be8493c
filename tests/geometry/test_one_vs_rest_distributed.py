"""Sharding over torch.distributed: 2 gloo processes on loopback equal one process to 1e-12."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from helpers.launch import launch_ranks

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed not available"
)


def _matrix(K: int = 203, d: int = 9) -> np.ndarray:
    g = np.random.default_rng(7)
    W = g.standard_normal((K, d)) * np.linspace(0.3, 1.5, d)
    W[5] = W[17]  # a duplicate: D = 0 on both
    return W


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    W = _matrix()
    np.save(tmp_path / "w.npy", W)
    script = tmp_path / "rank.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np, torch, torch.distributed as dist
            from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
            from gnc.metrics.distributed import leave_process_group
            dist.init_process_group("gloo")
            W = torch.from_numpy(np.load({str(tmp_path / "w.npy")!r}))
            r = one_vs_rest_distances(W, distributed=True, max_memory_mib=0.05)
            m = min_one_vs_rest_distance(W, process_group=dist.group.WORLD, chunk_size=4)
            if dist.get_rank() == 0:
                np.save({str(tmp_path / "d.npy")!r}, r.distances.numpy())
                np.save({str(tmp_path / "lo.npy")!r}, r.lower_bounds.numpy())
                print(r.world_size, r.certified, m.rho, m.certified, m.world_size)
            leave_process_group()
            """
        )
    )
    out = launch_ranks([str(script)], world=2)
    ws, cert, rho, mcert, mws = out[0].split()
    single = one_vs_rest_distances(torch.from_numpy(W), max_memory_mib=0.05)
    D = np.load(tmp_path / "d.npy")
    assert ws == "2" and mws == "2" and cert == "True" and mcert == "True"
    assert np.abs(D - single.distances.numpy()).max() <= 1e-12
    assert np.abs(np.load(tmp_path / "lo.npy") - single.lower_bounds.numpy()).max() <= 1e-12
    assert D[5] == 0.0 and D[17] == 0.0
    assert (
        abs(float(rho) - min_one_vs_rest_distance(torch.from_numpy(W), chunk_size=4).rho) <= 1e-12
    )


def test_torchrun_cli_per_class(tmp_path: Path) -> None:
    W = _matrix(150, 6)
    np.save(tmp_path / "w.npy", W)
    per = tmp_path / "D.npy"
    argv = ["-m", "gnc", "margins", str(tmp_path / "w.npy"), "--per-class", str(per), "--json"]
    out = launch_ranks(argv, world=2)
    res = json.loads(out[0])
    assert out[1].strip() == ""  # only rank 0 prints
    assert res["world_size"] == 2 and res["certified"] is True
    single = one_vs_rest_distances(torch.from_numpy(W))
    assert np.abs(np.load(per) - single.distances.numpy()).max() <= 1e-12


def test_distributed_without_group_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="process group"):
        one_vs_rest_distances(torch.eye(3), distributed=True)
