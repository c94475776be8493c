"""Plots of training runs: every metric against epochs, and several runs overlaid.

All ``plot_*`` functions are pure: they draw into ``ax`` (or a new Agg figure) and return
``(fig, ax)``; nothing is shown or saved except by :func:`save_training_plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gnc.report.figures import save_figure

__all__ = [
    "plot_accuracy",
    "plot_gnc1",
    "plot_gnc2",
    "plot_gnc3",
    "plot_loss",
    "plot_metric",
    "plot_runs",
    "plot_runs_grid",
    "plot_seed_bands",
    "save_training_plots",
]

History = Sequence[Mapping[str, Any]]


def _axes(ax: Any = None) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    return fig, fig.add_subplot()


def _series(history: History, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if value is not None:
            xs.append(int(row["epoch"]))
            ys.append(float(value))
    return xs, ys


def plot_metric(
    history: History,
    key: str,
    ax: Any = None,
    *,
    label: str | None = None,
    log: bool = False,
    title: str | None = None,
) -> tuple[Any, Any]:
    """One metric of ``history`` (rows with ``epoch`` and ``key``) against epochs.

    Example:
        >>> fig, ax = plot_metric([{"epoch": 1, "gnc1": 1.0}, {"epoch": 2, "gnc1": 0.1}], "gnc1")
        >>> [float(v) for v in ax.lines[0].get_ydata()]
        [1.0, 0.1]
    """
    fig, ax = _axes(ax)
    xs, ys = _series(history, key)
    ax.plot(xs, ys, marker="o", markersize=2.5, label=label or key)
    if log and ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_gnc1(history: History, ax: Any = None) -> tuple[Any, Any]:
    """GNC1 (variability collapse) on a log scale."""
    return plot_metric(history, "gnc1", ax, log=True, title="GNC1 = tr(Sw Sb^+)/K")


def plot_gnc3(history: History, ax: Any = None) -> tuple[Any, Any]:
    """GNC3 (self-duality) on a log scale."""
    return plot_metric(history, "gnc3", ax, log=True, title="GNC3 = mean(1 - cos(w_k, mu_k))")


def plot_gnc2(
    history: History,
    ax: Any = None,
    *,
    code_value: float | None = None,
    upper_bound: float | None = None,
) -> tuple[Any, Any]:
    """GNC2 = rho(W) with the softmax-code value and the upper bound on rho* as lines."""
    fig, ax = plot_metric(history, "gnc2", ax, label="GNC2 = rho(W)", title="GNC2")
    if upper_bound is None:
        ub = [
            float(r["gnc2_upper_bound"]) for r in history if r.get("gnc2_upper_bound") is not None
        ]
        upper_bound = ub[-1] if ub else None
    if code_value is not None:
        ax.axhline(code_value, color="k", linestyle="--", linewidth=1, label="softmax code")
    if upper_bound is not None:
        ax.axhline(upper_bound, color="r", linestyle=":", linewidth=1, label="upper bound on rho*")
    ax.legend(fontsize=7)
    return fig, ax


def plot_accuracy(history: History, ax: Any = None) -> tuple[Any, Any]:
    """Train / test accuracy and NCC train / test accuracy."""
    fig, ax = _axes(ax)
    for key in ("train_accuracy", "test_accuracy", "ncc_train_accuracy", "ncc_test_accuracy"):
        xs, ys = _series(history, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=2.5, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy")
    ax.legend(fontsize=7)
    return fig, ax


def plot_loss(history: History, ax: Any = None) -> tuple[Any, Any]:
    """Training loss (running mean over the epoch) and test loss, log scale."""
    fig, ax = _axes(ax)
    for key in ("train_loss", "test_loss"):
        xs, ys = _series(history, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=2.5, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("loss")
    ax.legend(fontsize=7)
    return fig, ax


def plot_runs(
    runs: Mapping[str, History],
    key: str,
    ax: Any = None,
    *,
    log: bool = False,
    reference: float | None = None,
    reference_label: str = "softmax code",
) -> tuple[Any, Any]:
    """One metric of several runs (label -> history) overlaid, e.g. GNC2 for several tau.

    Example:
        >>> runs = {"a": [{"epoch": 1, "gnc2": 0.1}], "b": [{"epoch": 1, "gnc2": 0.3}]}
        >>> fig, ax = plot_runs(runs, "gnc2", reference=0.5)
        >>> [line.get_label() for line in ax.lines]
        ['a', 'b', 'softmax code']
    """
    fig, ax = _axes(ax)
    for label, history in runs.items():
        xs, ys = _series(history, key)
        ax.plot(xs, ys, marker="o", markersize=2.5, label=label)
    if reference is not None:
        ax.axhline(reference, color="k", linestyle="--", linewidth=1, label=reference_label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(key)
    ax.legend(fontsize=7)
    return fig, ax


def save_training_plots(
    history: History, folder: str | Path, *, code_value: float | None = None
) -> list[Path]:
    """Write ``gnc1/gnc2/gnc3/accuracy/loss.png`` for one run into ``folder``; returns paths."""
    folder = Path(folder)
    made = {
        "gnc1": plot_gnc1(history),
        "gnc2": plot_gnc2(history, code_value=code_value),
        "gnc3": plot_gnc3(history),
        "accuracy": plot_accuracy(history),
        "loss": plot_loss(history),
    }
    return [save_figure(fig, folder / f"{name}.png", dpi=110) for name, (fig, _) in made.items()]


def plot_runs_grid(
    runs: Mapping[str, History],
    keys: Sequence[str] = ("gnc1", "gnc2", "gnc3", "test_accuracy"),
    *,
    references: Mapping[str, float] | None = None,
    log_keys: Sequence[str] = ("gnc1", "gnc3"),
) -> tuple[Any, Any]:
    """Several runs side by side, one panel per metric (the paper's Figure 2 layout).

    Args:
        runs: Label -> history.
        keys: Metrics, one panel each.
        references: Optional horizontal line per metric (e.g. ``{"gnc2": code_value}``).
        log_keys: Metrics drawn on a log scale.

    Returns:
        ``(fig, axes)`` with one axis per key.

    Example:
        >>> fig, axes = plot_runs_grid({"a": [{"epoch": 1, "gnc1": 1.0, "gnc2": 0.2}]},
        ...                            keys=("gnc1", "gnc2"), references={"gnc2": 0.5})
        >>> len(axes), len(axes[1].lines)
        (2, 2)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0 * len(keys), 3.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    refs = dict(references or {})
    for ax, key in zip(axes, keys, strict=True):
        plot_runs(runs, key, ax, log=key in log_keys, reference=refs.get(key))
    return fig, list(axes)


def plot_seed_bands(
    runs: Mapping[str, Sequence[History]],
    keys: Sequence[str] = ("gnc1", "gnc2", "gnc3", "test_accuracy"),
    *,
    references: Mapping[str, float] | None = None,
    log_keys: Sequence[str] = ("gnc1", "gnc3"),
    titles: Mapping[str, str] | None = None,
) -> tuple[Any, Any]:
    """Several seeds per run: the median over seeds as a line, min..max as a shaded band.

    Args:
        runs: Label -> one history per seed (seeds evaluated at the same epochs).
        keys: Metrics, one panel each.
        references: Optional horizontal line per metric (e.g. ``{"gnc2": code_value}``).
        log_keys: Metrics drawn on a log scale.
        titles: Optional panel title per metric.

    Example:
        >>> h = lambda v: [{"epoch": 0, "gnc2": 0.1}, {"epoch": 1, "gnc2": v}]
        >>> fig, axes = plot_seed_bands({"a": [h(0.4), h(0.6)]}, keys=("gnc2",))
        >>> [float(v) for v in axes[0].lines[0].get_ydata()]
        [0.1, 0.5]
    """
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0 * len(keys), 3.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    refs = dict(references or {})
    for ax, key in zip(axes, keys, strict=True):
        for i, (label, seeds) in enumerate(runs.items()):
            series = [_series(h, key) for h in seeds]
            series = [(xs, ys) for xs, ys in series if xs]
            if not series:
                continue
            n = min(len(xs) for xs, _ in series)
            xs = series[0][0][:n]
            ys = np.array([ys[:n] for _, ys in series], dtype=float)
            color = f"C{i}"
            name = label if len(series) == 1 else f"{label} (median of {len(series)} seeds)"
            ax.plot(xs, np.median(ys, axis=0), color=color, marker="o", markersize=2, label=name)
            if len(series) > 1:
                ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.25)
        if key in refs and refs[key] is not None:
            ax.axhline(refs[key], color="k", linestyle="--", linewidth=1, label="softmax code")
        if key in log_keys:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title((titles or {}).get(key, key))
        ax.legend(fontsize=6)
    return fig, axes
