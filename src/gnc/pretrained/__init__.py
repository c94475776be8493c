"""Pretrained ``K >> d`` networks: their heads from any source, and their features on real data.

Heads:

- :mod:`~gnc.pretrained.record`: the :class:`Head` record and token decoders.
- :mod:`~gnc.pretrained.packaged`: the registry of heads shipped in PyPI packages, and the cache.
- :mod:`~gnc.pretrained.gguf_file`, :mod:`~gnc.pretrained.hf_folder`,
  :mod:`~gnc.pretrained.onnx_file`, :mod:`~gnc.pretrained.ctranslate2`: the file readers.
- :mod:`~gnc.pretrained.load`: :func:`load_head`, the one entry point.

Features:

- :mod:`~gnc.pretrained.causal_lm`: any causal language model through ``transformers``
  (SmolLM2, Gemma 3, a GGUF file, a Hugging Face folder): load, predict, head-input features.
- :mod:`~gnc.pretrained.ocr`: the PP-OCRv6 recognizer's frame features on rendered text.
- :mod:`~gnc.pretrained.features`: either network's features on real data, one record.

The GGUF and ONNX readers and the OCR recognizer need the optional extra
``pip install 'gnc[heads]'``; language models need ``pip install 'gnc[hf]'``.
"""

from gnc.pretrained.causal_lm import (
    LM_SOURCES,
    CausalLM,
    evaluate_next_token,
    greedy_generate,
    lm_features,
    load_causal_lm,
)
from gnc.pretrained.features import (
    FEATURE_SOURCES,
    ExtractedFeatures,
    extract_features,
    extract_lm_features,
    extract_ocr_features,
)
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
    "FEATURE_SOURCES",
    "HEAD_SOURCES",
    "LM_SOURCES",
    "MATRIX_SUFFIXES",
    "PACKAGED_HEADS",
    "CausalLM",
    "ExtractedFeatures",
    "Head",
    "LabelKind",
    "PackagedHead",
    "decode_byte_level_token",
    "decode_sentencepiece_token",
    "evaluate_next_token",
    "extract_features",
    "extract_lm_features",
    "extract_ocr_features",
    "greedy_generate",
    "head_cache_dir",
    "lm_features",
    "load_causal_lm",
    "load_head",
    "load_matrix_file",
    "read_gguf_head",
    "read_hf_head",
    "read_onnx_head",
    "source_kind",
]
