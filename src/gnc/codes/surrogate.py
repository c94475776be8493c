"""Smooth surrogates of the HardMax and Tammes objectives, annealed towards the hard max.

Softmax codes solve the HardMax problem (Jiang et al., ICML 2024)

    rho* = max_{unit W, H} min_k min_{j != k} <w_k - w_j, h_k>,

whose log-sum-exp smoothing at temperature ``tau`` is

    L_tau(W, H) = tau * log sum_k sum_{j in N(k)} exp(<w_j - w_k, h_k> / tau),

with ``-L_tau <= min_{k, j in N(k)} <w_k - w_j, h_k> <= -L_tau + tau log(K m)``. Tammes codes use
``tau * log sum_{k, j in N(k)} exp(<w_k, w_j> / tau)`` (soft max cosine). ``N(k)`` is a list of the
``m`` strongest competitors of class ``k`` (all others when ``K`` is small), refreshed every few
steps in row blocks, so no ``K x K`` matrix is ever formed. Gradients are written out by hand,
steps are Riemannian (tangent projection, then retraction by normalization) on the product of
spheres, and ``tau`` and the step length decay geometrically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.optimize
import torch

from gnc._runtime import rows_per_budget
from gnc.sphere import normalize_rows, tangent_project

__all__ = [
    "AnnealSchedule",
    "anneal",
    "competitors",
    "riesz_batch",
    "riesz_energy",
    "riesz_lbfgs",
    "softmax_surrogate",
    "tammes_surrogate",
]


def competitors(
    queries: torch.Tensor,
    points: torch.Tensor,
    num_competitors: int,
    *,
    max_memory_mib: float = 256.0,
) -> torch.Tensor:
    """Indices of the ``m`` points with the largest inner product with each query, self excluded.

    Query ``k`` and point ``k`` belong to the same class, so point ``k`` is never returned for
    query ``k``. With ``m = K - 1`` every other class is returned (no scores are computed).

    Args:
        queries: ``(K, d)`` (``H`` for softmax codes, ``W`` for Tammes codes).
        points: ``(K, d)`` class codewords ``W``.
        num_competitors: ``m`` with ``1 <= m <= K - 1``.
        max_memory_mib: Memory budget of one block of scores.

    Returns:
        LongTensor of shape ``(K, m)`` on the points' device.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> competitors(W, W, 1).squeeze(1)
        tensor([1, 0, 1])
    """
    K = points.shape[0]
    m = num_competitors
    device = points.device
    if m >= K - 1:
        base = torch.arange(K - 1, device=device).expand(K, K - 1)
        return base + (base >= torch.arange(K, device=device)[:, None]).long()
    out = torch.empty(K, m, dtype=torch.long, device=device)
    step = rows_per_budget(2 * K * points.element_size(), max_memory_mib, num_rows=K)
    for a in range(0, K, step):
        b = min(K, a + step)
        scores = queries[a:b] @ points.T
        scores[torch.arange(b - a, device=device), torch.arange(a, b, device=device)] = -torch.inf
        out[a:b] = scores.topk(m, dim=1).indices
    return out


def _gathered_scores(
    queries: torch.Tensor, points: torch.Tensor, idx: torch.Tensor | None, max_memory_mib: float
) -> torch.Tensor:
    """``s[k, i] = <points[idx[k, i]], queries[k]>`` blocked (``idx=None``: all, self -inf)."""
    if idx is None:
        s = queries @ points.T
        s.fill_diagonal_(-torch.inf)
        return s
    K, m = idx.shape
    d = points.shape[1]
    out = torch.empty(K, m, dtype=points.dtype, device=points.device)
    step = rows_per_budget(m * d * points.element_size(), max_memory_mib, num_rows=K)
    for a in range(0, K, step):
        b = min(K, a + step)
        out[a:b] = torch.einsum("bmd,bd->bm", points[idx[a:b]], queries[a:b])
    return out


def _weighted_scatter(
    weights: torch.Tensor, queries: torch.Tensor, idx: torch.Tensor | None
) -> torch.Tensor:
    """``g[j] = sum_{k, i: idx[k, i] = j} weights[k, i] queries[k]`` (``idx=None``: dense)."""
    if idx is None:
        return weights.T @ queries
    out = torch.zeros_like(queries)
    d = queries.shape[1]
    out.index_add_(0, idx.reshape(-1), (weights[:, :, None] * queries[:, None, :]).reshape(-1, d))
    return out


def _weighted_gather(
    weights: torch.Tensor, points: torch.Tensor, idx: torch.Tensor | None, max_memory_mib: float
) -> torch.Tensor:
    """``g[k] = sum_i weights[k, i] points[idx[k, i]]`` in row blocks (``idx=None``: dense)."""
    if idx is None:
        return weights @ points
    K, m = idx.shape
    d = points.shape[1]
    out = torch.empty(K, d, dtype=points.dtype, device=points.device)
    step = rows_per_budget(m * d * points.element_size(), max_memory_mib, num_rows=K)
    for a in range(0, K, step):
        b = min(K, a + step)
        out[a:b] = torch.einsum("bm,bmd->bd", weights[a:b], points[idx[a:b]])
    return out


def softmax_surrogate(
    W: torch.Tensor,
    H: torch.Tensor,
    idx: torch.Tensor | None,
    tau: float,
    *,
    max_memory_mib: float = 256.0,
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Smoothed HardMax loss ``L_tau(W, H)`` over competitor lists, with its Euclidean gradients.

    Args:
        W: ``(K, d)`` unit codewords.
        H: ``(K, d)`` unit class directions.
        idx: ``(K, m)`` competitor lists (see :func:`competitors`), or ``None`` for all classes
            (one dense ``K x K`` block: only for small ``K``).
        tau: Temperature ``> 0``.
        max_memory_mib: Memory budget of one gathered ``(rows, m, d)`` block.

    Returns:
        ``(loss, hard_margin, grad_W, grad_H)``: the loss ``L_tau``, the hard value
        ``min_{k, j in N(k)} <w_k - w_j, h_k>`` (an upper bound on ``rho(W)`` when the lists
        hold every class), and Euclidean gradients of shape ``(K, d)``.

    Example:
        >>> W = torch.eye(3, dtype=torch.float64)
        >>> loss, margin, gW, gH = softmax_surrogate(W, W.clone(), None, 0.1)
        >>> round(margin, 6)
        1.0
    """
    own = (W * H).sum(dim=1)
    z = (_gathered_scores(H, W, idx, max_memory_mib) - own[:, None]) / tau
    hard = float(-(z.max()) * tau)
    lse = torch.logsumexp(z.reshape(-1), dim=0)
    p = torch.exp(z - lse)
    psum = p.sum(dim=1, keepdim=True)
    grad_H = _weighted_gather(p, W, idx, max_memory_mib) - psum * W
    grad_W = _weighted_scatter(p, H, idx) - psum * H
    return float(lse) * tau, hard, grad_W, grad_H


def tammes_surrogate(
    W: torch.Tensor,
    idx: torch.Tensor | None,
    tau: float,
    *,
    max_memory_mib: float = 256.0,
) -> tuple[float, float, torch.Tensor]:
    """Smoothed max cosine ``tau * log sum_{k, j in N(k)} exp(<w_k, w_j> / tau)`` and its gradient.

    Args:
        W: ``(K, d)`` unit codewords.
        idx: ``(K, m)`` neighbour lists, or ``None`` for all pairs (small ``K`` only).
        tau: Temperature ``> 0``.
        max_memory_mib: Memory budget of one gathered block.

    Returns:
        ``(loss, hard_max_cosine, grad_W)``.

    Example:
        >>> W = torch.eye(2, dtype=torch.float64)
        >>> loss, s, g = tammes_surrogate(W, None, 0.1)
        >>> s
        0.0
    """
    s = _gathered_scores(W, W, idx, max_memory_mib) / tau
    hard = float(s.max()) * tau
    lse = torch.logsumexp(s.reshape(-1), dim=0)
    p = torch.exp(s - lse)
    grad = _weighted_gather(p, W, idx, max_memory_mib) + _weighted_scatter(p, W, idx)
    return float(lse) * tau, hard, grad


def riesz_energy(
    W: torch.Tensor,
    idx: torch.Tensor | None,
    exponent: float,
    *,
    max_memory_mib: float = 256.0,
) -> tuple[float, float, torch.Tensor]:
    """Riesz energy ``sum_{k, j in N(k)} |w_k - w_j|^{-s}`` and its gradient (spreads points out).

    Used as a first phase: from random starts its minimizers land in the basin of the known
    universally optimal codes (E8, 600-cell, ...) far more often than the hard objectives do.

    Returns:
        ``(energy, max_cosine, grad_W)``.

    Example:
        >>> W = torch.eye(2, dtype=torch.float64)
        >>> round(riesz_energy(W, None, 2.0)[0], 6)  # two ordered pairs at distance sqrt(2)
        1.0
    """
    c = _gathered_scores(W, W, idx, max_memory_mib)
    hard = float(c.max())
    sq = (2.0 - 2.0 * c).clamp_min(1e-12)
    if idx is None:
        sq.fill_diagonal_(torch.inf)
    energy = sq.pow(-exponent / 2)
    dc = exponent * sq.pow(-exponent / 2 - 1)  # d energy / d cosine
    grad = _weighted_gather(dc, W, idx, max_memory_mib) + _weighted_scatter(dc, W, idx)
    return float(energy.sum()), hard, grad


@dataclass(frozen=True)
class AnnealSchedule:
    """Schedules of temperature and step length for :func:`anneal`.

    Attributes:
        steps: Number of Riemannian steps.
        tau_start: First temperature (geometric decay to ``tau_end``; unused for ``"riesz"``).
        tau_end: Last temperature.
        lr_start: First step length (largest row displacement of one step).
        lr_end: Last step length (geometric decay).
        num_competitors: Competitor list length ``m`` (``None``: every other class).
        refresh_every: Steps between competitor-list refreshes and history records.
        exponent: Riesz exponent ``s`` for the ``"riesz"`` phase.
    """

    steps: int = 2000
    tau_start: float = 0.05
    tau_end: float = 1e-4
    lr_start: float = 0.05
    lr_end: float = 1e-4
    num_competitors: int | None = None
    refresh_every: int = 10
    exponent: float = 6.0

    def at(self, step: int) -> tuple[float, float]:
        """``(tau, lr)`` at ``step`` (geometric interpolation)."""
        f = step / max(1, self.steps - 1)
        tau = self.tau_start * (self.tau_end / self.tau_start) ** f
        lr = self.lr_start * (self.lr_end / self.lr_start) ** f
        return tau, lr


def anneal(
    W: torch.Tensor,
    H: torch.Tensor | None,
    schedule: AnnealSchedule,
    *,
    kind: Literal["softmax", "tammes", "riesz"] = "softmax",
    max_memory_mib: float = 256.0,
    dense_limit: int = 4096,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float], int]:
    """Riemannian descent on an annealed surrogate; returns ``(W, H, history, steps_done)``.

    Each step moves the rows along the Riemannian gradient (tangent projection), scaled so that
    the largest row displacement equals the scheduled step length, then retracts by
    normalization. ``history`` holds the hard objective on the competitor lists (``min margin``
    for ``"softmax"``, ``1 - max cosine`` otherwise) every ``refresh_every`` steps. ``H`` is
    returned unchanged (or ``W``) for the Tammes and Riesz phases.

    Args:
        W: ``(K, d)`` start codewords.
        H: ``(K, d)`` start directions (``None``: start at ``W``, as the self-dual guess).
        schedule: Step count, temperatures, step lengths and competitor lists.
        kind: Which surrogate to descend.
        max_memory_mib: Memory budget of one block.
        dense_limit: With every class as competitor and ``K <= dense_limit`` one ``K x K``
            block is used instead of gathered lists.
        should_stop: Polled every step; ``True`` stops early (the callers' time limits and
            deadlines shared between phases need this event, so it is a callable).

    Example:
        >>> from gnc.sphere import random_points
        >>> W0 = random_points(4, 3, generator=torch.Generator().manual_seed(0))
        >>> W, H, hist, n = anneal(W0, None, AnnealSchedule(steps=200))
        >>> abs(hist[-1] - 4 / 3) < 0.05  # near the regular simplex, rho = 4/3
        True
    """
    K = W.shape[0]
    m = K - 1 if schedule.num_competitors is None else min(K - 1, schedule.num_competitors)
    W = normalize_rows(W)
    H = normalize_rows(W.clone() if H is None else H)
    dense = m >= K - 1 and dense_limit >= K
    history: list[float] = []

    def lists() -> torch.Tensor | None:
        if dense:
            return None
        queries = H if kind == "softmax" and H is not None else W
        return competitors(queries, W, m, max_memory_mib=max_memory_mib)

    idx = lists()
    done = 0
    for step in range(schedule.steps):
        if should_stop is not None and should_stop():
            break
        if step and step % schedule.refresh_every == 0 and m < K - 1:
            idx = lists()
        tau, lr = schedule.at(step)
        if kind == "softmax":
            _, hard, gW, gH = softmax_surrogate(W, H, idx, tau, max_memory_mib=max_memory_mib)
            gW = tangent_project(W, gW)
            gH = tangent_project(H, gH)
            scale = float(torch.maximum(gW.norm(dim=1).max(), gH.norm(dim=1).max()))
            if scale == 0.0 or not math.isfinite(scale):
                break
            W = normalize_rows(W - (lr / scale) * gW)
            H = normalize_rows(H - (lr / scale) * gH)
            value = hard
        else:
            if kind == "tammes":
                _, hard, g = tammes_surrogate(W, idx, tau, max_memory_mib=max_memory_mib)
            else:
                _, hard, g = riesz_energy(W, idx, schedule.exponent, max_memory_mib=max_memory_mib)
            g = tangent_project(W, g)
            scale = float(g.norm(dim=1).max())
            if scale == 0.0 or not math.isfinite(scale):
                break
            W = normalize_rows(W - (lr / scale) * g)
            value = 1.0 - hard
        done = step + 1
        if step % schedule.refresh_every == 0 or step == schedule.steps - 1:
            history.append(value)
    if kind != "softmax":
        H = W.clone()
    return W, H, history, done


def riesz_batch(
    W: torch.Tensor,
    *,
    steps: int,
    exponent_start: float = 1.0,
    exponent_end: float | torch.Tensor = 64.0,
    lr_start: float = 0.05,
    lr_end: float = 1e-4,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, int]:
    """Riesz-energy descent of ``R`` independent starts at once, with the exponent increasing.

    ``W`` holds ``R`` codes as one ``(R, K, d)`` tensor (dense ``K x K`` Gram blocks: small
    ``K`` only). Step ``t`` descends ``sum_{i != j} |w_i - w_j|^{-s_t}`` with ``s_t`` and the
    step length growing and decaying geometrically; each code moves along its Riemannian
    gradient scaled so that its largest row displacement is the step length, then is
    renormalized. As ``s -> inf`` the energy is dominated by the closest pairs (the Tammes
    objective), the classic continuation to good spherical codes. ``exponent_end`` may differ
    per code (a tensor of shape ``(R,)``): lower final exponents reach more varied basins.
    Distances are rescaled by each
    code's smallest one before the power, so large exponents do not overflow (the step
    direction is invariant to that scale).

    Returns:
        ``(W, steps_done)``.

    Example:
        >>> from gnc.sphere import random_points
        >>> g = torch.Generator().manual_seed(0)
        >>> W0 = torch.stack([random_points(4, 3, generator=g) for _ in range(2)])
        >>> W, n = riesz_batch(W0, steps=300)
        >>> bool(((W @ W.transpose(1, 2)).diagonal(dim1=1, dim2=2) - 1).abs().max() < 1e-12)
        True
        >>> bool((W @ W.transpose(1, 2) - 2 * torch.eye(4)).amax() < -1 / 3 + 1e-3)  # tetrahedra
        True
    """
    K = W.shape[1]
    eye = torch.eye(K, dtype=torch.bool, device=W.device)
    W = normalize_rows(W)
    end = torch.as_tensor(exponent_end, dtype=W.dtype, device=W.device).reshape(-1, 1, 1)
    done = 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            break
        f = step / max(1, steps - 1)
        s = exponent_start * (end / exponent_start) ** f
        lr = lr_start * (lr_end / lr_start) ** f
        sq = (2.0 - 2.0 * (W @ W.transpose(1, 2))).masked_fill(eye, math.inf).clamp_min(1e-12)
        scaled = sq / sq.amin(dim=(1, 2), keepdim=True)
        g = tangent_project(W, scaled.pow(-s / 2 - 1) @ W)
        scale = g.norm(dim=-1).amax(dim=1)[:, None, None]
        if not bool(torch.isfinite(scale).all()):
            break
        W = normalize_rows(W - (lr / scale.clamp_min(1e-300)) * g)
        done = step + 1
    return W, done


def riesz_lbfgs(
    W: torch.Tensor, exponent: float, *, max_iterations: int = 3000
) -> tuple[torch.Tensor, int]:
    """Minimize the Riesz energy ``sum_{i < j} |w_i - w_j|^{-s}`` by L-BFGS; ``(W, iterations)``.

    The rows are parametrized as ``w_i = x_i / |x_i|`` (unconstrained in ``x``), and the energy
    with its exact gradient (dense ``K x K``: small ``K`` only) goes to SciPy's L-BFGS-B in
    float64. Universally optimal codes (E8, the 600-cell, Higman-Sims, ...) minimize every such
    energy (Cohn and Kumar, JAMS 2007), and quasi-Newton steps reach a minimum in a few hundred
    iterations where normalized gradient steps need thousands.

    Example:
        >>> from gnc.sphere import random_points
        >>> W0 = random_points(6, 3, generator=torch.Generator().manual_seed(0))
        >>> W, n = riesz_lbfgs(W0, 1.0)
        >>> round(float((W @ W.T - 2 * torch.eye(6)).max()), 6)  # the octahedron
        0.0
    """
    K, d = W.shape
    s = float(exponent)
    upper = np.triu(np.ones((K, K), dtype=bool), 1)

    def energy(x: np.ndarray) -> tuple[float, np.ndarray]:
        X = x.reshape(K, d)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        U = X / norms
        sq = np.where(upper, np.maximum(2.0 - 2.0 * (U @ U.T), 1e-12), np.inf)
        value = float(np.sum(sq ** (-s / 2)))
        C = s * sq ** (-s / 2 - 1)
        C = C + C.T
        grad_u = C @ U
        grad_x = (grad_u - (grad_u * U).sum(1, keepdims=True) * U) / norms
        return value, grad_x.reshape(-1)

    x0 = W.detach().to("cpu", torch.float64).numpy().reshape(-1)
    res = scipy.optimize.minimize(
        energy,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "gtol": 1e-12, "ftol": 1e-15},
    )
    out = torch.from_numpy(res.x.reshape(K, d)).to(device=W.device, dtype=W.dtype)
    return normalize_rows(out), int(res.nit)
