"""Benchmark: peak memory of the exact one-vs-rest engine under ``--max-memory-mib``, against W.

Prints one JSON object. Each case runs in a fresh child process, which builds a K x d matrix W
(float64, normalized rows; K = 50,000, d = 64 by default), records its resident memory, then
runs one of
- ``one_vs_rest_distances(W, max_memory_mib=B)`` (all K distances),
- ``min_one_vs_rest_distance(W, max_memory_mib=B)`` (rho only),
- ``gnc margins W.npy --max-memory-mib B --json`` (the command line, in-process: load + solve;
  ``cli-fast`` adds ``--fast``, rho only),
while a thread samples its resident set size (/proc/self/statm, every 2 ms). The growth is
``peak - before`` (``before`` includes W, torch and numpy), reported in MiB and as a multiple of
W's size, next to the budget B. A baseline child that only builds W gives the interpreter's
fixed footprint for the command-line case (which must also hold the file's copy of W).

Usage: python benchmarks/bench_memory.py [--classes K] [--dim d] [--budget-mib B]
       [--cases ovr,min,cli,cli-fast] [--threads N]
Each case is also printed to stderr as it finishes (a K = 50,000 case takes minutes).
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
if case == "ovr":
    r = one_vs_rest_distances(W, max_memory_mib=budget)
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


def run_case(case: str, K: int, d: int, budget: float, threads: int, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(K), str(d), str(budget), str(threads), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget-mib", type=float, default=64.0)
    parser.add_argument("--cases", default="ovr,min,cli")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import numpy as np

    K, d, B = args.classes, args.dim, args.budget_mib
    w_bytes = K * d * 8
    out: dict = {"K": K, "d": d, "budget_mib": B, "W_mib": w_bytes / 2**20, "cases": {}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "W.npy"
        np.save(path, np.random.default_rng(0).standard_normal((K, d)))
        for case in args.cases.split(","):
            started = time.perf_counter()
            r = run_case(case, K, d, B, args.threads, path)
            growth = r["peak_bytes"] - r["before_bytes"]
            out["cases"][case] = {
                "growth_mib": growth / 2**20,
                "growth_over_W": growth / w_bytes,
                "growth_minus_budget_mib": growth / 2**20 - B,
                "solve_seconds": r["seconds"],
                "wall_seconds": time.perf_counter() - started,
                "rho": r["rho"],
                "certified": r["certified"],
            }
            print(json.dumps({case: out["cases"][case]}), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
