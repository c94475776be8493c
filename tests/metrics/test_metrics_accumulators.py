"""Accumulator contract: merge == single pass, checkpoints, reset, validation at the boundary."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnc.metrics import (
    ClassStatistics,
    GNCAccumulator,
    NCCAccumulator,
    gnc1,
    gnc3,
    nc1_cdnv,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # On the shared, oversubscribed CI box multi-threaded MKL eigh can take seconds instead of
    # milliseconds (spin-waiting threads); these small problems need one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


K, D = 5, 3


def data(n: int = 60, seed: int = 0, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    y[:K] = torch.arange(K)  # every class present
    centers = torch.randn(K, D, generator=g, dtype=torch.float64)
    H = offset + centers[y] + 0.2 * torch.randn(n, D, generator=g, dtype=torch.float64)
    return H, y


def assert_stats_close(a: ClassStatistics, b: ClassStatistics, tol: float = 1e-12) -> None:
    for name in (
        "counts",
        "sums",
        "means",
        "global_mean",
        "within_scatter",
        "class_scatter_traces",
    ):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=tol, atol=tol)
    assert a.num_samples == b.num_samples


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=5),
    groups=st.integers(min_value=2, max_value=4),
    seed=st.integers(min_value=0, max_value=3),
)
def test_split_then_merge_equals_single_pass(cuts: list[int], groups: int, seed: int) -> None:
    H, y = data(seed=seed)
    single = GNCAccumulator(K, D)
    single.update(H, y)
    bounds = sorted({0, 60, *cuts})
    parts = [GNCAccumulator(K, D) for _ in range(groups)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        parts[i % groups].update(H[a:b], y[a:b])  # some parts may see few or no classes
    merged = GNCAccumulator(K, D)
    for p in parts:
        merged.merge(p)
    assert_stats_close(merged.statistics(), single.statistics())
    assert merged.compute(class_means_rho=False).gnc1 == pytest.approx(
        single.compute(class_means_rho=False).gnc1, rel=1e-11
    )


def test_merge_with_far_shift_is_exact() -> None:
    # Different shifts per accumulator (data far from the origin, raw features): the re-shift
    # algebra must not lose the small within-class scatter.
    H, y = data(200, offset=1e4)
    a, b, single = (GNCAccumulator(K, D, normalize=False) for _ in range(3))
    single.update(H, y)
    a.update(H[:50], y[:50])
    b.update(H[50:], y[50:])
    merged = a.merge(b).statistics()
    ref = single.statistics()
    torch.testing.assert_close(merged.within_scatter, ref.within_scatter, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        merged.class_scatter_traces, ref.class_scatter_traces, rtol=1e-9, atol=1e-9
    )


def test_state_dict_roundtrip_and_reset() -> None:
    H, y = data()
    acc = GNCAccumulator(K, D)
    acc.update(H[:30], y[:30])
    saved = acc.state_dict()
    restored = GNCAccumulator(K, D)
    restored.load_state_dict(saved)
    acc.update(H[30:], y[30:])
    restored.update(H[30:], y[30:])
    assert_stats_close(acc.statistics(), restored.statistics(), tol=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        GNCAccumulator(K + 1, D).load_state_dict(saved)
    acc.reset()
    with pytest.raises(ValueError, match="valid sample"):
        acc.statistics()
    acc.update(H, y)
    fresh = GNCAccumulator(K, D)
    fresh.update(H, y)
    assert_stats_close(acc.statistics(), fresh.statistics(), tol=0.0)


def test_state_lives_on_first_batch_device_in_float64(device: torch.device) -> None:
    H, y = data()
    acc = GNCAccumulator(K, D)
    acc.update(H.to(device, torch.float16), y.to(device))
    stats = acc.statistics()
    assert stats.within_scatter.dtype == torch.float64
    assert stats.within_scatter.device.type == device.type


@pytest.mark.parametrize(
    ("features", "labels", "error", "match"),
    [
        (torch.ones(4, D + 1), torch.zeros(4, dtype=torch.long), ValueError, r"shape \(N, 3\)"),
        (torch.ones(4, D), torch.zeros(3, dtype=torch.long), ValueError, r"shape \(4,\)"),
        (torch.ones(4, D), torch.zeros(4), TypeError, "integers"),
        (
            torch.ones(4, D, dtype=torch.complex64),
            torch.zeros(4, dtype=torch.long),
            TypeError,
            "real",
        ),
        ([[1.0, 2.0, 3.0]], torch.zeros(1, dtype=torch.long), TypeError, "Tensor or numpy"),
    ],
)
def test_eager_shape_and_dtype_errors(
    features: object, labels: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        GNCAccumulator(K, D).update(features, labels)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("nan", "1 feature rows with NaN/Inf"),
        ("inf", "1 feature rows with NaN/Inf"),
        ("zero", "zero-norm"),
        ("label_high", r"1 labels outside \[0, 5\)"),
        ("label_negative", r"1 labels outside \[0, 5\)"),
    ],
)
def test_deferred_value_errors_raise_at_compute(bad: str, match: str) -> None:
    H, y = data()
    acc = GNCAccumulator(K, D)
    acc.update(H[:20], y[:20])
    H2, y2 = H[20:].clone(), y[20:].clone()
    if bad == "nan":
        H2[3, 1] = float("nan")
    elif bad == "inf":
        H2[3, 1] = float("inf")
    elif bad == "zero":
        H2[3] = 0.0
    elif bad == "label_high":
        y2[3] = K
    else:
        y2[3] = -1
    acc.update(H2, y2)  # no host sync: nothing raised yet
    with pytest.raises(ValueError, match=match) as info:
        acc.compute()
    assert "update #1" in str(info.value)
    ncc = NCCAccumulator(torch.randn(K, D, dtype=torch.float64))
    ncc.update(H2, y2)
    with pytest.raises(ValueError, match=match):
        ncc.compute()


def test_zero_rows_allowed_without_normalization() -> None:
    H, y = data()
    H[7] = 0.0
    acc = GNCAccumulator(K, D, normalize=False)
    acc.update(H, y)
    assert acc.statistics().num_samples == 60


def test_empty_class_is_named() -> None:
    H, y = data()
    keep = y != 3
    acc = GNCAccumulator(K, D)
    acc.update(H[keep], y[keep])
    with pytest.raises(ValueError, match="class 3 has none"):
        acc.compute()
    stats = acc.statistics()  # statistics exist; metrics that need all classes refuse
    for fn in (gnc1, nc1_cdnv):
        with pytest.raises(ValueError, match="class 3"):
            fn(stats)
    with pytest.raises(ValueError, match="class 3"):
        gnc3(stats, torch.randn(K, D))


def test_weights_shape_checked() -> None:
    H, y = data()
    acc = GNCAccumulator(K, D)
    acc.update(H, y)
    with pytest.raises(ValueError, match=r"`weights` of shape \(5, 3\)"):
        acc.compute(torch.randn(K + 1, D))
    bad = torch.randn(K, D)
    bad[2] = 0
    with pytest.raises(ValueError, match="row 2 is all zeros"):
        acc.compute(bad)


def test_compute_before_update_and_incompatible_merge() -> None:
    with pytest.raises(ValueError, match=r"update\(\)"):
        GNCAccumulator(K, D).compute()
    with pytest.raises(ValueError, match="normalize"):
        GNCAccumulator(K, D).merge(GNCAccumulator(K, D, normalize=False))
    with pytest.raises(TypeError):
        GNCAccumulator(K, D).merge(NCCAccumulator(torch.eye(K, D)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer"):
        GNCAccumulator(2.5, D)  # type: ignore[arg-type]


def test_coincident_class_means_are_reported() -> None:
    H = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    acc = GNCAccumulator(3, 2)
    acc.update(H, y)
    with pytest.raises(ValueError, match="classes 0 and 1 coincide"):
        nc1_cdnv(acc.statistics())


def test_ncc_merge_and_state_dict() -> None:
    H, y = data()
    means = torch.randn(K, D, dtype=torch.float64)
    logits = torch.randn(60, K)
    whole, a, b = (NCCAccumulator(means) for _ in range(3))
    whole.update(H, y, logits)
    a.update(H[:25], y[:25], logits[:25])
    b.update(H[25:], y[25:], logits[25:])
    assert a.merge(b).compute() == whole.compute()
    c = NCCAccumulator(torch.zeros(1, 1) + 1)
    c.load_state_dict(whole.state_dict())
    assert c.compute() == whole.compute()
    with pytest.raises(ValueError, match="logits"):
        whole.update(H, y, logits[:, :2])


def test_numpy_inputs_accepted() -> None:
    H, y = data()
    a, b = GNCAccumulator(K, D), GNCAccumulator(K, D)
    a.update(H.numpy(), y.numpy().astype(np.int32))
    b.update(H, y)
    assert_stats_close(a.statistics(), b.statistics(), tol=0.0)


def test_internal_chunking_is_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    import gnc.metrics.accumulators as accumulators
    import gnc.metrics.ncc as ncc

    H, y = data(97)
    logits = torch.randn(97, K)
    means = torch.randn(K, D, dtype=torch.float64)
    whole, whole_ncc = GNCAccumulator(K, D), NCCAccumulator(means)
    whole.update(H, y)
    whole_ncc.update(H, y, logits)
    for module in (accumulators, ncc):
        monkeypatch.setattr(module, "chunk_rows", lambda rows, dim, device: 4)
    chunked, chunked_ncc = GNCAccumulator(K, D), NCCAccumulator(means)
    chunked.update(H, y)
    chunked_ncc.update(H, y, logits)
    assert_stats_close(chunked.statistics(), whole.statistics())
    assert chunked_ncc.compute() == whole_ncc.compute()
    H[90, 0] = float("nan")  # in the last chunk
    chunked.update(H, y)
    with pytest.raises(ValueError, match=r"1 feature rows .* update #1"):
        chunked.compute()
