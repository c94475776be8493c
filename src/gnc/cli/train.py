"""``gnc train``: train a deep classifier and record GNC metrics per epoch.

Example::

    gnc train --config configs/cjk_tau7.toml --out runs/cjk_tau7
    gnc train --config configs/tiny.toml --set head.kind=cmf --set head.beta=0.1 --out /tmp/r
    torchrun --nproc-per-node 4 --no-python gnc train \
        --config configs/cifar100_resnet18.toml --out runs/c100
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier (normalized / CMF / fixed-code head) and measure GNC per epoch",
        description=(
            "Train a deep classifier from a TOML preset (configs/*.toml) and write config.json, "
            "metrics.jsonl (GNC1/2/3, NCC and plain accuracy, loss per evaluated epoch), "
            "checkpoint.pt, results.json and plots/*.png into --out. Under torchrun "
            "(WORLD_SIZE > 1) it trains with DistributedDataParallel."
        ),
    )
    parser.add_argument("--config", help="TOML preset (default: built-in tiny synthetic run)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. head.tau=1/7 or optim.epochs=30 (repeatable)",
    )
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    from pathlib import Path

    from gnc.cli._common import dump_json
    from gnc.train.config import load_config
    from gnc.train.loop import init_distributed_from_env, train

    config = load_config(args.config, args.overrides)
    out = Path(args.out)
    if (out / "checkpoint.pt").exists() and not args.resume:
        raise ValueError(
            f"Expected an empty --out folder, but {out} already holds a checkpoint; "
            "pass --resume to continue it or choose another folder."
        )
    distributed = init_distributed_from_env()
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress)
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    summary = {
        "name": config.name,
        "out": str(out),
        "epochs_completed": result.epochs_completed,
        "resumed_from_epoch": result.resumed_from_epoch,
        "seconds": result.seconds,
        "gnc2_softmax_code": result.code_value,
        "final": result.final,
    }
    if args.json:
        print(dump_json(summary))
    else:
        f = result.final
        print(
            f"{config.name}: {result.epochs_completed} epochs in {result.seconds:.1f}s -> "
            f"test acc {f.get('test_accuracy', float('nan')):.4f}, "
            f"GNC1 {f.get('gnc1', float('nan')):.3g}, GNC2 {f.get('gnc2', float('nan')):.4f}"
            + (f" (code {result.code_value:.4f})" if result.code_value else "")
            + f", GNC3 {f.get('gnc3', float('nan')):.3g}; wrote {out}",
            file=sys.stdout,
        )
    return 0
