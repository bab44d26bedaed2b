"""Feature extraction for the metrics: images of a data set, a folder or a generator through a detector.

Protocol facts from StyleGAN2-ADA's ``metrics/metric_utils.py`` that we follow:

* real images are the data set's images without x-flips (``*_full`` metrics use every image, in order);
* generated images are ``G(z, c)`` with ``z ~ N(0, I)``, ``c`` the label of a random data set item, default
  truncation (psi = 1) and per-call random noise, quantised as ``(img * 127.5 + 128).clamp(0, 255)`` then cast
  to uint8 (the cast truncates, so this rounds half up);
* grayscale images are replicated to 3 channels before the detector (done in
  :func:`fakeclr.metrics.inception.preprocess`).

Unlike StyleGAN2-ADA, every random draw comes from one ``torch.Generator`` seeded by the caller (latents and
labels) and from the global RNG re-seeded inside :func:`torch.random.fork_rng` (the generator's noise), so a
metric is a function of its seed and the caller's RNG state is left untouched.

Real-image features are cached under ``<cache>/gan-metrics/`` keyed by the SHA-256 of the images themselves
(which covers the data set, its resolution and channel count), the detector and the item count.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..files import atomic_write

__all__ = [
    "quantize", "generator_images", "generate_batch", "image_features", "dataset_features", "generator_features",
    "read_folder", "folder_features", "stats_cache_dir", "Progress", "detector_tag", "random_labels",
    "uniform_labels", "LABEL_RULES", "images_digest",
]


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] ``[N, C, H, W]`` -> uint8, as StyleGAN2-ADA's metrics do (round half up)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class Progress:
    """Prints ``tag: done/total (rate/s)`` to stderr at most every ``interval`` seconds (and at the end)."""

    def __init__(self, tag: str, total: int, enabled: bool = True, interval: float = 10.0):
        self.tag, self.total, self.enabled, self.interval = tag, total, enabled, interval
        self.start = self.last = time.time()

    def update(self, done: int) -> None:
        now = time.time()
        if self.enabled and (now - self.last >= self.interval or done >= self.total):
            rate = done / max(now - self.start, 1e-9)
            print(f"fakeclr: {self.tag}: {done}/{self.total} ({rate:.1f}/s)", file=sys.stderr, flush=True)
            self.last = now


def random_labels(dataset, num: int, gen: torch.Generator) -> torch.Tensor:
    """Labels ``[num, label_dim]`` of uniformly drawn data set items (``[num, 0]`` when unlabelled): StyleGAN2-ADA's
    rule (``metric_utils.py``: the label of a random training item), so classes follow the data's frequencies."""
    labels = dataset.labels if dataset is not None else torch.zeros(1, 0)
    if labels.shape[1] == 0:
        return torch.zeros(num, 0)
    idx = torch.randint(labels.shape[0], (num,), generator=gen)
    return labels[idx]


def uniform_labels(c_dim: int, num: int, gen: torch.Generator) -> torch.Tensor:
    """One-hot labels ``[num, c_dim]`` of uniformly drawn classes (``[num, 0]`` when ``c_dim`` is 0): DiffAugment
    BigGAN-CIFAR's rule (``utils.sample``: ``y_.sample_()``, a categorical draw over the classes)."""
    if not c_dim:
        return torch.zeros(num, 0)
    return torch.nn.functional.one_hot(torch.randint(c_dim, (num,), generator=gen), c_dim).float()


LABEL_RULES = ("dataset", "uniform")


def generate_batch(G, z: torch.Tensor, c: torch.Tensor, **G_kwargs) -> torch.Tensor:
    """``G(z, c)`` quantised to uint8 ``[N, C, H, W]``; ``c`` of shape ``[N, 0]`` means unconditional."""
    c = c if G.c_dim else None
    return quantize(G(z, c, **G_kwargs))


@torch.no_grad()
def generator_images(G, num: int, seed: int, device, batch: int = 16, dataset=None,
                     G_kwargs: dict | None = None, labels: str = "dataset",
                     whole_batches: bool = False) -> Iterator[torch.Tensor]:
    """Yield uint8 batches ``[<=batch, C, R, R]`` of ``num`` generated images, the same for the same ``seed``.

    ``labels`` is the rule for a conditional ``G``'s labels: ``"dataset"`` (:func:`random_labels`, needs
    ``dataset``) or ``"uniform"`` (:func:`uniform_labels`). ``whole_batches`` runs ``G`` on ``batch`` latents every
    time and drops the surplus of the last batch, for a ``G`` whose output depends on its batch (BatchNorm with
    batch statistics).
    """
    if labels not in LABEL_RULES:
        raise ValueError(f"unknown label rule {labels!r}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    fork = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(seed)
        done = 0
        while done < num:
            n = min(batch, num - done)
            m = batch if whole_batches else n
            z = torch.randn(m, G.z_dim, generator=gen).to(device)
            if labels == "uniform":
                c = uniform_labels(G.c_dim, m, gen).to(device)
            else:
                c = random_labels(dataset, m, gen).to(device)
            if G.c_dim and c.shape[1] != G.c_dim:
                raise UserError(f"The network is conditional on {G.c_dim} labels but the data set has "
                                f"{c.shape[1]}; pass the data set it was trained on.")
            yield generate_batch(G, z, c, **(G_kwargs or {}))[:n]
            done += n


@torch.no_grad()
def image_features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device, batch: int = 32,
                   progress: Progress | None = None) -> torch.Tensor:
    """``fn`` (uint8 ``[B, C, H, W]`` on ``device`` -> ``[B, D]``) over ``images`` in batches.

    Returns float32 ``[N, D]`` on the CPU.
    """
    out = []
    for i in range(0, images.shape[0], batch):
        out.append(fn(images[i:i + batch].to(device)).float().cpu())
        if progress:
            progress.update(i + out[-1].shape[0])
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def generator_features(fn: Callable[[torch.Tensor], torch.Tensor], G, num: int, seed: int, device,
                       batch: int = 32, dataset=None, G_kwargs: dict | None = None,
                       progress: Progress | None = None, labels: str = "dataset",
                       whole_batches: bool = False) -> torch.Tensor:
    """Features ``[num, D]`` (float32, CPU) of ``num`` generated images (see :func:`generator_images`)."""
    out, done = [], 0
    for imgs in generator_images(G, num, seed, device, batch=batch, dataset=dataset, G_kwargs=G_kwargs,
                                 labels=labels, whole_batches=whole_batches):
        out.append(fn(imgs).float().cpu())
        done += imgs.shape[0]
        if progress:
            progress.update(done)
    return torch.cat(out)


def stats_cache_dir() -> Path:
    from .weights import cache_dir
    return cache_dir() / "gan-metrics"


def detector_tag(module: torch.nn.Module) -> str:
    """A short digest of a network's weights, so that cached features follow the detector that made them."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(str(text)).name or str(text)).strip("-")[:40] or "data"


def images_digest(images) -> str:
    """A short SHA-256 of a set of images (uint8 ``[N, C, R, R]``: their bytes; a streamed data set's images:
    their files' names and recorded stats), recorded beside a metric so that a result names the exact images
    it was compared with."""
    h = hashlib.sha256(json.dumps(list(images.shape)).encode())
    h.update(images.fingerprint.encode() if hasattr(images, "fingerprint") else images.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device, name: str,
                     detector: str, max_items: int | None = None, batch: int = 32, cache: bool = True,
                     progress: bool = True) -> torch.Tensor:
    """Features ``[N, D]`` of the first ``max_items`` of ``images`` (uint8 ``[N, C, R, R]``), cached on disk.

    ``name`` names the cache file (e.g. the data set's source), ``detector`` identifies the feature network
    (:func:`detector_tag`). The cache key hashes the image bytes, so a changed data set never hits a stale file;
    for a streamed data set (:class:`~fakeclr.data.stream.LazyImages`) it hashes the files' names and recorded
    stats instead, and the images are decoded one batch at a time.
    """
    lazy = hasattr(images, "fingerprint")          # a streamed data set's images, decoded batch by batch
    if max_items is not None:
        images = images.head(max_items) if lazy else images[:max_items]
    h = hashlib.sha256(json.dumps({"shape": list(images.shape), "detector": detector}).encode())
    h.update(images.fingerprint.encode() if lazy else images.contiguous().numpy().tobytes())
    n, c, r = images.shape[0], images.shape[1], images.shape[2]
    path = stats_cache_dir() / f"{_slug(name)}-{r}px-{c}ch-{n}-{detector}-{h.hexdigest()[:16]}.safetensors"
    if cache and path.is_file():
        try:
            return load_file(str(path))["features"]
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # unreadable: recompute and overwrite
    feats = image_features(fn, images, device, batch=batch, progress=Progress("real-image features", n, progress))
    if cache:
        atomic_write(path, lambda tmp: save_file({"features": feats.contiguous()}, tmp))
    return feats


def read_folder(folder: str | os.PathLike) -> list[torch.Tensor]:
    """All images under ``folder`` (recursively, name-sorted) as uint8 ``[C, H, W]`` tensors at their own size.

    Colour images become RGB, grayscale stay 1-channel (the detector replicates them); alpha is dropped.
    """
    from ..data import IMAGE_EXTENSIONS
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"Image folder {root} does not exist; pass a folder of png/jpg images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise UserError(f"Folder {root} contains no images ({', '.join(IMAGE_EXTENSIONS)}).")
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("L") if im.mode in ("1", "L", "LA", "I", "I;16", "F") else im.convert("RGB")
                a = np.asarray(im)
        except OSError as e:
            raise UserError(f"Cannot read image {p} ({e}); fix or remove it.") from None
        out.append(torch.from_numpy(np.array(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))))
    return out


@torch.no_grad()
def folder_features(fn: Callable[[torch.Tensor], torch.Tensor], images: list[torch.Tensor], device,
                    batch: int = 32, tag: str = "folder features", progress: bool = True) -> torch.Tensor:
    """Features ``[N, D]`` of images of any sizes: consecutive images of equal shape are batched together."""
    out, i, prog = [], 0, Progress(tag, len(images), progress)
    while i < len(images):
        j = i
        while j < len(images) and j - i < batch and images[j].shape == images[i].shape:
            j += 1
        out.append(fn(torch.stack(images[i:j]).to(device)).float().cpu())
        i = j
        prog.update(i)
    return torch.cat(out)
