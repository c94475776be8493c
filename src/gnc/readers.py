"""Safe readers of input files: every malformed file is one :class:`FileFormatError`.

Matrices (.npy, .npz, .pt, .safetensors), feature archives, TOML configs and checkpoints. Each
reader is a boundary for hostile input: a malformed file raises :class:`FileFormatError` (a
``ValueError``) naming the file and the problem, before anything larger than the file is
allocated (declared sizes are compared with the file's size first), and no reader ever unpickles
(``np.load(allow_pickle=False)``, ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import struct
import tomllib
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors.torch import load_file

__all__ = [
    "ArrayKeyError",
    "FileFormatError",
    "load_matrix",
    "read_array",
    "read_checkpoint",
    "read_npy",
    "read_npz",
    "read_safetensors",
    "read_toml",
    "read_torch",
]

#: Largest ``.npy`` header accepted (NumPy's own default limit is 10,000 bytes).
_MAX_NPY_HEADER = 1 << 16
#: Largest safetensors JSON header accepted (the safetensors library's own limit).
_MAX_SAFETENSORS_HEADER = 100_000_000
#: Deflate cannot compress by more than ~1032:1; a member declaring more is lying.
_MAX_DEFLATE_RATIO = 1100
#: Largest TOML config accepted.
_MAX_TOML_BYTES = 16 << 20

_NPY_MAGIC = b"\x93NUMPY"
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
}  # fmt: skip


class FileFormatError(ValueError):
    """A file that cannot be read as what it claims to be; one line naming the file and problem.

    Readers of any format (here and elsewhere in gnc) raise it so that the command line reports
    every malformed input the same way (one line, exit status 2).

    Example:
        >>> str(FileFormatError("w.npy", "not an .npy file"))
        'cannot read w.npy: not an .npy file'
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"cannot read {self.path}: {self.problem}")


class ArrayKeyError(ValueError, KeyError):
    """A requested array name that the file does not hold (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------
# Readers (the boundary for hostile files)
# --------------------------------------------------------------------------------------------


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        if p.exists():
            raise FileFormatError(p, f"not a regular file (expected {what})")
        raise FileNotFoundError(f"No such file: {p} (expected {what}; it does not exist)")
    return p


def _numpy_dtype_problem(dtype: np.dtype[Any]) -> str | None:
    """Why gnc refuses arrays of ``dtype`` as numbers, or ``None`` for real floats/integers."""
    if dtype.hasobject:
        return "it holds Python objects (pickled data), which gnc never loads"
    if dtype.kind == "f" or dtype.kind in "iu":
        return None
    kinds = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes"}
    return f"unsupported dtype {dtype} ({kinds.get(dtype.kind, 'not real numbers')})"


def _npy_header(
    fh: IO[bytes], path: Path, available: int, member: str = ""
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Parse an ``.npy`` header from ``fh`` and check it against the ``available`` bytes."""
    where = f"member {member!r}: " if member else ""
    magic = fh.read(6)
    if magic != _NPY_MAGIC:
        start = magic + fh.read(10)
        hint = (
            " (it looks like text)"
            if start and all(32 <= b < 127 or b in b"\t\r\n" for b in start)
            else ""
        )
        raise FileFormatError(
            path, f"{where}not an .npy file: it starts with {start!r}, not \\x93NUMPY{hint}"
        )
    version = fh.read(2)
    if len(version) < 2 or (version[0], version[1]) not in ((1, 0), (2, 0), (3, 0)):
        raise FileFormatError(path, f"{where}unsupported or truncated .npy version {version!r}")
    fmt = "<H" if version[0] == 1 else "<I"
    raw = fh.read(struct.calcsize(fmt))
    if len(raw) < struct.calcsize(fmt):
        raise FileFormatError(path, f"{where}truncated .npy header")
    (length,) = struct.unpack(fmt, raw)
    offset = 6 + 2 + len(raw) + length
    if length > _MAX_NPY_HEADER or offset > available:
        raise FileFormatError(
            path,
            f"{where}the .npy header claims {length} bytes but the file has {available} bytes "
            "(truncated or corrupt)",
        )
    text = fh.read(length)
    if len(text) < length:
        raise FileFormatError(path, f"{where}truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("latin1" if version[0] < 3 else "utf8"))
        shape, fortran, descr = header["shape"], header["fortran_order"], header["descr"]
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise ValueError(f"bad shape {shape!r}")
        if not isinstance(fortran, bool):
            raise ValueError(f"bad fortran_order {fortran!r}")
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception as err:  # any failure to parse: a malformed header
        raise FileFormatError(path, f"{where}malformed .npy header ({err})") from None
    problem = _numpy_dtype_problem(dtype)
    if dtype.hasobject:
        raise FileFormatError(path, f"{where}{problem}")
    declared = math.prod(shape) * dtype.itemsize
    if declared > available - offset:
        raise FileFormatError(
            path,
            f"{where}the header declares shape {shape} of {dtype} ({declared:,} bytes) but only "
            f"{available - offset:,} bytes of data follow (truncated or corrupt)",
        )
    return shape, fortran, dtype


def _wrap_read_error(path: Path, err: BaseException, member: str = "") -> FileFormatError:
    where = f"member {member!r}: " if member else ""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return FileFormatError(path, f"{where}{text}")


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an ``.npy`` file safely (header checked against the file's size; no pickle).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: If the file is not a well-formed ``.npy`` file of a non-object dtype.
    """
    p = _existing_file(path, "an .npy file")
    size = p.stat().st_size
    with p.open("rb") as fh:
        shape, fortran, dtype = _npy_header(fh, p, size)
        try:
            count = math.prod(shape)
            data = np.fromfile(fh, dtype=dtype, count=count)
        except (OSError, ValueError, MemoryError) as err:
            raise _wrap_read_error(p, err) from None
    if data.size != count:
        raise FileFormatError(p, f"truncated: expected {count} values, read {data.size}")
    return data.reshape(shape, order="F" if fortran else "C")


def _check_zip(path: Path, what: str) -> zipfile.ZipFile:
    """Open ``path`` as a zip archive whose members' declared sizes fit the file."""
    size = path.stat().st_size
    if size == 0:
        raise FileFormatError(path, f"empty file (0 bytes; expected {what})")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise FileFormatError(path, f"not {what} (not a valid zip archive: {err})") from None
    try:
        seen: set[str] = set()
        for info in zf.infolist():
            if info.filename in seen:
                raise FileFormatError(path, f"duplicate key {info.filename!r} in the archive")
            seen.add(info.filename)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise FileFormatError(
                    path, f"member {info.filename!r} uses unsupported compression"
                )
            limit = info.compress_size * (
                1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
            )
            if info.compress_size > size or info.file_size > limit + 1024:
                raise FileFormatError(
                    path,
                    f"member {info.filename!r} declares {info.file_size:,} bytes from "
                    f"{info.compress_size:,} stored bytes in a {size:,}-byte file (corrupt)",
                )
    except BaseException:
        zf.close()
        raise
    return zf


def read_npz(
    path: str | os.PathLike[str],
    *,
    keys: tuple[str, ...] | None = None,
    required: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` archive safely, optionally only those named in ``keys``.

    Each member's header is checked against its declared size, and each declared size against
    the archive's size, before anything is allocated; no pickle.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: On an empty, truncated or corrupt archive, duplicate keys, members that
            are not ``.npy`` arrays, object arrays, or a missing ``required`` array.
    """
    p = _existing_file(path, "an .npz archive")
    arrays: dict[str, np.ndarray] = {}
    with _check_zip(p, "an .npz archive") as zf:
        infos = zf.infolist()
        if not infos:
            raise FileFormatError(p, "an empty .npz archive (no arrays)")
        for info in infos:
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else name
            if key in arrays:
                raise FileFormatError(p, f"duplicate key {key!r} in the archive")
            if keys is not None and key not in keys:
                continue
            try:
                with zf.open(info) as fh:
                    _npy_header(fh, p, info.file_size, member=name)
                with zf.open(info) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except FileFormatError:
                raise
            except Exception as err:  # zlib/zipfile/numpy errors on bad bytes
                raise _wrap_read_error(p, err, name) from None
        names = sorted(i.filename.removesuffix(".npy") for i in infos)
    missing = [k for k in required if k not in arrays]
    if missing:
        wanted = ", ".join(f"`{k}`" for k in required)
        raise FileFormatError(p, f"expected arrays {wanted}, but the archive has {names}")
    return arrays


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file after validating its header against the file's size.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: On a truncated file, a malformed or duplicate-key JSON header, unknown
            dtypes, or tensors whose offsets or sizes do not fit the data.
    """
    p = _existing_file(path, "a .safetensors file")
    size = p.stat().st_size
    with p.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise FileFormatError(
                p, f"truncated: {size} bytes, shorter than the 8-byte header length"
            )
        (length,) = struct.unpack("<Q", raw)
        if length > min(size - 8, _MAX_SAFETENSORS_HEADER):
            raise FileFormatError(
                p,
                f"invalid header length {length:,} for a {size:,}-byte file "
                "(not a .safetensors file?)",
            )
        text = fh.read(length)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FileFormatError(p, f"malformed header: {err}") from None
    if not isinstance(header, dict):
        raise FileFormatError(p, f"malformed header: a JSON {type(header).__name__}, not an object")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
                raise ValueError
            if not (type(begin) is int and type(end) is int):
                raise ValueError
        except (TypeError, KeyError, ValueError):
            raise FileFormatError(p, f"malformed header entry for tensor {name!r}") from None
        if dtype not in _SAFETENSORS_ITEMSIZE:
            raise FileFormatError(p, f"tensor {name!r} has unsupported dtype {dtype!r}")
        nbytes = math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]
        if not 0 <= begin <= end <= data_size or end - begin != nbytes:
            raise FileFormatError(
                p,
                f"tensor {name!r} of shape {tuple(shape)} {dtype} ({nbytes:,} bytes) has offsets "
                f"[{begin}, {end}] outside the {data_size:,} data bytes",
            )
    try:
        return dict(load_file(str(p)))
    except Exception as err:  # SafetensorError and friends on bad bytes
        raise _wrap_read_error(p, err) from None


def _torch_load(p: Path, map_location: Any, safe_globals: list[Any]) -> Any:
    with p.open("rb") as fh:
        if fh.read(2) == b"\x80\x02":  # a bare pickle: torch.save's format before PyTorch 1.6
            raise FileFormatError(
                p, "the legacy (non-zip) torch.save format is not read; re-save it with torch.save"
            )
    with _check_zip(p, "a PyTorch (.pt) file"):
        pass
    try:
        with torch.serialization.safe_globals(safe_globals):
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types on corrupt files
        if "Weights only load failed" in str(err):
            raise FileFormatError(
                p,
                "it holds pickled Python objects, not only tensors; gnc loads tensors only "
                "(torch.load(weights_only=True)) and never runs code from a file",
            ) from None
        raise _wrap_read_error(p, err) from None


def read_torch(path: str | os.PathLike[str]) -> Any:
    """Read a ``.pt``/``.pth`` file of tensors (``torch.load(weights_only=True)``, never pickle).

    Only the zip format of ``torch.save`` (the default since PyTorch 1.6) is read; its members'
    declared sizes are checked against the file first.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: On a truncated or corrupt file, or one carrying pickled objects.
    """
    p = _existing_file(path, "a PyTorch (.pt) file")
    return _torch_load(p, "cpu", [])


def read_checkpoint(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> Any:
    """Read a training checkpoint written by gnc: tensors, numbers, strings and NumPy RNG state.

    Like :func:`read_torch` (no code runs), with NumPy arrays allowed for the saved RNG state.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: On a truncated or corrupt checkpoint.
    """
    p = _existing_file(path, "a checkpoint (.pt) file")
    allowed: list[Any] = [
        importlib.import_module("numpy._core.multiarray")._reconstruct,  # how NumPy pickles
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]
    state = _torch_load(p, map_location, allowed)
    if not isinstance(state, dict):
        raise FileFormatError(p, f"expected a checkpoint dict, but got {type(state).__name__}")
    return state


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file (UTF-8; duplicate keys and syntax errors raise naming the file).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        FileFormatError: On a file that is too large, not UTF-8, or not valid TOML.
    """
    p = _existing_file(path, "a TOML config")
    size = p.stat().st_size
    if size > _MAX_TOML_BYTES:
        raise FileFormatError(p, f"{size:,} bytes is too large for a TOML config")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(
            p, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FileFormatError(p, f"invalid TOML: {err}") from None


def read_array(path: str | os.PathLike[str], *, key: str | None = None) -> tuple[Any, str | None]:
    """Read one array from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``, as stored.

    For archives the array is ``key`` if given, else ``weights`` or ``weight`` if present, else
    the only array, else the only 2-D array. The chosen array must hold real numbers (floats or
    integers): booleans, complex numbers, strings and objects are refused.

    Args:
        path: File to read.
        key: Name of the array inside an archive.

    Returns:
        ``(array, name)``: a numpy array or tensor in its stored dtype, and its key (``None`` for
        a single-array file).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ArrayKeyError: If ``key`` is not in the archive (a ``KeyError`` and a ``ValueError``).
        FileFormatError: If the file is malformed or the array's dtype is not real numbers.
        ValueError: On an unknown suffix, or an archive with no unambiguous choice.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    arrays: dict[str, Any]
    if suffix not in (".npy", ".npz", ".pt", ".pth", ".safetensors"):
        _existing_file(path, "a matrix file")
        raise ValueError(f"Expected a .npy, .npz, .pt or .safetensors file, but got {path.name!r}.")
    if suffix == ".npy":
        return _checked(path, None, read_npy(path)), None
    if suffix == ".npz":
        arrays = read_npz(path)
    elif suffix in (".pt", ".pth"):
        obj = read_torch(path)
        if isinstance(obj, torch.Tensor):
            return _checked(path, None, obj), None
        if not isinstance(obj, dict):
            raise FileFormatError(
                path, f"expected a tensor or a dict of tensors, but got {type(obj).__name__}"
            )
        arrays = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    else:
        arrays = read_safetensors(path)
    if not arrays:
        raise FileFormatError(path, "it holds no arrays")
    if key is not None:
        if key not in arrays:
            raise ArrayKeyError(f"Expected a key `{key}` in {path}, but it has {sorted(arrays)}.")
        return _checked(path, key, arrays[key]), key
    for name in ("weights", "weight"):
        if name in arrays:
            return _checked(path, name, arrays[name]), name
    if len(arrays) == 1:
        (only,) = arrays
        return _checked(path, only, arrays[only]), only
    two_d = [k for k, v in arrays.items() if getattr(v, "ndim", 0) == 2]
    if len(two_d) == 1:
        return _checked(path, two_d[0], arrays[two_d[0]]), two_d[0]
    raise ValueError(
        f"Expected {path} to hold one 2-D array or a key `weights`, but it has keys "
        f"{sorted(arrays)}; pick one with `key=`."
    )


def _checked(path: Path, name: str | None, value: Any) -> Any:
    """``value`` if it holds real numbers, else a :class:`FileFormatError` naming it."""
    where = f"array `{name}`: " if name else ""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise FileFormatError(path, f"{where}unsupported dtype {value.dtype}")
        if not value.is_floating_point() and value.dtype not in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
        ):  # fmt: skip
            raise FileFormatError(path, f"{where}unsupported dtype {value.dtype}")
        return value
    problem = _numpy_dtype_problem(np.asarray(value).dtype)
    if problem is not None:
        raise FileFormatError(path, f"{where}{problem}")
    return value


def load_matrix(
    path: str | os.PathLike[str], *, key: str | None = None, nonzero_rows: bool = True
) -> torch.Tensor:
    """Load a finite 2-D floating-point matrix from ``.npy``, ``.npz``, ``.pt`` or ``.safetensors``.

    The array is chosen as in :func:`read_array`.

    Args:
        path: File to read.
        key: Name of the array inside an archive.
        nonzero_rows: Refuse rows of zeros (a classifier's rows are normalized).

    Returns:
        The matrix as a tensor in its stored floating dtype.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ArrayKeyError: If ``key`` is not in the archive.
        FileFormatError: If the file is malformed, or the array is not a finite 2-D matrix of
            floating-point numbers (integer arrays are usually labels or token ids, not weights).
        ValueError: On an unknown suffix or an ambiguous archive.
    """
    value, name = read_array(path, key=key)
    t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    where = f"array `{name}`: " if name else ""
    if not t.is_floating_point():
        raise FileFormatError(
            path,
            f"{where}expected floating-point numbers, but got dtype {t.dtype} (integer arrays "
            "are labels or ids, not a matrix of weights; convert them if you mean it)",
        )
    if t.ndim != 2:
        raise FileFormatError(
            path, f"{where}expected a 2-D (K, d) matrix, but got shape {tuple(t.shape)}"
        )
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        row = int(bad.any(dim=1).nonzero()[0, 0])
        raise FileFormatError(path, f"{where}row {row} has NaN or Inf")
    zero = t.abs().amax(dim=1) == 0 if nonzero_rows and t.shape[1] else None
    if zero is not None and bool(zero.any()):
        row = int(zero.nonzero()[0, 0])
        raise FileFormatError(path, f"{where}row {row} is all zeros (it cannot be normalized)")
    return t
