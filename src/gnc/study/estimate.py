"""A rough wall-time estimate of each section of a profile, printed before a run starts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gnc._runtime import resolve_device
from gnc.study.profile import Profile, TrainRunProfile
from gnc.study.registry import SECTIONS

__all__ = ["duration", "estimate_seconds"]

#: Training samples of one epoch by data set (CJK: ~15 training fonts x 2 renders per class).
_EPOCH_SAMPLES = {"ocr_features": 20, "cjk": 24, "synthetic": 20, "cifar100": 500}
#: Seconds per 1,000 training samples (forward, backward, evaluation) on 2 CPU cores, by model;
#: calibrated on the quick profile's CPU time (mlp on OCR features, small_cnn width 16 on 32 px
#: glyphs) on a shared 2-core machine.
_CPU_MS_PER_SAMPLE = {"mlp": 0.02, "small_cnn": 0.6, "resnet18": 20.0}
#: How much faster a current data-centre GPU is (rough, small batches).
_GPU_SPEEDUP = {"mlp": 3.0, "small_cnn": 30.0, "resnet18": 300.0}
#: The width each model's cost above was calibrated at.
_BASE_WIDTH = {"mlp": 128, "small_cnn": 16, "resnet18": 64}


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3.2 min"`` or ``"2.5 h"``.

    Example:
        >>> duration(45), duration(192), duration(9000)
        ('45 s', '3.2 min', '2.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _classes(profile: Profile, run: TrainRunProfile) -> tuple[str, int]:
    """The data set and K a run will train on (the CJK stand-in for a missing CIFAR-100)."""
    if run.dataset == "cifar100" and not (Path(profile.data_root) / "cifar-100-python").is_dir():
        return "cjk", max(run.fallback_classes, 2)
    return run.dataset, run.num_classes


def _train_cost(profile: Profile, run: TrainRunProfile, runs: int, gpu: bool) -> float:
    width = run.width / _BASE_WIDTH.get(run.model, 1)
    per = _CPU_MS_PER_SAMPLE.get(run.model, 1.0) * max(width, 0.25) ** 2
    if gpu:
        per /= _GPU_SPEEDUP.get(run.model, 10.0)
    dataset, classes = _classes(profile, run)
    samples = _EPOCH_SAMPLES.get(dataset, 30) * classes
    data = 20.0 if run.dataset == "ocr_features" else 10.0
    return float(data + runs * run.epochs * samples * per / 1000 + runs * 2.0)


def estimate_seconds(profile: Profile, sections: Sequence[str] | None = None) -> dict[str, float]:
    """A rough wall-time estimate of each section of ``profile`` before it runs.

    A cost model of the profile's sizes (solver time limits, training samples x epochs x runs
    by model, UFM steps), calibrated on the quick profile on 2 CPU cores; ``device="auto"``
    assumes a GPU when CUDA is available. An order of magnitude, not a promise.

    Example:
        >>> from gnc.study.profile import PROFILES
        >>> est = estimate_seconds(PROFILES["quick"])
        >>> list(est) == list(SECTIONS) and all(v > 0 for v in est.values())
        True
    """
    gpu = resolve_device(profile.device).type == "cuda"
    codes, tammes, ufm, assign = profile.codes, profile.tammes, profile.ufm, profile.assignment
    pre, lm = profile.pretrained, profile.lm
    training = profile.training
    costs = {
        "codes": len(codes.paper_lines) * profile.code_time_limit * 0.6
        + 2.0 * len(codes.known_configs)
        + 2.0,
        "tammes": 2 * len(tammes.sizes) * tammes.time_limit * 0.5 + 2.0,
        "ufm": sum(K for K, _ in ufm.settings) * len(ufm.taus) * ufm.samples * ufm.steps * 6e-5
        + 2.0,
        "training": _train_cost(profile, training, len(training.taus) * len(training.seeds), gpu),
        "heads": _train_cost(profile, profile.heads, 2 + len(profile.heads.cmf_betas), gpu),
        "assignment": len(assign.seeds)
        * assign.epochs
        * assign.per_class
        * 4
        * (_CPU_MS_PER_SAMPLE["mlp"] * 2 if assign.model == "mlp" else 1.5)
        / 1000
        + 5.0,
        "pretrained": len(pre.head_sources) * (pre.time_limit + 5.0)
        + (60.0 if "ocr" in pre.feature_sources else 0.0)
        + pre.feature_lm_tokens / 200.0 * ("smollm2" in pre.feature_sources),
        "lm": len(lm.heads) * lm.epochs * (lm.train_positions or 300_000) * 1.5e-4
        + (5.0 if lm.heads else 0.0),
    }
    wanted = list(SECTIONS) if sections is None else list(sections)
    return {name: float(costs.get(name, 10.0)) for name in wanted}
