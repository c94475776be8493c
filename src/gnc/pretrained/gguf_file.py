"""Heads from GGUF files of any architecture (llama.cpp's format).

The head is ``output.weight`` when the file has one, else the tied input embedding
``token_embd.weight``; a tensor of another name can be asked for. Every quantization type that
``gguf.quants.dequantize`` knows is dequantized to float32 (exact for the block formats: their
values are ``scale * integer`` products representable in float32). Token strings come from
``tokenizer.ggml.tokens``; ``tokenizer.ggml.model`` tells how to show them.

The file is parsed here (header, key/values, tensor infos) on a memory map with every read
bounds-checked, so a malformed file gives one ``ValueError`` line naming it and no allocation
follows an absurd header; only the dequantization uses the ``gguf`` package. (``gguf``'s own
``GGUFReader`` builds Python objects for every vocabulary entry and takes minutes for a
262,144-token vocabulary on a loaded 2-core machine.)
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnc.pretrained._deps import require
from gnc.pretrained.record import Head, LabelKind

__all__ = ["GGUF_HEAD_TENSORS", "read_gguf_head"]

#: Tensor names tried in order: an untied LM head, then the tied token embedding.
GGUF_HEAD_TENSORS: tuple[str, ...] = ("output.weight", "token_embd.weight")

_MAGIC = b"GGUF"
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_WANTED = (
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.model",
    "general.architecture",
    "general.alignment",
)


@dataclass(frozen=True)
class _TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int


class _Cursor:
    """Bounds-checked little-endian reads from a memory map (a malformed file never allocates)."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.size, self.path = buf, 0, len(buf), path

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > self.size:
            raise ValueError(
                f"Expected a complete GGUF file, but {self.path} is truncated or malformed "
                f"(a field at byte {self.pos} needs {n} bytes of the {self.size})."
            )
        at = self.pos
        self.pos += n
        return at

    def unpack(self, fmt: str) -> Any:
        at = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, at)[0]

    def string(self) -> str:
        n = int(self.unpack("<Q"))
        at = self.take(n)
        return bytes(self.buf[at : at + n]).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype != 9:
            raise ValueError(f"Expected a GGUF value type in 0..12, but {self.path} has {vtype}.")
        etype, count = int(self.unpack("<I")), int(self.unpack("<Q"))
        if count > self.size - self.pos:  # every element takes at least one byte
            raise ValueError(
                f"Expected a GGUF array that fits in {self.path}, but it declares {count} items."
            )
        if etype in _SCALARS:
            self.take(count * struct.calcsize(_SCALARS[etype]))
            return None
        out = [self.value(etype, keep) for _ in range(count)]
        return out if keep else None


def _parse(path: Path, buf: Any) -> tuple[dict[str, Any], list[_TensorInfo], int]:
    """The key/values we need, the tensor infos and the data start of a GGUF file."""
    size = len(buf)
    if size < 24:
        raise ValueError(f"Expected a GGUF file, but {path} is truncated ({size} bytes).")
    if bytes(buf[:4]) != _MAGIC:
        raise ValueError(
            f"Expected a GGUF file (magic b'GGUF'), but {path} starts {bytes(buf[:4])!r}."
        )
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        raise ValueError(f"Expected GGUF version 2 or 3, but {path} has version {version}.")
    # Each tensor info takes at least 24 bytes and each key/value at least 12.
    if n_tensors * 24 + n_kv * 12 > size:
        raise ValueError(
            f"Expected the GGUF header of {path} to fit in its {size} bytes, but it declares "
            f"{n_tensors} tensors and {n_kv} key/values."
        )
    cur = _Cursor(buf, path)
    cur.pos = 24
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = int(cur.unpack("<I"))
        kv[key] = cur.value(vtype, key in _WANTED)
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = int(cur.unpack("<I"))
        if n_dims > 8:
            raise ValueError(f"Expected at most 8 dimensions, but `{name}` in {path} has {n_dims}.")
        shape = tuple(int(cur.unpack("<Q")) for _ in range(n_dims))
        infos.append(_TensorInfo(name, shape, int(cur.unpack("<I")), int(cur.unpack("<Q"))))
    align = kv.get("general.alignment") or 32
    if not isinstance(align, int) or align <= 0:
        raise ValueError(f"Expected a positive general.alignment, but {path} has {align!r}.")
    start = -(-cur.pos // align) * align
    return kv, infos, start


def _label_kind(model: Any) -> LabelKind:
    if model == "gpt2":
        return "token"
    if model in ("llama", "gemma", "t5", "gemma3"):
        return "sentencepiece"
    return "character"


def _dequantize(path: Path, buf: Any, t: _TensorInfo, start: int) -> tuple[np.ndarray, str]:
    """Dequantize one tensor to float32 after checking that its extent lies inside the file."""
    import gguf

    try:
        qtype = gguf.GGMLQuantizationType(t.type_id)
    except ValueError:
        raise ValueError(
            f"Expected a known GGML type for `{t.name}` in {path}, but got id {t.type_id}."
        ) from None
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    count = int(np.prod(t.shape, dtype=np.float64)) if t.shape else 0
    if not t.shape or t.shape[0] == 0 or t.shape[0] % block or count > 2**40:
        raise ValueError(
            f"Expected `{t.name}` in {path} to have a shape that fits {qtype.name} blocks of "
            f"{block}, but it has {list(t.shape)}."
        )
    rows = count // t.shape[0]
    n_bytes = count // block * type_size
    at = start + t.offset
    if at + n_bytes > len(buf):
        raise ValueError(
            f"Expected the data of `{t.name}` in {path} to lie inside the file ({len(buf)} "
            f"bytes), but it spans bytes {at}..{at + n_bytes}."
        )
    raw = np.asarray(buf[at : at + n_bytes]).reshape(rows, -1)
    plain = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    if qtype.name in plain:
        raw = raw.view(plain[qtype.name])
    try:
        out = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)
    except NotImplementedError:
        raise ValueError(
            f"Expected a quantization type that `gguf` dequantizes, but `{t.name}` in {path} is "
            f"{qtype.name}."
        ) from None
    if not out.flags.writeable or np.shares_memory(out, raw):
        out = out.copy()  # own the data: never a view of the memory-mapped file
    return np.ascontiguousarray(out), qtype.name


def read_gguf_head(path: str | os.PathLike[str], *, key: str | None = None) -> Head:
    """Read the classifier head of a GGUF file, dequantized to float32 ``(K, d)``.

    Args:
        path: The ``.gguf`` file.
        key: Tensor name (default: ``output.weight``, else ``token_embd.weight``).

    Returns:
        A :class:`~gnc.pretrained.Head` (``tied`` when the head is ``token_embd.weight``).

    Raises:
        ValueError: On a malformed file (one line naming the file and the problem), a missing
            or non-2-D tensor, a quantization type ``gguf`` cannot dequantize, or a missing
            ``gguf`` package (the message names ``pip install 'gnc[heads]'``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path} (expected a GGUF file).")
    require("gguf", what="GGUF files")
    if path.stat().st_size < 24:
        raise ValueError(f"Expected a GGUF file, but {path} is truncated.")
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    kv, infos, start = _parse(path, buf)
    tensors = {t.name: t for t in infos}
    names = (key,) if key is not None else GGUF_HEAD_TENSORS
    chosen = next((n for n in names if n in tensors), None)
    if chosen is None:
        near = sorted(n for n in tensors if "embd" in n or "output" in n)[:8]
        raise ValueError(
            f"Expected a tensor {' or '.join(f'`{n}`' for n in names)} in {path}, but it has "
            f"none (e.g. {near})."
        )
    t = tensors[chosen]
    if len(t.shape) != 2:
        raise ValueError(
            f"Expected `{chosen}` in {path} to be 2-D, but it has shape {list(t.shape)}."
        )
    d, K = t.shape  # GGUF lists dimensions fastest first
    array, qname = _dequantize(path, buf, t, start)
    array = array.reshape(K, d)
    if not np.isfinite(array).all():
        raise ValueError(f"Expected finite values in `{chosen}` of {path}, but some are NaN/Inf.")
    bias = None
    bias_name = chosen.removesuffix(".weight") + ".bias"
    if bias_name in tensors:
        bias = _dequantize(path, buf, tensors[bias_name], start)[0].reshape(-1)
        if bias.shape != (K,):
            bias = None
    raw_tokens = kv.get("tokenizer.ggml.tokens")
    tokens = [str(x) for x in raw_tokens] if isinstance(raw_tokens, list) else None
    prov: dict[str, Any] = {
        "file": str(path.resolve()),
        "format": "gguf",
        "tensor": chosen,
        "storage": qname,
        "data_offset": start + t.offset,
        "bias_tensor": bias_name if bias is not None else None,
    }
    if isinstance(kv.get("general.architecture"), str):
        prov["architecture"] = kv["general.architecture"]
    if tokens is not None and len(tokens) != K:
        prov["note"] = f"vocabulary has {len(tokens)} tokens for {K} rows; tokens dropped"
        tokens = None
    return Head(
        torch.from_numpy(array),
        None if tokens is None else tuple(tokens),
        path.stem,
        prov,
        _label_kind(kv.get("tokenizer.ggml.model")) if tokens is not None else "index",
        None if bias is None else torch.from_numpy(bias),
        str(path),
        chosen == "token_embd.weight",
    )
