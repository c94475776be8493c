"""Thin wrappers over ``torch.distributed`` used by the accumulators' ``sync()``."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_sum_",
    "collective_device",
    "is_distributed",
    "leave_process_group",
    "world_size",
]


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is available and a default process group is initialized."""
    return bool(dist.is_available() and dist.is_initialized())


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return int(dist.get_world_size()) if is_distributed() else 1


def collective_device() -> torch.device:
    """Device on which collective tensors live for the current backend.

    NCCL needs CUDA tensors (the current CUDA device); every other backend uses the CPU.
    """
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Sum ``tensors`` over all processes in place with a single all-reduce (no-op if alone).

    The tensors are flattened into one float64 buffer, reduced once and copied back.

    Args:
        tensors: float64 tensors on one device.

    Returns:
        The same list, reduced in place.

    Example:
        >>> x = [torch.ones(2, dtype=torch.float64)]
        >>> all_reduce_sum_(x)[0].tolist()  # not distributed: unchanged
        [1.0, 1.0]
    """
    if not is_distributed() or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n
    return tensors


def leave_process_group(ok: bool = True) -> None:
    """Wait for every rank (after a clean run), then destroy the process group.

    A rank that destroys its group while another is still finishing, or that exits with the
    group alive, can abort in gloo's threads ("terminate called without an active
    exception"). After an error (``ok=False``) the barrier is skipped, so that a failed rank
    cannot hang the others. A no-op when no group is initialized.

    Example:
        >>> leave_process_group()  # not distributed: nothing to do
    """
    if not is_distributed():
        return
    if ok:
        dist.barrier()
    dist.destroy_process_group()
