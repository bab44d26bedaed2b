"""The data set interface of this package (:class:`DatasetItems`) and the data set held decoded in memory
(:class:`ImageDataset`); :func:`fakeclr.data.open_dataset` builds one (:mod:`fakeclr.data.opening`)."""

from __future__ import annotations

import hashlib

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["DatasetItems", "ImageDataset"]


class DatasetItems(Dataset):
    """What every data set of this package offers on top of its raw images ``[N, C, R, R]`` and ``labels``:
    ``len`` (``2 N`` with ``mirror``: item ``i >= N`` is image ``i - N`` flipped left-right, same label), the label
    size, and :meth:`batch`. Subclasses give ``num_raw``, ``mirror``, ``labels`` and :meth:`raw_batch`.

    ``origin`` says where the images came from when a file listing does not (set by
    :func:`fakeclr.data.open_dataset`; written to a prepared archive's dataset.json): the packed data set and
    split, the subset's rule, count and seed and the source indices it kept; None for a plain folder or zip."""

    origin: dict | None = None

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

    def identity(self) -> dict[str, Any]:
        """What a training state records of its data, to see on resume whether they changed: the image count, a
        sha256 of the image names, and a sha256 of the contents (:meth:`content_digest`) and labels."""
        names = hashlib.sha256("\n".join(self.names).encode()).hexdigest()
        content = hashlib.sha256(self.content_digest().encode())
        content.update(self.labels.contiguous().numpy().tobytes())
        return {"images": self.num_raw, "names": names, "content": content.hexdigest()}

    def content_digest(self) -> str:
        """A sha256 that changes when an image's content does (as cheaply as the data set can tell)."""
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

    def content_digest(self) -> str:
        """The decoded pixels themselves (in memory: about 1 s per GB)."""
        return hashlib.sha256(self.images.numpy().tobytes()).hexdigest()

    def __repr__(self) -> str:
        return (f"ImageDataset({self.source!r}: {self.num_raw} images{' x2 mirrored' if self.mirror else ''}, "
                f"{self.num_channels}x{self.resolution}x{self.resolution}, label_dim={self.label_dim})")
