"""Classifier heads: features ``(N, d)`` -> logits ``(N, K)``.

- :class:`LinearHead`: plain ``h W^T`` (standard cross-entropy).
- :class:`NormalizedHead`: cosine logits ``<w_k/|w_k|, h/|h|> / tau`` (Jiang et al. 2024).
- :class:`ClassMeanHead` (CMF): ``W`` is a buffer of normalized class-mean features,
  ``w_k <- normalize(beta w_k + (1 - beta) sum_{i in batch, y_i = k} h_i/|h_i|)`` for the classes
  present in a training batch; the optimizer never sees it. Under ``torch.distributed`` the
  per-class batch sums are all-reduced first, so every process keeps the same ``W``.
- :class:`FixedCodeHead`: a fixed softmax code (e.g. from :func:`gnc.codes.softmax_code`) stored
  as a buffer.

:func:`build_head` builds the head a :class:`~gnc.train.config.HeadConfig` describes;
:func:`reference_code` solves (and caches) the softmax code the fixed-code head and GNC2's
reference use.

Every head has ``classifier_weights() -> (K, d)`` (the matrix whose rows are the class
directions, as used by the GNC metrics) and ``forward(features, labels=None)``; labels are only
used by the CMF head, in training mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gnc._checks import check_int, check_matrix, check_positive
from gnc._runtime import make_generator
from gnc.codes import softmax_code
from gnc.io import atomic_save_npz
from gnc.train.config import HeadConfig

__all__ = [
    "ClassMeanHead",
    "FixedCodeHead",
    "Head",
    "LinearHead",
    "NormalizedHead",
    "build_head",
    "cmf_update",
    "reference_code",
]


def _unit(x: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    out: torch.Tensor = x / norm.clamp_min(torch.finfo(x.dtype).tiny ** 0.5)
    return out


class Head(nn.Module):
    """Base class: ``forward(features, labels=None) -> logits``, ``classifier_weights()``."""

    num_classes: int
    feature_dim: int

    def classifier_weights(self) -> torch.Tensor:
        """``(K, d)`` class directions (detached)."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, K)`` of features ``(N, d)``."""
        raise NotImplementedError


class LinearHead(Head):
    """Plain linear classifier without bias: ``logits = h W^T``.

    Example:
        >>> head = LinearHead(4, 3)
        >>> head(torch.ones(2, 3)).shape
        torch.Size([2, 4])
    """

    def __init__(self, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.feature_dim = check_int("feature_dim", feature_dim, minimum=1)
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.normal_(self.weight, std=feature_dim**-0.5)

    def classifier_weights(self) -> torch.Tensor:
        """The weight matrix ``(K, d)``."""
        return self.weight.detach()

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``features @ W^T`` in float32 (outside autocast)."""
        with torch.autocast(features.device.type, enabled=False):
            return features.float() @ self.weight.float().T


class NormalizedHead(Head):
    """Cosine classifier: ``logits_k = <w_k/|w_k|, h/|h|> / tau``.

    Args:
        num_classes: K.
        feature_dim: d.
        tau: Temperature (the paper uses 1, 1/5, 1/6, 1/7, 1/10).

    Example:
        >>> head = NormalizedHead(3, 2, tau=0.5)
        >>> with torch.no_grad():
        ...     _ = head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        >>> head(torch.tensor([[3.0, 0.0]])).tolist()
        [[2.0, 0.0, -2.0]]
    """

    def __init__(self, num_classes: int, feature_dim: int, tau: float = 1.0) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.feature_dim = check_int("feature_dim", feature_dim, minimum=1)
        self.tau = check_positive("tau", tau)
        # Rows of norm ~1: the step on a direction scales as lr / |w_k|^2.
        self.weight = nn.Parameter(torch.randn(num_classes, feature_dim) * feature_dim**-0.5)

    def classifier_weights(self) -> torch.Tensor:
        """Normalized rows ``w_k / |w_k|``, ``(K, d)``."""
        return _unit(self.weight.detach())

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine logits divided by ``tau``, in float32."""
        with torch.autocast(features.device.type, enabled=False):
            return _unit(features.float()) @ _unit(self.weight.float()).T / self.tau


def cmf_update(
    weights: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor, beta: float
) -> torch.Tensor:
    """One CMF step: rows with ``counts > 0`` become ``normalize(beta w_k + (1 - beta) s_k)``.

    Args:
        weights: ``(K, d)`` current unit rows.
        sums: ``(K, d)`` per-class sums of the batch's normalized features.
        counts: ``(K,)`` samples per class in the batch.
        beta: Momentum in ``[0, 1)``.

    Returns:
        The new ``(K, d)`` weights (rows of absent classes unchanged).

    Example:
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> cmf_update(w, torch.tensor([[0.0, 2.0], [0.0, 0.0]]), torch.tensor([1, 0]), 0.5)
        tensor([[0.4472, 0.8944],
                [0.0000, 1.0000]])
    """
    new = _unit(beta * weights + (1.0 - beta) * sums)
    return torch.where((counts > 0)[:, None], new, weights)


class ClassMeanHead(Head):
    """Class-mean-feature (CMF) classifier: a momentum buffer of normalized class means.

    In training mode with labels, after computing the logits with the current ``W``, the rows of
    the classes present in the batch are updated by :func:`cmf_update` with the batch's sums of
    normalized features (all-reduced across processes when ``torch.distributed`` is initialized).
    ``W`` is a buffer, so it is saved in checkpoints but never touched by the optimizer; the
    gradient flows to the features only.

    Args:
        num_classes: K.
        feature_dim: d.
        tau: Temperature of the cosine logits.
        beta: Momentum of the update.
        generator: Seeds the random unit initialization of ``W``.

    Example:
        >>> head = ClassMeanHead(2, 2, beta=0.5)
        >>> _ = head.weight.copy_(torch.eye(2))
        >>> _ = head(torch.tensor([[0.0, 5.0]]), torch.tensor([0]))
        >>> head.weight
        tensor([[0.7071, 0.7071],
                [0.0000, 1.0000]])
    """

    weight: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        tau: float = 1.0,
        beta: float = 0.9,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.feature_dim = check_int("feature_dim", feature_dim, minimum=1)
        self.tau = check_positive("tau", tau)
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"Expected `beta` in [0, 1), but got {beta}.")
        self.beta = float(beta)
        init = torch.randn(num_classes, feature_dim, generator=generator)
        self.register_buffer("weight", _unit(init))

    def classifier_weights(self) -> torch.Tensor:
        """The buffer ``W`` (unit rows), ``(K, d)``."""
        return self.weight.detach().clone()

    @torch.no_grad()
    def update_(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Apply one CMF step with this batch (all-reduced over processes when distributed)."""
        h = _unit(features.detach().float())
        sums = torch.zeros(self.num_classes, self.feature_dim, device=h.device, dtype=h.dtype)
        sums.index_add_(0, labels, h)
        counts = torch.zeros(self.num_classes, device=h.device, dtype=h.dtype)
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=h.dtype))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flat = torch.cat([sums.reshape(-1), counts])
            dist.all_reduce(flat)
            sums = flat[: sums.numel()].view_as(sums)
            counts = flat[sums.numel() :]
        self.weight.copy_(cmf_update(self.weight.float(), sums, counts, self.beta))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine logits against ``W`` / tau; updates ``W`` afterwards when training."""
        # A copy: the in-place update below must not touch the tensor saved for backward.
        W = self.weight.detach().float().clone()
        with torch.autocast(features.device.type, enabled=False):
            logits = _unit(features.float()) @ W.T / self.tau
        if self.training and labels is not None:
            self.update_(features, labels)
        return logits


class FixedCodeHead(Head):
    """Fixed classifier: a given configuration of K unit vectors (a softmax code) as a buffer.

    ``logits_k = <c_k, h/|h|> / tau``.

    Example:
        >>> head = FixedCodeHead(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]), tau=1.0)
        >>> [name for name, _ in head.named_parameters()], head.code[1].tolist()
        ([], [0.0, 1.0])
    """

    code: torch.Tensor

    def __init__(self, code: Any, tau: float = 1.0) -> None:
        super().__init__()
        C = check_matrix("code", code, min_rows=2, nonzero_rows=True)
        self.num_classes, self.feature_dim = int(C.shape[0]), int(C.shape[1])
        self.tau = check_positive("tau", tau)
        self.register_buffer("code", _unit(C.to(torch.float32)))

    def classifier_weights(self) -> torch.Tensor:
        """The code ``(K, d)`` (unit rows)."""
        return self.code.detach().clone()

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine logits against the code / tau."""
        with torch.autocast(features.device.type, enabled=False):
            return _unit(features.float()) @ self.code.float().T / self.tau


def reference_code(
    num_classes: int,
    feature_dim: int,
    *,
    seed: int = 0,
    time_limit: float = 60.0,
    cache_dir: str | Path | None = None,
) -> tuple[torch.Tensor, float]:
    """A softmax code for ``(K, d)`` from :func:`gnc.codes.softmax_code`, cached as ``.npz``.

    Returns:
        ``(code (K, d) float64, rho)``.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"softmax_code-K{num_classes}-d{feature_dim}-seed{seed}.npz"
        if path.is_file():
            with np.load(path) as z:
                return torch.from_numpy(z["code"]), float(z["rho"])
    res = softmax_code(num_classes, feature_dim, seed=seed, time_limit=time_limit)
    code = torch.as_tensor(res.code, dtype=torch.float64).cpu()
    rho = float(res.rho)
    if path is not None:
        atomic_save_npz(path, code=code.numpy(), rho=np.float64(rho))
    return code, rho


def build_head(
    config: HeadConfig,
    num_classes: int,
    feature_dim: int,
    *,
    code: torch.Tensor | None = None,
    seed: int = 0,
) -> Head:
    """The head ``config`` describes (``code`` is required for ``fixed_code``)."""
    if config.kind == "linear":
        return LinearHead(num_classes, feature_dim)
    if config.kind == "normalized":
        return NormalizedHead(num_classes, feature_dim, tau=config.tau)
    if config.kind == "cmf":
        gen = make_generator(seed + 7919)
        return ClassMeanHead(num_classes, feature_dim, config.tau, config.beta, generator=gen)
    if code is None:
        raise ValueError("Expected a softmax `code` for head.kind = 'fixed_code', but got None.")
    return FixedCodeHead(code, tau=config.tau)
