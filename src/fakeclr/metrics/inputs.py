"""What the metric commands start from: a generator out of a network snapshot and the data it was trained on."""

from __future__ import annotations

import os

import torch

from ..errors import UserError

__all__ = ["load_generator", "training_dataset"]


def load_generator(network: str | os.PathLike, net: str = "G_ema", device="cpu") -> torch.nn.Module:
    """The generator ``net`` (``G_ema`` or ``G``) of a ``network-snapshot-*.safetensors``, in eval mode."""
    from ..network_file import load_networks
    return load_networks(network, (net,), device=device)[net]


def training_dataset(network: str | os.PathLike | None, data: str | None, G: torch.nn.Module | None = None):
    """The real images to compare with, without x-flips.

    ``data`` (a folder, zip or ``lfw``) is opened at the generator's resolution and channel count; without it,
    the data set recorded in the snapshot's header (source, resolution, channels, subset) is reopened.
    """
    from ..data import open_dataset
    if data is not None:
        res = G.img_resolution if G is not None else None
        ch = G.img_channels if G is not None else None
        return open_dataset(data, resolution=res, channels=ch, use_labels=bool(G is not None and G.c_dim))
    if network is None:
        raise UserError("Pass --data (the training images).")
    from ..network_file import read_network_header
    cfg = (read_network_header(network).get("meta") or {}).get("config", {}).get("data")
    if not cfg or not cfg.get("source"):
        raise UserError(f"{network} does not record its training data; pass --data.")
    return open_dataset(cfg["source"], resolution=cfg.get("resolution"), channels=cfg.get("channels"),
                        subset=cfg.get("subset"), subset_seed=cfg.get("subset_seed", 0),
                        skip_bad=cfg.get("skip_bad", False), use_labels=cfg.get("use_labels", False))
