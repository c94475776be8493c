"""Evaluation of a classifier: accuracy, loss and GNC / NC metrics on the train and test sets.

:class:`_Inputs` keeps a data set on the device and turns index batches into normalized
(optionally augmented) inputs; :func:`evaluate` measures a model on it and returns an
:class:`~gnc.train.records.EvalMetrics`. Under ``torch.distributed`` each process evaluates its
shard of the samples and the metric accumulators are all-reduced.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from gnc.data import ArrayDataset
from gnc.metrics import GNCAccumulator, NCCAccumulator, NCCMetrics
from gnc.metrics.distributed import all_reduce_sum_, collective_device, is_distributed
from gnc.train.models import unwrap_classifier
from gnc.train.records import EvalMetrics

__all__ = ["evaluate", "init_distributed_from_env", "rank_world", "reduce_sums"]


def init_distributed_from_env() -> bool:
    """Initialize ``torch.distributed`` from ``torchrun``'s environment when ``WORLD_SIZE > 1``.

    Uses NCCL when CUDA is available, else gloo. Returns whether a process group is active.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` when not distributed)."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every process (no-op when alone)."""
    if is_distributed() and dist.get_world_size() > 1:
        dist.barrier()


def reduce_sums(values: list[float]) -> list[float]:
    """``values`` summed over all processes (float64; unchanged when alone)."""
    t = torch.tensor(values, dtype=torch.float64, device=collective_device())
    out: list[float] = all_reduce_sum_([t])[0].tolist()
    return out


class _Inputs:
    """Holds the data on the device and turns index batches into normalized float inputs."""

    def __init__(self, ds: ArrayDataset, device: torch.device, augment: str) -> None:
        self.images = ds.train_x.ndim == 4
        self.train_x = torch.from_numpy(np.ascontiguousarray(ds.train_x)).to(device)
        self.train_y = torch.from_numpy(ds.train_y).to(device)
        self.test_x = torch.from_numpy(np.ascontiguousarray(ds.test_x)).to(device)
        self.test_y = torch.from_numpy(ds.test_y).to(device)
        self.augment = augment if self.images else "none"
        if self.images:
            x = ds.train_x.astype(np.float64) / 255.0
            mean = x.mean(axis=(0, 2, 3))
            std = x.std(axis=(0, 2, 3)) + 1e-8
            shape: tuple[int, ...] = (1, -1, 1, 1)
        else:
            mean = ds.train_x.mean(axis=0).astype(np.float64)
            std = np.ones_like(mean)
            shape = (1, -1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).reshape(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).reshape(shape)

    def prepare(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.float() / 255.0 if self.images else raw.float()
        return (x - self.mean) / self.std

    def augment_(
        self, x: torch.Tensor, gen: torch.Generator, global_size: int, rows: slice
    ) -> torch.Tensor:
        """Random 4-px crops (and flips); random draws for the global batch, sliced to ``rows``."""
        if self.augment == "none":
            return x
        pad = 4
        offsets = torch.randint(0, 2 * pad + 1, (global_size, 2), generator=gen)[rows]
        flips = torch.rand(global_size, generator=gen)[rows] < 0.5
        B, _, H, W = x.shape
        xp = F.pad(x, (pad, pad, pad, pad))
        dev = x.device
        oy = offsets[:, 0].to(dev)
        ox = offsets[:, 1].to(dev)
        rows_i = (oy[:, None] + torch.arange(H, device=dev)[None, :])[:, None, :, None]
        cols_i = (ox[:, None] + torch.arange(W, device=dev)[None, :])[:, None, None, :]
        b = torch.arange(B, device=dev)[:, None, None, None]
        c = torch.arange(x.shape[1], device=dev)[None, :, None, None]
        out = xp[b, c, rows_i, cols_i]
        if self.augment == "crop_flip":
            out = torch.where(flips.to(dev)[:, None, None, None], out.flip(3), out)
        return out


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def _forward_all(
    model: nn.Module,
    inputs: _Inputs,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rank: int,
    world: int,
    batch_size: int,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, logits and labels of this process's shard (``rank::world``) of ``(x, y)``."""
    idx = torch.arange(rank, x.shape[0], world, device=x.device)
    feats, logits = [], []
    for start in range(0, idx.numel(), batch_size):
        b = idx[start : start + batch_size]
        with _autocast(x.device, amp):
            h, z = model(inputs.prepare(x[b]))
        feats.append(h.float())
        logits.append(z.float())
    if not feats:  # more processes than samples
        d = unwrap_classifier(model).head.feature_dim
        K = unwrap_classifier(model).head.num_classes
        return (x.new_zeros((0, d), dtype=torch.float32), x.new_zeros((0, K), dtype=torch.float32),
                y[:0])  # fmt: skip
    return torch.cat(feats), torch.cat(logits), y[idx]


def _loss_hits_count(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Summed cross-entropy, correct predictions and samples of this process's shard."""
    loss = float(F.cross_entropy(logits, labels, reduction="sum")) if labels.numel() else 0.0
    return [loss, float((logits.argmax(1) == labels).sum()), float(labels.numel())]


def evaluate(
    model: nn.Module,
    inputs: _Inputs,
    *,
    num_classes: int,
    feature_dim: int,
    batch_size: int = 512,
    amp: bool = False,
    max_memory_mib: float = 1024.0,
) -> EvalMetrics:
    """GNC/NC metrics, accuracies and losses of the model on the train and test sets.

    Features of the (un-augmented) training set feed a :class:`gnc.metrics.GNCAccumulator`
    (GNC1, GNC3, NC metrics, and GNC2 = exact ``rho`` of the head's ``classifier_weights()``);
    its class means drive :class:`gnc.metrics.NCCAccumulator` on train and test features.
    Under ``torch.distributed`` each process evaluates its shard and the accumulators are synced.
    """
    rank, world = rank_world()
    model.eval()
    device = inputs.train_x.device
    h_tr, z_tr, y_tr = _forward_all(
        model, inputs, inputs.train_x, inputs.train_y,
        rank=rank, world=world, batch_size=batch_size, amp=amp,
    )  # fmt: skip
    h_te, z_te, y_te = _forward_all(
        model, inputs, inputs.test_x, inputs.test_y,
        rank=rank, world=world, batch_size=batch_size, amp=amp,
    )  # fmt: skip

    acc = GNCAccumulator(num_classes, feature_dim, normalize=True, device=device)
    acc.update(h_tr, y_tr)
    acc.sync()
    weights = unwrap_classifier(model).head.classifier_weights().to(torch.float64)
    gnc = acc.compute(weights, class_means_rho=False, max_memory_mib=max_memory_mib)
    means = acc.statistics().means
    ncc: dict[str, NCCMetrics] = {}
    for split, h, z, y in (("train", h_tr, z_tr, y_tr), ("test", h_te, z_te, y_te)):
        n_acc = NCCAccumulator(means, normalize=True)
        n_acc.update(h, y, logits=z)
        n_acc.sync()
        ncc[split] = n_acc.compute()
    sums = reduce_sums([*_loss_hits_count(z_tr, y_tr), *_loss_hits_count(z_te, y_te)])
    return EvalMetrics(
        train_eval_loss=sums[0] / sums[2],
        train_accuracy=sums[1] / sums[2],
        test_loss=sums[3] / sums[5],
        test_accuracy=sums[4] / sums[5],
        ncc_train_accuracy=ncc["train"].ncc_accuracy,
        ncc_test_accuracy=ncc["test"].ncc_accuracy,
        nc4_agreement_test=ncc["test"].nc4_agreement,
        gnc1=gnc.gnc1,
        gnc2=gnc.gnc2,
        gnc2_gap=gnc.gap,
        gnc2_class_means=gnc.gnc2_class_means,
        gnc3=gnc.gnc3,
        nc1_cdnv=gnc.nc1_cdnv,
        nc2_etf_error=gnc.nc2_etf_error,
        nc2_equinorm=gnc.nc2_equinorm,
        nc2_etf_error_weights=gnc.nc2_etf_error_weights,
        nc2_equinorm_weights=gnc.nc2_equinorm_weights,
        nc3_self_duality=gnc.nc3_self_duality,
        nc4_agreement=ncc["train"].nc4_agreement,
        hyperspherical_uniformity=gnc.hyperspherical_uniformity,
        gnc2_upper_bound=gnc.rho_star_upper,
        gnc2_relative_to_upper_bound=gnc.gnc2_relative_to_rho_star_upper,
        gnc2_code_value=gnc.rho_star_proven,
        gnc2_relative_to_code_value=gnc.gnc2_relative_to_rho_star_proven,
    )
