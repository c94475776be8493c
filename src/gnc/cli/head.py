"""``gnc head``: exact GNC2 and unargmaxable tokens of a real classifier head (K >> d).

Loads a head with :func:`gnc.pretrained.load_head`: a packaged name (``smollm2``, ``whisper``,
``ocr``, ``gemma3``), a GGUF file of any architecture, a Hugging Face folder, an ONNX file or a
``K x d`` matrix file. On the normalized rows it prints the exact ``rho`` (GNC2) with its argmin
decoded, the rows that coincide (dead classes), the exact ``rho`` after merging them, every class's
``D_k`` when that fits ``--time-budget`` (else a sample), the max cosine, and reference values
(upper bound for ``(K, d)``, random unit rows of the same shape, a softmax code at a reduced
``(K', d')``). On the raw rows and bias it decides, with certificates, which tokens can never be
the argmax. ``--per-class FILE`` writes one row per class (CSV or TSV); ``--out DIR`` writes
``config.json``, ``results.json``, ``distances.npz`` and ``plots/*.png`` atomically.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int, check_positive
from gnc._runtime import resolve_device
from gnc.analysis.head_geometry import HeadGeometry, HeadGeometryConfig, analyze_head_geometry
from gnc.cli._common import (
    atomic_save_npz,
    atomic_write_text,
    dump_json,
    run_metadata,
)
from gnc.geometry.pairwise import nearest_neighbors
from gnc.pretrained import Head, load_head
from gnc.report.figures import save_figure
from gnc.report.plots_heads import plot_distance_histogram

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``head`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "head",
        help="exact GNC2 and unargmaxable tokens of a K >> d head (packaged, GGUF, HF, ONNX)",
        description=(
            "Exact rho = GNC2 of the normalized rows of a real classifier head, with its argmin "
            "decoded, coinciding (dead) classes, every D_k when it fits the time budget, the "
            "tokens that can never be the argmax (raw rows and bias, certified), and reference "
            "values (upper bound, random rows, a softmax code)."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help=(
            "smollm2 | whisper | ocr | gemma3 | a .gguf file | a Hugging Face folder | an .onnx "
            "file | a K x d .npy/.npz/.pt/.safetensors file"
        ),
    )
    parser.add_argument(
        "--key", default=None, help="tensor / initializer / array name to read as the head"
    )
    parser.add_argument(
        "--sample-classes",
        default="auto",
        help=(
            "classes whose D_k form the quantiles and the histogram: auto (all: exact when "
            "estimated to fit --time-budget, else certified brackets [lower, upper] of every "
            "class when those fit it, else an exact sample of 1024), all (exact), brackets "
            "(certified brackets of every class, whatever the budget), or a number (exact on a "
            "random sample)"
        ),
    )
    parser.add_argument(
        "--bracket-rounds",
        type=int,
        default=2,
        help="working-set rounds of the all-classes D_k brackets (default 2)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=300.0,
        help="seconds all classes' D_k may take for --sample-classes auto (default 300)",
    )
    parser.add_argument(
        "--per-class",
        type=Path,
        default=None,
        help="write id, token, argmax status, D_k raw, D_k normalized, nearest rows (.csv/.tsv)",
    )
    parser.add_argument(
        "--no-argmax", action="store_true", help="skip the unargmaxable-token analysis"
    )
    parser.add_argument(
        "--duplicate-tolerance",
        type=float,
        default=1e-9,
        help="rows with 1 - cos <= this count as one direction (default 1e-9)",
    )
    parser.add_argument(
        "--random",
        choices=("auto", "full", "reduced", "off"),
        default="auto",
        help=(
            "random-rows baseline at the same (K, d) (full), only at the reduced shape, or off; "
            "auto (default): full when one pass over K random rows fits --time-budget"
        ),
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
    bars = parser.add_mutually_exclusive_group()
    bars.add_argument(
        "--no-progress", action="store_true", help="no progress bars (shown only on a terminal)"
    )
    bars.add_argument(
        "--progress",
        action="store_true",
        help="progress bars of every phase on stderr even when it is not a terminal (logs)",
    )
    parser.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> dict[str, Any]:
    sample: int | str
    if str(args.sample_classes) in ("auto", "all", "brackets"):
        sample = str(args.sample_classes)
    else:
        try:
            sample = int(args.sample_classes)
        except ValueError:
            raise ValueError(
                "Expected `--sample-classes` to be auto, all, brackets or a number, but got "
                f"{args.sample_classes!r}."
            ) from None
        check_int("--sample-classes", sample, minimum=0)
    if args.per_class is not None and args.per_class.suffix.lower() not in (".csv", ".tsv"):
        raise ValueError(
            f"Expected `--per-class` to end in .csv or .tsv, but got {str(args.per_class)!r}."
        )
    tol_dup = float(args.duplicate_tolerance)
    if not 0.0 <= tol_dup < 1.0:
        raise ValueError(f"Expected `--duplicate-tolerance` in [0, 1), but got {tol_dup}.")
    if args.threads is not None:
        check_int("--threads", args.threads, minimum=1)
    device = str(resolve_device(args.device or "cpu"))
    return {
        "source": str(args.source),
        "key": args.key,
        "sample_classes": sample,
        "time_budget": check_positive("--time-budget", args.time_budget),
        "bracket_rounds": check_int("--bracket-rounds", args.bracket_rounds, minimum=1),
        "per_class": None if args.per_class is None else str(args.per_class),
        "argmax": not args.no_argmax,
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


def _summary(geo: HeadGeometry, head: Head, config: dict[str, Any]) -> dict[str, Any]:
    """The JSON of ``gnc head``: the head's identity, then :meth:`HeadGeometry.to_dict`."""
    out = geo.to_dict()
    name = out.pop("name")
    return {
        "head": name,
        "source": config["source"],
        **out,
        "has_bias": head.bias is not None,
        "tied": head.tied,
        "provenance": dict(head.provenance),
    }


def _write_per_class(path: Path, geo: HeadGeometry, head: Head, max_memory_mib: float) -> None:
    """One row per class: id, token, argmax, D_k raw, D_k normalized and its bracket, 3 nearest."""
    K = geo.num_classes
    raw: list[float | None] = [None] * K
    normalized: list[float | None] = [None] * K
    lower: list[float | None] = [None] * K
    upper: list[float | None] = [None] * K
    rep = geo.duplicates.representative.cpu()
    for k in (rep != torch.arange(K)).nonzero(as_tuple=True)[0].tolist():
        normalized[k] = lower[k] = upper[k] = 0.0  # same direction as an earlier row
    for i, k in enumerate(geo.sample_classes.tolist()):
        normalized[k] = lower[k] = upper[k] = float(geo.sample_distances[i])
        if geo.raw_sample_distances is not None:
            raw[k] = float(geo.raw_sample_distances[i])
    br = geo.brackets
    if br is not None:
        lo, hi, gaps = br.lower_bounds.tolist(), br.distances.tolist(), br.gaps.tolist()
        for i, k in enumerate(br.classes.tolist()):
            lower[k], upper[k] = lo[i], hi[i]
            if gaps[i] <= br.tol:
                normalized[k] = hi[i]
    W = head.weights.to(torch.float64)
    W = W / W.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    m = min(3, K - 1)
    _, near = nearest_neighbors(W, m, max_memory_mib=max_memory_mib)
    names = {1: "argmaxable", 0: "unargmaxable", 2: "coinciding", -1: "undecided"}
    status = None if geo.argmax is None else geo.argmax.status.cpu().tolist()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    writer.writerow(
        [
            "id",
            "token",
            "argmax",
            "D_k_raw",
            "D_k_normalized",
            "D_k_normalized_lower",
            "D_k_normalized_upper",
            "nearest_rows",
        ]
    )

    def _num(v: float | None) -> str:
        return "" if v is None else repr(v)

    for k in range(K):
        writer.writerow(
            [
                k,
                head.decode(k),
                "" if status is None else names[int(status[k])],
                _num(raw[k]),
                _num(normalized[k]),
                _num(lower[k]),
                _num(upper[k]),
                " ".join(str(j) for j in near[k].tolist()),
            ]
        )
    atomic_write_text(path, buffer.getvalue())


def _write_run(
    out: Path, config: dict[str, Any], summary: dict[str, Any], geo: HeadGeometry, started: float
) -> None:
    atomic_write_text(out / "config.json", dump_json(config) + "\n")
    results = dict(summary)
    results["metadata"] = run_metadata(config["seed"], started)
    atomic_write_text(out / "results.json", dump_json(results) + "\n")
    br = geo.brackets
    empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    atomic_save_npz(
        out / "distances.npz",
        sample_classes=geo.sample_classes.cpu().numpy(),
        sample_distances=geo.sample_distances.cpu().numpy(),
        bracket_classes=empty_i if br is None else br.classes.cpu().numpy(),
        bracket_lower_bounds=empty_f if br is None else br.lower_bounds.cpu().numpy(),
        bracket_distances=empty_f if br is None else br.distances.cpu().numpy(),
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
    lines["upper bound rho*(K, d)"] = summary["rho_star_upper"]
    label = "D_k, " + summary["distances_sample"]["label"]
    shown = geo.sample_distances
    if br is not None:
        label = "D_k upper bound, all classes (certified bracket)"
        shown = br.distances
    title = f"{summary['head']}: K={summary['num_classes']}, d={summary['feature_dim']}"
    for log_x, name in ((False, "distances.png"), (True, "distances_log.png")):
        fig, _ = plot_distance_histogram(
            shown.cpu().numpy(),
            lower_bounds=(1.0 - geo.duplicates.max_cosines).cpu().numpy(),
            lines=lines,
            log_x=log_x,
            title=title,
            distance_label=label,
        )
        save_figure(fig, out / "plots" / name, dpi=120)


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
    da = s["distances_all"]
    if da is not None and not da["exact"]:
        qa = da["quantiles"]
        parts = ", ".join(
            f"{name} [{qa[key]['lower']:.4g}, {qa[key]['upper']:.4g}]"
            for name, key in (("min", "q00"), ("5%", "q05"), ("median", "q50"), ("max", "q100"))
        )
        print(f"  D_k ({da['label']}): {parts}")
        print(f"    ({da['exact_classes']} of {da['size']} classes exact; {da['seconds']:.1f} s)")
    if q is not None:
        print(
            f"  D_k ({ds['label']}): min {q['q00']:.4g}, 5% {q['q05']:.4g}, "
            f"median {q['q50']:.4g}, max {q['q100']:.4g}"
        )
    if ds["reason"]:
        print(f"    ({ds['reason']})")
    am = s["argmax"]
    if am is not None:
        bias = "raw rows + bias" if am["has_bias"] else "raw rows, no bias"
        cert = "certified" if am["certified"] else f"{am['undecided']} undecided"
        print(
            f"  unargmaxable tokens     {am['unargmaxable']} ({bias}; {cert}; "
            f"{am['coinciding']} rows coincide exactly and only tie)"
        )
        for item in am["examples"][:10]:
            print(
                f"    {item['id']} {item['token']!r}: raw D_k = 0 (inside the hull; residual "
                f"{item['raw_distance_at_most']:.1e})"
            )
    print(f"  upper bound rho*(K, d)  {_fmt(s['rho_star_upper'])}")
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
            f"  {red['label']}: bound {_fmt(red['rho_star_upper'])}, random "
            f"{_fmt(red['random_rho'])}, code {_fmt(red['code_rho'])}"
        )
    for note in [*s["reference"]["notes"], *((red or {}).get("notes") or ())]:
        print(f"  note: {note}")
    phases = ", ".join(f"{k} {v:.1f}" for k, v in s["phase_seconds"].items())
    print(f"  total {s['seconds']:.1f} s ({phases})")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the ``head`` subcommand; returns the exit status."""
    config = _validate(args)
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    started = time.time()
    head = load_head(
        config["source"],
        key=config["key"],
        cache_dir=config["cache_dir"],
        use_cache=config["use_cache"],
    )
    read_seconds = time.time() - started
    if config["device"] != "cpu":
        head = dataclasses.replace(head, weights=head.weights.to(config["device"]))
    sample = config["sample_classes"]
    if sample == "all":
        sample = head.num_classes
    geo = analyze_head_geometry(
        head,
        HeadGeometryConfig(
            sample_classes=None
            if sample in ("auto", "brackets")
            else head.num_classes
            if sample == "all"
            else sample,
            time_budget=config["time_budget"],
            bracket_rounds=config["bracket_rounds"],
            all_classes="brackets" if sample == "brackets" else "auto",
            argmax=config["argmax"],
            raw_distances=config["per_class"] is not None,
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
            progress=args.progress or (not args.no_progress and sys.stderr.isatty()),
        ),
    )
    summary = _summary(geo, head, config)
    summary["phase_seconds"] = {"read": read_seconds, **summary["phase_seconds"]}
    summary["seconds"] = time.time() - started  # loading included
    if config["per_class"] is not None:
        _write_per_class(Path(config["per_class"]), geo, head, config["max_memory_mib"])
    if args.out is not None:
        _write_run(args.out, config, summary, geo, started)
    if args.json:
        print(dump_json(summary))
    else:
        _print_text(summary)
    return 0
