"""How ``gnc.cli.main`` reports errors, signals and busy output folders (issues #13 and #17)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import gnc.cli.margins
import gnc.cli.ufm
from gnc.cli import main
from gnc.io import atomic_write, lock_output
from helpers.file_formats import run_cli


def _raising(exc: BaseException) -> object:
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


@pytest.mark.parametrize("exc", [TypeError("bug"), KeyError("bug"), AttributeError("bug")])
def test_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    monkeypatch.setattr(gnc.cli.margins, "run", _raising(exc))
    with pytest.raises(type(exc), match="bug"):
        main(["margins", "w.npy"])


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad value\nsecond line"), FileNotFoundError("no file"), gnc.cli.UserError("u")],
)
def test_user_errors_are_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gnc.cli.margins, "run", _raising(exc))
    assert main(["margins", "w.npy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnc margins: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_unwind_and_leave_no_temporary_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signum: int, status: int
) -> None:
    target = tmp_path / "out" / "results.json"

    def writer(fh: object) -> None:
        fh.write(b"{partial")  # type: ignore[attr-defined]
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
        fh.write(b"}")  # type: ignore[attr-defined]

    def run(args: argparse.Namespace) -> int:
        atomic_write(target, writer)
        return 0

    monkeypatch.setattr(gnc.cli.ufm, "run", run)
    before = signal.getsignal(signal.SIGTERM)
    outcome = run_cli(["ufm", "--classes", "3", "--dim", "2", "--out", str(tmp_path / "out")])
    assert outcome.status == status and "interrupted" in outcome.stderr
    assert not (tmp_path / "out").exists()  # no partial file, no temporary, no empty run folder
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored after main


def test_busy_output_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with lock_output(out):
        outcome = run_cli(["ufm", "--classes", "3", "--dim", "2", "--out", str(out)])
    assert outcome.status == 2 and outcome.clean
    assert f"another gnc run is writing to {out} (pid {os.getpid()})" in outcome.stderr


def test_paths_in_the_way_are_user_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.eye(3))
    for argv in (
        ["reproduce", "--profile", "tiny", "--only", "ufm", "--out", str(tmp_path / "w.npy")],
        ["code", "--classes", "4", "--dim", "2", "--out", str(tmp_path)],
        ["code", "--classes", "4", "--dim", "2", "--device", "gpu0"],
    ):
        outcome = run_cli(argv)
        assert outcome.status == 2 and outcome.clean, outcome.stderr


def test_torchrun_ranks_share_the_folder_only_rank_0_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    monkeypatch.setattr(gnc.cli.ufm, "run", lambda args: 0)
    monkeypatch.setenv("RANK", "1")
    with lock_output(out):  # rank 0 holds it
        assert run_cli(["ufm", "--classes", "3", "--dim", "2", "--out", str(out)]).status == 0
    monkeypatch.setenv("RANK", "0")
    with lock_output(out):
        assert run_cli(["ufm", "--classes", "3", "--dim", "2", "--out", str(out)]).status == 2


def test_closed_stdout_exits_quietly(tmp_path: Path) -> None:
    """``gnc margins ... --json | head -c 0``: the reader is gone before the JSON is printed."""
    import subprocess
    import sys

    path = tmp_path / "w.npy"
    np.save(path, np.eye(3))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "gnc", "margins", str(path), "--json", "--no-progress"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # long before the command has imported torch and solved anything
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=120)
    assert status == 128 + 13, err  # 128 + SIGPIPE, as a shell reports it
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
