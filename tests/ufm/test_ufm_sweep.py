"""Temperature sweeps: rho(W) against closed-form code values, and the K = 100, d = 10 sweep."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
import torch

from gnc.ufm import SweepResult, max_margin_alignment, reference_code_value, temperature_sweep


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _check_consistency(sweep: SweepResult) -> None:
    taus = [p.tau for p in sweep.points]
    assert taus == sorted(taus, reverse=True)
    for point, res in zip(sweep.points, sweep.results, strict=True):
        assert point.tau == res.tau
        assert point.steps == res.iterations
        assert point.loss == res.loss
        if sweep.code_value is not None:
            assert point.ratio == pytest.approx(point.gnc2 / sweep.code_value)


def test_sweep_heptagon_reaches_closed_form_value() -> None:
    g = torch.Generator().manual_seed(0)
    sweep = temperature_sweep(7, 2, [0.02, 1.0, 0.1], 2, generator=g)
    _check_consistency(sweep)
    expected = 1 - math.cos(2 * math.pi / 7)
    assert sweep.code_source == "closed form"
    assert sweep.code_value == pytest.approx(expected, abs=1e-12)
    assert sweep.rho_star_upper >= expected - 1e-12
    last = sweep.points[-1]
    assert last.gnc2 == pytest.approx(expected, abs=1e-3)
    assert last.ratio == pytest.approx(1.0, abs=1e-3)
    assert last.gnc1 < 1e-8
    assert last.alignment > 1 - 1e-6


def test_sweep_rho_increases_towards_icosahedron_with_given_code_value() -> None:
    # (d, K) = (3, 12): the icosahedron, rho = 1 - 1/sqrt(5) (no closed form in the bounds module
    # is needed: the value is given)
    value = 1 - 1 / math.sqrt(5)
    g = torch.Generator().manual_seed(1)
    sweep = temperature_sweep(12, 3, [1.0, 0.2, 0.05], code_value=value, restarts=2, generator=g)
    _check_consistency(sweep)
    assert sweep.code_source == "given"
    rhos = [p.gnc2 for p in sweep.points]
    assert rhos[-1] == pytest.approx(value, abs=1e-5)
    assert all(r <= value + 1e-9 for r in rhos)  # nothing beats the optimal code
    assert sweep.rho_star_upper >= value - 1e-12


def test_reference_code_values() -> None:
    value, source = reference_code_value(5, 4)
    assert (value, source) == (pytest.approx(5 / 4), "closed form")
    value, source = reference_code_value(6, 3)  # cross-polytope, proven optimal (Radon bound)
    assert (value, source) == (1.0, "closed form")
    value, source = reference_code_value(12, 3)  # icosahedron
    assert value == pytest.approx(1 - 1 / math.sqrt(5)) and source.startswith("known")


def test_alignment_reference() -> None:
    # the features of a regular simplex sit on their own rows, which are the max-margin directions
    W = torch.tensor([[1.0, 0.0], [-0.5, 3**0.5 / 2], [-0.5, -(3**0.5) / 2]], dtype=torch.float64)
    cos = max_margin_alignment(W.repeat(2, 1), torch.arange(3).repeat(2), W)
    torch.testing.assert_close(cos, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="class 2"):
        max_margin_alignment(W[:2], torch.tensor([0, 1]), W)


def test_sweep_bad_arguments() -> None:
    with pytest.raises(ValueError, match="taus"):
        temperature_sweep(3, 2, [], solve_code=False)
    with pytest.raises(ValueError, match="taus"):
        temperature_sweep(3, 2, [0.1, -1.0], solve_code=False)
    with pytest.raises(ValueError, match="restarts"):
        temperature_sweep(3, 2, [0.1], restarts=0, solve_code=False)
    with pytest.raises(ValueError, match="code_value"):
        temperature_sweep(3, 2, [0.1], code_value=0.0)


@pytest.mark.slow
def test_k100_d10_sweep_approaches_softmax_code() -> None:
    """Paper Sec. 4 / issue 5: rho(W) rises towards rho*(10, 100) as tau decreases."""
    g = torch.Generator().manual_seed(0)
    sweep = temperature_sweep(
        100, 10, [1.0, 1 / 5, 1 / 10, 1 / 20], 2, restarts=4, generator=g, code_time_limit=120.0
    )
    _check_consistency(sweep)
    assert sweep.code_value is not None
    rhos = [p.gnc2 for p in sweep.points]
    assert all(b > a for a, b in itertools.pairwise(rhos))
    last = sweep.points[-1]
    assert last.ratio >= 0.95
    assert last.gnc1 < 1e-6
    assert last.alignment > 0.99
    assert last.gnc3 < 1e-2
