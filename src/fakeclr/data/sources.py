"""Sources: where the encoded images of a data set come from, and whether they changed since.

A *source* is an image folder (searched recursively), a zip archive of images (for example one written by
:func:`fakeclr.data.prepare_dataset`), the embedded LFW faces (``"embedded:lfw"``, also ``"lfw"``; see
:mod:`fakeclr.data.embedded`), or a data set packed into arrays (:class:`PackedSource`): CIFAR-10/100's python
batches (``cifar-*-python.tar.gz`` or its extracted folder; :mod:`fakeclr.data.cifar`) and MNIST-style IDX files
(a folder holding them or the images file; :mod:`fakeclr.data.idx`), one split at a time. Image files are those
ending in .png, .jpg, .jpeg, .webp, .bmp, .tif or .tiff (any case); other files are ignored, as are hidden files
and folders (name starting with ".") and ``__MACOSX``.
Images are ordered by their path relative to the source root (``"/"`` separated, plain string sort), so a folder
and a zip of the same files give the same data set; a packed source keeps its distributor's order (CIFAR-10's
batches 1 to 5).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from fakeclr.errors import UserError
from fakeclr.data.cifar import TAR_SUFFIXES, is_cifar_folder, read_cifar
from fakeclr.data.embedded import DEFAULT_SOURCE, embedded_name, load_lfw
from fakeclr.data.idx import IMAGES_PATTERN, find_idx_images, read_idx
from fakeclr.data.labels import LABELS_FILE, parse_labels
from fakeclr.data.packed import PackedImages, check_split
from fakeclr.data.zipindex import LOCAL_HEADER, ZipIndex

__all__ = ["IMAGE_EXTENSIONS", "Source", "FolderSource", "ZipSource", "EmbeddedSource", "PackedSource",
           "open_source"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _is_listed(relpath: str) -> bool:
    """True for an image file that is not hidden and not inside a hidden folder or ``__MACOSX``."""
    parts = relpath.split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return relpath.lower().endswith(IMAGE_EXTENSIONS)


class Source:
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

    # How many leading fields of a stat record say something of the content (a folder's mtime does not: a copied
    # folder is the same data).
    content_stat_fields = 0

    def stat(self, name: str) -> tuple | None:
        """What image ``name`` looks like now: ``(size, mtime_ns)`` in a folder, ``(size, crc)`` in a zip, ``()``
        for the embedded set; ``None`` when it is gone."""
        raise NotImplementedError

    def labels_file(self) -> tuple[str, bytes] | None:
        """``(where, content)`` of ``dataset.json``, or None when there is none."""
        return None

    def labels(self, names: list[str]) -> np.ndarray | None:
        """The labels of ``names`` (see :func:`fakeclr.data.labels.parse_labels`), or None without labels."""
        found = self.labels_file()
        return None if found is None else parse_labels(found[0], found[1], names)

    # The class count when the source knows it (a packed data set); None: one more than the largest label.
    num_classes: int | None = None

    def origin(self) -> dict | None:
        """Where these images came from, when that is more than a listing says: a packed source describes itself;
        an archive written by :func:`fakeclr.data.prepare_dataset` carries what it recorded (``origin`` in its
        dataset.json); None otherwise."""
        found = self.labels_file()
        if found is None:
            return None
        try:
            recorded = json.loads(found[1].decode("utf-8-sig")).get("origin")
        except (UnicodeDecodeError, ValueError, AttributeError):
            return None
        return recorded if isinstance(recorded, dict) else None

    def close(self) -> None:
        pass


class FolderSource(Source):
    content_stat_fields = 1                 # the size
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

    def stat(self, name: str) -> tuple[int, int] | None:
        try:
            st = os.stat(self.root / name)
        except FileNotFoundError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def labels_file(self):
        path = self.root / LABELS_FILE
        if not path.is_file():
            return None
        return f"'{path}'", path.read_bytes()


class ZipSource(Source):
    content_stat_fields = 2                 # the size and the CRC-32
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

    def _read_index(self) -> ZipIndex:
        """The central directory as a :class:`ZipIndex` (the archive is closed again)."""
        self._pid, self._archive, self._file = os.getpid(), _archive_stat(self.path), None
        try:
            return ZipIndex.read(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise UserError(f"Archive '{self.path}' is not a readable zip file ({e}); re-create it.") from e

    def where(self, name: str) -> str:
        return f"'{name}' in archive '{self.path}'"

    def reopen_if_needed(self) -> None:
        """Re-open the archive in a new process (a forked DataLoader worker must not share the parent's file
        offset), and re-read its index when the file on disk was replaced; a vanished archive has no members
        (they then read as vanished through :meth:`stat`)."""
        now = _archive_stat(self.path)
        if self._pid == os.getpid() and now == self._archive:
            return
        self.close()
        if now != self._archive:
            self._index = ZipIndex.empty() if now is None else self._read_index()
        self._pid, self._archive = os.getpid(), now

    def stat(self, name: str) -> tuple[int, int] | None:
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
        header = LOCAL_HEADER.unpack(os.pread(fd, LOCAL_HEADER.size, at))
        if header[0] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header of {name}")
        at += LOCAL_HEADER.size + header[9] + header[10]   # then the name and the extra field
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


class EmbeddedSource(Source):
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

    def stat(self, name: str) -> tuple:
        return ()


class PackedSource(Source):
    """One split of a packed data set (:class:`~fakeclr.data.packed.PackedImages`), image ``i`` named
    ``f"{split}/{i:06d}"`` so that the name order is the distributor's order."""

    def __init__(self, packed: PackedImages):
        self.packed = packed
        self.description = packed.description
        self.names = [f"{packed.split}/{i:06d}" for i in range(len(packed.images))]
        self.num_classes = packed.num_classes

    def _index(self, name: str) -> int:
        return int(name.rsplit("/", 1)[1])

    def where(self, name: str) -> str:
        return f"image {self._index(name)} of the {self.packed.split} split of '{self.description}'"

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Image.Image]:
        a = self.packed.images[self._index(name)]
        yield Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)

    def stat(self, name: str) -> tuple:
        return ()

    def labels(self, names: list[str]) -> np.ndarray:
        return self.packed.labels[[self._index(n) for n in names]]

    def origin(self) -> dict:
        return self.packed.describe()


def _packed(path: Path, split: str | None) -> PackedImages | None:
    """The packed data set at ``path`` (a CIFAR archive or folder, an IDX folder or images file), or None when
    ``path`` is none of those."""
    if path.is_dir():
        if is_cifar_folder(path):
            return read_cifar(path, split or "train")
        if find_idx_images(path):
            return read_idx(path, split)
        return None
    if path.name.lower().endswith(TAR_SUFFIXES):
        return read_cifar(path, split or "train")
    if IMAGES_PATTERN.match(path.name):
        return read_idx(path, split)
    return None


def open_source(source: str | os.PathLike | None, split: str | None = None) -> Source:
    """The :class:`Source` for a user-given source, or ``UserError`` when it cannot be one. ``split`` (``"train"``
    or ``"test"``; None: train, or the split of a named IDX file) chooses the images of a packed data set and is
    refused for any other source."""
    check_split(split)
    name = embedded_name(source)
    if name is not None:
        if split is not None:
            raise UserError(f"--split applies to CIFAR and IDX data, not to {DEFAULT_SOURCE}; leave it out.")
        return EmbeddedSource(name)
    path = Path(os.path.expanduser(os.fspath(source)))
    if not path.exists():
        raise UserError(
            f"Data source '{path}' does not exist; pass an image folder, a .zip archive, or {DEFAULT_SOURCE}.")
    packed = _packed(path, split)
    if packed is not None:
        return PackedSource(packed)
    if split is not None:
        raise UserError(f"--split applies to CIFAR and IDX data, not to '{path}'; leave it out.")
    if path.is_dir():
        return FolderSource(path)
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    if path.suffix.lower() == ".zip":
        raise UserError(f"Archive '{path}' is not a readable zip file; re-create it.")
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise UserError(f"Data source '{path}' is a single image; pass the folder that contains the images.")
    raise UserError(f"Data source '{path}' is neither a folder nor a zip archive of images, nor CIFAR or IDX data.")
