"""gnc: generalized neural collapse for many classes (K > d).

Softmax codes, exact certified one-vs-rest distances, GNC/NC metrics, the unconstrained
feature model on the sphere, training with normalized / class-mean / fixed-code heads.
"""

from gnc.geometry import (
    MinDistanceResult,
    OneVsRestResult,
    min_one_vs_rest_distance,
    one_vs_rest_distances,
)
from gnc.sphere import normalize_rows, random_points

__version__ = "0.1.0"

__all__ = [
    "MinDistanceResult",
    "OneVsRestResult",
    "__version__",
    "min_one_vs_rest_distance",
    "normalize_rows",
    "one_vs_rest_distances",
    "random_points",
]
