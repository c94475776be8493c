"""A reader for CTranslate2 ``model.bin`` files (no CTranslate2 install needed).

The format, written by ``ctranslate2.specs.ModelSpec._serialize`` (little endian): ``uint32``
binary version, the spec name, ``uint32`` spec revision, ``uint32`` number of variables, then per
variable its name, ``uint8`` rank, ``rank x uint32`` shape, ``uint8`` dtype id
(float32, int8, int16, int32, float16, bfloat16), ``uint32`` byte size and the raw data; finally
``uint32`` number of aliases and ``(alias, target)`` name pairs. A string is a ``uint16`` length
(including a trailing NUL) followed by that many bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["CTranslate2Variable", "list_ctranslate2_variables", "read_ctranslate2_variable"]

#: dtype ids of ``include/ctranslate2/types.h`` (bfloat16 is read as raw uint16).
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY: dict[str, np.dtype[np.generic]] = {
    "float32": np.dtype("<f4"),
    "int8": np.dtype("i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
}


@dataclass(frozen=True)
class CTranslate2Variable:
    """Where one variable of a CTranslate2 model lies in its file.

    Attributes:
        name: Variable name, e.g. ``"decoder/embeddings/weight"``.
        shape: Its shape.
        dtype: One of ``float32, int8, int16, int32, float16, bfloat16``.
        offset: Byte offset of its data in the file.
        num_bytes: Size of its data in bytes.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int
    num_bytes: int


def _read(fh: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    raw = fh.read(size)
    if len(raw) != size:
        raise ValueError("Expected a CTranslate2 model.bin, but the file ended early.")
    return int(struct.unpack("<" + fmt, raw)[0])


def _read_string(fh: BinaryIO) -> str:
    n = _read(fh, "H")
    raw = fh.read(n)
    if len(raw) != n or n == 0:
        raise ValueError("Expected a CTranslate2 model.bin, but a name is truncated.")
    return raw[:-1].decode("utf-8")


def list_ctranslate2_variables(
    path: str | os.PathLike[str],
) -> tuple[str, dict[str, CTranslate2Variable], dict[str, str]]:
    """Parse the header of a CTranslate2 ``model.bin`` without reading its data.

    Args:
        path: The ``model.bin`` file (binary versions 4 to 6).

    Returns:
        ``(spec_name, variables, aliases)``: the model spec name, the variables by name and the
        aliases (alias name -> target variable name).

    Raises:
        ValueError: If the file is not a CTranslate2 model of a supported binary version.
    """
    path = Path(path)
    size = path.stat().st_size
    variables: dict[str, CTranslate2Variable] = {}
    aliases: dict[str, str] = {}
    with path.open("rb") as fh:
        version = _read(fh, "I")
        if not 4 <= version <= 6:
            raise ValueError(
                f"Expected a CTranslate2 model.bin of binary version 4 to 6, but got {version} "
                f"in {path}."
            )
        spec = _read_string(fh)
        _read(fh, "I")  # spec revision
        count = _read(fh, "I")
        for _ in range(count):
            name = _read_string(fh)
            rank = _read(fh, "B")
            shape = tuple(_read(fh, "I") for _ in range(rank))
            type_id = _read(fh, "B")
            if type_id >= len(_DTYPES):
                raise ValueError(f"Unknown CTranslate2 dtype id {type_id} for `{name}` in {path}.")
            num_bytes = _read(fh, "I")
            offset = fh.tell()
            if offset + num_bytes > size:
                raise ValueError(f"Variable `{name}` runs past the end of {path}.")
            dtype = _DTYPES[type_id]
            expected = int(np.prod(shape, dtype=np.int64)) * _NUMPY[dtype].itemsize
            if expected != num_bytes:
                raise ValueError(
                    f"Variable `{name}` of shape {shape} and dtype {dtype} should take "
                    f"{expected} bytes, but the file says {num_bytes}."
                )
            variables[name] = CTranslate2Variable(name, shape, dtype, offset, num_bytes)
            fh.seek(num_bytes, os.SEEK_CUR)
        if fh.tell() < size:
            for _ in range(_read(fh, "I")):
                alias = _read_string(fh)
                aliases[alias] = _read_string(fh)
    return spec, variables, aliases


def read_ctranslate2_variable(path: str | os.PathLike[str], name: str) -> np.ndarray:
    """Read one variable of a CTranslate2 ``model.bin`` (following aliases) as a NumPy array.

    float16 and bfloat16 become float32 exactly; int8/int16 weights with a ``<name>_scale``
    variable are dequantized as ``q / scale`` (per output row), as CTranslate2 does.

    Args:
        path: The ``model.bin`` file.
        name: Variable name, e.g. ``"decoder/embeddings/weight"`` (an alias is followed).

    Returns:
        The array with the variable's shape (float32 for floating and dequantized data).

    Raises:
        KeyError: If the variable does not exist (the message lists similar names).
    """
    _, variables, aliases = list_ctranslate2_variables(path)
    target = aliases.get(name, name)
    if target not in variables:
        near = sorted(v for v in variables if name.split("/")[-1] in v)[:8]
        raise KeyError(f"Expected a variable `{name}` in {path}, but it has none; similar: {near}.")
    var = variables[target]
    with Path(path).open("rb") as fh:
        fh.seek(var.offset)
        raw = fh.read(var.num_bytes)
    data = np.frombuffer(raw, dtype=_NUMPY[var.dtype]).reshape(var.shape)
    if var.dtype == "bfloat16":
        return (data.astype(np.uint32) << 16).view(np.float32)
    if var.dtype == "float16":
        return data.astype(np.float32)
    scale_name = target + "_scale"
    if var.dtype in ("int8", "int16") and scale_name in variables:
        scale = read_ctranslate2_variable(path, scale_name).astype(np.float32)
        if var.shape and scale.ndim == 1 and scale.shape[0] == var.shape[0]:
            scale = scale.reshape((-1,) + (1,) * (len(var.shape) - 1))
        return data.astype(np.float32) / scale
    return data.copy()
