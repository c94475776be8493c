"""A round's certification: from the last round's row bounds, an int8 ranking, or a pass (internal).

:func:`certify_round` certifies the points ``x_k`` of a round's classes in the cheapest way that
decides each: from the row bounds its last certification kept (:func:`recertify`), from the
violators of an int8 ranking in a first round (:func:`gnc.geometry._seeds.int8_violators`), or
by a pass over all rows (:func:`gnc.geometry._screening.certify`), the classes left over batched
together.

A certification of the points ``x_k`` against all rows costs a pass over ``W``. The next round's
points ``x'_k`` are often close to them (measured on the Gemma 3 head, 65,536 rows: from the third
certification of a class on, ``|x' - x|`` is below 4 % of ``|x|`` for 90 % of the classes), and
then the last pass already decides almost every row:

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

from gnc.geometry._int8 import Int8Rows
from gnc.geometry._screening import (
    Certification,
    _pairs_dot,
    _settle,
    _smallest_per_class,
    certify,
    gamma,
)
from gnc.geometry._seeds import int8_violators
from gnc.geometry.pairwise import iter_blocks

__all__: list[str] = []

_EPS = torch.finfo(torch.float64).eps
#: Keep margin of the row bounds: entries within ``MARGIN |x_k| max_j |w_j|`` above a class's
#: threshold. Measured on the Gemma 3 head (65,536 rows, 4,096 classes, CPU seconds of the
#: solve): 0.015-0.03 26.0-26.2 s, 0.04 27.5 s, 0.08 31.3 s (wider margins keep thousands of
#: rows a class and pass its cap more often), without bounds 34.3 s.
MARGIN = 0.02


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
    kept, kept_lb = cert.kept
    has = torch.isfinite(cert.floor)
    on = has[kept[:, 0]]
    own = (working_set != rows[:, None]) & has[:, None]
    ar = torch.arange(T, device=x.device)
    k = torch.cat([kept[on, 0], ar[:, None].expand_as(working_set)[own]])
    j = torch.cat([kept[on, 1], working_set[own]])
    v = torch.cat([kept_lb[on], torch.full_like(working_set[own], -torch.inf, dtype=x.dtype)])
    L = int(torch.bincount(k, minlength=1).max()) if k.numel() else 0
    out_rows, out_lb = _smallest_per_class(k, j, v, T, L)  # all of each class's entries
    return RowBounds(out_rows, out_lb, cert.floor, x.clone())


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
    new = RowBounds(bounds.rows[done], lb, floor[done], x_d)
    return done, cert, new


def certify_round(
    W: torch.Tensor,
    W32: torch.Tensor,
    rows: torch.Tensor,
    x: torch.Tensor,
    corral: torch.Tensor,
    viol_tol: torch.Tensor,
    n_add: int,
    batch: int,
    max_memory_mib: float,
    max_norm: float,
    q8: Int8Rows | None,
    bounds: RowBounds | None,
    keep: bool,
    q8_rank: Int8Rows | None = None,
) -> tuple[Certification, RowBounds | None]:
    """Certify a round's points ``x`` of the classes ``rows`` against all rows.

    The classes that their row ``bounds`` decide are certified from them
    (:func:`recertify`); the others together, ``batch`` at a time,
    by a pass over ``W`` (one float32 GEMM, float64 where the bound is undecided; candidates
    exclude the corral only: rows the working set held off it may join again). With ``keep``
    those passes keep row bounds; returns the certification and, when every class has them,
    the row bounds at ``x``. With ``q8_rank`` (packed int8 rows) the classes for which
    :func:`gnc.geometry._seeds.int8_violators` finds a violator take those violators instead
    (as a violated class's ``gmin``, ``-inf``: no bound; the caller solves it again).
    """
    T = rows.numel()
    margin = MARGIN * max_norm * x.norm(dim=1) if keep else None
    certs: list[tuple[torch.Tensor, Certification]] = []
    parts: list[tuple[torch.Tensor, RowBounds]] = []
    rest = torch.arange(T, device=W.device)
    n = min(n_add, W.shape[0] - 1)
    if q8_rank is not None:
        cand, v = int8_violators(W, q8_rank, rows, x, corral, n, max_memory_mib)
        v, order = v.sort(dim=1)
        ok = v < -viol_tol[:, None]
        hit = ok[:, 0]
        done = hit.nonzero().squeeze(1)
        Td = done.numel()
        gmin = torch.full((Td,), -torch.inf, dtype=W.dtype, device=W.device)
        yes = torch.ones(Td, dtype=torch.bool, device=W.device)
        cand_d = cand.gather(1, order)[done]
        certs.append((done, Certification(gmin, yes, cand_d, ok[done], Td * n)))
        if keep:
            parts.append((done, empty(Td, W)))
        rest = (~hit).nonzero().squeeze(1)
    elif bounds is not None:  # (a first round has no bounds)
        done, cert_d, b_d = recertify(
            W, rows, x, bounds, corral, viol_tol, n, max_norm, max_memory_mib
        )
        certs.append((done, cert_d))
        parts.append((done, b_d))
        is_rest = torch.ones(T, dtype=torch.bool, device=W.device)
        is_rest[done] = False
        rest = is_rest.nonzero().squeeze(1)
    all_kept = keep
    for a, b in iter_blocks(rest.numel(), batch):
        i = rest[a:b]
        m_i = margin[i] if margin is not None else None
        cert = certify(
            W, W32, rows[i], x[i], corral[i], viol_tol[i], n_add, max_memory_mib, max_norm,
            q8, m_i,
        )  # fmt: skip
        certs.append((i, cert))
        if cert.kept is not None:
            parts.append((i, from_certification(cert, rows[i], x[i], corral[i])))
        else:
            all_kept = False
    merged = certs[0][1] if len(certs) == 1 else _merge(certs, T)
    return merged, scatter(parts, T, W) if all_kept else None


def _merge(parts: list[tuple[torch.Tensor, Certification]], T: int) -> Certification:
    """One certification of ``T`` classes from certifications of a partition of them."""
    c0 = parts[0][1]
    n = c0.candidates.shape[1]
    gmin = torch.empty(T, dtype=c0.gmin.dtype, device=c0.gmin.device)
    violated = torch.empty(T, dtype=torch.bool, device=gmin.device)
    cand = torch.zeros(T, n, dtype=torch.long, device=gmin.device)
    ok = torch.zeros(T, n, dtype=torch.bool, device=gmin.device)
    for i, c in parts:
        gmin[i], violated[i], cand[i], ok[i] = c.gmin, c.violated, c.candidates, c.candidates_ok
    return Certification(gmin, violated, cand, ok, sum(c.rechecked for _, c in parts))
