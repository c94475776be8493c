"""``gnc code --classes K --dim D``: a certified softmax (or Tammes) code for ``(K, d)``."""

from __future__ import annotations

import argparse
from typing import Any

from gnc.cli._common import (
    add_progress_argument,
    device_from,
    dump_json,
    int_at_least,
    positive_float,
    show_progress,
)
from gnc.codes import best_known, softmax_code, tammes_code
from gnc.codes.parallel import default_workers
from gnc.io import save_array

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``code`` subcommand."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "code",
        help="compute a certified softmax code (or Tammes code) of K unit vectors in R^d",
        description=(
            "Softmax code: K unit vectors maximizing rho = min_k dist(w_k, conv{w_j: j != k}); "
            "closed forms where known, else the best code of gnc's shipped catalogue (polished) "
            "against random restarts of an annealed surrogate + SLP polishing. The "
            "reported min_distance is the exact, certified rho; upper_bound bounds the best rho."
        ),
    )
    p.add_argument("--classes", type=int_at_least(2), required=True, help="number of classes K")
    p.add_argument("--dim", type=int_at_least(1), required=True, help="feature dimension d")
    p.add_argument("--kind", choices=("softmax", "tammes"), default="softmax")
    p.add_argument(
        "--restarts",
        type=int_at_least(1),
        default=None,
        help="random starts (default: 4, and more while --time-limit lasts)",
    )
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the starts (0)")
    p.add_argument(
        "--time-limit", type=positive_float, default=None, help="seconds of optimization"
    )
    p.add_argument(
        "--polish-seconds", type=positive_float, default=60.0, help="polishing budget (60)"
    )
    p.add_argument(
        "--steps",
        type=int_at_least(1),
        nargs=2,
        default=None,
        metavar=("E", "A"),
        help="energy and annealing steps per restart",
    )
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        default=None,
        help=(
            "processes searching at once under --time-limit, each with restarts of its own "
            "(default: the usable cores, at most 8; 1 without --time-limit)"
        ),
    )
    p.add_argument("--device", default=None, help="torch device (cpu by default)")
    p.add_argument(
        "--no-catalogue",
        action="store_true",
        help="do not start from gnc's catalogue of best-known codes (random starts only)",
    )
    p.add_argument(
        "--no-lattice-starts",
        action="store_true",
        help="do not start from cuts of the E8 and Leech lattice slices (random starts only)",
    )
    p.add_argument("--out", default=None, metavar="FILE.npy", help="write the K x d code")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_progress_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``gnc code``."""
    solver = softmax_code if args.kind == "softmax" else tammes_code
    workers = args.workers or (default_workers() if args.time_limit is not None else 1)
    starts = []
    if not args.no_catalogue and args.dim >= 2:
        entry = best_known(args.classes, args.dim, kind=args.kind)
        if entry is not None and entry.source != "closed-form":
            starts.append(entry.code)
    res = solver(
        args.classes,
        args.dim,
        restarts=args.restarts,
        seed=args.seed,
        time_limit=args.time_limit,
        device=None if args.device is None else device_from(args),
        progress=show_progress(args),
        steps=tuple(args.steps) if args.steps is not None else None,
        polish_seconds=args.polish_seconds,
        start_codes=starts,
        lattice_starts=not args.no_lattice_starts,
        workers=workers,
    )
    if args.out is not None:
        save_array(args.out, res.code.detach().cpu())
    record = {
        "num_classes": res.num_classes,
        "dim": res.feature_dim,
        "kind": res.kind,
        "min_distance": res.rho,
        "min_distance_lower_bound": res.lower,
        "gap": res.gap,
        "certified": res.certified,
        "min_pairwise_distance": res.min_pairwise_distance,
        "max_cosine": res.max_cosine,
        "upper_bound": res.rho_star_upper,
        "pairwise_upper_bound": res.min_distance_upper,
        "method": res.method,
        "stop_reason": res.stop_reason,
        "restarts": res.restarts,
        "iterations": res.iterations,
        "seconds": res.seconds,
        "seed": args.seed,
        "workers": workers,
        "out": args.out,
    }
    if args.json:
        print(dump_json(record))
    else:
        print(
            f"{res.kind} code K={res.num_classes} d={res.feature_dim}: rho = {res.rho:.10f} "
            f"(certified={res.certified}, upper bound {res.rho_star_upper:.6f}), "
            f"min pairwise distance {res.min_pairwise_distance:.6f}, method {res.method}, "
            f"{res.seconds:.1f} s"
        )
    return 0
