"""Geometry of class configurations: exact one-vs-rest distances, pairwise statistics."""

from gnc.geometry.one_vs_rest import (
    MinDistanceResult,
    OneVsRestResult,
    min_one_vs_rest_distance,
    one_vs_rest_distances,
)
from gnc.geometry.pairwise import (
    PairwiseStatistics,
    max_cosines,
    min_pairwise_distance,
    nearest_neighbors,
    pairwise_statistics,
)

__all__ = [
    "MinDistanceResult",
    "OneVsRestResult",
    "PairwiseStatistics",
    "max_cosines",
    "min_one_vs_rest_distance",
    "min_pairwise_distance",
    "nearest_neighbors",
    "one_vs_rest_distances",
    "pairwise_statistics",
]
