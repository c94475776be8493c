"""gnc: generalized neural collapse for many classes (``K > d``).

Exact, certified one-vs-rest distances ``D_k`` and ``rho = min_k D_k`` of any ``(K, d)``
classifier, softmax and Tammes codes, GNC / NC metrics of features, the unconstrained feature
model on the sphere, and pretrained heads from any source (Jiang et al., "Generalized Neural
Collapse for a Large Number of Classes", ICML 2024).

This module holds the small public API: the functions most users call and the records they take
and return. Everything else lives in the subpackages (``gnc.geometry``, ``gnc.metrics``,
``gnc.codes``, ``gnc.ufm``, ``gnc.train``, ``gnc.pretrained``, ``gnc.analysis``,
``gnc.integrations``), each with its own ``__all__``.

Example:
    >>> import torch
    >>> from gnc import one_vs_rest_distances
    >>> W = torch.eye(3, dtype=torch.float64)  # three orthonormal classes in d = 3
    >>> res = one_vs_rest_distances(W)  # D_k = |e_k - (e_i + e_j) / 2| = sqrt(3 / 2)
    >>> expected = torch.full((3,), 1.5**0.5, dtype=torch.float64)
    >>> bool(torch.allclose(res.distances, expected)), res.certified
    (True, True)
"""

from gnc._runtime import set_working_memory, working_memory
from gnc.codes import CatalogueEntry, CodeResult, best_known, softmax_code, tammes_code
from gnc.geometry import (
    MinDistanceResult,
    OneVsRestResult,
    PairwiseStatistics,
    min_one_vs_rest_distance,
    one_vs_rest_distances,
    pairwise_statistics,
    rho_star_upper,
)
from gnc.geometry.argmax import ArgmaxResult, argmaxable
from gnc.metrics import (
    ClassStatistics,
    GNCAccumulator,
    GNCMetrics,
    NCCAccumulator,
    class_statistics,
    gnc_metrics,
    measure_model,
)
from gnc.pretrained import Head, load_head
from gnc.sphere import normalize_rows, random_points
from gnc.ufm import SweepResult, UFMResult, solve_ufm, temperature_sweep

__version__ = "0.1.0"
"""The version of gnc (as in ``pyproject.toml``)."""

__all__ = [
    "ArgmaxResult",
    "CatalogueEntry",
    "ClassStatistics",
    "CodeResult",
    "GNCAccumulator",
    "GNCMetrics",
    "Head",
    "MinDistanceResult",
    "NCCAccumulator",
    "OneVsRestResult",
    "PairwiseStatistics",
    "SweepResult",
    "UFMResult",
    "__version__",
    "argmaxable",
    "best_known",
    "class_statistics",
    "gnc_metrics",
    "load_head",
    "measure_model",
    "min_one_vs_rest_distance",
    "normalize_rows",
    "one_vs_rest_distances",
    "pairwise_statistics",
    "random_points",
    "rho_star_upper",
    "set_working_memory",
    "softmax_code",
    "solve_ufm",
    "tammes_code",
    "temperature_sweep",
    "working_memory",
]
