"""Pretrained heads (moved to :mod:`gnc.pretrained`; these names are kept for existing imports).

``HeadMatrix`` is :class:`gnc.pretrained.Head`.
"""

from __future__ import annotations

from gnc.pretrained.load import HEAD_SOURCES, MATRIX_SUFFIXES, load_head, load_matrix_file
from gnc.pretrained.packaged import (
    OCR_DICT,
    OCR_MODEL,
    OCR_TENSOR,
    head_cache_dir,
    ocr_model_paths,
    read_ocr_characters,
    smollm2_gguf_path,
    whisper_model_dir,
)
from gnc.pretrained.record import Head, LabelKind, _byte_level_decoder, decode_byte_level_token

HeadMatrix = Head

__all__ = [
    "HEAD_SOURCES",
    "MATRIX_SUFFIXES",
    "OCR_DICT",
    "OCR_MODEL",
    "OCR_TENSOR",
    "HeadMatrix",
    "LabelKind",
    "_byte_level_decoder",
    "decode_byte_level_token",
    "head_cache_dir",
    "load_head",
    "load_matrix_file",
    "ocr_model_paths",
    "read_ocr_characters",
    "smollm2_gguf_path",
    "whisper_model_dir",
]
