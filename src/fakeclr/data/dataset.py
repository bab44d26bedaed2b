"""Image data sets for few-shot GAN training, decoded once into one uint8 tensor (large sets: decoded when drawn,
see :mod:`fakeclr.data.stream`).

A *source* is an image folder (searched recursively), a zip archive of images (for example one written by
:func:`fakeclr.data.prepare_dataset`), or the embedded LFW faces (``"embedded:lfw"``, also ``"lfw"``; see
:mod:`fakeclr.data.embedded`). Image files are those ending in .png, .jpg, .jpeg, .webp, .bmp, .tif or .tiff (any
case); other files are ignored, as are hidden files and folders (name starting with ".") and ``__MACOSX``.
Images are ordered by their path relative to the source root (``"/"`` separated, plain string sort), so a folder
and a zip of the same files give the same data set.

Every image goes through the same steps, in this order:

1. decode with PIL and apply its EXIF orientation (so photos come out the way viewers show them);
2. normalise the mode: palette images become RGB (RGBA if they carry transparency); images with alpha (RGBA, LA,
   PA) are composited on black, i.e. each colour value becomes ``round(v * alpha / 255)``; 16-bit and 32-bit
   grayscale (I;16, I) is scaled by 1/257 to 8 bits (an ``I`` image whose values all fit in 0..255 is kept as
   is); float grayscale (F) is scaled by 255 when its values lie in [0, 1], else clipped; CMYK, YCbCr and other
   modes go through PIL's ``convert("RGB")``;
3. convert to the channel count: 1 channel uses PIL's ``convert("L")`` (ITU-R 601-2 luma,
   ``L = R*299/1000 + G*587/1000 + B*114/1000``), 3 channels replicate a grayscale image;
4. centre-crop to a square of side ``min(width, height)`` (top-left corner at ``((w - s) // 2, (h - s) // 2)``);
5. resize to ``resolution x resolution`` with PIL's LANCZOS filter, unless it is already that size (then the
   pixels are untouched).

Defaults of :func:`open_dataset`:

* ``resolution=None`` takes the *native* resolution: the smallest side among the chosen images, rounded down to
  a power of two, so nothing is ever upsampled (a prepared archive, whose images are all R x R, opens at R).
* ``channels=None`` gives 1 when every chosen image is stored as grayscale (PIL modes 1, L, LA, I, I;16, F) and 3
  otherwise (palette images count as colour).

Subsets (``subset=``): ``k = min(count, N)`` for an int count, ``k = max(1, floor(fraction * N + 0.5))`` for a
float fraction in (0, 1], where N is the number of image files found. The chosen images are the first k of
``numpy.random.RandomState(subset_seed).permutation(N)`` over the name-sorted file list (NumPy keeps this legacy
generator's stream fixed across versions), kept in name order. With ``skip_bad=True`` an unreadable pick is
replaced by the next index of the same permutation, so the count stays k while enough readable images exist. The
subset is chosen before mirroring. Only the chosen images are decoded, so a 2000-image subset of a large folder
opens quickly.

Labels come from ``dataset.json`` at the root of the folder or archive, in StyleGAN2-ADA's format:
``{"labels": [["00000/img00000000.png", 6], ...]}`` (``"labels": null`` means unlabelled). Integer labels are
class indices, one-hot encoded over ``max + 1`` classes (the maximum over all image files found); lists of numbers
are used as float vectors. Every image file must have a label.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from fakeclr.errors import UserError, check_resolution
from fakeclr.data.embedded import DEFAULT_SOURCE, embedded_name, load_lfw

__all__ = [
    "IMAGE_EXTENSIONS", "ImageDataset", "open_dataset", "probe_dataset", "check_resolution", "check_channels", "subset_indices",
    "DEFAULT_SOURCE",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LABELS_FILE = "dataset.json"
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SKIP_HINT = "pass --skip-bad (skip_bad=True) to skip unreadable images"


# ----------------------------------------------------------------------------------------------------------------
# Validation of user-facing settings.


def check_channels(channels: int) -> int:
    """``channels`` as an int if it is 1 or 3, else ``UserError``."""
    if isinstance(channels, bool) or channels not in (1, 3):
        raise UserError(f"Channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return int(channels)


def subset_indices(num: int, subset: int | float | None, seed: int = 0) -> tuple[list[int], int]:
    """The order in which to try images and how many to keep, for a seeded subset of ``num`` images.

    Returns ``(order, k)``: take the first ``k`` readable entries of ``order`` (indices into the name-sorted
    list). Without a subset, or when ``k == num``, ``order`` is ``0..num-1``; otherwise it is
    ``numpy.random.RandomState(seed).permutation(num)``. See the module docstring for how ``k`` is computed.
    """
    if subset is None:
        return list(range(num)), num
    if isinstance(subset, bool) or not isinstance(subset, (int, float, np.integer, np.floating)):
        raise UserError(f"Subset must be an image count such as 2000 or a fraction such as 0.2, got {subset!r}.")
    if isinstance(subset, (int, np.integer)):
        if subset < 1:
            raise UserError(f"Subset count must be at least 1, got {int(subset)}.")
        k = min(int(subset), num)
    else:
        if not 0.0 < float(subset) <= 1.0:
            raise UserError(f"Subset fraction must be in (0, 1], got {float(subset)}; use an int for a count.")
        k = max(1, math.floor(float(subset) * num + 0.5))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise UserError(f"Subset seed must be a whole number in 0..4294967295, got {seed!r}.")
    if k >= num:
        return list(range(num)), num
    return [int(i) for i in np.random.RandomState(int(seed)).permutation(num)], k


# ----------------------------------------------------------------------------------------------------------------
# Sources: where the encoded images come from.


def _is_listed(relpath: str) -> bool:
    """True for an image file that is not hidden and not inside a hidden folder or ``__MACOSX``."""
    parts = relpath.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return relpath.lower().endswith(IMAGE_EXTENSIONS)


class _Source:
    """Sorted image names plus a way to open each one; subclasses say where the bytes live."""

    description: str
    names: list[str]

    def where(self, name: str) -> str:
        """How to name image ``name`` in a message."""
        raise NotImplementedError

    def open(self, name: str) -> contextlib.AbstractContextManager[Image.Image]:
        """A context manager yielding the (lazily decoded) PIL image ``name``."""
        raise NotImplementedError

    def open_header(self, name: str) -> contextlib.AbstractContextManager[Image.Image]:
        """Like :meth:`open`, for reading the header only (size and mode)."""
        return self.open(name)

    def labels_file(self) -> tuple[str, bytes] | None:
        """``(where, content)`` of ``dataset.json``, or None when there is none."""
        return None

    def close(self) -> None:
        pass


class _FolderSource(_Source):
    def __init__(self, root: Path):
        self.root = root
        self.description = str(root)
        names, any_file = [], False
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in filenames:
                any_file = True
                rel = os.path.relpath(os.path.join(dirpath, fname), root).replace(os.sep, "/")
                if _is_listed(rel):
                    names.append(rel)
        if not any_file:
            raise UserError(f"Data folder '{root}' is empty; put the training images (png, jpg, webp, bmp) in it.")
        if not names:
            raise UserError(
                f"Data folder '{root}' contains no images; expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}.")
        self.names = sorted(names)

    def where(self, name: str) -> str:
        return f"'{self.root / name}'"

    def open(self, name: str):
        return Image.open(self.root / name)

    def labels_file(self):
        path = self.root / LABELS_FILE
        if not path.is_file():
            return None
        return f"'{path}'", path.read_bytes()


class _ZipIndex:
    """The members of a zip archive that a data set reads, as arrays: sorted ``names`` and, row for row, the
    local-header offset, compressed and uncompressed size, CRC-32, compression method and encryption flag.

    About 40 bytes a member besides its name, where :class:`zipfile.ZipFile` keeps a ``ZipInfo`` object and a
    dictionary entry (about 600 bytes: 31 MiB for 50,000 members, in the training process and in every
    DataLoader worker). :meth:`read` builds it from the central directory itself (APPNOTE.TXT 4.3.12-4.3.16,
    with Zip64), so that no ``ZipInfo`` objects exist even while the archive opens; an archive it does not
    understand (split, prefixed, malformed) is indexed through :mod:`zipfile` instead. Members are read at their
    offsets by :meth:`_ZipSource.read`.
    """

    TYPES = {"offset": np.int64, "csize": np.int64, "size": np.int64, "crc": np.uint32, "method": np.int16,
             "encrypted": bool}
    FIELDS = tuple(TYPES)

    def __init__(self, names: list[str], columns: dict[str, np.ndarray]):
        order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [names[k] for k in order]
        for field in self.FIELDS:
            setattr(self, field, columns[field][order])

    @classmethod
    def read(cls, path: Path) -> "_ZipIndex":
        """The index of the archive at ``path`` (directories left out); ``zipfile.BadZipFile`` if unreadable."""
        with open(path, "rb") as f:
            try:
                return cls._parse(f)
            except (zipfile.BadZipFile, struct.error, ValueError):
                pass
        with zipfile.ZipFile(path) as z:                           # the general (and strict) reader
            infos = [i for i in z.infolist() if not i.is_dir()]
            columns = {"offset": [i.header_offset for i in infos], "csize": [i.compress_size for i in infos],
                       "size": [i.file_size for i in infos], "crc": [i.CRC for i in infos],
                       "method": [i.compress_type for i in infos], "encrypted": [i.flag_bits & 1 for i in infos]}
            return cls([i.filename for i in infos], cls._arrays(columns))

    @staticmethod
    def _arrays(columns) -> dict[str, np.ndarray]:
        return {k: np.asarray(columns[k], dtype=t) for k, t in _ZipIndex.TYPES.items()}

    @classmethod
    def _parse(cls, f) -> "_ZipIndex":
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        tail_at = max(0, file_size - (1 << 16) - 22)
        f.seek(tail_at)
        tail = f.read()
        at = len(tail)
        while True:       # the end of central directory record: the last one whose comment ends the file
            at = tail.rfind(b"PK\x05\x06", 0, at)
            if at < 0:
                raise zipfile.BadZipFile("no end of central directory")
            if len(tail) - at >= 22 and at + 22 + struct.unpack_from("<H", tail, at + 20)[0] == len(tail):
                break
        disk, cd_disk, _, count, cd_size, cd_offset = struct.unpack_from("<4H2L", tail, at + 4)
        if 0xFFFF in (disk, cd_disk, count) or 0xFFFFFFFF in (cd_size, cd_offset):
            loc = tail[at - 20:at] if at >= 20 else b""             # the Zip64 locator just before it
            if loc[:4] != b"PK\x06\x07":
                raise zipfile.BadZipFile("no Zip64 locator")
            (eocd64_at,) = struct.unpack("<Q", loc[8:16])
            f.seek(eocd64_at)
            rec = f.read(56)
            if rec[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("no Zip64 end record")
            disk, cd_disk, _, count, cd_size, cd_offset = struct.unpack("<2L4Q", rec[16:56])
        if disk or cd_disk or cd_offset + cd_size > file_size:
            raise zipfile.BadZipFile("split or prefixed archive")
        f.seek(cd_offset)
        cd = f.read(cd_size)
        names: list[str] = []
        cols = {k: np.empty(count, dtype=t) for k, t in cls.TYPES.items()}
        pos, n = 0, 0
        for _ in range(count):
            if cd[pos:pos + 4] != b"PK\x01\x02":
                raise zipfile.BadZipFile("bad central directory entry")
            (flags, method, crc, csize, size, name_len, extra_len, comment_len,
             offset) = _CENTRAL_HEADER.unpack_from(cd, pos)
            raw = cd[pos + 46:pos + 46 + name_len]
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
            extra = cd[pos + 46 + name_len:pos + 46 + name_len + extra_len]
            pos += 46 + name_len + extra_len + comment_len
            if 0xFFFFFFFF in (size, csize, offset):
                size, csize, offset = _zip64_extra(extra, size, csize, offset)
            if name.endswith("/"):
                continue
            names.append(name)
            for k, v in (("offset", offset), ("csize", csize), ("size", size), ("crc", crc), ("method", method),
                         ("encrypted", flags & 1)):
                cols[k][n] = v
            n += 1
        return cls(names, {k: v[:n] for k, v in cols.items()})

    def row(self, name: str) -> int | None:
        k = bisect.bisect_left(self.names, name)
        return k if k < len(self.names) and self.names[k] == name else None


# A central directory entry's fields from its flags on (APPNOTE.TXT 4.3.12): flags, method, (time, date), CRC-32,
# sizes, name/extra/comment lengths, (disk, attributes), local header offset.
_CENTRAL_HEADER = struct.Struct("<8x2H4x3L3H8xL")


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of the Zip64 extra field (id 1) for those of ``size, csize, offset`` that are 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            size = next(values) if size == 0xFFFFFFFF else size
            csize = next(values) if csize == 0xFFFFFFFF else csize
            offset = next(values) if offset == 0xFFFFFFFF else offset
            return size, csize, offset
        pos += 4 + length
    raise zipfile.BadZipFile("missing Zip64 extra field")


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")      # the 30 bytes before a member's name (APPNOTE.TXT 4.3.7)


class _ZipSource(_Source):
    def __init__(self, path: Path):
        self.path = path
        self.description = str(path)
        self._index = self._read_index()
        entries = self._index.names
        if not entries:
            raise UserError(f"Archive '{path}' is empty; put the training images (png, jpg, webp, bmp) in it.")
        self.names = [n for n in entries if _is_listed(n)]
        if not self.names:
            raise UserError(
                f"Archive '{path}' contains no images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}.")

    def _read_index(self) -> _ZipIndex:
        """The central directory as a :class:`_ZipIndex` (the archive is closed again)."""
        self._pid, self._archive, self._file = os.getpid(), _archive_stat(self.path), None
        try:
            return _ZipIndex.read(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise UserError(f"Archive '{self.path}' is not a readable zip file ({e}); re-create it.") from e

    def where(self, name: str) -> str:
        return f"'{name}' in archive '{self.path}'"

    def reopen_if_needed(self) -> None:
        """Re-open the archive in a new process (a forked DataLoader worker must not share the parent's file
        offset), and re-read its index when the file on disk was replaced; a vanished archive has no members
        (they then read as vanished through :func:`fakeclr.data.stream.file_stat`)."""
        now = _archive_stat(self.path)
        if self._pid == os.getpid() and now == self._archive:
            return
        self.close()
        if now != self._archive:
            self._index = _ZipIndex([], _ZipIndex._arrays({k: [] for k in _ZipIndex.FIELDS})) if now is None \
                else self._read_index()
        self._pid, self._archive = os.getpid(), now

    def member_stat(self, name: str) -> tuple[int, int] | None:
        """``(size, CRC-32)`` of a member as the archive on disk has it now; ``None`` if it has none."""
        self.reopen_if_needed()
        k = self._index.row(name)
        return None if k is None else (int(self._index.size[k]), int(self._index.crc[k]))

    def read(self, name: str, head: int | None = None) -> bytes:
        """A member's bytes, read at its offset and checked against its CRC-32 (stored and deflated members;
        other methods and encrypted members go through :mod:`zipfile`). ``head``: only about the first
        ``head`` bytes (of the compressed data, decompressed), unchecked, for reading a header."""
        self.reopen_if_needed()
        ix, k = self._index, self._index.row(name)
        if k is None:
            raise KeyError(name)
        if ix.encrypted[k] or ix.method[k] not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with zipfile.ZipFile(self.path) as z:
                return z.read(name)
        if self._file is None:
            self._file = open(self.path, "rb")
        fd, at = self._file.fileno(), int(ix.offset[k])     # positional reads: no shared file offset
        header = _LOCAL_HEADER.unpack(os.pread(fd, _LOCAL_HEADER.size, at))
        if header[0] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header of {name}")
        at += _LOCAL_HEADER.size + header[9] + header[10]   # then the name and the extra field
        data = os.pread(fd, int(ix.csize[k]) if head is None else min(head, int(ix.csize[k])), at)
        if ix.method[k] == zipfile.ZIP_DEFLATED:
            data = zlib.decompressobj(-15).decompress(data)
        if head is not None:
            return data
        if len(data) != ix.size[k] or zlib.crc32(data) != int(ix.crc[k]):
            raise zipfile.BadZipFile(f"bad CRC-32 or size of {name}")
        return data

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None       # re-opened where it is used
        return state

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Image.Image]:
        with Image.open(io.BytesIO(self.read(name))) as im:
            yield im

    @contextlib.contextmanager
    def open_header(self, name: str) -> Iterator[Image.Image]:
        """The image from its first 64 KiB (a header after a longer EXIF block: from the whole member)."""
        try:
            im = Image.open(io.BytesIO(self.read(name, head=1 << 16)))
        except Exception:
            im = Image.open(io.BytesIO(self.read(name)))
        with im:
            yield im

    def labels_file(self):
        if self._index.row(LABELS_FILE) is None:
            return None
        return f"'{LABELS_FILE}' in archive '{self.path}'", self.read(LABELS_FILE)

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._file = None


def _archive_stat(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


class _EmbeddedSource(_Source):
    def __init__(self, name: str):
        assert name == "lfw"
        self.description = "embedded:lfw"
        self.arrays = load_lfw()  # [100, 32, 32] uint8
        self.names = [f"lfw/{i:03d}.png" for i in range(len(self.arrays))]
        self._index = {n: i for i, n in enumerate(self.names)}

    def where(self, name: str) -> str:
        return f"'{name}' of the embedded LFW set"

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Image.Image]:
        yield Image.fromarray(self.arrays[self._index[name]])


def _open_source(source: str | os.PathLike | None) -> _Source:
    """The :class:`_Source` for a user-given source, or ``UserError`` when it cannot be one."""
    name = embedded_name(source)
    if name is not None:
        return _EmbeddedSource(name)
    path = Path(os.path.expanduser(os.fspath(source)))
    if not path.exists():
        raise UserError(
            f"Data source '{path}' does not exist; pass an image folder, a .zip archive, or {DEFAULT_SOURCE}.")
    if path.is_dir():
        return _FolderSource(path)
    if zipfile.is_zipfile(path):
        return _ZipSource(path)
    if path.suffix.lower() == ".zip":
        raise UserError(f"Archive '{path}' is not a readable zip file; re-create it.")
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise UserError(f"Data source '{path}' is a single image; pass the folder that contains the images.")
    raise UserError(f"Data source '{path}' is neither a folder nor a zip archive of images.")


# ----------------------------------------------------------------------------------------------------------------
# Decoding and conversion of one image.


class _BadImage(Exception):
    """An image file that PIL cannot read; carries the reason."""


def _composite_on_black(im: Image.Image) -> Image.Image:
    """An image with alpha as 'L' or 'RGB', each value scaled by ``alpha / 255`` and rounded (black behind)."""
    gray = im.mode in ("LA", "La")
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint32)  # [H, W, 4]
    out = (rgba[..., :3] * rgba[..., 3:] + 127) // 255  # round(v * a / 255) for integers
    out = out.astype(np.uint8)
    return Image.fromarray(out[..., 0] if gray else out)


def _wide_gray_to_l(im: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as 8-bit 'L' (see the module docstring for the scaling)."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        a = a * 255.0 if a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0 else a
    elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
        a = np.clip(a.astype(np.float64), 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8))


def _normalize_mode(im: Image.Image) -> Image.Image:
    """``im`` as mode 'L' (grayscale data) or 'RGB' (everything else); see step 2 of the module docstring."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in _ALPHA_MODES:
        return _composite_on_black(im)
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I") or im.mode == "F":
        return _wide_gray_to_l(im)
    if im.mode in ("L", "RGB"):
        return im
    return im.convert("RGB")


def _decode(src: _Source, name: str) -> Image.Image:
    """Image ``name`` fully decoded, upright, as 'L' or 'RGB'; ``_BadImage`` when PIL cannot read it."""
    try:
        with src.open(name) as im:
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a broken EXIF block does not make the pixels unreadable
                pass
            return _normalize_mode(im)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, zlib/zip errors, ... for bad files
        raise _BadImage(str(e) or type(e).__name__) from e


def _header(src: _Source, name: str) -> tuple[int, bool]:
    """``(min(width, height), is_grayscale)`` of image ``name`` from its header; ``_BadImage`` if unreadable."""
    try:
        with src.open_header(name) as im:
            return min(im.size), im.mode in _GRAY_MODES
    except Exception as e:
        raise _BadImage(str(e) or type(e).__name__) from e


def crop_and_resize(im: Image.Image, resolution: int) -> Image.Image:
    """Centre-crop ``im`` to a square and resize it to ``resolution`` with LANCZOS (skipped if already that size)."""
    w, h = im.size
    s = min(w, h)
    if w != h:
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if s != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return im


def to_chw(im: Image.Image) -> np.ndarray:
    """A PIL 'L' or 'RGB' image as a contiguous uint8 array ``[C, H, W]``."""
    a = np.asarray(im, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return np.ascontiguousarray(a)


def _load(src: _Source, name: str, resolution: int, channels: int) -> np.ndarray:
    """Image ``name`` through steps 1-5 of the module docstring: uint8 ``[channels, resolution, resolution]``."""
    im = _decode(src, name)
    im = im.convert("L" if channels == 1 else "RGB")
    return to_chw(crop_and_resize(im, resolution))


# ----------------------------------------------------------------------------------------------------------------
# Labels.


def _parse_labels(where: str, content: bytes, names: Sequence[str]) -> np.ndarray | None:
    """Labels for ``names`` from dataset.json: int64 ``[N]`` (classes), float32 ``[N, D]`` (vectors) or None."""
    def bad(why: str) -> UserError:
        return UserError(f"Label file {where} is malformed ({why}); expected "
                         '{"labels": [["relative/path.png", class_or_vector], ...]}.')

    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not valid JSON: {e}") from e
    if not isinstance(doc, dict) or "labels" not in doc:
        raise bad('no top-level "labels" key')
    entries = doc["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise bad('"labels" is not a list')
    table: dict[str, object] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise bad(f"entry {str(entry)[:60]} is not a [path, label] pair")
        key = entry[0].replace("\\", "/")
        table[key[2:] if key.startswith("./") else key] = entry[1]
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(f"Label file {where} has no label for {len(missing)} of the {len(names)} images "
                        f"(first: '{missing[0]}'); add the missing entries or delete the label file.")
    values = [table[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if min(values) < 0:
            raise bad("a class label is negative")
        return np.asarray(values, dtype=np.int64)
    def is_vector(v: object) -> bool:
        return isinstance(v, list) and len(v) > 0 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if all(is_vector(v) for v in values) and len({len(v) for v in values}) == 1:
        return np.asarray(values, dtype=np.float32)
    raise bad("labels must all be class indices (ints >= 0) or all number lists of one length")


def _label_tensor(raw: np.ndarray | None, keep: Sequence[int], num_classes: int) -> torch.Tensor:
    """float32 ``[len(keep), label_dim]``: one-hot rows for class labels, the vectors as given, or ``[K, 0]``."""
    if raw is None:
        return torch.zeros(len(keep), 0, dtype=torch.float32)
    if raw.ndim == 1:
        out = torch.zeros(len(keep), num_classes, dtype=torch.float32)
        out[torch.arange(len(keep)), torch.from_numpy(raw[list(keep)])] = 1.0
        return out
    return torch.from_numpy(raw[list(keep)].copy())


# ----------------------------------------------------------------------------------------------------------------
# The data set.


class DatasetItems(Dataset):
    """What every data set of this package offers on top of its raw images ``[N, C, R, R]`` and ``labels``:
    ``len`` (``2 N`` with ``mirror``: item ``i >= N`` is image ``i - N`` flipped left-right, same label), the label
    size, and :meth:`batch`. Subclasses give ``num_raw``, ``mirror``, ``labels`` and :meth:`raw_batch`."""

    @property
    def label_dim(self) -> int:
        return self.labels.shape[1]

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    def __len__(self) -> int:
        return self.num_raw * (2 if self.mirror else 1)

    def raw_batch(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw images ``raw [B]`` (indices below N) as a new uint8 tensor ``[B, C, R, R]``."""
        raise NotImplementedError

    def batch(self, indices: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Many items at once: uint8 ``[B, C, R, R]`` and float32 ``[B, label_dim]`` for indices in ``[0, len)``."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)})")
        raw = idx % self.num_raw
        images = self.raw_batch(raw)
        flip = idx >= self.num_raw
        if flip.any():
            images[flip] = images[flip].flip(3)
        return images, self.labels[raw]


class ImageDataset(DatasetItems):
    """A decoded image data set held in memory, optionally doubled by x-flips.

    ``images`` is uint8 ``[N, C, R, R]`` (N raw images), ``labels`` float32 ``[N, label_dim]``. With
    ``mirror=True`` the data set has ``2 N`` items: item ``i >= N`` is item ``i - N`` flipped left-right, with the
    same label. ``dataset[i]`` returns ``(image uint8 [C, R, R], label float32 [label_dim])``; the image is a copy.
    Usually built by :func:`open_dataset`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                 names: Sequence[str] | None = None, *, mirror: bool = False, source: str = "",
                 skipped: Sequence[str] = (), label_kind: str | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be uint8 [N, C, R, R], got {images.dtype} {list(images.shape)}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
        n = images.shape[0]
        labels = torch.zeros(n, 0, dtype=torch.float32) if labels is None else labels.to(torch.float32)
        if labels.ndim != 2 or labels.shape[0] != n:
            raise ValueError(f"labels must be [{n}, label_dim], got {list(labels.shape)}")
        self.images = images.contiguous()
        self.labels = labels.contiguous()
        self.names = list(names) if names is not None else [f"{i:08d}" for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} images")
        self.mirror = bool(mirror)
        self.source = source
        self.skipped = list(skipped)
        self.label_kind = label_kind if labels.shape[1] else None  # "class", "vector" or None

    @property
    def num_raw(self) -> int:
        """Number of distinct images N (before mirroring)."""
        return self.images.shape[0]

    @property
    def resolution(self) -> int:
        return self.images.shape[2]

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        i = int(idx)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {idx} out of range for a data set of {n} images")
        raw = i % self.num_raw
        image = self.images[raw]
        image = image.flip(2) if i >= self.num_raw else image.clone()
        return image, self.labels[raw].clone()

    def raw_batch(self, raw: torch.Tensor) -> torch.Tensor:
        return self.images[raw]                      # advanced indexing: a copy

    def __repr__(self) -> str:
        return (f"ImageDataset({self.source!r}: {self.num_raw} images{' x2 mirrored' if self.mirror else ''}, "
                f"{self.num_channels}x{self.resolution}x{self.resolution}, label_dim={self.label_dim})")


def _try_image(fn: Callable[[], object], src: _Source, name: str, skip_bad: bool, skipped: list[str]):
    """``fn()``, or None after recording ``name`` as skipped; ``UserError`` for a bad image without skip_bad."""
    try:
        return fn()
    except _BadImage as e:
        if not skip_bad:
            raise UserError(f"Cannot read image {src.where(name)} ({e}); fix or delete it, or {_SKIP_HINT}.") from e
        skipped.append(name)
        return None


def _probe(src: "_Source", names, order, want: int, resolution: int | None, channels: int | None, skip_bad: bool,
           skipped: list[str]):
    """Pass 1 of :func:`open_dataset`: the headers of the first ``want`` readable images of ``order`` (nothing is
    decoded) and the resolution and channel count they imply. Returns ``(headers, next position, R, C)``."""
    if resolution is not None:
        resolution = check_resolution(resolution)
    if channels is not None:
        channels = check_channels(channels)
    headers: dict[int, tuple[int, bool]] = {}
    pos = 0
    while len(headers) < want and pos < len(order):
        i = order[pos]
        pos += 1
        info = _try_image(lambda: _header(src, names[i]), src, names[i], skip_bad, skipped)
        if info is not None:
            headers[i] = info
    if not headers:
        raise UserError(f"No readable images in '{src.description}' ({len(skipped)} skipped as unreadable).")
    if resolution is None:
        side = min(s for s, _ in headers.values())
        if side < 4:
            raise UserError(f"The smallest image in '{src.description}' is {side} pixels wide; "
                            "images must be at least 4x4.")
        resolution = 1 << (side.bit_length() - 1)
    if channels is None:
        channels = 1 if all(g for _, g in headers.values()) else 3
    return headers, pos, resolution, channels


def probe_dataset(source: str | os.PathLike | None = None, resolution: int | None = None, channels: int | None = None,
                  subset: int | float | None = None, subset_seed: int = 0, skip_bad: bool = False) -> tuple[int, int]:
    """``(resolution, channels)`` that :func:`open_dataset` would give, from the image headers alone."""
    src = _open_source(source)
    try:
        names = src.names
        order, want = subset_indices(len(names), subset, subset_seed)
        _, _, resolution, channels = _probe(src, names, order, want, resolution, channels, skip_bad, [])
    finally:
        src.close()
    return resolution, channels


def open_dataset(source: str | os.PathLike | None = None, resolution: int | None = None,
                 channels: int | None = None, mirror: bool = False, subset: int | float | None = None,
                 subset_seed: int = 0, skip_bad: bool = False, use_labels: bool = True,
                 stream: bool | None = None):
    """Open, decode and convert a data set into memory (see the module docstring for every rule), or open it
    for decoding on demand (:class:`~fakeclr.data.stream.StreamingDataset`, the same items).

    Args:
        source: image folder, zip archive, ``"embedded:lfw"`` / ``"lfw"``, or None for the embedded default.
        resolution: output side R (power of two >= 4); None = native (smallest side, rounded down to 2^k).
        channels: 1 or 3; None = 1 if every chosen image is stored as grayscale, else 3.
        mirror: double the data set with x-flipped copies (after the subset).
        subset: int count or float fraction in (0, 1] of a seeded fixed subset; None = all images.
        subset_seed: seed of the subset permutation.
        skip_bad: skip unreadable images (listed in ``dataset.skipped``) instead of raising ``UserError``.
        use_labels: read ``dataset.json`` labels; False gives ``label_dim == 0``.
        stream: True decodes images when they are drawn (headers only at opening; an image unreadable then is
            an error, not skipped); None streams when the decoded images would exceed
            :data:`~fakeclr.data.stream.STREAM_THRESHOLD_BYTES`; False decodes everything now.
    Returns:
        An :class:`ImageDataset` with ``images`` uint8 ``[N, C, R, R]`` and ``labels`` float32 ``[N, D]``, or a
        :class:`~fakeclr.data.stream.StreamingDataset`.
    """
    src = _open_source(source)
    streaming = False
    try:
        names = src.names
        order, want = subset_indices(len(names), subset, subset_seed)
        raw_labels = None
        if use_labels and (found := src.labels_file()) is not None:
            raw_labels = _parse_labels(found[0], found[1], names)
        skipped: list[str] = []

        # Pass 1: headers of the chosen images (cheap) decide the native resolution and the channel count.
        headers, pos, resolution, channels = _probe(src, names, order, want, resolution, channels, skip_bad, skipped)
        from .stream import STREAM_THRESHOLD_BYTES, StreamingDataset, decoded_bytes, file_stat
        if stream is None:
            stream = decoded_bytes(len(headers), channels, resolution) > STREAM_THRESHOLD_BYTES
        if stream:
            keep = sorted(headers)
            num_classes = int(raw_labels.max()) + 1 if raw_labels is not None and raw_labels.ndim == 1 else 0
            kind = None if raw_labels is None else ("class" if raw_labels.ndim == 1 else "vector")
            streaming = True
            return StreamingDataset(src, [names[i] for i in keep], [file_stat(src, names[i]) for i in keep],
                                    _label_tensor(raw_labels, keep, num_classes), resolution, channels,
                                    mirror=mirror, label_kind=kind, skipped=sorted(skipped))

        # Pass 2: decode; a file that fails only here is replaced by the next one of the permutation.
        arrays: dict[int, np.ndarray] = {}
        pending = list(headers)
        while len(arrays) < want:
            if pending:
                i = pending.pop(0)
            elif pos < len(order):
                i, pos = order[pos], pos + 1
            else:
                break
            a = _try_image(lambda: _load(src, names[i], resolution, channels), src, names[i], skip_bad, skipped)
            if a is not None:
                arrays[i] = a
        if not arrays:
            raise UserError(f"No readable images in '{src.description}' ({len(skipped)} skipped as unreadable).")
    finally:
        if not streaming:
            src.close()

    keep = sorted(arrays)
    images = torch.from_numpy(np.stack([arrays[i] for i in keep]))
    num_classes = int(raw_labels.max()) + 1 if raw_labels is not None and raw_labels.ndim == 1 else 0
    labels = _label_tensor(raw_labels, keep, num_classes)
    kind = None if raw_labels is None else ("class" if raw_labels.ndim == 1 else "vector")
    return ImageDataset(images, labels, [names[i] for i in keep], mirror=mirror, source=src.description,
                        skipped=sorted(skipped), label_kind=kind)
