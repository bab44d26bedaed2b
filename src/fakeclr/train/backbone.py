"""Backbones: a network family with its adversarial loss, as :data:`fakeclr.config.BACKBONES` registers them.

A :class:`Backbone` tells the loop how to build G and D for a resolved config and which loss terms play their game
(with their regularisers). The loop knows no backbone by name; a new one is a builder here or in its own module and
an entry in ``BACKBONES`` (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import TrainConfig
from ..nn import Discriminator, Generator
from .loss import stylegan2_terms


@dataclass(frozen=True)
class Backbone:
    """A network family.

    Attributes:
        name: as registered (``stylegan2``).
        networks: ``(cfg, c_dim) -> (G, D)`` for a config whose data resolution and channels are known.
        terms: ``cfg -> [term, ...]``: the adversarial loss and its regularisers, each naming its phase.
    """
    name: str
    networks: Callable[[TrainConfig, int], tuple[torch.nn.Module, torch.nn.Module]]
    terms: Callable[[TrainConfig], list]


def stylegan2_networks(cfg: TrainConfig, c_dim: int) -> tuple[Generator, Discriminator]:
    """G and D for a resolved config (``cfg.data.resolution`` and ``channels`` set): the architecture of the
    ``--init`` file when there is one (``cfg.init``), else the config's network options."""
    n = cfg.network
    # Precision is the run's choice, not the file's; a preset's count is capped at the resolutions there are.
    fp16 = dict(num_fp16_res=min(n.num_fp16_res, cfg.data.resolution.bit_length() - 2),
                fp16_channels_last=n.fp16_channels_last)
    if cfg.init.G is not None:
        return Generator(**{**cfg.init.G, **fp16}), Discriminator(**{**cfg.init.D, **fp16})
    common = dict(c_dim=c_dim, img_resolution=cfg.data.resolution, img_channels=cfg.data.channels,
                  channel_base=n.channel_base, channel_max=n.channel_max, conv_clamp=n.conv_clamp, **fp16)
    G = Generator(z_dim=n.z_dim, w_dim=n.w_dim, mapping_layers=n.mapping_layers, **common)
    D = Discriminator(mbstd_group_size=n.mbstd_group_size, architecture=n.d_architecture, **common)
    return G, D


def stylegan2_loss(cfg: TrainConfig) -> list:
    """Non-saturating logistic loss with lazy R1 and path-length regularisation (StyleGAN2 Sec. 3)."""
    return stylegan2_terms(cfg.loss.r1_gamma, cfg.loss.pl_weight, cfg.loss.pl_batch_shrink, cfg.loss.pl_decay)


def stylegan2() -> Backbone:
    """StyleGAN2 (Karras et al. 2020) as StyleGAN2-ADA trains it."""
    return Backbone("stylegan2", stylegan2_networks, stylegan2_loss)
