"""Opening a data set for few-shot GAN training: decoded once into one uint8 tensor (large sets: decoded when
drawn, see :mod:`fakeclr.data.stream`).

How the images are found and ordered: :mod:`fakeclr.data.sources`; how each one is decoded and converted:
:mod:`fakeclr.data.decode`; labels: :mod:`fakeclr.data.labels`.

Defaults of :func:`open_dataset`:

* ``resolution=None`` takes the *native* resolution: the smallest side among the chosen images, rounded down to
  a power of two, so nothing is ever upsampled (a prepared archive, whose images are all R x R, opens at R).
* ``channels=None`` gives 1 when every chosen image is stored as grayscale (PIL modes 1, L, LA, I, I;16, F) and 3
  otherwise (palette images count as colour).

Subsets (``subset=``): ``k = count`` for an int count (at most N; more is refused), ``k = max(1, floor(fraction *
N + 0.5))`` for a float fraction in (0, 1], where N is the number of image files found. The chosen images are the first k of
``numpy.random.RandomState(subset_seed).permutation(N)`` over the name-sorted file list (NumPy keeps this legacy
generator's stream fixed across versions), kept in name order. With ``skip_bad=True`` an unreadable pick is
replaced by the next index of the same permutation, so the count stays k while enough readable images exist. The
subset is chosen before mirroring. Only the chosen images are decoded, so a 2000-image subset of a large folder
opens quickly.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import torch

from fakeclr.errors import UserError, check_resolution
from fakeclr.data.dataset import ImageDataset
from fakeclr.data.decode import BadImage, load_image, read_header
from fakeclr.data.labels import label_tensor, parse_labels
from fakeclr.data.sources import Source, open_source
from fakeclr.data.stream import StreamingDataset, streams_by_default

__all__ = ["open_dataset", "probe_dataset", "check_channels", "subset_indices"]

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
        if subset > num:
            raise UserError(f"--subset {int(subset)} asks for more images than the data have ({num}); give at most "
                            f"{num}, or a fraction below 1.")
        k = int(subset)
    else:
        if not 0.0 < float(subset) <= 1.0:
            raise UserError(f"Subset fraction must be in (0, 1], got {float(subset)}; use an int for a count.")
        k = max(1, math.floor(float(subset) * num + 0.5))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise UserError(f"Subset seed must be a whole number in 0..4294967295, got {seed!r}.")
    if k >= num:
        return list(range(num)), num
    return [int(i) for i in np.random.RandomState(int(seed)).permutation(num)], k


def _try_image(fn: Callable[[], object], src: Source, name: str, skip_bad: bool, skipped: list[str]):
    """``fn()``, or None after recording ``name`` as skipped; ``UserError`` for a bad image without skip_bad."""
    try:
        return fn()
    except BadImage as e:
        if not skip_bad:
            raise UserError(f"Cannot read image {src.where(name)} ({e}); fix or delete it, or {_SKIP_HINT}.") from e
        skipped.append(name)
        return None


def _probe(src: "Source", names, order, want: int, resolution: int | None, channels: int | None, skip_bad: bool,
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
        info = _try_image(lambda: read_header(src, names[i]), src, names[i], skip_bad, skipped)
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
    src = open_source(source)
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
    src = open_source(source)
    streaming = False
    try:
        names = src.names
        order, want = subset_indices(len(names), subset, subset_seed)
        raw_labels = None
        if use_labels and (found := src.labels_file()) is not None:
            raw_labels = parse_labels(found[0], found[1], names)
        skipped: list[str] = []

        # Pass 1: headers of the chosen images (cheap) decide the native resolution and the channel count.
        headers, pos, resolution, channels = _probe(src, names, order, want, resolution, channels, skip_bad, skipped)
        if stream is None:
            stream = streams_by_default(len(headers), channels, resolution)
        if stream:
            keep = sorted(headers)
            num_classes = int(raw_labels.max()) + 1 if raw_labels is not None and raw_labels.ndim == 1 else 0
            kind = None if raw_labels is None else ("class" if raw_labels.ndim == 1 else "vector")
            streaming = True
            return StreamingDataset(src, [names[i] for i in keep], [src.stat(names[i]) for i in keep],
                                    label_tensor(raw_labels, keep, num_classes), resolution, channels,
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
            a = _try_image(lambda: load_image(src, names[i], resolution, channels), src, names[i], skip_bad, skipped)
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
    labels = label_tensor(raw_labels, keep, num_classes)
    kind = None if raw_labels is None else ("class" if raw_labels.ndim == 1 else "vector")
    return ImageDataset(images, labels, [names[i] for i in keep], mirror=mirror, source=src.description,
                        skipped=sorted(skipped), label_kind=kind)
