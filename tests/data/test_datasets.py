from __future__ import annotations

import gzip
import pickle
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from gnc.data import (
    ArrayDataset,
    DataConfig,
    available_cjk_fonts,
    gb2312_level1,
    load_cifar100,
    load_cjk,
    load_dataset,
    load_fashion_mnist,
    load_tiny_imagenet,
    make_synthetic,
    render_glyph,
)
from gnc.data.glyphs import FONT_ROOT, _font_coverage, _load_font

FONTS = available_cjk_fonts()
needs_fonts = pytest.mark.skipif(
    len(FONTS) < 3, reason="CJK fonts not installed (run scripts/setup_data.sh as root)"
)


def test_gb2312_level1_has_3755_distinct_hanzi() -> None:
    chars = gb2312_level1()
    assert len(chars) == 3755
    assert len(set(chars)) == 3755
    assert all(len(c) == 1 and 0x4E00 <= ord(c) <= 0x9FFF for c in chars)
    assert all(unicodedata.name(c).startswith("CJK UNIFIED IDEOGRAPH") for c in chars[:50])
    # The set round-trips through the GB2312 codec into rows 0xB0-0xD7.
    rows = {c.encode("gb2312")[0] for c in chars}
    assert min(rows) == 0xB0 and max(rows) == 0xD7
    # Row 0xD7 has 89 assigned slots (0xA1-0xF9), the other 39 rows 94.
    assert sum(1 for c in chars if c.encode("gb2312")[0] == 0xD7) == 89


@needs_fonts
def test_rendering_gives_non_blank_distinct_glyphs() -> None:
    font = _load_font(FONTS[0], 32)
    chars = ["一", "人", "永", "国", "爱"]
    imgs = [render_glyph(font, c, 32) for c in chars]
    for img in imgs:
        assert img.shape == (32, 32) and img.dtype == np.uint8
        assert img.max() > 128 and (img > 64).mean() < 0.6
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i].astype(int) - imgs[j].astype(int)).sum() > 1000
    # Jitter changes the image but keeps the glyph: seeded jitter is reproducible.
    a = render_glyph(font, "永", 32, np.random.default_rng(1))
    b = render_glyph(font, "永", 32, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, imgs[2])


@needs_fonts
def test_missing_glyphs_are_detected() -> None:
    font = _load_font(FONTS[0], 32)
    # Private-use / unassigned code points are missing; common hanzi are present.
    cov = _font_coverage(font, ["永", "\U0010fff0", "\U000f0001", "国"], 32)
    assert cov.tolist() == [True, False, False, True]


@needs_fonts
def test_load_cjk_small_holds_out_whole_fonts(tmp_path: Path) -> None:
    # A font folder with only three of the installed faces keeps the coverage scan short.
    fonts_dir = tmp_path / "fonts"
    for f in FONTS[:3]:
        rel = Path(f.path).relative_to(FONT_ROOT)
        (fonts_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (fonts_dir / rel).symlink_to(f.path)
    held = FONTS[2].name
    kwargs = {
        "root": tmp_path, "image_size": 16, "train_augmentations": 2, "test_augmentations": 1,
        "test_fonts": [held], "font_root": fonts_dir, "progress": False,
    }  # fmt: skip
    ds = load_cjk(5, **kwargs)  # type: ignore[arg-type]
    assert ds.num_classes == 5
    assert ds.meta["test_fonts"] == [held]
    assert held not in ds.meta["train_fonts"] and len(ds.meta["train_fonts"]) == 2
    assert ds.train_x.shape == (2 * 2 * 5, 1, 16, 16)
    assert ds.test_x.shape == (5, 1, 16, 16)
    assert np.bincount(ds.train_y).tolist() == [4] * 5
    assert all(c in gb2312_level1() for c in ds.class_names)
    again = load_cjk(5, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(again.train_x, ds.train_x)
    assert len(list(tmp_path.glob("cjk-*.npz"))) == 1
    with pytest.raises(ValueError, match="test_fonts"):
        load_cjk(5, **{**kwargs, "test_fonts": ["no-such-font"]})  # type: ignore[arg-type]


def test_missing_fonts_message_has_install_command(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"apt-get install -y --no-install-recommends fonts-"
    ):
        load_cjk(10, root=tmp_path, font_root=tmp_path, progress=False)


def test_missing_fashion_mnist_message_has_install_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"apt-get install .*dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_reader_on_fake_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 28, 28))
    labels = np.arange(6) % 10
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", imgs)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    ds = load_fashion_mnist(tmp_path)
    assert ds.train_x.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(ds.train_x[:, 0], imgs)
    np.testing.assert_array_equal(ds.test_y, labels)


def test_fake_cifar100_folder_loads(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 7), ("test", 3)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {b"data": data, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}, fh
            )
        if name == "train":
            train_data = data
    with open(folder / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, fh)
    ds = load_cifar100(tmp_path)
    assert ds.train_x.shape == (7, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    # channel-major layout: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(ds.train_x[2, 0].reshape(-1), train_data[2, :1024])
    assert ds.num_classes == 100 and ds.class_names[5] == "c5"
    assert ds.train_y.tolist() == list(range(7))
    # through the config, cached
    cfg = DataConfig(name="cifar100", source=str(tmp_path), root=str(tmp_path / "cache"))
    ds2 = load_dataset(cfg, progress=False)
    np.testing.assert_array_equal(ds2.train_x, ds.train_x)
    assert list((tmp_path / "cache").glob("cifar100-*.npz"))


def test_fake_tiny_imagenet_folder_loads(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n001", "n002", "n003"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    colours = {}
    for k, w in enumerate(wnids):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(2):
            colours[(w, i)] = (40 * k + 10 * i, 100, 200)
            Image.new("RGB", (64, 64), colours[(w, i)]).save(d / f"{w}_{i}.JPEG", quality=100)
    lines = []
    for j, w in enumerate(["n003", "n001"]):
        Image.new("RGB", (64, 64), (0, 0, 0)).save(root / "val" / "images" / f"val_{j}.JPEG")
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    ds = load_tiny_imagenet(tmp_path, progress=False)
    assert ds.train_x.shape == (6, 3, 64, 64) and ds.test_x.shape == (2, 3, 64, 64)
    assert ds.train_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test_y.tolist() == [2, 0]
    assert abs(int(ds.train_x[2, 0, 5, 5]) - 40) <= 2  # red channel of n002 image 0
    assert ds.class_names == tuple(wnids)


def test_missing_cifar_and_tiny_imagenet_messages(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path)
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        load_tiny_imagenet(tmp_path)
    with pytest.raises(ValueError, match=r"data\.source"):
        load_dataset(DataConfig(name="cifar100", root=str(tmp_path)))


def test_synthetic_is_seeded_and_balanced(tmp_path: Path) -> None:
    a = make_synthetic(4, 6, 5, 2, seed=3)
    b = make_synthetic(4, 6, 5, 2, seed=3)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert np.bincount(a.train_y).tolist() == [5] * 4
    a.save(tmp_path / "s.npz")
    c = ArrayDataset.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(c.test_x, a.test_x)
    assert c.class_names == a.class_names and c.name == "synthetic"
