"""Backbones that map inputs to d-dimensional features h (the head comes on top).

Every backbone ends in a linear layer ``width -> feature_dim`` without bias or activation, as in
the paper (its ResNets end in ``512 -> d``). :class:`Classifier` puts a head on a backbone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gnc.train.config import ModelConfig
from gnc.train.heads import Head

__all__ = ["MLP", "Classifier", "ResNet18", "SmallCNN", "build_backbone", "unwrap_classifier"]


class MLP(nn.Module):
    """Two hidden layers (linear, LayerNorm, ReLU) for vector inputs ``(N, D) -> (N, d)``.

    LayerNorm (per sample, so data-parallel runs match single-process ones) keeps the hidden
    units alive under the large feature gradients of normalized heads at small ``tau``.

    Example:
        >>> net = MLP(8, 16, 3)
        >>> net(torch.zeros(5, 8)).shape
        torch.Size([5, 3])
    """

    def __init__(self, input_dim: int, width: int, feature_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(input_dim, width),
            nn.LayerNorm(width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.LayerNorm(width),
            nn.ReLU(),
        )
        self.features = nn.Linear(width, feature_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, feature_dim)``."""
        out: torch.Tensor = self.features(self.body(x))
        return out


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks (widths w, 2w, 4w, 8w) with 2x2 max-pooling, sized for CPUs.

    With ``width=32`` it has ~0.39M parameters and costs ~15 MMAC per 32x32 grayscale image.
    Global average pooling makes it accept any input side >= 16.

    Example:
        >>> net = SmallCNN(1, 10, width=8)
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, feature_dim: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_block(in_channels, w),
            nn.MaxPool2d(2),
            _conv_block(w, 2 * w),
            nn.MaxPool2d(2),
            _conv_block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv_block(4 * w, 8 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.features = nn.Linear(8 * w, feature_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, feature_dim)`` of images ``(N, C, H, W)``."""
        out: torch.Tensor = self.features(self.body(x))
        return out


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet18 (3x3 stem, no max-pool, stages 2-2-2-2) ending in ``8w -> d``.

    ``width=64`` is the standard network (11.2M parameters, final width 512).

    Example:
        >>> net = ResNet18(3, 10, width=4)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        feature_dim: int,
        width: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = w
        for stage, n in enumerate(blocks):
            cout = w * 2**stage
            for i in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.features = nn.Linear(cin, feature_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, feature_dim)`` of images ``(N, C, H, W)``."""
        out: torch.Tensor = self.features(self.pool(self.layers(self.stem(x))))
        return out


def build_backbone(config: ModelConfig, input_shape: Sequence[int]) -> nn.Module:
    """The backbone ``config`` names, for inputs of shape ``input_shape`` (without batch).

    Raises:
        ValueError: When the model does not fit the input (an MLP on images is allowed: it
            flattens; CNNs need ``(C, H, W)``).
    """
    shape = tuple(int(s) for s in input_shape)
    if config.name == "mlp":
        size = 1
        for s in shape:
            size *= s
        return MLP(size, config.width, config.feature_dim)
    if len(shape) != 3:
        raise ValueError(
            f"Expected image inputs (C, H, W) for model `{config.name}`, but got shape {shape}."
        )
    if config.name == "small_cnn":
        return SmallCNN(shape[0], config.feature_dim, config.width)
    return ResNet18(shape[0], config.feature_dim, config.width)


class Classifier(nn.Module):
    """Backbone + head; ``forward(x, labels=None) -> (features, logits)``."""

    def __init__(self, backbone: nn.Module, head: Head) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, d)`` and logits ``(N, K)``."""
        features = self.backbone(x)
        return features, self.head(features, labels)


def unwrap_classifier(model: nn.Module) -> Classifier:
    """The :class:`Classifier` inside ``model`` (itself, or the module a DDP wrapper holds)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, Classifier)
    return inner
