"""Data sets too large to hold decoded: images decoded on demand, by DataLoader workers during training.

:func:`fakeclr.data.open_dataset` returns a :class:`StreamingDataset` with ``stream=True`` (or, with
``stream=None``, when the decoded images would take more than :data:`STREAM_THRESHOLD_BYTES`). It has the
interface of :class:`~fakeclr.data.ImageDataset` — ``len``, ``dataset[i]``, ``batch(indices)``, ``images`` (a lazy
view), ``names``, labels — and gives the same pixels: each image goes through the same decoding steps, when it
is drawn. Opening reads the image headers only (to find the native resolution and channel count) and records
each file's size and modification time (a folder) or CRC and size (a zip member); an image that changed or
vanished since then stops the run with one sentence naming it, instead of training on other data than the run
started with.

Memory held: the names, the labels and one stat record per image (tens of bytes each), a zip's index as arrays
(:class:`fakeclr.data.zipindex.ZipIndex`), never the pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from .dataset import DatasetItems
from .decode import BadImage, load_image

__all__ = ["STREAM_THRESHOLD_BYTES", "StreamingDataset", "LazyImages", "decoded_bytes", "streams_by_default"]

STREAM_THRESHOLD_BYTES = 2 << 30     # stream=None streams a data set whose decoded images exceed 2 GiB


def decoded_bytes(num_images: int, channels: int, resolution: int) -> int:
    """Bytes of ``num_images`` decoded uint8 images ``[C, R, R]`` (mirroring adds none: flips are made per batch)."""
    return num_images * channels * resolution * resolution


def streams_by_default(num_images: int, channels: int, resolution: int) -> bool:
    """Whether ``stream=None`` streams: the decoded images would exceed :data:`STREAM_THRESHOLD_BYTES`."""
    return decoded_bytes(num_images, channels, resolution) > STREAM_THRESHOLD_BYTES


class LazyImages:
    """The images of a :class:`StreamingDataset` as a read-only uint8 ``[N, C, R, R]`` view: ``shape``, ``len``,
    slicing and integer-tensor indexing decode what they return. ``head(n)`` is a view of the first ``n``;
    ``fingerprint`` identifies the files (names and their recorded stats) without decoding them."""

    def __init__(self, dataset: "StreamingDataset", count: int | None = None):
        self._ds = dataset
        self._n = dataset.num_raw if count is None else min(count, dataset.num_raw)

    @property
    def shape(self) -> torch.Size:
        return torch.Size([self._n, self._ds.num_channels, self._ds.resolution, self._ds.resolution])

    def __len__(self) -> int:
        return self._n

    def head(self, n: int | None) -> "LazyImages":
        return self if n is None else LazyImages(self._ds, min(n, self._n))

    def __getitem__(self, key) -> torch.Tensor:
        """``[C, R, R]`` for an int, ``[B, C, R, R]`` for a slice or an index tensor."""
        if isinstance(key, int) or (torch.is_tensor(key) and key.ndim == 0):
            i = int(key) + (self._n if int(key) < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"image {key} out of range for {self._n} images")
            return self._ds.raw_batch([i])[0]
        if isinstance(key, slice):
            idx = range(*key.indices(self._n))
        else:
            idx = torch.as_tensor(key, dtype=torch.long).reshape(-1).tolist()
        return self._ds.raw_batch(list(idx))

    @property
    def fingerprint(self) -> str:
        return self._ds.fingerprint(self._n)


class StreamingDataset(DatasetItems):
    """A data set decoded on demand; the same items as :class:`~fakeclr.data.ImageDataset` would hold.

    Built by :func:`fakeclr.data.open_dataset`. ``src`` is the data source (re-opened in each worker process),
    ``names`` the chosen images in name order, ``stats`` what each file looked like when the data set was opened.
    """

    streaming = True

    def __init__(self, src, names: Sequence[str], stats: Sequence[tuple], labels: torch.Tensor, resolution: int,
                 channels: int, *, mirror: bool, label_kind: str | None, skipped: Sequence[str] = (),
                 pad: bool = False):
        self._src = src
        self.names = list(names)
        self._stats = np.array(stats, dtype=np.int64).reshape(len(self.names), -1)   # [N, 2] (or [N, 0])
        self.labels = labels.to(torch.float32).contiguous()
        self._resolution, self._channels, self._pad = int(resolution), int(channels), bool(pad)
        self.mirror = bool(mirror)
        self.source = src.description
        self.skipped = list(skipped)
        self.label_kind = label_kind if self.labels.shape[1] else None

    # -------------------------------------------------------------- the ImageDataset interface
    @property
    def num_raw(self) -> int:
        return len(self.names)

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def images(self) -> LazyImages:
        return LazyImages(self)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        i = int(idx) + (n if int(idx) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {idx} out of range for a data set of {n} images")
        images, labels = self.batch([i])
        return images[0], labels[0]

    def raw_batch(self, raw) -> torch.Tensor:
        """The decoded images ``raw`` (indices below N): uint8 ``[B, C, R, R]``."""
        raw = torch.as_tensor(raw, dtype=torch.long).reshape(-1).tolist()
        out = torch.empty(len(raw), self._channels, self._resolution, self._resolution, dtype=torch.uint8)
        for k, i in enumerate(raw):
            out[k].numpy()[...] = self._decode(int(i))
        return out

    def content_digest(self) -> str:
        """The files' sizes as they were when the data set was opened (and a zip member's CRC-32), not their
        pixels: a resume does not decode the data again. A folder file's modification time is left out, so that
        a copied folder is the same data."""
        import hashlib
        h = hashlib.sha256(f"{self._resolution}|{self._channels}".encode())
        h.update(np.ascontiguousarray(self._stats[:, :self._src.content_stat_fields]).tobytes())
        return h.hexdigest()

    def fingerprint(self, count: int | None = None) -> str:
        """A string that changes when any of the first ``count`` files, the resolution or the channels do."""
        import hashlib
        h = hashlib.sha256(f"{self.source}|{self._resolution}|{self._channels}".encode())
        for name, stat in list(zip(self.names, self._stats))[:count]:
            h.update(f"{name}|{tuple(stat.tolist())}".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"StreamingDataset({self.source!r}: {self.num_raw} images{' x2 mirrored' if self.mirror else ''}, "
                f"{self._channels}x{self._resolution}x{self._resolution}, label_dim={self.label_dim})")

    # -------------------------------------------------------------- decoding, checked against the recorded files
    def _decode(self, i: int) -> np.ndarray:
        name = self.names[i]
        now = self._src.stat(name)
        if now is None:
            raise UserError(f"Image {self._src.where(name)} vanished after the run opened the data set; restore it "
                            "(or start a new run on the data as it is now).")
        if now != tuple(self._stats[i].tolist()):
            raise UserError(f"Image {self._src.where(name)} changed after the run opened the data set; restore it "
                            "(or start a new run on the data as it is now).")
        try:
            return load_image(self._src, name, self._resolution, self._channels, self._pad)
        except BadImage as e:
            raise UserError(f"Cannot read image {self._src.where(name)} any more ({e}); restore it (or start a new "
                            "run on the data as it is now).") from e
