"""``gnc reproduce``: the paper's study end to end, written as a self-contained HTML report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gnc.study import reproduce, section_names

__all__ = ["register", "run"]

#: Profiles offered on the command line (``tiny`` exists for the tests only).
CLI_PROFILES = ("quick", "paper", "paper-short")


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` subcommand."""
    parser = subparsers.add_parser(
        "reproduce",
        help="reproduce the paper's study end to end (HTML report)",
        description=(
            "Run the report sections (codes, softmax vs Tammes, UFM sweep, training curves, "
            "heads, assignment problem, pretrained heads) and write report.html, results.json "
            "and figures/*.png into --out. Finished sections are reused unless --force; a "
            "missing data source or package skips its section with a notice; exit status 1 "
            "if any section failed."
        ),
    )
    parser.add_argument(
        "--profile",
        default="quick",
        choices=(*CLI_PROFILES, "tiny"),
        help="quick: CPU minutes on embedded data; paper: the paper's sizes (GPU, data present); "
        "paper-short: its training and heads sections with ResNet18, 60 epochs (~5 GPU minutes)",
    )
    parser.add_argument("--out", default="runs/reproduce", help="output folder")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SECTION",
        choices=section_names(),
        help=f"compute only these sections ({', '.join(section_names())})",
    )
    parser.add_argument("--force", action="store_true", help="recompute stored sections")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sections; 1 if any failed, else 0."""
    res = reproduce(
        args.profile, args.out, only=args.only, force=args.force, progress=not args.no_progress
    )
    if args.json:
        payload = json.loads(res.results.read_text())
        payload.pop("sections", None)
        payload["report"] = str(res.report)
        print(json.dumps(payload, indent=2))
    else:
        for s in res.sections:
            tag = "reused" if s.name in res.reused else s.status
            print(f"{s.name:<11} {tag:<8} {s.seconds:7.1f} s  {s.title}")
        print(f"report: {res.report}")
    for name in res.failed:
        print(f"gnc reproduce: section {name!r} failed (see the report)", file=sys.stderr)
    return 1 if res.failed else 0
