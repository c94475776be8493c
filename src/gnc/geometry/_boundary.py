"""Decide a row on (or within rounding of) the hull of the others, with a certificate either way.

The argmax analysis (:mod:`gnc.geometry.argmax`) solves ``D_k = dist(w_k, conv{w_j : j != k})``
on the raw rows, where a head's large common component (``|w| ~ 0.5`` against differences of
``1e-7`` among never-trained tokens) leaves the engine's float32 passes and Gram products unable to
separate ``D_k ~ 1e-8`` from 0. :func:`refine_row` works in the frame of ``w_k`` instead:

- the differences ``y_j = fl(w_j - w_k)`` of a local set ``L`` of rows (the previous support, the
  ``2d`` nearest rows, then every row that violated a candidate), scaled by a power of two to norm
  at most 1, go through the exact one-vs-rest engine as ``dist(0, conv{y_j})``: the small
  differences are exact (Sterbenz) and no longer hidden under the common component;
- **argmaxable**: its direction ``h`` is checked against *all* rows as
  ``min_j fl(<fl(w_k - w_j), h>) - gamma_{d+2} <|fl(w_k - w_j)|, |h|>`` (the rounding of the
  difference and of the dot product, Higham's bound): a positive value is a certified margin;
- **inside**: its convex weights are polished on their face (two least-squares steps
  ``min |sum (lam_j + delta_j) y_j|`` with ``sum delta = 0``, kept when they stay >= 0), and the
  residual ``|w_k - sum lam_j w_j|`` is bounded rigorously from above, with
  ``|1 - sum lam_j| |w_k|`` (the exact sum, :func:`math.fsum`) for weights that do not sum to 1
  in floating point. It counts as inside when that bound is at the float64 rounding level of the
  rows, ``4 gamma_{d+4} max_k |w_k|`` (:func:`inside_level`): no hidden state can then make
  ``w_k`` win by more than the rounding of its own logits;
- otherwise the rows that violated ``h`` join ``L`` and the local problem is solved again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gnc.geometry._screening import gamma
from gnc.geometry.one_vs_rest import one_vs_rest_distances

__all__ = ["BoundaryDecision", "certified_margin", "inside_level", "refine_row", "residual_bound"]


def inside_level(feature_dim: int, scale: float) -> float:
    """The residual under which a convex combination counts as exact: ``4 gamma_{d+4} scale``.

    The rounding term of :func:`refine_row`'s residual bound alone reaches
    ``gamma_{s+3} sum_j lam_j |y_j| <= 2 gamma_{d+4} scale`` for a support of ``s <= d + 1`` rows of
    norm at most ``scale``; the level leaves as much again for the computed residual.
    """
    return 4.0 * gamma(feature_dim + 4) * scale


@dataclass(frozen=True)
class BoundaryDecision:
    """The outcome of :func:`refine_row` for one row.

    Attributes:
        status: ``"argmaxable"``, ``"inside"`` or ``"undecided"``.
        margin: Certified margin of ``state`` (argmaxable), else NaN.
        state: ``(d,)`` the hidden state (argmaxable), else ``None``.
        support: ``(s,)`` rows of the convex combination (inside), else empty.
        weights: ``(s,)`` its weights (inside), else empty.
        residual: Rigorous upper bound on ``|w_k - sum_j lam_j w_j|`` of the last combination
            (NaN if none).
        local_rows: Size of the final local set.
    """

    status: str
    margin: float
    state: torch.Tensor | None
    support: torch.Tensor
    weights: torch.Tensor
    residual: float
    local_rows: int


def certified_margin(U: torch.Tensor, k: int, h: torch.Tensor) -> torch.Tensor:
    """``(K,)`` certified lower bounds of ``<w_k - w_j, h>`` (``+inf`` at ``k``), float64.

    Computed as ``fl(<fl(w_k - w_j), h>)`` less ``gamma_{d+2} <|fl(w_k - w_j)|, |h|>``, which
    covers the rounding of the difference (``u |w_k - w_j|`` per coordinate) and of the dot
    product. One ``(K, d)`` temporary.

    Example:
        >>> U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
        >>> m = certified_margin(U, 0, torch.tensor([1.0, 0.0], dtype=torch.float64))
        >>> [round(v, 12) for v in m.tolist()[1:]], bool(m[1] < 1.0)
        ([1.0, 2.0], True)
    """
    D = U[k] - U
    m = D @ h - gamma(U.shape[1] + 2) * (D.abs() @ h.abs())
    m[k] = torch.inf
    return m


def residual_bound(U: torch.Tensor, k: int, rows: torch.Tensor, lam: torch.Tensor) -> float:
    """Rigorous upper bound on ``|w_k - sum_j lam_j w_j|`` (float64, weights as given).

    ``|sum_j lam_j (w_j - w_k)|`` with its rounding, plus ``|1 - sum_j lam_j| |w_k|``, the sum of
    the weights bounded by its correctly rounded value and half an ulp.
    """
    Y = U[rows] - U[k]
    r = lam @ Y
    spread = lam.abs() @ Y.abs()  # covers the rounding of y_j (u |y_j|) and of the sum
    d = U.shape[1]
    bound = (float(r.norm()) + gamma(rows.numel() + 3) * float(spread.norm())) * (1 + gamma(d))
    # fsum is the correctly rounded sum: the exact one is within half an ulp of it.
    total = math.fsum(lam.tolist())
    deficit = abs(1.0 - total) + 0.5 * math.ulp(total)
    return bound + deficit * float(U[k].norm()) * (1 + gamma(d))


def _polish(Y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Two least-squares steps on the face: ``min |(lam + delta) Y|`` with ``sum delta = 0``.

    Solved on the CPU whatever the device of ``Y`` (PyTorch's rank-revealing ``gelsd`` driver
    is CPU-only; on CUDA only ``gels``, which assumes full rank, and a face's differences need
    not have it); the weights come back on the device of ``lam``.
    """
    dev = lam.device
    Y, lam = Y.cpu(), lam.cpu()
    s = Y.shape[0]
    big = float(Y.abs().max()) if Y.numel() else 1.0
    A = torch.cat([Y.T, Y.new_full((1, s), max(big, 1e-300))], dim=0)
    for _ in range(2):
        r = lam @ Y
        rhs = torch.cat([-r, r.new_zeros(1)])[:, None]
        delta = torch.linalg.lstsq(A, rhs, driver="gelsd").solution[:, 0]
        new = lam + delta
        if bool((new < 0).any()):
            break
        lam = new
    return lam.to(dev)


def inside_from_support(
    U: torch.Tensor, k: int, rows: torch.Tensor, weights: torch.Tensor, level: float
) -> BoundaryDecision | None:
    """Row ``k`` as "inside" from a solve's own convex combination, if it is good enough.

    The combination ``weights`` of ``rows`` (a one-vs-rest solve's support) is polished on its
    face (:func:`_polish`); when its weights are nonnegative and its rigorous residual bound is
    within ``level`` (:func:`inside_level`), that is the same certificate :func:`refine_row`
    gives, without its local solves. Returns ``None`` otherwise (then call :func:`refine_row`).
    """
    if rows.numel() == 0:
        return None
    lam = _polish(U[rows] - U[k], weights.to(torch.float64))
    if bool((lam < 0).any()):  # not a convex combination
        return None
    residual = residual_bound(U, k, rows, lam)
    if residual <= level:
        return BoundaryDecision("inside", math.nan, None, rows, lam, residual, rows.numel())
    return None


def refine_row(
    U: torch.Tensor, k: int, seed: torch.Tensor | None = None, *, max_iterations: int = 20
) -> BoundaryDecision:
    """Decide whether row ``k`` of the distinct raw rows ``U`` can be the argmax (no bias).

    Args:
        U: ``(K, d)`` float64 pairwise distinct rows.
        k: The row.
        seed: Rows to start the local set with (e.g. a previous support), besides the ``2d``
            nearest.
        max_iterations: Local solves before giving up (``"undecided"``).

    Returns:
        A :class:`BoundaryDecision`.

    Example:
        >>> U = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, 0.5]])
        >>> [refine_row(U.double(), k).status for k in range(5)]
        ['argmaxable', 'argmaxable', 'argmaxable', 'inside', 'inside']
    """
    K, d = U.shape
    dev = U.device
    level = inside_level(d, float(U.norm(dim=1).max()))
    dist = (U - U[k]).norm(dim=1)
    dist[k] = torch.inf
    local = torch.topk(dist, min(K - 1, 2 * d), largest=False).indices
    if seed is not None and seed.numel():
        local = torch.unique(torch.cat([local, seed.to(dev)]))
    local = local[local != k]
    empty_i = torch.empty(0, dtype=torch.long, device=dev)
    empty_f = torch.empty(0, dtype=torch.float64, device=dev)
    residual = math.nan
    # Two starting sets: the 2d nearest rows (and the seed), then, if their solve stalls, only
    # the rows at the scale of the nearest one (a set mixing differences of 1e-7 with ones of
    # 0.5 can stall the engine; far rows then join only once they violate a direction).
    near = local[dist[local] <= 1024.0 * float(dist[local].min())]
    for start in (local, near if 2 <= near.numel() < local.numel() else None):
        if start is None:
            break
        local = start
        for _ in range(max_iterations):
            Y = U[local] - U[k]
            exp = math.frexp(float(Y.norm(dim=1).max()))[1]
            origin = torch.zeros(1, d, dtype=torch.float64, device=dev)
            Z = torch.cat([origin, torch.ldexp(Y, torch.tensor(-exp, device=dev))])
            res = one_vs_rest_distances(Z, normalize=False, classes=[0], tol=1e-15)
            sup = res.support[0]
            live = sup >= 1
            rows = local[sup[live] - 1]
            lam = _polish(Y[sup[live] - 1], res.support_weights[0][live])
            residual = residual_bound(U, k, rows, lam)
            if residual <= level:
                n = local.numel()
                return BoundaryDecision("inside", math.nan, None, rows, lam, residual, n)
            h = res.directions[0]
            if float(h.norm()) == 0.0:
                break
            m = certified_margin(U, k, h)
            low = float(m.min())
            if low > 0:
                return BoundaryDecision(
                    "argmaxable", low, h, empty_i, empty_f, residual, local.numel()
                )
            bad = torch.topk(m, min(64, K), largest=False).indices
            bad = bad[m[bad] <= 0]
            grown = torch.unique(torch.cat([local, bad]))
            if grown.numel() == local.numel():
                break
            local = grown
    return BoundaryDecision("undecided", math.nan, None, empty_i, empty_f, residual, local.numel())
