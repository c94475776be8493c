"""The training loop: SGD + cosine schedule, per-epoch GNC metrics, checkpoints, resume, DDP.

:func:`train` runs one :class:`~gnc.train.config.TrainConfig` and, when given an output folder,
writes into it (atomically): ``config.json``, ``metrics.jsonl`` (one line per evaluated epoch),
``checkpoint.pt`` (every ``checkpoint_every`` epochs and at the end) and ``results.json``;
the history comes back as :class:`~gnc.train.records.EpochRecord` rows (plots of it are drawn by
:func:`gnc.report.plots_train.save_training_plots`, which ``gnc train`` calls).

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
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gnc._runtime import make_generator, resolve_device
from gnc.data import ArrayDataset, load_dataset
from gnc.io import atomic_write_text, dump_json, run_metadata
from gnc.train.checkpoint import restore_checkpoint, save_checkpoint
from gnc.train.config import TrainConfig, config_to_dict
from gnc.train.evaluate import (
    _autocast,
    _Inputs,
    barrier,
    evaluate,
    rank_world,
    reduce_sums,
)
from gnc.train.heads import build_head, reference_code
from gnc.train.models import Classifier, build_backbone
from gnc.train.records import EpochRecord, TrainResult

__all__ = ["deterministic_algorithms", "train"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Switch ``torch.use_deterministic_algorithms`` on inside the block when ``enabled``.

    The previous setting is restored on exit.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        if enabled:
            torch.use_deterministic_algorithms(previous)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - user code may draw from it
    torch.manual_seed(seed)


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    stop_after_epoch: int | None = None,
    dataset: ArrayDataset | None = None,
) -> TrainResult:
    """Train ``config``'s model and measure GNC after every evaluation epoch.

    Args:
        config: The run.
        out_dir: Run folder for ``config.json``, ``metrics.jsonl``, checkpoints and results
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
        >>> res.epochs_completed, 0.0 <= res.final.test_accuracy <= 1.0
        (1, True)
    """
    started = time.time()
    rank, world = rank_world()
    device = resolve_device(config.device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None
    with deterministic_algorithms(config.deterministic and device.type == "cpu"):
        return _train(
            config, out, ckpt_path, device, rank, world, resume, progress, stop_after_epoch,
            dataset, started,
        )  # fmt: skip


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
        barrier()
        if dataset is None:
            dataset = load_dataset(config.data, progress=False)
    K, d = dataset.num_classes, config.model.feature_dim
    inputs = _Inputs(dataset, device, config.data.augment)

    # Reference softmax code (GNC2's line) and the fixed-code head's code.
    code: torch.Tensor | None = None
    code_value: float | None = None
    if config.head.kind == "fixed_code" or config.head.reference_code:
        cache = Path(config.data.root) / "codes"
        seed, limit = config.head.code_seed, config.head.code_time_limit
        if rank == 0:
            code, code_value = reference_code(K, d, seed=seed, time_limit=limit, cache_dir=cache)
        barrier()
        if code is None:
            code, code_value = reference_code(K, d, seed=seed, time_limit=limit, cache_dir=cache)

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
    history: list[EpochRecord] = []
    if resume and ckpt_path is not None and ckpt_path.is_file():
        start_epoch = restore_checkpoint(
            ckpt_path, model=model, optimizer=optimizer, scheduler=scheduler, config=config,
            device=device,
        )  # fmt: skip
    if out is not None and (out / METRICS).is_file() and start_epoch > 0:
        for line in (out / METRICS).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):  # a line cut by a kill
                row = EpochRecord.from_dict(json.loads(line))
                if row.epoch <= start_epoch:
                    history.append(row)

    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    if out is not None and rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", dump_json(config_to_dict(config)) + "\n")
        atomic_write_text(out / METRICS, "".join(_jsonl(h) for h in history))

    amp = config.amp and device.type == "cuda"
    epochs = config.optim.epochs
    last = epochs if stop_after_epoch is None else min(epochs, max(stop_after_epoch, start_epoch))
    bar = tqdm(
        total=epochs, initial=start_epoch, desc=f"train {config.name}", disable=not show,
        unit="epoch", dynamic_ncols=True,
    )  # fmt: skip

    def evaluate_epoch(epoch: int, seconds: float, **train_side: float) -> EpochRecord:
        """Evaluate the model and relate GNC2 to the softmax code's value."""
        t1 = time.time()
        metrics = evaluate(
            model,
            inputs,
            num_classes=K,
            feature_dim=d,
            batch_size=max(B, 256),
            amp=amp,
            max_memory_mib=config.max_memory_mib,
        )
        return EpochRecord.from_eval(
            metrics,
            epoch=epoch,
            lr=optimizer.param_groups[0]["lr"],
            code_value=code_value,
            seconds=seconds,
            eval_seconds=time.time() - t1,
            **train_side,
        )

    epoch = start_epoch
    if config.eval_initial and start_epoch == 0 and not history:
        initial = evaluate_epoch(0, 0.0)
        history.append(initial)
        if out is not None and rank == 0:
            with open(out / METRICS, "a", encoding="utf-8") as fh:
                fh.write(_jsonl(initial))
    for epoch in range(start_epoch + 1, last + 1):
        t0 = time.time()
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0.0
        gen = make_generator(config.seed, epoch)
        for step, batch in enumerate(_batches(n_train, B, gen)):
            if batch.numel() < world:
                continue
            chunks = torch.arange(batch.numel()).tensor_split(world)
            rows = slice(int(chunks[rank][0]), int(chunks[rank][-1]) + 1)
            local = batch[rows].to(device)
            x = inputs.prepare(inputs.train_x[local])
            x = inputs.augment_(x, make_generator(config.seed, epoch, step), batch.numel(), rows)
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
            tot = reduce_sums([float(loss_sum), float(correct), seen])
            metrics = evaluate_epoch(
                epoch,
                train_seconds,
                train_loss=tot[0] / tot[2],
                train_batch_accuracy=tot[1] / tot[2],
            )
            history.append(metrics)
            if out is not None and rank == 0:
                with open(out / METRICS, "a", encoding="utf-8") as fh:
                    fh.write(_jsonl(metrics))
            bar.set_postfix(
                loss=f"{metrics.train_loss:.3f}",
                test=f"{metrics.test_accuracy:.3f}",
                gnc2=f"{metrics.gnc2:.3f}",
            )
        if (
            ckpt_path is not None
            and rank == 0
            and (epoch % config.checkpoint_every == 0 or epoch == epochs)
        ):
            save_checkpoint(
                ckpt_path, epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                config=config,
            )  # fmt: skip
        bar.update(1)
    bar.close()
    barrier()

    final = history[-1] if history else None
    if out is not None and rank == 0 and epoch == epochs:
        results = {
            "name": config.name,
            "final": None if final is None else final.to_dict(),
            "epochs": epochs,
            "num_classes": K,
            "feature_dim": d,
            "num_train": n_train,
            "num_test": int(inputs.test_y.numel()),
            "data_meta": dataset.meta,
            "gnc2_softmax_code": code_value,
            "resumed_from_epoch": start_epoch,
            "world_size": world,
            "device": str(device),
            "metadata": run_metadata(config.seed, started),
        }
        atomic_write_text(out / "results.json", dump_json(results) + "\n")
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


def _jsonl(row: EpochRecord) -> str:
    """One ``metrics.jsonl`` line."""
    return dump_json(row.to_dict(), indent=None) + "\n"
