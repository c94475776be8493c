"""Benchmark: exact one-vs-rest distances against the paper's estimator and SciPy SLSQP.

Prints one JSON object. For each (K, d): time and accuracy of
- ``exact``: gnc's certified Wolfe active-set solver (all K classes);
- ``paper``: the estimator of the paper's code (per class, projected subgradient descent on a unit
  h minimizing max_{j != k} <w_j - w_k, h>, 10,000 iterations, lr 0.01 decayed x0.1 every 2,000,
  batched over all classes in torch); timed over a few hundred iterations, extrapolated
  linearly to 10,000 (each iteration costs the same); its accuracy is measured on 8 classes;
- ``slsqp``: SciPy SLSQP on the simplex QP from one start (tests/helpers/qp_reference.py, with
  its exact active-set polish), on a few classes, extrapolated (K <= 100 only:
  it is O(K^3) per iteration; one class at K = 1000 took over ten minutes).
Ratios are computed in the same run. A final section times rho of a 50,000 x 576 matrix
(``--large``) with its peak resident memory.

With ``--device cuda`` the exact solver and the paper's estimator run on the GPU (SLSQP stays on
the CPU) and ``--sizes 1000x512,5000x512`` picks the cases.

Usage: python benchmarks/bench_one_vs_rest.py [--quick] [--large] [--threads N] [--device D]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.sphere import random_points

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.qp_reference import scipy_one_vs_rest_solution  # the tests' SciPy reference


def slsqp(Wn: np.ndarray, k: int) -> float:
    """SciPy SLSQP from one start (the tests' reference, then its exact active-set polish)."""
    return scipy_one_vs_rest_solution(Wn, k, method="slsqp", num_starts=1).distance


def paper_estimator(W: torch.Tensor, classes: torch.Tensor, iters: int = 10_000) -> torch.Tensor:
    """The paper's lower-bound estimator of D_k, batched over the given classes (float32)."""
    W = W.float()
    K = W.shape[0]
    h = W[classes].clone().requires_grad_(True)
    opt = torch.optim.SGD([h], lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2000, gamma=0.1)
    mask = torch.zeros(classes.numel(), K, dtype=torch.bool, device=W.device)
    mask[torch.arange(classes.numel(), device=W.device), classes] = True
    for _ in range(iters):
        opt.zero_grad()
        hn = h / h.norm(dim=1, keepdim=True)
        s = hn @ W.T - (hn * W[classes]).sum(dim=1, keepdim=True)  # <w_j - w_k, h>
        s = s.masked_fill(mask, -math.inf)
        s.max(dim=1).values.sum().backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        hn = h / h.norm(dim=1, keepdim=True)
        s = (hn @ W.T - (hn * W[classes]).sum(dim=1, keepdim=True)).masked_fill(mask, -math.inf)
        return (-s.max(dim=1).values).double().cpu()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_case(K: int, d: int, quick: bool, device: torch.device) -> dict[str, object]:
    W = random_points(K, d, generator=torch.Generator().manual_seed(K * 1000 + d)).to(device)
    if device.type == "cuda":
        one_vs_rest_distances(W[:50])  # warm-up: CUDA context and kernels
    synchronize(device)
    t0 = time.perf_counter()
    ex = one_vs_rest_distances(W)
    synchronize(device)
    t_exact = time.perf_counter() - t0
    # The paper's estimator, batched over all K classes: every iteration costs the same, so a
    # few hundred timed iterations extrapolate exactly to the 10,000 it runs.
    timed = 20 if quick else 100
    every = torch.arange(K, device=device)
    paper_estimator(W, every, iters=3)  # warm-up (allocations, first-call overhead)
    synchronize(device)
    t0 = time.perf_counter()
    paper_estimator(W, every, iters=timed)
    synchronize(device)
    t_paper = (time.perf_counter() - t0) * 10_000 / timed
    # Its accuracy after the full 10,000 iterations, on a few classes.
    sub = torch.arange(0, K, max(1, K // 8), device=device)
    est = paper_estimator(W, sub, iters=2000 if quick else 10_000)
    err_paper = float((ex.distances[sub].cpu() - est).max())
    # SLSQP is O(K^3) per iteration: timed on a few classes, and skipped beyond K = 100
    # (one class at K = 1000 ran for over ten minutes here).
    t_slsqp: float | None = None
    err_slsqp: float | None = None
    if K <= 100:
        n_slsqp = 3
        Wn = W.cpu().numpy()
        t0 = time.perf_counter()
        errs = [abs(slsqp(Wn, k) - float(ex.distances[k].cpu())) for k in range(n_slsqp)]
        t_slsqp = (time.perf_counter() - t0) * K / n_slsqp
        err_slsqp = max(errs)
    return {
        "K": K,
        "d": d,
        "device": str(device),
        "exact_seconds": t_exact,
        "exact_max_gap": ex.gap,
        "exact_certified": ex.certified,
        "rho": ex.rho,
        "paper_seconds_extrapolated": t_paper,
        "paper_iterations_timed": timed,
        "paper_accuracy_iterations": 2000 if quick else 10_000,
        "paper_max_underestimate": err_paper,
        "slsqp_seconds_extrapolated": t_slsqp,
        "slsqp_max_abs_error": err_slsqp,
        "speedup_vs_paper": t_paper / t_exact,
        "speedup_vs_slsqp": None if t_slsqp is None else t_slsqp / t_exact,
    }


def bench_large(K: int, d: int, device: torch.device) -> dict[str, object]:
    W = random_points(K, d, generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    # A trained-head-like matrix: some near-duplicate rows (as in language-model vocabularies).
    g = torch.Generator().manual_seed(6)
    dup = torch.randint(0, K, (K // 100, 2), generator=g)
    W[dup[:, 0]] = W[dup[:, 1]] + 0.05 * torch.randn(dup.shape[0], d, generator=g) / math.sqrt(d)
    W = W.to(device)
    synchronize(device)
    t0 = time.perf_counter()
    m = min_one_vs_rest_distance(W)
    synchronize(device)
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "K": K,
        "d": d,
        "device": str(device),
        "seconds": t,
        "rho": m.rho,
        "argmin": m.argmin,
        "certified": m.certified,
        "gap": m.gap,
        "classes_solved": m.classes_solved,
        "peak_rss_gib": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes and 1,000 paper iterations")
    ap.add_argument("--large", action="store_true", help="also rho of a 50,000 x 576 matrix")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default=None, help="cases like 1000x512,5000x512")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.sizes:
        sizes = [(int(k), int(d)) for k, d in (c.split("x") for c in args.sizes.split(","))]
    elif args.quick:
        sizes = [(100, 10), (1000, 64)]
    else:
        sizes = [(K, d) for K in (100, 1000, 5000) for d in (10, 64, 512)]
    out: dict[str, object] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cases": [bench_case(K, d, args.quick, device) for K, d in sizes],
    }
    if args.large:
        out["large"] = bench_large(50_000, 576, device)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
