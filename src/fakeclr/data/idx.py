"""IDX files, the format of MNIST and Fashion-MNIST: ``train-images-idx3-ubyte`` with ``train-labels-idx1-ubyte``
(the train split) and ``t10k-images-idx3-ubyte`` with ``t10k-labels-idx1-ubyte`` (the test split), each plain or
gzipped (``.gz``).

An IDX file is a big-endian header and the values: two zero bytes, a type code (``0x08``: unsigned bytes, the only
type read here), the number of dimensions d, then d sizes as 32-bit big-endian integers, then the values in
row-major order. So an images file starts with the magic number ``0x00000803`` and sizes ``N, rows, cols``; a labels
file with ``0x00000801`` and ``N``. The file must hold exactly the values its header promises. Images are greyscale
(0 = background).

A folder is searched for ``<prefix>images-idx3-ubyte[.gz]`` files; the test split is the one whose prefix names it
(``t10k`` or ``test``), the train split the other. An images file named directly brings its split and its labels
file, the file beside it with ``labels-idx1`` for ``images-idx3`` in its name.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from fakeclr.errors import UserError
from fakeclr.data.packed import PackedImages

__all__ = ["IMAGES_PATTERN", "idx_split", "find_idx_images", "parse_idx", "read_idx"]

IMAGES_PATTERN = re.compile(r"^(?P<prefix>.*)images[-.]idx3-ubyte(?P<gz>\.gz)?$")
_MAGIC = {3: 0x00000803, 1: 0x00000801}          # unsigned-byte arrays of 3 (images) and 1 (labels) dimensions


def idx_split(images_name: str) -> str:
    """The split an images file's name says: ``"test"`` for a ``t10k`` or ``test`` prefix, else ``"train"``."""
    m = IMAGES_PATTERN.match(images_name)
    prefix = m.group("prefix").lower() if m else ""
    return "test" if "t10k" in prefix or "test" in prefix else "train"


def find_idx_images(folder: Path) -> dict[str, list[Path]]:
    """``{split: [images files]}`` of the IDX images files in ``folder`` (empty when there are none)."""
    out: dict[str, list[Path]] = {}
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and IMAGES_PATTERN.match(p.name))
    except OSError:
        return out
    for p in entries:
        out.setdefault(idx_split(p.name), []).append(p)
    return out


def _read(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in .gz."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"Cannot read IDX file '{path}' ({e.strerror or e}); check the path.") from e
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise UserError(f"IDX file '{path}' is a truncated or damaged gzip file ({e}); download it again.") from e
    return data


def parse_idx(where: str, data: bytes, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file's bytes with ``ndim`` dimensions (3: images, 1: labels; module docstring)."""
    what = "images" if ndim == 3 else "labels"
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != _MAGIC[ndim]:
        found = "fewer than 4 bytes" if magic is None else f"magic number 0x{magic:08x}"
        raise UserError(f"IDX file {where} is not an IDX {what} file of unsigned bytes ({found}, expected "
                        f"0x{_MAGIC[ndim]:08x}); pass the {'images-idx3' if ndim == 3 else 'labels-idx1'}-ubyte file.")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise UserError(f"IDX file {where} ends inside its header; download it again.")
    shape = struct.unpack(f">{ndim}I", data[4:head])
    need = int(np.prod(shape, dtype=np.int64))
    if len(data) - head != need:
        raise UserError(f"IDX file {where} holds {len(data) - head} bytes of values where its header "
                        f"({' x '.join(map(str, shape))}) needs {need}; the file is truncated or damaged, download it "
                        "again.")
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(shape)


def read_idx(path: Path, split: str | None) -> PackedImages:
    """The ``split`` (None: ``"train"`` for a folder, the named file's own split) of an IDX folder or images file."""
    if path.is_dir():
        split = split or "train"
        found = find_idx_images(path).get(split, [])
        if len(found) != 1:
            why = "no" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
            raise UserError(f"Folder '{path}' holds {why} IDX images files for the {split} split; name the "
                            "...images-idx3-ubyte file to read directly.")
        images_path = found[0]
    else:
        images_path = path
        own = idx_split(path.name)
        if split is not None and split != own:
            raise UserError(f"--split {split} contradicts '{path}', which is the {own} split's images file; leave "
                            "out --split or name the folder.")
        split = own
    labels_path = images_path.with_name(images_path.name.replace("images", "labels", 1).replace("idx3", "idx1", 1))
    if not labels_path.is_file():
        raise UserError(f"The labels file '{labels_path}' for '{images_path}' is missing; put it beside the images "
                        "file.")
    images = parse_idx(f"'{images_path}'", _read(images_path), 3)
    labels = parse_idx(f"'{labels_path}'", _read(labels_path), 1).astype(np.int64)
    if len(labels) != len(images):
        raise UserError(f"IDX labels file '{labels_path}' has {len(labels)} labels for the {len(images)} images of "
                        f"'{images_path}'; use the two files of one download.")
    num_classes = int(labels.max()) + 1 if len(labels) else 1
    return PackedImages(np.ascontiguousarray(images[..., None]), labels, num_classes, str(path), "idx", split,
                        [images_path.name, labels_path.name])
