"""Small files in the formats that CIFAR-10/100 and MNIST-style data are distributed in, written for the tests.

CIFAR batches are written the way Python 2's cPickle wrote them (protocol 2, every ``str`` and the array's bytes as
``BINSTRING`` / ``SHORT_BINSTRING``, the array rebuilt through ``numpy.core.multiarray._reconstruct``), so that
the reader meets what the real files hold; :func:`py3_pickle` writes the same dict the way a Python 3 user would
re-save it (bytes keys, protocol 4). IDX files are written byte by byte from the format's description (big-endian
header).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np


class _Py2Pickler(pickle._Pickler):
    """The pure-Python pickler with Python 2's string opcodes: ``str`` and ``bytes`` both as a byte string."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def py2_pickle(obj) -> bytes:
    """``obj`` pickled as Python 2 with NumPy 1.x would have pickled it (protocol 2)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def py3_pickle(obj) -> bytes:
    """``obj`` with its top-level keys as bytes, pickled by Python 3 (protocol 4)."""
    return pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=4)


def cifar_batch(num: int, seed: int, label_key: str = "labels", num_classes: int = 10) -> dict:
    """A CIFAR-style batch dict: random pixels ``data`` uint8 ``[num, 3072]``, labels, file names."""
    rng = np.random.default_rng(seed)
    return {"batch_label": f"batch {seed}", "data": rng.integers(0, 256, (num, 3072), dtype=np.uint8),
            label_key: [int(x) for x in rng.integers(0, num_classes, num)],
            "filenames": [f"img_{seed}_{i}.png" for i in range(num)]}


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def cifar10_files(per_batch: int = 4, test: int = 3, dumps=py2_pickle) -> dict[str, bytes]:
    """The files of a tiny CIFAR-10: five training batches, the test batch, the meta file."""
    files = {name: dumps(cifar_batch(per_batch, k + 1)) for k, name in enumerate(CIFAR10_TRAIN)}
    files["test_batch"] = dumps(cifar_batch(test, 99))
    files["batches.meta"] = dumps({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                   "horse", "ship", "truck"], "num_vis": 3072})
    return files


def cifar100_files(train: int = 6, test: int = 2) -> dict[str, bytes]:
    def batch(n, seed):
        b = cifar_batch(n, seed, "fine_labels", 100)
        b["coarse_labels"] = [x // 5 for x in b["fine_labels"]]
        return b
    return {"train": py2_pickle(batch(train, 1)), "test": py2_pickle(batch(test, 2)),
            "meta": py2_pickle({"fine_label_names": [f"fine{i}" for i in range(100)],
                                "coarse_label_names": [f"coarse{i}" for i in range(20)]})}


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def write_tar(path: Path, folder: str, files: dict[str, bytes]) -> Path:
    """A gzipped tar of ``folder/<name>`` members, in reverse name order (the real archive is not sorted either)."""
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(files, reverse=True):
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))
    return path


def idx_bytes(values: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, the sizes big-endian, the values."""
    values = np.asarray(values, dtype=np.uint8)
    head = bytes([0, 0, 0x08, values.ndim]) if magic is None else struct.pack(">I", magic)
    return head + b"".join(struct.pack(">I", n) for n in values.shape) + values.tobytes()


def idx_images(num: int, side: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num`` random greyscale images uint8 ``[num, side, side]`` and labels in 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num, side, side), dtype=np.uint8), rng.integers(0, 10, num).astype(np.uint8)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> Path:
    """``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``; returns the images file."""
    folder.mkdir(parents=True, exist_ok=True)
    out = None
    for kind, values in (("images-idx3", images), ("labels-idx1", labels)):
        data = idx_bytes(values)
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        out = out or path
    return out
