"""Benchmark: exactly coinciding rows, ``coinciding_rows`` against ``torch.unique(dim=0)``.

Prints one JSON object: for a K x d float64 matrix with duplicated rows (K = 262,144, d = 640 by
default: the Gemma 3 head's shape), the seconds and the peak resident-memory growth of
``gnc.geometry.argmax.coinciding_rows`` (64-bit keys block by block, exact comparisons where
keys coincide) and of the ``torch.unique(X, dim=0, return_inverse=True)`` it replaced, each in a
fresh child process (growth = peak RSS - RSS after W is built), their ratios, and whether the
two answers agree.

Usage: python benchmarks/bench_coinciding.py [--classes K] [--dim d] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from gnc.geometry.argmax import coinciding_rows  # imported before the measurement
K, d, threads, case = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
W = torch.randn(K, d, generator=g, dtype=torch.float64)
W[torch.randint(0, K, (K // 100,), generator=g)] = W[torch.randint(0, K, (K // 100,), generator=g)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if case == "gnc":
    twin = coinciding_rows(W, None)
else:
    _, inverse = torch.unique(W, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), K, dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(K), reduce="amin")
    twin = first[inverse]
seconds = time.perf_counter() - t0
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
digest = int((twin * torch.arange(K)).sum()) if K < 2**31 else None
print(json.dumps({"seconds": seconds, "growth_mib": growth, "digest": digest,
                  "merged": int((twin != torch.arange(K)).sum())}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=262144)
    p.add_argument("--dim", type=int, default=640)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    rows = {}
    for case in ("gnc", "torch_unique"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(a.classes), str(a.dim), str(a.threads), case],
            capture_output=True,
            text=True,
            check=True,
        )
        rows[case] = json.loads(out.stdout.strip().splitlines()[-1])
    g, u = rows["gnc"], rows["torch_unique"]
    w_mib = a.classes * a.dim * 8 / 2**20
    print(
        json.dumps(
            {
                "K": a.classes,
                "d": a.dim,
                "threads": a.threads,
                "W_mib": round(w_mib, 1),
                "gnc_seconds": round(g["seconds"], 3),
                "torch_unique_seconds": round(u["seconds"], 3),
                "speedup": round(u["seconds"] / g["seconds"], 2),
                "gnc_growth_mib": round(g["growth_mib"], 1),
                "torch_unique_growth_mib": round(u["growth_mib"], 1),
                "memory_ratio": round(g["growth_mib"] / max(u["growth_mib"], 1e-9), 3),
                "rows_merged": g["merged"],
                "same_answer": g["digest"] == u["digest"] and g["merged"] == u["merged"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
