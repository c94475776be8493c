"""The paper's numbers that the study compares against, each with where in the paper it is.

All from Jiang et al., "Generalized Neural Collapse for a Large Number of Classes", ICML 2024.
A section compares its own result with one of these and says ``agrees``, ``differs`` or
``not comparable`` (:func:`gnc.study.records.verdict`), computed from both numbers.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "CIFAR100_ACCURACY",
    "CIFAR100_GNC2",
    "HEADS_ACCURACY",
    "ICOSAHEDRON_RHO",
    "IMAGENET_HEADS",
    "OPTIMAL_LINES",
    "imagenet_fraction",
    "paper_value_at_tau",
]

#: The "optimal" code values ``rho*(K, d)`` drawn as horizontal lines in the paper's figures
#: (Figure 2 for d = 10, 20, 30 with K = 100, 200; Figure 5 for d = 512 with K = 1000, 10000),
#: keyed by ``(d, K)``. The paper solved them numerically; they are not certified.
OPTIMAL_LINES: Final[dict[tuple[int, int], float]] = {
    (10, 100): 0.614,
    (20, 100): 0.812,
    (30, 100): 0.889,
    (10, 200): 0.505,
    (20, 200): 0.721,
    (30, 200): 0.805,
    (512, 1000): 0.915,
    (512, 10000): 0.797,
}

#: Final GNC2 of a ResNet18 on CIFAR-100 with d = 10, by temperature tau (Figure 2, middle).
CIFAR100_GNC2: Final[dict[float, float]] = {1.0: 0.007, 1 / 5: 0.553, 1 / 6: 0.582, 1 / 7: 0.591}

#: Test accuracy (%) of the same runs by tau (Figure 2 / Table 1).
CIFAR100_ACCURACY: Final[dict[float, float]] = {1.0: 42.0, 1 / 5: 74.0, 1 / 6: 73.9, 1 / 7: 74.1}

#: Test accuracy (%) of a ResNet18 on CIFAR-100, d = 10, tau = 1/10, by head: learnable, or
#: class-mean features with update rate beta (Table 2).
HEADS_ACCURACY: Final[dict[str, float]] = {"learnable": 70.8, "cmf 0.1": 72.7, "cmf 0.9": 72.2}

#: GNC2 of pretrained ImageNet heads (K = 1000, d = 512) and the paper's line for that shape
#: (Section 5, Figure 5).
IMAGENET_HEADS: Final[dict[str, float]] = {"ResNet18": 0.443, "ResNet34": 0.490, "line": 0.915}

#: ``rho`` of the icosahedron, the optimal softmax code for (d, K) = (3, 12): 1 - 1/sqrt(5)
#: (Section 4, the softmax code equals the Tammes code there).
ICOSAHEDRON_RHO: Final[float] = 1 - 1 / math.sqrt(5)


def imagenet_fraction() -> float:
    """The paper's ImageNet ResNet18 head as a fraction of its line.

    Example:
        >>> round(imagenet_fraction(), 3)
        0.484
    """
    return IMAGENET_HEADS["ResNet18"] / IMAGENET_HEADS["line"]


def paper_value_at_tau(values: dict[float, float], tau: float) -> float | None:
    """The paper's value at temperature ``tau`` (``None`` when the paper has none).

    Example:
        >>> paper_value_at_tau(CIFAR100_GNC2, 1 / 7), paper_value_at_tau(CIFAR100_GNC2, 0.3)
        (0.591, None)
    """
    return next((v for t, v in values.items() if abs(t - tau) < 1e-9), None)
