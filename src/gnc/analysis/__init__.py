"""Geometry of real ``K >> d`` heads and GNC of real features (the networks: :mod:`gnc.pretrained`).

- :mod:`~gnc.analysis.head_geometry`: exact GNC2 of a head, its ``D_k``, argmaxable classes.
- :mod:`~gnc.analysis.distance_brackets`: certified brackets of every class's ``D_k``.
- :mod:`~gnc.analysis.head_rho`: exact ``rho`` of a head from its shared pass's max cosines.
- :mod:`~gnc.analysis.duplicates`: rows that point the same way (dead classes).
- :mod:`~gnc.analysis.reference`: reference values of ``rho`` for a shape ``(K, d)``.
- :mod:`~gnc.analysis.feature_gnc`: GNC1/GNC3/NCC of features grouped by predicted class.
"""

from gnc.analysis.distance_brackets import DistanceBrackets, bracket_quantiles, distance_brackets
from gnc.analysis.duplicates import DuplicateGroups, duplicate_groups
from gnc.analysis.feature_gnc import (
    ClassRow,
    HeadFeatureMetrics,
    measure_head_features,
    predict_classes,
)
from gnc.analysis.head_geometry import (
    HeadGeometry,
    HeadGeometryConfig,
    analyze_head_geometry,
    estimate_all_classes_seconds,
    estimate_bracket_seconds,
)
from gnc.analysis.head_rho import RhoSummary, rho_search
from gnc.analysis.reference import (
    ReferenceValues,
    random_rho,
    random_rho_bracket,
    reduced_shape,
    reference_values,
)

__all__ = [
    "ClassRow",
    "DistanceBrackets",
    "DuplicateGroups",
    "HeadFeatureMetrics",
    "HeadGeometry",
    "HeadGeometryConfig",
    "ReferenceValues",
    "RhoSummary",
    "analyze_head_geometry",
    "bracket_quantiles",
    "distance_brackets",
    "duplicate_groups",
    "estimate_all_classes_seconds",
    "estimate_bracket_seconds",
    "measure_head_features",
    "predict_classes",
    "random_rho",
    "random_rho_bracket",
    "reduced_shape",
    "reference_values",
    "rho_search",
]
