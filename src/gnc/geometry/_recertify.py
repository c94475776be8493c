"""Certifying a round's points from the row bounds of the last round's certification (internal).

A certification of the points ``x_k`` against all rows (:func:`gnc.geometry._screening.certify`)
costs a pass over ``W``. The next round's points ``x'_k`` are often close to them (measured on
the Gemma 3 head, 65,536 rows: from the third certification of a class on, ``|x' - x|`` is below
4 % of ``|x|`` for 90 % of the classes), and then the last pass already decides almost every row:

    <w_j, x'> >= <w_j, x> - |w_j| |x' - x| >= <w_j, x> - max_j |w_j| |x' - x|.

:class:`RowBounds` keeps, per class, rigorous lower bounds of ``<w_j, x_k>`` for a list of rows
(the entries the streamed certification kept, the working set at ``-inf``) and one ``floor`` for
every other row. :func:`recertify` moves them to the new points by that inequality; a class
whose floor still clears its threshold ``|x'|^2 + <w_k, x'>`` is certified by recomputing in
float64 only its listed rows whose bound does not (a few hundred instead of ``K``), and its
bounds carry on to the round after. Other classes take a full certification. The results mean
what a full certification's mean: the same ``gmin``, ``violated`` and candidates, up to the
order of ties.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gnc.geometry._screening import Certification, _pairs_dot, _settle, _smallest_per_class, gamma

__all__: list[str] = []

_EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class RowBounds:
    """Lower bounds of ``<w_j, x_k>`` for every row ``j != k`` and each class ``k``.

    Attributes:
        rows: ``(T, L)`` listed rows (padding: row 0 with bound ``+inf``).
        lb: ``(T, L)`` float64 lower bounds of ``<w_j, x_k>`` of the listed rows (``-inf``:
            none; ``+inf``: padding).
        floor: ``(T,)`` float64: ``<w_j, x_k> >= floor_k`` for every unlisted row ``j != k``
            (``-inf``: no bound).
        x: ``(T, d)`` float64 the points ``x_k`` the bounds hold for.
    """

    rows: torch.Tensor
    lb: torch.Tensor
    floor: torch.Tensor
    x: torch.Tensor

    def __getitem__(self, i: torch.Tensor | slice) -> RowBounds:
        return RowBounds(self.rows[i], self.lb[i], self.floor[i], self.x[i])


def empty(T: int, W: torch.Tensor) -> RowBounds:
    """Bounds of ``T`` classes that decide nothing (every class takes a full certification)."""
    dev = W.device
    return RowBounds(
        torch.zeros(T, 0, dtype=torch.long, device=dev),
        torch.zeros(T, 0, dtype=W.dtype, device=dev),
        torch.full((T,), -torch.inf, dtype=W.dtype, device=dev),
        torch.zeros(T, W.shape[1], dtype=W.dtype, device=dev),
    )


def _pad(a: torch.Tensor, width: int, value: float) -> torch.Tensor:
    return torch.nn.functional.pad(a, (0, width - a.shape[1]), value=value)


def scatter(parts: list[tuple[torch.Tensor, RowBounds]], T: int, W: torch.Tensor) -> RowBounds:
    """``T`` classes' bounds from parts ``(indices, bounds)`` that partition them."""
    L = max([p.rows.shape[1] for _, p in parts] + [0])
    out = empty(T, W)
    rows = torch.zeros(T, L, dtype=torch.long, device=W.device)
    lb = torch.full((T, L), torch.inf, dtype=W.dtype, device=W.device)
    for i, p in parts:
        rows[i] = _pad(p.rows, L, 0)
        lb[i] = _pad(p.lb, L, torch.inf)
        out.floor[i] = p.floor
        out.x[i] = p.x
    return RowBounds(rows, lb, out.floor, out.x)


def from_certification(
    cert: Certification, rows: torch.Tensor, x: torch.Tensor, working_set: torch.Tensor
) -> RowBounds:
    """The row bounds of a certification that kept them (``cert.kept``) at the points ``x``.

    Lists the kept entries of each class with a floor, and its working set (never swept: the
    certification masks it) at ``-inf``; a class without a floor lists nothing.
    """
    assert cert.kept is not None and cert.floor is not None
    T = rows.numel()
    dev = x.device
    kept, kept_lb = cert.kept
    has = torch.isfinite(cert.floor)
    on = has[kept[:, 0]]
    own = (working_set != rows[:, None]) & has[:, None]
    ar = torch.arange(T, device=dev)
    k = torch.cat([kept[on, 0], ar[:, None].expand_as(working_set)[own]])
    j = torch.cat([kept[on, 1], working_set[own]])
    v = torch.cat([kept_lb[on], torch.full_like(working_set[own], -torch.inf, dtype=x.dtype)])
    order = torch.argsort(k, stable=True)
    k, j, v = k[order], j[order], v[order]
    rank = torch.arange(k.numel(), device=dev) - torch.searchsorted(k, k, side="left")
    L = int(rank.max()) + 1 if rank.numel() else 0
    out_rows = torch.zeros(T, L, dtype=torch.long, device=dev)
    out_lb = torch.full((T, L), torch.inf, dtype=x.dtype, device=dev)
    out_rows[k, rank] = j
    out_lb[k, rank] = v
    return RowBounds(out_rows, out_lb, cert.floor.clone(), x.clone())


def recertify(
    W: torch.Tensor,
    rows: torch.Tensor,
    x: torch.Tensor,
    bounds: RowBounds,
    working_set: torch.Tensor,
    viol_tol: torch.Tensor,
    n: int,
    max_norm: float,
    max_memory_mib: float,
) -> tuple[torch.Tensor, Certification, RowBounds]:
    """Certify the points ``x`` of the classes whose ``bounds`` decide them.

    Arguments are those of :func:`gnc.geometry._screening.certify` (``working_set`` is excluded
    from the candidates only). Returns ``(done, cert, new_bounds)``: the indices of the classes
    certified here, their certification and their bounds at ``x``; the other classes need a
    full certification.
    """
    d = W.shape[1]
    n2 = (x * x).sum(dim=1)
    c = (W[rows] * x).sum(dim=1)
    base = n2 + c
    # |<w_j, x' - x>| <= max_norm |x' - x| (with the rounding of the norm itself), and the
    # rounding of base.
    step = (x - bounds.x).norm(dim=1) * max_norm * (1.0 + 4 * d * _EPS)
    slack = 4 * _EPS * (base.abs() + n2)
    floor = bounds.floor - step
    done = (floor >= base + slack).nonzero().squeeze(1)
    x_d, base_d, slack_d, c_d, n2_d = x[done], base[done], slack[done], c[done], n2[done]
    lb = bounds.lb[done] - step[done, None]
    # Listed rows whose bound does not clear the threshold: recomputed in float64.
    need = lb < (base_d + slack_d)[:, None]
    pairs = need.nonzero()
    pk = pairs[:, 0]
    pj = bounds.rows[done][need]
    dot = _pairs_dot(W, x_d, pj, pk, max_memory_mib)
    exact = dot - c_d[pk]
    Td = done.numel()
    gmin, violated = _settle(
        torch.zeros(Td, dtype=torch.bool, device=x.device),
        n2_d,
        torch.stack([pk, pj], dim=1),
        exact,
        n2_d,
        viol_tol[done],
    )
    # Candidates: the most violating recomputed rows off the working set.
    off = ~(pj[:, None] == working_set[done][pk]).any(dim=1)
    idx, v = _smallest_per_class(pk[off], pj[off], exact[off] - n2_d[pk[off]], Td, n)
    ok = v < -viol_tol[done][:, None]
    cert = Certification(gmin, violated, idx, ok, int(pk.numel()))
    # The bounds at x: exact dot products (less their float64 rounding) where recomputed.
    rnd = gamma(d) * max_norm * n2_d.sqrt()
    lb[need] = dot - rnd[pk] - 4 * _EPS * dot.abs()
    new = RowBounds(bounds.rows[done], lb, floor[done], x_d.clone())
    return done, cert, new
