from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_codes.py"


def _bench() -> ModuleType:
    """``benchmarks/bench_codes.py`` as a module (the benchmarks are not a package)."""
    spec = importlib.util.spec_from_file_location("bench_codes", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_smoke() -> None:
    mod = _bench()
    snaps, seconds = mod.reference_solver(12, 3, 300, 0)
    assert snaps[-1][0] == 300 and seconds > 0
    row = mod.compare(3, 12, 300, 0, True)
    assert row["ours_reaches_reference_final"] is True
    assert row["ours_rho"] >= row["reference_final_rho"]
    assert row["ours_rho"] <= row["upper_bound"] + 1e-9


def test_unknown_reliability_case_is_an_error_not_a_silent_skip() -> None:
    mod = _bench()
    # N = 72 is not tabulated; N = 85 is only in the sweep (--tammes-sweep)
    for case in ("tammes:72x3", "tammes:85x3"):
        with pytest.raises(SystemExit, match=case):
            mod.reliability(1, 1.0, [case], "wall", 1, 0, 0, True, 1)
