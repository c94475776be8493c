"""``gnc lm``: a tiny word-level language model, GNC per epoch, normalized vs linear head.

Reads a corpus (``kjv``, ``austen``, or ``--text-file``), builds a word vocabulary of ``K``
classes, and trains one model per ``--head`` (``linear`` or ``normalized:TAU``; ``TAU`` may be
written as ``1/7``) on the same data, tracking GNC1, GNC2 = exact ``rho`` of the head, GNC3, NCC
and test perplexity per epoch (see :mod:`gnc.lm`). Prints the final numbers per head, the
upper bound on ``rho*`` for ``(K, d)`` and, with ``--reduced-code-dim``, a softmax code's ``rho``
at a reduced size with the same ``K / d``.

With ``--out DIR`` each head's run goes to ``DIR/<label>/`` (``config.json``, ``metrics.jsonl``,
``history.json``, ``results.json``, ``head.npz``, ``plots/``) and the comparison to
``DIR/summary.json`` and ``DIR/plots/compare.png``, all written atomically.

Example::

    OMP_NUM_THREADS=1 gnc lm --corpus kjv --classes 2048 --dim 32 --epochs 10
        --head linear --head normalized:0.1 --head normalized:1/7 --out /tmp/tinylm/kjv

(one command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch
from matplotlib.figure import Figure

from gnc._checks import check_int, check_positive
from gnc.cli._common import atomic_write_text, dump_json, run_metadata
from gnc.data import CORPORA, load_text
from gnc.lm import (
    LMConfig,
    LMResult,
    ReducedCode,
    prepare_lm_data,
    reduced_code_value,
    train_lm,
)
from gnc.report.figures import save_figure
from gnc.report.plots_train import plot_metric, plot_runs, save_training_plots

__all__ = ["parse_head", "register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``lm`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "lm",
        help="tiny word-level language model (K >> d): GNC per epoch, normalized vs linear head",
        description=(
            "Train a small next-word model (context MLP, feature dim d) on a word vocabulary of K "
            "classes, once per --head, and track GNC1, GNC2 = exact rho of the head, GNC3, NCC "
            "accuracy and test perplexity per epoch."
        ),
    )
    src = parser.add_argument_group("data")
    src.add_argument("--corpus", default="kjv", help="kjv | austen (default kjv)")
    src.add_argument("--text-file", type=Path, default=None, help="read this text file instead")
    src.add_argument("--max-chars", type=int, default=None, help="use the first N characters")
    src.add_argument("--classes", type=int, default=2048, help="vocabulary size K incl. <unk>")
    src.add_argument(
        "--test-fraction", type=float, default=0.1, help="held-out end of the text (default 0.1)"
    )
    model = parser.add_argument_group("model")
    model.add_argument("--context", type=int, default=8, help="previous words seen (default 8)")
    model.add_argument("--embedding-dim", type=int, default=32, help="word embedding size")
    model.add_argument("--hidden-dim", type=int, default=256, help="hidden layer width")
    model.add_argument("--dim", type=int, default=32, help="feature dimension d (default 32)")
    model.add_argument(
        "--head",
        action="append",
        default=None,
        help="linear | normalized:TAU (TAU > 0, e.g. 0.1 or 1/7); repeat to compare "
        "(default: linear and normalized:0.1)",
    )
    opt = parser.add_argument_group("training")
    opt.add_argument("--epochs", type=int, default=10)
    opt.add_argument("--batch-size", type=int, default=256)
    opt.add_argument("--lr", type=float, default=2e-3, help="Adam peak learning rate")
    opt.add_argument(
        "--train-positions",
        type=int,
        default=300_000,
        help="random training positions per epoch (0: all; default 300000)",
    )
    opt.add_argument(
        "--metric-samples",
        type=int,
        default=20_000,
        help="fixed training subsample for the GNC metrics (default 20000)",
    )
    opt.add_argument(
        "--test-positions", type=int, default=0, help="test positions evaluated (0: all)"
    )
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    opt.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ref = parser.add_argument_group("reference")
    ref.add_argument(
        "--reduced-code-dim",
        type=int,
        default=None,
        help="also solve a softmax code for (K * D / d, D), same K/d (labelled reduced)",
    )
    ref.add_argument(
        "--code-time-limit", type=float, default=30.0, help="seconds for that code (default 30)"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def parse_head(spec: str) -> tuple[Literal["linear", "normalized"], float]:
    """``"linear"`` -> ``("linear", 1.0)``; ``"normalized:TAU"`` -> ``("normalized", TAU)``.

    ``TAU`` is a positive number or a fraction ``A/B``.

    Example:
        >>> parse_head("normalized:1/8"), parse_head("linear")
        (('normalized', 0.125), ('linear', 1.0))
    """
    bad = ValueError(
        f"Expected `--head` as 'linear' or 'normalized:TAU' with TAU > 0 (e.g. 0.1 or 1/7), "
        f"but got {spec!r}."
    )
    if spec == "linear":
        return "linear", 1.0
    kind, sep, value = spec.partition(":")
    if kind != "normalized" or not sep:
        raise bad
    try:
        if "/" in value:
            num, den = value.split("/", 1)
            tau = float(num) / float(den)
        else:
            tau = float(value)
    except (ValueError, ZeroDivisionError):
        raise bad from None
    if not (tau > 0 and tau < float("inf")):
        raise bad
    return "normalized", tau


#: LMConfig field -> the flag that sets it (LMConfig's errors are re-raised with the flag).
_FLAGS = {
    "num_classes": "--classes",
    "context": "--context",
    "embedding_dim": "--embedding-dim",
    "hidden_dim": "--hidden-dim",
    "feature_dim": "--dim",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "metric_samples": "--metric-samples",
    "test_fraction": "--test-fraction",
    "max_chars": "--max-chars",
    "seed": "--seed",
}


def _configs(args: argparse.Namespace) -> list[LMConfig]:
    # 0 means "all" for the position counts, so they are checked here, not by LMConfig.
    check_int("--train-positions", args.train_positions, minimum=0)
    check_int("--test-positions", args.test_positions, minimum=0)
    if args.threads is not None:
        check_int("--threads", args.threads, minimum=1)
    if args.reduced_code_dim is not None:
        check_int("--reduced-code-dim", args.reduced_code_dim, minimum=2)
        check_positive("--code-time-limit", args.code_time_limit)
    if args.text_file is None and args.corpus not in CORPORA:
        raise ValueError(f"Expected `--corpus` in {CORPORA}, but got {args.corpus!r}.")
    try:
        base = LMConfig(
            num_classes=args.classes,
            context=args.context,
            embedding_dim=args.embedding_dim,
            hidden_dim=args.hidden_dim,
            feature_dim=args.dim,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            train_positions=args.train_positions or None,
            metric_samples=args.metric_samples,
            test_positions=args.test_positions or None,
            test_fraction=args.test_fraction,
            corpus="text-file" if args.text_file is not None else args.corpus,
            max_chars=args.max_chars,
            seed=args.seed,
            device=args.device,
        )
    except (TypeError, ValueError) as err:
        message = str(err)
        for field, flag in _FLAGS.items():
            message = message.replace(f"`{field}`", f"`{flag}`")
        raise type(err)(message) from None
    configs = []
    for spec in args.head or ["linear", "normalized:0.1"]:
        kind, tau = parse_head(spec)
        configs.append(dataclasses.replace(base, head=kind, tau=tau))
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Expected distinct `--head` values, but got {labels}.")
    return configs


def _read_text(args: argparse.Namespace) -> tuple[str, str]:
    if args.text_file is not None:
        path = Path(args.text_file)
        if not path.is_file():
            raise FileNotFoundError(f"Expected `--text-file` to be a file, but got {str(path)!r}.")
        text = path.read_text(encoding="utf-8", errors="replace")
        if args.max_chars is not None:
            text = text[: args.max_chars]
        return text, path.name
    return load_text(args.corpus, max_chars=args.max_chars), str(args.corpus)


def run(args: argparse.Namespace) -> int:
    """Run the ``lm`` subcommand; returns the exit status."""
    configs = _configs(args)
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    started = time.time()
    text, name = _read_text(args)
    base = configs[0]
    data = prepare_lm_data(text, base.num_classes, test_fraction=base.test_fraction, name=name)
    reduced = None
    if args.reduced_code_dim is not None:
        reduced = reduced_code_value(
            base.num_classes,
            base.feature_dim,
            args.reduced_code_dim,
            time_limit=args.code_time_limit,
            seed=base.seed,
        )
    out: Path | None = args.out
    results = []
    for config in configs:
        run_dir = None if out is None else out / config.label
        result = train_lm(config, data, out_dir=run_dir, progress=not args.no_progress)
        if run_dir is not None:
            _run_plots(run_dir / "plots", result)
        results.append(result)
    summary: dict[str, Any] = {
        "corpus": name,
        "num_classes": base.num_classes,
        "feature_dim": base.feature_dim,
        "rho_star_upper": results[0].rho_star_upper,
        "reduced_code": None if reduced is None else reduced.to_dict(),
        "runs": [{**r.to_dict(), "history": [h.to_dict() for h in r.history]} for r in results],
        "metadata": run_metadata(base.seed, started),
    }
    if out is not None:
        atomic_write_text(out / "summary.json", dump_json(summary) + "\n")
        _compare_plot(out / "plots" / "compare.png", results, reduced)
    if args.json:
        print(dump_json(summary))
    else:
        _print_table(summary)
    return 0


def _run_plots(folder: Path, result: LMResult) -> None:
    """One run's training plots and its test perplexity."""
    history = [row.to_dict() for row in result.history]
    save_training_plots(history, folder)
    fig, _ = plot_metric(history, "test_perplexity", log=True, title="test perplexity")
    save_figure(fig, folder / "perplexity.png", dpi=110)


def _compare_plot(path: Path, results: list[LMResult], reduced: ReducedCode | None) -> None:
    runs = {r.config.label: [h.to_dict() for h in r.history] for r in results}
    keys = ("gnc1", "gnc2", "gnc2_median_distance", "gnc3", "test_accuracy", "test_perplexity")
    fig = Figure(figsize=(13.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 3).flatten()
    for ax, key in zip(axes, keys, strict=True):
        reference = None
        label = ""
        if key == "gnc2" and reduced is not None:
            reference = reduced.rho
            label = f"softmax code, reduced ({reduced.classes}, {reduced.dim})"
        values = [h.get(key) for hist in runs.values() for h in hist]
        positive = all(v is not None and v > 0 for v in values)
        log = positive and key in ("gnc1", "gnc3", "test_perplexity")
        plot_runs(runs, key, ax, log=log, reference=reference, reference_label=label)
    save_figure(fig, path, dpi=110)


def _print_table(summary: dict[str, Any]) -> None:
    ub = summary["rho_star_upper"]
    print(
        f"gnc lm on {summary['corpus']}: K={summary['num_classes']} d={summary['feature_dim']}, "
        f"upper bound on rho* {'n/a' if ub is None else f'{ub:.4f}'}"
    )
    red = summary["reduced_code"]
    if red is not None:
        print(
            f"softmax code at reduced (K, d) = ({red['classes']}, {red['dim']}), same K/d: "
            f"rho {red['rho']:.4f}"
        )
    header = ("head", "test ppl", "test acc", "GNC1", "GNC2 init", "GNC2", "med D_k", "GNC3",
              "NCC test", "argmin")  # fmt: skip
    print("  ".join(f"{h:>18}" if i == 0 else f"{h:>9}" for i, h in enumerate(header)))
    for r in summary["runs"]:
        f, first = r["final"], r["history"][0]
        cells = (
            f"{f['test_perplexity']:.2f}",
            f"{f['test_accuracy']:.4f}",
            f"{f['gnc1']:.3g}",
            f"{first['gnc2']:.4f}",
            f"{f['gnc2']:.4f}",
            f"{f['gnc2_median_distance']:.4f}",
            f"{f['gnc3']:.4f}",
            "n/a" if f["ncc_test_accuracy"] is None else f"{f['ncc_test_accuracy']:.4f}",
            str(r["argmin_word"]),
        )
        print(f"{r['label']:>18}  " + "  ".join(f"{c:>9}" for c in cells))
    sys.stdout.flush()
