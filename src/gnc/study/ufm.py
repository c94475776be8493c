"""Section 3: UFM solutions at decreasing temperature; rho(W) approaches the softmax-code value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gnc._runtime import make_generator, resolve_device
from gnc.geometry import rho_star_best_known
from gnc.report.plots_ufm import plot_rho_vs_tau_panels
from gnc.study.profile import Profile
from gnc.study.records import Progress, SectionResult, Table, figure_ref, table, verdict
from gnc.study.runs import tau_label
from gnc.ufm import temperature_sweep

__all__ = ["TITLE", "section_ufm", "ufm_verdict"]

TITLE = "3. UFM temperature sweep"


def ufm_verdict(first: float | None, last: float | None, last_tau: str) -> str:
    """rho(W) / code value at the largest and smallest tau against the theorem's limit 1.

    Example:
        >>> ufm_verdict(0.7, 0.995, "1/50")
        'agrees: exact certified rho(W) reaches 0.9950 at tau=1/50'
    """
    if first is None or last is None:
        return verdict("not comparable", "no softmax-code value to divide by")
    if last >= 0.99 and last >= first - 1e-9:
        return verdict("agrees", f"exact certified rho(W) reaches {last:.4f} at tau={last_tau}")
    return verdict("differs", f"rho(W) reaches only {last:.4f} of the code value at tau={last_tau}")


def section_ufm(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """UFM solutions at decreasing temperature: rho(W) approaches the softmax-code value."""
    settings = profile.ufm
    panels: list[tuple[list[dict[str, Any]], float | None, str]] = []
    tables: list[Table] = []
    comparisons: list[tuple[Any, ...]] = []
    summaries: list[str] = []
    data: dict[str, Any] = {}
    for K, d in settings.settings:
        known = rho_star_best_known(K, d)
        progress(f"K={K} d={d}")
        res = temperature_sweep(
            K,
            d,
            settings.taus,
            samples_per_class=settings.samples,
            max_steps=settings.steps,
            code_value=None if known is None else known[0],
            code_time_limit=profile.code_time_limit,
            device=resolve_device(profile.device),
            generator=make_generator(0),
        )
        rows = [p.to_dict() for p in res.points]
        # only rho(W) and the code value: the upper bound (in the table) would squash the curve
        panels.append(
            (
                [{"tau": p.tau, "gnc2": p.gnc2} for p in res.points],
                res.code_value,
                f"UFM K={K}, d={d}, n={settings.samples}",
            )
        )
        first = max(res.points, key=lambda p: p.tau)
        last = min(res.points, key=lambda p: p.tau)
        summaries.append(
            f"K={K}, d={d}: rho(W) {first.gnc2:.4f} at tau={tau_label(first.tau)} -> "
            f"{last.gnc2:.4f} at tau={tau_label(last.tau)} ({last.ratio:.4f} of the code "
            f"value {res.code_value:.4f}, {res.code_source})"
            if res.code_value is not None
            else f"K={K}, d={d}: rho(W) {last.gnc2:.4f} at tau={tau_label(last.tau)}"
        )
        tables.append(
            table(
                f"Sweep K={K}, d={d}, n={settings.samples} (code value {res.code_value}, "
                f"{res.code_source}; upper bound on rho* {res.rho_star_upper})",
                ["tau", "loss", "GNC1", "GNC2 = rho(W)", "GNC3", "rho / code", "certified", "stop"],
                [
                    [
                        tau_label(p.tau),
                        p.loss,
                        p.gnc1,
                        p.gnc2,
                        p.gnc3,
                        p.ratio,
                        p.certified,
                        p.stop_reason,
                    ]
                    for p in res.points
                ],
            )
        )
        comparisons.append(
            (
                f"UFM rho(W) / code value, K={K} d={d}",
                "-> 1 as tau -> 0 (theorem)",
                f"{first.ratio:.4f} (tau={tau_label(first.tau)}) -> {last.ratio:.4f} "
                f"(tau={tau_label(last.tau)})",
                ufm_verdict(first.ratio, last.ratio, tau_label(last.tau)),
            )
        )
        data[f"K{K}_d{d}"] = {
            "rows": rows,
            "code_value": res.code_value,
            "code_source": res.code_source,
            "rho_star_upper": res.rho_star_upper,
        }
    figs = [
        figure_ref(
            out,
            "rho_vs_tau",
            plot_rho_vs_tau_panels(panels)[0],
            "rho(W) (exact, certified) of the spherical-UFM solution against tau, with the "
            "softmax-code value (upper bounds on rho* in the tables).",
        )
    ]
    return SectionResult(
        name="ufm",
        title=TITLE,
        status="ok",
        summary="Spherical UFM, largest to smallest tau: " + "; ".join(summaries) + ".",
        tables=tuple(tables),
        figures=tuple(figs),
        comparisons=tuple(comparisons),
        data=data,
    )
