"""GNC measurements of a UFM solution: GNC1, GNC2 = rho(W), GNC3 and max-margin alignment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gnc._checks import check_labels, check_matrix
from gnc.geometry import min_one_vs_rest_distance, one_vs_rest_distances
from gnc.io import Record
from gnc.metrics import gnc1_from_features, gnc3_from_features

__all__ = ["UFMMetrics", "max_margin_alignment", "ufm_metrics"]


@dataclass(frozen=True)
class UFMMetrics(Record):
    """GNC metrics of a classifier ``W`` and features ``H``.

    Attributes:
        gnc1: Within-class variability ``tr(Sigma_W Sigma_B^+) / K`` (:mod:`gnc.metrics`).
        gnc2: ``rho(W)``, the exact smallest one-vs-rest distance (:mod:`gnc.geometry`).
        gnc3: Self-duality ``(1/K) sum_k (1 - cos(w_k, hbar_k - h_G))``.
        alignment: Mean over classes of ``cos(hbar_k, h_k)``, ``h_k`` the max-margin direction
            of class ``k`` (:attr:`gnc.geometry.OneVsRestResult.directions`); ``None`` when not
            computed.
        certified: Whether the exact distance solver certified ``gnc2``.
    """

    gnc1: float
    gnc2: float
    gnc3: float
    alignment: float | None
    certified: bool


def max_margin_alignment(features: Any, labels: Any, directions: Any) -> torch.Tensor:
    """Per-class cosine between the class mean of the normalized features and ``h_k``.

    As ``tau -> 0`` the UFM features of class ``k`` should sit at the max-margin direction
    ``h_k = (w_k - p_k) / |w_k - p_k|`` (``p_k`` the nearest point of the hull of the other
    rows), the maximizer of ``min_{j != k} <w_k - w_j, h>`` over the unit ball.

    Args:
        features: ``(N, d)`` features (normalized here).
        labels: ``(N,)`` labels in ``[0, K)``, every class present.
        directions: ``(K, d)`` unit max-margin directions.

    Returns:
        Float64 tensor of shape ``(K,)`` with ``cos(hbar_k, h_k)``.

    Example:
        >>> H = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> max_margin_alignment(H, torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        tensor([1., 0.], dtype=torch.float64)
    """
    D = check_matrix("directions", directions, min_rows=1, nonzero_rows=True).double()
    K, d = D.shape
    H = check_matrix("features", features, cols=d, nonzero_rows=True).double()
    y = check_labels("labels", labels, num_samples=int(H.shape[0]), num_classes=K).to(H.device)
    H = H / torch.linalg.vector_norm(H, dim=1, keepdim=True)
    sums = torch.zeros(K, d, dtype=torch.float64, device=H.device).index_add_(0, y, H)
    counts = torch.bincount(y, minlength=K)
    if bool((counts == 0).any()):
        k = int((counts == 0).nonzero()[0, 0])
        raise ValueError(f"Expected every class to have features, but class {k} has none.")
    D = D.to(H.device)
    return torch.nn.functional.cosine_similarity(sums, D, dim=1)


def ufm_metrics(weights: Any, features: Any, labels: Any, *, directions: bool = True) -> UFMMetrics:
    """GNC1, GNC2 (exact rho), GNC3 and, optionally, the max-margin alignment.

    Args:
        weights: ``(K, d)`` classifier rows.
        features: ``(N, d)`` features.
        labels: ``(N,)`` labels, every class present.
        directions: Also compute the alignment with the max-margin directions (solves all
            ``K`` one-vs-rest problems; otherwise only the cheaper minimum is computed).

    Returns:
        A :class:`UFMMetrics`.

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-0.5, 3**0.5 / 2], [-0.5, -(3**0.5) / 2]])
        >>> m = ufm_metrics(W, W, torch.arange(3))
        >>> round(m.gnc2, 6), round(m.gnc3, 6), round(m.alignment, 6)
        (1.5, 0.0, 1.0)
    """
    W = check_matrix("weights", weights, min_rows=2, nonzero_rows=True)
    K = int(W.shape[0])
    g1 = float(gnc1_from_features(features, labels, K, normalize=True))
    g3 = float(gnc3_from_features(features, labels, W, normalize=True))
    if directions:
        ovr = one_vs_rest_distances(W, normalize=True)
        align = float(max_margin_alignment(features, labels, ovr.directions).mean())
        return UFMMetrics(g1, float(ovr.rho), g3, align, bool(ovr.certified))
    res = min_one_vs_rest_distance(W, normalize=True)
    return UFMMetrics(g1, float(res.rho), g3, None, bool(res.certified))
