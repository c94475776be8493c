"""Training the tiny language model, with GNC measured before training and after every epoch.

:func:`train_lm` runs Adam with a cosine learning-rate schedule over ``epochs`` epochs of
``train_positions`` positions each (a fresh random subset of all training positions per epoch:
the whole KJV is ~0.82 M positions, more than a CPU budget of minutes allows for ten epochs).
Adam rather than the image loop's SGD, the usual choice for language models (sparse embedding
gradients, Zipfian class frequencies); no weight decay, as in the paper's normalized setting.
SGD was not compared here. Loss: cross-entropy on the next word.

Metrics per epoch, and once before training (epoch 0: the head's random initialization is the
baseline GNC2 is compared with), by :func:`gnc.lm.metrics.subsample_gnc_metrics` on a *fixed*
random subsample of training positions; NCC test accuracy on a fixed random subsample of
``metric_samples`` evaluated test positions (nearest-mean search is the costly part of the
evaluation). Plus the train loss (running mean over the epoch), the loss / top-1 accuracy on
the metric subsample in eval mode (``train_eval_loss``, ``train_accuracy``) and on the test
positions (``test_loss``, ``test_accuracy``, ``test_perplexity = exp(test_loss)``).

Reproducibility: the model is initialized from ``torch.manual_seed(seed)``, the positions of
epoch ``e`` come from :func:`gnc._runtime.make_generator` ``(seed, e)`` and the metric
subsample from ``(seed)`` alone; on CPU deterministic algorithms are switched on, so the same
seed gives the same history (apart from the timing fields ``seconds`` and ``eval_seconds``).

Outputs (with ``out_dir``), each written atomically: ``config.json``, ``metrics.jsonl``
(rewritten after every epoch), ``history.json``, ``results.json`` and ``head.npz`` (final
normalized head rows, their one-vs-rest distances ``D_k`` and the training counts per class).
Plots of a run are drawn by ``gnc lm`` (:mod:`gnc.report.plots_train`).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gnc._runtime import make_generator, resolve_device
from gnc.data import load_text
from gnc.geometry.bounds import rho_star_upper
from gnc.io import atomic_save_npz, atomic_write_text, dump_json, run_metadata
from gnc.lm.metrics import distance_by_frequency, subsample_gnc_metrics
from gnc.lm.model import LMConfig, build_lm_model
from gnc.lm.records import LMEpoch, LMResult
from gnc.lm.vocab import LMData, Vocabulary, context_windows, prepare_lm_data, sample_positions
from gnc.train import Classifier, deterministic_algorithms

__all__ = ["train_lm"]


@torch.no_grad()
def _forward(
    model: Classifier, ids: torch.Tensor, positions: torch.Tensor, context: int, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features, predictions, targets and per-sample CE of the pairs at ``positions`` (eval mode).

    Logits are reduced per batch: an ``(N, K)`` matrix is never kept.
    """
    model.eval()
    feats, preds, targets, losses = [], [], [], []
    for start in range(0, positions.numel(), batch):
        x, y = context_windows(ids, context, positions[start : start + batch])
        h, z = model(x)
        feats.append(h.float())
        preds.append(z.argmax(1))
        targets.append(y)
        losses.append(F.cross_entropy(z.float(), y, reduction="none").double())
    return torch.cat(feats), torch.cat(preds), torch.cat(targets), torch.cat(losses)


def _raw_weight_norm_mean(head: nn.Module) -> float | None:
    """Mean row norm of the head's parameter ``weight`` (before any normalization)."""
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor):  # pragma: no cover - every head here has one
        return None
    return float(torch.linalg.vector_norm(weight.detach(), dim=1).mean())


def train_lm(
    config: LMConfig,
    data: LMData | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> LMResult:
    """Train a tiny next-word model and measure GNC after every epoch.

    Args:
        config: The run.
        data: Encoded corpus (default: :func:`prepare_lm_data` of ``config.corpus``). Its
            vocabulary must have ``config.num_classes`` classes.
        out_dir: Folder for ``config.json``, ``metrics.jsonl``, ``history.json``,
            ``results.json`` and ``head.npz`` (atomic writes); ``None`` keeps everything in
            memory.
        progress: Show a progress bar per epoch on stderr.

    Returns:
        An :class:`LMResult`.

    Raises:
        ValueError: If ``data`` does not match the configuration, the text is too short for
            ``context``, or training diverges.

    Example:
        >>> text = " ".join("abcdef"[i % 6] for i in range(300))
        >>> data = prepare_lm_data(text, 7, test_fraction=0.2)
        >>> cfg = LMConfig(num_classes=7, context=2, embedding_dim=4, hidden_dim=16,
        ...     feature_dim=3, epochs=2, batch_size=16, lr=1e-2, metric_samples=50, device="cpu")
        >>> res = train_lm(cfg, data, progress=False)
        >>> [row.epoch for row in res.history], res.final.metric_classes
        ([0, 1, 2], 6)
    """
    started = time.time()
    if data is None:
        text = load_text(config.corpus, max_chars=config.max_chars)
        data = prepare_lm_data(
            text, config.num_classes, test_fraction=config.test_fraction, name=config.corpus
        )
    if not isinstance(data, LMData):
        raise TypeError(f"Expected `data` to be an LMData, but got {type(data).__name__}.")
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"Expected `data` with {config.num_classes} classes (config.num_classes), but got "
            f"{data.num_classes}."
        )
    c = config.context
    for name, ids in (("train", data.train_ids), ("test", data.test_ids)):
        if ids.shape[0] <= c:
            raise ValueError(
                f"Expected more than context = {c} {name} tokens, but got {ids.shape[0]}."
            )
    device = resolve_device(config.device)
    with deterministic_algorithms(device.type == "cpu"):
        return _train_lm(config, data, out_dir, progress, device, started)


def _train_lm(
    config: LMConfig,
    data: LMData,
    out_dir: str | Path | None,
    progress: bool,
    device: torch.device,
    started: float,
) -> LMResult:
    K, d, c = config.num_classes, config.feature_dim, config.context
    out = None if out_dir is None else Path(out_dir)
    train_ids = torch.from_numpy(data.train_ids).to(device)
    test_ids = torch.from_numpy(data.test_ids).to(device)
    n_train, n_test = int(train_ids.numel()), int(test_ids.numel())

    metric_pos = sample_positions(
        n_train, c, config.metric_samples, generator=make_generator(config.seed)
    )
    test_pos = sample_positions(
        n_test, c, config.test_positions, generator=make_generator(config.seed, -1)
    )
    ncc_test = torch.randperm(test_pos.numel(), generator=make_generator(config.seed, -2))
    ncc_test = ncc_test[: config.metric_samples].sort().values.to(device)
    per_epoch = min(config.train_positions or n_train, n_train - c)
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)

    torch.manual_seed(config.seed)
    model = build_lm_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    try:
        upper: float | None = float(rho_star_upper(K, d))
    except (ValueError, NotImplementedError):  # pragma: no cover - bound not available
        upper = None

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", dump_json(config.to_dict()) + "\n")
        atomic_write_text(out / "metrics.jsonl", "")

    history: list[LMEpoch] = []
    distances = torch.zeros(K, dtype=torch.float64)

    def evaluate(
        epoch: int, train_loss: float | None, batch_accuracy: float | None, seconds: float
    ) -> None:
        """Append the metrics row of ``epoch`` (0: the untrained model) to ``history``."""
        nonlocal distances
        t1 = time.time()
        eval_batch = max(config.batch_size, 1024)
        h_tr, p_tr, y_tr, l_tr = _forward(model, train_ids, metric_pos, c, eval_batch)
        h_te, p_te, y_te, l_te = _forward(model, test_ids, test_pos, c, eval_batch)
        gnc, distances = subsample_gnc_metrics(
            h_tr,
            y_tr,
            model.head.classifier_weights(),
            predictions=p_tr,
            test_features=h_te[ncc_test],
            test_targets=y_te[ncc_test],
            max_memory_mib=config.max_memory_mib,
        )
        test_loss = float(l_te.mean())
        row = LMEpoch(
            epoch=epoch,
            lr=optimizer.param_groups[0]["lr"],
            train_loss=train_loss,
            train_batch_accuracy=batch_accuracy,
            train_eval_loss=float(l_tr.mean()),
            train_accuracy=float((p_tr == y_tr).double().mean()),
            test_loss=test_loss,
            test_accuracy=float((p_te == y_te).double().mean()),
            test_perplexity=math.exp(min(test_loss, 700.0)),
            feature_norm_mean=float(torch.linalg.vector_norm(h_tr, dim=1).mean()),
            weight_norm_mean=_raw_weight_norm_mean(model.head),
            **gnc.to_dict(),
            gnc2_upper_bound=upper,
            seconds=seconds,
            eval_seconds=time.time() - t1,
        )
        history.append(row)
        if progress:
            tqdm.write(
                f"lm {config.label} epoch {epoch}: test ppl {row.test_perplexity:.1f} "
                f"acc {row.test_accuracy:.3f} GNC1 {row.gnc1:.3g} GNC2 {row.gnc2:.4f} "
                f"(median D {row.gnc2_median_distance:.4f}) GNC3 {row.gnc3:.3g}",
                file=sys.stderr,
            )

    evaluate(0, None, None, 0.0)
    for epoch in range(1, config.epochs + 1):
        t0 = time.time()
        model.train()
        gen = make_generator(config.seed, epoch)
        perm = torch.randperm(n_train - c, generator=gen)[:per_epoch] + c
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"lm {config.label} epoch {epoch}/{config.epochs}",
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )
        for step in bar:
            batch = perm[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = context_windows(train_ids, c, batch)
            _, logits = model(x, y)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach().double() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum().double()
            if step % 100 == 0 and progress:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
        train_loss = float(loss_sum) / per_epoch
        if not math.isfinite(train_loss):
            raise ValueError(f"Training diverged at epoch {epoch} (non-finite loss); lower `lr`.")
        train_seconds = time.time() - t0

        evaluate(epoch, train_loss, float(correct) / per_epoch, train_seconds)
        if out is not None:
            lines = "".join(dump_json(h.to_dict(), indent=None) + "\n" for h in history)
            atomic_write_text(out / "metrics.jsonl", lines)

    vocab = data.vocabulary
    result = LMResult(
        config=config,
        history=tuple(history),
        corpus=data.name,
        num_train_tokens=n_train,
        num_test_tokens=n_test,
        unk_rate_train=float((data.train_ids == 0).mean()),
        unk_rate_test=float((data.test_ids == 0).mean()),
        rho_star_upper=upper,
        distance_by_frequency=distance_by_frequency(distances, vocab),
        argmin_word=vocab.words[history[-1].gnc2_argmin],
        out_dir=None if out is None else str(out),
        seconds=time.time() - started,
        model=model,
    )
    if out is not None:
        _write_outputs(out, result, distances, vocab)
    return result


def _write_outputs(out: Path, result: LMResult, distances: torch.Tensor, vocab: Vocabulary) -> None:
    history = [row.to_dict() for row in result.history]
    atomic_write_text(out / "history.json", dump_json(history) + "\n")
    summary = result.to_dict()
    summary["metadata"] = run_metadata(result.config.seed, time.time() - result.seconds)
    summary["top_words"] = list(vocab.words[:50])
    atomic_write_text(out / "results.json", dump_json(summary) + "\n")
    atomic_save_npz(
        out / "head.npz",
        distances=distances.cpu().numpy(),
        counts=np.asarray(vocab.counts, dtype=np.int64),
        weights=result.model.head.classifier_weights().cpu().numpy(),
    )
