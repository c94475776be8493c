"""``gnc train``: train a deep classifier and record GNC metrics per epoch.

Example::

    gnc train --config configs/cjk_tau7.toml --out runs/cjk_tau7
    gnc train --config configs/tiny.toml --set head.kind=cmf --set head.beta=0.1 --out /tmp/r
    torchrun --nproc-per-node 4 --no-python gnc train \
        --config configs/cifar100_resnet18.toml --out runs/c100
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch.distributed as dist

from gnc.cli._common import dump_json
from gnc.metrics.distributed import leave_process_group
from gnc.report.plots_train import save_training_plots
from gnc.train import TrainResult, init_distributed_from_env, load_config, train

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
    config = load_config(args.config, args.overrides)
    out = Path(args.out)
    if (out / "checkpoint.pt").exists() and not args.resume:
        raise ValueError(
            f"Expected an empty --out folder, but {out} already holds a checkpoint; "
            "pass --resume to continue it or choose another folder."
        )
    distributed = init_distributed_from_env()
    ok = False
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress)
        if not distributed or dist.get_rank() == 0:
            _save_plots(result, out)
        ok = True
    finally:
        if distributed:
            leave_process_group(ok)
    summary = {
        "name": config.name,
        "out": str(out),
        "epochs_completed": result.epochs_completed,
        "resumed_from_epoch": result.resumed_from_epoch,
        "seconds": result.seconds,
        "gnc2_softmax_code": result.code_value,
        "final": None if result.final is None else result.final.to_dict(),
    }
    if args.json:
        print(dump_json(summary))
    else:
        print(f"{config.name}: {result.epochs_completed} epochs in {result.seconds:.1f}s -> "
              f"{_final_line(result)}; wrote {out}")  # fmt: skip
    return 0


def _save_plots(result: TrainResult, out: Path) -> None:
    """``out/plots/*.png`` of a finished run's history (when ``config.plots``)."""
    if result.finished and result.history and result.config.plots:
        history = [row.to_dict() for row in result.history]
        save_training_plots(history, out / "plots", code_value=result.code_value)


def _final_line(result: TrainResult) -> str:
    f = result.final
    if f is None:
        return "no epoch evaluated"
    code = f" (code {result.code_value:.4f})" if result.code_value else ""
    return (
        f"test acc {f.test_accuracy:.4f}, GNC1 {f.gnc1:.3g}, GNC2 {_num(f.gnc2, '.4f')}{code}, "
        f"GNC3 {_num(f.gnc3, '.3g')}"
    )


def _num(value: float | None, spec: str) -> str:
    return "nan" if value is None else format(value, spec)
