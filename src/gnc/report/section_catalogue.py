"""Report section: the shipped catalogue of best-known codes, softmax vs Tammes across it.

The comparison and the classes of shapes are
:func:`gnc.codes.catalogue.compare_catalogue`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnc.codes.catalogue import compare_catalogue

if TYPE_CHECKING:
    from gnc.report.reproduce import Profile, Progress, SectionResult

__all__ = ["plot_catalogue", "section_catalogue"]

Row = dict[str, Any]


def plot_catalogue(rows: Sequence[Row], ax: Any = None) -> tuple[Any, Any]:
    """Scatter over ``(K, d)`` of ``rho - T^2/2`` (log colour), marked by class."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(9.0, 4.2), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    markers = {"equal": "o", "tammes-code": "s", "candidate": "*", "below": "x"}
    diffs = np.array([max(abs(r["diff"]), 1e-9) for r in rows]) if rows else np.ones(1)
    norm = LogNorm(vmin=1e-9, vmax=max(1e-3, float(diffs.max())))
    mappable = None
    for cls, m in markers.items():
        sel = [r for r in rows if r["class"] == cls]
        if not sel:
            continue
        mappable = ax.scatter(
            [r["K"] for r in sel],
            [r["d"] for r in sel],
            c=[max(abs(r["diff"]), 1e-9) for r in sel],
            cmap="viridis",
            norm=norm,
            marker=m,
            s=60 if cls == "candidate" else 18,
            label=f"{cls} ({len(sel)})",
            edgecolors="k" if cls == "candidate" else "none",
        )
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label="|rho(softmax) - T^2/2| (floored at 1e-9)")
    ax.set_xlabel("K (classes)")
    ax.set_ylabel("d (dimension)")
    ax.set_title("Best-known softmax codes vs T^2/2 of best-known Tammes codes")
    if rows:
        ds = [r["d"] for r in rows]
        ax.set_ylim(min(ds) - 0.5, max(ds) + 1.5)
        ax.legend(loc="upper left", fontsize=8, ncol=4)
    return fig, ax


def section_catalogue(profile: Profile, out: Path, progress: Progress) -> SectionResult:
    """Catalogue coverage, the softmax-vs-Tammes comparison over it and its plot."""
    from gnc.codes.catalogue import catalogue_entries
    from gnc.report.reproduce import SectionResult, SectionSkipped, _save_figure, _table

    del profile  # reads the shipped catalogue: the same under every profile
    progress("loading the catalogue")
    softmax, tammes = catalogue_entries("softmax"), catalogue_entries("tammes")
    if not softmax:
        raise SectionSkipped("the catalogue shipped with gnc is empty")
    rows = compare_catalogue(softmax, tammes)
    counts = {c: sum(r["class"] == c for r in rows) for c in ("equal", "tammes-code", "candidate")}
    above_bound = [r for r in rows if r["rho"] > r["upper_bound"] + 1e-9]
    uncertified = sum(not e.certified for e in softmax)
    fig = _save_figure(
        out,
        "catalogue_softmax_vs_tammes",
        plot_catalogue(rows)[0],
        "Each catalogued (K, d): rho of the best softmax code minus T^2/2 of the best Tammes "
        "code; squares: the softmax code is itself a Tammes code; stars: candidates.",
    )
    notable = [r for r in rows if r["class"] != "equal"]
    notable.sort(key=lambda r: -r["diff"])
    table = _table(
        "Shapes where rho(softmax) differs from T^2/2 by more than 1e-6 (largest 40 first)",
        ["K", "d", "rho softmax", "T^2/2", "rho - T^2/2", "rho of Tammes code", "class"],
        [
            [r["K"], r["d"], r["rho"], r["T2_half"], r["diff"], r["rho_tammes_code"], r["class"]]
            for r in notable[:40]
        ],
    )
    dims = sorted({e.feature_dim for e in softmax})
    return SectionResult(
        name="catalogue",
        title="9. Catalogue of best-known codes: softmax vs Tammes",
        status="ok",
        summary=(
            f"The catalogue shipped with gnc holds {len(softmax)} softmax and {len(tammes)} "
            f"Tammes codes (d = {dims[0]}..{dims[-1]}), every rho certified by the exact "
            f"one-vs-rest solver ({uncertified} uncertified), none above the proven upper bound "
            f"({len(above_bound)} violations). rho = T^2/2 within 1e-6 on {counts['equal']} of "
            f"{len(rows)} shapes; on {counts['tammes-code']} the best softmax code is itself a "
            f"Tammes code with rho > T^2/2; {counts['candidate']} shapes are candidates where "
            "the best softmax code known is not a Tammes code."
        ),
        tables=(table,),
        figures=(fig,),
        data={"rows": rows, "counts": counts},
    )
