"""CIFAR-10 and CIFAR-100 as their authors distribute them: ``cifar-10-python.tar.gz`` /
``cifar-100-python.tar.gz``, or the folder they extract to (``cifar-10-batches-py``, ``cifar-100-python``).

Each batch is a Python 2 pickle (protocol 2) of a dict: ``data`` is a uint8 array ``[N, 3072]`` whose rows hold one
32 x 32 image as three planes, R then G then B, each row-major (1024 bytes per plane); ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100, 100 classes; the 20 ``coarse_labels`` are not used) lists N class indices. The keys are
Python 2 ``str``, read here as text; keys that a Python 3 writer stored as ``bytes`` are read the same.

========  ====================================================  ===================
format    train split (in this order)                           test split
========  ====================================================  ===================
CIFAR-10  ``data_batch_1`` ... ``data_batch_5`` (50,000 images)  ``test_batch`` (10k)
CIFAR-100 ``train`` (50,000 images)                             ``test`` (10k)
========  ====================================================  ===================

The class names come from ``batches.meta`` / ``meta`` when present. A pickle can run code, so every batch is read
through the project's restricted unpickler with the numpy-array allow-list
(:func:`fakeclr.safeload.allow_numpy_arrays`): an array, dicts, lists, strings and numbers load, any other
object is refused before it is built.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fakeclr.errors import UserError
from fakeclr.data.packed import PackedImages
from fakeclr.safeload import RestrictedUnpickler, allow_numpy_arrays

__all__ = ["CIFAR_LAYOUTS", "TAR_SUFFIXES", "is_cifar_folder", "read_cifar"]

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# format -> the member names of each split, the meta file, the label key, the class-name key, the class count.
CIFAR_LAYOUTS = {
    "cifar-10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "meta": "batches.meta",
                 "labels": "labels", "names": "label_names", "classes": 10},
    "cifar-100": {"train": ["train"], "test": ["test"], "meta": "meta", "labels": "fine_labels",
                  "names": "fine_label_names", "classes": 100},
}
_PIXELS = 3 * 32 * 32


def _format_of(names: set[str]) -> str | None:
    """Which CIFAR format a set of file names (base names) is, or None."""
    ten = CIFAR_LAYOUTS["cifar-10"]
    if names & set(ten["train"] + ten["test"] + [ten["meta"]]):
        return "cifar-10"
    if {"train", "test"} & names and "meta" in names:
        return "cifar-100"
    return None


def is_cifar_folder(path: Path) -> bool:
    """Whether folder ``path`` holds CIFAR-10 or CIFAR-100 python batches (files, not sub-folders)."""
    try:
        names = {e.name for e in os.scandir(path) if e.is_file()}
    except OSError:
        return False
    return _format_of(names) is not None


def _unpickle(where: str, data: bytes) -> dict[str, Any]:
    """A batch or meta pickle as a dict with text keys; ``UserError`` for a refused object or a damaged file."""
    def refuse(what: str) -> UserError:
        return UserError(f"CIFAR file {where} holds a Python object ({what}) where a CIFAR batch holds only arrays, "
                         "lists, strings and numbers, so it was not loaded; use the batches as their authors "
                         "distribute them.")
    unpickler = RestrictedUnpickler(io.BytesIO(data), allow_numpy_arrays, refuse=refuse,
                                    refuse_persistent=lambda pid: refuse("a persistent id"), encoding="latin1")
    try:
        obj = unpickler.load()
    except UserError:
        raise
    except Exception as e:  # truncated: EOFError / UnpicklingError; damaged: ValueError, TypeError, ...
        raise UserError(f"CIFAR file {where} is truncated or is not a CIFAR batch ({type(e).__name__}: {e}); "
                        "download the archive again.") from e
    if not isinstance(obj, dict):
        raise UserError(f"CIFAR file {where} holds a {type(obj).__name__}, not the dict of a CIFAR batch; "
                        "download the archive again.")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(where: str, data: bytes, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, 32, 32, 3]`` and int64 ``[N]`` of one batch."""
    d = _unpickle(where, data)
    pixels, labels = d.get("data"), d.get(label_key)
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 2
            and pixels.shape[1] == _PIXELS):
        got = (f"{pixels.dtype} {list(pixels.shape)}" if isinstance(pixels, np.ndarray)
               else type(pixels).__name__)
        raise UserError(f"CIFAR file {where} has no uint8 'data' array of {_PIXELS} bytes per image (found {got}); "
                        "download the archive again.")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1) if labels is not None else None
    except (TypeError, ValueError, OverflowError):
        labels = None
    if labels is None:
        raise UserError(f"CIFAR file {where} has no list of class indices '{label_key}'; download the archive again.")
    if len(labels) != len(pixels):
        raise UserError(f"CIFAR file {where} has {len(labels)} labels for {len(pixels)} images; download the archive "
                        "again.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"CIFAR file {where} has class indices outside 0..{num_classes - 1}; download the archive "
                        "again.")
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)     # R, G, B planes -> [N, H, W, C]
    return np.ascontiguousarray(images), labels


def _class_names(where: str, data: bytes | None, key: str) -> list[str] | None:
    if data is None:
        return None
    names = _unpickle(where, data).get(key)
    if not isinstance(names, list):
        return None
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _read_tar(path: Path, wanted: set[str]) -> dict[str, tuple[str, bytes]]:
    """``{base name: (where, bytes)}`` of the members of tar ``path`` whose base name is in ``wanted``."""
    found: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    f = tar.extractfile(member)
                    data = f.read() if f is not None else b""
                    if len(data) != member.size:
                        raise EOFError(f"member {member.name} ended after {len(data)} of {member.size} bytes")
                    found[base] = (f"'{member.name}' in '{path}'", data)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise UserError(f"Archive '{path}' is truncated or not a readable tar file ({e}); download it again.") from e
    return found


def read_cifar(path: Path, split: str) -> PackedImages:
    """The ``split`` of the CIFAR-10 or CIFAR-100 archive or folder at ``path`` (see the module docstring)."""
    every = {n for layout in CIFAR_LAYOUTS.values() for n in layout["train"] + layout["test"] + [layout["meta"]]}
    if path.is_dir():
        present = {n for n in every if (path / n).is_file()}
        fmt = _format_of(present)
        def load(name: str) -> tuple[str, bytes]:
            try:
                return f"'{path / name}'", (path / name).read_bytes()
            except OSError as e:
                raise UserError(f"Cannot read CIFAR file '{path / name}' ({e.strerror or e}); check the folder.") from e
        files: dict[str, tuple[str, bytes]] = {}
    else:
        files = _read_tar(path, every)
        present = set(files)
        fmt = _format_of(present)
        load = files.__getitem__
    if fmt is None:
        raise UserError(f"'{path}' holds no CIFAR batches (data_batch_1 .. 5 and test_batch, or CIFAR-100's train, "
                        "test and meta); pass cifar-10-python.tar.gz, cifar-100-python.tar.gz or the folder they "
                        "extract to.")
    layout = CIFAR_LAYOUTS[fmt]
    missing = [n for n in layout[split] if n not in present]
    if missing:
        raise UserError(f"'{path}' lacks the {fmt.upper()} {split} batch file(s) {', '.join(missing)}; download the "
                        "archive again or extract all of it.")
    images, labels, read = [], [], []
    for name in layout[split]:
        where, data = load(name)
        x, y = _batch(where, data, layout["labels"], layout["classes"])
        images.append(x)
        labels.append(y)
        read.append(name)
    meta = load(layout["meta"]) if layout["meta"] in present else None
    names = _class_names(meta[0], meta[1], layout["names"]) if meta is not None else None
    if names is not None and len(names) != layout["classes"]:
        names = None
    return PackedImages(np.concatenate(images), np.concatenate(labels), layout["classes"], str(path), fmt, split,
                        read, names)
