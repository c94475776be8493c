"""Section 9: the shipped catalogue of best-known codes, softmax vs Tammes across it.

The comparison and the classes of shapes are :func:`gnc.codes.catalogue.compare_catalogue`'s.
"""

from __future__ import annotations

from pathlib import Path

from gnc.codes.catalogue import catalogue_entries, compare_catalogue
from gnc.report.plots_codes import plot_catalogue
from gnc.study.profile import Profile
from gnc.study.records import Progress, SectionResult, SectionSkipped, figure_ref, table

__all__ = ["TITLE", "section_catalogue"]

TITLE = "9. Catalogue of best-known codes: softmax vs Tammes"


def section_catalogue(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """Catalogue coverage, the softmax-vs-Tammes comparison over it and its plot.

    The same under every profile (it reads the shipped catalogue). A catalogued rho above the
    proven upper bound on rho*, or an uncertified one, marks the section ``differs``.
    """
    del profile
    progress("loading the catalogue")
    softmax, tammes = catalogue_entries("softmax"), catalogue_entries("tammes")
    if not softmax:
        raise SectionSkipped("the catalogue shipped with gnc is empty")
    rows = compare_catalogue(softmax, tammes)
    counts = {c: sum(r["class"] == c for r in rows) for c in ("equal", "tammes-code", "candidate")}
    above_bound = [r for r in rows if r["rho"] > r["rho_star_upper"] + 1e-9]
    uncertified = sum(not e.certified for e in softmax)
    fig = figure_ref(
        out,
        "catalogue_softmax_vs_tammes",
        plot_catalogue(rows)[0],
        "Each catalogued (K, d): rho of the best softmax code minus T^2/2 of the best Tammes "
        "code; squares: the softmax code is itself a Tammes code; stars: candidates.",
    )
    notable = [r for r in rows if r["class"] != "equal"]
    notable.sort(key=lambda r: -r["diff"])
    dims = sorted({e.feature_dim for e in softmax})
    sound = not above_bound and uncertified == 0
    checks = (
        "every rho certified (by the exact one-vs-rest solver; the Kerdock code's by a tie "
        "certificate), none above the proven upper bound"
        if sound
        else f"{uncertified} rho not certified and "
        f"{len(above_bound)} above the proven upper bound: the catalogue is inconsistent"
    )
    return SectionResult(
        name="catalogue",
        title=TITLE,
        status="ok" if sound else "differs",
        summary=(
            f"The catalogue shipped with gnc holds {len(softmax)} softmax and {len(tammes)} "
            f"Tammes codes (d = {dims[0]}..{dims[-1]}), {checks}. rho = T^2/2 within 1e-6 on "
            f"{counts['equal']} of {len(rows)} shapes; on {counts['tammes-code']} the best softmax "
            f"code is itself a Tammes code with rho > T^2/2; {counts['candidate']} shapes are "
            "candidates where the best softmax code known is not a Tammes code."
        ),
        tables=(
            table(
                "Shapes where rho(softmax) differs from T^2/2 by more than 1e-6 (largest 40 first)",
                ["K", "d", "rho softmax", "T^2/2", "rho - T^2/2", "rho of Tammes code", "class"],
                [
                    [
                        r["K"],
                        r["d"],
                        r["rho"],
                        r["T2_half"],
                        r["diff"],
                        r["rho_tammes_code"],
                        r["class"],
                    ]
                    for r in notable[:40]
                ],
            ),
        ),
        figures=(fig,),
        data={"rows": rows, "counts": counts},
    )
