"""Run the study: the selected sections of a profile, stored, reused, and written as a report.

:func:`reproduce` runs each selected section into ``out_dir/sections/<name>/`` (its
``section.json``, ``figures/`` and training ``runs/``), reuses a finished section of the same
profile unless ``force``, records a failing section and goes on, and writes ``results.json``,
``figures/<section>_<figure>.png`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import gnc
from gnc.io import atomic_write_bytes, atomic_write_text, dump_json
from gnc.report.html import render_report, split_verdict
from gnc.study.estimate import duration, estimate_seconds
from gnc.study.profile import Profile, get_profile, profile_id
from gnc.study.records import Progress, ReproduceResult, SectionResult, SectionSkipped
from gnc.study.registry import SECTIONS

__all__ = ["SECTION_FILE", "load_section", "reproduce", "run_section"]

SECTION_FILE = "section.json"
_TITLE = "gnc reproduce: Generalized Neural Collapse for a Large Number of Classes"
_INTRO = (
    "The study of Jiang et al. (ICML 2024) reproduced with gnc: softmax codes, exact "
    "certified GNC2, UFM, training, heads, assignment and pretrained heads."
)


def load_section(folder: str | Path) -> SectionResult | None:
    """Read a stored section (``None`` if absent or unreadable, or a figure file is missing)."""
    path = Path(folder) / SECTION_FILE
    if not path.is_file():
        return None
    try:
        result = SectionResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None
    if any(not (Path(folder) / f.file).is_file() for f in result.figures):
        return None
    return result


def _store(folder: Path, result: SectionResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / SECTION_FILE, dump_json(result.to_dict()) + "\n")


def run_section(name: str, profile: Profile, folder: Path, progress: Progress) -> SectionResult:
    """Run one section; a skip or an exception becomes its status, a "differs" row too."""
    title, fn = SECTIONS[name]
    started = time.perf_counter()
    try:
        result = fn(profile, folder, progress)
    except SectionSkipped as err:
        result = SectionResult(
            name=name, title=title, status="skipped", notices=(f"Section skipped: {err}",)
        )
    except Exception as err:  # one failing section must not end the run
        tb = traceback.format_exc(limit=-3)
        result = SectionResult(
            name=name,
            title=title,
            status="failed",
            notices=(f"Section failed: {type(err).__name__}: {err}\n{tb}",),
        )
    if result.status == "ok" and any(
        split_verdict(c[3] if len(c) > 3 else None)[0] == "differs" for c in result.comparisons
    ):
        result = dataclasses.replace(result, status="differs")
    return dataclasses.replace(
        result, profile=profile_id(profile), seconds=time.perf_counter() - started
    )


def _print_estimate(profile: Profile, selected: Sequence[str]) -> None:
    est = estimate_seconds(profile, selected)
    lines = [f"  {name:<11} ~{duration(sec)}" for name, sec in est.items()]
    tqdm.write(
        f"gnc reproduce --profile {profile.name}: estimated time per section (rough; "
        f"stored sections are reused), total ~{duration(sum(est.values()))}\n" + "\n".join(lines),
        file=sys.stderr,
    )


def _copy_figures(out: Path, sections: Sequence[SectionResult]) -> None:
    """Every section's figures as ``out/figures/<section>_<figure>.png`` (rewritten if changed)."""
    for s in sections:
        for f in s.figures:
            data = (out / "sections" / s.name / f.file).read_bytes()
            dst = out / "figures" / f"{s.name}_{f.name}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.is_file() or dst.read_bytes() != data:
                atomic_write_bytes(dst, data)


def _results(
    profile: Profile,
    sections: Sequence[SectionResult],
    ran: Sequence[str],
    reused: Sequence[str],
    seconds: float,
) -> dict[str, Any]:
    """The content of ``results.json``."""
    headline = []
    for s in sections:
        for c in s.comparisons:
            kind, reason = split_verdict(c[3])
            headline.append(
                {
                    "section": s.name,
                    "quantity": c[0],
                    "paper": c[1],
                    "ours": c[2],
                    "verdict": kind,
                    "note": reason,
                }
            )
    return {
        "profile": dataclasses.asdict(profile),
        "gnc_version": getattr(gnc, "__version__", None),
        "torch": torch.__version__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ran": list(ran),
        "reused": list(reused),
        "seconds": seconds,
        "status": {s.name: s.status for s in sections},
        "headline": headline,
        "sections": {s.name: s.to_dict() for s in sections},
    }


def reproduce(
    profile: Profile | str,
    out_dir: str | Path,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> ReproduceResult:
    """Run (or reuse) the sections of ``profile`` into ``out_dir`` and write the report.

    Args:
        profile: A :class:`~gnc.study.profile.Profile` or a name in
            :data:`~gnc.study.profile.PROFILES`.
        out_dir: Output folder: ``report.html``, ``results.json``, ``figures/``, ``sections/``.
        only: Section names to compute (default: all); stored sections of the same profile
            are still included in the report.
        force: Recompute selected sections even when a stored result exists.
        progress: Print the time estimate and show a progress bar on stderr.

    Returns:
        A :class:`~gnc.study.records.ReproduceResult`.

    Raises:
        ValueError: On an unknown profile or section name.
    """
    started = time.perf_counter()
    profile = get_profile(profile)
    selected = list(SECTIONS) if not only else list(dict.fromkeys(only))
    unknown = [s for s in selected if s not in SECTIONS]
    if unknown:
        raise ValueError(f"Expected section names in {list(SECTIONS)}, but got {unknown}.")
    out = Path(out_dir)
    (out / "sections").mkdir(parents=True, exist_ok=True)
    if progress:
        _print_estimate(profile, selected)
    bar = tqdm(
        total=len(selected),
        desc="reproduce",
        unit="section",
        disable=not progress,
        dynamic_ncols=True,
    )
    pid = profile_id(profile)
    ran: list[str] = []
    reused: list[str] = []
    results: dict[str, SectionResult] = {}
    for name in selected:
        folder = out / "sections" / name
        stored = None if force else load_section(folder)
        if stored is not None and stored.status in ("ok", "differs") and stored.profile == pid:
            results[name] = stored
            reused.append(name)
        else:
            if force and (folder / "runs").is_dir():
                shutil.rmtree(folder / "runs")
            bar.set_postfix_str(name)

            def note(msg: str, _name: str = name) -> None:
                bar.set_postfix_str(f"{_name}: {msg}")

            results[name] = run_section(name, profile, folder, note)
            _store(folder, results[name])
            ran.append(name)
        bar.update(1)
    bar.close()
    for name in SECTIONS:  # earlier sections of the same profile stay in the report
        if name not in results:
            stored = load_section(out / "sections" / name)
            if stored is not None and stored.profile == pid:
                results[name] = stored
    ordered = tuple(results[n] for n in SECTIONS if n in results)
    _copy_figures(out, ordered)
    report = out / "report.html"
    meta = [
        ("profile", profile.name),
        ("gnc", getattr(gnc, "__version__", "?")),
        ("torch", torch.__version__),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
    ]
    page = render_report(ordered, out / "sections", title=_TITLE, intro=_INTRO, meta=meta)
    atomic_write_text(report, page)
    results_path = out / "results.json"
    summary = _results(profile, ordered, ran, reused, time.perf_counter() - started)
    atomic_write_text(results_path, dump_json(summary) + "\n")
    return ReproduceResult(
        ordered, tuple(ran), tuple(reused), report, results_path, time.perf_counter() - started
    )
