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
generator's stream fixed across versions). With ``skip_bad=True`` an unreadable pick is replaced by the next index
of the same permutation, so the count stays k while enough readable images exist. The subset is chosen before
mirroring. Only the chosen images are decoded, so a 2000-image subset of a large folder opens quickly.

``subset_rule`` orders the k chosen images the way a reference code base does; both rules choose the same images
for the same seed, because NumPy's legacy ``RandomState.choice(N, k, replace=False)`` is ``permutation(N)[:k]``:

* ``"stylegan2-ada"`` (default): kept in name order, as StyleGAN2-ADA's ``--subset`` keeps them
  (``training/dataset.py``: shuffle ``arange(N)`` with ``RandomState(seed)``, take the first k, sort), and with it
  InsGen's and FakeCLR's code, which train with that data loader.
* ``"biggan"``: kept in the order drawn, as DiffAugment's BigGAN-CIFAR code keeps its ``--num_samples`` subset
  (``datasets.py``: ``np.random.seed(seed)``, ``np.random.choice(N, k, replace=False)``, over the five training
  batches concatenated; not per class).

The data set's ``origin`` records the rule, the count, the seed and the indices kept (positions in the source's
order, in the data set's order), and for a packed source (CIFAR, IDX) the format and split.
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
from fakeclr.data.labels import label_tensor
from fakeclr.data.sources import PackedSource, Source, open_source
from fakeclr.data.stream import StreamingDataset, streams_by_default

__all__ = ["SUBSET_RULES", "open_dataset", "probe_dataset", "check_channels", "check_subset_rule", "subset_indices"]

SUBSET_RULES = ("stylegan2-ada", "biggan")

_SKIP_HINT = "pass --skip-bad (skip_bad=True) to skip unreadable images"


# ----------------------------------------------------------------------------------------------------------------
# Validation of user-facing settings.


def check_channels(channels: int) -> int:
    """``channels`` as an int if it is 1 or 3, else ``UserError``."""
    if isinstance(channels, bool) or channels not in (1, 3):
        raise UserError(f"Channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return int(channels)


def check_subset_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`SUBSET_RULES`, else ``UserError``."""
    if rule not in SUBSET_RULES:
        raise UserError(f"--subset-rule must be one of {', '.join(SUBSET_RULES)}, got {rule!r}.")
    return rule


def _kept_order(order: list[int], chosen, rule: str) -> list[int]:
    """The chosen indices in the data set's order: name order (``stylegan2-ada``) or drawing order (``biggan``)."""
    if rule == "biggan":
        chosen = set(chosen)
        return [i for i in order if i in chosen]
    return sorted(chosen)


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
           skipped: list[str], pad: bool = False):
    """Pass 1 of :func:`open_dataset`: the headers of the first ``want`` readable images of ``order`` (nothing is
    decoded) and the resolution and channel count they imply. Returns ``(headers, next position, R, C)``. With
    ``pad`` the native resolution is the smallest power of two that holds every chosen image."""
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
    if resolution is None and pad:
        resolution = max(4, 1 << (max(s for s, _ in headers.values()) - 1).bit_length())
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
                  subset: int | float | None = None, subset_seed: int = 0, skip_bad: bool = False,
                  split: str | None = None, pad: bool = False) -> tuple[int, int]:
    """``(resolution, channels)`` that :func:`open_dataset` would give, from the image headers alone."""
    src = open_source(source, split)
    try:
        names = src.names
        order, want = subset_indices(len(names), subset, subset_seed)
        _, _, resolution, channels = _probe(src, names, order, want, resolution, channels, skip_bad, [], pad)
    finally:
        src.close()
    return resolution, channels


def open_dataset(source: str | os.PathLike | None = None, resolution: int | None = None,
                 channels: int | None = None, mirror: bool = False, subset: int | float | None = None,
                 subset_seed: int = 0, skip_bad: bool = False, use_labels: bool = True,
                 stream: bool | None = None, split: str | None = None, pad: bool = False,
                 subset_rule: str = "stylegan2-ada"):
    """Open, decode and convert a data set into memory (see the module docstring for every rule), or open it
    for decoding on demand (:class:`~fakeclr.data.stream.StreamingDataset`, the same items).

    Args:
        source: image folder, zip archive, ``"embedded:lfw"`` / ``"lfw"``, CIFAR-10/100 python batches (archive
            or folder), IDX files (folder or images file), or None for the embedded default.
        resolution: output side R (power of two >= 4); None = native (smallest side, rounded down to 2^k).
        channels: 1 or 3; None = 1 if every chosen image is stored as grayscale, else 3.
        mirror: double the data set with x-flipped copies (after the subset).
        subset: int count or float fraction in (0, 1] of a seeded fixed subset; None = all images.
        subset_seed: seed of the subset permutation.
        subset_rule: the order of the subset's images, ``"stylegan2-ada"`` or ``"biggan"`` (module docstring).
        skip_bad: skip unreadable images (listed in ``dataset.skipped``) instead of raising ``UserError``.
        use_labels: read the labels (dataset.json, or a CIFAR / IDX source's classes); False gives ``label_dim == 0``.
        stream: True decodes images when they are drawn (headers only at opening; an image unreadable then is
            an error, not skipped); None streams when the decoded images would exceed
            :data:`~fakeclr.data.stream.STREAM_THRESHOLD_BYTES`; False decodes everything now.
        split: ``"train"`` or ``"test"`` of a CIFAR or IDX source (None: train, or a named IDX file's own split).
        pad: centre images smaller than ``resolution`` on a zero canvas instead of resizing them
            (:mod:`fakeclr.data.decode`, step 5); a larger image is still resized.
    Returns:
        An :class:`ImageDataset` with ``images`` uint8 ``[N, C, R, R]`` and ``labels`` float32 ``[N, D]``, or a
        :class:`~fakeclr.data.stream.StreamingDataset`.
    """
    check_subset_rule(subset_rule)
    src = open_source(source, split)
    streaming = False
    try:
        names = src.names
        order, want = subset_indices(len(names), subset, subset_seed)
        raw_labels = src.labels(names) if use_labels else None
        own = src.origin()
        num_classes = 0 if raw_labels is None or raw_labels.ndim != 1 else _class_count(raw_labels, src, own)
        kind = None if raw_labels is None else ("class" if raw_labels.ndim == 1 else "vector")
        subset_of = dict(rule=subset_rule, count=want, seed=int(subset_seed)) if want < len(names) else None
        skipped: list[str] = []

        # Pass 1: headers of the chosen images (cheap) decide the native resolution and the channel count.
        headers, pos, resolution, channels = _probe(src, names, order, want, resolution, channels, skip_bad, skipped,
                                                    pad)
        if stream is None:
            stream = streams_by_default(len(headers), channels, resolution)
        if stream:
            keep = _kept_order(order, headers, subset_rule)
            streaming = True
            ds = StreamingDataset(src, [names[i] for i in keep], [src.stat(names[i]) for i in keep],
                                  label_tensor(raw_labels, keep, num_classes), resolution, channels,
                                  mirror=mirror, label_kind=kind, skipped=sorted(skipped), pad=pad)
            ds.origin = _origin(src, own, len(names), keep, subset_of, num_classes)
            return ds

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
            a = _try_image(lambda: load_image(src, names[i], resolution, channels, pad), src, names[i], skip_bad,
                           skipped)
            if a is not None:
                arrays[i] = a
        if not arrays:
            raise UserError(f"No readable images in '{src.description}' ({len(skipped)} skipped as unreadable).")
    finally:
        if not streaming:
            src.close()

    keep = _kept_order(order, arrays, subset_rule)
    images = torch.from_numpy(np.stack([arrays[i] for i in keep]))
    labels = label_tensor(raw_labels, keep, num_classes)
    ds = ImageDataset(images, labels, [names[i] for i in keep], mirror=mirror, source=src.description,
                      skipped=sorted(skipped), label_kind=kind)
    ds.origin = _origin(src, own, len(names), keep, subset_of, num_classes)
    return ds


def _class_count(labels: np.ndarray, src: Source, own: dict | None) -> int:
    """The one-hot size of class labels ``[N]``: the count the source knows (a packed data set, or recorded in an
    archive's origin, so that a subset missing the last class keeps the label size), else ``max + 1``."""
    found = int(labels.max()) + 1 if len(labels) else 1
    known = src.num_classes or (own or {}).get("num_classes")
    return known if isinstance(known, int) and not isinstance(known, bool) and known >= found else found


def _origin(src: Source, own: dict | None, num: int, keep: list[int], subset: dict | None,
            num_classes: int) -> dict | None:
    """The data set's ``origin`` (module docstring): what the source says of itself (``own``), plus the subset taken
    now. A subset of an archive that recorded an origin keeps that record under ``"from"``."""
    if subset is None:
        return own
    packed = isinstance(src, PackedSource)
    out = dict(own) if packed else {"source": src.description, "images": num}
    if num_classes and not packed:
        out["num_classes"] = num_classes
    out["subset"] = dict(subset, count=len(keep))
    out["indices"] = [int(i) for i in keep]
    if own is not None and not packed:
        out["from"] = own
    return out
