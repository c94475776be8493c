"""gnc: generalized neural collapse for many classes (K > d).

Softmax codes, exact certified one-vs-rest distances, GNC/NC metrics, the unconstrained
feature model on the sphere, training with normalized / class-mean / fixed-code heads.
"""

from gnc.codes import CodeResult, softmax_code, tammes_code
from gnc.geometry import (
    MinDistanceResult,
    OneVsRestResult,
    min_one_vs_rest_distance,
    one_vs_rest_distances,
    pairwise_statistics,
    rho_star_upper,
)
from gnc.metrics import GNCAccumulator, GNCMetrics, NCCAccumulator, gnc_metrics, measure_model
from gnc.sphere import normalize_rows, random_points
from gnc.ufm import UFMResult, solve_ufm, temperature_sweep

__version__ = "0.1.0"

__all__ = [
    "CodeResult",
    "GNCAccumulator",
    "GNCMetrics",
    "MinDistanceResult",
    "NCCAccumulator",
    "OneVsRestResult",
    "UFMResult",
    "__version__",
    "gnc_metrics",
    "measure_model",
    "min_one_vs_rest_distance",
    "normalize_rows",
    "one_vs_rest_distances",
    "pairwise_statistics",
    "random_points",
    "rho_star_upper",
    "softmax_code",
    "solve_ufm",
    "tammes_code",
    "temperature_sweep",
]
