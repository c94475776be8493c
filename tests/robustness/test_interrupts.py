"""SIGINT / SIGTERM at random moments: no partial or temporary file, and a rerun finishes the job.

Each command runs once uninterrupted (the reference, which also gives its duration), then is
killed at seeded random times, each kill followed by a check that every file in its output is
complete and readable and no temporary file is left; finally the same command is rerun and must
produce the reference's results (``gnc train --resume`` and ``gnc reproduce`` resume). The
default suite kills `gnc margins` once; ``--runslow`` kills five commands three times each. Set
``GNC_KILL_REPORT=path.json`` to record what happened.
"""

from __future__ import annotations

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
#: Keys that legitimately differ between a run and its resumed rerun (clocks, what was reused).
IGNORED_KEY = re.compile(
    r"second|time|unix|elapsed|started|finished|written|metadata|version|platform|^ran$|^reused$"
)
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
    """Run to the end; returns (status, seconds spent in the command itself, stderr)."""
    proc = _spawn(argv)
    _wait_for_command(proc)
    seconds = _wait_for_command(proc, running=True)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, seconds, err


def _handler_installed(pid: int) -> bool:
    """Whether process ``pid`` catches SIGTERM, i.e. ``gnc.cli.main`` has started the command."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(x.split()[1], 16) for x in status.splitlines() if x.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _wait_for_command(proc: subprocess.Popen[str], *, running: bool = False) -> float:
    """Seconds until ``proc`` starts its command (SIGTERM handler installed) or exits; with
    ``running``, until the command ends (handler removed again) or the process exits."""
    start = time.monotonic()
    while proc.poll() is None and _handler_installed(proc.pid) == running:
        time.sleep(0.005)
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
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=where)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(
            a, b, rel_tol=1e-9, abs_tol=1e-12
        ), f"{where}: {a} != {b}"
    elif isinstance(a, str) and isinstance(b, str):
        assert re.sub(r"/\S*?/(ref|run)/", "/", a) == re.sub(r"/\S*?/(ref|run)/", "/", b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _without_unraisable(err: str) -> str:
    """``err`` without Python's "Exception ignored in" reports (the unraisable hook).

    A signal that lands while a third-party module is being imported can leave one of its objects
    half-built, and that object's ``__del__`` then fails at exit (seen with pyparsing's
    ``Forward``, imported by matplotlib): Python prints the traceback and ignores it. That is not
    an uncaught error of gnc; everything else on stderr is still checked.
    """
    report = (
        r"Exception ignored in: .*?\n"  # the hook's header
        r"(?:Traceback \(most recent call last\):\n(?:[ \t].*\n)*)?"  # its indented frames
        r"\S.*(?:\n|$)"  # the exception line
    )
    return re.sub(report, "", err)


def _kill_and_resume(command: Command, kills: int, seed: int, tmp_path: Path) -> None:
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    status, seconds, err = _run(command.argv(ref))
    assert status == 0, err
    expected = command.results(ref / command.target)
    rng = random.Random(seed)
    for i in range(kills):
        signum = (signal.SIGTERM, signal.SIGINT)[(seed + i) % 2]
        delay = rng.uniform(0.0, seconds)  # into the command's own work, after start-up
        proc = _spawn(command.argv(run))
        _wait_for_command(proc)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        files = _check_output(run) if (run / "out").exists() else 0
        own = _without_unraisable(err)
        assert "Traceback" not in own or "KeyboardInterrupt" in own, err
        REPORT.append(
            {
                "command": command.name,
                "signal": signal.Signals(signum).name,
                "after_start_s": round(delay, 2),
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


@pytest.mark.parametrize("name, seed", [("margins", 0)])
def test_one_kill_leaves_no_partial_file_and_rerun_completes(
    name: str, seed: int, tmp_path: Path
) -> None:
    _kill_and_resume(COMMANDS[name], kills=1, seed=seed, tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMMANDS))
def test_random_kills_leave_no_partial_file_and_rerun_completes(name: str, tmp_path: Path) -> None:
    _kill_and_resume(COMMANDS[name], kills=3, seed=sorted(COMMANDS).index(name), tmp_path=tmp_path)
