"""Certified all-classes brackets of D_k and their quantile intervals, against exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from gnc.analysis.distance_brackets import QUANTILES, bracket_quantiles, distance_brackets
from gnc.analysis.head_geometry import (
    PASSES_PER_ALL_CLASSES,
    HeadGeometryConfig,
    analyze_head_geometry,
    estimate_bracket_seconds,
)
from gnc.geometry import one_vs_rest_distances
from gnc.pretrained import Head


def nnls_distance(U: np.ndarray, k: int) -> float:
    """Independent D_k: min |u_k - sum lam_j u_j| over the simplex, by NNLS with a heavy row."""
    others = np.delete(U, k, axis=0)
    big = 1e4
    A = np.vstack([others.T, big * np.ones(others.shape[0])])
    lam, _ = nnls(A, np.concatenate([U[k], [big]]))
    return float(np.linalg.norm(U[k] - lam @ others))


def random_head(K: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(K, d, generator=gen, dtype=torch.float64)


def real_like_head(K: int, d: int, seed: int) -> torch.Tensor:
    """Rows of a trained-looking head: a shared component, a few clusters, spread norms."""
    gen = torch.Generator().manual_seed(seed)
    common = torch.randn(d, generator=gen, dtype=torch.float64)
    centres = torch.randn(8, d, generator=gen, dtype=torch.float64)
    which = torch.randint(0, 8, (K,), generator=gen)
    noise = 0.6 * torch.randn(K, d, generator=gen, dtype=torch.float64)
    scale = 0.5 + torch.rand(K, 1, generator=gen, dtype=torch.float64)
    return scale * (1.5 * common + centres[which] + noise)


@pytest.mark.parametrize(
    ("make", "K", "d", "seed"),
    [(random_head, 400, 12, 0), (real_like_head, 500, 16, 1), (real_like_head, 300, 6, 2)],
)
@pytest.mark.parametrize("rounds", [1, 2])
def test_brackets_contain_exact_distances_and_quantiles(make, K, d, seed, rounds) -> None:  # type: ignore[no-untyped-def]
    W = make(K, d, seed)
    exact = one_vs_rest_distances(W, keep_points=False)
    assert exact.certified
    br = distance_brackets(W, rounds=rounds)
    assert br.classes.tolist() == list(range(K)) and br.rounds <= rounds
    slack = 1e-12
    assert bool((br.lower_bounds <= exact.distances + slack).all())
    assert bool((exact.distances <= br.distances + slack).all())
    assert bool((br.gaps >= 0).all())
    # Not all exact after so few rounds: the test is about intervals, not points.
    assert br.exact_classes < K and float(br.gaps.max()) > 1e-6
    q = bracket_quantiles(br.lower_bounds, br.distances)
    assert q is not None
    levels = torch.tensor(QUANTILES, dtype=torch.float64)
    true_q = torch.quantile(exact.distances, levels).tolist()
    for level, value in zip(QUANTILES, true_q, strict=True):
        item = q[f"q{round(level * 100):02d}"]
        assert item["lower"] - slack <= value <= item["upper"] + slack
        assert item["width"] == pytest.approx(item["upper"] - item["lower"])
    assert q["mean"]["lower"] - slack <= float(exact.distances.mean()) <= q["mean"]["upper"] + slack


def test_brackets_against_an_independent_nnls_reference() -> None:
    W = real_like_head(200, 5, 3)
    U = (W / W.norm(dim=1, keepdim=True)).numpy()
    br = distance_brackets(W, rounds=1)
    for k in range(0, 200, 17):
        ref = nnls_distance(U, k)
        assert float(br.lower_bounds[k]) <= ref + 1e-6
        assert ref <= float(br.distances[k]) + 1e-6


def test_bracket_quantiles_checks_and_degenerate_cases() -> None:
    assert bracket_quantiles(torch.empty(0), torch.empty(0)) is None
    with pytest.raises(ValueError, match="same shape"):
        bracket_quantiles(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="lower <= upper"):
        bracket_quantiles(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="rounds"):
        distance_brackets(torch.eye(3), rounds=0)
    x = torch.rand(50, dtype=torch.float64)
    q = bracket_quantiles(x, x)
    assert q is not None and all(item["width"] == 0.0 for item in q.values())


def test_head_geometry_brackets_every_class_when_asked_or_within_budget() -> None:
    W = real_like_head(300, 8, 4)
    W[7] = 2.0 * W[3]  # same direction: merged before the brackets
    fast = {"random_baseline": "off", "code_baseline": False}
    # A budget too small even for the brackets falls back to an exact sample.
    small = analyze_head_geometry(
        Head(W, None, "rl"),
        HeadGeometryConfig(time_budget=1e-9, fallback_sample_classes=20, **fast),
    )
    assert small.brackets is None and small.sample_classes.numel() == 20
    # The estimates: the brackets of r rounds cost (r + 1) of the exact run's passes.
    assert estimate_bracket_seconds(PASSES_PER_ALL_CLASSES, 1) == pytest.approx(2.0)
    geo = analyze_head_geometry(
        Head(W, None, "rl"),
        HeadGeometryConfig(time_budget=1e-9, bracket_rounds=1, all_classes="brackets", **fast),
    )
    br = geo.brackets
    assert br is not None and geo.sample_classes.numel() == 0 and not geo.sample_is_all
    assert 7 not in br.classes.tolist() and br.classes.numel() == 299
    full = analyze_head_geometry(
        Head(W, None, "rl"), HeadGeometryConfig(sample_classes=300, **fast)
    )
    assert full.sample_is_all and full.brackets is None
    exact = dict(zip(full.sample_classes.tolist(), full.sample_distances.tolist(), strict=True))
    for k, lo, hi in zip(br.classes.tolist(), br.lower_bounds, br.distances, strict=True):
        assert float(lo) - 1e-12 <= exact[k] <= float(hi) + 1e-12
    d, e = geo.to_dict()["distances_all"], full.to_dict()["distances_all"]
    assert not d["exact"] and e["exact"] and d["size"] == e["size"] == 299
    for key, item in e["quantiles"].items():
        assert d["quantiles"][key]["lower"] - 1e-12 <= item["lower"]
        assert item["upper"] <= d["quantiles"][key]["upper"] + 1e-12
