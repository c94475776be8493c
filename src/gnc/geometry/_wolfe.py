"""Batched Wolfe min-norm-point solver on small working sets (internal).

Wolfe's algorithm (an exact active-set method for the min-norm point of a polytope given by its
vertices), run in lockstep on a batch of classes, each on the Gram matrix of its working set.

As in Wolfe's own formulation (Wolfe, "Finding the nearest point in a polytope", Math.
Programming 11, 1976), each element keeps an upper Cholesky factor ``R`` of ``e e^T + G_S / c``
over its corral ``S`` in corral order (positive definite iff the corral is affinely independent);
the affine minimizer of the corral is ``R^{-1} R^{-T} e`` normalized to sum 1. Adding a point costs
one triangular solve (``O(s^2)``); a drop refactors only the elements that dropped. Elements whose
factor loses the affine optimality of its minimizer (nearly flat corrals) switch to the accurate
path, :func:`_affine_minimizers` (bordered Gram system, QR of the point coordinates where that is
not accurate either), which also polishes every final minimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gnc.geometry import _compiled

#: Solve on a CPU with the compiled kernel when numba is installed (else, or when False, the
#: lockstep kernel solves every class).
COMPILED = True

# Points of some batch elements: ``points(i)`` is ``(len(i), m, d)`` for batch indices ``i``
# (built on demand: only elements on the accurate path need coordinates).
Points = Callable[[torch.Tensor], torch.Tensor]

__all__: list[str] = []


def _affine_minimizers(
    G: torch.Tensor, S: torch.Tensor, points: Points | None = None
) -> torch.Tensor:
    """Affine min-norm weights on the corral ``S`` for each batch element.

    Solves ``min a^T G a`` s.t. ``sum_{i in S} a_i = 1``, ``a_i = 0`` off ``S`` through the bordered
    system on the compacted corral.

    Args:
        G: ``(B, m, m)`` Gram matrices of the working sets.
        S: ``(B, m)`` boolean corral masks (each non-empty).
        points: Optional point coordinates by batch element (``(n, m, d)``). When given (and the
            corral has at most ``d + 1`` points), inaccurate minimizers are recomputed by QR of
            the edge vectors
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
    if points is not None and s > 1:
        # Check the affine optimality <y_i, x> = |x|^2 on the corral; where the Gram solve lost
        # it (nearly flat corrals), redo those elements by QR on the point coordinates.
        g = torch.bmm(G, alpha[:, :, None])[:, :, 0]
        n2 = (alpha * g).sum(dim=1, keepdim=True)
        resid = torch.where(S, (g - n2).abs(), 0.0).amax(dim=1)
        gscale = G.diagonal(dim1=1, dim2=2).amax(dim=1)
        inaccurate = ~(resid <= 1e-11 * gscale)
        if bool(inaccurate.any()):
            Y = points(inaccurate.nonzero().squeeze(1))
            if s - 1 <= Y.shape[2]:
                alpha[inaccurate] = _affine_minimizers_qr(
                    Y, order[inaccurate], valid[inaccurate], m
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


def _corral_slots(S: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Working-set columns of each corral in slot order ``(B, cap)`` (0 padded) and its size."""
    cnt = S.sum(dim=1)
    order = torch.argsort((~S).to(torch.int8), dim=1, stable=True)[:, :cap]
    live = torch.arange(order.shape[1], device=S.device)[None, :] < cnt[:, None]
    slot = torch.where(live, order, 0)
    if slot.shape[1] < cap:
        slot = torch.nn.functional.pad(slot, (0, cap - slot.shape[1]))
    return slot, cnt


def _factor(
    G: torch.Tensor, rows: torch.Tensor, slot: torch.Tensor, cnt: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper Cholesky factors of ``e e^T + G_S / scale`` for the batch elements ``rows`` of ``G``.

    In slot order, identity on the padding. Returns ``(R, ok)``: ``ok`` is False where the
    factorization failed (affinely dependent corral to working precision).
    """
    cap = slot.shape[1]
    live = (torch.arange(cap, device=G.device)[None, :] < cnt[:, None]).to(G.dtype)
    Gs = G[rows[:, None, None], slot[:, :, None], slot[:, None, :]]
    M = (Gs / scale[:, None, None] + 1.0) * live[:, :, None] * live[:, None, :]
    M = M + torch.diag_embed(1.0 - live)
    R, info = torch.linalg.cholesky_ex(M, upper=True)
    return R, info == 0


def _grow(R: torch.Tensor, slot: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad factors (identity) and slots (0) to capacity ``cap``."""
    B, c = slot.shape
    R2 = torch.eye(cap, dtype=R.dtype, device=R.device).repeat(B, 1, 1)
    R2[:, :c, :c] = R
    return R2, torch.nn.functional.pad(slot, (0, cap - c))


def _append(
    G: torch.Tensor,
    R: torch.Tensor,
    slot: torch.Tensor,
    cnt: torch.Tensor,
    j: torch.Tensor,
    scale: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append working-set column ``j`` to the corrals of the elements in ``mask`` (``O(s^2)``).

    ``R^T r = e + G_{S j} / scale`` gives the new column of the factor, ``sqrt(1 + G_jj / scale
    - |r|^2)`` its diagonal. Needs ``cnt < cap`` where ``mask``. Returns ``(R, slot, cnt,
    indep)``, updated in place where ``mask & indep``; ``indep`` is False where the new point
    is (to working precision) in the affine hull of the corral (that element is left as is).
    """
    B, cap = slot.shape
    m = G.shape[1]
    slots = torch.arange(cap, device=G.device)[None, :]
    live = slots < cnt[:, None]
    colj = G.gather(2, j[:, None, None].expand(B, m, 1))[:, :, 0]
    col = torch.where(live, colj.gather(1, slot) / scale[:, None] + 1.0, 0.0)
    r = torch.linalg.solve_triangular(R.transpose(1, 2), col[:, :, None], upper=False)[:, :, 0]
    djj = G.diagonal(dim1=1, dim2=2).gather(1, j[:, None])[:, 0] / scale + 1.0
    rho2 = djj - (r * r).sum(dim=1)
    indep = rho2 > 1e-10 * djj
    ok = mask & indep
    at = slots == cnt[:, None]
    newcol = torch.where(at, rho2.clamp_min(0).sqrt()[:, None], r)
    where = cnt.clamp_max(cap - 1)[:, None, None].expand(B, cap, 1)
    newcol = torch.where(ok[:, None], newcol, R.gather(2, where)[:, :, 0])
    R.scatter_(2, where, newcol[:, :, None])
    slot = torch.where(ok[:, None] & at, j[:, None], slot)
    return R, slot, cnt + ok.long(), indep


def _factor_minimizers(
    R: torch.Tensor, slot: torch.Tensor, cnt: torch.Tensor, m: int
) -> torch.Tensor:
    """Affine minimizers ``R^{-1} R^{-T} e`` (normalized) as ``(B, m)`` working-set weights."""
    e = (torch.arange(slot.shape[1], device=R.device)[None, :] < cnt[:, None]).to(R.dtype)
    a = torch.cholesky_solve(e[:, :, None], R, upper=True)[:, :, 0] * e
    a = a / a.sum(dim=1, keepdim=True)
    # Padding slots add 0 (they may repeat a corral column).
    return torch.zeros(slot.shape[0], m, dtype=R.dtype, device=R.device).scatter_add_(1, slot, a)


def _wolfe_batched(
    G: torch.Tensor,
    points: Points | None,
    valid: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    stop_rel: float,
    stop_floor: torch.Tensor,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wolfe's min-norm-point algorithm on ``conv{y_1..y_m}`` given by Grams.

    On a CPU with numba (:data:`COMPILED`), each class is solved by the compiled kernel of
    :mod:`gnc.geometry._compiled`, and the classes it hands back (an affinely dependent or
    nearly flat corral) by the lockstep kernel; elsewhere the lockstep kernel solves all of them,
    in lockstep. The lockstep kernel's final corrals are polished by :func:`_affine_minimizers`.

    Args:
        G: ``(B, m, m)`` Gram matrices ``<y_i, y_j>``.
        points: Optional coordinates of the points by batch element, for accurate affine
            minimizers (see :func:`_affine_minimizers`).
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
    if COMPILED and _compiled.AVAILABLE and G.device.type == "cpu" and lam.shape[0]:
        lam_out, S_out, iters, fb = _compiled.wolfe_compiled(
            G, valid, lam, S, stop_rel, stop_floor, max_iter
        )
        # The compiled kernel's weights are the affine minimizer of the final corral already,
        # from a factor that kept its affine optimality to 1e-11 (measured: polishing them
        # changes no D_k of 8,192 Gemma 3 rows by more than 1e-15 and costs 10 % of the run).
        if bool(fb.any()):
            ids = fb.nonzero().squeeze(1)
            pts = None if points is None else (lambda i: points(ids[i]))
            lam_f, S_f, iters[ids] = _wolfe_lockstep(
                G[ids], valid[ids], lam[ids], S[ids], stop_rel, stop_floor[ids], max_iter, pts
            )
            lam_out[ids] = _polish(G[ids], valid[ids], lam_f, S_f, pts)
    else:
        lam_out, S_out, iters = _wolfe_lockstep(
            G, valid, lam, S, stop_rel, stop_floor, max_iter, points
        )
        lam_out = _polish(G, valid, lam_out, S_out, points)
    return _zero_rows(G, valid, lam_out), iters


def _wolfe_lockstep(
    G: torch.Tensor,
    valid: torch.Tensor,
    lam: torch.Tensor,
    S: torch.Tensor,
    stop_rel: float,
    stop_floor: torch.Tensor,
    max_iter: int,
    points: Points | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The lockstep kernel of :func:`_wolfe_batched`: ``(lam, S, iterations)`` before the polish."""
    B, m = lam.shape
    dev, dt = G.device, G.dtype
    lam_out = lam.clone()
    S_out = S.clone()
    iters = torch.zeros(B, dtype=torch.long, device=dev)
    inf = torch.tensor(torch.inf, dtype=dt, device=dev)
    gdiag = G.diagonal(dim1=1, dim2=2)
    gscale = torch.where(valid, gdiag, 0).amax(dim=1).clamp_min(torch.finfo(dt).tiny)
    # Corral slots and factors; capacity grows with the largest corral.
    cap = min(m, max(8, int(S.sum(dim=1).max()) + 8))
    slot, cnt = _corral_slots(S, cap)
    R, ok = _factor(G, torch.arange(B, device=dev), slot, cnt, gscale)
    # Elements on the accurate path (their factor is not trusted any more).
    fb = ~ok
    # Working copies, compacted when fewer than half of the elements are still running.
    idx = torch.arange(B, device=dev)
    Gc, vc, la, Sa, fl, sc = G, valid, lam.clone(), S.clone(), stop_floor, gscale
    g = torch.bmm(Gc, la[:, :, None])[:, :, 0]
    nm = torch.ones(B, dtype=torch.bool, device=dev)
    running = torch.ones(B, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        n_run = int(running.sum())
        if n_run == 0:
            break
        if n_run < running.numel() // 2:
            done = ~running
            lam_out[idx[done]] = la[done]
            S_out[idx[done]] = Sa[done]
            keep = running
            idx, Gc, vc, la, Sa, fl, sc, nm = (
                idx[keep],
                Gc[keep],
                vc[keep],
                la[keep],
                Sa[keep],
                fl[keep],
                sc[keep],
                nm[keep],
            )
            g, slot, cnt, R, fb = g[keep], slot[keep], cnt[keep], R[keep], fb[keep]
            running = running[keep]
        Bc = running.numel()
        ar = torch.arange(Bc, device=dev)
        # Major cycle: add the most violating point, or stop.
        n2 = (la * g).sum(dim=1)
        gmin, j = torch.where(vc & ~Sa, g, inf).min(dim=1)
        thresh = torch.maximum(stop_rel * n2.clamp_min(0).sqrt(), fl)
        running = running & ~(nm & (n2 - gmin <= thresh))
        add = nm & running
        Sa[ar[add], j[add]] = True
        iters[idx[running]] += 1
        fast_add = add & ~fb
        if bool(fast_add.any()):
            if int(cnt[fast_add].max()) >= cap:
                cap = min(m, cap + 16)
                R, slot = _grow(R, slot, cap)
            R, slot, cnt, indep = _append(Gc, R, slot, cnt, j, sc, fast_add)
            fb = fb | (fast_add & ~indep)
        # Minor cycle step: affine minimizer of the corral; step back to the hull if needed.
        alpha = _factor_minimizers(R, slot, cnt, m)
        ga = torch.bmm(Gc, alpha[:, :, None])[:, :, 0]
        # Affine optimality <y_i, x> = |x|^2 on the corral; where the factor lost it, switch
        # the element to the accurate path.
        n2a = (alpha * ga).sum(dim=1, keepdim=True)
        resid = torch.where(Sa, (ga - n2a).abs(), 0.0).amax(dim=1)
        fb = fb | ~(resid <= 1e-11 * sc)
        slow = fb & running
        if bool(slow.any()):
            ids = idx[slow]
            pts = None if points is None else (lambda i, ids=ids: points(ids[i]))
            alpha[slow] = _affine_minimizers(Gc[slow], Sa[slow], pts)
            ga[slow] = torch.bmm(Gc[slow], alpha[slow][:, :, None])[:, :, 0]
        pos = torch.where(Sa, alpha > 0, torch.ones_like(Sa)).all(dim=1)
        neg = Sa & (alpha <= 0)
        ratio = torch.where(neg, la / (la - alpha), inf)
        theta = ratio.min(dim=1).values.clamp(0.0, 1.0)
        theta = torch.where(pos, torch.ones_like(theta), theta)
        new = la + theta[:, None] * (alpha - la)
        g_new = g + theta[:, None] * (ga - g)
        # Drop corral points that reached zero (at least the one attaining theta).
        hit = neg & (ratio <= theta[:, None])
        drop = (~pos)[:, None] & (hit | (new <= 0))
        S_new = Sa & ~drop
        new = torch.where(S_new, new.clamp_min(0.0), torch.zeros_like(new))
        tot = new.sum(dim=1, keepdim=True)
        new = new / tot
        g_new = g_new / tot
        rr = running[:, None]
        la = torch.where(rr, new, la)
        g = torch.where(rr, g_new, g)
        Sa = torch.where(rr, S_new, Sa)
        nm = torch.where(running, pos, nm)
        # Refactor the elements that dropped points (fast path only).
        redo = (running & ~pos & ~fb).nonzero().squeeze(1)
        if redo.numel():
            slot_d, cnt_d = _corral_slots(Sa[redo], cap)
            R_d, ok_d = _factor(Gc, redo, slot_d, cnt_d, sc[redo])
            R[redo], slot[redo], cnt[redo] = R_d, slot_d, cnt_d
            fb[redo] = fb[redo] | ~ok_d
    lam_out[idx] = la
    S_out[idx] = Sa
    return lam_out, S_out, iters


def _polish(
    G: torch.Tensor,
    valid: torch.Tensor,
    lam_out: torch.Tensor,
    S_out: torch.Tensor,
    points: Points | None,
) -> torch.Tensor:
    """The accurate affine minimizer of every final corral, kept where it is convex."""
    alpha = _affine_minimizers(G, S_out & valid, points)
    good = torch.where(S_out, alpha > 0, torch.ones_like(S_out)).all(dim=1)
    return torch.where(good[:, None], alpha, lam_out)


def _zero_rows(G: torch.Tensor, valid: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Weight 1 on a point at the origin (a duplicate row): the min-norm point, ``D = 0``."""
    inf = torch.tensor(torch.inf, dtype=G.dtype, device=G.device)
    zero, jz = torch.where(valid, G.diagonal(dim1=1, dim2=2), inf).min(dim=1)
    at_zero = zero == 0
    if bool(at_zero.any()):
        lam = lam.clone()
        lam[at_zero] = 0.0
        lam[at_zero, jz[at_zero]] = 1.0
    return lam
