"""GNCCallback: a CPU Trainer logs GNC per epoch equal to measure_model on the same batches."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("lightning")

import lightning.pytorch as pl

from gnc.integrations.lightning import GNCCallback, GNCCallbackWarning
from gnc.metrics import measure_model

K, D_IN, D = 5, 6, 4

# Lightning 2.6 with torch 2.13 (third-party, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning")


@pytest.fixture(autouse=True)
def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Tiny(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D_IN, D), nn.Tanh(), nn.Linear(D, K))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def batches(n: int, seed: int, keep: int = K) -> DataLoader[tuple[torch.Tensor, ...]]:
    """``n`` batches of 20 samples with every one of the first ``keep`` classes in each."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(20 * n) % keep
    x = torch.randn(20 * n, D_IN, generator=g) + 2.0 * nn.functional.one_hot(y, D_IN).float()
    return DataLoader(TensorDataset(x, y), batch_size=20, shuffle=False)


def _trainer(accelerator: str = "cpu", **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


@pytest.mark.parametrize(
    "accelerator", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu, id="gpu-cuda")]
)
def test_logged_values_match_measure_model_on_the_same_batches(accelerator: str) -> None:
    torch.manual_seed(0)
    model = Tiny(lr=0.0)  # frozen: the training-step features are measure_model's features
    train, val = batches(3, 1), batches(2, 2)
    cb = GNCCallback(num_classes=K, second_pass=True)
    trainer = _trainer(max_epochs=2, callbacks=[cb], accelerator=accelerator)
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    want = measure_model(model, train, K, test_loader=val, progress=False)  # on the CPU
    rel = 1e-10 if accelerator == "cpu" else 1e-4  # float32 forward on the GPU vs the CPU
    assert [epoch for epoch, _ in cb.history] == [0, 1]
    got = cb.history[-1][1]
    for name in ("gnc1", "gnc2", "gnc3", "gnc2_class_means", "nc1_cdnv", "nc4_agreement"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=rel), name
    slack = 0.0 if accelerator == "cpu" else 0.02  # a sample may flip on near-ties
    assert got.ncc_train_accuracy == pytest.approx(want.ncc_train_accuracy, abs=slack)
    assert got.ncc_test_accuracy == pytest.approx(want.ncc_test_accuracy, abs=slack)
    logged = trainer.callback_metrics
    for name in ("gnc1", "gnc2", "gnc3", "nc1_cdnv", "ncc_train_accuracy"):
        assert float(logged[f"gnc/{name}"]) == pytest.approx(
            getattr(want, name), rel=max(rel, 1e-6)
        )
    assert float(logged["gnc/ncc_val_accuracy"]) == pytest.approx(got.ncc_test_accuracy)


def test_fast_dev_run_while_training() -> None:
    torch.manual_seed(0)
    model = Tiny(lr=0.5)
    cb = GNCCallback(K, D, layer="net.2", every_n_epochs=1)
    trainer = _trainer(fast_dev_run=1, callbacks=[cb])
    trainer.fit(model, train_dataloaders=batches(2, 1), val_dataloaders=batches(1, 2))
    assert len(cb.history) == 1
    m = cb.history[0][1]
    logged = trainer.callback_metrics
    assert {"gnc/gnc1", "gnc/gnc2", "gnc/gnc3", "gnc/ncc_val_accuracy"} <= set(logged)
    assert float(logged["gnc/gnc1"]) == pytest.approx(m.gnc1, rel=1e-6) and m.gnc1 > 0
    assert 0.0 <= float(logged["gnc/ncc_val_accuracy"]) <= 1.0
    assert m.ncc_train_accuracy is None  # no second pass asked for


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no")
def test_every_n_epochs_and_missing_classes() -> None:
    model = Tiny(lr=0.1)
    cb = GNCCallback(K, every_n_epochs=2)
    _trainer(max_epochs=4, callbacks=[cb]).fit(model, train_dataloaders=batches(2, 3))
    assert [epoch for epoch, _ in cb.history] == [1, 3]
    # a class without training samples: the epoch is not logged, training goes on
    only_two = batches(2, 4, keep=2)
    cb2 = GNCCallback(K)
    with pytest.warns(GNCCallbackWarning, match="class"):
        _trainer(max_epochs=1, callbacks=[cb2]).fit(Tiny(0.1), train_dataloaders=only_two)
    assert cb2.history == []
    with pytest.raises(ValueError, match="every_n_epochs"):
        GNCCallback(K, every_n_epochs=0)
    with pytest.raises(ValueError, match="weights"):
        GNCCallback(K, weights="last")
