"""Heads from GGUF files of any architecture (llama.cpp's format), read with the ``gguf`` package.

The head is ``output.weight`` when the file has one, else the tied input embedding
``token_embd.weight``; a tensor of another name can be asked for. Every quantization type that
``gguf.quants.dequantize`` knows is dequantized to float32 (exact for the block formats: their
values are ``scale * integer`` products representable in float32). Token strings come from
``tokenizer.ggml.tokens``; ``tokenizer.ggml.model`` tells how to show them.

The header is checked before ``gguf`` parses it (magic, version, counts that fit in the file) and
the chosen tensor's extent before it is dequantized, so a malformed file gives one
``ValueError`` line and no allocation follows an absurd header.
"""

from __future__ import annotations

import os
import struct
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


def _check_header(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24:
        raise ValueError(f"Expected a GGUF file, but {path} is truncated ({size} bytes).")
    if head[:4] != _MAGIC:
        raise ValueError(f"Expected a GGUF file (magic b'GGUF'), but {path} starts {head[:4]!r}.")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        raise ValueError(f"Expected GGUF version 2 or 3, but {path} has version {version}.")
    # Each tensor info takes at least 24 bytes and each key/value at least 12.
    if n_tensors * 24 + n_kv * 12 > size:
        raise ValueError(
            f"Expected the GGUF header of {path} to fit in its {size} bytes, but it declares "
            f"{n_tensors} tensors and {n_kv} key/values."
        )


def _label_kind(reader: Any) -> LabelKind:
    field = reader.fields.get("tokenizer.ggml.model")
    if field is None:
        return "character"
    model = bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
    if model == "gpt2":
        return "token"
    if model in ("llama", "gemma", "t5", "gemma3"):
        return "sentencepiece"
    return "character"


def _tokens(reader: Any) -> list[str] | None:
    field = reader.fields.get("tokenizer.ggml.tokens")
    if field is None:
        return None
    return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]


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
    require("gguf", "GGUF files")
    import gguf

    _check_header(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Expected a readable GGUF file, but {path} is malformed: {msg}") from None
    tensors = {t.name: t for t in reader.tensors}
    names = (key,) if key is not None else GGUF_HEAD_TENSORS
    chosen = next((n for n in names if n in tensors), None)
    if chosen is None:
        near = sorted(n for n in tensors if "embd" in n or "output" in n)[:8]
        raise ValueError(
            f"Expected a tensor {' or '.join(f'`{n}`' for n in names)} in {path}, but it has "
            f"none (e.g. {near})."
        )
    t = tensors[chosen]
    shape = [int(x) for x in t.shape]
    if len(shape) != 2:
        raise ValueError(f"Expected `{chosen}` in {path} to be 2-D, but it has shape {shape}.")
    size = path.stat().st_size
    if int(t.data_offset) + int(t.n_bytes) > size or t.data.nbytes != int(t.n_bytes):
        raise ValueError(
            f"Expected the data of `{chosen}` in {path} to lie inside the file ({size} bytes), "
            f"but it spans bytes {int(t.data_offset)}..{int(t.data_offset) + int(t.n_bytes)}."
        )
    qtype = t.tensor_type
    try:
        array = np.asarray(gguf.quants.dequantize(t.data, qtype), dtype=np.float32)
    except NotImplementedError:
        raise ValueError(
            f"Expected a quantization type that `gguf` dequantizes, but `{chosen}` in {path} is "
            f"{qtype.name}."
        ) from None
    K, d = shape[1], shape[0]  # GGUF lists dimensions fastest first
    array = np.ascontiguousarray(array.reshape(K, d))
    if not array.flags.writeable:  # a view of the memory-mapped file (F32): own the data
        array = array.copy()
    if not np.isfinite(array).all():
        raise ValueError(f"Expected finite values in `{chosen}` of {path}, but some are NaN/Inf.")
    bias = None
    bias_name = chosen.removesuffix(".weight") + ".bias"
    if bias_name in tensors:
        bias = (
            np.asarray(
                gguf.quants.dequantize(tensors[bias_name].data, tensors[bias_name].tensor_type),
                dtype=np.float32,
            )
            .reshape(-1)
            .copy()
        )
        if bias.shape != (K,):
            bias = None
    tokens = _tokens(reader)
    prov: dict[str, Any] = {
        "file": str(path.resolve()),
        "format": "gguf",
        "tensor": chosen,
        "storage": qtype.name,
        "data_offset": int(t.data_offset),
        "bias_tensor": bias_name if bias is not None else None,
    }
    arch = reader.fields.get("general.architecture")
    if arch is not None:
        prov["architecture"] = bytes(arch.parts[arch.data[0]]).decode("utf-8", errors="replace")
    if tokens is not None and len(tokens) != K:
        prov["note"] = f"vocabulary has {len(tokens)} tokens for {K} rows; tokens dropped"
        tokens = None
    return Head(
        torch.from_numpy(array),
        None if tokens is None else tuple(tokens),
        path.stem,
        prov,
        _label_kind(reader) if tokens is not None else "index",
        None if bias is None else torch.from_numpy(bias),
        str(path),
        chosen == "token_embd.weight",
    )
