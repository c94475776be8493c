"""``gnc margins PATH``: exact one-vs-rest distances (GNC2) of a K x d classifier matrix.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the classes are split across the ranks
(gloo on CPU, NCCL with ``--device cuda``); rank 0 prints and writes the results.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

import torch
import torch.distributed as dist

from gnc._checks import check_matrix
from gnc._runtime import release_large_frees
from gnc.cli._common import (
    add_memory_argument,
    add_progress_argument,
    device_from,
    dump_json,
    memory_from,
    show_progress,
)
from gnc.geometry import max_cosines, min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry.bounds import rho_star_upper
from gnc.io import save_array
from gnc.metrics.distributed import leave_process_group
from gnc.readers import load_matrix

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``margins`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "margins",
        help="exact one-vs-rest distances of a K x d matrix (rows are normalized)",
        description=(
            "Exact, certified one-vs-rest distances D_k = dist(w_k, conv{w_j : j != k}) of the "
            "rows of a K x d matrix. Rows are normalized to the unit sphere first (GNC2)."
        ),
    )
    p.add_argument(
        "path", help="matrix file: .npy, .npz (key 'weights' or the only array), .pt, .safetensors"
    )
    p.add_argument("--key", default=None, help="array name inside an archive")
    p.add_argument(
        "--per-class",
        metavar="OUT.npy",
        default=None,
        help="write the K distances D_k to this .npy file",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="only rho = min_k D_k (skips classes that cannot attain it)",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="distances of the raw rows (no normalization to the unit sphere)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device (default cpu; under torchrun with cuda each rank takes its local GPU)",
    )
    add_memory_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_progress_argument(p)
    p.set_defaults(func=run)


def _init_distributed(dev: torch.device) -> tuple[bool, int, torch.device]:
    """Join the torchrun process group when launched by it: ``(distributed, rank, device)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False, 0, dev
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return True, dist.get_rank(), dev


def run(args: argparse.Namespace) -> int:
    """Run ``gnc margins``."""
    start = time.perf_counter()
    if args.fast and args.per_class:
        raise ValueError("`--per-class` needs all distances: drop `--fast`.")
    memory_from(args)
    normalize = not args.raw
    release_large_frees()  # freed tiles leave the resident set: the budget bounds RSS
    W = check_matrix(
        "weights", load_matrix(args.path, key=args.key), min_rows=2, nonzero_rows=normalize
    )
    distributed, rank, device = _init_distributed(device_from(args))
    ok = False
    try:
        code = _solve_and_report(args, W, distributed, rank, device, normalize, start)
        ok = True
        return code
    finally:
        if distributed:
            leave_process_group(ok)


def _solve_and_report(
    args: argparse.Namespace,
    W: torch.Tensor,
    distributed: bool,
    rank: int,
    device: torch.device,
    normalize: bool,
    start: float,
) -> int:
    """Solve on this rank's classes; rank 0 prints and writes."""
    W = W.to(device=device, dtype=torch.float64)
    K, d = W.shape
    if normalize:
        W = W / W.norm(dim=1, keepdim=True)
    out: dict[str, Any] = {"num_classes": K, "feature_dim": d, "normalized_rows": normalize}
    kw: dict[str, Any] = {
        "normalize": False,  # already normalized above when asked
        "max_memory_mib": memory_from(args),
        "progress": show_progress(args, rank=rank),
        "distributed": distributed,
    }
    if args.fast:
        m = min_one_vs_rest_distance(W, **kw)
        max_cos = m.max_inner if normalize else None
        out.update(
            min_distance=m.rho,
            argmin=m.argmin,
            mean_distance=None,
            certified=m.certified,
            gap=m.gap,
            lower=m.lower,
            classes_solved=m.classes_solved,
        )
    else:
        r = one_vs_rest_distances(W, keep_points=False, **kw)  # D_k and bounds only
        max_cos = float(max_cosines(W, max_memory_mib=memory_from(args))[0].max())
        max_cos = max_cos if normalize else None
        out.update(
            min_distance=r.rho,
            argmin=r.argmin,
            mean_distance=float(r.distances.mean()),
            median_distance=float(r.distances.median()),
            certified=r.certified,
            gap=r.gap,
            lower=float(r.lower_bounds.min()),
            classes_solved=K,
        )
        if args.per_class and rank == 0:
            save_array(args.per_class, r.distances.cpu())
    out.update(
        max_cosine=max_cos,
        min_pairwise_distance=None if max_cos is None else math.sqrt(max(0.0, 2 - 2 * max_cos)),
        one_minus_max_cosine=None if max_cos is None else 1.0 - max_cos,
        rho_star_upper=rho_star_upper(K, d) if normalize else None,
        world_size=int(os.environ.get("WORLD_SIZE", "1")) if distributed else 1,
        seconds=time.perf_counter() - start,
    )
    if rank != 0:
        return 0
    if args.json:
        print(dump_json(out, indent=None))
    else:
        w = max(len(k) for k in out)
        for k, v in out.items():
            print(f"{k:<{w}}  {v:.10g}" if isinstance(v, float) else f"{k:<{w}}  {v}")
        if args.per_class:
            print(f"per-class distances written to {args.per_class}", file=sys.stderr)
    return 0
