"""Data sets: printed CJK glyphs, Fashion-MNIST and other image arrays, text corpora."""

from gnc.data.arrays import ArrayDataset, make_synthetic
from gnc.data.corpora import CORPORA, load_text
from gnc.data.datasets import DataConfig, load_dataset
from gnc.data.glyphs import CJKFont, available_cjk_fonts, gb2312_level1, load_cjk, render_glyph
from gnc.data.images import load_cifar100, load_fashion_mnist, load_tiny_imagenet

__all__ = [
    "CORPORA",
    "ArrayDataset",
    "CJKFont",
    "DataConfig",
    "available_cjk_fonts",
    "gb2312_level1",
    "load_cifar100",
    "load_cjk",
    "load_dataset",
    "load_fashion_mnist",
    "load_text",
    "load_tiny_imagenet",
    "make_synthetic",
    "render_glyph",
]
