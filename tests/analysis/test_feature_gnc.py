from __future__ import annotations

import numpy as np
import pytest
import torch

from gnc.analysis.feature_gnc import (
    _derangement,
    measure_head_features,
    predict_classes,
)
from gnc.metrics import gnc1, subset_statistics
from helpers.metrics_reference import normalize, reference_metrics
from helpers.qp_reference import scipy_one_vs_rest_distance


def make_data(seed: int = 0, K: int = 40, d: int = 6, N: int = 900):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((K, d))
    # Zipf-like class frequencies: many classes are predicted rarely, as for a vocabulary.
    p = 1.0 / np.arange(1, K + 1)
    y = rng.choice(K, size=N, p=p / p.sum())
    H = normalize(W)[y] * 2.0 + 0.6 * rng.standard_normal((N, d))
    return H, W, y


def min_distance_reference(V: np.ndarray) -> float:
    return min(scipy_one_vs_rest_distance(V, k) for k in range(V.shape[0]))


def reference(H, W, pred, min_samples):
    counts = np.bincount(pred, minlength=W.shape[0])
    classes = [k for k in np.argsort(-counts, kind="stable") if counts[k] >= min_samples]
    remap = {k: i for i, k in enumerate(classes)}
    keep = np.array([p in remap for p in pred])
    y = np.array([remap[p] for p in pred[keep]])
    Hk = H[keep]
    Ws = W[classes]
    ref = reference_metrics(Hk, y, len(classes), Ws)
    Hn = normalize(Hk)
    means = np.stack([Hn[y == i].mean(axis=0) for i in range(len(classes))])
    near = np.argmin(((Hn[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    ref["ncc"] = float(np.mean(near == y))
    ref["classes"] = classes
    ref["means_centred"] = means - Hn.mean(axis=0)
    return ref


@pytest.mark.parametrize("min_samples", [5, 20])
def test_matches_dense_numpy_reference(min_samples: int) -> None:
    H, W, _ = make_data()
    pred = np.asarray(predict_classes(torch.from_numpy(H), torch.from_numpy(W)))
    r = measure_head_features(H, W, min_samples=min_samples, chunk_size=97)
    ref = reference(H, W, pred, min_samples)
    assert r.classes.tolist() == [int(k) for k in ref["classes"]]
    assert r.num_classes == len(ref["classes"]) and r.num_samples == H.shape[0]
    assert r.gnc1 == pytest.approx(ref["gnc1"], rel=1e-10)
    assert r.gnc3 == pytest.approx(ref["gnc3"], rel=1e-10)
    assert r.ncc_agreement == pytest.approx(ref["ncc"], abs=1e-12)
    assert r.counts.sum().item() == r.num_samples_measured
    # exact GNC2 of the measured rows and centred means against an independent QP solve
    rows = normalize(W[ref["classes"]])
    assert r.gnc2_rows == pytest.approx(min_distance_reference(rows), abs=1e-6)
    assert r.gnc2_class_means == pytest.approx(
        min_distance_reference(normalize(ref["means_centred"])), abs=1e-6
    )
    assert r.certified


def test_predict_classes_with_bias_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    H, W, b = rng.standard_normal((50, 4)), rng.standard_normal((9, 4)), rng.standard_normal(9)
    got = predict_classes(H, W, b, chunk_size=7)
    np.testing.assert_array_equal(got.numpy(), np.argmax(H @ W.T + b, axis=1))


def test_collapsed_features_give_zero_gnc1_and_gnc3() -> None:
    W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    H = W.repeat(5, 1) * 3.0
    r = measure_head_features(H, W, min_samples=5, labels=torch.arange(4).repeat(5))
    assert r.gnc1 == pytest.approx(0.0, abs=1e-20)
    # the centred means are the simplex directions of these rows only up to the global mean
    assert r.ncc_agreement == 1.0 and r.label_accuracy == 1.0
    assert r.gnc3_shuffled > r.gnc3


def test_max_classes_keeps_the_most_predicted_and_decodes() -> None:
    H, W, _ = make_data(seed=2)
    full = measure_head_features(H, W, min_samples=3)
    top = measure_head_features(H, W, min_samples=3, max_classes=5, decode=lambda k: f"c{k}")
    assert top.classes.tolist() == full.classes[:5].tolist()
    assert [row.label for row in top.top] == [f"c{k}" for k in top.classes.tolist()]
    assert all(a.count >= b.count for a, b in zip(top.top, top.top[1:], strict=False))
    summary = top.to_dict()
    assert summary["num_classes_measured"] == 5 and summary["top"][0]["label"].startswith("c")


def test_label_accuracy_is_agreement_with_true_labels() -> None:
    H, W, y = make_data(seed=3)
    pred = predict_classes(H, W)
    r = measure_head_features(H, W, labels=y, min_samples=5)
    assert r.label_accuracy == pytest.approx(float(np.mean(pred.numpy() == y)))
    unknown = y.copy()
    unknown[::3] = -1  # no true label: left out of the accuracy
    r2 = measure_head_features(H, W, labels=unknown, min_samples=5)
    known = unknown >= 0
    assert r2.label_accuracy == pytest.approx(float(np.mean(pred.numpy()[known] == y[known])))
    assert r2.gnc1 == r.gnc1  # labels never change the grouping (by predicted class)


@pytest.mark.parametrize("m", [2, 3, 10, 57])
def test_derangement_has_no_fixed_points(m: int) -> None:
    for seed in range(20):
        p = _derangement(m, torch.Generator().manual_seed(seed))
        assert sorted(p.tolist()) == list(range(m))
        assert bool((p != torch.arange(m)).all())


def test_errors() -> None:
    H, W, y = make_data()
    with pytest.raises(ValueError, match="at least 2 classes"):
        measure_head_features(H, W, min_samples=10_000)
    bad = H.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        measure_head_features(bad, W)
    with pytest.raises(ValueError, match=r"`weights` of shape \(\*, 3\)"):
        measure_head_features(H[:, :3], W)
    with pytest.raises(ValueError, match="predicted"):
        measure_head_features(H, W, predicted=np.full(H.shape[0], W.shape[0]))
    with pytest.raises(ValueError, match="labels"):
        measure_head_features(H, W, labels=y[:-1])
    with pytest.raises(ValueError, match="min_samples"):
        measure_head_features(H, W, min_samples=0)


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_subset_statistics_match_numpy_on_the_kept_samples(chunk: int) -> None:
    H, _, y = make_data(seed=3)
    classes = torch.tensor([5, 0, 17, 2])  # any order: class i of the statistics is classes[i]
    stats, local = subset_statistics(
        torch.from_numpy(H), torch.from_numpy(y), classes, chunk_size=chunk
    )
    keep = np.isin(y, classes.numpy())
    expected = np.full(y.shape, -1)
    for i, k in enumerate(classes.tolist()):
        expected[y == k] = i
    assert local.tolist() == expected.tolist()
    assert stats.counts.tolist() == [float((y == k).sum()) for k in classes.tolist()]
    ref = reference_metrics(H[keep], expected[keep], 4)
    assert gnc1(stats) == pytest.approx(ref["gnc1"], rel=1e-10)
    Hn = normalize(H)
    means = np.stack([Hn[y == k].mean(axis=0) for k in classes.tolist()])
    np.testing.assert_allclose(stats.means.numpy(), means, rtol=0, atol=1e-12)


def test_records_serialize_to_plain_json() -> None:
    import json
    import math

    H, W, _ = make_data()
    d = measure_head_features(H, W, min_samples=5).to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["certified"] is True and back["label_accuracy"] is None
    assert back["num_classes_measured"] >= 2 and math.isfinite(back["gnc1"])
    assert set(back["top"][0]) == {"index", "label", "count", "cosine"}
