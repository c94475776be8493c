"""Tests of the tiny language model (gnc.lm) and its CLI (gnc lm).

Oracles: hand-counted / ``collections.Counter`` vocabularies, explicit slicing for the context
windows, the independent NumPy metric reference in ``tests/helpers`` and SciPy one-vs-rest
distances for the metrics, and a synthetic text with a deterministic cycle that any working
next-word model must learn.
"""

from __future__ import annotations

import itertools
import json
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import gnc.cli
from gnc.lm import (
    TIMING_KEYS,
    UNK,
    LMConfig,
    LMData,
    build_lm_model,
    build_vocabulary,
    context_windows,
    prepare_lm_data,
    sample_positions,
    subsample_gnc_metrics,
    tokenize,
    train_lm,
)
from gnc.metrics import gnc2 as gnc2_exact
from helpers.metrics_reference import class_means, normalize, reference_metrics
from helpers.qp_reference import scipy_one_vs_rest_distance

# A deterministic cycle of 50 distinct words: the next word is a function of the previous one.
CYCLE = ["".join(p) for p in itertools.product(string.ascii_lowercase[:8], repeat=2)][:50]
CYCLE_TEXT = " ".join(CYCLE * 40)  # 2000 tokens


def _small_config(**changes: object) -> LMConfig:
    base = {
        "num_classes": 51,
        "context": 2,
        "embedding_dim": 8,
        "hidden_dim": 32,
        "feature_dim": 4,
        "epochs": 4,
        "batch_size": 32,
        "lr": 1e-2,
        "train_positions": None,
        "metric_samples": 400,
        "test_fraction": 0.1,
        "device": "cpu",
    }
    base.update(changes)
    return LMConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cycle_data() -> LMData:
    return prepare_lm_data(CYCLE_TEXT, 51, test_fraction=0.1, name="cycle")


# --------------------------------------------------------------------------------------------
# Tokens and vocabulary
# --------------------------------------------------------------------------------------------


def test_tokenize_words_punctuation_no_digits() -> None:
    text = "  12 And GOD said, Let there be light: and there was light.\n13 Don't (fear)!"
    assert tokenize(text) == [
        "and", "god", "said", ",", "let", "there", "be", "light", ":", "and", "there", "was",
        "light", ".", "don't", "(", "fear", ")", "!",
    ]  # fmt: skip
    with pytest.raises(TypeError, match="`text`"):
        tokenize(b"bytes")  # type: ignore[arg-type]


def test_vocabulary_by_hand() -> None:
    tokens = tokenize("the cat and the dog and the bird . a cat !")
    # Counts by hand: the 3, cat 2, and 2, dog 1, bird 1, . 1, a 1, ! 1 (first seen: cat < and).
    vocab = build_vocabulary(tokens, 4)
    assert vocab.words == (UNK, "the", "cat", "and")
    assert vocab.counts == (12 - 7, 3, 2, 2)
    assert vocab.num_classes == 4
    assert vocab.encode(["dog", "the", "and", "zebra"]).tolist() == [0, 1, 3, 0]
    assert vocab.decode([2, 0]) == ["cat", UNK]


def test_vocabulary_matches_counter_oracle() -> None:
    rng = np.random.default_rng(3)
    words = [f"w{c}" for c in string.ascii_lowercase]
    tokens = [words[i] for i in rng.zipf(1.5, size=3000) % len(words)]
    K = 12
    vocab = build_vocabulary(tokens, K)
    counts = Counter(tokens)
    first = {}
    for i, t in enumerate(tokens):
        first.setdefault(t, i)
    expected = sorted(counts, key=lambda w: (-counts[w], first[w]))[: K - 1]
    assert list(vocab.words[1:]) == expected
    assert list(vocab.counts[1:]) == [counts[w] for w in expected]
    assert vocab.counts[0] == len(tokens) - sum(counts[w] for w in expected)
    ids = vocab.encode(tokens)
    assert ids.dtype == np.int64
    assert ids.tolist() == [expected.index(t) + 1 if t in expected else 0 for t in tokens]
    assert sum(vocab.counts) == len(tokens)


def test_vocabulary_errors() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_vocabulary(["a", "b"], 1)
    with pytest.raises(ValueError, match=r"`num_classes` <= 3"):
        build_vocabulary(["a", "b", "a"], 4)


def test_prepare_splits_the_end_and_builds_vocab_on_train_only() -> None:
    text = "a b a b a c a b zz zz"  # 10 tokens; the last 2 ("zz zz") are test
    data = prepare_lm_data(text, 3, test_fraction=0.2)
    assert data.vocabulary.words == (UNK, "a", "b")
    assert data.train_ids.tolist() == [1, 2, 1, 2, 1, 0, 1, 2]
    assert data.test_ids.tolist() == [0, 0]  # "zz" never seen in training
    with pytest.raises(ValueError, match="test_fraction"):
        prepare_lm_data(text, 3, test_fraction=1.0)


# --------------------------------------------------------------------------------------------
# Windows and positions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [1, 3, 7])
def test_context_windows_match_slicing(context: int) -> None:
    ids = torch.randint(0, 50, (40,))
    x, y = context_windows(ids, context)
    assert x.shape == (40 - context, context)
    for j, p in enumerate(range(context, 40)):
        assert x[j].tolist() == ids[p - context : p].tolist()
        assert int(y[j]) == int(ids[p])
    pos = torch.tensor([39, context, 20])
    x2, y2 = context_windows(ids, context, pos)
    for j, p in enumerate(pos.tolist()):
        assert x2[j].tolist() == ids[p - context : p].tolist() and int(y2[j]) == int(ids[p])
    with pytest.raises(ValueError, match="N > context"):
        context_windows(ids[:context], context)


def test_sample_positions() -> None:
    gen = torch.Generator().manual_seed(1)
    pos = sample_positions(100, 5, 30, generator=gen)
    assert pos.numel() == 30 and len(set(pos.tolist())) == 30
    assert pos.tolist() == sorted(pos.tolist()) and int(pos.min()) >= 5 and int(pos.max()) < 100
    assert sample_positions(100, 5, 1000, generator=gen).tolist() == list(range(5, 100))


# --------------------------------------------------------------------------------------------
# Metrics on a subsample
# --------------------------------------------------------------------------------------------


def test_subsample_metrics_against_independent_reference() -> None:
    torch.manual_seed(0)
    K, d = 12, 3
    W = torch.randn(K, d, dtype=torch.float64)
    present = [1, 4, 5, 9, 11]  # classes 0, 2, 3, 6, 7, 8, 10 never occur
    y = torch.tensor(present * 6)
    H = W[y] + 0.4 * torch.randn(y.numel(), d, dtype=torch.float64)
    predictions = torch.randint(0, K, (y.numel(),))
    y_test = torch.tensor([1, 4, 0, 9, 2, 11, 5, 5])
    H_test = W[y_test] + 0.4 * torch.randn(y_test.numel(), d, dtype=torch.float64)
    m, D = subsample_gnc_metrics(
        H, y, W, predictions=predictions, test_features=H_test, test_targets=y_test
    )
    local = np.searchsorted(np.array(present), y.numpy())
    ref = reference_metrics(H.numpy(), local, len(present), W[present].numpy())
    assert m.metric_classes == 5 and m.metric_samples == 30
    assert m.gnc1 == pytest.approx(ref["gnc1"], rel=1e-9)
    assert m.gnc3 == pytest.approx(ref["gnc3"], rel=1e-9)
    Hn, mu_all = normalize(H.numpy()), class_means(normalize(H.numpy()), local, len(present))
    within = np.mean(np.sum((Hn - mu_all[local]) ** 2, axis=1))
    between = np.mean(np.sum((mu_all - Hn.mean(axis=0)) ** 2, axis=1))
    assert m.nc1_trace_ratio == pytest.approx(within / between, rel=1e-9)
    # GNC2 over all K rows; D_k against SciPy per class.
    D_ref = np.array([scipy_one_vs_rest_distance(normalize(W.numpy()), k) for k in range(K)])
    np.testing.assert_allclose(D.numpy(), D_ref, atol=1e-7)
    assert m.gnc2 == pytest.approx(D_ref.min(), abs=1e-7)
    assert m.gnc2_argmin == int(D_ref.argmin())
    assert m.gnc2_median_distance == pytest.approx(float(torch.tensor(D_ref).median()), abs=1e-7)
    assert m.gnc2_present == pytest.approx(gnc2_exact(W[present]), abs=1e-9)
    # NCC against the NumPy reference (means of normalized features, Euclidean nearest).
    Hn = normalize(H.numpy())
    mu = class_means(Hn, local, len(present))
    pred = np.argmin(np.linalg.norm(Hn[:, None] - mu[None], axis=2), axis=1)
    assert m.ncc_train_accuracy == pytest.approx(np.mean(pred == local))
    assert m.nc4_agreement == pytest.approx(np.mean(np.array(present)[pred] == predictions.numpy()))
    keep = np.isin(y_test.numpy(), present)
    assert m.ncc_test_coverage == pytest.approx(keep.mean())
    Ht = normalize(H_test.numpy()[keep])
    tpred = np.argmin(np.linalg.norm(Ht[:, None] - mu[None], axis=2), axis=1)
    tloc = np.searchsorted(np.array(present), y_test.numpy()[keep])
    assert m.ncc_test_accuracy == pytest.approx(np.mean(tpred == tloc))


def test_subsample_metrics_validation() -> None:
    W = torch.randn(4, 2)
    with pytest.raises(ValueError, match="at least 2 distinct targets"):
        subsample_gnc_metrics(torch.randn(5, 2), torch.full((5,), 2), W)
    with pytest.raises(ValueError, match="`features`"):
        subsample_gnc_metrics(torch.randn(5, 3), torch.arange(5) % 4, W)
    with pytest.raises(ValueError, match=r"`targets` in \[0, 4\)"):
        subsample_gnc_metrics(torch.randn(5, 2), torch.arange(5), W)
    with pytest.raises(ValueError, match="both"):
        subsample_gnc_metrics(torch.randn(5, 2), torch.arange(5) % 4, W, test_features=W)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["linear", "normalized"])
def test_learns_a_deterministic_cycle(cycle_data: LMData, head: str) -> None:
    res = train_lm(_small_config(head=head, tau=0.1), cycle_data, progress=False)
    first, last = res.history[1], res.final
    assert [h.epoch for h in res.history] == [0, 1, 2, 3, 4]
    assert res.history[0].train_loss is None
    assert last.train_loss < 0.5 * first.train_loss
    assert last.test_loss < first.test_loss
    assert last.test_accuracy > 0.95 and last.train_accuracy > 0.95
    assert last.test_perplexity < 2.0  # uniform guessing: 51
    assert last.metric_classes == 50  # <unk> never occurs in the cycle
    # One context per class: features collapse to the head rows (GNC3 falls tenfold) and the
    # rows spread out (GNC2 of the 50 trained rows rises from the random start).
    assert last.gnc3 < 0.1 * res.history[0].gnc3
    assert last.gnc2_present > res.history[0].gnc2_present
    assert res.unk_rate_train == 0.0


def test_metrics_agree_with_recomputation_from_captured_features(cycle_data: LMData) -> None:
    # metric_samples above the number of positions: the subsample is every training position.
    config = _small_config(epochs=2, metric_samples=10_000)
    res = train_lm(config, cycle_data, progress=False)
    model = res.model.eval()
    ids = torch.from_numpy(cycle_data.train_ids)
    c = config.context
    contexts = torch.stack([ids[p - c : p] for p in range(c, ids.numel())])
    targets = ids[c:]
    captured: list[torch.Tensor] = []
    handle = model.backbone.register_forward_hook(lambda mod, inp, out: captured.append(out))
    with torch.no_grad():
        logits = model(contexts)[1]
    handle.remove()
    H = captured[0].double()
    present = np.unique(targets.numpy())
    local = np.searchsorted(present, targets.numpy())
    W = model.head.classifier_weights().double()
    ref = reference_metrics(H.numpy(), local, len(present), W[present].numpy())
    last = res.final
    assert last.metric_samples == targets.numel()
    assert last.gnc1 == pytest.approx(ref["gnc1"], rel=1e-5)
    assert last.gnc3 == pytest.approx(ref["gnc3"], rel=1e-5, abs=1e-9)
    assert last.gnc2 == pytest.approx(gnc2_exact(W), abs=1e-9)
    assert last.train_accuracy == pytest.approx(
        float((logits.argmax(1) == targets).double().mean())
    )
    loss = torch.nn.functional.cross_entropy(logits.double(), targets)
    assert last.train_eval_loss == pytest.approx(float(loss), rel=1e-5)
    # Epoch 0 is the untrained model: the same seed rebuilds its head.
    torch.manual_seed(config.seed)
    initial = build_lm_model(config).head.classifier_weights().double()
    assert res.history[0].gnc2 == pytest.approx(gnc2_exact(initial), abs=1e-9)


def test_same_seed_same_history(cycle_data: LMData) -> None:
    config = _small_config(epochs=2, train_positions=600)

    def strip(res: object) -> list[dict[str, object]]:
        hist = res.history  # type: ignore[attr-defined]
        return [{k: v for k, v in h.to_dict().items() if k not in TIMING_KEYS} for h in hist]

    a = train_lm(config, cycle_data, progress=False)
    b = train_lm(config, cycle_data, progress=False)
    other = train_lm(
        _small_config(epochs=2, train_positions=600, seed=1), cycle_data, progress=False
    )
    assert strip(a) == strip(b)
    assert strip(a) != strip(other)


def test_outputs_written(tmp_path: Path, cycle_data: LMData) -> None:
    res = train_lm(_small_config(epochs=2), cycle_data, out_dir=tmp_path, progress=False)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[-1]["gnc2"] == pytest.approx(res.final.gnc2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["epoch"] == 2
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["num_classes"] == 51 and results["label"] == "normalized-tau0.1"
    assert json.loads((tmp_path / "config.json").read_text())["tau"] == 0.1
    with np.load(tmp_path / "head.npz") as z:
        assert z["distances"].shape == (51,) and z["weights"].shape == (51, 4)
    assert not (tmp_path / "plots").exists()  # plots are drawn by the CLI (gnc lm)
    assert not list(tmp_path.rglob("*.tmp"))


def test_config_and_data_validation(cycle_data: LMData) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        LMConfig(num_classes=1)
    with pytest.raises(ValueError, match="tau"):
        LMConfig(tau=0.0)
    with pytest.raises(ValueError, match="head"):
        LMConfig(head="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="52 classes"):
        train_lm(_small_config(num_classes=52), cycle_data, progress=False)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("lm",))
    return gnc.cli.main


def test_cli_end_to_end(tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "cycle.txt"
    text.write_text(CYCLE_TEXT)
    out = tmp_path / "runs"
    args = ["lm", "--text-file", str(text), "--classes", "51", "--context", "2", "--dim", "4",
            "--embedding-dim", "8", "--hidden-dim", "32", "--epochs", "2", "--batch-size", "32",
            "--lr", "0.01", "--train-positions", "0", "--metric-samples", "300",
            "--head", "linear", "--head", "normalized:1/8", "--no-progress",
            "--device", "cpu"]  # fmt: skip
    assert cli([a for a in args if a != "--no-progress"] + ["--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # progress lines go to stderr only
    assert "epoch 2:" in captured.err
    assert [r["label"] for r in summary["runs"]] == ["linear", "normalized-tau0.125"]
    assert summary["runs"][1]["config"]["tau"] == 0.125
    assert len(summary["runs"][0]["history"]) == 3
    assert (out / "summary.json").is_file() and (out / "plots" / "compare.png").is_file()
    assert (out / "linear" / "history.json").is_file()
    for name in ("gnc1", "gnc2", "gnc3", "accuracy", "loss", "perplexity"):
        assert (out / "normalized-tau0.125" / "plots" / f"{name}.png").stat().st_size > 1000
    # The table form prints one row per head.
    assert cli([*args, "--epochs", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert sum(line.strip().startswith(("linear", "normalized")) for line in table) == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--classes", "1"], "--classes"),
        (["--head", "normalized:0"], "--head"),
        (["--head", "normalized:-1"], "--head"),
        (["--head", "cosine"], "--head"),
        (["--corpus", "shakespeare"], "--corpus"),
        (["--text-file", "/nonexistent/file.txt"], "--text-file"),
        (["--dim", "0"], "--dim"),
        (["--head", "linear", "--head", "linear"], "distinct"),
    ],
)
def test_cli_bad_input_is_one_line(cli, capsys: pytest.CaptureFixture[str], extra, needle) -> None:  # type: ignore[no-untyped-def]
    assert cli(["lm", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnc lm: error:") and needle in err[0]


@pytest.mark.slow
def test_kjv_one_short_epoch() -> None:
    from gnc.data import load_text

    try:
        text = load_text("kjv", max_chars=1_000_000)
    except ValueError as err:  # the Debian packages are not installed here
        pytest.skip(str(err))
    data = prepare_lm_data(text, 2048, name="kjv")
    assert data.num_classes == 2048 and 0.0 < float((data.train_ids == 0).mean()) < 0.2
    config = LMConfig(epochs=1, train_positions=50_000, metric_samples=5000, device="cpu")
    res = train_lm(config, data, progress=False)
    start, end = res.history
    assert end.test_perplexity < 0.2 * start.test_perplexity
    assert end.metric_classes > 500 and end.gnc2_certified


def test_train_on_device(cycle_data: LMData, device: torch.device) -> None:
    # Runs on CUDA too (the `device` fixture): data, model and metrics stay on one device.
    res = train_lm(_small_config(epochs=1, device=str(device)), cycle_data, progress=False)
    assert next(res.model.parameters()).device.type == device.type
    assert res.final.test_accuracy > res.history[0].test_accuracy
    assert res.final.gnc2_certified and res.final.metric_classes == 50
