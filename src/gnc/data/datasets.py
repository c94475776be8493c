"""Which data set a run uses (:class:`DataConfig`) and :func:`load_dataset`, which builds it.

Sources: a synthetic Gaussian mixture, printed CJK characters rendered from the installed fonts
(:mod:`gnc.data.glyphs`), Fashion-MNIST, CIFAR-100 and Tiny-ImageNet (:mod:`gnc.data.images`).
Prepared arrays are cached as ``.npz`` under ``DataConfig.root``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from gnc.data.arrays import ArrayDataset, cache_path, make_synthetic
from gnc.data.glyphs import load_cjk
from gnc.data.images import (
    FASHION_MNIST_DIR,
    load_cifar100,
    load_fashion_mnist,
    load_tiny_imagenet,
)

__all__ = ["DataConfig", "load_dataset"]

DatasetName = Literal["synthetic", "cjk", "fashion_mnist", "cifar100", "tiny_imagenet"]
AugmentName = Literal["none", "crop", "crop_flip"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data set, where it is cached, and how it is built.

    Attributes:
        name: ``synthetic`` (Gaussian mixture), ``cjk`` (printed characters rendered from the
            Debian CJK fonts), ``fashion_mnist`` (Debian ``dataset-fashion-mnist``),
            ``cifar100`` or ``tiny_imagenet`` (standard folders under ``source``).
        root: Cache folder for prepared arrays (``.npz``), relative to the working directory.
        source: Folder holding ``cifar-100-python/`` or ``tiny-imagenet-200/``.
        num_classes: K for ``synthetic`` and ``cjk`` (characters); ignored otherwise.
        image_size: Side in pixels of rendered CJK glyphs.
        train_augmentations: Renders per (training font, character); the first is clean.
        test_augmentations: Renders per (held-out font, character); the first is clean.
        test_fonts: Font names (file stems, e.g. ``gkai00mp``) held out for the test split;
            empty means the default held-out set.
        max_train_fonts: Use at most this many training fonts (0 = all available).
        char_order: ``random`` (seeded choice among characters every font has) or ``first``
            (GB2312 order).
        samples_per_class: Synthetic training samples per class.
        test_samples_per_class: Synthetic test samples per class.
        input_dim: Synthetic input dimension.
        noise: Synthetic within-class standard deviation (class centers have unit scale).
        augment: On-the-fly training augmentation: ``none``, ``crop`` (pad 4, random crop),
            ``crop_flip`` (and horizontal flips; CIFAR/Tiny-ImageNet only).
        seed: Seed for building the data (fonts' jitter, synthetic draws, character choice).
    """

    name: DatasetName = "synthetic"
    root: str = "data"
    source: str = ""
    num_classes: int = 10
    image_size: int = 32
    train_augmentations: int = 4
    test_augmentations: int = 2
    test_fonts: tuple[str, ...] = ()
    max_train_fonts: int = 0
    char_order: Literal["random", "first"] = "random"
    samples_per_class: int = 20
    test_samples_per_class: int = 10
    input_dim: int = 16
    noise: float = 0.5
    augment: AugmentName = "none"
    seed: int = 0


def load_dataset(config: DataConfig, *, progress: bool = False) -> ArrayDataset:
    """Build (or read from the cache) the data set that ``config`` describes.

    Example:
        >>> from gnc.data import DataConfig
        >>> ds = load_dataset(DataConfig(name="synthetic", num_classes=3, samples_per_class=2))
        >>> ds.train_x.shape
        (6, 16)
    """
    if config.name == "synthetic":
        return make_synthetic(
            config.num_classes,
            config.input_dim,
            config.samples_per_class,
            config.test_samples_per_class,
            noise=config.noise,
            seed=config.seed,
        )
    if config.name == "cjk":
        return load_cjk(
            config.num_classes,
            root=config.root,
            image_size=config.image_size,
            train_augmentations=config.train_augmentations,
            test_augmentations=config.test_augmentations,
            test_fonts=config.test_fonts,
            max_train_fonts=config.max_train_fonts,
            char_order=config.char_order,
            seed=config.seed,
            progress=progress,
        )
    loaders = {
        "fashion_mnist": lambda: load_fashion_mnist(config.source or FASHION_MNIST_DIR),
        "cifar100": lambda: load_cifar100(_require_source(config)),
        "tiny_imagenet": lambda: load_tiny_imagenet(_require_source(config), progress=progress),
    }
    source = str(Path(config.source or FASHION_MNIST_DIR).resolve())
    path = cache_path(config.root, config.name, {"source": source, "version": 1})
    if path.is_file():
        return ArrayDataset.load(path)
    ds = loaders[config.name]()
    ds.save(path)
    return ds


def _require_source(config: DataConfig) -> str:
    if not config.source:
        raise ValueError(
            f"Expected `data.source` to name the folder holding the {config.name} files, "
            "but it is empty."
        )
    return config.source
