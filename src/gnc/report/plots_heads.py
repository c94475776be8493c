"""Plots of pretrained-head geometry: one-vs-rest distances ``D_k``; feature alignment (GNC3).

The functions are pure: they draw into ``ax`` (or a new Agg figure) and return ``(fig, ax)``;
nothing is shown or saved here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_distance_histogram", "plot_feature_alignment", "plot_pretrained_heads"]

_LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))


def _axes(ax: Any = None) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    return fig, fig.add_subplot()


def plot_distance_histogram(
    distances: Sequence[float] | np.ndarray,
    ax: Any = None,
    *,
    lower_bounds: Sequence[float] | np.ndarray | None = None,
    lines: Mapping[str, float | None] | None = None,
    log_x: bool = False,
    bins: int = 60,
    title: str | None = None,
    distance_label: str = "D_k",
) -> tuple[Any, Any]:
    """Histogram of one-vs-rest distances ``D_k`` with reference values as vertical lines.

    Args:
        distances: Exact ``D_k`` of some classes (e.g. a random sample).
        ax: Axes to draw into; a new figure if ``None``.
        lower_bounds: Optional per-class lower bounds ``1 - s_k`` drawn as an outline histogram.
            Both histograms show fractions of their own counts, so a sample and all ``K``
            classes compare directly.
        lines: Label -> value of vertical lines (``rho``, random, code, upper bound); ``None``
            values are skipped.
        log_x: Log-scale distance axis (non-positive values are left out and counted in the
            legend).
        bins: Number of bins.
        title: Optional title.
        distance_label: Legend label of ``distances``.

    Returns:
        ``(fig, ax)``.

    Example:
        >>> fig, ax = plot_distance_histogram([0.2, 0.3, 0.35], lines={"rho": 0.2})
        >>> ax.get_xlabel()
        'one-vs-rest distance D_k (unit rows)'
    """
    fig, ax = _axes(ax)
    d = np.asarray(distances, dtype=np.float64).ravel()
    lb = None if lower_bounds is None else np.asarray(lower_bounds, dtype=np.float64).ravel()
    values = [d] + ([lb] if lb is not None else [])
    ref = [v for v in (lines or {}).values() if v is not None and math.isfinite(v)]
    dropped = 0
    if log_x:
        dropped = int((d <= 0).sum())
        values = [v[v > 0] for v in values]
        ref = [v for v in ref if v > 0]
    pooled = np.concatenate([v for v in values if v.size] + [np.asarray(ref, dtype=np.float64)])
    if pooled.size:
        lo, hi = float(pooled.min()), float(pooled.max())
        if hi <= lo:
            lo, hi = (lo / 2, lo * 2) if log_x else (lo - 0.5, hi + 0.5)
        edges = np.geomspace(lo, hi, bins + 1) if log_x else np.linspace(lo, hi, bins + 1)
        label = distance_label + (f" ({dropped} zero, not shown)" if dropped else "")
        if values[0].size:
            ax.hist(
                values[0],
                bins=edges,
                weights=np.full(values[0].size, 1.0 / d.size),
                alpha=0.6,
                color="C0",
                label=f"{label}, n={d.size}",
            )
        if lb is not None and values[1].size:
            ax.hist(
                values[1],
                bins=edges,
                weights=np.full(values[1].size, 1.0 / lb.size),
                histtype="step",
                color="C7",
                label=f"1 - max cosine (lower bound), n={lb.size}",
            )
    for i, (name, value) in enumerate((lines or {}).items()):
        if value is None or not math.isfinite(value) or (log_x and value <= 0):
            continue
        ax.axvline(
            value,
            color=f"C{(i + 1) % 10}",
            linestyle=_LINE_STYLES[i % len(_LINE_STYLES)],
            label=f"{name} = {value:.4g}",
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("one-vs-rest distance D_k (unit rows)")
    ax.set_ylabel("fraction of classes")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return fig, ax


def plot_feature_alignment(
    cosines: Sequence[float] | np.ndarray,
    counts: Sequence[float] | np.ndarray,
    ax: Any = None,
    *,
    shuffled: Sequence[float] | np.ndarray | None = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Per-class alignment ``cos(w_k, hbar_k - h_G)`` against the class's number of samples.

    Each measured class is a point (samples on a log axis when they span a factor of 10 or
    more). The same cosines for mismatched pairs (each class mean against another class's row,
    the GNC3 baseline) are drawn as a band of their 5-95% range. GNC3 collapse puts every point
    at 1.

    Args:
        cosines: ``(m,)`` cosines of the measured classes.
        counts: ``(m,)`` samples per class.
        ax: Axes to draw into; a new figure if ``None``.
        shuffled: Optional ``(m,)`` cosines of mismatched pairs.
        title: Optional title.

    Returns:
        ``(fig, ax)``.

    Example:
        >>> fig, ax = plot_feature_alignment([0.9, 0.7], [30, 12], shuffled=[0.0, 0.1])
        >>> ax.get_ylabel()
        'cos(w_k, class mean - global mean)'
    """
    fig, ax = _axes(ax)
    c = np.asarray(cosines, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    if c.shape != n.shape:
        raise ValueError(
            f"Expected `cosines` and `counts` of the same shape, but got {c.shape} and {n.shape}."
        )
    ax.scatter(n, c, s=8, alpha=0.6, color="C0", label=f"measured classes (m = {c.size})")
    if c.size:
        ax.axhline(float(np.mean(c)), color="C0", lw=1, ls="--", label=f"mean {np.mean(c):.3f}")
    if shuffled is not None and len(shuffled):
        sh = np.asarray(shuffled, dtype=np.float64)
        lo, hi = np.percentile(sh, [5, 95])
        ax.axhspan(lo, hi, color="C3", alpha=0.15, label="mismatched pairs, 5-95%")
        ax.axhline(
            float(np.mean(sh)), color="C3", lw=1, ls=":", label=f"mismatched mean {np.mean(sh):.3f}"
        )
    ax.axhline(1.0, color="k", lw=0.8)
    if n.size and n.min() > 0 and n.max() >= 10 * n.min():
        ax.set_xscale("log")
        ax.set_xlabel("samples of the class (log scale)")
    else:
        ax.set_xlabel("samples of the class")
        if n.size:
            ax.set_xlim(n.min() - 1, n.max() + 1)
    ax.set_ylim(min(-0.2, float(np.min(c, initial=0.0)) - 0.05), 1.05)
    ax.set_ylabel("cos(w_k, class mean - global mean)")
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def plot_pretrained_heads(rows: Sequence[Mapping[str, Any]], ax: Any = None) -> tuple[Any, Any]:
    """Bars per pretrained head: its exact GNC2 beside its references.

    The references: the sampled median ``D_k``, a softmax code, random rows of the same shape
    (their certified bracket as an error bar) and the upper bound on rho*.

    Args:
        rows: Per head ``head``, ``K``, ``d``, ``rho``, ``sample_median_D``, ``code_rho`` and
            ``code_shape`` (``(K', d')`` of the code), ``random_rho`` / ``random_lower`` (upper
            and lower end of the random rows' bracket) and ``rho_star_upper``; ``None`` values
            are not drawn.
        ax: Axes to draw into; a new figure if ``None``.

    Example:
        >>> row = {"head": "h", "K": 9, "d": 3, "rho": 0.2, "sample_median_D": 0.5,
        ...        "code_rho": 0.6, "code_shape": (9, 3), "random_rho": 0.1,
        ...        "random_lower": None, "rho_star_upper": 0.7}
        >>> fig, ax = plot_pretrained_heads([row])
        >>> len(ax.patches)
        5
    """
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 3.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x = np.arange(len(rows), dtype=float)
    w = 0.16

    def values(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else float(r[key]) for r in rows]

    ax.bar(x - 2 * w, values("rho"), w, label="exact GNC2 = rho(W) = min D_k")
    for xi, r in zip(x, rows, strict=True):
        ax.annotate(f"{r['rho']:.2g}", (xi - 2 * w, r["rho"]), ha="center", va="bottom", fontsize=7)
    ax.bar(x - w, values("sample_median_D"), w, color="tab:green", label="median D_k (sampled)")
    reduced = any(tuple(r["code_shape"]) != (r["K"], r["d"]) for r in rows)
    code_label = "softmax code" + (" (reduced K', d', same K/d)" if reduced else "")
    ax.bar(x, values("code_rho"), w, color="tab:purple", label=code_label)
    upper = values("random_rho")
    lower = [
        u if r.get("random_lower") is None else r["random_lower"]
        for u, r in zip(upper, rows, strict=True)
    ]
    ax.bar(
        x + w,
        upper,
        w,
        color="tab:gray",
        yerr=[np.subtract(upper, lower), np.zeros(len(rows))],
        capsize=2,
        label="random unit rows, same (K, d)",
    )
    ax.bar(
        x + 2 * w,
        values("rho_star_upper"),
        w,
        color="none",
        edgecolor="tab:red",
        hatch="//",
        label="upper bound on rho*",
    )
    ax.set_xticks(x, [f"{r['head']}\nK={r['K']} d={r['d']}" for r in rows], fontsize=7)
    ax.set_ylabel("rho")
    ax.set_xlabel("pretrained head")
    ax.set_title("GNC2 of pretrained K >> d heads")
    ax.legend(fontsize=7)
    return fig, ax
