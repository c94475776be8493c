"""Exact one-vs-rest distances with certificates.

For rows ``w_1..w_K`` the one-vs-rest distance of class ``k`` is

    D_k = min_{v in conv{w_j : j != k}} |w_k - v|,

the distance from ``w_k`` to the convex hull of the other rows (Jiang et al., *Generalized Neural
Collapse for a Large Number of Classes*, ICML 2024). With ``y_j = w_j - w_k`` this is the norm of
the min-norm point ``x`` of ``conv{y_j}``; the nearest hull point is ``p_k = w_k + x`` and the
max-margin direction is ``h_k = -x / |x|``.

**Method.** Wolfe's min-norm-point algorithm (an exact active-set method), run in lockstep on a
batch of classes. Each class starts on a *working set* of its nearest neighbours; the solution on
the working set is then checked against all ``K`` rows (tiled, never a ``K x K`` matrix): ``x`` is
optimal over the whole hull iff ``<y_j, x> >= |x|^2`` for every ``j``. Violators join the working
set and the solve is warm-started until none is left.

**Certificate.** For the returned hull point, ``|x|`` is a primal upper bound on ``D_k`` and
``max(0, min_{j != k} <y_j, x> / |x|) = max(0, min_{j != k} <w_k - w_j, h_k>)`` is a dual lower
bound (a feasible margin direction), both evaluated against all rows in float64. Their difference
is the reported gap.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from gnc._checks import check_int, check_matrix, check_positive
from gnc.geometry.pairwise import block_rows, iter_blocks

__all__ = [
    "MinDistanceResult",
    "OneVsRestResult",
    "min_one_vs_rest_distance",
    "one_vs_rest_distances",
]

_EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class OneVsRestResult:
    """Exact one-vs-rest distances of a set of classes, with certificates.

    Attributes:
        classes: ``(C,)`` indices of the classes solved (all ``K`` by default).
        distances: ``(C,)`` ``D_k`` (primal value ``|w_k - p_k|``; an upper bound within ``gaps``).
        lower_bounds: ``(C,)`` certified lower bounds ``max(0, min_{j != k} <w_k - w_j, h_k>)``.
        gaps: ``(C,)`` ``distances - lower_bounds`` (>= 0).
        nearest_points: ``(C, d)`` nearest hull points ``p_k``.
        directions: ``(C, d)`` unit max-margin directions ``h_k`` (zero rows where ``D_k = 0``).
        support: ``(C, s)`` indices of the hull points carrying ``p_k``, ``-1`` padded.
        support_weights: ``(C, s)`` their convex weights (``0`` on padding).
        max_gap: Largest gap.
        certified: Whether ``max_gap <= tol``.
        rho: ``min_k D_k`` over the solved classes.
        argmin: The class attaining ``rho``.
        rounds: Working-set rounds (violator checks against all rows).
        iterations: Largest number of Wolfe iterations of a class.
        seconds: Wall time.
        tol: The gap tolerance used for ``certified``.
    """

    classes: torch.Tensor
    distances: torch.Tensor
    lower_bounds: torch.Tensor
    gaps: torch.Tensor
    nearest_points: torch.Tensor
    directions: torch.Tensor
    support: torch.Tensor
    support_weights: torch.Tensor
    max_gap: float
    certified: bool
    rho: float
    argmin: int
    rounds: int
    iterations: int
    seconds: float
    tol: float


@dataclass(frozen=True)
class MinDistanceResult:
    """``rho = min_k D_k`` with its argmin and a certificate.

    Attributes:
        rho: The minimum one-vs-rest distance (primal value of the argmin class).
        argmin: The class attaining it.
        lower_bound: Certified lower bound on ``rho``: the smaller of the solved classes' dual
            bounds and the unsolved classes' bounds ``|w_k| - max_j <w_j, w_k> / |w_k|``.
        upper_bound: Certified upper bound on ``rho`` (equal to ``rho``).
        gap: ``upper_bound - lower_bound``.
        certified: Whether ``gap <= tol``.
        classes_solved: Classes solved exactly; the rest were excluded by their lower bound.
        num_classes: ``K``.
        seconds: Wall time.
        tol: Gap tolerance used for ``certified``.
    """

    rho: float
    argmin: int
    lower_bound: float
    upper_bound: float
    gap: float
    certified: bool
    classes_solved: int
    num_classes: int
    seconds: float
    tol: float


# --------------------------------------------------------------------------------------------
# Batched Wolfe on a working set
# --------------------------------------------------------------------------------------------


def _affine_minimizers(
    G: torch.Tensor, S: torch.Tensor, Y: torch.Tensor | None = None
) -> torch.Tensor:
    """Affine min-norm weights on the corral ``S`` for each batch element.

    Solves ``min a^T G a`` s.t. ``sum_{i in S} a_i = 1``, ``a_i = 0`` off ``S`` through the bordered
    system on the compacted corral.

    Args:
        G: ``(B, m, m)`` Gram matrices of the working sets.
        S: ``(B, m)`` boolean corral masks (each non-empty).
        Y: Optional ``(B, m, d)`` point coordinates. When given (and the corral has at most
            ``d + 1`` points), the minimizer is computed by QR of the edge vectors
            ``y_i - y_0``, whose condition number is the square root of the Gram's: corrals that
            are nearly flat (optimized codes, with many near-ties) stay accurate.

    Returns:
        ``(B, m)`` weights, zero off the corral.
    """
    B, m = S.shape
    counts = S.sum(dim=1)
    s = int(counts.max())
    order = torch.argsort((~S).to(torch.int8), dim=1, stable=True)[:, :s]
    valid = torch.arange(s, device=S.device)[None, :] < counts[:, None]
    Gs = G.gather(1, order[:, :, None].expand(B, s, m)).gather(2, order[:, None, :].expand(B, s, s))
    scale = Gs.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(torch.finfo(G.dtype).tiny)
    vf = valid.to(G.dtype)
    Gs = Gs / scale[:, None, None] * vf[:, :, None] * vf[:, None, :] + torch.diag_embed(1.0 - vf)
    # The bordered KKT system [[G, 1], [1^T, 0]] is nonsingular whenever the corral is affinely
    # independent, even when G itself is singular (0 in the affine hull of the corral, which
    # Wolfe's algorithm reaches when the corral spans R^d): never solve with G alone.
    A = torch.zeros(B, s + 1, s + 1, dtype=G.dtype, device=G.device)
    A[:, :s, :s] = Gs
    A[:, :s, s] = vf
    A[:, s, :s] = vf
    rhs = torch.zeros(B, s + 1, 1, dtype=G.dtype, device=G.device)
    rhs[:, s, 0] = 1.0
    sol, info = torch.linalg.solve_ex(A, rhs)
    bad = info != 0
    if bool(bad.any()):
        sol[bad] = torch.linalg.pinv(A[bad], hermitian=True) @ rhs[bad]
    alpha_s = sol[:, :s, 0] * vf
    alpha = torch.zeros(B, m, dtype=G.dtype, device=G.device)
    alpha.scatter_(1, order, alpha_s)
    if Y is not None and s > 1 and s - 1 <= Y.shape[2]:
        # Check the affine optimality <y_i, x> = |x|^2 on the corral; where the Gram solve lost
        # it (nearly flat corrals), redo those elements by QR on the point coordinates.
        g = torch.bmm(G, alpha[:, :, None])[:, :, 0]
        n2 = (alpha * g).sum(dim=1, keepdim=True)
        resid = torch.where(S, (g - n2).abs(), 0.0).amax(dim=1)
        gscale = G.diagonal(dim1=1, dim2=2).amax(dim=1)
        inaccurate = ~(resid <= 1e-11 * gscale)
        if bool(inaccurate.any()):
            alpha[inaccurate] = _affine_minimizers_qr(
                Y[inaccurate], order[inaccurate], valid[inaccurate], m
            )
    return alpha


def _affine_minimizers_qr(
    Y: torch.Tensor, order: torch.Tensor, valid: torch.Tensor, m: int
) -> torch.Tensor:
    """Affine minimizers from point coordinates: ``x = y_0 + Z mu``, ``min |x|`` by QR of ``Z``."""
    B, s = order.shape
    d = Y.shape[2]
    Ys = Y.gather(1, order[:, :, None].expand(B, s, d))
    y0 = Ys[:, 0, :]
    vz = valid[:, 1:].to(Y.dtype)
    Z = (Ys[:, 1:, :] - y0[:, None, :]) * vz[:, :, None]  # (B, s-1, d), padding last
    Q, R = torch.linalg.qr(Z.transpose(1, 2))  # (B, d, s-1), (B, s-1, s-1)
    diag = R.diagonal(dim1=1, dim2=2)
    # Padding columns are zero and trailing, so their R rows/columns vanish: put 1 on the
    # diagonal there (their mu is discarded). A tiny diagonal on a real column means the corral
    # is affinely dependent to working precision: fall back to the bordered Gram system.
    scale = diag.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(Y.dtype).tiny)
    degenerate = ((diag.abs() <= 64 * torch.finfo(Y.dtype).eps * scale) & (vz > 0)).any(dim=1)
    R = R + torch.diag_embed(1.0 - vz)
    rhs = -(Q.transpose(1, 2) @ y0[:, :, None])
    mu = torch.linalg.solve_triangular(R, rhs, upper=True)[:, :, 0] * vz
    alpha_s = torch.cat([1.0 - mu.sum(dim=1, keepdim=True), mu], dim=1)
    alpha = torch.zeros(B, m, dtype=Y.dtype, device=Y.device)
    alpha.scatter_(1, order, alpha_s * valid.to(Y.dtype))
    if bool(degenerate.any()):
        Gd = Y[degenerate] @ Y[degenerate].transpose(1, 2)
        Sd = torch.zeros(int(degenerate.sum()), m, dtype=torch.bool, device=Y.device)
        Sd.scatter_(1, order[degenerate], valid[degenerate])
        alpha[degenerate] = _affine_minimizers(Gd, Sd)
    return alpha


def _wolfe_batched(
    G: torch.Tensor,
    Y: torch.Tensor | None,
    valid: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    stop_rel: float,
    stop_floor: torch.Tensor,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wolfe's min-norm-point algorithm on ``conv{y_1..y_m}`` given by Grams, in lockstep.

    Args:
        G: ``(B, m, m)`` Gram matrices ``<y_i, y_j>``.
        Y: Optional ``(B, m, d)`` points, for accurate affine minimizers (see
            :func:`_affine_minimizers`).
        valid: ``(B, m)`` which working-set columns are real points.
        lam: ``(B, m)`` starting convex weights: the affine minimizer of the corral ``S``.
        S: ``(B, m)`` starting corral (affinely independent, ``lam > 0`` on it).
        stop_rel: Stop when ``|x|^2 - min_j <y_j, x> <= max(stop_rel * |x|, stop_floor)``, i.e. when
            the duality gap in ``D`` is below ``stop_rel``.
        stop_floor: ``(B,)`` rounding-level floor of that test.
        max_iter: Iteration cap.

    Returns:
        ``(lam, iterations)``: final weights ``(B, m)`` and iterations used per element ``(B,)``.
    """
    B, _m = lam.shape
    lam_out = lam.clone()
    iters = torch.zeros(B, dtype=torch.long, device=G.device)
    inf = torch.tensor(torch.inf, dtype=G.dtype, device=G.device)
    # Working copies, compacted when fewer than half of the elements are still running.
    idx = torch.arange(B, device=G.device)
    Gc, vc, la, Sa, fl = G, valid, lam.clone(), S.clone(), stop_floor
    Yc = Y
    nm = torch.ones(B, dtype=torch.bool, device=G.device)
    running = torch.ones(B, dtype=torch.bool, device=G.device)
    for _ in range(max_iter):
        n_run = int(running.sum())
        if n_run == 0:
            break
        if n_run < running.numel() // 2:
            lam_out[idx[~running]] = la[~running]
            keep = running
            idx, Gc, vc, la, Sa, fl, nm = (
                idx[keep],
                Gc[keep],
                vc[keep],
                la[keep],
                Sa[keep],
                fl[keep],
                nm[keep],
            )
            if Yc is not None:
                Yc = Yc[keep]
            running = running[keep]
        # Major cycle: add the most violating point, or stop.
        g = torch.bmm(Gc, la[:, :, None])[:, :, 0]
        n2 = (la * g).sum(dim=1)
        gmin, j = torch.where(vc & ~Sa, g, inf).min(dim=1)
        thresh = torch.maximum(stop_rel * n2.clamp_min(0).sqrt(), fl)
        running = running & ~(nm & (n2 - gmin <= thresh))
        add = nm & running
        Sa[add, j[add]] = True
        iters[idx[running]] += 1
        # Minor cycle step: affine minimizer of the corral; step back to the hull if needed.
        alpha = _affine_minimizers(Gc, Sa, Yc)
        pos = torch.where(Sa, alpha > 0, torch.ones_like(Sa)).all(dim=1)
        neg = Sa & (alpha <= 0)
        ratio = torch.where(neg, la / (la - alpha), inf)
        theta = ratio.min(dim=1).values.clamp(0.0, 1.0)
        theta = torch.where(pos, torch.ones_like(theta), theta)
        new = la + theta[:, None] * (alpha - la)
        # Drop corral points that reached zero (at least the one attaining theta).
        hit = neg & (ratio <= theta[:, None])
        drop = (~pos)[:, None] & (hit | (new <= 0))
        S_new = Sa & ~drop
        new = torch.where(S_new, new.clamp_min(0.0), torch.zeros_like(new))
        new = new / new.sum(dim=1, keepdim=True)
        r = running[:, None]
        la = torch.where(r, new, la)
        Sa = torch.where(r, S_new, Sa)
        nm = torch.where(running, pos, nm)
    lam_out[idx] = la
    return lam_out, iters


# --------------------------------------------------------------------------------------------
# Solving a set of classes against all rows
# --------------------------------------------------------------------------------------------


def _default_working_set(K: int, d: int) -> int:
    return min(K - 1, max(16, min(64, 2 * d + 2)))


@dataclass
class _ClassSolution:
    D: torch.Tensor
    lower: torch.Tensor
    points: torch.Tensor
    directions: torch.Tensor
    support: torch.Tensor
    weights: torch.Tensor
    rounds: int
    iterations: int


def _solve_classes(
    W: torch.Tensor,
    cls: torch.Tensor,
    *,
    working_set_size: int,
    max_memory_mib: float,
    tol: float,
    max_rounds: int,
    bar: Any = None,
) -> _ClassSolution:
    """Exact ``D_k`` for the classes ``cls`` of float64 rows ``W`` (no validation).

    ``bar`` (a tqdm bar or None) advances by the classes of each finished block.
    """
    K, d = W.shape
    dev = W.device
    C = cls.numel()
    sq = (W * W).sum(dim=1)
    m0 = min(working_set_size, K - 1)
    # Memory per class in a block: scores against all K rows, Y (m x d), G and solver temporaries.
    m_est = m0 + 64
    per_class = 8 * (3 * K + 2 * m_est * d + 6 * m_est * m_est)
    step = block_rows(C, per_class, max_memory_mib)

    D = torch.empty(C, dtype=W.dtype, device=dev)
    lower = torch.empty(C, dtype=W.dtype, device=dev)
    points = torch.empty(C, d, dtype=W.dtype, device=dev)
    dirs = torch.zeros(C, d, dtype=W.dtype, device=dev)
    supports: list[torch.Tensor] = []
    sweights: list[torch.Tensor] = []
    total_rounds = 0
    max_iters = 0
    for a, b in iter_blocks(C, step):
        rows = cls[a:b]
        Bn = rows.numel()
        ar = torch.arange(Bn, device=dev)
        # Initial working set: nearest neighbours (Euclidean), tiled by this block.
        scores = 2.0 * (W[rows] @ W.T) - sq[None, :]
        scores[ar, rows] = -torch.inf
        ws = scores.topk(m0, dim=1).indices
        del scores
        ws_valid = torch.ones_like(ws, dtype=torch.bool)
        lam = torch.zeros(Bn, m0, dtype=W.dtype, device=dev)
        lam[:, 0] = 1.0
        S = torch.zeros(Bn, m0, dtype=torch.bool, device=dev)
        S[:, 0] = True
        todo = torch.ones(Bn, dtype=torch.bool, device=dev)
        x = torch.zeros(Bn, d, dtype=W.dtype, device=dev)
        gmin_all = torch.zeros(Bn, dtype=W.dtype, device=dev)
        retried = torch.zeros(Bn, dtype=torch.bool, device=dev)
        for rnd in range(max_rounds):
            total_rounds = max(total_rounds, rnd + 1)
            t = todo.nonzero().squeeze(1)
            Y = W[ws[t]] - W[rows[t]][:, None, :]
            Y = Y * ws_valid[t][:, :, None]
            G = torch.bmm(Y, Y.transpose(1, 2))
            scale = torch.where(ws_valid[t], G.diagonal(dim1=1, dim2=2), 0).amax(dim=1)
            # Stop when the gap in D is below a small fraction of tol (or at rounding level).
            floor = 64 * _EPS * scale.clamp_min(1e-300)
            lam_t, it = _wolfe_batched(
                G,
                Y,
                ws_valid[t],
                lam[t],
                S[t] & ws_valid[t],
                1e-3 * tol,
                floor,
                50 * ws.shape[1] + 100,
            )
            max_iters = max(max_iters, int(it.max()) if it.numel() else 0)
            lam[t] = lam_t
            S[t] = lam_t > 0
            x_t = torch.bmm(lam_t[:, None, :], Y)[:, 0, :]
            x[t] = x_t
            # Certify against all rows: g_j = <w_j - w_k, x>, j != k.
            g_all = W @ x_t.T  # (K, |t|) -- tiled by the block size
            g_all = g_all.T - (W[rows[t]] * x_t).sum(dim=1, keepdim=True)
            g_all[torch.arange(t.numel(), device=dev), rows[t]] = torch.inf
            n2 = (x_t * x_t).sum(dim=1)
            gmin, _ = g_all.min(dim=1)
            gmin_all[t] = gmin
            viol_tol = torch.maximum(1e-3 * tol * n2.sqrt(), 64 * _EPS * scale.clamp_min(1e-300))
            violated = (n2 - gmin) > viol_tol
            # Points already in the working set cannot be violators beyond the stop tolerance;
            # add the most violating new points for the classes that still fail.
            if not bool(violated.any()) or rnd == max_rounds - 1:
                todo[t] = False
                break
            vt = t[violated]
            gv = g_all[violated]
            gv.scatter_(1, torch.where(ws_valid[vt], ws[vt], rows[vt, None]), torch.inf)
            n_add = min(max(16, m0 // 2), K - 1)
            new_idx = gv.topk(n_add, dim=1, largest=False)
            new_ok = new_idx.values < (n2[violated] - viol_tol[violated])[:, None]
            # Classes whose only violators are already in the working set: one more solve
            # with the tolerance of the current |x|, then stop (the gap is reported as is).
            stalled = ~new_ok.any(dim=1)
            if bool(stalled.any()):
                again = vt[stalled]
                retried_now = retried[again].clone()
                retried[again] = True
                keep = torch.ones_like(stalled)
                keep[stalled.nonzero().squeeze(1)[retried_now]] = False
                vt, new_idx_i, new_ok = vt[keep], new_idx.indices[keep], new_ok[keep]
            else:
                new_idx_i = new_idx.indices
            if vt.numel() == 0:
                todo[t] = False
                break
            # Grow the working set of the whole block (padding stays invalid).
            ws = torch.cat([ws, torch.zeros(Bn, n_add, dtype=ws.dtype, device=dev)], dim=1)
            ws_valid = torch.cat(
                [ws_valid, torch.zeros(Bn, n_add, dtype=torch.bool, device=dev)], dim=1
            )
            ws[vt, -n_add:] = new_idx_i
            ws_valid[vt, -n_add:] = new_ok
            lam = torch.cat([lam, torch.zeros(Bn, n_add, dtype=W.dtype, device=dev)], dim=1)
            S = torch.cat([S, torch.zeros(Bn, n_add, dtype=torch.bool, device=dev)], dim=1)
            todo = torch.zeros(Bn, dtype=torch.bool, device=dev)
            todo[vt] = True
            # Padding columns point at the class itself (y = 0) but are never valid.
            ws[~ws_valid] = rows[:, None].expand_as(ws)[~ws_valid]
        n2 = (x * x).sum(dim=1)
        Dk = n2.sqrt()
        pos = Dk > 0
        lo = torch.where(pos, gmin_all / torch.where(pos, Dk, 1.0), 0.0).clamp_min(0.0)
        D[a:b] = Dk
        lower[a:b] = torch.minimum(lo, Dk)
        points[a:b] = W[rows] + x
        dirs[a:b] = torch.where(pos[:, None], -x / torch.where(pos, Dk, 1.0)[:, None], 0.0)
        # Compact supports.
        on = lam > 0
        cnt = on.sum(dim=1)
        s = max(1, int(cnt.max()))
        order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :s]
        sup = torch.gather(ws, 1, order)
        wts = torch.gather(lam, 1, order)
        live = torch.arange(s, device=dev)[None, :] < cnt[:, None]
        supports.append(torch.where(live, sup, -1))
        sweights.append(torch.where(live, wts, 0.0))
        if bar is not None:
            bar.update(Bn)
    s_all = max(t.shape[1] for t in supports)
    support = torch.cat(
        [torch.nn.functional.pad(t, (0, s_all - t.shape[1]), value=-1) for t in supports]
    )
    support_w = torch.cat(
        [torch.nn.functional.pad(t, (0, s_all - t.shape[1]), value=0.0) for t in sweights]
    )
    return _ClassSolution(D, lower, points, dirs, support, support_w, total_rounds, max_iters)


def _class_bar(total: int, desc: str, progress: bool) -> Any:
    """A transient tqdm bar of classes on stderr (a no-op unless ``progress``)."""
    return tqdm(
        total=total, desc=desc, unit="class", disable=not progress, leave=False, file=sys.stderr
    )


def _prepare(
    weights: torch.Tensor, normalize: bool, tol: float, working_set_size: int | None
) -> tuple[torch.Tensor, float, int]:
    """Validate the public arguments: float64 rows, the gap tolerance, the working-set size."""
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=normalize)
    W = W.to(torch.float64)
    if normalize:
        W = W / W.norm(dim=1, keepdim=True)
    tol = check_positive("tol", tol)
    K, d = W.shape
    if working_set_size is None:
        return W, tol, _default_working_set(K, d)
    return W, tol, check_int("working_set_size", working_set_size, minimum=1)


def _screen(
    W: torch.Tensor, norms: torch.Tensor, max_memory_mib: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified lower bounds and (loose) upper bounds on every ``D_k``, tiled.

    ``lb_k = |w_k| - max_{j != k} <w_j, w_k> / |w_k|`` (the margin of ``h = w_k / |w_k|``) and
    ``ub_k`` = the distance to the nearest other row. The inner products are computed in float32
    when that is exact enough to be useful, with the rigorous rounding bound
    ``|fl(<a, b>) - <a, b>| <= gamma_{d+2} |a| |b|``, ``gamma_n = n u / (1 - n u)``, subtracted from
    the lower bounds (so they stay certified); float64 otherwise.
    """
    K, d = W.shape
    use32 = K >= 2048 and d <= 100_000
    if W.device.type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        use32 = False  # TF32 matmuls have no useful rounding bound
    if use32:
        u = 2.0**-24
        n = d + 2
        gamma = n * u / (1 - n * u)
        Wc = W.to(torch.float32)
        err = gamma * norms * norms.max() * 1.01 + 4 * u * norms * norms.max()
    else:
        Wc = W
        err = torch.zeros_like(norms)
    lb = torch.empty(K, dtype=W.dtype, device=W.device)
    ub = torch.empty(K, dtype=W.dtype, device=W.device)
    step = block_rows(K, 2 * K * Wc.element_size(), max_memory_mib)
    for a, b in iter_blocks(K, step):
        ip = Wc[a:b] @ Wc.T
        ar = torch.arange(b - a, device=W.device)
        ip[ar, torch.arange(a, b, device=W.device)] = -torch.inf
        best, j = ip.max(dim=1)
        del ip
        lb[a:b] = (norms[a:b] - (best.to(W.dtype) + err[a:b]) / norms[a:b]).clamp_min(0.0)
        ub[a:b] = (W[a:b] - W[j]).norm(dim=1)
    return lb, ub


def one_vs_rest_distances(
    weights: torch.Tensor,
    *,
    normalize: bool = True,
    classes: torch.Tensor | list[int] | None = None,
    max_memory_mib: float = 1024.0,
    working_set_size: int | None = None,
    tol: float = 1e-9,
    max_rounds: int = 100,
    progress: bool = False,
) -> OneVsRestResult:
    """Exact one-vs-rest distances ``D_k = dist(w_k, conv{w_j : j != k})`` with certificates.

    Computation is in float64 on the device of ``weights`` (inputs of lower precision are
    upcast, never the other way round).

    Args:
        weights: ``(K, d)`` classifier rows, ``K >= 2``.
        normalize: Normalize rows to the unit sphere first (the GNC2 convention).
        classes: Indices of the classes to solve (default: all ``K``).
        max_memory_mib: Memory budget of one block of classes (tiling).
        working_set_size: Initial nearest-neighbour working set per class (default
            ``min(K-1, max(16, min(64, 2d+2)))``); only speed depends on it.
        tol: Gap tolerance for ``certified``.
        max_rounds: Cap on working-set rounds.
        progress: Show a tqdm bar of solved classes on stderr.

    Returns:
        An :class:`OneVsRestResult`.

    Raises:
        ValueError: On a non-2-D or non-finite matrix, fewer than two rows, zero rows when
            ``normalize``, or class indices out of range.

    Example:
        >>> import math
        >>> angles = torch.arange(6, dtype=torch.float64) * 2 * math.pi / 6
        >>> hexagon = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> res = one_vs_rest_distances(hexagon)
        >>> round(res.rho, 12), res.certified  # 1 - cos(2 pi / 6)
        (0.5, True)
    """
    start = time.perf_counter()
    W, tol, m0 = _prepare(weights, normalize, tol, working_set_size)
    K = W.shape[0]
    if classes is None:
        cls = torch.arange(K, device=W.device)
    else:
        cls = torch.as_tensor(classes, device=W.device)
        if cls.is_floating_point() or cls.ndim != 1 or cls.numel() == 0:
            raise ValueError(
                f"Expected `classes` to be a non-empty 1-D integer index, but got {classes!r}."
            )
        cls = cls.long()
        if int(cls.min()) < 0 or int(cls.max()) >= K:
            raise ValueError(f"Expected `classes` in [0, {K}), but got {cls.min()}..{cls.max()}.")
    with _class_bar(cls.numel(), f"one-vs-rest K={K}", progress) as bar:
        sol = _solve_classes(
            W,
            cls,
            working_set_size=m0,
            max_memory_mib=max_memory_mib,
            tol=tol,
            max_rounds=max_rounds,
            bar=bar,
        )
    gaps = sol.D - sol.lower
    arg = int(sol.D.argmin())
    max_gap = float(gaps.max())
    return OneVsRestResult(
        classes=cls,
        distances=sol.D,
        lower_bounds=sol.lower,
        gaps=gaps,
        nearest_points=sol.points,
        directions=sol.directions,
        support=sol.support,
        support_weights=sol.weights,
        max_gap=max_gap,
        certified=max_gap <= tol,
        rho=float(sol.D[arg]),
        argmin=int(cls[arg]),
        rounds=sol.rounds,
        iterations=sol.iterations,
        seconds=time.perf_counter() - start,
        tol=tol,
    )


def min_one_vs_rest_distance(
    weights: torch.Tensor,
    *,
    normalize: bool = True,
    max_memory_mib: float = 1024.0,
    working_set_size: int | None = None,
    tol: float = 1e-9,
    chunk_size: int = 256,
    progress: bool = False,
) -> MinDistanceResult:
    """``rho = min_k D_k`` and its argmin, solving only the classes that can attain it.

    Every class has the certified lower bound ``D_k >= |w_k| - max_{j != k} <w_j, w_k> / |w_k|``
    (``1 - s_k`` for unit rows: the margin of ``h = w_k / |w_k|``). Classes are solved exactly in
    increasing order of that bound, and the search stops as soon as the next bound is at least the
    best distance found.

    Args:
        weights: ``(K, d)`` classifier rows.
        normalize: Normalize rows first.
        max_memory_mib: Memory budget of one block (tiling).
        working_set_size: Initial working-set size (see :func:`one_vs_rest_distances`).
        tol: Gap tolerance for ``certified``.
        chunk_size: Classes solved per batch at first (quadruples as the search goes on).
        progress: Show a tqdm bar on stderr: classes settled, solved or excluded by their bound.

    Returns:
        A :class:`MinDistanceResult`.

    Example:
        >>> square = torch.cat([torch.eye(2), -torch.eye(2)]).double()
        >>> res = min_one_vs_rest_distance(square)
        >>> round(res.rho, 12), res.certified  # 1 - cos(2 pi / 4)
        (1.0, True)
    """
    start = time.perf_counter()
    W, tol, m0 = _prepare(weights, normalize, tol, working_set_size)
    K = W.shape[0]
    norms = W.norm(dim=1)
    lb, ub = _screen(W, norms, max_memory_mib)
    order = torch.argsort(lb)
    lb_sorted = lb[order]
    best = float(ub.min())
    best_arg = int(ub.argmin())
    best_lower = 0.0
    solved_lower = torch.inf
    pos = 0
    solved = 0
    chunk = max(1, chunk_size)
    have_solution = False
    # A class whose lower bound is >= best - tol cannot lower rho by more than tol: skipping it
    # keeps the certificate (gap <= tol), and stops the search at once when rho is at rounding
    # level (near-duplicate rows), where the lower bounds 1 - s_k are all ~0.
    with _class_bar(K, f"rho search K={K}", progress) as bar:
        while pos < K and (float(lb_sorted[pos]) < best - tol or not have_solution):
            stop = min(K, pos + chunk)
            # Only classes whose lower bound is still below the best distance.
            cut = int(torch.searchsorted(lb_sorted[pos:stop], lb_sorted.new_tensor(best - tol)))
            stop = max(pos + 1, pos + cut)
            cls = order[pos:stop]
            sol = _solve_classes(
                W,
                cls,
                working_set_size=m0,
                max_memory_mib=max_memory_mib,
                tol=tol,
                max_rounds=100,
                bar=bar,
            )
            solved += cls.numel()
            i = int(sol.D.argmin())
            if not have_solution or float(sol.D[i]) < best:
                best, best_arg = float(sol.D[i]), int(cls[i])
            have_solution = True
            solved_lower = min(solved_lower, float(sol.lower.min()))
            pos = stop
            chunk *= 4
            bar.set_postfix(rho=f"{best:.4g}", refresh=False)
        bar.update(K - pos)  # the rest is excluded by its lower bound
    rest_lower = float(lb_sorted[pos]) if pos < K else torch.inf
    best_lower = min(solved_lower, rest_lower, best)
    gap = best - best_lower
    return MinDistanceResult(
        rho=best,
        argmin=best_arg,
        lower_bound=best_lower,
        upper_bound=best,
        gap=gap,
        certified=gap <= tol,
        classes_solved=solved,
        num_classes=K,
        seconds=time.perf_counter() - start,
        tol=tol,
    )
