"""Files: K x d matrices (.npy, .npz, .pt, .safetensors), JSON-safe values, atomic writes."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_json",
    "load_matrix",
    "save_array",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """Convert tensors, arrays, numpy scalars and non-finite floats into JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dump_json(value: Any, *, indent: int | None = 2) -> str:
    """Serialize ``value`` to JSON after :func:`to_jsonable`."""
    return json.dumps(to_jsonable(value), indent=indent, allow_nan=False)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def load_matrix(path: str | Path, *, key: str | None = None) -> torch.Tensor:
    """Load a 2-D matrix from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``.

    For archives (``.npz``, ``.safetensors``, a ``.pt`` dict) the array is ``key`` if given, else
    ``weights`` if present, else the only array.

    Args:
        path: File to read.
        key: Name of the array inside an archive.

    Returns:
        The matrix as a tensor (dtype as stored; integer arrays become float64).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: On an unknown suffix, a missing or ambiguous key, or a non-2-D array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    suffix = path.suffix.lower()
    arrays: dict[str, object]
    if suffix == ".npy":
        arrays = {"": np.load(path, allow_pickle=False)}
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    elif suffix in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, torch.Tensor):
            arrays = {"": obj}
        elif isinstance(obj, dict):
            arrays = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        else:
            raise ValueError(f"Expected a tensor or a dict of tensors in {path}, got {type(obj)}.")
    elif suffix == ".safetensors":
        from safetensors.torch import load_file

        arrays = dict(load_file(str(path)))
    else:
        raise ValueError(f"Expected a .npy, .npz, .pt or .safetensors file, but got {path.name!r}.")
    if not arrays:
        raise ValueError(f"Expected an array in {path}, but it holds none.")
    if key is not None:
        if key not in arrays:
            raise ValueError(f"Expected key {key!r} in {path}, but it holds {sorted(arrays)}.")
        value = arrays[key]
    elif len(arrays) == 1:
        value = next(iter(arrays.values()))
    elif "weights" in arrays:
        value = arrays["weights"]
    else:
        raise ValueError(
            f"Expected key 'weights' or a single array in {path}, but it holds {sorted(arrays)}."
        )
    t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16)):
        raise ValueError(f"Expected a real numeric array in {path}, but got dtype {t.dtype}.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.ndim != 2:
        raise ValueError(f"Expected a 2-D (K, d) matrix in {path}, but got shape {tuple(t.shape)}.")
    return t


def save_array(path: str | Path, array: np.ndarray | torch.Tensor) -> None:
    """Save ``array`` as ``.npy`` atomically."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
