"""Helpers shared by subcommands: argument types and options, JSON output, atomic writes.

The writers come from :mod:`gnc.io`; the options here are the ones several subcommands offer
(``--max-memory-mib``, ``--device``, ``--no-progress``), so they parse and read the same way.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import torch

from gnc._runtime import resolve_device
from gnc.io import (
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    run_metadata,
    to_jsonable,
)

__all__ = [
    "add_device_argument",
    "add_memory_argument",
    "add_progress_argument",
    "atomic_save_npz",
    "atomic_write_bytes",
    "atomic_write_text",
    "device_from",
    "dump_json",
    "int_at_least",
    "memory_from",
    "positive_float",
    "run_metadata",
    "show_progress",
    "to_jsonable",
]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= minimum``.

    Example:
        >>> int_at_least(2)("3")
        3
        >>> int_at_least(2)("1")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected an integer >= 2, but got 1
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, but got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, but got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type`` accepting finite numbers ``> 0`` (not NaN).

    Example:
        >>> positive_float("0.5")
        0.5
        >>> positive_float("nan")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected a finite number > 0, but got nan
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, but got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, but got {text}")
    return value


def add_memory_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-memory-mib``: the budget of one tile (default: the working-memory setting)."""
    parser.add_argument(
        "--max-memory-mib",
        type=float,
        default=None,
        help="memory budget (MiB) of one tile (default: gnc's working memory, 1024)",
    )


def memory_from(args: argparse.Namespace) -> float | None:
    """The checked ``--max-memory-mib`` (``None``: the working-memory setting).

    Checked here rather than by argparse so that a bad value is a one-line error.
    """
    value: float | None = args.max_memory_mib
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"Expected `--max-memory-mib` to be a finite number > 0, but got {value}.")
    return value


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--device``: a torch device, or ``auto`` (CUDA when available)."""
    shown = "auto: cuda if available, else cpu" if default in (None, "auto") else default
    parser.add_argument(
        "--device", default=default, help=f"torch device such as cpu or cuda:0 (default {shown})"
    )


def device_from(args: argparse.Namespace) -> torch.device:
    """The checked device of ``--device`` (``None`` or ``auto``: CUDA when available)."""
    return resolve_device(args.device)


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bars (they are shown only on a terminal)."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars on stderr (shown only on a terminal)",
    )


def show_progress(args: argparse.Namespace, *, rank: int = 0) -> bool:
    """Whether to draw progress bars: not ``--no-progress``, stderr a terminal, rank 0."""
    return not args.no_progress and sys.stderr.isatty() and rank == 0
