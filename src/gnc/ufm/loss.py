"""Cross-entropy of the spherical unconstrained feature model (UFM): values and gradients.

Pure functions of tensors. The classifier ``W`` (``(K, d)``) and the features ``H`` (``(N, d)``)
are unit rows; sample ``i`` has label ``y_i`` and logits ``z_ij = <w_j, h_i> / tau``. The mean
cross-entropy (Jiang et al., *Generalized Neural Collapse for a Large Number of Classes*, ICML 2024,
eq. of the spherical UFM) is

    L(W, H) = (1/N) sum_i [logsumexp_j z_ij - z_{i y_i}]
            = (1/N) sum_i softplus(a_i),   a_i = logsumexp_{j != y_i} (z_ij - z_{i y_i}).

At small ``tau`` the margins ``<w_y - w_j, h>`` are of order one, so ``L`` is of order
``exp(-margin / tau)``: at ``tau = 1/20`` it is about ``1e-6`` and its gradients vanish with it,
which stalls any fixed-tolerance gradient method. The solver therefore minimizes the
**log-domain objective**

    f(W, H) = tau * log L(W, H),

which has exactly the same minimizers (``log`` is increasing), is of order one for every ``tau``
(as ``tau -> 0`` it tends to minus the smallest sample margin, the HardMax objective of the
paper), and has a gradient ``tau * grad L / L`` that does not vanish. Both ``log L`` and its
gradient are evaluated without ever forming ``L`` itself (``log softplus`` is computed stably for
very negative ``a_i``), so nothing underflows even when ``L < 1e-300``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "Objective",
    "log_softplus",
    "ufm_loss",
    "ufm_objective",
    "ufm_objective_and_gradient",
]

#: ``"log"``: ``tau * log L`` (default, well scaled at every tau); ``"plain"``: ``L`` itself.
Objective = Literal["log", "plain"]


def _softplus(a: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(a))`` to full precision (torch's ``softplus`` is linear above 20)."""
    return a.clamp_min(0.0) + torch.log1p(torch.exp(-a.abs()))


def log_softplus(a: torch.Tensor) -> torch.Tensor:
    """Compute ``log(softplus(a)) = log(log(1 + exp(a)))`` stably for every real ``a``.

    For ``a <= 0`` it uses ``log(log1p(u)) = a + log(log1p(u) / u)`` with ``u = exp(a)``, which
    stays exact (``-> a``) when ``u`` underflows; no branch produces NaN gradients.

    Args:
        a: Tensor of any shape.

    Returns:
        Tensor of the same shape.

    Example:
        >>> log_softplus(torch.tensor([-1000.0, 0.0, 30.0], dtype=torch.float64)).tolist()
        [-1000.0, -0.36651292058166435, 3.4011973816621586]
    """
    u = torch.exp(a.clamp_max(0.0))
    positive_u = u > 0
    safe_u = torch.where(positive_u, u, torch.ones_like(u))
    ratio = torch.where(positive_u, torch.log1p(safe_u) / safe_u, torch.ones_like(u))
    negative_branch = a + torch.log(ratio)
    positive_branch = torch.log(_softplus(a.clamp_min(0.0)))
    return torch.where(a <= 0, negative_branch, positive_branch)


def _margins(
    W: torch.Tensor, H: torch.Tensor, labels: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``M_ij = z_ij - z_{i y_i}`` with ``-inf`` at ``j = y_i``, and ``a_i = lse_j M_ij``."""
    Z = (H @ W.T) / tau
    true = Z.gather(1, labels[:, None])
    M = (Z - true).scatter(1, labels[:, None], -math.inf)
    return M, torch.logsumexp(M, dim=1)


def ufm_loss(W: torch.Tensor, H: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean cross-entropy ``L(W, H)`` with logits ``H W^T / tau`` (rows used as given).

    Args:
        W: Classifier of shape ``(K, d)``.
        H: Features of shape ``(N, d)``.
        labels: Long tensor of shape ``(N,)`` with values in ``[0, K)``.
        tau: Temperature ``> 0``.

    Returns:
        0-d tensor, the mean cross-entropy (computed as ``mean softplus(a_i)``, accurate also
        when it is tiny).

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
        >>> round(float(ufm_loss(W, W, torch.tensor([0, 1]), 1.0)), 12)  # log(1 + e^-2)
        0.126928011043
    """
    _, a = _margins(W, H, labels, tau)
    return _softplus(a).mean()


def ufm_objective(
    W: torch.Tensor,
    H: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    objective: Objective = "log",
) -> torch.Tensor:
    """The objective the solver minimizes: ``tau * log L`` (``"log"``) or ``L`` (``"plain"``).

    Example:
        >>> W = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
        >>> y = torch.tensor([0, 1])
        >>> bool(torch.isclose(ufm_objective(W, W, y, 0.5), 0.5 * ufm_loss(W, W, y, 0.5).log()))
        True
    """
    _, a = _margins(W, H, labels, tau)
    if objective == "plain":
        return _softplus(a).mean()
    return tau * (torch.logsumexp(log_softplus(a), dim=0) - math.log(a.shape[0]))


def ufm_objective_and_gradient(
    W: torch.Tensor,
    H: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    objective: Objective = "log",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objective value and its analytic Euclidean gradient with respect to ``W`` and ``H``.

    With ``G = df / d(H W^T)`` (shape ``(N, K)``) the gradients are ``G^T H`` and ``G W``. For the
    plain loss ``G_ij = (P_ij - [j = y_i]) / (N tau)`` with ``P = softmax(Z)``. For the log
    objective the ``1/tau`` cancels and ``G_ij = (P_ij - [j = y_i]) / (N L)``, evaluated in the log
    domain as ``G_ij = exp(M_ij - softplus(a_i) - lse_k log softplus(a_k))`` for ``j != y_i``
    (``G_{i y_i}`` is minus the row sum, so no ``1 - P`` cancellation occurs).

    Args:
        W: Classifier of shape ``(K, d)``.
        H: Features of shape ``(N, d)``.
        labels: Long tensor of shape ``(N,)``.
        tau: Temperature ``> 0``.
        objective: ``"log"`` or ``"plain"``.

    Returns:
        ``(value, grad_W, grad_H)``: a 0-d tensor and tensors of shapes ``(K, d)`` and ``(N, d)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> W = torch.randn(4, 3, generator=g, dtype=torch.float64)
        >>> H = torch.randn(6, 3, generator=g, dtype=torch.float64)
        >>> y = torch.tensor([0, 1, 2, 3, 0, 1])
        >>> f, gW, gH = ufm_objective_and_gradient(W, H, y, 0.3)
        >>> gW.shape, gH.shape
        (torch.Size([4, 3]), torch.Size([6, 3]))
    """
    M, a = _margins(W, H, labels, tau)
    sp = _softplus(a)
    N = a.shape[0]
    if objective == "plain":
        value = sp.mean()
        log_scale = -sp[:, None] - math.log(N * tau)
    else:
        log_sp = log_softplus(a)
        lse = torch.logsumexp(log_sp, dim=0)
        value = tau * (lse - math.log(N))
        log_scale = -sp[:, None] - lse
    G = torch.exp(M + log_scale)  # exactly 0 at the true class (M = -inf)
    G = G.scatter(1, labels[:, None], -G.sum(dim=1, keepdim=True))
    return value, G.T @ H, G @ W
