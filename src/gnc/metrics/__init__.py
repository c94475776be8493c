"""GNC / NC metrics: pure functions, streaming accumulators and model feature capture."""

from gnc.metrics.accumulators import GNCAccumulator, subset_statistics
from gnc.metrics.capture import CapturedBatch, capture_features, find_classifier, measure_model
from gnc.metrics.functional import (
    GNCMetrics,
    gnc1,
    gnc1_from_features,
    gnc2,
    gnc3,
    gnc3_from_features,
    gnc_metrics,
    hyperspherical_uniformity,
    nc1_cdnv,
    nc2_equinorm,
    nc2_etf_error,
    nc3_self_duality,
)
from gnc.metrics.ncc import NCCAccumulator, NCCMetrics, nc4_agreement, ncc_accuracy, ncc_predict
from gnc.metrics.statistics import ClassStatistics, class_statistics, pinv_trace

__all__ = [
    "CapturedBatch",
    "ClassStatistics",
    "GNCAccumulator",
    "GNCMetrics",
    "NCCAccumulator",
    "NCCMetrics",
    "capture_features",
    "class_statistics",
    "find_classifier",
    "gnc1",
    "gnc1_from_features",
    "gnc2",
    "gnc3",
    "gnc3_from_features",
    "gnc_metrics",
    "hyperspherical_uniformity",
    "measure_model",
    "nc1_cdnv",
    "nc2_equinorm",
    "nc2_etf_error",
    "nc3_self_duality",
    "nc4_agreement",
    "ncc_accuracy",
    "ncc_predict",
    "pinv_trace",
    "subset_statistics",
]
