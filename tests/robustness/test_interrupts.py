"""SIGINT / SIGTERM at random moments: no partial or temporary file, and a rerun finishes the job.

Each command runs once uninterrupted (the reference, which also gives its duration), then is
killed at seeded random times, each kill followed by a check that every file in its output is
complete and readable and no temporary file is left; finally the same command is rerun and must
produce the reference's results (``gnc train --resume`` and ``gnc reproduce`` resume). The
default suite kills two commands once; ``--runslow`` kills five commands three times each. Set
``GNC_KILL_REPORT=path.json`` to record what happened.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gnc

ROOT = Path(__file__).resolve().parents[2]
IGNORED_KEY = re.compile(r"second|time|unix|elapsed|started|finished|metadata|version|platform")
REPORT: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Command:
    """A gnc invocation writing into ``target`` and how to read its results for comparison."""

    name: str
    argv: Callable[[Path], list[str]]  # scratch folder -> argv
    target: str  # output file or folder, relative to the scratch folder
    results: Callable[[Path], Any]  # target -> comparable results


def _matrix(folder: Path, name: str, rows: int, dim: int) -> Path:
    path = folder / name
    if not path.exists():
        np.save(path, np.random.default_rng(rows).standard_normal((rows, dim)))
    return path


def _json_results(name: str) -> Callable[[Path], Any]:
    return lambda target: json.loads((target / name).read_text())


COMMANDS = {
    c.name: c
    for c in (
        Command(
            "margins",
            lambda w: ["margins", str(_matrix(w, "w.npy", 3000, 8)), "--per-class",
                       str(w / "out" / "d.npy"), "--no-progress"],
            "out/d.npy",
            np.load,
        ),
        Command(
            "code",
            lambda w: ["code", "--classes", "12", "--dim", "3", "--out", str(w / "out" / "c.npy"),
                       "--no-progress"],
            "out/c.npy",
            np.load,
        ),
        Command(
            "train",
            lambda w: ["train", "--config", str(ROOT / "configs" / "tiny.toml"), "--out",
                       str(w / "out"), "--resume", "--no-progress"],
            "out",
            lambda t: json.loads((t / "results.json").read_text())["final"],
        ),
        Command(
            "reproduce",
            lambda w: ["reproduce", "--profile", "tiny", "--only", "ufm", "--out", str(w / "out"),
                       "--no-progress"],
            "out",
            _json_results("results.json"),
        ),
        Command(
            "head",
            lambda w: ["head", "--source", str(_matrix(w, "h.npy", 300, 8)), "--no-code", "--out",
                       str(w / "out"), "--no-progress"],
            "out",
            _json_results("results.json"),
        ),
    )
}  # fmt: skip


def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(gnc.__file__).parents[1]), "MPLBACKEND": "Agg"}
    code = "import sys; from gnc.cli import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _run(argv: list[str]) -> tuple[int, float, str]:
    start = time.monotonic()
    proc = _spawn(argv)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, time.monotonic() - start, err


@functools.cache
def _startup_seconds() -> float:
    """How long a child takes to import gnc and build the parser (kills before it prove nothing)."""
    start = time.monotonic()
    code = "import sys; from gnc.cli import build_parser; build_parser()"
    env = {**os.environ, "PYTHONPATH": str(Path(gnc.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    return time.monotonic() - start


def _check_file(path: Path) -> None:
    """Raise if ``path`` is partial, corrupt or a leftover temporary file."""
    assert not path.name.endswith(".tmp"), f"temporary file left: {path}"
    suffix = path.suffix
    if suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".jsonl":
        for line in path.read_text().splitlines():
            json.loads(line)
    elif suffix == ".npy":
        np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    elif suffix == ".png":
        blob = path.read_bytes()
        assert blob.startswith(b"\x89PNG") and blob[-8:-4] == b"IEND", f"partial PNG: {path}"
    elif suffix == ".pt":
        torch.load(path, weights_only=False)
    elif suffix == ".html":
        assert path.read_text().rstrip().endswith("</html>"), f"partial HTML: {path}"


def _check_output(work: Path) -> int:
    out = work / "out"
    files = [p for p in out.rglob("*") if p.is_file() and p.name != ".gnc.lock"]
    for p in files:
        _check_file(p)
    return len(files)


def _same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a.keys() | b.keys() if not IGNORED_KEY.search(str(k))}
        for k in sorted(keys, key=str):
            assert k in a and k in b, f"{where}.{k} missing"
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple | np.ndarray) and not isinstance(a, str):
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                   rtol=1e-9, atol=1e-12, err_msg=where)  # fmt: skip
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(
            a, b, rel_tol=1e-9, abs_tol=1e-12
        ), f"{where}: {a} != {b}"
    elif isinstance(a, str) and isinstance(b, str):
        assert re.sub(r"/\S*?/(ref|run)/", "/", a) == re.sub(r"/\S*?/(ref|run)/", "/", b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _kill_and_resume(command: Command, kills: int, seed: int, tmp_path: Path) -> None:
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    status, seconds, err = _run(command.argv(ref))
    assert status == 0, err
    expected = command.results(ref / command.target)
    rng = random.Random(seed)
    startup = _startup_seconds()
    for i in range(kills):
        signum = (signal.SIGTERM, signal.SIGINT)[(seed + i) % 2]
        delay = rng.uniform(min(startup, 0.8 * seconds), seconds)  # while the command works
        proc = _spawn(command.argv(run))
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        files = _check_output(run) if (run / "out").exists() else 0
        assert "Traceback" not in err or "KeyboardInterrupt" in err, err
        REPORT.append(
            {
                "command": command.name,
                "signal": signal.Signals(signum).name,
                "after_s": round(delay, 2),
                "status": proc.returncode,
                "files": files,
            }
        )
    status, _, err = _run(command.argv(run))
    assert status == 0, err
    _check_output(run)
    _same(command.results(run / command.target), expected, command.name)
    REPORT[-1]["resumed_same_results"] = True


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    target = os.environ.get("GNC_KILL_REPORT")
    if target:
        Path(target).write_text(json.dumps(REPORT, indent=1))


@pytest.mark.parametrize("name, seed", [("margins", 0), ("train", 1)])
def test_one_kill_leaves_no_partial_file_and_rerun_completes(
    name: str, seed: int, tmp_path: Path
) -> None:
    _kill_and_resume(COMMANDS[name], kills=1, seed=seed, tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMMANDS))
def test_random_kills_leave_no_partial_file_and_rerun_completes(name: str, tmp_path: Path) -> None:
    _kill_and_resume(COMMANDS[name], kills=3, seed=sorted(COMMANDS).index(name), tmp_path=tmp_path)
