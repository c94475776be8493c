"""Batched Wolfe min-norm-point solver on small working sets (internal).

Wolfe's algorithm (an exact active-set method for the min-norm point of a polytope given by its
vertices), run in lockstep on a batch of classes, each on the Gram matrix of its working set.
Affine minimizers of nearly flat corrals are recomputed by QR of the point coordinates.
"""

from __future__ import annotations

import torch

__all__: list[str] = []


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
