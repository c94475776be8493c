"""Benchmark: streaming GNC statistics vs a per-sample Python loop and a dense NumPy computation.

Streams ``--samples`` random features (d = 512, K = 1000 by default) in batches generated on the
fly into a :class:`gnc.metrics.GNCAccumulator`, then computes GNC1 and the CDNV. Baselines, timed
in the same run on the same threads:

* ``per_sample_loop``: the style of the reference NC code (Papyan et al.; Jiang et al.), two passes,
  the within-class scatter built one outer product per sample; run on ``--loop-samples`` samples
  and extrapolated linearly to ``--samples``.
* ``dense_numpy``: all features in memory: normalize, class means, ``X^T X`` of centred features;
  run on ``min(--samples, --dense-samples)`` samples and extrapolated linearly when smaller.

Peak memory: streaming runs in fresh subprocesses for ``--samples / 10`` and ``--samples``; each
reports the growth of its peak RSS (``resource.getrusage``) over the RSS after setup. Both should be
about the state size ``O(K d + d^2)`` plus one batch's buffers, independent of ``N``. Prints one
JSON object.

Usage: ``python benchmarks/bench_metrics.py --samples 100000``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (thread settings above must precede the BLAS import)
import torch  # noqa: E402

from gnc.metrics import GNCAccumulator, gnc1, nc1_cdnv  # noqa: E402


def rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batch(
    gen: torch.Generator, centers: torch.Tensor, size: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, centers.shape[0], (size,), generator=gen, device=centers.device)
    h = centers[y] + noise * torch.randn(
        size, centers.shape[1], generator=gen, device=centers.device
    )
    return h, y


def stream(
    num_samples: int, centers: torch.Tensor, batch: int, seed: int, noise: float
) -> tuple[float, float, GNCAccumulator]:
    """Return (seconds in update(), seconds generating batches, accumulator)."""
    K, d = centers.shape
    gen = torch.Generator(device=centers.device).manual_seed(seed)
    acc = GNCAccumulator(K, d)
    t_update = t_gen = 0.0
    done = 0
    while done < num_samples:
        size = min(batch, num_samples - done)
        t0 = time.perf_counter()
        h, y = make_batch(gen, centers, size, noise)
        y[: min(size, K)] = torch.arange(min(size, K), device=y.device)  # all classes early
        synchronize(centers.device)
        t1 = time.perf_counter()
        acc.update(h, y)
        synchronize(centers.device)
        t_update += time.perf_counter() - t1
        t_gen += t1 - t0
        done += size
    return t_update, t_gen, acc


def per_sample_loop(h: torch.Tensor, y: torch.Tensor, K: int, batch: int) -> float:
    """Seconds of the reference code's style: per-class means, then per-sample outer products."""
    d = h.shape[1]
    synchronize(h.device)
    t0 = time.perf_counter()
    means = torch.zeros(K, d, dtype=torch.float64, device=h.device)
    counts = torch.zeros(K, dtype=torch.float64, device=h.device)
    for start in range(0, len(y), batch):  # pass 1: means
        hb = torch.nn.functional.normalize(h[start : start + batch].double(), dim=1)
        yb = y[start : start + batch]
        for c in range(K):
            idx = (yb == c).nonzero(as_tuple=True)[0]
            if len(idx):
                means[c] += hb[idx].sum(dim=0)
                counts[c] += len(idx)
    means /= counts.clamp_min(1)[:, None]
    sw = torch.zeros(d, d, dtype=torch.float64, device=h.device)
    for start in range(0, len(y), batch):  # pass 2: per-sample scatter
        hb = torch.nn.functional.normalize(h[start : start + batch].double(), dim=1)
        yb = y[start : start + batch]
        for b in range(len(yb)):
            z = (hb[b] - means[yb[b]])[:, None]
            sw += z @ z.T
    synchronize(h.device)
    return time.perf_counter() - t0


def dense_numpy(h: np.ndarray, y: np.ndarray, K: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    H = h.astype(np.float64)
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    counts = np.bincount(y, minlength=K)
    order = np.argsort(y, kind="stable")  # class sums by sorting + reduceat (np.add.at is slow)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.zeros((K, H.shape[1]))
    present = counts > 0
    sums[present] = np.add.reduceat(H[order], starts[present], axis=0)
    means = sums / np.maximum(counts, 1)[:, None]
    X = H - means[y]
    sw = X.T @ X
    return time.perf_counter() - t0, sw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--loop-samples", type=int, default=2000)
    parser.add_argument("--dense-samples", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="device for streaming and the loop")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    N, d, K = args.samples, args.dim, args.classes
    noise = 0.5 / np.sqrt(d)
    device = torch.device(args.device)
    centers = torch.nn.functional.normalize(
        torch.randn(K, d, generator=torch.Generator().manual_seed(args.seed)), dim=1
    ).to(device)
    if args.probe:  # child process: stream N samples, report time and peak RSS growth
        rss0 = rss_mib()
        gpu0 = 0.0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            gpu0 = torch.cuda.memory_allocated(device) / 2**20
        t_update, t_gen, acc = stream(N, centers, args.batch, args.seed, noise)
        t0 = time.perf_counter()
        stats = acc.statistics()
        g1, cdnv = gnc1(stats), nc1_cdnv(stats)
        t_compute = time.perf_counter() - t0
        probe = {
            "t_update": t_update,
            "t_gen": t_gen,
            "t_compute": t_compute,
            "rss_growth": rss_mib() - rss0,
            "device_growth": (
                torch.cuda.max_memory_allocated(device) / 2**20 - gpu0
                if device.type == "cuda"
                else 0.0
            ),
            "gnc1": g1,
            "nc1_cdnv": cdnv,
        }
        print(json.dumps(probe))
        return

    def run_probe(samples: int) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--probe", "--samples", str(samples)]
        for flag in ("dim", "classes", "batch", "threads", "seed", "device"):
            cmd += [f"--{flag}", str(getattr(args, flag))]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        parsed: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return parsed

    small = run_probe(max(args.batch, N // 10))
    full = run_probe(N)
    t_update, t_gen, t_compute = full["t_update"], full["t_gen"], full["t_compute"]
    g1, cdnv = full["gnc1"], full["nc1_cdnv"]
    t_stream = t_update + t_compute

    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    n_loop = min(N, args.loop_samples)
    h_loop, y_loop = make_batch(gen, centers, n_loop, noise)
    t_loop = per_sample_loop(h_loop, y_loop, K, args.batch) * (N / n_loop)

    n_dense = min(N, args.dense_samples)
    h_dense, y_dense = make_batch(gen, centers, n_dense, noise)
    h_dense, y_dense = h_dense.cpu(), y_dense.cpu()
    t_dense_raw, sw_dense = dense_numpy(h_dense.numpy(), y_dense.numpy(), K)
    t_dense = t_dense_raw * (N / n_dense)
    # Same data streamed: the dense scatter is the oracle for this run's accuracy.
    check = GNCAccumulator(K, d)
    check.update(h_dense, y_dense)
    scatter_err = float(
        np.abs(check.statistics().within_scatter.numpy() - sw_dense).max() / np.abs(sw_dense).max()
    )

    state_mib = (2 * K * d + d * d + 3 * K) * 8 / 2**20
    batch_mib = args.batch * d * 4 / 2**20
    result = {
        "benchmark": "metrics_streaming",
        "samples": N,
        "dim": d,
        "classes": K,
        "batch": args.batch,
        "threads": args.threads,
        "device": str(device),
        "stream_update_seconds": t_update,
        "stream_compute_seconds": t_compute,
        "stream_seconds": t_stream,
        "stream_samples_per_second": N / t_update,
        "batch_generation_seconds_excluded": t_gen,
        "per_sample_loop_seconds_extrapolated": t_loop,
        "per_sample_loop_measured_on": n_loop,
        "dense_numpy_seconds": t_dense,
        "dense_numpy_measured_on": n_dense,
        "speedup_vs_per_sample_loop": t_loop / t_stream,
        "ratio_stream_over_dense_numpy": t_stream / t_dense,
        "target_speedup_vs_loop": 50.0,
        "target_ratio_vs_dense": 2.0,
        "meets_loop_target": t_loop / t_stream >= 50.0,
        "meets_dense_target": t_stream / t_dense <= 2.0,
        "peak_rss_growth_mib_at_N_over_10": small["rss_growth"],
        "peak_rss_growth_mib_at_N": full["rss_growth"],
        "peak_device_memory_growth_mib_at_N_over_10": small["device_growth"],
        "peak_device_memory_growth_mib_at_N": full["device_growth"],
        "state_mib": state_mib,
        "one_batch_float32_input_mib": batch_mib,
        "dense_features_mib_at_N": N * d * 8 / 2**20,
        "gnc1": g1,
        "nc1_cdnv": cdnv,
        "within_scatter_relative_error_vs_dense": scatter_err,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "note": "shared CPU; loop and dense times extrapolated linearly from the subsets shown",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
