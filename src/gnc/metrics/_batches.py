"""Batches for the accumulators: eager shape checks, chunking, masking of invalid rows.

Shared by :class:`gnc.metrics.GNCAccumulator` and :class:`gnc.metrics.NCCAccumulator`. Value
checks never sync the host: invalid rows are masked out and counted on the device, and
:func:`invalid_rows_message` turns the counts into the error raised by ``compute()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gnc._checks import as_float_tensor
from gnc._runtime import rows_per_budget

__all__ = ["check_batch", "chunk_rows", "invalid_rows_message", "prepare_chunk"]

_F64 = torch.float64


def _as_labels(labels: Any, num_samples: int, device: torch.device) -> torch.Tensor:
    """Check dtype/shape of integer labels (no value check: that is deferred) and move them."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"Expected `labels` to be a tensor or array, but got {type(labels).__name__}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"Expected `labels` to hold integers, but got dtype {labels.dtype}.")
    if labels.ndim != 1 or labels.shape[0] != num_samples:
        raise ValueError(
            f"Expected `labels` of shape ({num_samples},) to match `features`, but got shape "
            f"{tuple(labels.shape)}."
        )
    return labels.to(device=device, dtype=torch.long, non_blocking=True)


def check_batch(
    features: Any, labels: Any, *, feature_dim: int, device: torch.device | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager shape/dtype checks (no value checks, no host sync); move to ``device``."""
    x = as_float_tensor("features", features)
    if x.ndim != 2 or x.shape[1] != feature_dim:
        raise ValueError(
            f"Expected `features` of shape (N, {feature_dim}), but got {tuple(x.shape)}."
        )
    if device is not None and x.device != device:
        x = x.to(device, non_blocking=True)
    return x, _as_labels(labels, int(x.shape[0]), x.device)


def chunk_rows(num_rows: int, dim: int, device: torch.device) -> int:
    """Rows per internal chunk of float64 work.

    On CPU a chunk stays under 16 MiB so temporaries are recycled by the allocator instead of
    being freshly mapped (page faults dominated otherwise); accelerators take large blocks.
    """
    return rows_per_budget(8 * dim, 16.0 if device.type == "cpu" else 256.0, num_rows=num_rows)


def prepare_chunk(
    x: torch.Tensor, y: torch.Tensor, *, num_classes: int, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(H, y, valid, bad_features, bad_labels)`` with invalid rows zeroed (no sync).

    A row is invalid when its norm is not finite (NaN/Inf entries), zero with ``normalize``, or
    its label is outside ``[0, num_classes)``. ``H`` is a fresh float64 tensor.
    """
    H = x.to(_F64, copy=True)
    norms = torch.linalg.vector_norm(H, dim=1)
    ok_feat = torch.isfinite(norms)
    if normalize:
        ok_feat &= norms > 0
    ok_lab = (y >= 0) & (y < num_classes)
    valid = ok_feat & ok_lab
    H = torch.where(valid[:, None], H, 0.0)
    if normalize:
        H.mul_(torch.where(valid, 1.0 / torch.where(valid, norms, 1.0), 0.0)[:, None])
    y = torch.where(valid, y, 0)
    return H, y, valid, ~ok_feat, ~ok_lab


def invalid_rows_message(
    bad_features: float, bad_labels: float, first_batch: float, num_classes: int, norm: bool
) -> str | None:
    """The error for the device-side counts of rejected rows, or ``None`` when there were none.

    Example:
        >>> invalid_rows_message(0, 2, 3, 5, True)
        'Expected finite, nonzero features and labels in [0, 5), but update() received 2 labels outside [0, 5) (first in update #3).'
    """  # noqa: E501
    if bad_features == 0 and bad_labels == 0:
        return None
    parts = []
    if bad_features:
        what = "NaN/Inf or zero-norm" if norm else "NaN/Inf"
        parts.append(f"{int(bad_features)} feature rows with {what} values")
    if bad_labels:
        parts.append(f"{int(bad_labels)} labels outside [0, {num_classes})")
    where = f" (first in update #{int(first_batch)})" if first_batch >= 0 else ""
    return (
        "Expected finite" + (", nonzero" if norm else "") + " features and labels in "
        f"[0, {num_classes}), but update() received " + " and ".join(parts) + where + "."
    )
