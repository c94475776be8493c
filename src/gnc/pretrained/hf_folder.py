"""Heads from Hugging Face model folders: ``config.json`` + safetensors (single or sharded).

The head is ``lm_head.weight`` when the checkpoint stores one; otherwise, when the config ties
word embeddings (``tie_word_embeddings``, default true as in ``transformers``), the input token
embedding (``model.embed_tokens.weight``, ``embeddings.word_embeddings.weight``, ``wte.weight``,
...). Its bias (``<name>.bias``) is read when present. Sharded checkpoints are found through
``model.safetensors.index.json``. Token strings come from ``tokenizer.json`` when the folder has
one. Only the chosen tensors are read (safetensors' own parser checks offsets and header size).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from gnc.pretrained.record import Head, LabelKind

__all__ = ["EMBEDDING_SUFFIXES", "read_hf_head"]

#: Names (suffixes) of tied input embeddings, tried in order.
EMBEDDING_SUFFIXES: tuple[str, ...] = (
    "embed_tokens.weight",
    "word_embeddings.weight",
    "wte.weight",
    "embed_in.weight",
    "shared.weight",
    "tok_embeddings.weight",
)
_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = str(err).splitlines()[0]
        raise ValueError(f"Expected valid JSON in {path}, but it is malformed: {msg}") from None


def _weight_map(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = _read_json(index)
        wm = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(wm, dict):
            raise ValueError(f"Expected a `weight_map` object in {index}, but it has none.")
        out: dict[str, Path] = {}
        for name, file in wm.items():
            shard = (folder / str(file)).resolve()
            if shard.parent != folder.resolve():
                raise ValueError(f"Expected shards inside {folder}, but {index} names {file!r}.")
            out[str(name)] = shard
        return out
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(
            f"Expected model.safetensors or model.safetensors.index.json in {folder}, but it has "
            "neither."
        )
    out = {}
    for file in files:
        for name in _keys(file):
            out[name] = file
    return out


def _safe_open(file: Path) -> Any:
    if not file.is_file():
        raise ValueError(f"Expected the shard {file} of the checkpoint, but it is missing.")
    try:
        return safe_open(str(file), framework="pt")
    except Exception as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"Expected a readable safetensors file, but {file} is malformed: {msg}"
        ) from None


def _keys(file: Path) -> list[str]:
    with _safe_open(file) as fh:
        return list(fh.keys())


def _tensor(file: Path, name: str) -> torch.Tensor:
    with _safe_open(file) as fh:
        try:
            t: torch.Tensor = fh.get_tensor(name)
        except Exception as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"Expected to read `{name}` from {file}, but: {msg}") from None
    if t.dtype not in _FLOATS:
        raise ValueError(
            f"Expected a floating tensor `{name}` in {file}, but it is {t.dtype} (quantized "
            "checkpoints are not supported)."
        )
    return t


def _tokens(folder: Path, K: int) -> tuple[tuple[str, ...] | None, LabelKind]:
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None, "index"
    data = _read_json(path)
    model = data.get("model") or {}
    vocab = model.get("vocab")
    by_id: dict[int, str] = {}
    if isinstance(vocab, dict):
        by_id = {int(i): str(t) for t, i in vocab.items()}
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        by_id = {i: str(entry[0]) for i, entry in enumerate(vocab)}
    for added in data.get("added_tokens") or ():
        by_id[int(added["id"])] = str(added["content"])
    if not by_id:
        return None, "index"
    tokens = tuple(by_id.get(i, "") for i in range(K))
    text = json.dumps([data.get("decoder"), data.get("pre_tokenizer")])
    kind: LabelKind = "character"
    if "ByteLevel" in text:
        kind = "token"
    elif "Metaspace" in text or "\u2581" in text or "\\u2581" in text:
        kind = "sentencepiece"
    return tokens, kind


def read_hf_head(folder: str | os.PathLike[str], *, key: str | None = None) -> Head:
    """Read the LM/classifier head of a Hugging Face model folder.

    Args:
        folder: A folder with ``config.json`` and safetensors weights.
        key: Tensor name to read instead (its ``.bias`` sibling is read too).

    Returns:
        A :class:`~gnc.pretrained.Head` (float32 unless stored as float64).

    Raises:
        ValueError: On a malformed folder or file (one line naming it), no head tensor, a
            non-floating or non-2-D head.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(
            f"Expected a Hugging Face model folder with config.json, but {folder} has none."
        )
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(
            f"Expected a JSON object in {config_path}, but got {type(config).__name__}."
        )
    nested = config.get("text_config")
    text_config: dict[str, Any] = nested if isinstance(nested, dict) else {}
    tie = config.get("tie_word_embeddings", text_config.get("tie_word_embeddings", True))
    wm = _weight_map(folder)
    if key is not None:
        if key not in wm:
            raise ValueError(f"Expected a tensor `{key}` in {folder}, but it has none.")
        chosen = key
    elif "lm_head.weight" in wm:
        chosen = "lm_head.weight"
    else:
        cands = [n for s in EMBEDDING_SUFFIXES for n in sorted(wm) if n.endswith(s)]
        if not tie or not cands:
            why = "untied embeddings" if not tie else "no token embedding"
            raise ValueError(
                f"Expected `lm_head.weight` or a tied token embedding in {folder}, but it has "
                f"neither ({why}); name the tensor with `key=`."
            )
        chosen = cands[0]
    W = _tensor(wm[chosen], chosen)
    if W.ndim != 2:
        raise ValueError(f"Expected `{chosen}` in {folder} to be 2-D, but got {tuple(W.shape)}.")
    stored = str(W.dtype).removeprefix("torch.")
    if W.dtype != torch.float64:
        W = W.to(torch.float32)  # exact from float16/bfloat16
    bias = None
    bias_name = chosen.removesuffix(".weight") + ".bias"
    if bias_name in wm:
        bias = _tensor(wm[bias_name], bias_name).to(W.dtype).reshape(-1)
        if bias.shape != (W.shape[0],):
            raise ValueError(
                f"Expected `{bias_name}` of shape ({W.shape[0]},), but got {tuple(bias.shape)}."
            )
    tokens, kind = _tokens(folder, W.shape[0])
    prov: dict[str, Any] = {
        "folder": str(folder.resolve()),
        "format": "huggingface",
        "file": str(wm[chosen]),
        "tensor": chosen,
        "storage": stored,
        "bias_tensor": bias_name if bias is not None else None,
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "tie_word_embeddings": bool(tie),
    }
    return Head(
        W.contiguous(),
        tokens,
        folder.resolve().name,
        prov,
        kind if tokens is not None else "index",
        bias,
        str(folder),
        chosen.endswith(EMBEDDING_SUFFIXES),
    )
