"""Plots of codes: d = 3 codes on the sphere, code values against references, 2-D assignments.

All ``plot_*`` functions are pure: they draw into ``ax`` (or a new Agg figure) and return
``(fig, ax)``; nothing is shown or saved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "plot_assignment",
    "plot_assignments",
    "plot_catalogue",
    "plot_closed_forms",
    "plot_code_values",
    "plot_softmax_vs_tammes",
    "plot_sphere_code",
    "plot_sphere_codes",
]

Rows = Sequence[Mapping[str, Any]]


def _axes(ax: Any = None, *, size: tuple[float, float] = (5.0, 3.8), projection: str = "") -> Any:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot(projection=projection or None)


def plot_sphere_code(
    code: Any, ax: Any = None, *, title: str | None = None, edges: bool = True
) -> tuple[Any, Any]:
    """A ``(K, 3)`` code as points on the unit sphere (3-D scatter) with its convex hull's edges.

    Args:
        code: ``(K, 3)`` unit rows (tensor or array).
        ax: A 3-D axes to draw into; a new figure if ``None``.
        title: Optional title.
        edges: Draw the edges of the convex hull (SciPy) between the points.

    Example:
        >>> fig, ax = plot_sphere_code(np.eye(3).tolist() + (-np.eye(3)).tolist(), title="oct")
        >>> ax.get_title()
        'oct'
    """
    P = np.asarray(code.detach().cpu() if hasattr(code, "detach") else code, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3:
        raise ValueError(f"Expected `code` of shape (K, 3), but got {P.shape}.")
    fig, ax = _axes(ax, size=(4.0, 4.0), projection="3d")
    u, v = np.mgrid[0 : 2 * np.pi : 24j, 0 : np.pi : 12j]
    ax.plot_wireframe(
        np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4
    )
    if edges and P.shape[0] >= 4:
        try:
            from scipy.spatial import ConvexHull

            hull = ConvexHull(P)
            seen: set[tuple[int, int]] = set()
            for simplex in hull.simplices:
                for a, b in ((0, 1), (1, 2), (0, 2)):
                    i, j = sorted((int(simplex[a]), int(simplex[b])))
                    if (i, j) not in seen:
                        seen.add((i, j))
                        ax.plot(*P[[i, j]].T, color="tab:blue", linewidth=0.8, alpha=0.7)
        except Exception:  # degenerate hulls (coplanar points) just skip edges
            pass
    ax.scatter(P[:, 0], P[:, 1], P[:, 2], color="tab:red", s=28, depthshade=False)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_box_aspect((1, 1, 1))
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def plot_closed_forms(rows: Rows, ax: Any = None) -> tuple[Any, Any]:
    """Exact certified ``rho`` against the closed form / known value, one point per code.

    Args:
        rows: ``label``, ``exact`` and ``closed_form`` per code.
        ax: Axes to draw into; a new figure if ``None``.
    """
    fig, ax = _axes(ax)
    xs = [float(r["closed_form"]) for r in rows]
    ys = [float(r["exact"]) for r in rows]
    lo, hi = min(xs + ys + [0.0]), max(xs + ys + [1.0])
    ax.plot(
        [lo, hi], [lo, hi], color="0.6", linestyle="--", linewidth=1, label="exact = closed form"
    )
    ax.scatter(xs, ys, color="tab:blue", s=18, label="codes", zorder=3)
    groups: dict[tuple[float, float], list[str]] = {}
    for r, x, y in zip(rows, xs, ys, strict=True):
        groups.setdefault((round(x, 3), round(y, 3)), []).append(str(r["label"]))
    for (x, y), labels in groups.items():
        text = labels[0] if len(labels) == 1 else f"{labels[0]} (+{len(labels) - 1} more)"
        ax.annotate(text, (x, y), fontsize=6, xytext=(4, -8), textcoords="offset points")
    ax.set_xlabel("closed form / known rho*")
    ax.set_ylabel("exact certified rho (gnc.geometry)")
    ax.set_title("closed forms and known optimal codes")
    ax.legend(fontsize=7, loc="upper left")
    return fig, ax


def plot_code_values(rows: Rows, ax: Any = None) -> tuple[Any, Any]:
    """Per ``(d, K)``: the paper's "optimal" line, our code's ``rho`` and the upper bound.

    Args:
        rows: ``label``, ``paper`` (or ``None``), ``ours`` and ``rho_star_upper`` per setting.
        ax: Axes to draw into; a new figure if ``None``.

    Example:
        >>> fig, ax = plot_code_values([{"label": "(10,100)", "paper": 0.614, "ours": 0.66,
        ...                              "rho_star_upper": 1.0}])
        >>> [t.get_text() for t in ax.get_legend().get_texts()]
        ['paper "optimal"', 'ours (softmax_code)', 'upper bound on rho*']
    """
    fig, ax = _axes(ax, size=(max(5.5, 1.1 * len(rows) + 2), 3.8))
    x = np.arange(len(rows), dtype=float)
    w = 0.27

    def values(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else float(r[key]) for r in rows]

    ax.bar(x - w, values("paper"), w, color="tab:gray", label='paper "optimal"')
    ax.bar(x, values("ours"), w, color="tab:blue", label="ours (softmax_code)")
    ax.bar(
        x + w,
        values("rho_star_upper"),
        w,
        color="none",
        edgecolor="tab:red",
        hatch="//",
        label="upper bound on rho*",
    )
    ax.set_xticks(x, [str(r["label"]) for r in rows], fontsize=7, rotation=20)
    ax.set_xlabel("(d, K)")
    ax.set_ylabel("rho = min_k D_k")
    ax.set_title("softmax-code values")
    ax.legend(fontsize=7, loc="lower right")
    return fig, ax


def plot_softmax_vs_tammes(rows: Rows, ax: Any = None) -> tuple[Any, Any]:
    """``rho`` of softmax and Tammes codes against ``K`` with ``T^2 / 2`` and ``T``.

    Args:
        rows: ``K``, ``softmax_rho``, ``tammes_rho``, ``T`` (Tammes code's min distance).
        ax: Axes to draw into; a new figure if ``None``.
    """
    fig, ax = _axes(ax)
    rows = sorted(rows, key=lambda r: int(r["K"]))
    K = [int(r["K"]) for r in rows]
    T = np.array([float(r["T"]) for r in rows])
    ax.plot(K, [float(r["softmax_rho"]) for r in rows], "o-", label="rho(softmax code)")
    ax.plot(K, [float(r["tammes_rho"]) for r in rows], "x--", label="rho(Tammes code)")
    ax.plot(K, T**2 / 2, ":", color="k", label="T^2/2 (lower bound on rho*)")
    ax.plot(K, T, ":", color="tab:red", label="T (upper bound on rho*)")
    ax.set_xlabel("K (number of classes)")
    ax.set_ylabel("rho / distance")
    ax.set_title("softmax vs Tammes codes")
    ax.legend(fontsize=7)
    return fig, ax


def plot_assignment(
    angles: Sequence[float], class_names: Sequence[str], ax: Any = None, *, title: str = ""
) -> tuple[Any, Any]:
    """Learned 2-D classifier directions as labelled arrows on the unit circle.

    Args:
        angles: Angle in radians of each class's row.
        class_names: One name per class.
        ax: Axes to draw into; a new figure if ``None``.
        title: Optional title.

    Example:
        >>> fig, ax = plot_assignment([0.0, 1.6, 3.1, 4.7], ["a", "b", "c", "d"], title="s0")
        >>> sorted(t.get_text() for t in ax.texts if t.get_text())
        ['a', 'b', 'c', 'd']
    """
    if len(angles) != len(class_names):
        raise ValueError(
            f"Expected one angle per class ({len(class_names)}), but got {len(angles)}."
        )
    fig, ax = _axes(ax, size=(3.0, 3.0))
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="0.8", linewidth=1)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, (a, name) in enumerate(zip(angles, class_names, strict=True)):
        c = colors[i % len(colors)]
        ax.annotate(
            "",
            xy=(math.cos(a), math.sin(a)),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "->", "color": c},
        )
        ax.text(
            1.15 * math.cos(a),
            1.15 * math.sin(a),
            name,
            color=c,
            fontsize=7,
            ha="center",
            va="center",
        )
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_aspect("equal")
    ax.set_xlabel("w_k[0]")
    ax.set_ylabel("w_k[1]")
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def plot_sphere_codes(codes: Mapping[int, Any], rhos: Mapping[int, float]) -> tuple[Any, Any]:
    """One 3-D panel per ``(K, 3)`` code of ``codes`` (keyed by K), titled with its ``rho``.

    Example:
        >>> import numpy as np
        >>> tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
        >>> fig, axes = plot_sphere_codes({4: tetra}, {4: 4 / 3})
        >>> axes[0].get_title()
        'softmax code K=4, rho=1.3333'
    """
    from matplotlib.figure import Figure

    shown = list(codes)
    fig = Figure(figsize=(3.2 * len(shown), 3.4), layout="constrained")
    axes = []
    for i, K in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1, projection="3d")
        plot_sphere_code(codes[K], ax, title=f"softmax code K={K}, rho={rhos[K]:.4f}")
        axes.append(ax)
    return fig, axes


def plot_assignments(
    panels: Sequence[tuple[Sequence[float], str]], class_names: Sequence[str], *, ncols: int = 4
) -> tuple[Any, Any]:
    """A grid of :func:`plot_assignment` panels, one ``(angles in radians, title)`` each.

    Example:
        >>> fig, axes = plot_assignments([([0.0, 1.6, 3.1, 4.7], "seed 0")], "abcd")
        >>> [ax.get_title() for ax in axes]
        ['seed 0']
    """
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = Figure(figsize=(2.8 * ncols, 2.9 * nrows), layout="constrained")
    axes = []
    for i, (angles, title) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        plot_assignment(angles, class_names, ax, title=title)
        axes.append(ax)
    return fig, axes


def plot_catalogue(rows: Rows, ax: Any = None) -> tuple[Any, Any]:
    """Scatter over ``(K, d)`` of ``rho - T^2/2`` (log colour), marked by class.

    Args:
        rows: ``K``, ``d``, ``diff`` (``rho - T^2/2``) and ``class`` per shape
            (:func:`gnc.codes.catalogue.compare_catalogue`).
        ax: Axes to draw into; a new figure if ``None``.
    """
    from matplotlib.colors import LogNorm

    fig, ax = _axes(ax, size=(9.0, 4.2))
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
    if rows:  # log axes: the grid d = 3..12, K <= 64 and the paper's shapes up to K = 10^4
        ds = [r["d"] for r in rows]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(min(ds) / 1.15, max(ds) * 1.6)
        ax.legend(loc="upper left", fontsize=8, ncol=4)
    return fig, ax
