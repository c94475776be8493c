"""Plots of spherical-UFM runs: metrics against steps, and rho(W) against the temperature.

The functions are pure: they draw into ``ax`` (or a new Agg figure) and return ``(fig, ax)``;
nothing is shown or saved here. Inputs are plain rows (mappings), e.g. the ``metrics.jsonl``
lines written by ``gnc ufm`` or ``dataclasses.asdict`` of :class:`gnc.ufm.UFMRecord`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_rho_vs_tau", "plot_rho_vs_tau_panels", "plot_ufm_trajectory"]

Rows = Sequence[Mapping[str, Any]]

_LOG_METRICS = (
    ("loss", "loss (CE)"),
    ("gnc1", "GNC1"),
    ("gnc3", "GNC3"),
    ("grad_norm", "Riemannian grad norm"),
)


def _axes(ax: Any = None) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    return fig, fig.add_subplot()


def _positive_series(rows: Rows, x_key: str, key: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for row in rows:
        value = row.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value) and value > 0:
            xs.append(float(row[x_key]))
            ys.append(value)
    return xs, ys


def plot_ufm_trajectory(data: Rows, ax: Any = None, *, title: str | None = None) -> tuple[Any, Any]:
    """Loss, GNC1, GNC3 and gradient norm (log scale) and GNC2 (right axis) against steps.

    Args:
        data: Rows with ``step`` and any of ``loss``, ``gnc1``, ``gnc2``, ``gnc3``,
            ``grad_norm``. Non-positive values are left out of the log-scale curves (GNC1 is
            exactly 0 with one sample per class).
        ax: Axes to draw into; a new figure if ``None``.
        title: Optional title.

    Returns:
        ``(fig, ax)``; GNC2 is drawn on ``ax``'s twin axis.

    Example:
        >>> rows = [{"step": 0, "loss": 2.0, "gnc2": 0.1}, {"step": 10, "loss": 0.5, "gnc2": 0.4}]
        >>> fig, ax = plot_ufm_trajectory(rows)
        >>> ax.get_xlabel(), [line.get_label() for line in ax.lines]
        ('step', ['loss (CE)'])
    """
    fig, ax = _axes(ax)
    handles = []
    for key, label in _LOG_METRICS:
        xs, ys = _positive_series(data, "step", key)
        if xs:
            (line,) = ax.plot(xs, ys, marker="o", markersize=2.5, label=label)
            handles.append(line)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss, GNC1, GNC3, grad norm")
    xs2 = [float(r["step"]) for r in data if r.get("gnc2") is not None]
    ys2 = [float(r["gnc2"]) for r in data if r.get("gnc2") is not None]
    if xs2:
        right = ax.twinx()
        (line,) = right.plot(xs2, ys2, color="black", linestyle="--", label="GNC2 = rho(W)")
        right.set_ylabel("GNC2 = rho(W)")
        handles.append(line)
    if handles:
        ax.legend(handles=handles, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig, ax


def plot_rho_vs_tau(
    data: Rows,
    ax: Any = None,
    *,
    code_value: float | None = None,
    rho_star_upper: float | None = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """``rho(W)`` of the UFM solutions against ``tau`` (log scale) with the code value as a line.

    Args:
        data: Rows with ``tau`` and ``gnc2``; if ``code_value`` / ``rho_star_upper`` are not
            given they are read from the first row's ``code_value`` / ``rho_star_upper``.
        ax: Axes to draw into; a new figure if ``None``.
        code_value: Softmax-code value ``rho*(d, K)`` drawn as a horizontal line.
        rho_star_upper: Upper bound on ``rho*`` drawn as a dotted line.
        title: Optional title.

    Returns:
        ``(fig, ax)``.

    Example:
        >>> rows = [{"tau": 1.0, "gnc2": 0.5}, {"tau": 0.1, "gnc2": 0.6}]
        >>> fig, ax = plot_rho_vs_tau(rows, code_value=0.62)
        >>> [line.get_label() for line in ax.lines]
        ['UFM rho(W)', 'softmax code 0.62']
    """
    fig, ax = _axes(ax)
    rows = sorted(data, key=lambda r: float(r["tau"]))
    if rows:
        first = rows[0]
        if code_value is None and first.get("code_value") is not None:
            code_value = float(first["code_value"])
        if rho_star_upper is None and first.get("rho_star_upper") is not None:
            rho_star_upper = float(first["rho_star_upper"])
    xs = [float(r["tau"]) for r in rows]
    ys = [float(r["gnc2"]) for r in rows]
    ax.plot(xs, ys, marker="o", label="UFM rho(W)")
    if code_value is not None:
        ax.axhline(code_value, color="tab:red", label=f"softmax code {code_value:.4g}")
    if rho_star_upper is not None:
        ax.axhline(
            rho_star_upper,
            color="tab:gray",
            linestyle=":",
            label=f"upper bound {rho_star_upper:.4g}",
        )
    if xs and min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("GNC2 = rho(W)")
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig, ax


def plot_rho_vs_tau_panels(
    panels: Sequence[tuple[Rows, float | None, str]],
) -> tuple[Any, Any]:
    """Side by side :func:`plot_rho_vs_tau` panels, one ``(rows, code_value, title)`` each.

    Example:
        >>> rows = [{"tau": 1.0, "gnc2": 0.5}, {"tau": 0.1, "gnc2": 0.6}]
        >>> fig, axes = plot_rho_vs_tau_panels([(rows, 0.62, "a"), (rows, None, "b")])
        >>> [ax.get_title() for ax in axes]
        ['a', 'b']
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * max(len(panels), 1), 3.6), layout="constrained")
    axes = []
    for i, (rows, code_value, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        plot_rho_vs_tau(rows, ax, code_value=code_value, title=title)
        axes.append(ax)
    return fig, axes
