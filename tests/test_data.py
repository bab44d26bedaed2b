"""Tests of fakeclr.data: sources, conversion, subsets, labels, the embedded set and prepared archives.

All images are made in tmp_path with PIL; the real-data test reads ../shared/data and skips when it is absent.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from fakeclr.data import (
    ImageDataset, check_resolution, format_summary, open_dataset, prepare_dataset, subset_indices,
)
from fakeclr.errors import UserError

OBAMA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "100-shot-obama"


def solid(mode: str, size: tuple[int, int], color) -> Image.Image:
    return Image.new(mode, size, color)


def noise_rgb(seed: int, size: int = 16) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def make_folder(root: Path, images: dict[str, Image.Image], labels: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, im in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / name)
    if labels is not None:
        (root / "dataset.json").write_text(json.dumps(labels))
    return root


def zip_folder(root: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return dest


def noise_folder(root: Path, n: int = 10, size: int = 16) -> Path:
    return make_folder(root, {f"img{i:02d}.png": noise_rgb(i, size) for i in range(n)})


# ---------------------------------------------------------------------------------------------------------------
# Formats and modes.


FORMATS = ["png", "jpg", "jpeg", "bmp", "tif"] + (["webp"] if features.check("webp") else [])


@pytest.mark.parametrize("ext", FORMATS)
def test_every_format_loads(tmp_path, ext):
    make_folder(tmp_path / "d", {f"a.{ext}": solid("RGB", (8, 8), (200, 40, 90))})
    ds = open_dataset(tmp_path / "d", resolution=8)
    img, label = ds[0]
    assert img.shape == (3, 8, 8) and img.dtype == torch.uint8
    assert label.shape == (0,) and label.dtype == torch.float32
    tol = 0 if ext in ("png", "bmp", "tif") else 8  # lossy formats
    assert (img.int() - torch.tensor([200, 40, 90]).view(3, 1, 1)).abs().max() <= tol


def test_red_becomes_luma_in_one_channel(tmp_path):
    make_folder(tmp_path / "d", {"red.png": solid("RGB", (8, 8), (255, 0, 0))})
    img, _ = open_dataset(tmp_path / "d", resolution=8, channels=1)[0]
    assert img.shape == (1, 8, 8)
    assert abs(float(img.float().mean()) - 0.299 * 255) < 1.0
    assert int(img[0, 0, 0]) == 76


def test_gray_replicated_to_three_equal_channels(tmp_path):
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    make_folder(tmp_path / "d", {"g.png": gray})
    img, _ = open_dataset(tmp_path / "d", resolution=8, channels=3)[0]
    assert img.shape == (3, 8, 8)
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])
    assert torch.equal(img[0], torch.from_numpy(np.array(gray)))


def _palette_image() -> Image.Image:
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    return im


MODE_CASES = [  # (name, image, channels, expected value of pixel (0, 0) per channel)
    ("L.png", solid("L", (8, 8), 77), 1, [77]),
    ("RGB.png", solid("RGB", (8, 8), (10, 20, 30)), 3, [10, 20, 30]),
    ("RGBA.png", solid("RGBA", (8, 8), (200, 100, 50, 128)), 3, [100, 50, 25]),  # composited on black
    ("RGBA0.png", solid("RGBA", (8, 8), (200, 100, 50, 0)), 3, [0, 0, 0]),
    ("LA.png", solid("LA", (8, 8), (200, 255)), 1, [200]),
    ("CMYK.tif", solid("CMYK", (8, 8), (0, 255, 255, 0)), 3, [255, 0, 0]),
    ("CMYK.jpg", solid("CMYK", (8, 8), (0, 0, 0, 0)), 3, [255, 255, 255]),
    ("P.png", _palette_image(), 3, [10, 200, 30]),
    ("P1.png", _palette_image(), 1, [round(10 * .299 + 200 * .587 + 30 * .114)]),
    ("one.png", solid("1", (8, 8), 1), 1, [255]),
    ("I16.png", Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)), 1, [100]),
    ("F.tif", Image.fromarray(np.full((8, 8), 0.5, np.float32)), 1, [128]),
]


@pytest.mark.parametrize("name,image,channels,expected", MODE_CASES, ids=[c[0] for c in MODE_CASES])
def test_modes_convert(tmp_path, name, image, channels, expected):
    make_folder(tmp_path / "d", {name: image})
    ds = open_dataset(tmp_path / "d", resolution=8, channels=channels)
    img, _ = ds[0]
    assert img.shape == (channels, 8, 8)
    tol = 3 if name.endswith(".jpg") else 1
    assert (img[:, 0, 0].int() - torch.tensor(expected)).abs().max() <= tol, img[:, 0, 0]


def test_palette_with_transparency_composited(tmp_path):
    (tmp_path / "d").mkdir()
    _palette_image().save(tmp_path / "d" / "t.png", transparency=1)  # palette entry 1 is fully transparent
    img, _ = open_dataset(tmp_path / "d", resolution=8, channels=3)[0]
    assert img.max() == 0  # the only colour is fully transparent: black


def test_channels_inferred(tmp_path):
    make_folder(tmp_path / "gray", {"a.png": solid("L", (8, 8), 1), "b.jpg": solid("L", (8, 8), 9)})
    assert open_dataset(tmp_path / "gray").num_channels == 1
    make_folder(tmp_path / "mixed", {"a.png": solid("L", (8, 8), 1), "b.png": solid("RGB", (8, 8), (1, 2, 3))})
    assert open_dataset(tmp_path / "mixed").num_channels == 3


def test_exif_orientation_applied(tmp_path):
    im = Image.new("L", (8, 4), 0)
    im.paste(255, (0, 0, 4, 4))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate 90 degrees clockwise: the white half ends up on top
    (tmp_path / "d").mkdir()
    im.save(tmp_path / "d" / "r.jpg", exif=exif, quality=100)
    img = open_dataset(tmp_path / "d", channels=1).images[0, 0]
    assert img.shape == (4, 4)  # centre crop of the upright 4x8 image
    upright = np.asarray(Image.open(tmp_path / "d" / "r.jpg").transpose(Image.Transpose.ROTATE_270))
    assert upright.shape == (8, 4)
    assert torch.equal(img, torch.from_numpy(upright[2:6].copy()))


# ---------------------------------------------------------------------------------------------------------------
# Geometry.


def test_center_crop_wide_and_tall(tmp_path):
    wide = Image.fromarray(np.tile(np.arange(12, dtype=np.uint8) * 10, (8, 1)))  # 12 wide x 8 high, columns 0..11
    tall = Image.fromarray(wide_arr := np.tile(np.arange(11, dtype=np.uint8)[:, None] * 10, (1, 8)))  # 11 rows
    make_folder(tmp_path / "w", {"w.png": wide})
    make_folder(tmp_path / "t", {"t.png": tall})
    w = open_dataset(tmp_path / "w", resolution=8).images[0, 0]
    assert torch.equal(w[0], torch.arange(2, 10, dtype=torch.uint8) * 10)  # columns 2..9 survive
    assert torch.equal(w[:, 0], torch.full((8,), 20, dtype=torch.uint8))
    t = open_dataset(tmp_path / "t", resolution=8).images[0, 0]
    assert torch.equal(t[:, 0], torch.from_numpy(wide_arr[1:9, 0].copy()))  # rows 1..8 survive ((11-8)//2 = 1)


def test_resize_to_power_of_two(tmp_path):
    im = noise_rgb(3, 20)
    make_folder(tmp_path / "d", {"a.png": im})
    assert open_dataset(tmp_path / "d").resolution == 16  # native: 20 rounded down
    got = open_dataset(tmp_path / "d", resolution=8).images[0]
    want = np.asarray(im.resize((8, 8), Image.Resampling.LANCZOS)).transpose(2, 0, 1)
    assert torch.equal(got, torch.from_numpy(want.copy()))
    up = open_dataset(tmp_path / "d", resolution=32)
    assert up.images.shape == (1, 3, 32, 32)


def test_native_resolution_untouched(tmp_path):
    im = noise_rgb(5, 16)
    make_folder(tmp_path / "d", {"a.png": im})
    ds = open_dataset(tmp_path / "d")
    assert ds.resolution == 16
    assert torch.equal(ds.images[0], torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy()))


def test_native_resolution_is_smallest_side(tmp_path):
    make_folder(tmp_path / "d", {"a.png": noise_rgb(1, 64), "b.png": noise_rgb(2, 40)})
    assert open_dataset(tmp_path / "d").resolution == 32


# ---------------------------------------------------------------------------------------------------------------
# Sources, mirror, subset.


def test_zip_equals_folder_and_order(tmp_path):
    root = make_folder(tmp_path / "d", {"b/x.png": noise_rgb(1), "a.png": noise_rgb(2), "c.bmp": noise_rgb(3)})
    (root / "notes.txt").write_text("ignored")
    (root / ".hidden.png").write_bytes(b"not an image")  # hidden files are ignored
    folder = open_dataset(root)
    archive = open_dataset(zip_folder(root, tmp_path / "d.zip"))
    assert folder.names == archive.names == ["a.png", "b/x.png", "c.bmp"]
    assert torch.equal(folder.images, archive.images)
    assert archive.source.endswith("d.zip")


def test_mirror_doubles_and_flips(tmp_path):
    noise_folder(tmp_path / "d", n=3)
    plain = open_dataset(tmp_path / "d")
    ds = open_dataset(tmp_path / "d", mirror=True)
    assert len(plain) == 3 and len(ds) == 6
    for i in range(3):
        assert torch.equal(ds[i][0], plain[i][0])
        assert torch.equal(ds[i + 3][0], plain[i][0].flip(2))
        assert torch.equal(ds[i + 3][0][:, :, 0], plain[i][0][:, :, -1])
    imgs, labels = ds.batch([0, 4, 5])
    assert torch.equal(imgs[1], ds[4][0]) and torch.equal(imgs[2], ds[5][0]) and labels.shape == (3, 0)
    with pytest.raises(IndexError):
        ds[6]
    ds[0][0].zero_()  # items are copies
    assert torch.equal(ds.images, plain.images)


def test_subset_seeded_count_and_fraction(tmp_path):
    noise_folder(tmp_path / "d", n=20, size=8)
    a = open_dataset(tmp_path / "d", subset=5, subset_seed=1)
    b = open_dataset(tmp_path / "d", subset=5, subset_seed=1)
    c = open_dataset(tmp_path / "d", subset=5, subset_seed=2)
    assert len(a) == 5 and a.names == b.names and torch.equal(a.images, b.images)
    assert a.names != c.names
    assert a.names == sorted(a.names)
    order, k = subset_indices(20, 5, 1)
    assert k == 5 and a.names == [f"img{i:02d}.png" for i in sorted(order[:5])]
    assert len(open_dataset(tmp_path / "d", subset=0.2)) == 4
    assert len(open_dataset(tmp_path / "d", subset=1.0)) == 20
    with pytest.raises(UserError, match=r"--subset 100 asks for more images than the data have \(20\)"):
        open_dataset(tmp_path / "d", subset=100)
    assert len(open_dataset(tmp_path / "d", subset=5, mirror=True)) == 10
    for bad in (0, -3, 0.0, 1.5, True, "5"):
        with pytest.raises(UserError):
            open_dataset(tmp_path / "d", subset=bad)


def test_subset_replaces_unreadable_pick(tmp_path):
    root = noise_folder(tmp_path / "d", n=10, size=8)
    order, _ = subset_indices(10, 3, 0)
    bad = f"img{order[0]:02d}.png"
    (root / bad).write_bytes(b"garbage")
    ds = open_dataset(root, subset=3, skip_bad=True)
    assert len(ds) == 3 and ds.skipped == [bad]
    assert ds.names == sorted(f"img{i:02d}.png" for i in order[1:4])


# ---------------------------------------------------------------------------------------------------------------
# Labels.


def test_labels_one_hot(tmp_path):
    root = noise_folder(tmp_path / "d", n=4, size=8)
    labels = {"labels": [[f"img{i:02d}.png", c] for i, c in enumerate([0, 2, 1, 2])]}
    (root / "dataset.json").write_text(json.dumps(labels))
    ds = open_dataset(root, mirror=True)
    assert ds.has_labels and ds.label_dim == 3
    assert torch.equal(ds[1][1], torch.tensor([0.0, 0.0, 1.0])) and ds[1][1].dtype == torch.float32
    assert torch.equal(ds[5][1], ds[1][1])
    assert torch.equal(ds.labels.argmax(1), torch.tensor([0, 2, 1, 2]))
    off = open_dataset(root, use_labels=False)
    assert not off.has_labels and off.label_dim == 0 and off[0][1].shape == (0,)
    zipped = open_dataset(zip_folder(root, tmp_path / "d.zip"))
    assert torch.equal(zipped.labels, ds.labels)


def test_labels_float_vectors(tmp_path):
    root = noise_folder(tmp_path / "d", n=2, size=8)
    (root / "dataset.json").write_text(json.dumps({"labels": [["img00.png", [0.5, 1]], ["img01.png", [2, -1]]]}))
    ds = open_dataset(root)
    assert ds.label_dim == 2 and torch.equal(ds.labels, torch.tensor([[0.5, 1.0], [2.0, -1.0]]))


def test_labels_null_means_unlabelled(tmp_path):
    root = noise_folder(tmp_path / "d", n=2, size=8)
    (root / "dataset.json").write_text('{"labels": null}')
    assert open_dataset(root).label_dim == 0


# ---------------------------------------------------------------------------------------------------------------
# Embedded default.


def test_embedded_lfw():
    from skimage.data import lfw_subset

    ds = open_dataset()
    assert len(ds) == 100 and ds.images.shape == (100, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.source == "embedded:lfw" and ds.label_dim == 0
    face = np.clip(np.rint(lfw_subset()[7] * 255), 0, 255).astype(np.uint8)
    want = np.asarray(Image.fromarray(face).resize((32, 32), Image.Resampling.LANCZOS))
    assert torch.equal(ds.images[7, 0], torch.from_numpy(want.copy()))
    assert torch.equal(open_dataset("lfw").images, ds.images)
    rgb = open_dataset("embedded:lfw", channels=3)
    assert rgb.images.shape == (100, 3, 32, 32) and torch.equal(rgb.images[:, 1], ds.images[:, 0])
    with pytest.raises(UserError, match="embedded:nope"):
        open_dataset("embedded:nope")


def test_bare_lfw_prefers_existing_path(tmp_path, monkeypatch):
    noise_folder(tmp_path / "lfw", n=2, size=8)
    monkeypatch.chdir(tmp_path)
    assert len(open_dataset("lfw")) == 2
    assert len(open_dataset("embedded:lfw")) == 100


# ---------------------------------------------------------------------------------------------------------------
# Prepared archives.


def test_prepare_round_trip(tmp_path):
    root = make_folder(tmp_path / "raw", {"a.jpg": noise_rgb(1, 20), "b/c.png": solid("RGBA", (30, 24), (9, 8, 7, 200)),
                                          "d.png": solid("L", (16, 16), 5)})
    (root / "dataset.json").write_text(json.dumps({"labels": [["a.jpg", 1], ["b/c.png", 0], ["d.png", 3]]}))
    summary = prepare_dataset(root, tmp_path / "out" / "p.zip", 8)
    assert summary["count"] == 3 and summary["resolution"] == 8 and summary["channels"] == 3
    assert summary["labels"] and summary["label_dim"] == 4 and summary["num_skipped"] == 0
    assert "3 images" in format_summary(summary)
    raw = open_dataset(root, resolution=8, channels=3)
    prepared = open_dataset(tmp_path / "out" / "p.zip")
    assert prepared.resolution == 8 and prepared.num_channels == 3
    assert torch.equal(prepared.images, raw.images) and torch.equal(prepared.labels, raw.labels)
    assert prepared.names[0] == "00000/img00000000.png"
    # Deterministic bytes, and one-channel archives reopen as one channel.
    prepare_dataset(root, tmp_path / "again.zip", 8)
    assert (tmp_path / "again.zip").read_bytes() == (tmp_path / "out" / "p.zip").read_bytes()
    prepare_dataset(root, tmp_path / "gray.zip", 8, channels=1)
    assert torch.equal(open_dataset(tmp_path / "gray.zip").images, open_dataset(root, resolution=8, channels=1).images)
    assert sorted(os.listdir(tmp_path / "out")) == ["p.zip"]  # no temporary file left behind


def test_prepare_is_atomic_on_bad_image(tmp_path):
    root = noise_folder(tmp_path / "raw", n=3, size=8)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dest = tmp_path / "p.zip"
    with pytest.raises(UserError, match="broken.png.*--skip-bad"):
        prepare_dataset(root, dest, 8)
    assert not dest.exists() and os.listdir(tmp_path) == ["raw"]
    summary = prepare_dataset(root, dest, 8, skip_bad=True)
    assert summary["count"] == 3 and summary["skipped"] == ["broken.png"] and summary["num_skipped"] == 1
    assert "broken.png" in format_summary(summary)


def test_prepare_failure_during_write_leaves_nothing(tmp_path, monkeypatch):
    import fakeclr.data.prepare as prep

    root = noise_folder(tmp_path / "raw", n=3, size=8)
    dest = tmp_path / "p.zip"
    dest.write_bytes(b"old")

    def explode(_image):
        raise OSError("disk full")

    monkeypatch.setattr(prep, "_png_bytes", explode)
    with pytest.raises(UserError, match=r"Could not write .*p\.zip \(disk full\); .* earlier file of that name is intact"):
        prepare_dataset(root, dest, 8, force=True)
    assert dest.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["p.zip", "raw"]


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one UserError naming the path.


def test_missing_source(tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        open_dataset(tmp_path / "nowhere")


def test_empty_folder_and_no_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*is empty"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(UserError, match="txt.*no images"):
        open_dataset(tmp_path / "txt")
    zip_folder(tmp_path / "txt", tmp_path / "txt.zip")
    with pytest.raises(UserError, match="txt.zip.*no images"):
        open_dataset(tmp_path / "txt.zip")


def test_not_a_zip_or_single_image(tmp_path):
    (tmp_path / "fake.zip").write_bytes(b"nope")
    with pytest.raises(UserError, match="fake.zip"):
        open_dataset(tmp_path / "fake.zip")
    solid("RGB", (8, 8), 0).save(tmp_path / "one.png")
    with pytest.raises(UserError, match="one.png.*single image"):
        open_dataset(tmp_path / "one.png")


def test_corrupt_image(tmp_path):
    root = noise_folder(tmp_path / "d", n=2, size=8)
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UserError, match=r"bad\.jpg.*--skip-bad"):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)
    assert len(ds) == 2 and ds.skipped == ["bad.jpg"]
    # A truncated file whose header reads fine fails at decode time, with the same message.
    data = (root / "img00.png").read_bytes()
    (root / "img00.png").write_bytes(data[: len(data) // 2])
    (root / "bad.jpg").unlink()
    with pytest.raises(UserError, match=r"img00\.png.*--skip-bad"):
        open_dataset(root, resolution=8, channels=3)
    zipped = zip_folder(root, tmp_path / "d.zip")
    with pytest.raises(UserError, match=r"img00\.png.*d\.zip"):
        open_dataset(zipped)
    (root / "img01.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="No readable images.*2 skipped"):
        open_dataset(root, skip_bad=True)


def test_bad_resolution_and_channels(tmp_path):
    root = noise_folder(tmp_path / "d", n=1, size=8)
    with pytest.raises(UserError, match="nearest one, 64"):
        open_dataset(root, resolution=60)
    with pytest.raises(UserError, match="nearest one, 128"):
        check_resolution(100)
    with pytest.raises(UserError, match="at least 4"):
        check_resolution(2)
    assert check_resolution(4) == 4
    with pytest.raises(UserError, match="Channels"):
        open_dataset(root, channels=4)
    with pytest.raises(UserError, match="not a power of two"):
        prepare_dataset(root, tmp_path / "p.zip", 48)
    assert not (tmp_path / "p.zip").exists()


def test_too_small_images(tmp_path):
    make_folder(tmp_path / "d", {"a.png": solid("L", (3, 10), 0)})
    with pytest.raises(UserError, match="at least 4x4"):
        open_dataset(tmp_path / "d")


def test_dest_is_directory_or_not_zip(tmp_path):
    root = noise_folder(tmp_path / "d", n=1, size=8)
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="out.*is a folder"):
        prepare_dataset(root, tmp_path / "out", 8)
    with pytest.raises(UserError, match=r"data\.tar.*\.zip"):
        prepare_dataset(root, tmp_path / "data.tar", 8)


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('["a"]', '"labels" key'),
    ('{"labels": 3}', "not a list"),
    ('{"labels": [["img00.png"]]}', "pair"),
    ('{"labels": [["img00.png", 1], ["img01.png", [1.0]]]}', "all be class indices"),
    ('{"labels": [["img00.png", -1], ["img01.png", 0]]}', "negative"),
    ('{"labels": [["img00.png", 1]]}', r"no label for 1 of the 2 images \(first: 'img01.png'\)"),
])
def test_bad_labels(tmp_path, content, match):
    root = noise_folder(tmp_path / "d", n=2, size=8)
    (root / "dataset.json").write_text(content)
    with pytest.raises(UserError, match=match) as info:
        open_dataset(root)
    assert "dataset.json" in str(info.value) and str(root) in str(info.value)
    assert len(open_dataset(root, use_labels=False)) == 2


def test_dataset_constructor_checks():
    with pytest.raises(ValueError):
        ImageDataset(torch.zeros(2, 3, 4, 4))  # float
    ds = ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), mirror=True)
    assert len(ds) == 4 and ds.label_dim == 0 and ds.names == ["00000000", "00000001"]


# ---------------------------------------------------------------------------------------------------------------
# Real data.


@pytest.mark.skipif(not OBAMA.is_dir(), reason=f"real data not present at {OBAMA}")
def test_real_obama_at_64():
    ds = open_dataset(OBAMA, resolution=64)
    assert len(ds) == 100 and ds.images.shape == (100, 3, 64, 64) and ds.num_channels == 3
    assert 30 < float(ds.images.float().mean()) < 225  # real photos, not blank


def test_probe_reads_headers_only_and_agrees_with_open(tmp_path, monkeypatch):
    from fakeclr.data import opening as open_mod
    from fakeclr.data import probe_dataset
    root = make_folder(tmp_path / "mixed", {"a.png": Image.new("L", (40, 50)), "b.png": Image.new("RGB", (70, 64)),
                                             "c.png": Image.new("L", (33, 90))})
    cases = [("lfw", {}), (str(root), {}), (str(root), {"channels": 1}), (str(root), {"subset": 2, "subset_seed": 1}),
             (str(root), {"resolution": 16})]
    opened = [open_dataset(src, **kw) for src, kw in cases]
    monkeypatch.setattr(open_mod, "load_image", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    for (src, kw), ds in zip(cases, opened):
        assert probe_dataset(src, **kw) == (ds.resolution, ds.num_channels), (src, kw)
    assert probe_dataset(str(root)) == (32, 3)


# ---------------------------------------------------------------------------------------------------------------
# Packed data sets: CIFAR-10/100 python batches and IDX files (tests/packed_files.py writes them).

from packed_files import (  # noqa: E402
    CIFAR10_TRAIN, cifar10_files, cifar100_files, idx_images, py2_pickle, py3_pickle, write_folder, write_idx,
    write_tar,
)
from fakeclr.data import SUBSET_RULES  # noqa: E402


def _unpickled(files: dict[str, bytes], name: str) -> dict:
    import pickle
    return pickle.loads(files[name], encoding="latin1")          # the reference readers' way, as a cross-check


def _expected_pixel(row: np.ndarray, c: int, y: int, x: int) -> int:
    """Channel c of pixel (y, x) in a CIFAR row of 3072 bytes: plane c (R, G, B), then row-major 32 x 32."""
    return int(row[c * 1024 + y * 32 + x])


@pytest.mark.parametrize("as_tar", [True, False], ids=["tar.gz", "folder"])
def test_cifar10_pixels_labels_and_order(tmp_path, as_tar):
    files = cifar10_files(per_batch=4, test=3)
    src = (write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files) if as_tar
           else write_folder(tmp_path / "cifar-10-batches-py", files))
    ds = open_dataset(src)
    assert (ds.num_raw, ds.num_channels, ds.resolution, ds.label_dim) == (20, 3, 32, 10)
    rows = np.concatenate([_unpickled(files, n)["data"] for n in CIFAR10_TRAIN])       # batches 1..5 in order
    labels = sum((_unpickled(files, n)["labels"] for n in CIFAR10_TRAIN), [])
    images = ds.images.numpy()
    rng = np.random.default_rng(0)
    for i in range(20):
        for c, y, x in zip(rng.integers(0, 3, 40), rng.integers(0, 32, 40), rng.integers(0, 32, 40)):
            assert images[i, c, y, x] == _expected_pixel(rows[i], c, y, x), (i, c, y, x)
    assert ds.labels.argmax(1).tolist() == labels
    assert ds.origin["format"] == "cifar-10" and ds.origin["split"] == "train" and ds.origin["images"] == 20
    assert ds.origin["files"] == CIFAR10_TRAIN and ds.origin["class_names"][9] == "truck"

    test = open_dataset(src, split="test")
    assert test.num_raw == 3 and test.origin["split"] == "test"
    row = _unpickled(files, "test_batch")["data"][2]
    assert test.images[2, 1, 5, 7] == _expected_pixel(row, 1, 5, 7)
    assert test.images[2, 2, 31, 0] == _expected_pixel(row, 2, 31, 0)


def test_cifar_image_is_upright_with_red_green_blue_planes(tmp_path):
    """An image whose R plane rises along x and whose G plane rises along y reads as such (not transposed)."""
    files = cifar10_files(per_batch=1, test=1)
    batch = _unpickled(files, "data_batch_1")
    y, x = np.mgrid[0:32, 0:32]
    batch["data"][0] = np.concatenate([(x * 8).ravel(), (y * 8).ravel(), np.full(1024, 77)]).astype(np.uint8)
    files["data_batch_1"] = py2_pickle(batch)
    img = open_dataset(write_folder(tmp_path / "c", files)).images[0].numpy().astype(int)
    assert (img[0] == x * 8).all() and (img[1] == y * 8).all() and (img[2] == 77).all()


def test_cifar_keys_as_bytes_from_a_python3_pickle(tmp_path):
    files = cifar10_files(per_batch=2, test=1, dumps=py3_pickle)
    ds = open_dataset(write_folder(tmp_path / "c", files))
    ref = _unpickled(files, "data_batch_3")                 # bytes keys here
    assert ds.num_raw == 10 and ds.images[4, 0, 0, 3] == _expected_pixel(ref[b"data"][0], 0, 0, 3)
    assert ds.labels[4].argmax() == ref[b"labels"][0]


def test_cifar100_fine_labels(tmp_path):
    files = cifar100_files(train=6, test=2)
    ds = open_dataset(write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files))
    ref = _unpickled(files, "train")
    assert ds.num_raw == 6 and ds.label_dim == 100 and ds.labels.argmax(1).tolist() == ref["fine_labels"]
    assert ds.origin["format"] == "cifar-100" and ds.origin["class_names"][3] == "fine3"
    assert open_dataset(tmp_path / "cifar-100-python.tar.gz", split="test").num_raw == 2


def test_cifar_archive_records_labels_and_origin(tmp_path, capsys):
    from fakeclr.cli import main
    src = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_files(per_batch=4))
    ds = open_dataset(src)
    assert main(["dataset", str(src), str(tmp_path / "c.zip"), "--resolution", "32"]) == 0
    assert "CIFAR-10 train split" in capsys.readouterr().out
    back = open_dataset(tmp_path / "c.zip")
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert back.origin == ds.origin and back.origin["format"] == "cifar-10"
    with zipfile.ZipFile(tmp_path / "c.zip") as z:
        doc = json.loads(z.read("dataset.json"))
    assert doc["labels"][:2] == [["00000/img00000000.png", int(ds.labels[0].argmax())],
                                 ["00000/img00000001.png", int(ds.labels[1].argmax())]]


# The reference's expression, run in NumPy outside the repository: np.random.seed(0);
# idx = np.random.choice(50000, 10000, replace=False) (DiffAugment-biggan-cifar datasets.py, --num_samples 10000).
BIGGAN_C10_20PCT_HEAD = [11841, 19602, 45519, 25747, 42642, 31902, 30346, 12363, 32490, 26128, 14227, 26376]
BIGGAN_C10_20PCT_SHA256 = "0758d7fdb6f63aab948a3d215c60514fc5c08ddbc82442aa27a08d80361f6ba7"   # of idx as <i8
BIGGAN_C10_10PCT_SHA256 = "6bc58f8926f80f0b7913320eede89a0b85492fbb91844e5f6fb3e84199ce1ca5"   # k = 5000
STYLEGAN2_ADA_C10_20PCT_HEAD = [1, 3, 6, 14, 17, 18, 22, 24, 28, 33]      # sorted(shuffle(arange)[:10000]), seed 0


def test_subset_rules_golden_cifar10_indices():
    import hashlib
    from fakeclr.data.opening import _kept_order
    for k, digest in ((10000, BIGGAN_C10_20PCT_SHA256), (5000, BIGGAN_C10_10PCT_SHA256)):
        order, want = subset_indices(50000, k, 0)
        drawn = _kept_order(order, order[:want], "biggan")
        assert want == k and drawn[:12] == BIGGAN_C10_20PCT_HEAD
        assert hashlib.sha256(np.asarray(drawn, dtype="<i8").tobytes()).hexdigest() == digest
        kept = _kept_order(order, order[:want], "stylegan2-ada")
        assert sorted(drawn) == kept and (k != 10000 or kept[:10] == STYLEGAN2_ADA_C10_20PCT_HEAD)
    assert subset_indices(50000, 0.2, 0)[1] == 10000 and SUBSET_RULES == ("stylegan2-ada", "biggan")


@pytest.mark.parametrize("rule", ["biggan", "stylegan2-ada"])
def test_cifar_subset_by_rule_is_recorded_in_the_archive(tmp_path, rule):
    from fakeclr.cli import main
    src = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_files(per_batch=6))
    full = open_dataset(src)
    assert main(["dataset", str(src), str(tmp_path / "s.zip"), "--resolution", "32", "--subset", "7", "--seed", "3",
                 "--subset-rule", rule]) == 0
    state = np.random.get_state()
    np.random.seed(3)
    idx = np.random.choice(30, 7, replace=False).tolist()   # the reference's expression on these 30 images
    np.random.set_state(state)
    expect = idx if rule == "biggan" else sorted(idx)
    back = open_dataset(tmp_path / "s.zip")
    assert torch.equal(back.images, full.images[expect]) and torch.equal(back.labels, full.labels[expect])
    assert back.origin["subset"] == {"rule": rule, "count": 7, "seed": 3}
    assert back.origin["indices"] == expect and back.origin["images"] == 30 and back.origin["format"] == "cifar-10"


def test_idx_pixels_labels_pad_and_splits(tmp_path):
    images, labels = idx_images(5, 28, seed=1)
    test_images, test_labels = idx_images(3, 28, seed=2)
    folder = tmp_path / "fashion"
    write_idx(folder, "train", images, labels)
    write_idx(folder, "t10k", test_images, test_labels)
    ds = open_dataset(folder, resolution=32, pad=True)
    assert (ds.num_raw, ds.num_channels, ds.resolution) == (5, 1, 32)
    got = ds.images.numpy()[:, 0]
    assert (got[:, 2:30, 2:30] == images).all()            # centred: 2 zero rows and columns on each side
    assert got[:, :2].max() == 0 and got[:, 30:].max() == 0 and got[:, :, :2].max() == 0 and got[:, :, 30:].max() == 0
    assert ds.labels.argmax(1).tolist() == labels.tolist() and ds.origin["split"] == "train"
    assert open_dataset(folder, pad=True).resolution == 32          # native with --pad: the power of two that holds 28
    rgb = open_dataset(folder, resolution=32, pad=True, channels=3).images.numpy()
    assert (rgb[:, 0] == got).all() and (rgb[:, 1] == got).all() and (rgb[:, 2] == got).all()
    test = open_dataset(folder, resolution=32, pad=True, split="test")
    assert (test.images.numpy()[:, 0, 2:30, 2:30] == test_images).all() and test.origin["split"] == "test"
    named = open_dataset(folder / "t10k-images-idx3-ubyte.gz", resolution=32, pad=True)
    assert torch.equal(named.images, test.images) and torch.equal(named.labels, test.labels)
    resized = open_dataset(folder, resolution=32)                   # without --pad: resized, not padded
    assert resized.images[:, :, :2].max() > 0
    streamed = open_dataset(folder, resolution=32, pad=True, stream=True, subset=3, subset_rule="biggan")
    in_memory = open_dataset(folder, resolution=32, pad=True, subset=3, subset_rule="biggan")
    assert torch.equal(streamed.batch([0, 1, 2])[0], in_memory.images) and streamed.origin == in_memory.origin


def test_idx_header_is_big_endian_rows_then_columns(tmp_path):
    """A 6-row, 10-column image (non-square, centre-cropped to 6 x 6 at columns 2..7) keeps rows and columns."""
    from fakeclr.data.idx import parse_idx
    from packed_files import idx_bytes
    values = np.arange(60, dtype=np.uint8).reshape(1, 6, 10)
    raw = idx_bytes(values)
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 10])
    assert (parse_idx("x", raw, 3) == values).all()
    folder = tmp_path / "m"
    write_idx(folder, "train", values, np.array([4], np.uint8), gz=False)
    img = open_dataset(folder, resolution=8, pad=True).images[0, 0].numpy()
    assert (img[1:7, 1:7] == values[0, :, 2:8]).all() and img[0].max() == 0


def test_real_fashion_mnist_when_installed():
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = open_dataset(folder / "t10k-images-idx3-ubyte.gz", resolution=32, pad=True)
    assert ds.num_raw == 10000 and np.bincount(ds.labels.argmax(1).numpy()).tolist() == [1000] * 10
    assert ds.labels.argmax(1)[:5].tolist() == [9, 2, 1, 1, 6]      # the first test labels: boot, pullover, trousers


def test_dataset_command_offers_the_library_splits_and_subset_rules():
    """The CLI spells the choices out (it imports no torch to build its parser); they must be the library's."""
    from fakeclr.cli import make_parser
    from fakeclr.data import SPLITS
    sub = next(a for a in make_parser()._actions if a.dest == "command").choices["dataset"]
    choices = {a.option_strings[0]: a.choices for a in sub._actions if a.option_strings}
    assert tuple(choices["--split"]) == SPLITS and tuple(choices["--subset-rule"]) == SUBSET_RULES
    assert {"--pad", "--split", "--subset-rule", "--subset", "--seed"} <= set(choices)
