"""Rows on, inside and just outside the hull, under a large common component, against HiGHS."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from gnc.geometry._boundary import (
    certified_margin,
    inside_from_support,
    inside_level,
    refine_row,
)
from gnc.geometry.argmax import ARGMAXABLE, INSIDE_HULL, argmaxable

D = 8
SPREAD = 2.0**-20  # ~1e-6: the rows differ by this, under a common component of norm ~2
SHIFT = 1e-10  # the outside row's distance to the hull


def constructed_head() -> tuple[torch.Tensor, dict[str, int]]:
    """A shifted cross-polytope c + s {+-e_i} and three test rows (dyadic, so exact)."""
    c = torch.tensor([1.0, 0.5, -0.75, 0.25, 1.25, -0.5, 0.125, 0.875], dtype=torch.float64)
    eye = torch.eye(D, dtype=torch.float64)
    vertices = c + SPREAD * torch.cat([eye, -eye])
    face = c + SPREAD * (eye[0] + eye[1]) / 2  # midpoint of an edge: on the boundary
    inside = c + SPREAD * (eye[0] / 4 - eye[2] / 8)
    normal = torch.ones(D, dtype=torch.float64) / math.sqrt(D)  # facet sum x_i = 1
    outside = c + SPREAD * (eye[0] + eye[1] + eye[2]) / 4 + SPREAD * eye[3] / 4 + SHIFT * normal
    W = torch.cat([vertices, torch.stack([face, inside, outside])])
    return W, {"face": 2 * D, "inside": 2 * D + 1, "outside": 2 * D + 2}


def lp_margin(W: np.ndarray, k: int) -> float:
    """Independent: max t s.t. <w_k - w_j, h> >= t (all j != k), |h|_inf <= 1, by HiGHS.

    The differences are scaled to order 1 first (exactly: a power of two), so that HiGHS'
    tolerances (~1e-9) resolve a distance of 1e-10 among rows of norm 2.
    """
    Y = np.delete(W, k, axis=0) - W[k]
    scale = 2.0 ** -math.frexp(float(np.abs(Y).max()))[1]
    A = np.hstack([Y * scale, np.ones((Y.shape[0], 1))])  # <y_j, h> + t <= 0
    res = linprog(
        np.r_[np.zeros(W.shape[1]), -1.0],
        A_ub=A,
        b_ub=np.zeros(Y.shape[0]),
        bounds=[(-1.0, 1.0)] * W.shape[1] + [(None, 1.0)],
        method="highs",
    )
    assert res.status == 0
    return float(-res.fun) / scale


def exact_margin(W: torch.Tensor, k: int, h: torch.Tensor) -> Fraction:
    """``min_j <w_k - w_j, h>`` in exact rational arithmetic."""
    rows = [[Fraction(float(x)) for x in row] for row in W.tolist()]
    hf = [Fraction(float(x)) for x in h.tolist()]
    logits = [sum((a * b for a, b in zip(row, hf, strict=True)), Fraction(0)) for row in rows]
    return min(logits[k] - v for j, v in enumerate(logits) if j != k)


def test_constructed_rows_match_an_independent_lp() -> None:
    W, rows = constructed_head()
    Wn = W.numpy()
    lp = {name: lp_margin(Wn, k) for name, k in rows.items()}
    assert abs(lp["face"]) < 1e-14 and abs(lp["inside"]) < 1e-14  # not argmaxable
    assert lp["outside"] > 0.5 * SHIFT / math.sqrt(D)  # argmaxable, by about 1e-10
    res = argmaxable(W)
    assert res.certified and res.undecided.numel() == 0
    assert bool((res.status[: 2 * D] == ARGMAXABLE).all())
    assert int(res.status[rows["face"]]) == INSIDE_HULL
    assert int(res.status[rows["inside"]]) == INSIDE_HULL
    assert int(res.status[rows["outside"]]) == ARGMAXABLE
    # The outside row's certificate: its hidden state wins in exact arithmetic, by at least the
    # certified margin.
    k = rows["outside"]
    h = res.hidden_state(W, k)
    assert h is not None
    margin = float(res.margins[k])
    assert 0 < margin <= float(exact_margin(W, k, h))
    # The inside rows' combinations: exact rational residual within the reported bound.
    for pos, kk in enumerate(res.inside.tolist()):
        live = res.support[pos] >= 0
        idx, lam = res.support[pos][live].tolist(), res.support_weights[pos][live].tolist()
        total = sum((Fraction(x) for x in lam), Fraction(0))
        comb = [
            sum((Fraction(w) * Fraction(float(W[j, i])) for w, j in zip(lam, idx, strict=True)))
            / total
            for i in range(D)
        ]
        resid = math.sqrt(sum(float(Fraction(float(W[kk, i])) - comb[i]) ** 2 for i in range(D)))
        assert resid <= float(res.residuals[pos]) + 1e-300
        assert float(res.residuals[pos]) <= inside_level(D, float(W.norm(dim=1).max()))


@pytest.mark.parametrize("name", ["face", "inside", "outside"])
def test_refine_row_decides_each_kind(name: str) -> None:
    W, rows = constructed_head()
    k = rows[name]
    dec = refine_row(W, k)
    expected = "argmaxable" if name == "outside" else "inside"
    assert dec.status == expected
    if dec.state is not None:
        assert (
            dec.margin
            == pytest.approx(SHIFT * float(dec.state.abs().sum()) / math.sqrt(D) / 1, rel=0.5)
            or dec.margin > 0
        )
        assert 0 < dec.margin <= float(exact_margin(W, k, dec.state))
    else:
        assert dec.residual <= inside_level(D, float(W.norm(dim=1).max()))
        assert math.fsum(dec.weights.tolist()) == pytest.approx(1.0, abs=1e-12)


def test_refinement_on_device(device: torch.device) -> None:
    """The boundary rows decided on the device of the head (least squares on the CPU)."""
    W, rows = constructed_head()
    res = argmaxable(W.to(device))
    assert res.status.device.type == device.type
    assert res.certified and res.undecided.numel() == 0
    assert int(res.status[rows["face"]]) == INSIDE_HULL
    assert int(res.status[rows["inside"]]) == INSIDE_HULL
    assert int(res.status[rows["outside"]]) == ARGMAXABLE
    for name in ("face", "inside"):
        dec = refine_row(W.to(device), rows[name])
        assert dec.status == "inside" and dec.weights.device.type == device.type
        assert dec.residual <= inside_level(D, float(W.norm(dim=1).max()))


def test_certified_margin_is_a_lower_bound_of_the_exact_one() -> None:
    gen = torch.Generator().manual_seed(3)
    W = 3.0 + torch.randn(40, 5, generator=gen, dtype=torch.float64) * 1e-3
    h = torch.randn(5, generator=gen, dtype=torch.float64)
    m = certified_margin(W, 7, h)
    rows = [[Fraction(float(x)) for x in row] for row in W.tolist()]
    hf = [Fraction(float(x)) for x in h.tolist()]
    for j in (0, 13, 39):
        exact = sum((a - b) * c for a, b, c in zip(rows[7], rows[j], hf, strict=True))
        assert float(m[j]) <= float(exact)
    assert math.isinf(float(m[7]))


def test_inside_from_support_certifies_a_given_combination_or_declines() -> None:
    # The inside row is c + s (e_0 / 4 - e_2 / 8), a convex combination of the vertices
    # c +- s e_i with weights 3/8, 1/8 (e_0), 1/16, 3/16 (e_2) and 1/48 on the 12 others. A
    # perturbed combination is polished onto the face and certified; a vertex (no combination
    # of the others) and an empty support are declined.
    W, rows = constructed_head()
    k = rows["inside"]
    eye_rows = torch.arange(2 * D)
    lam = torch.full((2 * D,), 1.0 / 48, dtype=torch.float64)
    lam[0], lam[D + 0], lam[2], lam[D + 2] = 3 / 8, 1 / 8, 1 / 16, 3 / 16
    assert abs(float(lam.sum()) - 1.0) < 1e-15
    level = inside_level(D, float(W.norm(dim=1).max()))
    noisy = lam + 1e-9 * torch.linspace(-1, 1, 2 * D, dtype=torch.float64)
    noisy /= noisy.sum()
    dec = inside_from_support(W, k, eye_rows, noisy, level)
    assert dec is not None and dec.status == "inside"
    # The certificate re-derived exactly: weights >= 0, and the residual in rationals.
    assert bool((dec.weights >= 0).all())
    wts = [Fraction(float(x)) for x in dec.weights]
    Wf = [[Fraction(float(v)) for v in row] for row in W.tolist()]
    total = sum(wts)
    res = [
        Wf[k][i] * total - sum(w * Wf[int(j)][i] for w, j in zip(wts, dec.support, strict=True))
        for i in range(D)
    ]
    exact = math.sqrt(float(sum(r * r for r in res))) + abs(float(1 - total)) * float(W[k].norm())
    assert exact <= dec.residual <= level
    # A vertex is not a combination of the other vertices: declined (refine_row decides it).
    others = torch.arange(1, 2 * D)
    even = torch.full((2 * D - 1,), 1.0 / (2 * D - 1), dtype=torch.float64)
    assert inside_from_support(W, 0, others, even, level) is None
    assert inside_from_support(W, 0, others[:0], even[:0], level) is None
