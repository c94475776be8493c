"""Train/test arrays of one data set, cached as ``.npz``, and a synthetic Gaussian mixture.

Every loader of :mod:`gnc.data` returns an :class:`ArrayDataset` (uint8 images ``(N, C, H, W)``
or float32 vectors ``(N, D)``) and caches it under a folder with :func:`cache_path`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gnc.io import atomic_save_npz

__all__ = ["ArrayDataset", "cache_path", "make_synthetic"]


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Train and test arrays of one data set.

    Attributes:
        name: Data set name.
        train_x: ``(N, C, H, W)`` uint8 images, or ``(N, D)`` float32 vectors.
        train_y: ``(N,)`` int64 labels in ``[0, K)``.
        test_x: Test inputs, same layout as ``train_x``.
        test_y: ``(M,)`` int64 labels.
        class_names: K class names (characters, words, wnids).
        meta: JSON-serializable description (fonts used, sizes, seeds).
    """

    name: str
    train_x: npt.NDArray[Any]
    train_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[Any]
    test_y: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 32, 32)``."""
        return tuple(int(s) for s in self.train_x.shape[1:])

    def save(self, path: str | Path) -> None:
        """Write the arrays to ``path`` (``.npz``) atomically."""
        atomic_save_npz(
            path,
            train_x=self.train_x,
            train_y=self.train_y,
            test_x=self.test_x,
            test_y=self.test_y,
            class_names=np.array(json.dumps(list(self.class_names))),
            meta=np.array(json.dumps({"name": self.name, **self.meta})),
        )

    @classmethod
    def load(cls, path: str | Path) -> ArrayDataset:
        """Read a data set written by :meth:`save`."""
        with np.load(Path(path)) as z:
            meta = json.loads(str(z["meta"]))
            name = meta.pop("name")
            return cls(
                name=name,
                train_x=z["train_x"],
                train_y=z["train_y"].astype(np.int64),
                test_x=z["test_x"],
                test_y=z["test_y"].astype(np.int64),
                class_names=tuple(json.loads(str(z["class_names"]))),
                meta=meta,
            )


def cache_path(root: str | Path, stem: str, key: dict[str, Any]) -> Path:
    """``root/stem-<hash of key>.npz``: one cache file per distinct build recipe ``key``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / f"{stem}-{digest}.npz"


def make_synthetic(
    num_classes: int,
    input_dim: int,
    samples_per_class: int,
    test_samples_per_class: int,
    *,
    noise: float = 0.5,
    seed: int = 0,
) -> ArrayDataset:
    """Gaussian mixture: class centers ~ N(0, I/input_dim)*sqrt(input_dim) ... unit scale.

    Centers are standard normal vectors scaled to unit expected norm; samples add isotropic noise
    of standard deviation ``noise / sqrt(input_dim)`` per coordinate.

    Example:
        >>> ds = make_synthetic(5, 8, 4, 2, seed=1)
        >>> ds.train_x.shape, ds.test_x.shape, ds.num_classes
        ((20, 8), (10, 8), 5)
    """
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((num_classes, input_dim)) / math.sqrt(input_dim)
    scale = noise / math.sqrt(input_dim)

    def draw(n: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        y = np.repeat(np.arange(num_classes, dtype=np.int64), n)
        x = centers[y] + scale * rng.standard_normal((y.size, input_dim))
        return x.astype(np.float32), y

    train_x, train_y = draw(samples_per_class)
    test_x, test_y = draw(test_samples_per_class)
    return ArrayDataset(
        name="synthetic",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        class_names=tuple(str(k) for k in range(num_classes)),
        meta={"noise": noise, "seed": seed},
    )
