"""Searches for codes in parallel worker processes: independent restart streams, best one wins.

A search under a time limit is a stream of independent restarts, and its success is a matter of
how many basins it samples in the time (measured: the best-known 85-point Tammes code on ``S^2``
lies in the basin of about one start in 50-100, and one start takes ~0.6 s of CPU). ``w`` workers
sample ``w`` times as many: worker 0 is the search itself, in this process and with the caller's
seed (so one worker is exactly the serial search), and workers ``1..w-1`` are fresh Python
processes (``python -m gnc.codes.parallel``), each with a seed of its own
(``derive_seed(seed, WORKER_STREAM, i)``) and without the start codes, ``init`` and lattice-slice
cuts, which worker 0 already tries. Every process runs torch on one thread. A worker that
reaches the stop value (``target`` or the bound) creates a stop file and the others stop at
their next check (when worker 0 reaches it, the others are killed at once); the code with the
best objective is returned, with the restarts and iterations of the workers that finished
summed.

Processes rather than threads: the search is a long chain of small NumPy, SciPy (HiGHS) and torch
calls that hold the GIL between them. Fresh interpreters rather than ``multiprocessing``: a
forked torch may hang on its thread pools, and ``spawn`` re-imports the caller's main module
(a script without an ``if __name__ == "__main__"`` guard would start the search again in every
worker). Each takes 1-3 s to import gnc, which counts against a wall-clock limit.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from gnc._runtime import derive_seed
from gnc.codes import softmax as _softmax
from gnc.codes.result import CodeResult
from gnc.io import atomic_write_bytes

__all__ = ["WORKER_STREAM", "default_workers", "search_in_workers"]

#: Part of the seed stream of workers ``1..w-1`` (worker 0 keeps the caller's seed).
WORKER_STREAM = 52711

#: Workers of ``gnc code`` by default: every usable core, at most this many.
MAX_DEFAULT_WORKERS = 8

#: A worker left with less than this many seconds of a wall-clock limit does not search.
MIN_WORKER_SECONDS = 1.0

#: Seconds a worker may take past the deadline (its last polish step and certification)
#: before it is killed.
GRACE_SECONDS = 120.0


def default_workers() -> int:
    """The usable cores of this process (its CPU affinity), at most ``MAX_DEFAULT_WORKERS``.

    Example:
        >>> 1 <= default_workers() <= MAX_DEFAULT_WORKERS
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


class StopFile:
    """A stop signal shared by processes: set once the file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def is_set(self) -> bool:
        return self.path.exists()

    def set(self) -> None:
        self.path.touch()


def _objective(res: CodeResult) -> float:
    """What the search maximizes: the certified ``rho``, or minus the max cosine (Tammes)."""
    return res.rho if res.kind == "softmax" else -res.max_cosine


@contextmanager
def _one_thread_and_stop(stop: StopFile) -> Iterator[None]:
    """Run this process's search on one thread, stopped by (and setting) ``stop``.

    One thread for torch and for the BLAS of NumPy and SciPy too (measured: with OpenBLAS's
    two threads in each of two searches on two cores, each search ran ~10x slower).
    """
    threads, before = torch.get_num_threads(), _softmax._EXTERNAL_STOP
    torch.set_num_threads(1)
    _softmax._EXTERNAL_STOP = stop
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
        _softmax._EXTERNAL_STOP = before


def _worker_main(job: Path, out: Path, stop: Path, deadline: float | None) -> None:
    """One worker process: the search of ``job`` (pickled arguments) into ``out`` (pickled)."""
    kwargs = pickle.loads(job.read_bytes())
    result = None
    left = None if deadline is None else deadline - time.time()
    if left is None or left >= MIN_WORKER_SECONDS:
        if left is not None:
            kwargs["time_limit"] = left
        with _one_thread_and_stop(StopFile(stop)):
            result = _softmax.solve_code(**kwargs)
    atomic_write_bytes(out, pickle.dumps(result))  # the parent never reads half a result


def _spawn(job: Path, out: Path, stop: Path, deadline: float | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[2])  # gnc importable as in this process
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "gnc.codes.parallel", str(job), str(out), str(stop)]
    cmd.append("none" if deadline is None else repr(deadline))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def search_in_workers(kwargs: dict[str, Any], workers: int) -> CodeResult:
    """Run :func:`gnc.codes.softmax.solve_code` ``(**kwargs)`` in ``workers`` processes.

    ``kwargs`` are the search's arguments (``time_limit`` set, ``restarts`` None); see the module
    docstring for how the workers split the work. Returns the best worker's record, with
    ``restarts`` and ``iterations`` summed over the workers that finished and ``seconds`` the
    wall time of the whole search.

    Raises:
        RuntimeError: If a worker process fails (its error output is quoted).
    """
    wall_start = time.perf_counter()
    limit = float(kwargs["time_limit"])
    wall = kwargs.get("clock", "wall") == "wall"
    deadline = time.time() + limit if wall else None
    child = {**kwargs, "workers": 1, "progress": False, "init": None}
    child.update(start_codes=(), lattice_starts=False)
    with tempfile.TemporaryDirectory(prefix="gnc-workers-") as tmp:
        folder = Path(tmp)
        stop = folder / "stop"
        procs = []
        try:
            for i in range(1, workers):
                job, out = folder / f"job{i}.pkl", folder / f"out{i}.pkl"
                seed = derive_seed(int(kwargs["seed"]), WORKER_STREAM, i)
                job.write_bytes(pickle.dumps({**child, "seed": seed}))
                procs.append((_spawn(job, out, stop, deadline), out))
            with _one_thread_and_stop(StopFile(stop)):
                results = [_softmax.solve_code(**{**kwargs, "workers": 1})]
            # CPU-clock workers may start late: they get the parent's elapsed time on top.
            wait = GRACE_SECONDS + (0.0 if wall else limit + time.perf_counter() - wall_start)
            # Worker 0 at the stop value: the others are killed (below) rather than awaited,
            # as they may still be importing.
            reached = results[0].stop_reason in _softmax.GOAL_REASONS
            for proc, out in [] if reached else procs:
                _, err = proc.communicate(timeout=wait)
                if proc.returncode != 0:
                    tail = err.decode(errors="replace").strip()[-2000:]
                    raise RuntimeError(
                        f"A code-search worker failed (exit code {proc.returncode}):\n{tail}"
                    )
                res = pickle.loads(out.read_bytes())
                if res is not None:
                    results.append(res)
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                if proc.stderr is not None:
                    proc.stderr.close()  # unread when the worker was killed
    best = max(results, key=_objective)  # ties: worker 0 first
    return dataclasses.replace(
        best,
        restarts=sum(r.restarts for r in results),
        iterations=sum(r.iterations for r in results),
        seconds=time.perf_counter() - wall_start,
    )


if __name__ == "__main__":
    _job, _out, _stop, _deadline = sys.argv[1:5]
    _worker_main(
        Path(_job), Path(_out), Path(_stop), None if _deadline == "none" else float(_deadline)
    )
