"""Where and how work runs: device resolution, seeded generators, and the working-memory budget.

Every layer of gnc takes these three decisions the same way, so they live here once:

- :func:`resolve_device` turns a user's device string (``"auto"``, ``"cpu"``, ``"cuda:1"``) or a
  ``torch.device`` into a checked ``torch.device``; ``"auto"`` is ``cuda:LOCAL_RANK`` when CUDA is
  available (so each ``torchrun`` rank takes its own GPU) and the CPU otherwise.
- :func:`derive_seed` / :func:`make_generator` give independent, reproducible streams for the parts
  of a run (an epoch, a restart, a section) from one user seed.
- :func:`working_memory_mib` is the default memory budget (MiB) of tiled computations, in the
  manner of scikit-learn's ``working_memory``: set it once with :func:`set_working_memory` or for a
  block with :func:`working_memory`; functions that take ``max_memory_mib=None`` use it.
  :func:`rows_per_budget` turns a budget into the rows of one tile, and command-line entry points
  call :func:`release_large_frees` so that freed tiles leave the resident set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = [
    "DEFAULT_WORKING_MEMORY_MIB",
    "compile_numba",
    "derive_seed",
    "make_generator",
    "release_large_frees",
    "resolve_budget",
    "resolve_device",
    "rows_per_budget",
    "set_working_memory",
    "working_memory",
    "working_memory_mib",
]

DEFAULT_WORKING_MEMORY_MIB = 1024.0
_working_memory_mib = DEFAULT_WORKING_MEMORY_MIB


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the ``torch.device`` for ``device``; ``"auto"`` or ``None`` picks CUDA when present.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: Expected `device` to be 'auto' or a torch device ..., but got 'gpu0'.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    elif isinstance(device, str):
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                "Expected `device` to be 'auto' or a torch device such as cpu or cuda:0, "
                f"but got {device!r}."
            ) from None
    else:
        raise TypeError(
            f"Expected `device` to be a str or torch.device, but got {type(device).__name__}."
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Expected an available device, but got {str(resolved)!r} without CUDA.")
    return resolved


def derive_seed(seed: int, *parts: int) -> int:
    """Mix ``seed`` with the integers ``parts`` into one seed in ``[0, 2**62)``.

    The same ``(seed, *parts)`` always gives the same value, and different parts give unrelated
    streams, so an epoch or a restart can be re-run alone.

    Example:
        >>> derive_seed(0)
        0
        >>> derive_seed(0, 1) != derive_seed(0, 2)
        True
    """
    value = int(seed)
    for part in parts:
        value = (value * 1_000_003 + int(part) + 1) % (2**62)
    return value


def make_generator(
    seed: int, *parts: int, device: str | torch.device | None = None
) -> torch.Generator:
    """A ``torch.Generator`` seeded with :func:`derive_seed` ``(seed, *parts)``.

    Example:
        >>> a = torch.rand(2, generator=make_generator(3, 1))
        >>> bool(torch.equal(a, torch.rand(2, generator=make_generator(3, 1))))
        True
    """
    gen = torch.Generator() if device is None else torch.Generator(device=device)
    return gen.manual_seed(derive_seed(seed, *parts))


def working_memory_mib() -> float:
    """The current default budget (MiB) for tiled computations (1024 unless set)."""
    return _working_memory_mib


def _check_budget(max_memory_mib: float) -> float:
    value = float(max_memory_mib)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"Expected `max_memory_mib` to be a finite number > 0, but got {max_memory_mib!r}."
        )
    return value


def set_working_memory(max_memory_mib: float) -> None:
    """Set the default budget (MiB) used where ``max_memory_mib`` is left as ``None``."""
    global _working_memory_mib
    _working_memory_mib = _check_budget(max_memory_mib)


@contextmanager
def working_memory(max_memory_mib: float) -> Iterator[float]:
    """Use ``max_memory_mib`` as the default budget inside a ``with`` block.

    Example:
        >>> with working_memory(64) as mib:
        ...     working_memory_mib()
        64.0
        >>> working_memory_mib()
        1024.0
    """
    global _working_memory_mib
    previous = _working_memory_mib
    _working_memory_mib = _check_budget(max_memory_mib)
    try:
        yield _working_memory_mib
    finally:
        _working_memory_mib = previous


def resolve_budget(max_memory_mib: float | None) -> float:
    """``max_memory_mib`` checked, or the working-memory default when it is ``None``."""
    return working_memory_mib() if max_memory_mib is None else _check_budget(max_memory_mib)


def rows_per_budget(
    bytes_per_row: int, max_memory_mib: float | None = None, *, num_rows: int | None = None
) -> int:
    """Rows of a tile whose ``bytes_per_row`` fit the budget (at least 1, at most ``num_rows``).

    Example:
        >>> rows_per_budget(8 * 1000, 1.0)
        131
        >>> rows_per_budget(8 * 1000, 1.0, num_rows=50)
        50
    """
    budget = int(resolve_budget(max_memory_mib) * 2**20)
    rows = max(1, budget // max(1, int(bytes_per_row)))
    return rows if num_rows is None else max(1, min(int(num_rows), rows))


def release_large_frees(threshold_bytes: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold_bytes`` and more by ``mmap`` so that freed tiles go back.

    glibc raises its mmap threshold after the first large ``free`` (up to 32 MiB); tiles of a
    memory budget are then carved from the heap, and the heap keeps them after they are freed:
    the resident set grows well past the budget although live memory does not (``gnc margins
    --max-memory-mib 64`` at K = 50,000: 167 MiB instead of about 110). A fixed threshold
    (``mallopt(M_MMAP_THRESHOLD)``, the same as ``MALLOC_MMAP_THRESHOLD_``) stops that. It acts on
    the whole process, so command-line entry points call it, never library functions. Returns
    whether it applied (``False`` off glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(int(threshold_bytes))))


def compile_numba(func: Any) -> Any:
    """``func`` compiled by numba (``nogil``), cached on disk where a cache location is writable.

    Imports numba (the ``fast`` extra): call it only where :mod:`importlib` found it.
    """
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(func)
    except RuntimeError:  # pragma: no cover - no writable cache location: compile each run
        return numba.njit(nogil=True)(func)
