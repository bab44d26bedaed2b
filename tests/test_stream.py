"""Streamed data (fakeclr.data.stream, fakeclr.train.feed): the same items as the decoded data set, the same
training bit for bit (with DataLoader workers too), exact resume, and one sentence for files that changed or
vanished after the run opened them."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from fakeclr.config import preset_config
from fakeclr.data import open_dataset
from fakeclr.data import stream as stream_mod
from fakeclr.data.stream import StreamingDataset
from fakeclr.errors import UserError
from fakeclr.metrics.features import dataset_features
from fakeclr.train.feed import RealFeed, RealSampler
from fakeclr.train.loop import train


def _folder(root, n=12, labels=False):
    """Images of several sizes and modes (RGBA, grey, odd shapes: every conversion step runs)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        w, h = (20 + 3 * i, 17 + 2 * (i % 4))
        mode = ("RGB", "RGBA", "L")[i % 3]
        shape = (h, w, {"RGB": 3, "RGBA": 4, "L": 1}[mode])
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(a[..., 0] if mode == "L" else a, mode).save(root / f"im{i:02d}.png")
        names.append(f"im{i:02d}.png")
    if labels:
        (root / "dataset.json").write_text(json.dumps({"labels": [[n, k % 3] for k, n in enumerate(names)]}))
    return root


def _zip(root, dest):
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(root.iterdir()):
            zf.write(p, p.name)
    return dest


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_streamed_items_equal_the_decoded_data_set(tmp_path, kind):
    src = _folder(tmp_path / "d", labels=True)
    if kind == "zip":
        src = _zip(src, tmp_path / "d.zip")
    opts = dict(resolution=16, mirror=True, subset=9, subset_seed=3, use_labels=True)
    mem, lazy = open_dataset(src, stream=False, **opts), open_dataset(src, stream=True, **opts)
    assert isinstance(lazy, StreamingDataset) and not isinstance(mem, StreamingDataset)
    assert (len(lazy), lazy.num_raw, lazy.resolution, lazy.num_channels, lazy.label_dim) == \
        (len(mem), mem.num_raw, mem.resolution, mem.num_channels, mem.label_dim) == (18, 9, 16, 3, 3)
    assert lazy.names == mem.names
    idx = torch.tensor([0, 17, 9, 4, 4, 12])                   # items >= 9 are the mirrored copies
    for a, b in zip(mem.batch(idx), lazy.batch(idx)):
        assert torch.equal(a, b)
    assert torch.equal(mem[13][0], lazy[13][0]) and torch.equal(mem.images[2], lazy.images[2])
    assert torch.equal(mem.images[:], lazy.images[:]) and lazy.images.shape == mem.images.shape
    # Real-image features for the metrics: decoded batch by batch, the same numbers.
    fn = lambda x: x.float().mean(dim=(2, 3))                   # noqa: E731  a stand-in feature network
    f_mem = dataset_features(fn, mem.images, "cpu", "m", "t", max_items=7, batch=3, cache=False, progress=False)
    f_lazy = dataset_features(fn, lazy.images, "cpu", "l", "t", max_items=7, batch=3, cache=False, progress=False)
    assert f_mem.shape == (7, 3) and torch.equal(f_mem, f_lazy)


def test_streaming_is_chosen_above_the_size_threshold(tmp_path, monkeypatch):
    src = _folder(tmp_path / "d", n=4)
    # 4 images x 3 x 16 x 16 = 3072 bytes decoded.
    monkeypatch.setattr(stream_mod, "STREAM_THRESHOLD_BYTES", 3072)
    assert not isinstance(open_dataset(src, resolution=16), StreamingDataset)
    monkeypatch.setattr(stream_mod, "STREAM_THRESHOLD_BYTES", 3071)
    assert isinstance(open_dataset(src, resolution=16), StreamingDataset)
    assert not isinstance(open_dataset(src, resolution=16, stream=False), StreamingDataset)


def test_a_file_that_changed_or_vanished_stops_the_run_with_one_sentence(tmp_path):
    src = _folder(tmp_path / "d", n=4)
    ds = open_dataset(src, resolution=16, stream=True)
    ds.batch([0, 1, 2, 3])
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(src / "im01.png")   # another image, another size
    with pytest.raises(UserError, match=r"^Image '.*im01.png' changed after the run opened the data set; restore"):
        ds.batch([1])
    os.remove(src / "im02.png")
    with pytest.raises(UserError, match=r"^Image '.*im02.png' vanished after the run opened the data set"):
        ds.batch([2])
    ds.batch([0, 3])                                            # the others still read

    arch = _zip(_folder(tmp_path / "z", n=3), tmp_path / "z.zip")
    zs = open_dataset(arch, resolution=16, stream=True)
    zs.batch([0, 1, 2])
    with zipfile.ZipFile(arch, "w") as zf:                      # the archive replaced: one member changed, one gone
        zf.writestr("im00.png", (tmp_path / "z" / "im00.png").read_bytes())
        buf = io.BytesIO()
        Image.fromarray(np.ones((20, 20, 3), np.uint8)).save(buf, format="PNG")
        zf.writestr("im01.png", buf.getvalue())
    zs.batch([0])
    with pytest.raises(UserError, match=r"^Image 'im01.png' in archive '.*z.zip' changed after the run"):
        zs.batch([1])
    with pytest.raises(UserError, match=r"^Image 'im02.png' in archive '.*z.zip' vanished after the run"):
        zs.batch([2])


def test_the_feed_follows_the_sampler_with_workers_ahead(tmp_path):
    arch = _zip(_folder(tmp_path / "d", n=10), tmp_path / "d.zip")
    ds = open_dataset(arch, resolution=16, stream=True, mirror=True)
    ref = RealSampler(len(ds), seed=5)
    feed = RealFeed(ds, RealSampler(len(ds), seed=5), batch=3, device="cpu", workers=2)
    for _ in range(9):                                          # crosses passes over the 20 items
        images, _ = feed.next()
        assert torch.equal(images, ds.batch(ref.next(3))[0])
    # The run's sampler is where the consumed batches left it, not where the workers are.
    assert feed.sampler.state_dict()["pos"] == ref.state_dict()["pos"]
    feed.close()


def _tiny(source, stream, workers):
    cfg = preset_config("tiny")
    cfg.data.source, cfg.data.mirror, cfg.data.stream, cfg.data.workers = str(source), True, stream, workers
    cfg.kimg, cfg.tick_kimg, cfg.snapshot_kimg = 0.048, 0.024, 0.024
    return cfg


def test_streamed_training_equals_in_memory_and_resumes_exactly(tmp_path):
    arch = _zip(_folder(tmp_path / "d", n=12), tmp_path / "d.zip")
    quiet = dict(tensorboard=False, stream=io.StringIO())
    mem = train(_tiny(arch, False, 0), tmp_path / "mem", **quiet)["nets"]
    streamed = train(_tiny(arch, True, 1), tmp_path / "stream", **quiet)["nets"]
    train(_tiny(arch, True, 1), tmp_path / "resumed", stop_at_kimg=0.024, **quiet)
    resumed = train(_tiny(arch, True, 1), tmp_path / "resumed", **quiet)["nets"]
    for name in ("G", "D", "G_ema"):
        ref = mem[name].state_dict()
        for other in (streamed, resumed):
            sd = other[name].state_dict()
            assert [k for k in ref if not torch.equal(ref[k], sd[k])] == [], name


def _png(seed: int, size: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_zip_members_are_read_at_their_offsets(tmp_path):
    """The zip index reads stored and deflated members itself and others through zipfile; the images equal those of
    the same files in a folder, in memory and streamed. A JPEG whose frame header lies after 64 KiB (a large ICC
    profile) has its header read from the whole member."""
    folder = tmp_path / "d"
    folder.mkdir()
    files = {f"im{k}.png": _png(k) for k in range(3)}
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
        buf, "JPEG", icc_profile=bytes(100_000))
    files["late_header.jpg"] = buf.getvalue()
    assert files["late_header.jpg"].find(b"\xff\xc0") > 1 << 16        # the frame header is past the first 64 KiB
    for name, data in files.items():
        (folder / name).write_bytes(data)
    archive = tmp_path / "d.zip"
    methods = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_DEFLATED]
    with zipfile.ZipFile(archive, "w") as z:
        for (name, data), method in zip(files.items(), methods):
            z.writestr(name, data, compress_type=method)
    want = open_dataset(folder, resolution=16)
    for stream in (False, True):
        ds = open_dataset(archive, resolution=16, stream=stream)
        assert ds.names == want.names
        assert torch.equal(ds.images[:], want.images), stream


def test_a_corrupted_zip_member_is_named(tmp_path):
    """A member whose bytes no longer match its CRC-32 is refused with one sentence naming it, in memory (when
    the data set is opened) and streamed (when it is drawn)."""
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for k in range(4):
            z.writestr(f"im{k}.png", _png(k), compress_type=zipfile.ZIP_STORED)
    ds = open_dataset(archive, resolution=16, stream=True)
    blob = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("im2.png")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    blob[data_start + info.compress_size - 20] ^= 0xFF         # a byte inside the PNG's last chunk, size unchanged
    archive.write_bytes(bytes(blob))
    ds.batch([0, 1])                                            # the other members still read
    with pytest.raises(UserError, match=r"Cannot read image 'im2.png' in archive .*d.zip.* any more \(bad CRC-32"):
        ds.batch([2])
    with pytest.raises(UserError, match=r"Cannot read image 'im2.png' in archive .*d.zip"):
        open_dataset(archive, resolution=16)


def test_a_streamed_zip_holds_a_compact_index(tmp_path):
    """Opening a streamed zip keeps well under the ~610 bytes a member that zipfile's own index took
    (ZipInfo objects and a name dictionary, plus a tuple per recorded stat; measured here with 3,000 members)."""
    import tracemalloc
    n = 3000
    archive = tmp_path / "many.zip"
    tiny = _png(0, size=4)
    with zipfile.ZipFile(archive, "w") as z:
        for k in range(n):
            z.writestr(f"img{k:05d}.png", tiny, compress_type=zipfile.ZIP_STORED)
    open_dataset(archive, resolution=4, stream=True)           # imports and caches outside the measurement
    tracemalloc.start()
    ds = open_dataset(archive, resolution=4, stream=True)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds) == n
    assert held / n < 250, f"{held / n:.0f} bytes per member"


@pytest.mark.parametrize("zip64", [False, True])
def test_the_zip_index_reads_the_central_directory_as_zipfile_does(tmp_path, monkeypatch, zip64):
    """The index parsed from the central directory (with Zip64 records and extra fields, forced here by lowering
    zipfile's limits while writing) equals what zipfile reads: names, offsets, sizes, CRCs, methods; directories
    are left out, UTF-8 names and an archive comment are handled."""
    from fakeclr.data.zipindex import ZipIndex
    archive = tmp_path / "a.zip"
    with monkeypatch.context() as m:
        if zip64:
            m.setattr(zipfile, "ZIP64_LIMIT", 64)
            m.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
        with zipfile.ZipFile(archive, "w") as z:
            z.mkdir("sub") if hasattr(z, "mkdir") else z.writestr("sub/", b"")
            for k in range(5):
                name = f"sub/b{k}.png" if k % 2 else f"é{k}.png"
                z.writestr(name, _png(k), compress_type=zipfile.ZIP_DEFLATED if k % 2 else zipfile.ZIP_STORED)
            z.comment = b"an archive comment"
    with open(archive, "rb") as f:
        ours = ZipIndex._parse(f)
    with zipfile.ZipFile(archive) as z:
        infos = sorted((i for i in z.infolist() if not i.is_dir()), key=lambda i: i.filename)
        if zip64:
            assert z.infolist()[-1].header_offset > 64              # the Zip64 extra field held the offset
    assert ours.names == [i.filename for i in infos]
    assert ours.offset.tolist() == [i.header_offset for i in infos]
    assert ours.csize.tolist() == [i.compress_size for i in infos]
    assert ours.size.tolist() == [i.file_size for i in infos]
    assert ours.crc.tolist() == [i.CRC for i in infos]
    assert ours.method.tolist() == [i.compress_type for i in infos]
    ds = open_dataset(archive, resolution=8, stream=True)
    assert ds.batch([0, 1])[0].shape == (2, 3, 8, 8)
