"""Feature capture by forward hook / callable and the two-pass measuring loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from gnc.metrics import capture_features, find_classifier, measure_model
from helpers.metrics_reference import reference_metrics, reference_ncc_predictions


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # On the shared, oversubscribed CI box multi-threaded MKL eigh can take seconds instead of
    # milliseconds (spin-waiting threads); these small problems need one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


K, D_IN, D = 4, 6, 3


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(D_IN, D), nn.Tanh())
        self.dropout = nn.Dropout(0.5)  # eval mode must disable it
        self.head = nn.Linear(D, K, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


def loader(n: int = 64, batch: int = 10, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D_IN, generator=g)
    y = torch.arange(n) % K
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def test_hook_captures_classifier_input_and_output() -> None:
    net = Net()
    net.train()
    batches = list(capture_features(net, loader(), progress=False))
    assert net.training  # restored
    x = torch.cat([b[0] for b in loader()])
    with torch.no_grad():
        feats = net.body(x)
        logits = net.head(feats)
    torch.testing.assert_close(torch.cat([b.features for b in batches]), feats)
    torch.testing.assert_close(
        torch.cat([b.logits for b in batches if b.logits is not None]), logits
    )
    assert all(not b.features.requires_grad for b in batches)
    # Named module and explicit module give the same result.
    named = next(capture_features(net, loader(), module="body.0", progress=False))
    assert named.features.shape == (10, D_IN)
    assert find_classifier(net) is net.head


def test_feature_fn_and_mapping_batches() -> None:
    net = Net()

    def fn(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h = net.body(batch["x"])
        return h, net.head(h)

    data = [{"x": x, "labels": y} for x, y in loader()]
    out = list(capture_features(net, data, feature_fn=fn, progress=False))
    assert torch.equal(out[0].labels, data[0]["labels"])
    assert out[0].features.shape == (10, D)


def test_measure_model_matches_reference() -> None:
    torch.manual_seed(0)
    net = Net()
    train, test = loader(), loader(n=30, seed=1)
    m = measure_model(net, train, K, test_loader=test, progress=False)
    x = torch.cat([b[0] for b in train])
    y = torch.cat([b[1] for b in train])
    with torch.no_grad():
        feats = net.body(x).double()
        logits = net.head(net.body(x))
    W = net.head.weight.detach().double()
    ref = reference_metrics(feats.numpy(), y.numpy(), K, W.numpy())
    # float32 features captured; the reference sees the same values cast to float64.
    assert m.gnc1 == pytest.approx(ref["gnc1"], rel=1e-9)
    assert m.gnc3 == pytest.approx(ref["gnc3"], rel=1e-9)
    assert m.nc1_cdnv == pytest.approx(ref["nc1_cdnv"], rel=1e-9)
    assert m.gnc2 is not None and m.gnc2 > 0
    means = torch.stack([torch.nn.functional.normalize(feats[y == k]).mean(0) for k in range(K)])
    pred = reference_ncc_predictions(feats.numpy(), means.numpy())
    assert m.ncc_train_accuracy == pytest.approx(float((pred == y.numpy()).mean()))
    assert m.nc4_agreement == pytest.approx(float((logits.argmax(1).numpy() == pred).mean()))
    xt = torch.cat([b[0] for b in test])
    yt = torch.cat([b[1] for b in test])
    with torch.no_grad():
        pred_t = reference_ncc_predictions(net.body(xt).double().numpy(), means.numpy())
    assert m.ncc_test_accuracy == pytest.approx(float((pred_t == yt.numpy()).mean()))


def test_measure_model_amp_and_options() -> None:
    net = Net()
    m = measure_model(
        net,
        loader(),
        K,
        amp=True,
        weights=None,
        second_pass=False,
        progress=False,
        class_means_rho=False,
    )
    assert m.gnc2 is None and m.gnc3 is None and m.ncc_train_accuracy is None
    assert m.gnc1 >= 0


def test_capture_errors() -> None:
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        next(capture_features(nn.Sequential(nn.Tanh()), loader(), progress=False))
    with pytest.raises(ValueError, match="submodule"):
        next(capture_features(Net(), loader(), module="nope", progress=False))
    with pytest.raises(ValueError, match="empty"):
        measure_model(Net(), [], K, progress=False)
    seq = nn.Sequential(nn.Linear(D_IN, D), nn.Linear(D, K))
    unlabeled = [torch.randn(5, D_IN)]
    with pytest.raises(ValueError, match="labels"):
        measure_model(seq, unlabeled, K, progress=False)


def test_hook_on_inner_module_skips_nc4() -> None:
    net = Net()
    m = measure_model(net, loader(), K, module="body.0", progress=False, class_means_rho=False)
    # body.0 maps D_IN -> D: its weight is not a (K, d) classifier and its output is not logits.
    assert m.feature_dim == D_IN and m.gnc2 is None and m.nc4_agreement is None
    assert m.ncc_train_accuracy is not None
