"""Helpers shared by subcommands: JSON output, atomic writes, run folders."""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
import torch

from gnc.io import atomic_write_bytes, atomic_write_text, dump_json, to_jsonable

__all__ = ["atomic_write_bytes", "atomic_write_text", "dump_json", "run_metadata", "to_jsonable"]


def run_metadata(seed: int | None = None, started: float | None = None) -> dict[str, Any]:
    """Versions, device and timing recorded in every ``results.json``."""
    import gnc

    meta: dict[str, Any] = {
        "gnc_version": gnc.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "seed": seed,
        "finished_unix": time.time(),
    }
    if started is not None:
        meta["seconds"] = time.time() - started
    return meta
