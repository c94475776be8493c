"""Smoke test of benchmarks/bench_memory.py: the child measures a real, positive RSS growth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_memory.py"


@pytest.mark.slow  # a child process importing torch: ~5 s idle, 20 s on a loaded machine
def test_memory_benchmark_child_reports_growth(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = tmp_path / "W.npy"
    np.save(path, np.random.default_rng(0).standard_normal((400, 8)))
    row = mod.run_case("min", 400, 8, 1.0, 1, path)
    assert row["certified"] is True and 0 < row["rho"] < 2
    assert row["peak_bytes"] >= row["before_bytes"] > 50 << 20  # torch is loaded


def test_release_large_frees_applies_on_glibc() -> None:
    import platform

    from gnc._runtime import release_large_frees

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert release_large_frees() is True
    assert release_large_frees(1 << 20) is True  # idempotent
