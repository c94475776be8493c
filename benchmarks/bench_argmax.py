"""Benchmark the unargmaxable-class test against one tiled float32 ``W W^T`` pass (JSON on stdout).

Rows: Gaussian directions with norms ``0.5 + 0.5 u`` (``--norms uniform``: the screen decides
nearly every class) or ``u^3`` (``--norms cube``: small rows fall inside the hull and are solved
exactly), ``u`` uniform; or a matrix file (``--matrix``, e.g. a dequantized head).
Columns: time of :func:`gnc.geometry.argmax.argmaxable`, time of one tiled float32 pass with a
row-wise max measured in the same run, their ratio, peak memory, counts.

Usage: python benchmarks/bench_argmax.py --device cuda --sizes 262144x640,65536x640
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

from gnc._runtime import rows_per_budget
from gnc.geometry.argmax import argmaxable
from gnc.geometry.pairwise import iter_blocks


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def one_pass_seconds(W: torch.Tensor, max_memory_mib: float) -> float:
    """One tiled float32 ``W W^T`` pass with a row-wise max (the baseline)."""
    Wf = W.to(torch.float32)
    K = Wf.shape[0]
    _sync(W.device)
    t0 = time.perf_counter()
    step = rows_per_budget(K * 4 * 2, max_memory_mib, num_rows=K)
    for a, b in iter_blocks(K, step):
        (Wf[a:b] @ Wf.T).max(dim=1)
    _sync(W.device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="20000x64", help="comma-separated KxD")
    parser.add_argument("--matrix", default=None, help="a .npy head instead of random rows")
    parser.add_argument("--norms", choices=("uniform", "cube"), default="uniform")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-memory-mib", type=float, default=1024.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cases: list[tuple[str, torch.Tensor]] = []
    if args.matrix:
        cases.append((args.matrix, torch.from_numpy(np.load(args.matrix)).to(dev)))
    else:
        for size in args.sizes.split(","):
            K, d = (int(x) for x in size.lower().split("x"))
            gen = torch.Generator().manual_seed(0)
            X = torch.randn(K, d, generator=gen)
            u = torch.rand(K, 1, generator=gen)
            norms = u.pow(3) if args.norms == "cube" else 0.5 + 0.5 * u
            X = X / X.norm(dim=1, keepdim=True) * norms
            label = "u^3" if args.norms == "cube" else "0.5 + 0.5 u"
            cases.append((f"random {K}x{d}, norms {label}", X.to(dev)))
    rows = []
    for name, W in cases:
        base = one_pass_seconds(W, args.max_memory_mib)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _sync(dev)
        t0 = time.perf_counter()
        res = argmaxable(W, max_memory_mib=args.max_memory_mib)
        _sync(dev)
        sec = time.perf_counter() - t0
        peak = (
            torch.cuda.max_memory_allocated(dev) / 2**20
            if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        rows.append(
            {
                "case": name,
                "K": res.num_classes,
                "d": res.feature_dim,
                "device": str(dev),
                "seconds": sec,
                "one_pass_seconds": base,
                "ratio": sec / base,
                "peak_memory_mib": peak,
                "unargmaxable": int(res.unargmaxable.numel()),
                "coinciding": int(res.coinciding.numel()),
                "undecided": int(res.undecided.numel()),
                "screened": res.num_screened,
                "solved_exactly": res.num_solved,
                "certified": res.certified,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
