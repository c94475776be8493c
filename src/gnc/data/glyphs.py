"""Printed CJK characters: the GB2312 level-1 list, the installed CJK fonts, glyph rendering.

:func:`load_cjk` renders ``K`` GB2312 level-1 hanzi from every installed CJK font (classes =
characters, samples = fonts x jittered renders, test split = held-out fonts) and caches the
:class:`~gnc.data.arrays.ArrayDataset`. A missing font set raises :class:`FileNotFoundError`
whose message holds the command that installs it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from gnc.data.arrays import ArrayDataset, cache_path

__all__ = [
    "CJK_FONT_CANDIDATES",
    "DEFAULT_TEST_FONTS",
    "FONT_ROOT",
    "CJKFont",
    "available_cjk_fonts",
    "gb2312_level1",
    "load_cjk",
    "render_glyph",
]

FONT_ROOT = Path("/usr/share/fonts")
CJK_INSTALL_HINT = (
    "sudo apt-get install -y --no-install-recommends fonts-wqy-zenhei fonts-wqy-microhei "
    "fonts-arphic-ukai fonts-arphic-uming fonts-arphic-gkai00mp fonts-arphic-gbsn00lp "
    "fonts-noto-cjk fonts-lxgw-wenkai fonts-droid-fallback"
)

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
    progress: bool = False,
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
    path = cache_path(root, f"cjk-K{num_classes}-s{image_size}", key)
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
