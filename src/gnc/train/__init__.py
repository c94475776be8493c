"""Training deep classifiers with normalized, class-mean and fixed-code heads, measuring GNC."""

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
from gnc.train.lm import (
    ContextMLP,
    LMConfig,
    LMData,
    LMResult,
    Vocabulary,
    build_lm_model,
    build_vocabulary,
    prepare_lm_data,
    train_lm,
)
from gnc.train.loop import train
from gnc.train.models import MLP, Classifier, ResNet18, SmallCNN, build_backbone
from gnc.train.records import EpochRecord, EvalMetrics, TrainResult

__all__ = [
    "MLP",
    "ClassMeanHead",
    "Classifier",
    "ContextMLP",
    "EpochRecord",
    "EvalMetrics",
    "FixedCodeHead",
    "Head",
    "HeadConfig",
    "LMConfig",
    "LMData",
    "LMResult",
    "LinearHead",
    "ModelConfig",
    "NormalizedHead",
    "OptimConfig",
    "ResNet18",
    "SmallCNN",
    "TrainConfig",
    "TrainResult",
    "Vocabulary",
    "apply_overrides",
    "build_backbone",
    "build_head",
    "build_lm_model",
    "build_vocabulary",
    "cmf_update",
    "config_from_dict",
    "config_to_dict",
    "evaluate",
    "init_distributed_from_env",
    "load_config",
    "prepare_lm_data",
    "reference_code",
    "train",
    "train_lm",
]
