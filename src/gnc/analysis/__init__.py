"""Analysis of real pretrained ``K >> d`` classifier heads (language models, OCR)."""

from gnc.analysis.heads import (
    HEAD_SOURCES,
    HeadMatrix,
    decode_byte_level_token,
    head_cache_dir,
    load_head,
    load_matrix_file,
)

__all__ = [
    "HEAD_SOURCES",
    "HeadMatrix",
    "decode_byte_level_token",
    "head_cache_dir",
    "load_head",
    "load_matrix_file",
]
