"""Section 8: a tiny word-level language model on the KJV (K >> d on real text).

Linear vs normalized heads, measured every epoch: whether the head moves towards a softmax
code (GNC2) and whether the features collapse (GNC1, GNC3) when the classes are words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from gnc.data import load_text
from gnc.lm import LMConfig, prepare_lm_data, train_lm
from gnc.report.plots_train import plot_runs_grid
from gnc.study.profile import Profile
from gnc.study.records import Progress, SectionResult, SectionSkipped, figure_ref, table

__all__ = ["NO_COLLAPSE_RATIO", "TITLE", "section_lm"]

TITLE = "8. A tiny language model (K >> d on real text)"
#: tr(Sigma_W)/tr(Sigma_B) from which the features count as not collapsed (collapse: -> 0).
NO_COLLAPSE_RATIO = 0.1


def _conclusions(results: list[Any]) -> str:
    """What the runs' numbers say about the head and the features (empty when undecided)."""
    text = ""
    if all(r.final.gnc2 < r.history[0].gnc2 for r in results):
        text += (
            " GNC2 falls in every run: training moves the head away from a softmax code, "
            "not towards it."
        )
    lowest = min(float(r.final.nc1_trace_ratio) for r in results)
    if lowest >= NO_COLLAPSE_RATIO:
        text += (
            f" The features of natural text do not collapse: tr(Sigma_W)/tr(Sigma_B) stays "
            f">= {lowest:.2f} in every run (a word follows many contexts)."
        )
    return text


def section_lm(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """A word-level language model on the KJV (K >> d): linear vs normalized heads, per epoch."""
    settings = profile.lm
    if not settings.heads:
        raise SectionSkipped("no language-model heads requested by this profile")
    try:
        text = load_text("kjv", max_chars=settings.max_chars)
    except ValueError as err:
        raise SectionSkipped(f"data source missing: {str(err).splitlines()[0]}") from None
    data = prepare_lm_data(text, settings.num_classes, name="kjv")
    base = LMConfig(
        num_classes=settings.num_classes,
        feature_dim=settings.feature_dim,
        epochs=settings.epochs,
        train_positions=settings.train_positions,
        metric_samples=settings.metric_samples,
        max_chars=settings.max_chars,
        device=profile.device,
    )
    results = []
    for kind, tau in settings.heads:
        config = dataclasses.replace(base, head=kind, tau=tau)
        progress(f"lm {config.label}")
        results.append(train_lm(config, data, out_dir=out / "runs" / config.label, progress=False))
    histories = {r.config.label: [h.to_dict() for h in r.history] for r in results}
    fig, _ = plot_runs_grid(
        histories,
        keys=("nc1_trace_ratio", "gnc2", "gnc3", "test_perplexity"),
        log_keys=("test_perplexity",),
    )
    words = f"{len(data.train_ids) + len(data.test_ids):,} words"
    figs = [
        figure_ref(
            out,
            "lm_curves",
            fig,
            f"Tiny language model on the KJV ({words}, K = {settings.num_classes}, "
            f"d = {settings.feature_dim}): within/between ratio tr(Sigma_W)/tr(Sigma_B) and GNC3 "
            "of the frequent words, GNC2 of the whole head, and test perplexity against epochs "
            "(epoch 0: the untrained model).",
        )
    ]
    keys = (
        "test_perplexity",
        "test_accuracy",
        "metric_classes",
        "gnc1",
        "nc1_trace_ratio",
    )
    rows = [
        [
            r.config.label,
            *(getattr(r.final, k) for k in keys),
            r.history[0].gnc2,
            r.final.gnc2,
            r.final.gnc2_median_distance,
            r.final.gnc3,
            r.final.ncc_test_accuracy,
            r.argmin_word,
        ]
        for r in results
    ]
    return SectionResult(
        name="lm",
        title=TITLE,
        status="ok",
        summary=(
            f"Next-word prediction on the King James Bible ({words}), vocabulary K = "
            f"{settings.num_classes} (with <unk>), features d = {settings.feature_dim}, "
            f"{settings.epochs} epochs. GNC2 of the head, untrained -> trained: "
            + ", ".join(
                f"{r.config.label} {r.history[0].gnc2:.3f} -> {r.final.gnc2:.3f}" for r in results
            )
            + "; GNC3 "
            + ", ".join(f"{r.final.gnc3:.3f}" for r in results)
            + "."
            + _conclusions(results)
        ),
        tables=(
            table(
                "Final epoch. GNC1 and GNC3 over the words with enough samples in the metric "
                "subsample (K' of them); with K' >> d GNC1's 1/K' makes it small without any "
                "collapse, so tr(Sigma_W)/tr(Sigma_B) is shown beside it. Upper bound on rho*: "
                f"{results[0].rho_star_upper:.4f}",
                [
                    "head",
                    "test perplexity",
                    "test accuracy",
                    "K'",
                    "GNC1",
                    "tr(Sigma_W)/tr(Sigma_B)",
                    "GNC2 at init",
                    "GNC2",
                    "median D_k",
                    "GNC3",
                    "NCC test accuracy",
                    "argmin word",
                ],
                rows,
            ),
        ),
        figures=tuple(figs),
        data={"histories": histories, "summaries": [r.to_dict() for r in results]},
    )
