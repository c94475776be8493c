"""The training loop: SGD + cosine schedule, per-epoch GNC metrics, checkpoints, resume, DDP.

:func:`train` runs one :class:`~gnc.train.config.TrainConfig` and, when given an output folder,
writes into it (atomically): ``config.json``, ``metrics.jsonl`` (one line per evaluated epoch),
``checkpoint.pt`` (every ``checkpoint_every`` epochs and at the end), ``results.json`` and
``plots/*.png``.

Determinism: the batch order of epoch ``e`` comes from a generator seeded with ``(seed, e)`` and
the augmentation of step ``s`` from one seeded with ``(seed, e, s)``, so a resumed run replays
exactly the batches of an uninterrupted one; on CPU deterministic algorithms are switched on.

Distributed data parallel (``torchrun``): every process holds the whole (in-memory) data set and
draws the same global batch; process ``r`` trains on the ``r``-th contiguous slice of it and
scales its summed loss by ``world_size / global_batch``, so DDP's gradient average equals the
single-process gradient of the mean loss. CMF buffers are updated with all-reduced sums, and the
evaluation shards samples across processes and all-reduces the metric accumulators. (BatchNorm
statistics stay per-process, as usual with DDP; the ``mlp`` model has none, so a DDP run of it
matches a single-process run up to floating-point summation order.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gnc.data import ArrayDataset, load_dataset
from gnc.io import (
    FileFormatError,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    read_checkpoint,
    run_metadata,
)
from gnc.train.config import HeadConfig, TrainConfig, config_to_dict
from gnc.train.heads import ClassMeanHead, FixedCodeHead, Head, LinearHead, NormalizedHead
from gnc.train.models import build_backbone

__all__ = [
    "Classifier",
    "TrainResult",
    "build_head",
    "evaluate",
    "init_distributed_from_env",
    "reference_code",
    "resolve_device",
    "train",
]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        config: The configuration that ran.
        history: One metrics dict per evaluated epoch (as in ``metrics.jsonl``).
        final: The last evaluated epoch's metrics.
        code_value: ``rho`` of the softmax code for ``(K, d)`` (GNC2's reference), if solved.
        out_dir: The run folder, if any.
        resumed_from_epoch: Completed epochs restored from a checkpoint (0 for a fresh run).
        epochs_completed: Epochs completed when the function returned.
        seconds: Wall time of this call.
    """

    config: TrainConfig
    history: tuple[dict[str, Any], ...]
    final: dict[str, Any]
    code_value: float | None
    out_dir: str | None
    resumed_from_epoch: int
    epochs_completed: int
    seconds: float


class Classifier(nn.Module):
    """Backbone + head; ``forward(x, labels=None) -> (features, logits)``."""

    def __init__(self, backbone: nn.Module, head: Head) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, d)`` and logits ``(N, K)``."""
        features = self.backbone(x)
        return features, self.head(features, labels)


# --------------------------------------------------------------------------------------------
# Setup helpers
# --------------------------------------------------------------------------------------------


def init_distributed_from_env() -> bool:
    """Initialize ``torch.distributed`` from ``torchrun``'s environment when ``WORLD_SIZE > 1``.

    Uses NCCL when CUDA is available, else gloo. Returns whether a process group is active.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Expected an available device, but config asks for {name!r} without CUDA."
        )
    return device


def reference_code(
    num_classes: int,
    feature_dim: int,
    *,
    seed: int = 0,
    time_limit: float = 60.0,
    cache_dir: str | Path | None = None,
) -> tuple[torch.Tensor, float]:
    """A softmax code for ``(K, d)`` from :func:`gnc.codes.softmax_code`, cached as ``.npz``.

    Returns:
        ``(code (K, d) float64, rho)``.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"softmax_code-K{num_classes}-d{feature_dim}-seed{seed}.npz"
        if path.is_file():
            with np.load(path) as z:
                return torch.from_numpy(z["code"]), float(z["rho"])
    from gnc.codes import softmax_code

    res = softmax_code(num_classes, feature_dim, seed=seed, time_limit=time_limit)
    code = torch.as_tensor(res.code, dtype=torch.float64).cpu()
    rho = float(res.rho)
    if path is not None:
        atomic_save_npz(path, code=code.numpy(), rho=np.float64(rho))
    return code, rho


def build_head(
    config: HeadConfig,
    num_classes: int,
    feature_dim: int,
    *,
    code: torch.Tensor | None = None,
    seed: int = 0,
) -> Head:
    """The head ``config`` describes (``code`` is required for ``fixed_code``)."""
    if config.kind == "linear":
        return LinearHead(num_classes, feature_dim)
    if config.kind == "normalized":
        return NormalizedHead(num_classes, feature_dim, tau=config.tau)
    if config.kind == "cmf":
        gen = torch.Generator().manual_seed(seed + 7919)
        return ClassMeanHead(num_classes, feature_dim, config.tau, config.beta, generator=gen)
    if code is None:
        raise ValueError("Expected a softmax `code` for head.kind = 'fixed_code', but got None.")
    return FixedCodeHead(code, tau=config.tau)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - user code may draw from it
    torch.manual_seed(seed)


def _epoch_generator(seed: int, *parts: int) -> torch.Generator:
    value = seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**62)
    return torch.Generator().manual_seed(value)


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


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


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
        d = _module(model).head.feature_dim
        K = _module(model).head.num_classes
        return (x.new_zeros((0, d), dtype=torch.float32), x.new_zeros((0, K), dtype=torch.float32),
                y[:0])  # fmt: skip
    return torch.cat(feats), torch.cat(logits), y[idx]


def _module(model: nn.Module) -> Classifier:
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, Classifier)
    return inner


def _reduce_sums(values: list[float], device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() != "nccl":
            t = t.cpu()
        dist.all_reduce(t)
    out: list[float] = t.tolist()
    return out


def evaluate(
    model: nn.Module,
    inputs: _Inputs,
    *,
    num_classes: int,
    feature_dim: int,
    batch_size: int = 512,
    amp: bool = False,
    max_memory_mib: float = 1024.0,
) -> dict[str, Any]:
    """GNC/NC metrics, accuracies and losses of the model on the train and test sets.

    Features of the (un-augmented) training set feed a :class:`gnc.metrics.GNCAccumulator`
    (GNC1, GNC3, NC metrics, and GNC2 = exact ``rho`` of the head's ``classifier_weights()``);
    its class means drive :class:`gnc.metrics.NCCAccumulator` on train and test features.
    Under ``torch.distributed`` each process evaluates its shard and the accumulators are synced.
    """
    from gnc.metrics import GNCAccumulator, NCCAccumulator

    rank, world = _rank_world()
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
    weights = _module(model).head.classifier_weights().to(torch.float64)
    gnc = acc.compute(weights, class_means_rho=False, max_memory_mib=max_memory_mib)
    means = acc.statistics().means
    ncc = {}
    for split, h, z, y in (("train", h_tr, z_tr, y_tr), ("test", h_te, z_te, y_te)):
        n_acc = NCCAccumulator(means, normalize=True)
        n_acc.update(h, y, logits=z)
        n_acc.sync()
        ncc[split] = n_acc.compute()
    sums = _reduce_sums(
        [
            float(F.cross_entropy(z_tr, y_tr, reduction="sum")) if y_tr.numel() else 0.0,
            float((z_tr.argmax(1) == y_tr).sum()),
            float(y_tr.numel()),
            float(F.cross_entropy(z_te, y_te, reduction="sum")) if y_te.numel() else 0.0,
            float((z_te.argmax(1) == y_te).sum()),
            float(y_te.numel()),
        ],
        device,
    )
    out: dict[str, Any] = {
        "train_eval_loss": sums[0] / sums[2],
        "train_accuracy": sums[1] / sums[2],
        "test_loss": sums[3] / sums[5],
        "test_accuracy": sums[4] / sums[5],
        "ncc_train_accuracy": ncc["train"]["ncc_accuracy"],
        "ncc_test_accuracy": ncc["test"]["ncc_accuracy"],
        "nc4_agreement_test": ncc["test"]["nc4_agreement"],
    }
    skip = {"num_classes", "feature_dim", "num_samples", "normalized"}
    skip |= {"ncc_train_accuracy", "ncc_test_accuracy"}
    for key, value in gnc.as_dict().items():
        if key not in skip:
            out[key] = value
    out["nc4_agreement"] = ncc["train"]["nc4_agreement"]
    return out


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - restored on resume
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    # Generator states are CPU byte tensors, whatever ``map_location`` did to the checkpoint.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _save_checkpoint(
    path: Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "epoch": epoch,
            "model": _module(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
            "config": config_to_dict(config),
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def _diff_key(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            found = _diff_key(a.get(k), b.get(k), f"{prefix}{k}.")
            if found is not None:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    dataset: ArrayDataset | None = None,
) -> TrainResult:
    """Train ``config``'s model and measure GNC after every evaluation epoch.

    Args:
        config: The run.
        out_dir: Run folder for ``config.json``, ``metrics.jsonl``, checkpoints, results and plots
            (only process 0 writes). ``None`` keeps everything in memory.
        resume: Continue from ``out_dir/checkpoint.pt`` when it exists (model, optimizer,
            scheduler, head buffers, RNG states, epoch); metric lines of later epochs are dropped.
        progress: Show a progress bar on stderr (process 0 only).
        stop_after_epoch: Return after this many completed epochs (simulates an interruption;
            the schedule still spans ``config.optim.epochs``).
        dataset: Use these arrays instead of loading ``config.data``.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: If ``resume`` finds a checkpoint of a different configuration.
        FileNotFoundError: If the data source is missing (message holds the install command).

    Example:
        >>> from gnc.train.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"num_classes": 4, "samples_per_class": 8},
        ...     "model": {"feature_dim": 2}, "head": {"reference_code": False},
        ...     "optim": {"epochs": 1}})
        >>> res = train(cfg, progress=False)
        >>> res.epochs_completed, 0.0 <= res.final["test_accuracy"] <= 1.0
        (1, True)
    """
    started = time.time()
    rank, world = _rank_world()
    device = resolve_device(config.device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None
    deterministic = config.deterministic and device.type == "cpu"
    previous_det = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train(
            config, out, ckpt_path, device, rank, world, resume, progress, stop_after_epoch,
            dataset, started,
        )  # fmt: skip
    finally:
        if deterministic:
            torch.use_deterministic_algorithms(previous_det)


def _train(
    config: TrainConfig,
    out: Path | None,
    ckpt_path: Path | None,
    device: torch.device,
    rank: int,
    world: int,
    resume: bool,
    progress: bool,
    stop_after_epoch: int | None,
    dataset: ArrayDataset | None,
    started: float,
) -> TrainResult:
    show = progress and rank == 0
    # Data: process 0 builds the cache first, the others then read it.
    if dataset is None:
        if rank == 0:
            dataset = load_dataset(config.data, progress=show)
        _barrier()
        if dataset is None:
            dataset = load_dataset(config.data, progress=False)
    K, d = dataset.num_classes, config.model.feature_dim
    inputs = _Inputs(dataset, device, config.data.augment)

    # Reference softmax code (GNC2's line) and the fixed-code head's code.
    code: torch.Tensor | None = None
    code_value: float | None = None
    code_note: str | None = None
    if config.head.kind == "fixed_code" or config.head.reference_code:
        cache = Path(config.data.root) / "codes"
        seed, limit = config.head.code_seed, config.head.code_time_limit
        try:
            if rank == 0:
                code, code_value = reference_code(
                    K, d, seed=seed, time_limit=limit, cache_dir=cache
                )
            _barrier()
            if code is None:
                code, code_value = reference_code(
                    K, d, seed=seed, time_limit=limit, cache_dir=cache
                )
        except ImportError as err:
            if config.head.kind == "fixed_code":
                raise ValueError(f"head.kind = 'fixed_code' needs gnc.codes: {err}") from None
            code_note = f"no reference code: {err}"

    _seed_everything(config.seed)
    backbone = build_backbone(config.model, dataset.input_shape)
    head = build_head(config.head, K, d, code=code, seed=config.seed)
    model: nn.Module = Classifier(backbone, head).to(device)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.optim.lr,
        momentum=config.optim.momentum,
        nesterov=config.optim.nesterov and config.optim.momentum > 0,
        weight_decay=config.optim.weight_decay,
    )
    B = config.optim.batch_size
    n_train = int(inputs.train_y.numel())
    steps_per_epoch = sum(1 for s in range(0, n_train, B) if min(B, n_train - s) >= world)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, config.optim.epochs * steps_per_epoch), eta_min=config.optim.min_lr
    )

    start_epoch = 0
    history: list[dict[str, Any]] = []
    if resume and ckpt_path is not None and ckpt_path.is_file():
        state = read_checkpoint(ckpt_path, map_location=device)  # never unpickles code
        missing = {"epoch", "model", "optimizer", "scheduler", "rng", "config"} - state.keys()
        if missing:
            raise FileFormatError(ckpt_path, f"not a gnc checkpoint (no {sorted(missing)})")
        key = _diff_key(state["config"], config_to_dict(config))
        if key is not None:
            raise ValueError(
                f"Expected the checkpoint's config to match, but `{key}` differs "
                f"({ckpt_path}); use a new --out folder."
            )
        try:
            _module(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"])
            start_epoch = int(state["epoch"])
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as err:
            raise FileFormatError(ckpt_path, f"corrupt checkpoint ({err})") from None
    if out is not None and (out / METRICS).is_file() and start_epoch > 0:
        for line in (out / METRICS).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):  # a line cut by a kill
                if int(json.loads(line)["epoch"]) <= start_epoch:
                    history.append(json.loads(line))

    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    if out is not None and rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", dump_json(config_to_dict(config)) + "\n")
        atomic_write_text(out / METRICS, "".join(dump_json(h, indent=None) + "\n" for h in history))

    amp = config.amp and device.type == "cuda"
    epochs = config.optim.epochs
    last = epochs if stop_after_epoch is None else min(epochs, max(stop_after_epoch, start_epoch))
    bar = tqdm(
        total=epochs, initial=start_epoch, desc=f"train {config.name}", disable=not show,
        unit="epoch", dynamic_ncols=True,
    )  # fmt: skip

    def evaluate_against_code() -> dict[str, Any]:
        """The evaluation metrics plus GNC2 relative to the softmax code's value."""
        out = evaluate(
            model,
            inputs,
            num_classes=K,
            feature_dim=d,
            batch_size=max(B, 256),
            amp=amp,
            max_memory_mib=config.max_memory_mib,
        )
        out["gnc2_softmax_code"] = code_value
        if code_value:
            out["gnc2_relative_to_softmax_code"] = (out["gnc2"] or 0.0) / code_value
        return out

    epoch = start_epoch
    if config.eval_initial and start_epoch == 0 and not history:
        t1 = time.time()
        initial: dict[str, Any] = {"epoch": 0, "lr": optimizer.param_groups[0]["lr"]}
        initial.update(evaluate_against_code())
        initial["seconds"] = 0.0
        initial["eval_seconds"] = time.time() - t1
        history.append(initial)
        if out is not None and rank == 0:
            with open(out / METRICS, "a", encoding="utf-8") as fh:
                fh.write(dump_json(initial, indent=None) + "\n")
    for epoch in range(start_epoch + 1, last + 1):
        t0 = time.time()
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0.0
        gen = _epoch_generator(config.seed, epoch)
        for step, batch in enumerate(_batches(n_train, B, gen)):
            if batch.numel() < world:
                continue
            chunks = torch.arange(batch.numel()).tensor_split(world)
            rows = slice(int(chunks[rank][0]), int(chunks[rank][-1]) + 1)
            local = batch[rows].to(device)
            x = inputs.prepare(inputs.train_x[local])
            x = inputs.augment_(x, _epoch_generator(config.seed, epoch, step), batch.numel(), rows)
            y = inputs.train_y[local]
            with _autocast(device, amp):
                _, logits = model(x, y)
            loss_local = F.cross_entropy(logits.float(), y, reduction="sum")
            loss = loss_local * (world / batch.numel())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            loss_sum += loss_local.detach().double()
            correct += (logits.detach().argmax(1) == y).sum().double()
            seen += float(y.numel())
        train_seconds = time.time() - t0
        if not math.isfinite(float(loss_sum)):
            raise ValueError(
                f"Training diverged at epoch {epoch} (non-finite loss); lower `optim.lr`."
            )
        is_eval = epoch % config.eval_every == 0 or epoch == epochs
        if is_eval:
            t1 = time.time()
            tot = _reduce_sums([float(loss_sum), float(correct), seen], device)
            metrics: dict[str, Any] = {
                "epoch": epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": tot[0] / tot[2],
                "train_batch_accuracy": tot[1] / tot[2],
            }
            metrics.update(evaluate_against_code())
            metrics["seconds"] = train_seconds
            metrics["eval_seconds"] = time.time() - t1
            history.append(metrics)
            if out is not None and rank == 0:
                with open(out / METRICS, "a", encoding="utf-8") as fh:
                    fh.write(dump_json(metrics, indent=None) + "\n")
            bar.set_postfix(
                loss=f"{metrics['train_loss']:.3f}",
                test=f"{metrics['test_accuracy']:.3f}",
                gnc2=f"{metrics['gnc2']:.3f}",
            )
        if (
            ckpt_path is not None
            and rank == 0
            and (epoch % config.checkpoint_every == 0 or epoch == epochs)
        ):
            _save_checkpoint(
                ckpt_path, epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                config=config,
            )  # fmt: skip
        bar.update(1)
    bar.close()
    _barrier()

    final = history[-1] if history else {}
    if out is not None and rank == 0 and epoch == epochs:
        results = {
            "name": config.name,
            "final": final,
            "epochs": epochs,
            "num_classes": K,
            "feature_dim": d,
            "num_train": n_train,
            "num_test": int(inputs.test_y.numel()),
            "data_meta": dataset.meta,
            "gnc2_softmax_code": code_value,
            "code_note": code_note,
            "resumed_from_epoch": start_epoch,
            "world_size": world,
            "device": str(device),
            "metadata": run_metadata(config.seed, started),
        }
        atomic_write_text(out / "results.json", dump_json(results) + "\n")
        if history and config.plots:
            _write_plots(out, history, code_value)
    return TrainResult(
        config=config,
        history=tuple(history),
        final=final,
        code_value=code_value,
        out_dir=None if out is None else str(out),
        resumed_from_epoch=start_epoch,
        epochs_completed=epoch,
        seconds=time.time() - started,
    )


def _write_plots(out: Path, history: list[dict[str, Any]], code_value: float | None) -> None:
    from gnc.report.plots_train import save_training_plots

    save_training_plots(history, out / "plots", code_value=code_value)
