from __future__ import annotations

import pytest
import torch

from gnc.sphere import (
    assert_on_sphere,
    check_on_sphere,
    normalize_rows,
    random_points,
    retract,
    tangent_project,
    transport,
)


def test_projection_and_retraction(dtype: torch.dtype, device: torch.device) -> None:
    g = torch.Generator(device=device).manual_seed(1)
    x = random_points(50, 7, generator=g, dtype=dtype, device=device)
    assert check_on_sphere(x)[0]
    v = torch.randn(50, 7, generator=g, dtype=dtype, device=device)
    t = tangent_project(x, v)
    assert torch.allclose((x * t).sum(1), torch.zeros(50, dtype=dtype, device=device), atol=1e-5)
    y = retract(x, 0.3 * t)
    assert check_on_sphere(y)[0]
    u = transport(y, t)
    assert torch.allclose((y * u).sum(1), torch.zeros(50, dtype=dtype, device=device), atol=1e-5)
    # retraction is first-order: R(x, s t) = x + s t + O(s^2)
    s = 1e-4 if dtype == torch.float64 else 1e-2
    err = (retract(x, s * t) - x - s * t).norm(dim=1).max()
    assert err < 10 * s * s * t.norm(dim=1).max() ** 2


def test_random_points_reproducible_and_uniform_mean() -> None:
    a = random_points(4000, 3, generator=torch.Generator().manual_seed(3))
    b = random_points(4000, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.mean(0).norm() < 0.06  # uniform on the sphere: mean ~ N(0, 1/(3N))


def test_check_and_assert() -> None:
    ok, reason = check_on_sphere(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert not ok and "row 1" in reason
    assert not check_on_sphere(torch.tensor([[float("nan"), 1.0]]))[0]
    assert not check_on_sphere(torch.tensor([[1, 0]]))[0]
    with pytest.raises(ValueError, match="row 1"):
        assert_on_sphere(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert_on_sphere(normalize_rows(torch.tensor([[3.0, 4.0]])))
    assert torch.isnan(normalize_rows(torch.zeros(1, 2))).all()
    with pytest.raises(ValueError):
        random_points(3, 0)
