"""Frozen dataclass configuration of a training run, loaded from TOML with dotted overrides.

A run is described by one :class:`TrainConfig` tree (data, model, head, optimizer, run settings).
Presets live in ``configs/*.toml``; each TOML table matches a dataclass field, and any key can be
overridden with ``key=value`` strings such as ``head.tau=1/7`` or ``optim.epochs=30``.
Unknown keys and ill-typed values raise :class:`ValueError` naming the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from gnc.data.datasets import DataConfig
from gnc.readers import read_toml

__all__ = [
    "HeadConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]

ModelName = Literal["mlp", "small_cnn", "resnet18"]
HeadKind = Literal["linear", "normalized", "cmf", "fixed_code"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Backbone: ``mlp`` (synthetic vectors), ``small_cnn`` (CPU) or ``resnet18`` (GPU).

    Attributes:
        name: Architecture.
        feature_dim: d, the output of the last linear layer (the features h).
        width: Base width (MLP hidden units; channels of the first CNN block).
    """

    name: ModelName = "mlp"
    feature_dim: int = 10
    width: int = 32


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """Classifier head on top of the d-dimensional features.

    Attributes:
        kind: ``linear`` (plain CE), ``normalized`` (cosine logits / tau), ``cmf`` (class-mean
            features, buffers updated with momentum ``beta``), ``fixed_code`` (a softmax code).
        tau: Temperature of the normalized, CMF and fixed-code heads (logits = cos / tau).
        beta: CMF momentum (w_k <- normalize(beta w_k + (1 - beta) sum_i h_i / |h_i|)).
        code_seed: Seed of the softmax-code solver for ``fixed_code`` and the GNC2 reference.
        code_time_limit: Seconds allowed to the softmax-code solver.
        reference_code: Solve (and cache) the softmax code for (K, d) to draw GNC2's reference.
    """

    kind: HeadKind = "normalized"
    tau: float = 1.0
    beta: float = 0.9
    code_seed: int = 0
    code_time_limit: float = 60.0
    reference_code: bool = True


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """SGD with (Nesterov) momentum, weight decay and a cosine learning-rate schedule.

    Attributes:
        epochs: Number of training epochs.
        batch_size: Global batch size (split across processes under DDP).
        lr: Initial learning rate.
        momentum: SGD momentum.
        nesterov: Use Nesterov momentum.
        weight_decay: L2 penalty applied by SGD to every parameter.
        min_lr: Final learning rate of the cosine schedule.
    """

    epochs: int = 4
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    min_lr: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A full training run.

    Attributes:
        name: Label of the run (used in plots).
        seed: Seed of model initialization and batch order.
        data: Data settings.
        model: Backbone settings.
        head: Head settings.
        optim: Optimizer settings.
        eval_every: Evaluate (and append to ``metrics.jsonl``) every this many epochs; the last
            epoch is always evaluated.
        eval_initial: Also evaluate the untrained model (an ``epoch`` 0 line in the history).
        checkpoint_every: Write ``checkpoint.pt`` every this many epochs (and at the end).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU.
        deterministic: Use deterministic algorithms on CPU.
        max_memory_mib: Memory budget of the exact GNC2 computation.
        plots: Draw ``plots/*.png`` of the history at the end of the run (``gnc train``
            draws them with :func:`gnc.report.plots_train.save_training_plots`).
    """

    name: str = "run"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    eval_every: int = 1
    eval_initial: bool = False
    checkpoint_every: int = 5
    device: str = "auto"
    amp: bool = True
    deterministic: bool = True
    max_memory_mib: float = 1024.0
    plots: bool = True

    def __post_init__(self) -> None:
        _validate(self)


T = TypeVar("T")


def _validate(cfg: TrainConfig) -> None:
    """Range checks, raised with the dotted key that is wrong."""
    positive_ints = {
        "optim.epochs": cfg.optim.epochs,
        "optim.batch_size": cfg.optim.batch_size,
        "model.feature_dim": cfg.model.feature_dim,
        "model.width": cfg.model.width,
        "data.num_classes": cfg.data.num_classes,
        "data.image_size": cfg.data.image_size,
        "data.train_augmentations": cfg.data.train_augmentations,
        "data.test_augmentations": cfg.data.test_augmentations,
        "data.samples_per_class": cfg.data.samples_per_class,
        "data.test_samples_per_class": cfg.data.test_samples_per_class,
        "data.input_dim": cfg.data.input_dim,
        "eval_every": cfg.eval_every,
        "checkpoint_every": cfg.checkpoint_every,
    }
    for key, value in positive_ints.items():
        if value < 1:
            raise ValueError(f"Expected config key `{key}` >= 1, but got {value}.")
    if cfg.data.num_classes < 2:
        raise ValueError(
            f"Expected config key `data.num_classes` >= 2, but got {cfg.data.num_classes}."
        )
    positive_floats = {
        "head.tau": cfg.head.tau,
        "optim.lr": cfg.optim.lr,
        "head.code_time_limit": cfg.head.code_time_limit,
        "max_memory_mib": cfg.max_memory_mib,
    }
    for key, fvalue in positive_floats.items():
        if not fvalue > 0:
            raise ValueError(f"Expected config key `{key}` > 0, but got {fvalue}.")
    if not 0.0 <= cfg.head.beta < 1.0:
        raise ValueError(f"Expected config key `head.beta` in [0, 1), but got {cfg.head.beta}.")
    nonneg = {
        "optim.momentum": cfg.optim.momentum,
        "optim.weight_decay": cfg.optim.weight_decay,
        "optim.min_lr": cfg.optim.min_lr,
        "data.noise": cfg.data.noise,
        "data.max_train_fonts": cfg.data.max_train_fonts,
    }
    for key, nvalue in nonneg.items():
        if nvalue < 0:
            raise ValueError(f"Expected config key `{key}` >= 0, but got {nvalue}.")
    if cfg.device != "auto" and not (cfg.device == "cpu" or cfg.device.startswith("cuda")):
        raise ValueError(
            f"Expected config key `device` to be auto, cpu, cuda or cuda:N, but got {cfg.device!r}."
        )


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert a TOML/override value to the annotated field type, or raise naming ``key``."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ValueError(
                f"Expected config key `{key}` to be one of {', '.join(map(str, choices))}, "
                f"but got {value!r}."
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(
                f"Expected config key `{key}` to be a list of strings, but got {value!r}."
            )
        return tuple(value)
    if origin in (types.UnionType, typing.Union):  # pragma: no cover - no optional fields yet
        return value
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"Expected config key `{key}` to be true or false, but got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"Expected config key `{key}` to be an integer, but got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(Fraction(value))
            except (ValueError, ZeroDivisionError):
                raise ValueError(
                    f"Expected config key `{key}` to be a number, but got {value!r}."
                ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Expected config key `{key}` to be a number, but got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"Expected config key `{key}` to be a string, but got {value!r}.")
        return value
    raise TypeError(f"unsupported config type {tp!r} for `{key}`")  # pragma: no cover


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ValueError(
                f"Unknown config key `{dotted}`; expected one of {', '.join(sorted(fields))}."
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"Expected config key `{dotted}` to be a table, but got {value!r}."
                )
            kwargs[key] = _build(tp, value, f"{dotted}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(dotted, value, tp)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested mappings (as parsed from TOML or JSON).

    Args:
        data: Nested tables; missing keys take their defaults.

    Returns:
        The validated configuration.

    Raises:
        ValueError: On unknown keys or ill-typed values, naming the dotted key.

    Example:
        >>> cfg = config_from_dict({"head": {"kind": "cmf", "beta": 0.1}, "optim": {"epochs": 2}})
        >>> cfg.head.kind, cfg.head.beta, cfg.optim.epochs
        ('cmf', 0.1, 2)
    """
    return _build(TrainConfig, data, "")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Nested plain-dict form of ``config`` (tuples become lists).

    The inverse of :func:`config_from_dict`.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return list(value)
        return value

    out: dict[str, Any] = convert(dataclasses.asdict(config))
    return out


def _parse_value(text: str) -> Any:
    """Parse the right-hand side of an override as a TOML value, else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of nested ``data`` with ``key=value`` overrides applied.

    Values are parsed as TOML (``3``, ``0.5``, ``true``, ``"text"``, ``["a", "b"]``); anything
    else stays a string (so ``head.tau=1/7`` is read as the fraction by the float coercion).

    Example:
        >>> apply_overrides({"head": {"tau": 1.0}}, ["head.tau=1/7", "optim.epochs=3"])
        {'head': {'tau': '1/7'}, 'optim': {'epochs': 3}}
    """
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"Expected an override `key=value`, but got {item!r}.")
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"Unknown config key `{key}`: `{part}` is not a table.")
            node = child
        node[parts[-1]] = _parse_value(raw.strip())
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a TOML preset (or the defaults when ``path`` is None) and apply overrides.

    Args:
        path: A ``.toml`` file whose tables mirror :class:`TrainConfig`.
        overrides: ``key=value`` strings with dotted keys, applied after the file.

    Returns:
        The validated configuration.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: On TOML syntax errors, unknown keys or bad values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Config file {str(path)!r} not found.")
        data = read_toml(path)  # one-line FileFormatError on bad bytes or TOML syntax
    return config_from_dict(apply_overrides(data, overrides))
