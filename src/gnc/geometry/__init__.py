"""Geometry of class configurations: exact distances, pairwise stats, known codes, bounds."""

from gnc.geometry.bounds import (
    BoundReport,
    bound_report,
    min_distance_upper,
    rho_star_best_known,
    rho_star_proven,
    rho_star_upper,
)
from gnc.geometry.configurations import (
    KNOWN_CONFIGURATIONS,
    KnownConfiguration,
    cross_polytope,
    known_configuration,
    known_configuration_names,
    regular_polygon,
    simplex_etf,
)
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
    "KNOWN_CONFIGURATIONS",
    "BoundReport",
    "KnownConfiguration",
    "MinDistanceResult",
    "OneVsRestResult",
    "PairwiseStatistics",
    "bound_report",
    "cross_polytope",
    "known_configuration",
    "known_configuration_names",
    "max_cosines",
    "min_distance_upper",
    "min_one_vs_rest_distance",
    "min_pairwise_distance",
    "nearest_neighbors",
    "one_vs_rest_distances",
    "pairwise_statistics",
    "regular_polygon",
    "rho_star_best_known",
    "rho_star_proven",
    "rho_star_upper",
    "simplex_etf",
]
