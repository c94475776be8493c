"""A tiny word-level language model: GNC in the ``K >> d`` regime of language models.

Language models are the classifiers with the most classes per feature dimension (a vocabulary of
``K ~ 5e4`` words against ``d ~ 10^3``), the regime that generalized neural collapse (Jiang et
al., "Generalized Neural Collapse for a Large Number of Classes", ICML 2024) describes but that
the paper never measures. This package trains a small next-word predictor on a real corpus, on
CPU, and tracks GNC per epoch with a normalized head at temperature ``tau`` or a plain linear
head: :mod:`~gnc.lm.vocab` (tokens, vocabulary, context windows), :mod:`~gnc.lm.model` (the
configuration and network), :mod:`~gnc.lm.metrics` (GNC over the classes present),
:mod:`~gnc.lm.loop` (:func:`train_lm`) and :mod:`~gnc.lm.records` (the result records).
"""

from gnc.lm.loop import train_lm
from gnc.lm.metrics import (
    FrequencyBand,
    PresentClassGNC,
    ReducedCode,
    reduced_code_value,
    subsample_gnc_metrics,
)
from gnc.lm.model import ContextMLP, LMConfig, build_lm_model
from gnc.lm.records import TIMING_KEYS, LMEpoch, LMResult
from gnc.lm.vocab import (
    UNK,
    LMData,
    Vocabulary,
    build_vocabulary,
    context_windows,
    prepare_lm_data,
    sample_positions,
    tokenize,
)

__all__ = [
    "TIMING_KEYS",
    "UNK",
    "ContextMLP",
    "FrequencyBand",
    "LMConfig",
    "LMData",
    "LMEpoch",
    "LMResult",
    "PresentClassGNC",
    "ReducedCode",
    "Vocabulary",
    "build_lm_model",
    "build_vocabulary",
    "context_windows",
    "prepare_lm_data",
    "reduced_code_value",
    "sample_positions",
    "subsample_gnc_metrics",
    "tokenize",
    "train_lm",
]
