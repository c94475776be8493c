"""Fashion-MNIST (from its Debian package), CIFAR-100 and Tiny-ImageNet (from local folders).

A missing source raises :class:`FileNotFoundError` whose message says how to get it.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm import tqdm

from gnc.data.arrays import ArrayDataset

__all__ = [
    "FASHION_MNIST_DIR",
    "load_cifar100",
    "load_fashion_mnist",
    "load_tiny_imagenet",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL_HINT = "sudo apt-get install -y --no-install-recommends dataset-fashion-mnist"


def _read_idx(path: Path) -> npt.NDArray[np.uint8]:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip


def load_fashion_mnist(source: str | Path = FASHION_MNIST_DIR) -> ArrayDataset:
    """Fashion-MNIST (60k/10k, 28x28, 10 classes) from the Debian package's ``.gz`` files.

    Raises:
        FileNotFoundError: With the ``apt-get`` command when the files are missing.
    """
    src = Path(source)
    files = {
        "train_x": "train-images-idx3-ubyte.gz",
        "train_y": "train-labels-idx1-ubyte.gz",
        "test_x": "t10k-images-idx3-ubyte.gz",
        "test_y": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [name for name in files.values() if not (src / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {src} (missing {missing[0]}); install it with: "
            f"{FASHION_INSTALL_HINT}"
        )
    arr = {k: _read_idx(src / v) for k, v in files.items()}
    return ArrayDataset(
        name="fashion_mnist",
        train_x=arr["train_x"][:, None].copy(),
        train_y=arr["train_y"].astype(np.int64),
        test_x=arr["test_x"][:, None].copy(),
        test_y=arr["test_y"].astype(np.int64),
        class_names=FASHION_CLASSES,
        meta={"source": str(src)},
    )


def load_cifar100(source: str | Path) -> ArrayDataset:
    """CIFAR-100 from ``source/cifar-100-python/{train,test,meta}`` (the python pickle format).

    Raises:
        FileNotFoundError: When the folder is missing, with where to get it.
    """
    folder = Path(source) / "cifar-100-python"
    if not (folder / "train").is_file() or not (folder / "test").is_file():
        raise FileNotFoundError(
            f"CIFAR-100 not found: expected {folder}/train and {folder}/test; download "
            "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and run "
            f"`tar -xzf cifar-100-python.tar.gz -C {Path(source)}` (set data.source)."
        )

    def read(name: str) -> dict[bytes, Any]:
        with open(folder / name, "rb") as fh:
            out: dict[bytes, Any] = pickle.load(fh, encoding="bytes")
        return out

    train, test = read("train"), read("test")
    names: tuple[str, ...]
    if (folder / "meta").is_file():
        names = tuple(n.decode() for n in read("meta")[b"fine_label_names"])
    else:
        names = tuple(str(k) for k in range(100))

    def images(d: dict[bytes, Any]) -> npt.NDArray[np.uint8]:
        return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)

    return ArrayDataset(
        name="cifar100",
        train_x=images(train),
        train_y=np.asarray(train[b"fine_labels"], dtype=np.int64),
        test_x=images(test),
        test_y=np.asarray(test[b"fine_labels"], dtype=np.int64),
        class_names=names,
        meta={"source": str(folder)},
    )


def load_tiny_imagenet(source: str | Path, *, progress: bool = False) -> ArrayDataset:
    """Tiny-ImageNet-200 from ``source/tiny-imagenet-200`` (train/<wnid>/images, val annotations).

    The official validation split (with labels) is the test split.

    Raises:
        FileNotFoundError: When the folder is missing, with where to get it.
    """
    folder = Path(source) / "tiny-imagenet-200"
    ann = folder / "val" / "val_annotations.txt"
    if not (folder / "train").is_dir() or not ann.is_file():
        raise FileNotFoundError(
            f"Tiny-ImageNet not found: expected {folder}/train and {ann}; download "
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip and run "
            f"`unzip tiny-imagenet-200.zip -d {Path(source)}` (set data.source)."
        )
    wnids_file = folder / "wnids.txt"
    if wnids_file.is_file():
        wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    else:
        wnids = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    index = {w: k for k, w in enumerate(wnids)}

    def read(paths: list[Path], desc: str) -> npt.NDArray[np.uint8]:
        out = []
        for p in tqdm(paths, desc=desc, disable=not progress, leave=False):
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
        return np.stack(out) if out else np.zeros((0, 3, 64, 64), dtype=np.uint8)

    train_paths: list[Path] = []
    train_y: list[int] = []
    for w in wnids:
        for p in sorted((folder / "train" / w / "images").glob("*.JPEG")):
            train_paths.append(p)
            train_y.append(index[w])
    test_paths: list[Path] = []
    test_y: list[int] = []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            test_paths.append(folder / "val" / "images" / parts[0])
            test_y.append(index[parts[1]])
    return ArrayDataset(
        name="tiny_imagenet",
        train_x=read(train_paths, "tiny-imagenet: train"),
        train_y=np.asarray(train_y, dtype=np.int64),
        test_x=read(test_paths, "tiny-imagenet: val"),
        test_y=np.asarray(test_y, dtype=np.int64),
        class_names=tuple(wnids),
        meta={"source": str(folder)},
    )
