"""Full-batch Riemannian solver for the spherical unconstrained feature model (UFM).

The UFM (Jiang et al., ICML 2024, Sec. 3) treats the last-layer features as free variables:
minimize the mean cross-entropy with logits ``<w_j, h_i> / tau`` over a classifier ``W`` of shape
``(K, d)`` and features ``H`` of shape ``(N, d)``, ``n_k`` features per class, every row on the unit
sphere. All ``K + N`` rows live on ``S^{d-1}``, so the problem is one product of spheres: the
Riemannian gradient is the row-wise tangent projection of the Euclidean gradient and the retraction
is row normalization (:mod:`gnc.sphere`).

Objective. By default the solver minimizes ``tau * log L`` (:func:`gnc.ufm.loss.ufm_objective`),
which has the same minimizers as ``L`` but stays of order one as ``tau -> 0`` where ``L`` itself
is ``~exp(-margin / tau)`` and its gradient vanishes; the convergence test is on the Riemannian
gradient norm of this scaled objective, so the same tolerance means the same thing at every
``tau``. Warm starts (``init_weights``, ``init_features``) let a temperature sweep anneal ``tau``
from large to small (:func:`gnc.ufm.sweep.temperature_sweep`).

Methods. ``"rgd"``: Riemannian gradient descent with Barzilai-Borwein initial steps and a
non-monotone Armijo backtracking line search (Grippo-Lampariello-Lucidi, memory 10). ``"adam"``:
Riemannian Adam (Becigneul & Ganea, ICLR 2019) with one second-moment scalar per row and momentum
transported by re-projection.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import resolve_device
from gnc.io import Record, record_to_dict
from gnc.sphere import normalize_rows, random_points, tangent_project
from gnc.ufm.loss import Objective, ufm_loss, ufm_objective_and_gradient
from gnc.ufm.measure import ufm_metrics

__all__ = [
    "Method",
    "StopReason",
    "UFMRecord",
    "UFMResult",
    "class_labels",
    "riemannian_gradient",
    "solve_ufm",
]

#: The UFM solvers: ``"rgd"`` (Riemannian gradient descent) or ``"adam"``.
Method = Literal["rgd", "adam"]
#: Why a UFM solve stopped.
StopReason = Literal["converged", "max_steps", "line_search_failed", "time_limit"]

_ARMIJO_C = 1e-4
_BACKTRACK = 0.5
_MEMORY = 10
_MIN_STEP = 1e-20
_MAX_STEP = 1e6


@dataclass(frozen=True)
class UFMRecord(Record):
    """One point of the metric trajectory.

    Attributes:
        step: Iteration number (0 is the initial point).
        loss: Mean cross-entropy ``L`` (not the scaled objective).
        objective: Value of the minimized objective.
        gnc1: Within-class variability (:func:`gnc.metrics.gnc1_from_features`).
        gnc2: ``rho(W)``, the exact smallest one-vs-rest distance of the classifier.
        gnc3: Self-duality (:func:`gnc.metrics.gnc3_from_features`).
        grad_norm: Riemannian gradient norm of the objective.
        seconds: Wall time since the start of the solve.
    """

    step: int
    loss: float
    objective: float
    gnc1: float
    gnc2: float
    gnc3: float
    grad_norm: float
    seconds: float


@dataclass(frozen=True)
class UFMResult(Record):
    """Result of :func:`solve_ufm`.

    Attributes:
        weights: Final classifier ``W``, shape ``(K, d)``, unit rows.
        features: Final features ``H``, shape ``(N, d)``, unit rows.
        labels: Class of each feature row, shape ``(N,)``, long.
        tau: Temperature.
        loss: Final mean cross-entropy ``L``.
        objective: Final value of the minimized objective.
        objective_kind: ``"log"`` (``tau * log L``) or ``"plain"`` (``L``).
        method: ``"rgd"`` or ``"adam"``.
        iterations: Number of iterations performed.
        seconds: Wall time of the solve (metric recording included).
        stop_reason: ``"converged"`` (gradient norm ``<= tol``), ``"max_steps"``,
            ``"line_search_failed"`` (no decrease at a step ``< 1e-20``, usually round-off near a
            minimizer) or ``"time_limit"``.
        grad_norm: Final Riemannian gradient norm of the objective.
        tol: The gradient-norm tolerance used.
        trajectory: Metrics recorded every ``record_every`` steps and at the end.
    """

    weights: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    tau: float
    loss: float
    objective: float
    objective_kind: str
    method: str
    iterations: int
    seconds: float
    stop_reason: StopReason
    grad_norm: float
    tol: float
    trajectory: tuple[UFMRecord, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return int(self.weights.shape[0])

    @property
    def feature_dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self.weights.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields with ``num_classes`` and ``feature_dim``; tensors left out.

        ``weights``, ``features`` and ``labels`` are left out; ``trajectory`` is a list of dicts.
        """
        out = record_to_dict(self, omit=("weights", "features", "labels"))
        return {"num_classes": self.num_classes, "feature_dim": self.feature_dim, **out}


def class_labels(
    samples_per_class: int | Sequence[int], num_classes: int, *, device: torch.device | None = None
) -> torch.Tensor:
    """Labels ``0..0, 1..1, ...`` with ``n_k`` copies of class ``k``.

    Args:
        samples_per_class: One count for every class (balanced) or a sequence of ``K`` counts.
        num_classes: ``K``.
        device: Device of the result.

    Returns:
        Long tensor of shape ``(sum_k n_k,)``.

    Example:
        >>> class_labels([2, 1, 3], 3)
        tensor([0, 0, 1, 2, 2, 2])
    """
    K = check_int("num_classes", num_classes, minimum=2)
    if isinstance(samples_per_class, Sequence):
        counts = [check_int("samples_per_class[k]", n, minimum=1) for n in samples_per_class]
        if len(counts) != K:
            raise ValueError(
                f"Expected `samples_per_class` to have {K} entries (one per class), "
                f"but got {len(counts)}."
            )
    else:
        counts = [check_int("samples_per_class", samples_per_class, minimum=1)] * K
    reps = torch.tensor(counts, dtype=torch.long, device=device)
    return torch.repeat_interleave(torch.arange(K, device=device), reps)


def riemannian_gradient(
    weights: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    objective: Objective = "log",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objective value and Riemannian gradients on the product of spheres.

    The Riemannian gradient is the row-wise tangent projection ``g - <x, g> x`` of the Euclidean
    gradient (:func:`gnc.ufm.loss.ufm_objective_and_gradient`).

    Args:
        weights: Unit rows ``W`` of shape ``(K, d)``.
        features: Unit rows ``H`` of shape ``(N, d)``.
        labels: Long tensor of shape ``(N,)``.
        tau: Temperature ``> 0``.
        objective: ``"log"`` or ``"plain"``.

    Returns:
        ``(value, rgrad_W, rgrad_H)`` of shapes ``()``, ``(K, d)``, ``(N, d)``.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> f, gW, gH = riemannian_gradient(W, W, torch.tensor([0, 1]), 1.0)
        >>> float((gW * W).sum().abs()) < 1e-15  # tangent
        True
    """
    value, gW, gH = ufm_objective_and_gradient(weights, features, labels, tau, objective)
    return value, tangent_project(weights, gW), tangent_project(features, gH)


def _init_rows(
    name: str,
    given: torch.Tensor | None,
    rows: int,
    dim: int,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if given is None:
        if generator is not None and generator.device != device:
            gen_device = generator.device
            pts = random_points(rows, dim, generator=generator, dtype=dtype, device=gen_device)
            return pts.to(device)
        return random_points(rows, dim, generator=generator, dtype=dtype, device=device)
    t = check_matrix(name, given, min_rows=rows, cols=dim, nonzero_rows=True)
    if t.shape[0] != rows:
        raise ValueError(f"Expected `{name}` of shape ({rows}, {dim}), but got {tuple(t.shape)}.")
    return normalize_rows(t.detach().to(device=device, dtype=dtype))


def _record(
    step: int,
    W: torch.Tensor,
    H: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    value: float,
    grad_norm: float,
    started: float,
) -> UFMRecord:
    m = ufm_metrics(W, H, labels, directions=False)
    return UFMRecord(
        step=step,
        loss=float(ufm_loss(W, H, labels, tau)),
        objective=value,
        gnc1=m.gnc1,
        gnc2=m.gnc2,
        gnc3=m.gnc3,
        grad_norm=grad_norm,
        seconds=time.perf_counter() - started,
    )


def solve_ufm(
    num_classes: int,
    feature_dim: int,
    samples_per_class: int | Sequence[int] = 1,
    tau: float = 0.1,
    *,
    max_steps: int = 5000,
    tol: float = 1e-9,
    method: Method = "rgd",
    objective: Objective = "log",
    learning_rate: float = 1e-2,
    record_every: int = 0,
    init_weights: torch.Tensor | None = None,
    init_features: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    time_limit: float | None = None,
    progress: bool = False,
) -> UFMResult:
    """Minimize the spherical-UFM cross-entropy at temperature ``tau``.

    Minimizes ``tau * log L(W, H)`` (or ``L`` with ``objective="plain"``) over unit rows
    ``W`` (``(K, d)``) and ``H`` (``(N, d)``), ``L`` the mean cross-entropy of logits
    ``<w_j, h_i> / tau`` (see the module docstring for why the log-domain objective).

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 1``.
        samples_per_class: ``n >= 1`` per class, or a sequence of ``K`` counts (unbalanced).
        tau: Temperature ``> 0``.
        max_steps: Maximum number of iterations (``>= 1``).
        tol: Stop when the Riemannian gradient norm of the objective is ``<= tol``.
        method: ``"rgd"`` (BB steps + non-monotone Armijo) or ``"adam"`` (Riemannian Adam).
        objective: ``"log"`` (``tau * log L``, default) or ``"plain"`` (``L``).
        learning_rate: Step size of ``"adam"`` (ignored by ``"rgd"``).
        record_every: Record GNC metrics every this many steps (and at the start and end);
            ``0`` records nothing (metrics need :mod:`gnc.geometry` and :mod:`gnc.metrics`).
        init_weights: Optional warm start for ``W`` (``(K, d)``, normalized here).
        init_features: Optional warm start for ``H`` (``(N, d)``, normalized here).
        dtype: Floating dtype of the iterates (float64 recommended at small ``tau``).
        device: Device; defaults to the warm start's, else the generator's, else CPU.
        generator: ``torch.Generator`` for the random initial point.
        time_limit: Optional wall-time budget in seconds.
        progress: Show a tqdm bar of the steps (with the gradient norm) on stderr.

    Returns:
        A :class:`UFMResult`.

    Raises:
        ValueError: On invalid sizes, temperatures, counts or warm starts.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> res = solve_ufm(3, 2, 1, tau=0.5, max_steps=500, generator=g)
        >>> res.stop_reason, bool(res.grad_norm <= 1e-9)
        ('converged', True)
        >>> gram = res.weights @ res.weights.T  # equilateral triangle: cosines -1/2
        >>> bool(torch.allclose(gram[0, 1:], torch.tensor(-0.5, dtype=gram.dtype), atol=1e-6))
        True
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=1)
    tau = check_positive("tau", tau)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    tol = check_positive("tol", tol)
    record_every = check_int("record_every", record_every, minimum=0)
    if method not in ("rgd", "adam"):
        raise ValueError(f"Expected `method` in ('rgd', 'adam'), but got {method!r}.")
    if objective not in ("log", "plain"):
        raise ValueError(f"Expected `objective` in ('log', 'plain'), but got {objective!r}.")
    if not dtype.is_floating_point:
        raise TypeError(f"Expected a floating `dtype`, but got {dtype}.")
    if method == "adam":
        learning_rate = check_positive("learning_rate", learning_rate)
    if time_limit is not None:
        time_limit = check_positive("time_limit", time_limit)
    if device is None:
        if init_weights is not None and isinstance(init_weights, torch.Tensor):
            device = init_weights.device
        elif generator is not None:
            device = generator.device
        else:
            device = torch.device("cpu")
    device = resolve_device(device)

    labels = class_labels(samples_per_class, K, device=device)
    N = int(labels.shape[0])
    W0 = _init_rows("init_weights", init_weights, K, d, dtype, device, generator)
    H0 = _init_rows("init_features", init_features, N, d, dtype, device, generator)

    started = time.perf_counter()
    X = torch.cat([W0, H0])

    def fg(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        value, gW, gH = riemannian_gradient(x[:K], x[K:], labels, tau, objective)
        return float(value), torch.cat([gW, gH])

    f, g = fg(X)
    gnorm = float(torch.linalg.vector_norm(g))
    trajectory: list[UFMRecord] = []
    if record_every:
        trajectory.append(_record(0, X[:K], X[K:], labels, tau, f, gnorm, started))

    history = [f]
    step_size = 1.0 / max(gnorm, 1.0)
    m = torch.zeros_like(X)
    v = torch.zeros(X.shape[0], 1, dtype=X.dtype, device=X.device)
    b1, b2, eps = 0.9, 0.999, 1e-12
    stop: StopReason = "max_steps"
    it = 0
    bar = tqdm(
        total=max_steps,
        desc=f"UFM tau={tau:.3g}",
        unit="step",
        leave=False,
        file=sys.stderr,
        disable=not progress,
    )
    while True:
        if gnorm <= tol:
            stop = "converged"
            break
        if it >= max_steps:
            stop = "max_steps"
            break
        if time_limit is not None and time.perf_counter() - started > time_limit:
            stop = "time_limit"
            break
        if method == "adam":
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (g * g).sum(dim=1, keepdim=True)
            mhat = m / (1 - b1 ** (it + 1))
            vhat = v / (1 - b2 ** (it + 1))
            X_new = normalize_rows(X - learning_rate * mhat / (vhat.sqrt() + eps))
            f_new, g_new = fg(X_new)
            m = tangent_project(X_new, m)
        else:
            reference = max(history[-_MEMORY:])
            t = step_size
            while True:
                X_new = normalize_rows(X - t * g)
                f_new, g_new = fg(X_new)
                if math.isfinite(f_new) and f_new <= reference - _ARMIJO_C * t * gnorm**2:
                    break
                t *= _BACKTRACK
                if t < _MIN_STEP:
                    break
            if t < _MIN_STEP:
                stop = "line_search_failed"
                break
            s = X_new - X
            y = g_new - tangent_project(X_new, g)
            sy = float((s * y).sum())
            if sy > 0:
                # alternate the two Barzilai-Borwein step lengths
                bb = float((s * s).sum()) / sy if it % 2 == 0 else sy / float((y * y).sum())
                step_size = min(max(bb, _MIN_STEP * 1e4), _MAX_STEP)
            else:
                step_size = min(2 * t, _MAX_STEP)
        X, f, g = X_new, f_new, g_new
        gnorm = float(torch.linalg.vector_norm(g))
        history.append(f)
        it += 1
        bar.update(1)
        if it % 50 == 0:
            bar.set_postfix(grad=f"{gnorm:.1e}", refresh=False)
        if record_every and it % record_every == 0:
            trajectory.append(_record(it, X[:K], X[K:], labels, tau, f, gnorm, started))
    bar.close()
    if record_every and trajectory[-1].step != it:
        trajectory.append(_record(it, X[:K], X[K:], labels, tau, f, gnorm, started))
    W, H = X[:K].clone(), X[K:].clone()
    return UFMResult(
        weights=W,
        features=H,
        labels=labels,
        tau=tau,
        loss=float(ufm_loss(W, H, labels, tau)),
        objective=f,
        objective_kind=objective,
        method=method,
        iterations=it,
        seconds=time.perf_counter() - started,
        stop_reason=stop,
        grad_norm=gnorm,
        tol=tol,
        trajectory=tuple(trajectory),
    )
