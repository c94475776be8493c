"""Section 2: softmax vs Tammes codes on S^2 (is rho* = T^2/2?), with pictures of the codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gnc._runtime import resolve_device
from gnc.codes import softmax_code, tammes_code
from gnc.report.plots_codes import plot_softmax_vs_tammes, plot_sphere_codes
from gnc.study.paper import ICOSAHEDRON_RHO
from gnc.study.profile import Profile
from gnc.study.records import Progress, SectionResult, figure_ref, table, verdict

__all__ = ["EQUAL_TOL", "TITLE", "section_tammes"]

TITLE = "2. Softmax code vs Tammes code (d = 3)"
#: |rho(softmax) - T^2/2| up to which the two codes count as equal.
EQUAL_TOL = 1e-6


def section_tammes(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """Softmax vs Tammes codes on S^2: is rho* = T^2/2? with pictures of the codes."""
    dev = resolve_device(profile.device)
    rows: list[dict[str, Any]] = []
    codes: dict[int, torch.Tensor] = {}
    for K in profile.tammes.sizes:
        progress(f"K={K}")
        a = softmax_code(
            K, 3, restarts=profile.code_restarts, time_limit=profile.tammes.time_limit, device=dev
        )
        b = tammes_code(
            K, 3, restarts=profile.code_restarts, time_limit=profile.tammes.time_limit, device=dev
        )
        T = b.min_pairwise_distance
        rows.append(
            {
                "K": K,
                "softmax_rho": a.rho,
                "tammes_rho": b.rho,
                "T": T,
                "T2_half": T * T / 2,
                "softmax_1_minus_maxcos": 1 - a.max_cosine,
                "rho_star_upper": a.rho_star_upper,
                "equal": abs(a.rho - T * T / 2) <= EQUAL_TOL,
            }
        )
        codes[K] = a.code.detach().cpu()
    n_equal = sum(bool(r["equal"]) for r in rows)
    shown = {K: codes[K] for K in list(codes)[:6]}
    rhos = {r["K"]: r["softmax_rho"] for r in rows}
    figs = [
        figure_ref(
            out,
            "softmax_vs_tammes",
            plot_softmax_vs_tammes(rows)[0],
            "rho of the softmax and Tammes codes on S^2 with T^2/2 <= rho* <= T "
            "(T = min distance of the Tammes code).",
        ),
        figure_ref(
            out,
            "sphere_codes",
            plot_sphere_codes(shown, rhos)[0],
            "Softmax codes in d = 3 (points, convex hull edges).",
        ),
    ]
    ico = next((r for r in rows if r["K"] == 12), None)
    comparisons: list[tuple[Any, ...]] = [
        (
            "rho* = T^2/2 (softmax = Tammes)?",
            "open, no counterexample known",
            f"{n_equal}/{len(rows)} sizes equal within 1e-6",
            verdict(
                "not comparable",
                "the paper poses it as an open question; "
                + (
                    "no counterexample among our numerical codes (d = 3)"
                    if n_equal == len(rows)
                    else f"{len(rows) - n_equal} sizes differ: numerical codes, not proofs"
                ),
            ),
        ),
    ]
    if ico is not None:
        err = abs(ico["softmax_rho"] - ICOSAHEDRON_RHO)
        comparisons.append(
            (
                "icosahedron (3,12) rho",
                ICOSAHEDRON_RHO,
                ico["softmax_rho"],
                verdict(
                    "agrees" if err <= 1e-6 else "differs",
                    f"softmax_code from random starts, |diff| {err:.1e}",
                ),
            )
        )
    return SectionResult(
        name="tammes",
        title=TITLE,
        status="ok",
        summary=(
            f"For {n_equal} of {len(rows)} sizes K on S^2 the softmax code's rho equals T^2/2 of "
            f"the Tammes code (within 1e-6)"
            + (
                ", consistent with softmax codes solving the Tammes problem."
                if n_equal == len(rows)
                else "; where they differ, one of the two numerical codes is not optimal or "
                "the two problems differ at that K."
            )
        ),
        tables=(
            table(
                "d = 3: softmax vs Tammes codes",
                [
                    "K",
                    "rho softmax",
                    "rho Tammes",
                    "T",
                    "T^2/2",
                    "1 - max cos (softmax)",
                    "upper bound",
                    "rho = T^2/2",
                ],
                [
                    [
                        r["K"],
                        r["softmax_rho"],
                        r["tammes_rho"],
                        r["T"],
                        r["T2_half"],
                        r["softmax_1_minus_maxcos"],
                        r["rho_star_upper"],
                        r["equal"],
                    ]
                    for r in rows
                ],
            ),
        ),
        figures=tuple(figs),
        comparisons=tuple(comparisons),
        data={"rows": rows},
    )
