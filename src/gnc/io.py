"""Files: K x d matrices (.npy, .npz, .pt, .safetensors), JSON-safe values, atomic writes."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "atomic_save_npz",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_json",
    "load_matrix",
    "read_array",
    "run_metadata",
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


def atomic_write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], Any]) -> None:
    """Create ``path`` atomically from what ``writer`` writes to a binary file handle.

    The handle is a temporary file in the same folder, which then replaces ``path``: readers see
    the old file or the complete new one, never a part.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "sub" / "a.bin"
        >>> atomic_write(target, lambda fh: fh.write(b"abc"))
        >>> target.read_bytes(), [p.name for p in target.parent.iterdir()]
        (b'abc', ['a.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_save_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
    """``np.savez(path, **arrays)`` atomically, streamed to disk (no in-memory copy).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "x.npz"
        >>> atomic_save_npz(target, a=np.arange(3), meta=np.array("{}"))
        >>> with np.load(target) as z:
        ...     z["a"].tolist(), str(z["meta"])
        ([0, 1, 2], '{}')
    """
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_array(path: str | Path, *, key: str | None = None) -> tuple[Any, str | None]:
    """Read one array from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``, as stored.

    For archives the array is ``key`` if given, else ``weights`` or ``weight`` if present, else
    the only array, else the only 2-D array.

    Args:
        path: File to read.
        key: Name of the array inside an archive.

    Returns:
        ``(array, name)``: a numpy array or tensor in its stored dtype, and its key (``None`` for
        a single-array file).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        KeyError: If ``key`` is not in the archive.
        ValueError: On an unknown suffix, or an archive with no unambiguous choice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path} (expected a matrix file; it does not exist)")
    suffix = path.suffix.lower()
    arrays: dict[str, Any]
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    elif suffix in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, torch.Tensor):
            return obj, None
        if not isinstance(obj, dict):
            raise ValueError(
                f"Expected {path} to hold a tensor or a dict of tensors, but got "
                f"{type(obj).__name__}."
            )
        arrays = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    elif suffix == ".safetensors":
        from safetensors.torch import load_file

        arrays = dict(load_file(str(path)))
    else:
        raise ValueError(f"Expected a .npy, .npz, .pt or .safetensors file, but got {path.name!r}.")
    if key is not None:
        if key not in arrays:
            raise KeyError(f"Expected a key `{key}` in {path}, but it has {sorted(arrays)}.")
        return arrays[key], key
    for name in ("weights", "weight"):
        if name in arrays:
            return arrays[name], name
    if len(arrays) == 1:
        (only,) = arrays
        return arrays[only], only
    two_d = [k for k, v in arrays.items() if getattr(v, "ndim", 0) == 2]
    if len(two_d) == 1:
        return arrays[two_d[0]], two_d[0]
    raise ValueError(
        f"Expected {path} to hold one 2-D array or a key `weights`, but it has keys "
        f"{sorted(arrays)}; pick one with `key=`."
    )


def load_matrix(path: str | Path, *, key: str | None = None) -> torch.Tensor:
    """Load a 2-D matrix from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``.

    The array is chosen as in :func:`read_array`.

    Args:
        path: File to read.
        key: Name of the array inside an archive.

    Returns:
        The matrix as a tensor (dtype as stored; integer arrays become float64).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        KeyError: If ``key`` is not in the archive.
        ValueError: On an unknown suffix, an ambiguous archive, or a non-2-D or non-numeric array.
    """
    value, _ = read_array(path, key=key)
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
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))
