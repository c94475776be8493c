"""The CUDA paths of every area, against the CPU results of the same calls (skipped without CUDA).

Each test runs one public entry point on the GPU and compares with the CPU run (the oracle the
CPU tests already tie to closed forms and references), plus what only a GPU can check: that the
accumulator's update never synchronizes with the host.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from gnc.codes import softmax_code
from gnc.geometry import configurations, min_one_vs_rest_distance, one_vs_rest_distances
from gnc.metrics import GNCAccumulator, measure_model
from gnc.sphere import random_points
from gnc.train.config import load_config
from gnc.train.loop import train
from gnc.ufm.solver import solve_ufm

pytestmark = pytest.mark.gpu
# GNC_GPU_TEST_DEVICE=cpu runs these checks on the CPU (to test the tests without a GPU).
GPU = torch.device(os.environ.get("GNC_GPU_TEST_DEVICE", "cuda"))
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.toml"


def test_one_vs_rest_matches_cpu_and_is_certified() -> None:
    W = random_points(300, 12, generator=torch.Generator().manual_seed(0))
    cpu = one_vs_rest_distances(W)
    gpu = one_vs_rest_distances(W.to(GPU))
    assert gpu.distances.device.type == GPU.type
    assert gpu.certified and gpu.gap <= 1e-9
    torch.testing.assert_close(gpu.distances.cpu(), cpu.distances, atol=1e-10, rtol=0)
    assert gpu.argmin == cpu.argmin


def test_min_distance_float32_screening_matches_cpu() -> None:
    g = torch.Generator().manual_seed(1)
    W = random_points(3000, 24, generator=g)
    W[7] = W[8] + 1e-4 * torch.randn(24, generator=g, dtype=W.dtype)  # a near-duplicate pair
    W32 = W.float()
    cpu = min_one_vs_rest_distance(W32)
    gpu = min_one_vs_rest_distance(W32.to(GPU))
    assert gpu.certified and cpu.certified
    assert gpu.argmin in (7, 8)
    assert math.isclose(gpu.rho, cpu.rho, rel_tol=0, abs_tol=1e-10)


def test_softmax_code_icosahedron_on_gpu() -> None:
    icosa = one_vs_rest_distances(configurations.icosahedron()).rho
    res = softmax_code(12, 3, restarts=1, steps=(300, 300), seed=3, device=GPU)
    assert res.code.device.type == GPU.type
    assert res.certified and abs(res.rho - icosa) < 1e-6


def test_accumulator_update_never_syncs_and_matches_cpu() -> None:
    K, d, n = 50, 16, 4000
    g = torch.Generator().manual_seed(2)
    H = torch.randn(n, d, generator=g)
    y = torch.randint(0, K, (n,), generator=g)
    y[:K] = torch.arange(K)
    H[5, 3] = float("nan")  # an invalid row is masked on the device, not checked on the host
    ref = GNCAccumulator(K, d)
    acc = GNCAccumulator(K, d, device=GPU)
    Hg, yg = H.to(GPU), y.to(GPU)
    acc.update(Hg[:512], yg[:512])  # allocation of the state (may sync once)
    previous = torch.cuda.get_sync_debug_mode() if GPU.type == "cuda" else 0
    try:
        if GPU.type == "cuda":
            torch.cuda.synchronize()
            with warnings.catch_warnings():  # "a prototype feature": a warning, made an error
                warnings.simplefilter("ignore", UserWarning)
                torch.cuda.set_sync_debug_mode("error")
        for start in range(512, n, 512):
            acc.update(Hg[start : start + 512], yg[start : start + 512])
    finally:
        if GPU.type == "cuda":
            torch.cuda.set_sync_debug_mode(previous)
            assert torch.cuda.get_sync_debug_mode() == previous
    for start in range(0, n, 512):
        ref.update(H[start : start + 512], y[start : start + 512])
    with pytest.raises(ValueError, match=r"NaN|finite"):
        acc.compute(class_means_rho=False)
    # Same data without the bad row: the GPU state agrees with the CPU state.
    keep = torch.ones(n, dtype=torch.bool)
    keep[5] = False
    ref2, acc2 = GNCAccumulator(K, d), GNCAccumulator(K, d, device=GPU)
    ref2.update(H[keep], y[keep])
    acc2.update(Hg[keep.to(GPU)], yg[keep.to(GPU)])
    s_cpu, s_gpu = ref2.statistics(), acc2.statistics()
    torch.testing.assert_close(s_gpu.within_scatter.cpu(), s_cpu.within_scatter, atol=1e-11, rtol=0)
    torch.testing.assert_close(s_gpu.means.cpu(), s_cpu.means, atol=1e-13, rtol=0)
    W = random_points(K, d, generator=g)
    m_cpu = ref2.compute(W, class_means_rho=False)
    m_gpu = acc2.compute(W.to(GPU), class_means_rho=False)
    assert math.isclose(m_gpu.gnc1, m_cpu.gnc1, rel_tol=1e-9)
    assert m_gpu.gnc2 is not None and m_cpu.gnc2 is not None
    assert math.isclose(m_gpu.gnc2, m_cpu.gnc2, rel_tol=0, abs_tol=1e-10)


def test_ufm_on_gpu_matches_cpu() -> None:
    kwargs = {"tol": 1e-10, "max_steps": 20_000}
    cpu = solve_ufm(5, 2, 1, 0.2, generator=torch.Generator().manual_seed(4), **kwargs)
    gpu = solve_ufm(
        5, 2, 1, 0.2, device=GPU, generator=torch.Generator(GPU).manual_seed(4), **kwargs
    )
    assert gpu.weights.device.type == GPU.type
    assert gpu.stop_reason == cpu.stop_reason == "converged"
    # The optimum is the regular pentagon (up to rotation): compare the Gram matrices' spectra.
    pentagon = one_vs_rest_distances(configurations.regular_polygon(5)).rho
    assert abs(one_vs_rest_distances(gpu.weights).rho - pentagon) < 1e-6
    assert math.isclose(gpu.loss, cpu.loss, rel_tol=1e-8)


def test_training_with_amp_on_gpu(tmp_path: Path) -> None:
    cfg = load_config(TINY, [f"device={GPU}", "amp=true"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.epochs_completed == cfg.optim.epochs
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert math.isfinite(result.final["gnc1"]) and result.final["gnc2"] > 0
    # Resuming from the epoch-2 checkpoint reproduces the same final epoch on the GPU too.
    again = train(cfg, tmp_path / "resumed", progress=False, stop_after_epoch=2)
    assert again.epochs_completed == 2
    resumed = train(cfg, tmp_path / "resumed", progress=False, resume=True)
    assert resumed.final["train_loss"] == result.final["train_loss"]


def test_measure_model_amp_on_gpu() -> None:
    K, d_in, d = 6, 10, 4
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(d_in, 16), nn.ReLU(), nn.Linear(16, d), nn.Linear(d, K)).to(GPU)
    g = torch.Generator().manual_seed(6)
    batches = [(torch.randn(40, d_in, generator=g), torch.arange(40) % K) for _ in range(3)]
    exact = measure_model(net, batches, K, progress=False, device=GPU)
    mixed = measure_model(net, batches, K, progress=False, device=GPU, amp=True)
    assert math.isfinite(mixed.gnc1) and mixed.gnc3 is not None
    # bf16 features change the metrics by about bf16 resolution only
    assert abs(mixed.gnc1 - exact.gnc1) <= 0.05 * exact.gnc1 + 1e-3
    assert exact.gnc2 is not None and mixed.gnc2 is not None
    assert abs(mixed.gnc2 - exact.gnc2) < 1e-9  # W itself is not cast
