"""Streaming metrics against the independent dense NumPy reference, closed forms, invariances."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from gnc.metrics import (
    GNCAccumulator,
    NCCAccumulator,
    NCCMetrics,
    class_statistics,
    gnc1_from_features,
    gnc3_from_features,
    gnc_metrics,
    hyperspherical_uniformity,
    nc1_cdnv,
    nc4_agreement,
    ncc_accuracy,
)
from helpers.metrics_reference import (
    reference_metrics,
    reference_ncc_predictions,
    reference_within_scatter,
    simplex_etf,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # On the shared, oversubscribed CI box multi-threaded MKL eigh can take seconds instead of
    # milliseconds (spin-waiting threads); these small problems need one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


REF_KEYS = (
    "gnc1",
    "nc1_cdnv",
    "nc2_etf_error",
    "nc2_equinorm",
    "hyperspherical_uniformity",
    "gnc3",
    "nc3_self_duality",
    "nc2_etf_error_weights",
    "nc2_equinorm_weights",
)


def make_data(
    K: int, d: int, counts: list[int], *, spread: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((K, d))
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    rng.shuffle(y)
    H = centers[y] + spread * rng.standard_normal((len(y), d))
    W = centers + 0.2 * rng.standard_normal((K, d))
    return H, y, W


def stream(
    H: torch.Tensor, y: torch.Tensor, K: int, sizes: list[int], **kw: object
) -> GNCAccumulator:
    acc = GNCAccumulator(K, H.shape[1], **kw)  # type: ignore[arg-type]
    start = 0
    for s in sizes:
        acc.update(H[start : start + s], y[start : start + s])
        start += s
    acc.update(H[start:], y[start:])
    return acc


@pytest.mark.parametrize(
    ("K", "d", "counts"),
    [
        (6, 4, [3, 40, 7, 20, 2, 11]),  # K > d: GNC regime, Sigma_B full rank
        (4, 7, [5, 60, 9, 2]),  # K <= d: Sigma_B rank K - 1 (pinv cutoff matters)
        (5, 257, [7, 12, 3, 9, 20]),  # d >= 256: blocked upper-triangular Gram (2 blocks)
        (6, 389, [4, 9, 3, 8, 5, 6]),  # 3 uneven column blocks
    ],
)
def test_streaming_matches_dense_reference(
    K: int, d: int, counts: list[int], dtype: torch.dtype, device: torch.device
) -> None:
    H, y, W = make_data(K, d, counts)
    Ht = torch.as_tensor(H, dtype=dtype, device=device)
    H_ref = Ht.double().cpu().numpy()  # the same rounded inputs the accumulator sees
    yt = torch.as_tensor(y, device=device)
    acc = stream(Ht, yt, K, [1, 17, 5, 30])
    metrics = acc.compute(torch.as_tensor(W, device=device), class_means_rho=False)
    ref = reference_metrics(H_ref, y, K, W)
    for key in REF_KEYS:
        assert getattr(metrics, key) == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key
    stats = acc.statistics()
    assert stats.counts.dtype == torch.float64
    assert stats.within_scatter.device.type == device.type
    np.testing.assert_allclose(
        stats.within_scatter.cpu().numpy(),
        reference_within_scatter(H_ref, y, K),
        rtol=1e-10,
        atol=1e-12,
    )
    # The dense two-pass path and the convenience functions agree with the reference too.
    assert gnc1_from_features(Ht, yt, K) == pytest.approx(ref["gnc1"], rel=1e-10)
    assert gnc3_from_features(Ht, yt, W) == pytest.approx(ref["gnc3"], rel=1e-10)
    dense = gnc_metrics(class_statistics(Ht, yt, K), W, class_means_rho=False)
    assert dense.gnc1 == pytest.approx(metrics.gnc1, rel=1e-10)


def test_raw_features_match_reference() -> None:
    H, y, W = make_data(5, 3, [4, 9, 3, 12, 6])
    acc = stream(torch.as_tensor(H), torch.as_tensor(y), 5, [7, 7], normalize=False)
    metrics = acc.compute(W, class_means_rho=False)
    ref = reference_metrics(H, y, 5, W, normalize_features=False)
    for key in REF_KEYS:
        assert getattr(metrics, key) == pytest.approx(ref[key], rel=1e-10), key


def test_ncc_and_nc4_match_reference() -> None:
    K, d = 7, 5
    H, y, W = make_data(K, d, [10, 3, 25, 8, 14, 5, 9], spread=0.9)
    Ht, yt = torch.as_tensor(H), torch.as_tensor(y)
    stats = stream(Ht, yt, K, [13, 20]).statistics()
    means = stats.means.numpy()
    pred = reference_ncc_predictions(H, means)
    logits = Ht @ torch.as_tensor(W).T
    agree_ref = np.mean(np.argmax(logits.numpy(), axis=1) == pred)
    ncc = NCCAccumulator(stats.means, max_memory_mib=1e-4)  # one row per tile
    for part in torch.arange(len(y)).split(11):
        ncc.update(Ht[part], yt[part], logits[part])
    out = ncc.compute()
    assert out.ncc_accuracy == pytest.approx(np.mean(pred == y), abs=1e-15)
    assert 0.3 < out.ncc_accuracy < 1.0  # the test is not trivial
    assert out.nc4_agreement == pytest.approx(agree_ref, abs=1e-15)
    assert ncc_accuracy(Ht, yt, stats.means) == out.ncc_accuracy
    assert nc4_agreement(Ht, logits, stats.means) == out.nc4_agreement


def test_tiled_equals_untiled() -> None:
    H, y, _ = make_data(13, 4, [5] * 13)
    stats = class_statistics(torch.as_tensor(H), torch.as_tensor(y), 13)
    tiny, big = 1e-5, 1024.0  # one row per tile vs one tile
    assert nc1_cdnv(stats, max_memory_mib=tiny) == pytest.approx(
        nc1_cdnv(stats, max_memory_mib=big), rel=1e-13
    )
    M = stats.centred_means
    assert hyperspherical_uniformity(M, max_memory_mib=tiny) == pytest.approx(
        hyperspherical_uniformity(M, max_memory_mib=big), rel=1e-13
    )


@pytest.mark.parametrize(("K", "d"), [(3, 2), (5, 4), (6, 9)])
def test_simplex_etf_closed_form(K: int, d: int, device: torch.device) -> None:
    E = simplex_etf(K)  # (K, K) unit rows in the (K-1)-dim span orthogonal to 1
    U = np.linalg.svd(E)[2][: K - 1].T  # (K, K-1) orthonormal basis of that span
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((d, K - 1)))[0].T  # (K-1, d)
    V = E @ U @ Q  # (K, d) unit rows, Gram -1/(K-1), randomly embedded
    np.testing.assert_allclose(V @ V.T, E @ E.T, atol=1e-12)
    reps = 4
    H = np.repeat(V, reps, axis=0) * 3.0  # scaled: normalization brings them back
    y = np.repeat(np.arange(K), reps)
    W = torch.as_tensor(V, device=device)
    acc = stream(torch.as_tensor(H, device=device), torch.as_tensor(y, device=device), K, [5])
    m = acc.compute(W)
    assert m.gnc1 == pytest.approx(0.0, abs=1e-20)
    assert m.gnc3 == pytest.approx(0.0, abs=1e-12)
    assert m.gnc2 == pytest.approx(K / (K - 1), abs=1e-7)
    assert m.gnc2_class_means == pytest.approx(K / (K - 1), abs=1e-7)
    assert m.nc2_etf_error == pytest.approx(0.0, abs=1e-7)
    assert m.nc2_equinorm == pytest.approx(0.0, abs=1e-12)
    assert m.nc3_self_duality == pytest.approx(0.0, abs=1e-12)
    ncc = NCCAccumulator(acc.statistics().means)
    ncc.update(H, y, torch.as_tensor(H, device=device) @ W.T)
    assert ncc.compute() == NCCMetrics(ncc_accuracy=1.0, nc4_agreement=1.0, num_samples=K * reps)


def test_rotation_invariance() -> None:
    K, d = 9, 5
    H, y, W = make_data(K, d, [4, 8, 15, 3, 6, 9, 12, 5, 7])
    Q = np.linalg.qr(np.random.default_rng(3).standard_normal((d, d)))[0]
    yt = torch.as_tensor(y)
    a = stream(torch.as_tensor(H), yt, K, [10]).compute(W)
    b = stream(torch.as_tensor(H @ Q), yt, K, [31]).compute(W @ Q)
    for key, value in a.to_dict().items():
        other = getattr(b, key)
        if isinstance(value, float):
            tol = 1e-7 if key.startswith("gnc2") else 1e-10  # geometry solver tolerance
            assert other == pytest.approx(value, rel=tol, abs=tol), key
        else:
            assert other == value, key


def test_float32_input_accumulates_in_float64() -> None:
    # Many nearly identical float32 features: float32 accumulation would lose the tiny spread.
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 3))
    H = np.repeat(base, 5000, axis=0) + 1e-4 * rng.standard_normal((10000, 3))
    H32 = H.astype(np.float32)
    y = np.repeat([0, 1], 5000)
    acc = stream(torch.as_tensor(H32), torch.as_tensor(y), 2, [1000] * 9)
    ref = reference_metrics(H32.astype(np.float64), y, 2)
    assert acc.compute(class_means_rho=False).gnc1 == pytest.approx(ref["gnc1"], rel=1e-9)


def test_gnc2_relative_to_bounds_on_simplex_etf() -> None:
    bounds = pytest.importorskip("gnc.geometry.bounds")
    K, d = 4, 3
    V = simplex_etf(K)
    U = np.linalg.svd(V)[2][: K - 1].T
    W = torch.as_tensor(V @ U)  # (4, 3) regular tetrahedron
    acc = stream(W, torch.arange(K), K, [])
    m = acc.compute(W, class_means_rho=False)
    assert m.rho_star_proven == pytest.approx(K / (K - 1), abs=1e-12)
    assert m.gnc2_relative_to_rho_star_proven == pytest.approx(1.0, abs=1e-7)
    upper = bounds.rho_star_upper(K, d)
    assert m.rho_star_upper == pytest.approx(upper)
    assert m.gnc2_relative_to_rho_star_upper == pytest.approx(m.gnc2 / upper)
    assert m.gnc2_relative_to_rho_star_upper <= 1.0 + 1e-7
