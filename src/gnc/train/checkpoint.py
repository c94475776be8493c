"""Checkpoints of a training run: model, optimizer, scheduler, RNG states and the config.

:func:`save_checkpoint` writes ``checkpoint.pt`` atomically; :func:`restore_checkpoint` reads it
without unpickling code (:func:`gnc.readers.read_checkpoint`), checks that it belongs to the same
configuration and restores everything, so a resumed run replays the batches of an
uninterrupted one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnc.io import atomic_write_bytes
from gnc.readers import FileFormatError, read_checkpoint
from gnc.train.config import TrainConfig, config_to_dict
from gnc.train.models import unwrap_classifier

__all__ = ["restore_checkpoint", "save_checkpoint"]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - restored on resume
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    # Generator states are CPU byte tensors, whatever ``map_location`` did to the checkpoint.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(
    path: Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
) -> None:
    """Write ``path`` atomically after ``epoch`` completed epochs."""
    buf = io.BytesIO()
    torch.save(
        {
            "epoch": epoch,
            "model": unwrap_classifier(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
            "config": config_to_dict(config),
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def _diff_key(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            found = _diff_key(a.get(k), b.get(k), f"{prefix}{k}.")
            if found is not None:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


def restore_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    device: torch.device,
) -> int:
    """Load ``path`` into the model, optimizer, scheduler and RNGs; returns the completed epochs.

    Raises:
        ValueError: If the checkpoint was written by a different configuration.
        FileFormatError: If the file is not a gnc checkpoint or is corrupt.
    """
    state = read_checkpoint(path, map_location=device)  # never unpickles code
    missing = {"epoch", "model", "optimizer", "scheduler", "rng", "config"} - state.keys()
    if missing:
        raise FileFormatError(path, f"not a gnc checkpoint (no {sorted(missing)})")
    key = _diff_key(state["config"], config_to_dict(config))
    if key is not None:
        raise ValueError(
            f"Expected the checkpoint's config to match, but `{key}` differs "
            f"({path}); use a new --out folder."
        )
    try:
        unwrap_classifier(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        return int(state["epoch"])
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as err:
        raise FileFormatError(path, f"corrupt checkpoint ({err})") from None
