"""The ``gnc`` command line: subcommands that only compose library calls.

Each subcommand lives in its own module ``gnc.cli.<name>`` exposing
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable
``(args) -> int``. User errors (``ValueError`` and its subclasses such as
:class:`gnc.readers.FileFormatError`, ``FileNotFoundError``, :class:`UserError`, a busy output
folder) become a one-line message on stderr and exit status 2; anything else is a bug and keeps
its traceback (exit status 1). SIGINT and SIGTERM raise an exception in the running command, so
its clean-up runs (temporary files removed, no partial output), and exit with 130 / 143.
Commands that write a run folder (``--out``) hold a lock on it for the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from gnc.io import OutputInUseError, lock_output

__all__ = ["SUBCOMMANDS", "Interrupted", "UserError", "build_parser", "main"]

#: Subcommand modules, in the order shown by ``gnc --help``.
SUBCOMMANDS: tuple[str, ...] = (
    "reproduce",
    "margins",
    "code",
    "measure",
    "ufm",
    "train",
    "head",
    "features",
    "lm",
    "demo",
)

#: Subcommands whose ``--out`` is a run folder (locked while they run); ``gnc code --out`` is a
#: single file, written atomically.
_OUT_FOLDERS = frozenset({"reproduce", "ufm", "train", "head", "features", "lm", "demo"})


class UserError(Exception):
    """An error in what the user asked for; reported in one line with exit status 2."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received; ``signum`` says which (a ``KeyboardInterrupt``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="gnc",
        description="Generalized neural collapse: softmax codes, exact margins, GNC metrics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"gnc.cli.{name}")
        module.register(sub)
    return parser


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _output_lock(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """The lock on the run folder; under ``torchrun`` only rank 0 takes it (ranks share it)."""
    out = getattr(args, "out", None)
    if args.command in _OUT_FOLDERS and out is not None and os.environ.get("RANK", "0") == "0":
        return lock_output(Path(out))
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gnc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _signals_raise(), _output_lock(args):
            status = int(args.func(args))
    except (UserError, ValueError, FileNotFoundError, OutputInUseError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"gnc {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"gnc {args.command}: interrupted ({name})", file=sys.stderr)
        return 128 + int(signum)
    except BrokenPipeError:
        # The reader of stdout left (``gnc head --json | head``): no traceback, and none at exit
        # when Python flushes the closed pipe again (stdout goes to devnull).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # SIGPIPE (not defined on Windows)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
