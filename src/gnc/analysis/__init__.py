"""Analysis of real pretrained ``K >> d`` networks: their heads, and their features on real data.

- :mod:`~gnc.analysis.heads`: load a head (SmolLM2, Whisper, PP-OCRv6, any matrix file).
- :mod:`~gnc.analysis.head_geometry`: exact GNC2 of a head with reference values.
- :mod:`~gnc.analysis.causal_lm`: any causal language model through ``transformers``
  (SmolLM2, Gemma 3, a GGUF file, a Hugging Face folder): load, predict, head-input features.
- :mod:`~gnc.analysis.ocr_features`: PP-OCRv6 frame features on rendered text.
- :mod:`~gnc.analysis.feature_sources`: language models' and PP-OCRv6's features on real data.
- :mod:`~gnc.analysis.feature_gnc`: GNC1/GNC3/NCC of features grouped by predicted class.
"""

from gnc.analysis.causal_lm import (
    LM_SOURCES,
    CausalLM,
    evaluate_next_token,
    greedy_generate,
    lm_features,
    load_causal_lm,
)
from gnc.analysis.feature_gnc import HeadFeatureMetrics, measure_head_features, predict_classes
from gnc.analysis.feature_sources import (
    FEATURE_SOURCES,
    ExtractedFeatures,
    extract_features,
    extract_lm_features,
    extract_ocr_features,
)
from gnc.analysis.heads import (
    HEAD_SOURCES,
    HeadMatrix,
    decode_byte_level_token,
    head_cache_dir,
    load_head,
    load_matrix_file,
)

__all__ = [
    "FEATURE_SOURCES",
    "HEAD_SOURCES",
    "LM_SOURCES",
    "CausalLM",
    "ExtractedFeatures",
    "HeadFeatureMetrics",
    "HeadMatrix",
    "decode_byte_level_token",
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
    "measure_head_features",
    "predict_classes",
]
