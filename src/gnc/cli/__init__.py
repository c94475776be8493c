"""The ``gnc`` command line: subcommands that only compose library calls.

Each subcommand lives in its own module ``gnc.cli.<name>`` exposing
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable
``(args) -> int``. User errors (``ValueError``, ``TypeError``, ``FileNotFoundError``)
become a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

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


class UserError(Exception):
    """An error in what the user asked for; reported in one line with exit status 2."""


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gnc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args))
    except (UserError, ValueError, TypeError, FileNotFoundError, KeyError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"gnc {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gnc {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
