"""``gnc ufm``: solve the spherical unconstrained feature model over a list of temperatures.

Prints, per temperature, GNC1, GNC2 = rho(W) (exact), GNC3, the loss, the alignment of the class
features with the max-margin directions, and the softmax-code value for ``(K, d)`` it should
approach as ``tau -> 0``. With ``--out DIR`` it writes ``config.json``, ``metrics.jsonl`` (the
metric trajectories), ``results.json``, ``solutions.npz`` and ``plots/*.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int, check_positive
from gnc._runtime import make_generator
from gnc.cli._common import (
    add_device_argument,
    add_progress_argument,
    atomic_save_npz,
    atomic_write_text,
    device_from,
    dump_json,
    run_metadata,
    show_progress,
)
from gnc.report.figures import save_figure
from gnc.report.plots_ufm import plot_rho_vs_tau, plot_ufm_trajectory
from gnc.ufm import SweepResult, temperature_sweep

__all__ = ["register", "run"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def register(subparsers: Any) -> None:
    """Add the ``ufm`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "ufm",
        help="spherical unconstrained feature model: rho(W) against the temperature",
        description=(
            "Minimize the cross-entropy of the unconstrained feature model with classifier and "
            "features on the unit sphere (Riemannian gradient descent), for each temperature "
            "(largest first, warm-started), and compare rho(W) with the softmax-code value."
        ),
    )
    parser.add_argument("--classes", type=int, required=True, help="number of classes K (>= 2)")
    parser.add_argument("--dim", type=int, required=True, help="feature dimension d (>= 1)")
    parser.add_argument("--samples", type=int, default=1, help="features per class n (default 1)")
    parser.add_argument(
        "--tau",
        type=float,
        action="append",
        default=None,
        help="temperature (> 0); repeat for a sweep (default 0.1)",
    )
    parser.add_argument("--steps", type=int, default=5000, help="max steps per tau (default 5000)")
    parser.add_argument(
        "--tol", type=float, default=1e-9, help="Riemannian gradient-norm tolerance (default 1e-9)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--method", choices=("rgd", "adam"), default="rgd", help="optimizer")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam step size (default 1e-2)")
    parser.add_argument("--dtype", choices=tuple(_DTYPES), default="float64")
    add_device_argument(parser)
    parser.add_argument(
        "--record-every",
        type=int,
        default=None,
        help="record metrics every this many steps (default steps/50; 0: final only)",
    )
    parser.add_argument(
        "--code-value",
        type=float,
        default=None,
        help="softmax-code value to compare with (default: closed form or numerical solve)",
    )
    parser.add_argument(
        "--no-code", action="store_true", help="do not compute the softmax-code value"
    )
    parser.add_argument("--code-restarts", type=int, default=4, help="code solver restarts")
    parser.add_argument(
        "--code-time-limit", type=float, default=60.0, help="code solver time limit in seconds"
    )
    parser.add_argument(
        "--no-warm-start", action="store_true", help="start every tau from a random point"
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="random starts per tau; the lowest objective is kept (default 1)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="run folder to write")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> dict[str, Any]:
    K = check_int("--classes", args.classes, minimum=2)
    d = check_int("--dim", args.dim, minimum=1)
    n = check_int("--samples", args.samples, minimum=1)
    steps = check_int("--steps", args.steps, minimum=1)
    taus = [check_positive("--tau", t) for t in (args.tau or [0.1])]
    tol = check_positive("--tol", args.tol)
    record_every = args.record_every
    if record_every is None:
        record_every = max(1, steps // 50)
    record_every = check_int("--record-every", record_every, minimum=0)
    if args.code_value is not None:
        check_positive("--code-value", args.code_value)
    restarts = check_int("--restarts", args.restarts, minimum=1)
    check_int("--code-restarts", args.code_restarts, minimum=1)
    check_positive("--code-time-limit", args.code_time_limit)
    if args.method == "adam":
        check_positive("--lr", args.lr)
    if args.threads is not None:
        check_int("--threads", args.threads, minimum=1)
    device = str(device_from(args))
    return {
        "classes": K,
        "dim": d,
        "samples": n,
        "taus": taus,
        "steps": steps,
        "tol": tol,
        "seed": int(args.seed),
        "method": args.method,
        "lr": float(args.lr),
        "dtype": args.dtype,
        "device": device,
        "record_every": record_every,
        "code_value": args.code_value,
        "solve_code": not args.no_code,
        "code_restarts": int(args.code_restarts),
        "code_time_limit": float(args.code_time_limit),
        "warm_start": not args.no_warm_start,
        "restarts": restarts,
    }


def _rows(sweep: SweepResult, config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for point in sweep.points:
        row = point.to_dict()
        row.update(
            classes=config["classes"],
            feature_dim=config["dim"],
            samples=config["samples"],
            code_source=sweep.code_source,
        )
        rows.append(row)
    return rows


def _write_run(
    out: Path,
    config: dict[str, Any],
    sweep: SweepResult,
    rows: list[dict[str, Any]],
    started: float,
) -> None:
    atomic_write_text(out / "config.json", dump_json(config) + "\n")
    lines = []
    for res in sweep.results:
        for record in res.trajectory:
            lines.append(dump_json({"tau": res.tau, **record.to_dict()}, indent=None))
    atomic_write_text(out / "metrics.jsonl", "".join(line + "\n" for line in lines))
    results = {
        "points": rows,
        "code_value": sweep.code_value,
        "code_source": sweep.code_source,
        "rho_star_upper": sweep.rho_star_upper,
        "metadata": run_metadata(config["seed"], started),
    }
    atomic_write_text(out / "results.json", dump_json(results) + "\n")
    arrays: dict[str, np.ndarray] = {}
    for i, res in enumerate(sweep.results):
        arrays[f"weights_{i}"] = res.weights.detach().cpu().numpy()
        arrays[f"features_{i}"] = res.features.detach().cpu().numpy()
        arrays[f"labels_{i}"] = res.labels.detach().cpu().numpy()
    arrays["taus"] = np.array([res.tau for res in sweep.results])
    atomic_save_npz(out / "solutions.npz", **arrays)

    plots = out / "plots"
    K, d = config["classes"], config["dim"]
    for i, res in enumerate(sweep.results):
        if not res.trajectory:
            continue
        traj = [r.to_dict() for r in res.trajectory]
        fig, _ = plot_ufm_trajectory(traj, title=f"UFM K={K}, d={d}, tau={res.tau:.4g}")
        save_figure(fig, plots / f"metrics_{i:02d}_tau{res.tau:.4g}.png", dpi=120)
    fig, _ = plot_rho_vs_tau(
        rows,
        code_value=sweep.code_value,
        rho_star_upper=sweep.rho_star_upper,
        title=f"UFM rho(W) against tau, K={K}, d={d}",
    )
    save_figure(fig, plots / "rho_vs_tau.png", dpi=120)


def run(args: argparse.Namespace) -> int:
    """Run the ``ufm`` subcommand; returns the exit status."""
    config = _validate(args)
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    started = time.time()
    generator = make_generator(config["seed"], device=config["device"])
    sweep = temperature_sweep(
        config["classes"],
        config["dim"],
        config["taus"],
        config["samples"],
        warm_start=config["warm_start"],
        restarts=config["restarts"],
        max_steps=config["steps"],
        tol=config["tol"],
        method=config["method"],
        record_every=config["record_every"],
        code_value=config["code_value"],
        solve_code=config["solve_code"],
        code_restarts=config["code_restarts"],
        code_time_limit=config["code_time_limit"],
        dtype=_DTYPES[config["dtype"]],
        device=config["device"],
        generator=generator,
        progress=show_progress(args),
    )
    rows = _rows(sweep, config)
    if args.out is not None:
        _write_run(args.out, config, sweep, rows, started)
    if args.json:
        print(dump_json(rows[0] if len(rows) == 1 else rows))
    else:
        _print_table(rows, sweep)
    return 0


def _print_table(rows: list[dict[str, Any]], sweep: SweepResult) -> None:
    code = "n/a" if sweep.code_value is None else f"{sweep.code_value:.6f}"
    upper = f"{sweep.rho_star_upper:.6f}"
    print(
        f"UFM K={sweep.num_classes} d={sweep.feature_dim}: softmax code value {code} "
        f"({sweep.code_source}), upper bound {upper}"
    )
    header = ("tau", "rho(W)", "rho/code", "GNC1", "GNC3", "align", "loss", "steps", "stop", "sec")
    print("  ".join(f"{h:>10}" for h in header))
    for r in rows:
        cells = (
            f"{r['tau']:.4g}",
            f"{r['gnc2']:.6f}",
            "n/a" if r["ratio"] is None else f"{r['ratio']:.4f}",
            f"{r['gnc1']:.2e}",
            f"{r['gnc3']:.2e}",
            f"{r['alignment']:.6f}",
            f"{r['loss']:.3e}",
            str(r["steps"]),
            str(r["stop_reason"]),
            f"{r['seconds']:.2f}",
        )
        print("  ".join(f"{c:>10}" for c in cells))
    sys.stdout.flush()
