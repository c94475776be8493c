"""Validation at the public boundary: one place for argument checks and their messages."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_float_tensor",
    "check_int",
    "check_labels",
    "check_matrix",
    "check_positive",
]


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as ``int`` or raise a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected `{name}` to be an integer, but got {value!r}.")
    result = int(value)
    if minimum is not None and result < minimum:
        raise ValueError(f"Expected `{name}` >= {minimum}, but got {result}.")
    return result


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a finite positive ``float`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Expected `{name}` to be a real number, but got {value!r}.")
    result = float(value)
    if not np.isfinite(result) or result <= 0:
        raise ValueError(f"Expected `{name}` to be finite and > 0, but got {result}.")
    return result


def as_float_tensor(name: str, x: Any) -> torch.Tensor:
    """Convert arrays to a floating tensor without silently downcasting (float64 stays float64)."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise TypeError(f"Expected `{name}` to hold real numbers, but got dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"Expected `{name}` to be a torch.Tensor or numpy array, but got {type(x).__name__}."
        )
    t: torch.Tensor = x
    if t.is_complex():
        raise TypeError(f"Expected `{name}` to be real, but got dtype {t.dtype}.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def check_matrix(
    name: str,
    x: Any,
    *,
    min_rows: int = 1,
    cols: int | None = None,
    finite: bool = True,
    nonzero_rows: bool = False,
) -> torch.Tensor:
    """Validate a 2-D real matrix and return it as a floating tensor.

    Args:
        name: The argument's name, used in error messages.
        x: Tensor or array expected of shape ``(rows, cols)``.
        min_rows: Minimum number of rows.
        cols: Required number of columns, if any.
        finite: Reject NaN/Inf entries.
        nonzero_rows: Reject rows of zero norm (they cannot be normalized).

    Returns:
        The matrix as a floating tensor on its original device.

    Raises:
        TypeError: If ``x`` is not a real array.
        ValueError: If the shape or values are invalid.
    """
    t = as_float_tensor(name, x)
    if t.ndim != 2:
        raise ValueError(f"Expected `{name}` to be a 2-D matrix, but got shape {tuple(t.shape)}.")
    if t.shape[0] < min_rows:
        raise ValueError(
            f"Expected `{name}` to have at least {min_rows} rows, but got shape {tuple(t.shape)}."
        )
    if t.shape[1] < 1:
        raise ValueError(f"Expected `{name}` to have at least 1 column, but got {tuple(t.shape)}.")
    if cols is not None and t.shape[1] != cols:
        raise ValueError(f"Expected `{name}` of shape (*, {cols}), but got shape {tuple(t.shape)}.")
    if finite:
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0, 0])
            raise ValueError(f"Expected `{name}` to be finite, but row {row} has NaN or Inf.")
    if nonzero_rows:
        zero = t.abs().amax(dim=1) == 0
        if bool(zero.any()):
            row = int(zero.nonzero()[0, 0])
            raise ValueError(f"Expected `{name}` to have nonzero rows, but row {row} is all zeros.")
    return t


def check_labels(
    name: str, labels: Any, *, num_samples: int, num_classes: int | None = None
) -> torch.Tensor:
    """Validate integer class labels of shape ``(num_samples,)`` in ``[0, num_classes)``."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"Expected `{name}` to be a tensor or array, but got {type(labels)}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"Expected `{name}` to hold integers, but got dtype {labels.dtype}.")
    if labels.ndim != 1 or labels.shape[0] != num_samples:
        raise ValueError(
            f"Expected `{name}` of shape ({num_samples},), but got shape {tuple(labels.shape)}."
        )
    if labels.numel() and num_classes is not None:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"Expected `{name}` in [0, {num_classes}), but got values in [{lo}, {hi}]."
            )
    return labels.long()
