"""What the metric commands start from: a generator out of a network snapshot, the data it was trained on, and a
reference set to compare with instead (``--ref``, e.g. CIFAR-10's 10k test images)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError

__all__ = ["load_generator", "training_dataset", "reference_dataset", "reference_split", "check_reference",
           "recorded_reference"]


def load_generator(network: str | os.PathLike, net: str = "G_ema", device="cpu") -> torch.nn.Module:
    """The generator ``net`` (``G_ema`` or ``G``) of a ``network-snapshot-*.safetensors``, in eval mode."""
    from ..network_file import load_networks
    return load_networks(network, (net,), device=device)[net]


def training_dataset(network: str | os.PathLike | None, data: str | None, G: torch.nn.Module | None = None,
                     whole: bool = False):
    """The real images to compare with, without x-flips.

    ``data`` (a folder, zip or ``lfw``) is opened at the generator's resolution and channel count; without it,
    the data set recorded in the snapshot's header (source, resolution, channels, subset) is reopened.
    ``whole``: the recorded data set without its subset (StyleGAN2-ADA's ``max_size=None``), or None when the
    run trained on every image or ``data`` is given (then the data set above is already whole).
    """
    from ..data import open_dataset
    if data is not None:
        if whole:
            return None
        res = G.img_resolution if G is not None else None
        ch = G.img_channels if G is not None else None
        return open_dataset(data, resolution=res, channels=ch, use_labels=bool(G is not None and G.c_dim))
    if network is None:
        raise UserError("Pass --data (the training images).")
    from ..network_file import read_network_header
    cfg = (read_network_header(network).get("meta") or {}).get("config", {}).get("data")
    if not cfg or not cfg.get("source"):
        raise UserError(f"{network} does not record its training data; pass --data.")
    if whole and cfg.get("subset") is None:
        return None
    return open_dataset(cfg["source"], resolution=cfg.get("resolution"), channels=cfg.get("channels"),
                        subset=None if whole else cfg.get("subset"), subset_seed=cfg.get("subset_seed", 0),
                        skip_bad=cfg.get("skip_bad", False), use_labels=cfg.get("use_labels", False))


_NETWORK_SUFFIXES = (".safetensors", ".pkl", ".pt", ".pth", ".ckpt")


def recorded_reference(network: str | os.PathLike) -> str | None:
    """The reference set a snapshot's training run evaluated ``fid10k`` against (``--metrics-ref``), or None."""
    from ..network_file import read_network_header
    return (read_network_header(network).get("meta") or {}).get("config", {}).get("metrics_ref")


def reference_split(ref: str | os.PathLike, flag: str = "--ref") -> str | None:
    """The split that serves as the reference set: ``"test"`` for CIFAR or IDX data (the held-out images, as
    DiffAugment's ``fid10k`` uses them), None for images (a folder, zip or ``lfw``)."""
    from ..data.sources import PackedSource, open_source
    try:
        open_source(ref, "test").close()
        return "test"
    except UserError as e:
        reason = e                     # images (a split does not apply), or packed data without a readable test split
    src = open_source(ref)
    packed = isinstance(src, PackedSource)
    src.close()
    if packed:
        raise UserError(f"{flag} {ref} is CIFAR or IDX data without a readable test split ({reason}); pass the test "
                        "images (the reference is the held-out split).")
    return None


def check_reference(ref: str | os.PathLike, resolution: int | None = None, channels: int | None = None,
                    flag: str = "--ref") -> tuple[int, int, str | None]:
    """``(resolution, channels, split)`` of the reference images ``ref`` from their headers (``split``: see
    :func:`reference_split`), or ``UserError`` (naming ``flag``) when ``ref`` is missing, no image set, or not at
    the generator's ``resolution`` and ``channels``."""
    from ..data import probe_dataset
    from ..data.embedded import embedded_name
    if embedded_name(ref) is None:
        path = Path(os.path.expanduser(os.fspath(ref)))
        if not path.exists():
            raise UserError(f"{flag} {ref} does not exist; pass the reference images (a folder or zip, e.g. the "
                            "test split written by fakeclr dataset --split test, or the CIFAR archive).")
        if path.is_file() and path.suffix.lower() in _NETWORK_SUFFIXES:
            raise UserError(f"{flag} {ref} is a network file, not images; pass the reference images (a folder or "
                            "zip, e.g. the test split written by fakeclr dataset --split test, or the CIFAR archive).")
    try:
        split = reference_split(ref, flag)
        res, ch = probe_dataset(ref, split=split)
    except UserError as e:
        text = str(e)
        raise UserError(text if text.startswith(flag) else f"{flag} {ref}: {text}") from None
    if (resolution is not None and res != resolution) or (channels is not None and ch != channels):
        raise UserError(f"{flag} {ref} holds {res}x{res} images with {ch} channel(s) but the network makes "
                        f"{resolution}x{resolution} with {channels}; pass reference images of the network's size "
                        f"(fakeclr dataset ... --split test --resolution {resolution} --channels {channels}, with "
                        "--pad for smaller images).")
    return res, ch, split


def reference_dataset(ref: str | os.PathLike, G: torch.nn.Module | None = None, flag: str = "--ref"):
    """Every image of ``ref`` (a folder, zip or ``lfw``; of CIFAR or IDX data its test split): no subset, no
    x-flips, no labels, at its native size, which must be ``G``'s resolution and channel count (checked by
    :func:`check_reference`)."""
    from ..data import open_dataset
    res, ch, split = check_reference(ref, getattr(G, "img_resolution", None), getattr(G, "img_channels", None), flag)
    return open_dataset(ref, resolution=res, channels=ch, use_labels=False, split=split)
