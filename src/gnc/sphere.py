"""The unit sphere S^{d-1} (rows of a matrix as points): projection, retraction, sampling, checks.

Points are rows: a tensor of shape ``(..., d)`` holds ``prod(...)`` points of ``S^{d-1}``.
Tangent vectors at ``x`` are the ``v`` with ``<x, v> = 0`` row-wise. The retraction is
normalization, vector transport is re-projection onto the new tangent space.
"""

from __future__ import annotations

import torch

__all__ = [
    "assert_on_sphere",
    "check_on_sphere",
    "normalize_rows",
    "random_points",
    "retract",
    "tangent_project",
    "transport",
]


def normalize_rows(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Project rows onto the unit sphere: ``x / |x|`` row-wise.

    Args:
        x: Tensor of shape ``(..., d)``.
        eps: Floor on the norm; ``0`` (default) leaves zero rows as NaN so they are not hidden.

    Returns:
        Tensor of the same shape and dtype with unit rows.

    Example:
        >>> normalize_rows(torch.tensor([[3.0, 4.0]]))
        tensor([[0.6000, 0.8000]])
    """
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if eps > 0:
        norms = norms.clamp_min(eps)
    out: torch.Tensor = x / norms
    return out


def tangent_project(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Project ``v`` onto the tangent space at unit rows ``x``: ``v - <x, v> x`` row-wise.

    Example:
        >>> x = torch.tensor([[1.0, 0.0]])
        >>> tangent_project(x, torch.tensor([[2.0, 3.0]]))
        tensor([[0., 3.]])
    """
    return v - (x * v).sum(dim=-1, keepdim=True) * x


def retract(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Retraction by normalization: ``(x + v) / |x + v|`` row-wise."""
    return normalize_rows(x + v)


def transport(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vector transport to the tangent space at ``y`` by re-projection."""
    return tangent_project(y, v)


def random_points(
    num_points: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``num_points`` points uniformly on ``S^{dim-1}`` (normalized Gaussians).

    Args:
        num_points: Number of points ``K``.
        dim: Ambient dimension ``d``.
        generator: Optional ``torch.Generator`` for reproducibility (its device is used).
        dtype: Floating dtype of the result.
        device: Device of the result; defaults to the generator's device, else CPU.

    Returns:
        Tensor of shape ``(num_points, dim)`` with unit rows.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = random_points(5, 3, generator=g)
        >>> torch.allclose(x.norm(dim=1), torch.ones(5, dtype=x.dtype))
        True
    """
    if num_points < 0 or dim < 1:
        raise ValueError(f"Expected num_points >= 0 and dim >= 1, but got ({num_points}, {dim}).")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    g = torch.randn(num_points, dim, generator=generator, dtype=dtype, device=device)
    return normalize_rows(g)


def check_on_sphere(x: torch.Tensor, *, atol: float | None = None) -> tuple[bool, str]:
    """Check that every row of ``x`` has unit norm; return ``(ok, reason)``.

    The default tolerance is ``1000 * finfo(dtype).eps`` (about ``1e-4`` in float32, ``2e-13`` in
    float64).

    Example:
        >>> check_on_sphere(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        (False, 'row 1 has norm 2 (tolerance 0.00011920928955078125)')
    """
    if not x.is_floating_point():
        return False, f"expected a floating tensor, got {x.dtype}"
    if atol is None:
        atol = 1000 * torch.finfo(x.dtype).eps
    if not bool(torch.isfinite(x).all()):
        return False, "non-finite entries"
    err = (torch.linalg.vector_norm(x, dim=-1) - 1).abs().reshape(-1)
    if err.numel() == 0:
        return True, ""
    worst = int(err.argmax())
    if float(err[worst]) > atol:
        norm = float(torch.linalg.vector_norm(x.reshape(-1, x.shape[-1])[worst]))
        return False, f"row {worst} has norm {norm:.6g} (tolerance {atol})"
    return True, ""


def assert_on_sphere(x: torch.Tensor, *, atol: float | None = None) -> None:
    """Raise ``ValueError`` with the reason when :func:`check_on_sphere` fails."""
    ok, reason = check_on_sphere(x, atol=atol)
    if not ok:
        raise ValueError(f"Expected unit rows on the sphere, but {reason}.")
