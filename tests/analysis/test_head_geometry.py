"""GNC2 analysis of heads: duplicate groups, exact rho with coinciding rows merged, baselines."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

import gnc.analysis.reference as ref_module
from gnc.analysis import (
    HeadGeometryConfig,
    analyze_head_geometry,
    duplicate_groups,
    random_rho,
    random_rho_bracket,
    reduced_shape,
    reference_values,
)
from gnc.pretrained import Head

FAST = HeadGeometryConfig(random_baseline="off", code_baseline=False)


def polygon(K: int, phase: float = 0.0) -> torch.Tensor:
    angles = phase + torch.arange(K, dtype=torch.float64) * 2 * math.pi / K
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def circle_rho(angles: np.ndarray) -> float:
    """Closed form for distinct points on the unit circle, all gaps < pi.

    The hull of the others near w_k is the chord between its angular neighbours at gaps a, b,
    whose distance from w_k is cos((b - a)/2) - cos((a + b)/2) = 2 sin(a/2) sin(b/2).
    """
    t = np.sort(np.mod(angles, 2 * np.pi))
    gaps = np.diff(np.concatenate([t, [t[0] + 2 * np.pi]]))
    assert gaps.max() < np.pi
    before = np.roll(gaps, 1)
    return float(np.min(2 * np.sin(before / 2) * np.sin(gaps / 2)))


def nnls_one_vs_rest_distance(U: np.ndarray, k: int, penalty: float = 1e4) -> float:
    """Independent reference: min |u_k - V^T lam| over the simplex via NNLS with a heavily
    weighted row enforcing sum(lam) = 1 (the classic Lawson-Hanson reformulation)."""
    V = np.delete(U, k, axis=0)
    A = np.vstack([V.T, penalty * np.ones((1, V.shape[0]))])
    b = np.concatenate([U[k], [penalty]])
    lam, _ = nnls(A, b, maxiter=50 * V.shape[0])
    lam /= lam.sum()
    return float(np.linalg.norm(U[k] - V.T @ lam))


# ------------------------------------------------------------------------------------------
# duplicate_groups
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1024.0, 1e-6])
def test_duplicate_groups_against_brute_force(budget: float) -> None:
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    # rows 9, 10 copy row 2 (scaled), row 11 copies row 9 (chain), row 12 copies row 5.
    W = torch.cat([base, 3 * base[[2]], 0.5 * base[[2]], 2 * base[[2]], 7 * base[[5]]])
    groups = duplicate_groups(W, tolerance=1e-12, max_memory_mib=budget)
    expected = list(range(13))
    expected[9] = expected[10] = expected[11] = 2
    expected[12] = 5
    assert groups.representative.tolist() == expected
    assert (groups.num_groups, groups.num_merged, groups.largest) == (2, 4, 4)
    assert groups.distinct.tolist() == [i for i in range(13) if expected[i] == i]
    U = (W / W.norm(dim=1, keepdim=True)).numpy()
    G = U @ U.T
    np.fill_diagonal(G, -np.inf)
    np.testing.assert_allclose(groups.max_cosines.numpy(), G.max(axis=1), atol=1e-14)
    D = np.linalg.norm(U[:, None] - U[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_allclose(groups.nearest_distance.numpy(), D.min(axis=1), atol=1e-7)


def test_duplicate_tolerance_is_respected() -> None:
    W = torch.tensor([[1.0, 0.0], [math.cos(1e-3), math.sin(1e-3)], [0.0, 1.0]])
    # 1 - cos(1e-3) = 5e-7
    assert duplicate_groups(W, tolerance=1e-9).num_merged == 0
    assert duplicate_groups(W, tolerance=1e-6).num_merged == 1
    with pytest.raises(ValueError, match="tolerance"):
        duplicate_groups(W, tolerance=1.5)
    with pytest.raises(ValueError, match="nonzero rows"):
        duplicate_groups(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


# ------------------------------------------------------------------------------------------
# analyze_head_geometry
# ------------------------------------------------------------------------------------------


def test_polygon_closed_form() -> None:
    K = 9
    head = Head(3.0 * polygon(K, 0.3), tuple("abcdefghi"), "gon", {}, "character")
    geo = analyze_head_geometry(head, FAST)
    value = 1 - math.cos(2 * math.pi / K)
    assert geo.rho_distinct is None and geo.duplicates.num_merged == 0
    assert geo.rho_all.rho == pytest.approx(value, abs=1e-12)
    assert geo.rho_all.certified and geo.rho_all.label == head.decode(geo.rho_all.argmin)
    assert geo.sample_is_all and geo.sample_classes.tolist() == list(range(K))
    np.testing.assert_allclose(geo.sample_distances.numpy(), value, atol=1e-12)
    assert geo.max_cosine == pytest.approx(math.cos(2 * math.pi / K), abs=1e-14)


def test_coinciding_rows_are_merged() -> None:
    K = 7
    P = polygon(K)
    W = torch.cat([P, 2.0 * P[[4]], P[[1]]])  # rows 7 and 8 duplicate classes 4 and 1
    labels = tuple(f"c{i}" for i in range(K + 2))
    head = Head(W, labels, "dups", {}, "character")
    geo = analyze_head_geometry(head, FAST)
    assert geo.rho_all.rho == 0.0 and geo.rho_all.certified
    assert geo.rho_all.argmin in (1, 4, 7, 8)
    assert geo.duplicates.num_merged == 2 and geo.duplicates.num_groups == 2
    assert sorted(map(sorted, geo.duplicate_examples)) == [["c1", "c8"], ["c4", "c7"]]
    assert geo.rho_distinct is not None
    assert geo.rho_distinct.rho == pytest.approx(1 - math.cos(2 * math.pi / K), abs=1e-12)
    assert geo.rho_distinct.certified and geo.rho_distinct.num_classes == K
    assert geo.rho_distinct.argmin < K  # an index into the head's rows
    assert geo.sample_classes.tolist() == list(range(K))


def test_to_dict_is_plain_json_with_the_shared_names() -> None:
    import json

    K = 7
    P = polygon(K)
    W = torch.cat([P, P[[4]], 0.25 * (P[[0]] + P[[1]])])  # an exact twin and an inner row
    head = Head(W, tuple(f"c{i}" for i in range(K + 2)), "dups", {}, "character")
    config = HeadGeometryConfig(argmax=True, random_baseline="full", code_baseline=False)
    geo = analyze_head_geometry(head, config)
    d = json.loads(json.dumps(geo.to_dict(), allow_nan=False))  # no NaN anywhere
    exact = geo.rho_distinct
    assert exact is not None and d["rho"] == exact.rho == d["gnc2_distinct"]
    assert d["num_classes"] == K + 2 and d["dim"] == 2 and d["coinciding_rows"] == 1
    r = d["rho_distinct"]
    assert r["lower"] <= r["rho"] <= r["upper"] and r["gap"] == pytest.approx(
        r["upper"] - r["lower"]
    )
    assert d["rho_all"]["lower"] == 0.0 and d["rho_all"]["rho"] == 0.0
    assert d["rho_star_upper"] == d["reference"]["rho_star_upper"] >= exact.rho
    assert "upper_bound" not in d and "upper_bound" not in d["reference"]
    assert d["duplicates"]["rows_merged"] == 1 and d["duplicates"]["examples"] == [["c4", "c7"]]
    # The inner row (index 8) can never be the argmax; rows 4 and 7 coincide and only tie.
    assert d["unargmaxable"] == 1 and d["argmax"]["examples"][0] == {
        **d["argmax"]["examples"][0],
        "id": 8,
        "token": "c8",
    }
    pair = d["argmax"]["coinciding_examples"]
    assert [(e["id"], e["twin"], e["token"]) for e in pair] == [(4, 4, "c4"), (7, 4, "c7")]
    assert d["distances_sample"]["is_all"] and d["distances_sample"]["size"] == K + 1
    assert d["distances_sample"]["quantiles"]["q00"] == pytest.approx(min(geo.sample_distances))
    assert d["certified"] is True


def test_random_circle_points_match_closed_form() -> None:
    rng = np.random.default_rng(5)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    angles = angles[np.diff(np.concatenate([angles, [angles[0] + 2 * np.pi]])) > 1e-3]
    W = torch.from_numpy(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    geo = analyze_head_geometry(Head(W, None, "circle"), FAST)
    assert geo.rho_all.rho == pytest.approx(circle_rho(angles), rel=1e-9, abs=1e-12)
    assert geo.rho_all.certified


def test_sample_distances_match_nnls_reference() -> None:
    gen = torch.Generator().manual_seed(11)
    W = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    config = HeadGeometryConfig(
        sample_classes=6, seed=2, random_baseline="off", code_baseline=False
    )
    geo = analyze_head_geometry(Head(W, None, "rand"), config)
    assert not geo.sample_is_all and geo.sample_classes.numel() == 6
    assert geo.sample_classes.tolist() == sorted(geo.sample_classes.tolist())
    U = (W / W.norm(dim=1, keepdim=True)).numpy()
    for k, value in zip(geo.sample_classes.tolist(), geo.sample_distances.tolist(), strict=True):
        assert value == pytest.approx(nnls_one_vs_rest_distance(U, k), abs=1e-6)
    assert geo.rho_all.rho <= float(geo.sample_distances.min()) + 1e-12
    # Same seed, same sample.
    again = analyze_head_geometry(Head(W, None, "rand"), config)
    assert torch.equal(again.sample_classes, geo.sample_classes)


def test_reference_values_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []

    def bound(K: int, d: int) -> float:
        calls.append(("bound", K, d))
        return 1.0 + K + d / 1000

    def code(
        K: int, d: int, time_limit: float, progress: bool = False, device: object = None
    ) -> SimpleNamespace:
        calls.append(("code", K, d))
        return SimpleNamespace(rho=0.5)

    monkeypatch.setattr(ref_module, "rho_star_upper", bound)
    monkeypatch.setattr(ref_module, "softmax_code", code)
    W = torch.randn(40, 3, dtype=torch.float64)
    config = HeadGeometryConfig(sample_classes=0, code_max_classes=20, random_baseline="reduced")
    geo = analyze_head_geometry(Head(W, None, "r"), config)
    K_red, d_red = reduced_shape(40, 3, 20)
    assert geo.reference.rho_star_upper == 1.0 + 40 + 0.003 and geo.reference.code_rho is None
    assert geo.reference.random_rho is None
    assert geo.reduced is not None and (geo.reduced.num_classes, geo.reduced.feature_dim) == (
        K_red,
        d_red,
    )
    assert geo.reduced.code_rho == 0.5 and geo.reduced.random_rho is not None
    assert ("code", K_red, d_red) in calls and ("code", 40, 3) not in calls
    assert geo.sample_classes.numel() == 0


def test_auto_random_baseline_follows_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import gnc.analysis.head_geometry as hg

    W = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    config = HeadGeometryConfig(sample_classes=0, code_baseline=False, code_max_classes=20)
    assert config.random_baseline == "auto"
    geo = analyze_head_geometry(Head(W, None, "r"), config)  # a pass of 40 rows fits
    assert geo.reference.random_rho is not None and geo.reference.random_certified
    monkeypatch.setattr(hg, "estimate_all_classes_seconds", lambda K, d, device: 1e9)
    geo = analyze_head_geometry(Head(W, None, "r"), config)
    assert geo.reference.random_rho is None and "reduced shape" in geo.reference.notes[-1]
    assert geo.reduced is not None and geo.reduced.random_rho is not None


@pytest.mark.parametrize("budget", [1024.0, 0.05])
def test_rho_search_matches_min_one_vs_rest_distance(budget: float) -> None:
    from gnc.geometry import min_one_vs_rest_distance

    gen = torch.Generator().manual_seed(21)
    W = torch.randn(600, 4, generator=gen, dtype=torch.float64)
    W[:300] *= torch.linspace(0.2, 1.0, 4, dtype=torch.float64)  # anisotropic half
    config = HeadGeometryConfig(
        sample_classes=0, random_baseline="off", code_baseline=False, max_memory_mib=budget
    )
    geo = analyze_head_geometry(Head(W, None, "r"), config)
    ref = min_one_vs_rest_distance(W)
    assert geo.rho_distinct is None and geo.rho_all.certified
    assert geo.rho_all.rho == pytest.approx(ref.rho, abs=1e-12)
    assert geo.rho_all.lower <= ref.rho + 1e-12 and geo.rho_all.classes_solved > 1
    # Rows merged into their twins: rho of the distinct rows, whose nearest rows were merged.
    dup = torch.cat([W, 2.0 * W[:50]])
    geo = analyze_head_geometry(Head(dup, None, "r"), config)
    assert geo.duplicates.num_merged == 50 and geo.rho_all.rho == pytest.approx(0.0, abs=1e-7)
    assert geo.rho_distinct is not None and geo.rho_distinct.certified
    assert geo.rho_distinct.rho == pytest.approx(ref.rho, abs=1e-12)


def test_zero_row_is_rejected() -> None:
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="nonzero rows"):
        analyze_head_geometry(Head(W, None, "z"), FAST)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="random_baseline"):
        HeadGeometryConfig(random_baseline="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate_tolerance"):
        HeadGeometryConfig(duplicate_tolerance=-1.0)
    with pytest.raises(ValueError, match="sample_classes"):
        HeadGeometryConfig(sample_classes=-1)


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("K", "d", "cap"), [(49152, 576, 512), (18710, 120, 512), (100, 10, 512)])
def test_reduced_shape(K: int, d: int, cap: int) -> None:
    K_red, d_red = reduced_shape(K, d, cap)
    assert 2 <= d_red <= d and d_red < K_red <= max(cap, K)
    if cap >= K:
        assert (K_red, d_red) == (K, d)
    else:
        assert K_red <= cap
        assert abs(K_red / d_red - K / d) <= max(1.0, 0.5 / d_red + 1e-9) or K_red == cap


def test_random_rho_on_circle_matches_closed_form() -> None:
    rho, certified, _ = random_rho(24, 2, seed=4)
    gen = torch.Generator().manual_seed(4)
    G = torch.randn(24, 2, generator=gen, dtype=torch.float64).numpy()
    assert certified
    assert rho == pytest.approx(circle_rho(np.arctan2(G[:, 1], G[:, 0])), rel=1e-9, abs=1e-12)
    assert random_rho(24, 2, seed=4)[0] == rho


def test_random_bracket_contains_exact_value() -> None:
    exact, certified, _ = random_rho(120, 4, seed=6)
    assert certified
    lower, upper, _ = random_rho_bracket(120, 4, num_solved=10, seed=6)
    assert lower - 1e-12 <= exact <= upper + 1e-12
    full_lower, full_upper, _ = random_rho_bracket(120, 4, num_solved=120, seed=6)
    assert full_upper == pytest.approx(exact, abs=1e-10)
    assert full_upper - full_lower <= 1e-9


def test_random_references_on_device(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rows (drawn on the CPU) solved on the device: the same values."""
    exact, certified, _ = random_rho(150, 4, seed=2)
    on_dev, certified_dev, _ = random_rho(150, 4, seed=2, device=device)
    assert certified and certified_dev and abs(on_dev - exact) < 1e-12
    lower, upper, _ = random_rho_bracket(150, 4, num_solved=150, seed=2, device=device)
    assert abs(upper - exact) < 1e-10 and upper - lower <= 1e-9
    # A head on the device has its references solved there too (not on the CPU).
    import gnc.analysis.head_geometry as hg

    seen: list[object] = []
    real = hg.reference_values

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("device"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hg, "reference_values", spy)
    W = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    config = HeadGeometryConfig(sample_classes=0, code_baseline=False, random_baseline="full")
    analyze_head_geometry(Head(W.to(device), None, "r"), config)
    assert seen and all(torch.device(str(dev)).type == device.type for dev in seen)


def test_reference_uses_bracket_above_threshold() -> None:
    ref = reference_values(60, 3, random_exact_max_classes=50, random_solved_classes=5, seed=1)
    exact, _, _ = random_rho(60, 3, seed=1)
    assert ref.random_lower is not None and ref.random_rho is not None
    assert ref.random_lower - 1e-12 <= exact <= ref.random_rho + 1e-12
    assert any("bracket" in note for note in ref.notes)
