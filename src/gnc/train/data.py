"""Many-class image data prepared once and cached as arrays.

Sources:

- printed CJK characters rendered with Pillow from the Debian CJK fonts (classes = characters of
  the GB2312 level-1 set, samples = fonts x jittered renders, test split = held-out fonts);
- Fashion-MNIST from the Debian package ``dataset-fashion-mnist``;
- CIFAR-100 (``cifar-100-python/``) and Tiny-ImageNet (``tiny-imagenet-200/``) from a local folder;
- a synthetic Gaussian mixture for tests.

Every loader returns an :class:`ArrayDataset` (uint8 images ``(N, C, H, W)`` or float32 vectors)
and caches it as ``.npz`` under the configured root. A missing source raises
:class:`FileNotFoundError` whose message holds the exact command that installs it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from gnc.io import atomic_save_npz
from gnc.train.config import DataConfig

__all__ = [
    "CJK_FONT_CANDIDATES",
    "DEFAULT_TEST_FONTS",
    "FONT_ROOT",
    "ArrayDataset",
    "CJKFont",
    "available_cjk_fonts",
    "gb2312_level1",
    "load_cifar100",
    "load_cjk",
    "load_dataset",
    "load_fashion_mnist",
    "load_tiny_imagenet",
    "make_synthetic",
    "render_glyph",
]

FONT_ROOT = Path("/usr/share/fonts")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CJK_INSTALL_HINT = (
    "sudo apt-get install -y --no-install-recommends fonts-wqy-zenhei fonts-wqy-microhei "
    "fonts-arphic-ukai fonts-arphic-uming fonts-arphic-gkai00mp fonts-arphic-gbsn00lp "
    "fonts-noto-cjk fonts-lxgw-wenkai fonts-droid-fallback"
)
FASHION_INSTALL_HINT = "sudo apt-get install -y --no-install-recommends dataset-fashion-mnist"

#: Candidate CJK faces as (path under FONT_ROOT, preferred face tag in a .ttc, Debian package).
#: Regional variants of the same design are not listed twice (they would leak across splits).
CJK_FONT_CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("truetype/wqy/wqy-zenhei.ttc", "", "fonts-wqy-zenhei"),
    ("truetype/wqy/wqy-microhei.ttc", "", "fonts-wqy-microhei"),
    ("truetype/arphic/ukai.ttc", "", "fonts-arphic-ukai"),
    ("truetype/arphic/uming.ttc", "", "fonts-arphic-uming"),
    ("truetype/arphic-gkai00mp/gkai00mp.ttf", "", "fonts-arphic-gkai00mp"),
    ("truetype/arphic-gbsn00lp/gbsn00lp.ttf", "", "fonts-arphic-gbsn00lp"),
    ("opentype/noto/NotoSansCJK-Regular.ttc", "SC", "fonts-noto-cjk"),
    ("opentype/noto/NotoSansCJK-Bold.ttc", "SC", "fonts-noto-cjk"),
    ("opentype/noto/NotoSerifCJK-Regular.ttc", "SC", "fonts-noto-cjk"),
    ("opentype/noto/NotoSerifCJK-Bold.ttc", "SC", "fonts-noto-cjk"),
    ("truetype/lxgw-wenkai/LXGWWenKai-Light.ttf", "", "fonts-lxgw-wenkai"),
    ("truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", "", "fonts-lxgw-wenkai"),
    ("truetype/lxgw-wenkai/LXGWWenKai-Bold.ttf", "", "fonts-lxgw-wenkai"),
    ("truetype/droid/DroidSansFallbackFull.ttf", "", "fonts-droid-fallback"),
    ("truetype/hanazono/HanaMinA.ttf", "", "fonts-hanazono"),
    ("truetype/klee/KleeOne-Regular.ttf", "", "fonts-klee"),
    ("truetype/klee/KleeOne-SemiBold.ttf", "", "fonts-klee"),
    ("opentype/ipafont-gothic/ipag.ttf", "", "fonts-ipafont-gothic"),
    ("opentype/ipafont-mincho/ipam.ttf", "", "fonts-ipafont-mincho"),
    ("truetype/cwtex/cwkai.ttf", "", "fonts-cwtex-kai"),
    ("truetype/cwtex/cwming.ttf", "", "fonts-cwtex-ming"),
)
#: Fonts held out for the test split by default (typefaces never seen in training).
DEFAULT_TEST_FONTS: tuple[str, ...] = ("gkai00mp", "NotoSerifCJK-Regular", "LXGWWenKai-Regular")
#: Fonts must have at least this fraction of the GB2312 level-1 set to be used.
MIN_FONT_COVERAGE = 0.9


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


def _cache_path(root: str | Path, stem: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / f"{stem}-{digest}.npz"


# --------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# CJK characters
# --------------------------------------------------------------------------------------------


def gb2312_level1() -> tuple[str, ...]:
    """The 3,755 level-1 hanzi of GB2312, in their standard (pinyin) order.

    Decodes the byte pairs rows 0xB0-0xD7 x columns 0xA1-0xFE; the last five slots of row 0xD7
    are unassigned.

    Example:
        >>> chars = gb2312_level1()
        >>> len(chars), chars[0], chars[-1]
        (3755, '啊', '座')
    """
    chars: list[str] = []
    for row in range(0xB0, 0xD8):
        last = 0xF9 if row == 0xD7 else 0xFE
        for col in range(0xA1, last + 1):
            chars.append(bytes([row, col]).decode("gb2312"))
    return tuple(chars)


@dataclasses.dataclass(frozen=True)
class CJKFont:
    """One font face: file, face index inside a collection, a short name, its package."""

    path: str
    index: int
    name: str
    package: str


def available_cjk_fonts(font_root: str | Path = FONT_ROOT) -> list[CJKFont]:
    """The candidate CJK faces installed under ``font_root`` (see :data:`CJK_FONT_CANDIDATES`).

    For a ``.ttc`` collection the face whose family name contains the preferred tag (e.g.
    ``SC`` for Noto) is used, else face 0.
    """
    from PIL import ImageFont

    fonts: list[CJKFont] = []
    for rel, tag, package in CJK_FONT_CANDIDATES:
        path = Path(font_root) / rel
        if not path.is_file():
            continue
        index = 0
        if path.suffix.lower() == ".ttc" and tag:
            for i in range(32):
                try:
                    face = ImageFont.truetype(str(path), size=12, index=i)
                except OSError:
                    break
                family = face.getname()[0] or ""
                if tag in family.split():
                    index = i
                    break
        fonts.append(CJKFont(path=str(path), index=index, name=path.stem, package=package))
    return fonts


def render_glyph(
    font: Any,
    char: str,
    size: int,
    rng: np.random.Generator | None = None,
    *,
    supersample: int = 2,
) -> npt.NDArray[np.uint8]:
    """Render ``char`` white on black, centered, as a ``(size, size)`` uint8 array.

    Args:
        font: A Pillow ``FreeTypeFont`` loaded at ``size * supersample * 0.8`` pixels (see
            :func:`_load_font`).
        char: One character.
        size: Output side in pixels.
        rng: When given, apply a random jitter: rotation (+-8 deg), anisotropic scale
            (0.85-1.1), shear (+-0.15), shift (+-8% of the side), stroke width (thicker or
            thinner strokes).
        supersample: Render at this multiple of ``size`` then box-downsample.

    Returns:
        The glyph image, ``(size, size)`` uint8.
    """
    from PIL import Image, ImageDraw, ImageFilter

    big = size * supersample
    stroke = 0
    erode = False
    if rng is not None:
        jitter = int(rng.integers(0, 4))  # 0: none, 1: thicker, 2: thinner, 3: none
        stroke = 1 if jitter == 1 else 0
        erode = jitter == 2
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), char, font=font, stroke_width=stroke)
    x = (big - (right - left)) / 2 - left
    y = (big - (bottom - top)) / 2 - top
    draw.text((x, y), char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    if rng is not None:
        angle = math.radians(float(rng.uniform(-8, 8)))
        sx, sy = (float(v) for v in rng.uniform(0.85, 1.1, size=2))
        shear = float(rng.uniform(-0.15, 0.15))
        tx, ty = (float(v) for v in rng.uniform(-0.08, 0.08, size=2) * big)
        cos, sin = math.cos(angle), math.sin(angle)
        # Forward map A = R @ [[sx, shear], [0, sy]]; Pillow wants the inverse (output -> input).
        a = np.array(
            [[cos * sx, cos * shear * sy - sin * sy], [sin * sx, sin * shear * sy + cos * sy]]
        )
        inv = np.linalg.inv(a)
        c = np.array([big / 2, big / 2])
        offset = c - inv @ (c + np.array([tx, ty]))
        coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
        img = img.transform((big, big), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    if erode:  # thinner strokes: half-way to a 3x3 erosion (a full one erases thin fonts)
        img = Image.blend(img, img.filter(ImageFilter.MinFilter(3)), 0.5)
    img = img.resize((size, size), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8).copy()


def _load_font(font: CJKFont, size: int, supersample: int = 2) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(
        font.path,
        size=max(4, round(size * supersample * 0.8)),
        index=font.index,
        layout_engine=ImageFont.Layout.BASIC,
    )


#: Code points no CJK font has: their render is the font's .notdef glyph (box or blank).
_MISSING_PROBES = ("\U0010fffd", "\U000e01ef")


def _font_coverage(font: Any, chars: Sequence[str], size: int) -> npt.NDArray[np.bool_]:
    """Which ``chars`` the font really has: non-blank and different from its .notdef render."""
    notdefs = [render_glyph(font, c, size) for c in _MISSING_PROBES]
    has = np.zeros(len(chars), dtype=bool)
    for i, ch in enumerate(chars):
        img = render_glyph(font, ch, size)
        has[i] = bool(img.max() > 64) and not any(np.array_equal(img, nd) for nd in notdefs)
    return has


def load_cjk(
    num_classes: int,
    *,
    root: str | Path = "data",
    image_size: int = 32,
    train_augmentations: int = 4,
    test_augmentations: int = 2,
    test_fonts: Sequence[str] = (),
    max_train_fonts: int = 0,
    char_order: str = "random",
    seed: int = 0,
    font_root: str | Path = FONT_ROOT,
    progress: bool = True,
) -> ArrayDataset:
    """Printed CJK characters: K GB2312 level-1 hanzi rendered from every installed CJK font.

    Fonts covering fewer than 90% of the level-1 set are skipped; characters are chosen among
    those every remaining font has, so classes are balanced. Each training font gives
    ``train_augmentations`` renders per character (the first clean, the rest jittered, see
    :func:`render_glyph`); the held-out fonts give ``test_augmentations`` each.

    Args:
        num_classes: K, number of characters (<= 3755).
        root: Cache folder.
        image_size: Side in pixels.
        train_augmentations: Renders per (training font, character).
        test_augmentations: Renders per (test font, character).
        test_fonts: Names (file stems) of the held-out fonts; empty = :data:`DEFAULT_TEST_FONTS`
            that are installed, else the last two available fonts.
        max_train_fonts: Keep at most this many training fonts (0 = all).
        char_order: ``random`` (seeded) or ``first`` (GB2312 order).
        seed: Seed of the character choice and jitter.
        font_root: Where the fonts live.
        progress: Show a tqdm bar on stderr.

    Returns:
        Images ``(N, 1, S, S)`` uint8; ``meta`` lists the train and test fonts.

    Raises:
        FileNotFoundError: Fewer than 3 CJK fonts installed (message has the apt command).
        ValueError: Unknown test font names or K larger than the shared character pool.
    """
    fonts = available_cjk_fonts(font_root)
    if len(fonts) < 3:
        raise FileNotFoundError(
            f"Need at least 3 CJK fonts under {font_root} but found {len(fonts)}; "
            f"install them with: {CJK_INSTALL_HINT}"
        )
    names = [f.name for f in fonts]
    if test_fonts:
        unknown = [t for t in test_fonts if t not in names]
        if unknown:
            raise ValueError(
                f"Expected `test_fonts` among the installed fonts {names}, but got {unknown}."
            )
        held = list(test_fonts)
    else:
        held = [t for t in DEFAULT_TEST_FONTS if t in names] or names[-2:]
    key = {
        "fonts": [(f.path, f.index) for f in fonts],
        "K": num_classes,
        "size": image_size,
        "train_aug": train_augmentations,
        "test_aug": test_augmentations,
        "held": held,
        "max_train": max_train_fonts,
        "order": char_order,
        "seed": seed,
        "version": 1,
    }
    path = _cache_path(root, f"cjk-K{num_classes}-s{image_size}", key)
    if path.is_file():
        return ArrayDataset.load(path)

    all_chars = gb2312_level1()
    loaded = []
    coverage = []
    bar = tqdm(fonts, desc="cjk: font coverage", disable=not progress, leave=False)
    for f in bar:
        pil_font = _load_font(f, image_size)
        cov = _font_coverage(pil_font, all_chars, image_size)
        if cov.mean() >= MIN_FONT_COVERAGE:
            loaded.append((f, pil_font))
            coverage.append(cov)
    bar.close()
    train_fonts = [(f, p) for f, p in loaded if f.name not in held]
    test_list = [(f, p) for f, p in loaded if f.name in held]
    if max_train_fonts:
        train_fonts = train_fonts[:max_train_fonts]
    if not train_fonts or not test_list:
        raise FileNotFoundError(
            f"Need training and held-out CJK fonts covering GB2312 level 1, but got "
            f"{[f.name for f, _ in train_fonts]} / {[f.name for f, _ in test_list]}; "
            f"install more with: {CJK_INSTALL_HINT}"
        )
    used = {f.name for f, _ in train_fonts + test_list}
    shared = np.logical_and.reduce(
        [c for (f, _), c in zip(loaded, coverage, strict=True) if f.name in used]
    )
    pool = np.flatnonzero(shared)
    if num_classes > pool.size:
        raise ValueError(
            f"Expected `num_classes` <= {pool.size} (characters every used font has), "
            f"but got {num_classes}."
        )
    rng = np.random.default_rng(seed)
    if char_order == "random":
        chosen = np.sort(rng.choice(pool, size=num_classes, replace=False))
    else:
        chosen = pool[:num_classes]
    chars = [all_chars[i] for i in chosen]

    def build(font_list: list[tuple[CJKFont, Any]], augs: int, desc: str) -> tuple[Any, Any]:
        n = len(font_list) * augs * num_classes
        xs = np.zeros((n, 1, image_size, image_size), dtype=np.uint8)
        ys = np.zeros(n, dtype=np.int64)
        i = 0
        for _font, pil_font in tqdm(font_list, desc=desc, disable=not progress, leave=False):
            for a in range(augs):
                for k, ch in enumerate(chars):
                    xs[i, 0] = render_glyph(pil_font, ch, image_size, rng if a > 0 else None)
                    ys[i] = k
                    i += 1
        return xs, ys

    train_x, train_y = build(train_fonts, train_augmentations, "cjk: train renders")
    test_x, test_y = build(test_list, test_augmentations, "cjk: test renders")
    ds = ArrayDataset(
        name="cjk",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        class_names=tuple(chars),
        meta={
            "train_fonts": [f.name for f, _ in train_fonts],
            "test_fonts": [f.name for f, _ in test_list],
            "skipped_fonts": [f.name for f in fonts if f.name not in {g.name for g, _ in loaded}],
            "shared_pool": int(pool.size),
            "image_size": image_size,
            "seed": seed,
        },
    )
    ds.save(path)
    return ds


# --------------------------------------------------------------------------------------------
# Fashion-MNIST, CIFAR-100, Tiny-ImageNet
# --------------------------------------------------------------------------------------------


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


def load_tiny_imagenet(source: str | Path, *, progress: bool = True) -> ArrayDataset:
    """Tiny-ImageNet-200 from ``source/tiny-imagenet-200`` (train/<wnid>/images, val annotations).

    The official validation split (with labels) is the test split.

    Raises:
        FileNotFoundError: When the folder is missing, with where to get it.
    """
    from PIL import Image

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


def load_dataset(config: DataConfig, *, progress: bool = True) -> ArrayDataset:
    """Build (or read from the cache) the data set that ``config`` describes.

    Example:
        >>> from gnc.train.config import DataConfig
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
    path = _cache_path(config.root, config.name, {"source": source, "version": 1})
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
