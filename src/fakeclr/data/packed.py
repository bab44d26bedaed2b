"""Images that their distributors ship packed into arrays rather than as image files: the CIFAR-10/100 python
batches (:mod:`fakeclr.data.cifar`) and the IDX files of MNIST and Fashion-MNIST (:mod:`fakeclr.data.idx`).

Each reader returns a :class:`PackedImages`, one split (``"train"`` or ``"test"``) with its class labels;
:class:`fakeclr.data.sources.PackedSource` serves it to :func:`fakeclr.data.open_dataset` like any image source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fakeclr.errors import UserError

__all__ = ["SPLITS", "PackedImages", "check_split"]

SPLITS = ("train", "test")


def check_split(split: str | None) -> str | None:
    """``split`` if it is None, ``"train"`` or ``"test"``, else ``UserError``."""
    if split is not None and split not in SPLITS:
        raise UserError(f"--split must be 'train' or 'test', got {split!r}.")
    return split


@dataclass
class PackedImages:
    """One split of a packed data set, in the distributor's order.

    Attributes:
        images: uint8 ``[N, H, W, C]``, C = 1 (greyscale) or 3 (RGB).
        labels: int64 ``[N]`` class indices in ``0 .. num_classes - 1``.
        num_classes: the data set's class count (10 for CIFAR-10, 100 for CIFAR-100's fine labels).
        description: the path the user gave.
        format: ``"cifar-10"``, ``"cifar-100"`` or ``"idx"``.
        split: ``"train"`` or ``"test"``.
        files: the files (or archive members) read, in reading order.
        class_names: the names of the classes when the data carry them (CIFAR's meta file), else None.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    description: str
    format: str
    split: str
    files: list[str]
    class_names: list[str] | None = None

    def describe(self) -> dict:
        """What an archive records of this source (``origin`` in its dataset.json)."""
        out = {"source": self.description, "format": self.format, "split": self.split, "files": self.files,
               "images": int(len(self.images)), "num_classes": self.num_classes}
        if self.class_names is not None:
            out["class_names"] = self.class_names
        return out
