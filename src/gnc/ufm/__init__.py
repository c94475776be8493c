"""The unconstrained feature model (UFM) on the sphere: solver, measurements, temperature sweeps."""

from gnc.ufm.loss import (
    Objective,
    log_softplus,
    ufm_loss,
    ufm_objective,
    ufm_objective_and_gradient,
)
from gnc.ufm.measure import UFMMetrics, max_margin_alignment, ufm_metrics
from gnc.ufm.solver import (
    Method,
    StopReason,
    UFMRecord,
    UFMResult,
    class_labels,
    riemannian_gradient,
    solve_ufm,
)
from gnc.ufm.sweep import SweepPoint, SweepResult, reference_code_value, temperature_sweep

__all__ = [
    "Method",
    "Objective",
    "StopReason",
    "SweepPoint",
    "SweepResult",
    "UFMMetrics",
    "UFMRecord",
    "UFMResult",
    "class_labels",
    "log_softplus",
    "max_margin_alignment",
    "reference_code_value",
    "riemannian_gradient",
    "solve_ufm",
    "temperature_sweep",
    "ufm_loss",
    "ufm_metrics",
    "ufm_objective",
    "ufm_objective_and_gradient",
]
