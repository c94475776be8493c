"""Benchmark: peak memory of the exact one-vs-rest engine under ``--max-memory-mib``, against W.

Prints a JSON list, one row per (budget, case): budget B, K, d, peak RSS growth, W's bytes, their
ratio, and the growth left after the budget and the stated allowance (see below). Each case runs in
a fresh child process, which loads a K x d matrix W (float64, normalized rows; K = 50,000, d = 64
by default), records its resident memory, then runs one of
- ``one_vs_rest_distances(W, max_memory_mib=B, keep_points=False)`` (all K distances and their
  certified lower bounds),
- ``ovr-record``: the same keeping the witnesses (nearest points, directions, supports: the
  record itself is then about 4 W at d = 64),
- ``min_one_vs_rest_distance(W, max_memory_mib=B)`` (rho only),
- ``gnc margins W.npy --max-memory-mib B --json`` (the command line, in-process: load + solve;
  ``cli-fast`` adds ``--fast``, rho only),
while a thread samples its resident set size (/proc/self/statm, every 2 ms). The growth is
``peak - before`` (``before`` includes W, torch and numpy), reported in MiB and as a multiple of
W's size, next to the budget B. Every case fixes glibc's mmap threshold first, as the command
line does (``gnc._runtime.release_large_frees``: freed tiles leave the resident set);
``--glibc-default`` leaves the library cases with glibc's dynamic threshold. The stated allowance
beyond the budget: W's float64 normalized copy (1 W) and its float32 copy (0.5 W) for the library
calls, plus the file's copy (1 W) for the command line; ``ovr-record`` adds its record's
witnesses. ``excess_mib`` = growth - B - allowance (a few MiB of per-class vectors and allocator
slack when the budget governs every tile).

Usage: python benchmarks/bench_memory.py [--classes K] [--dim d] [--budget-mib 64,256]
       [--cases ovr,min,cli,cli-fast,ovr-record] [--threads N] [--glibc-default]
Each row is also printed to stderr as it finishes (a K = 50,000 case takes minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, threading, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[5]))
case, K, d, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
path = sys.argv[6]
if sys.argv[7] == "1":  # as gnc's command-line entry points do
    from gnc._runtime import release_large_frees
    release_large_frees()
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page

from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
import gnc.cli
gnc.cli.build_parser()
if case.startswith("cli"):
    W = None
else:
    W = torch.from_numpy(np.load(path))
    W = W / W.norm(dim=1, keepdim=True)
before = rss()
peak = [before]
done = threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

t = threading.Thread(target=sample, daemon=True)
t.start()
start = time.perf_counter()
if case in ("ovr", "ovr-record"):
    r = one_vs_rest_distances(W, max_memory_mib=budget, keep_points=case == "ovr-record")
    rho, certified = r.rho, r.certified
elif case == "min":
    m = min_one_vs_rest_distance(W, max_memory_mib=budget)
    rho, certified = m.rho, m.certified
elif case in ("cli", "cli-fast"):
    import contextlib, io
    out = io.StringIO()
    fast = ["--fast"] if case == "cli-fast" else []
    with contextlib.redirect_stdout(out):
        status = gnc.cli.main(["margins", path, "--max-memory-mib", str(budget), "--json",
                               "--no-progress", *fast])
    res = json.loads(out.getvalue())
    rho, certified = res["min_distance"], res["certified"]
else:
    rho, certified = None, None
seconds = time.perf_counter() - start
done.set()
t.join()
peak[0] = max(peak[0], rss())
print(json.dumps({"before_bytes": before, "peak_bytes": peak[0], "seconds": seconds,
                  "rho": rho, "certified": certified}))
"""


def run_case(
    case: str, K: int, d: int, budget: float, threads: int, path: Path, release: bool = True
) -> dict:
    args = [case, str(K), str(d), str(budget), str(threads), str(path), str(int(release))]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: Allowance beyond the budget, in multiples of W: the float64 normalized copy and the float32
#: copy (library); plus the file's copy (command line); plus the witnesses (ovr-record:
#: points and directions 2 W, supports (d + 1) / d * 2 W).
ALLOWANCE_W = {"ovr": 1.5, "min": 1.5, "cli": 2.5, "cli-fast": 2.5}


def allowance_w(case: str, d: int) -> float:
    """The stated allowance of ``case`` in multiples of W's bytes."""
    if case == "ovr-record":
        return 1.5 + 2.0 + 2.0 * (d + 1) / d
    return ALLOWANCE_W[case]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget-mib", default="64,256", help="comma-separated budgets (MiB)")
    parser.add_argument("--cases", default="ovr,min,cli")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="library cases keep glibc's dynamic mmap threshold (the CLI always fixes it)",
    )
    args = parser.parse_args()
    import numpy as np

    K, d = args.classes, args.dim
    w_bytes = K * d * 8
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "W.npy"
        np.save(path, np.random.default_rng(0).standard_normal((K, d)))
        for B in (float(b) for b in args.budget_mib.split(",")):
            for case in args.cases.split(","):
                started = time.perf_counter()
                r = run_case(case, K, d, B, args.threads, path, not args.glibc_default)
                growth = r["peak_bytes"] - r["before_bytes"]
                allow = allowance_w(case, d) * w_bytes
                rows.append(
                    {
                        "case": case,
                        "allocator": "glibc default"
                        if args.glibc_default and not case.startswith("cli")
                        else "large frees returned (release_large_frees)",
                        "budget_mib": B,
                        "K": K,
                        "d": d,
                        "growth_mib": growth / 2**20,
                        "W_mib": w_bytes / 2**20,
                        "growth_over_W": growth / w_bytes,
                        "allowance_mib": allow / 2**20,
                        "excess_mib": (growth - allow) / 2**20 - B,
                        "solve_seconds": r["seconds"],
                        "wall_seconds": time.perf_counter() - started,
                        "rho": r["rho"],
                        "certified": r["certified"],
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
