"""Training deep classifiers (linear, normalized, class-mean, fixed-code heads) measuring GNC."""

from gnc.train.config import (
    HeadConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from gnc.train.evaluate import evaluate, init_distributed_from_env
from gnc.train.heads import (
    ClassMeanHead,
    FixedCodeHead,
    Head,
    LinearHead,
    NormalizedHead,
    build_head,
    cmf_update,
    reference_code,
)
from gnc.train.loop import deterministic_algorithms, train
from gnc.train.models import MLP, Classifier, ResNet18, SmallCNN, build_backbone
from gnc.train.records import EpochRecord, EvalMetrics, TrainResult

__all__ = [
    "MLP",
    "ClassMeanHead",
    "Classifier",
    "EpochRecord",
    "EvalMetrics",
    "FixedCodeHead",
    "Head",
    "HeadConfig",
    "LinearHead",
    "ModelConfig",
    "NormalizedHead",
    "OptimConfig",
    "ResNet18",
    "SmallCNN",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_backbone",
    "build_head",
    "cmf_update",
    "config_from_dict",
    "config_to_dict",
    "deterministic_algorithms",
    "evaluate",
    "init_distributed_from_env",
    "load_config",
    "reference_code",
    "train",
]
