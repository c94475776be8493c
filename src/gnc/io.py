"""Files written by gnc: atomic writes with the umask's permissions, output locks, JSON values.

Reading files is the other side of the boundary: :mod:`gnc.readers`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import platform
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch

__all__ = [
    "OutputInUseError",
    "Record",
    "atomic_save_npz",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_file_mode",
    "dump_json",
    "lock_output",
    "record_to_dict",
    "run_metadata",
    "save_array",
    "to_jsonable",
]

#: The lock file that :func:`lock_output` holds inside an output folder.
LOCK_NAME = ".gnc.lock"


class OutputInUseError(RuntimeError):
    """Another process holds the lock on an output folder (see :func:`lock_output`)."""


# --------------------------------------------------------------------------------------------
# JSON and run metadata
# --------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert tensors, arrays, numpy scalars, records and non-finite floats into JSON values.

    Tensors and arrays become (nested) lists, a record (an object with ``to_dict()``) its
    ``to_dict()``, NaN and infinities ``None``.

    Example:
        >>> to_jsonable({"a": torch.tensor([1.5, float("nan")]), "b": (1, 2.0)})
        {'a': [1.5, None], 'b': [1, 2.0]}
    """
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_jsonable(to_dict())
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


class Record:
    """Base of gnc's result records (frozen dataclasses): one ``to_dict()`` for JSON.

    ``to_dict()`` returns the fields as JSON values (:func:`record_to_dict`): tensors become
    (nested) lists, except the fields a record names in ``_omit_from_dict`` (its ``(K, d)``
    matrices, functions), which are left out; nested records become dicts; NaN becomes ``None``.
    """

    _omit_from_dict: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values; tensors as lists, ``_omit_from_dict`` fields left out."""
        return record_to_dict(self, omit=self._omit_from_dict)


def record_to_dict(record: Any, *, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a dataclass record as JSON values (:func:`to_jsonable`), less ``omit``.

    This is the body of every record's ``to_dict()``: tensor fields become (nested) lists unless
    named in ``omit`` (the records leave out their ``(K, d)`` matrices that way), nested records
    their own ``to_dict()``, and non-finite floats ``None``.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Point:
        ...     x: float
        ...     code: torch.Tensor
        >>> record_to_dict(Point(1.0, torch.eye(2)), omit=("code",))
        {'x': 1.0}
    """
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"Expected a dataclass record, but got {type(record).__name__}.")
    return {
        f.name: to_jsonable(getattr(record, f.name))
        for f in dataclasses.fields(record)
        if f.name not in omit
    }


def dump_json(value: Any, *, indent: int | None = 2) -> str:
    """Serialize ``value`` to JSON after :func:`to_jsonable`."""
    return json.dumps(to_jsonable(value), indent=indent, allow_nan=False)


def run_metadata(seed: int | None = None, started: float | None = None) -> dict[str, Any]:
    """Versions, device and timing recorded in every ``results.json``."""
    import gnc  # the package's version: gnc/__init__ imports this module (a real cycle)

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


# --------------------------------------------------------------------------------------------
# Atomic writes, permissions, output locks
# --------------------------------------------------------------------------------------------


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask


def default_file_mode(path: str | os.PathLike[str] | None = None) -> int:
    """The mode ``open(path, "w")`` would leave: the existing file's, else ``0o666 & ~umask``.

    Example:
        >>> old = os.umask(0o027)
        >>> oct(default_file_mode())
        '0o640'
        >>> _ = os.umask(old)
    """
    if path is not None:
        with contextlib.suppress(OSError):
            return os.stat(path).st_mode & 0o7777
    return 0o666 & ~_umask()


_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _make_folder(folder: Path) -> None:
    """``mkdir -p folder``; a file in the way is a user error (``ValueError``), not a bug."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"Expected {folder} to be a folder, but a file is in the way.") from None


def atomic_write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], Any]) -> None:
    """Create ``path`` atomically from what ``writer`` writes to a binary file handle.

    The handle is a temporary file in the same folder, which then replaces ``path``: readers see
    the old file or the complete new one, never a part; an exception or an interrupt (SIGINT,
    SIGTERM turned into an exception by the command line) removes the temporary file. The result
    gets the mode a plain ``open(path, "w")`` would give (the umask's, or the replaced file's).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "sub" / "a.bin"
        >>> atomic_write(target, lambda fh: fh.write(b"abc"))
        >>> target.read_bytes(), [p.name for p in target.parent.iterdir()]
        (b'abc', ['a.bin'])
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Expected a file to write, but {path} is a folder.")
    _make_folder(path.parent)
    mode = default_file_mode(path)
    # No signal between creating the temporary file and owning its clean-up.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


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


def _lock_holder(lock: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(lock.read_text().split()[0])
        return f" (pid {pid})"
    return ""


@contextlib.contextmanager
def lock_output(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on output ``folder`` (``fcntl.flock`` on ``folder/.gnc.lock``).

    A second holder, in this or another process, fails at once with :class:`OutputInUseError`
    naming the folder and the pid that holds it. The lock dies with its process, so a killed run
    never leaves a stale lock; a folder that this call created and nothing else wrote to is
    removed again.

    Raises:
        OutputInUseError: If another run holds the lock.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "run"
        >>> with lock_output(out):
        ...     with lock_output(out):  # doctest: +ELLIPSIS
        ...         pass
        Traceback (most recent call last):
        gnc.io.OutputInUseError: another gnc run is writing to ... (pid ...); wait for it ...
        >>> out.exists()
        False
    """
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    _make_folder(folder)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise OutputInUseError(
                f"another gnc run is writing to {folder}{_lock_holder(lock)}; wait for it to "
                "finish or choose another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield folder
        finally:
            if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                lock.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    folder.rmdir()
    finally:
        os.close(fd)  # releases the flock


def save_array(path: str | os.PathLike[str], array: np.ndarray | torch.Tensor) -> None:
    """Save ``array`` as ``.npy`` atomically."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))
