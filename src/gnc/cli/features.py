"""``gnc features``: GNC of a real pretrained network's features, grouped by predicted class.

Runs the network (``--model SOURCE``: any causal language model that ``transformers`` loads --
``smollm2``, ``gemma3``, a ``.gguf`` file or a Hugging Face folder -- on the first tokens of a
corpus; ``--source ocr``: PP-OCRv6 on rendered lines of CJK characters), or reads features saved
by an earlier run (``--from``), and measures GNC1, GNC3 (with a mismatched-pairs baseline),
nearest-class-mean agreement and exact GNC2 of the classes predicted at least ``--min-samples``
times, against the network's own head. With ``--out DIR`` it writes ``config.json``,
``results.json``, ``features.npz``, for OCR also ``ocr_frames.npz`` (every emitting frame with
its line, time step, confidence and the decoded lines:
:meth:`gnc.pretrained.ocr.OCRFrameFeatures.load` reads it), and ``plots/alignment.png``,
atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int
from gnc.analysis.feature_gnc import measure_head_features
from gnc.cli._common import (
    atomic_save_npz,
    atomic_write_text,
    dump_json,
    run_metadata,
)
from gnc.pretrained import (
    CausalLM,
    ExtractedFeatures,
    extract_lm_features,
    extract_ocr_features,
    load_causal_lm,
    load_head,
)
from gnc.pretrained.causal_lm import lm_name
from gnc.report.figures import save_figure
from gnc.report.plots_heads import plot_feature_alignment

__all__ = ["load_features_file", "register", "run", "save_features_file"]


def register(subparsers: Any) -> None:
    """Add the ``features`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "features",
        help="GNC1/GNC3/NCC of a real network's features (any causal LM on a corpus, PP-OCRv6)",
        description=(
            "Run a pretrained K >> d network on real data, group its penultimate features by the "
            "class its head predicts, and measure GNC1, GNC3, NCC agreement and exact GNC2 on "
            "the classes predicted at least --min-samples times. Language models run through "
            "transformers from local files (pip install 'gnc[hf]')."
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model",
        default=None,
        help="causal language model: smollm2 | gemma3 | a .gguf file | a Hugging Face folder",
    )
    which.add_argument(
        "--source",
        choices=("ocr", "smollm2", "gemma3"),
        default=None,
        help="packaged network (smollm2 / gemma3 are --model smollm2 / gemma3)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="tokens (language models, default 4096) or characters (ocr, default 500; 0 = all)",
    )
    parser.add_argument("--corpus", default="kjv", help="language model: corpus (kjv | austen)")
    parser.add_argument("--context", type=int, default=256, help="language model: window length")
    parser.add_argument("--repeats", type=int, default=4, help="ocr: occurrences per font")
    parser.add_argument("--fonts", default=None, help="ocr: comma-separated font names")
    parser.add_argument(
        "--font-size", type=int, default=36, help="ocr: glyph size in pixels (line height 48)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="windows / lines per batch")
    parser.add_argument(
        "--from", dest="from_file", type=Path, default=None, help="features.npz of an earlier run"
    )
    parser.add_argument("--min-samples", type=int, default=10, help="samples a class needs")
    parser.add_argument("--max-classes", type=int, default=None, help="keep the most predicted")
    parser.add_argument("--seed", type=int, default=0, help="seed (ocr characters, baseline)")
    parser.add_argument("--device", default=None, help="language model: torch device (cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, default=None, help="run folder to write")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.set_defaults(func=run)


def save_features_file(path: Path, extracted: ExtractedFeatures) -> None:
    """Write ``features``, ``predicted``, ``labels`` and the run info to ``path`` atomically."""
    labels = extracted.labels if extracted.labels is not None else torch.empty(0)
    atomic_save_npz(
        path,
        source=np.array(extracted.source),
        features=extracted.features.numpy(),
        predicted=extracted.predicted.numpy(),
        labels=labels.numpy().astype(np.int64),
        info=np.array(dump_json(extracted.info)),
    )


def load_features_file(path: Path, source: str) -> ExtractedFeatures:
    """Read a file written by :func:`save_features_file` (checking its source)."""
    if not path.is_file():
        raise FileNotFoundError(f"Expected a features file at {path}, but there is none.")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("source", "features", "predicted") if k not in data.files]
        if missing:
            raise ValueError(f"Expected arrays {missing} in {path} (written by gnc features).")
        saved = str(data["source"])
        if saved != source:
            raise ValueError(f"Expected features of `{source}` in {path}, but they are `{saved}`.")
        labels = data["labels"] if "labels" in data.files else np.empty(0)
        info = json.loads(str(data["info"])) if "info" in data.files else {}
        return ExtractedFeatures(
            saved,
            torch.from_numpy(np.array(data["features"], dtype=np.float32)),
            torch.from_numpy(np.array(data["predicted"], dtype=np.int64)),
            torch.from_numpy(np.array(labels, dtype=np.int64)) if labels.size else None,
            {**info, "loaded_from": str(path)},
        )


def _model_source(args: argparse.Namespace) -> str | None:
    """The language model asked for, or ``None`` for the OCR network."""
    if args.model is not None:
        return str(args.model)
    return None if args.source == "ocr" else str(args.source)


def _extract_lm(args: argparse.Namespace, lm: CausalLM) -> ExtractedFeatures:
    return extract_lm_features(
        model=lm,
        corpus=args.corpus,
        num_tokens=4096 if args.samples is None else args.samples,
        context=check_int("--context", args.context, minimum=1),
        batch_size=args.batch_size or 4,
        progress=not args.no_progress,
    )


def _extract_ocr(args: argparse.Namespace) -> ExtractedFeatures:
    fonts = None if args.fonts is None else [f for f in args.fonts.split(",") if f]
    return extract_ocr_features(
        num_chars=500 if args.samples is None else args.samples,
        repeats=args.repeats,
        fonts=fonts,
        seed=args.seed,
        batch_size=args.batch_size,
        font_size=check_int("--font-size", args.font_size, minimum=4),
        progress=not args.no_progress,
    )


def _print_text(s: dict[str, Any]) -> None:
    info = s["extraction"]
    print(
        f"features of {s['head']}: N={s['num_samples']}, d={s['feature_dim']}, head K="
        f"{s['head_classes']}"
    )
    skip = ("model", "text_start", "per_font")
    what = ", ".join(f"{k}={v}" for k, v in info.items() if k not in skip)
    print(f"  {info.get('model', '')}: {what}")
    for font, row in (info.get("per_font") or {}).items():
        print(f"    {font}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
    print(
        f"  classes predicted >= {s['min_samples']} times: {s['num_classes_measured']} "
        f"({s['num_samples_measured']} samples)"
    )
    print(f"  GNC1                    {s['gnc1']:.6g}")
    print(
        f"  GNC3                    {s['gnc3']:.4f}  (mismatched pairs: {s['gnc3_shuffled']:.4f})"
    )
    print(f"  NCC agreement           {s['ncc_agreement']:.4f}")
    cert = "certified" if s["certified"] else "NOT certified"
    print(f"  GNC2 rows / class means {s['gnc2_rows']:.4g} / {s['gnc2_class_means']:.4g}  [{cert}]")
    if s["label_accuracy"] is not None:
        print(f"  head accuracy           {s['label_accuracy']:.4f}")
    print("  most predicted classes (label, samples, cos(w_k, mean_k - mean)):")
    for row in s["top"][:8]:
        print(f"    {row['label']!r:>14} {row['count']:6d} {row['cosine']:8.4f}")
    print(f"  total {s['seconds']:.1f} s")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the ``features`` subcommand; returns the exit status."""
    check_int("--min-samples", args.min_samples, minimum=1)
    if args.max_classes is not None:
        check_int("--max-classes", args.max_classes, minimum=2)
    model = _model_source(args)
    if args.samples is not None:
        check_int("--samples", args.samples, minimum=0 if model is None else 2)
    if args.threads is not None:
        torch.set_num_threads(check_int("--threads", args.threads, minimum=1))
    started = time.time()
    saved = None
    if args.from_file is not None:
        saved = load_features_file(args.from_file, "ocr" if model is None else lm_name(model))
    if model is None:
        head = load_head("ocr")
        weights, bias, name, decode = head.weights, None, head.name, head.decode
        extracted = saved if saved is not None else _extract_ocr(args)
    else:
        lm = load_causal_lm(model, device=args.device, progress=not args.no_progress)
        weights, bias, name, decode = lm.head_weights, lm.head_bias, lm.name, lm.decode_token
        extracted = saved if saved is not None else _extract_lm(args, lm)
    metrics = measure_head_features(
        extracted.features,
        weights,
        predicted=extracted.predicted,
        bias=bias,
        labels=extracted.labels,
        min_samples=args.min_samples,
        max_classes=args.max_classes,
        head=name,
        decode=decode,
        seed=args.seed,
    )
    summary = metrics.to_dict()
    summary["extraction"] = extracted.info
    summary["seconds"] = time.time() - started
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    if args.out is not None:
        atomic_write_text(args.out / "config.json", dump_json(config) + "\n")
        results = {**summary, "metadata": run_metadata(args.seed, started)}
        atomic_write_text(args.out / "results.json", dump_json(results) + "\n")
        if args.from_file is None:
            save_features_file(args.out / "features.npz", extracted)
        if extracted.frames is not None:
            extracted.frames.save(args.out / "ocr_frames.npz")
        fig, _ = plot_feature_alignment(
            metrics.cosines.numpy(),
            metrics.counts.numpy(),
            shuffled=metrics.cosines_shuffled.numpy(),
            title=(
                f"{name}: {metrics.num_classes} classes predicted >= {metrics.min_samples} "
                f"times; GNC3 {metrics.gnc3:.3f} (mismatched {metrics.gnc3_shuffled:.3f})"
            ),
        )
        save_figure(fig, args.out / "plots" / "alignment.png", dpi=120)
    if args.json:
        print(dump_json(summary))
    else:
        _print_text(summary)
    return 0
