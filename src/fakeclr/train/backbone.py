"""Backbones: a network family with its adversarial loss and its schedule, as :data:`fakeclr.config.BACKBONES`
registers them.

A :class:`Backbone` tells the loop how to build G and D for a resolved config, which loss terms play their game
(with their regularisers), in which order one iteration runs the phases, and how ``G_ema`` follows G. The loop
knows no backbone by name; a new one is a builder here or in its own module and an entry in ``BACKBONES``
(docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import TrainConfig
from ..nn import Discriminator, Generator
from ..nn.biggan import BigGANDiscriminator, BigGANGenerator
from .loss import biggan_terms, stylegan2_terms

# One iteration as rounds of phases. A round with a D phase draws its own real batch; every round draws one latent
# batch per phase it lists (whether or not the phase has terms), so that a phase's latents do not depend on which
# others exist. StyleGAN2-ADA: one round, G first.
STYLEGAN2_ROUNDS = (("Gmain", "Greg", "Dmain", "Dreg"),)


@dataclass(frozen=True)
class Backbone:
    """A network family.

    Attributes:
        name: as registered (``stylegan2``).
        networks: ``(cfg, c_dim) -> (G, D)`` for a config whose data resolution and channels are known.
        terms: ``cfg -> [term, ...]``: the adversarial loss and its regularisers, each naming its phase.
        rounds: ``cfg -> ((phase, ...), ...)``: one iteration's phases in order, grouped into rounds (above).
        update_ema: ``(G_ema, G, cfg, iteration, cur_nimg) -> None`` after each iteration, where ``iteration``
            and ``cur_nimg`` count what was done before it.
        synced_buffers: suffixes of G's buffers that are running statistics, averaged over processes.
        fake_labels: ``(data, n, c_dim, device) -> [n, c_dim]``: the labels of a batch of generated images.
        lazy_intervals: ``cfg -> (G's, D's)`` lazy-regularisation intervals, which rescale the optimizers' lr and
            betas (StyleGAN2 App. B); ``(1, 1)`` for a backbone without lazy regularisers.
    """
    name: str
    networks: Callable[[TrainConfig, int], tuple[torch.nn.Module, torch.nn.Module]]
    terms: Callable[[TrainConfig], list]
    rounds: Callable[[TrainConfig], tuple[tuple[str, ...], ...]]
    update_ema: Callable[..., None]
    synced_buffers: tuple[str, ...]
    fake_labels: Callable[..., torch.Tensor]
    lazy_intervals: Callable[[TrainConfig], tuple[int, int]]

    def images_per_iteration(self, cfg: TrainConfig) -> int:
        """Real images one iteration shows D over all processes: the batch times the rounds with a D phase."""
        return cfg.batch * sum(any(p.startswith("D") for p in r) for r in self.rounds(cfg))


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


@torch.no_grad()
def stylegan2_ema(G_ema: torch.nn.Module, G: torch.nn.Module, cfg: TrainConfig, iteration: int,
                  cur_nimg: int) -> None:
    """``G_ema <- beta * G_ema + (1 - beta) * G`` with half-life ``ema_kimg``, ramped up early to at most
    ``ema_rampup * cur_nimg`` images, where ``cur_nimg`` counts the images shown before the iteration that just ran
    (at the first iteration 0, so ``G_ema`` takes ``G``; StyleGAN2-ADA). Buffers are copied."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def labels_from_data(data, n: int, c_dim: int, device) -> torch.Tensor:
    """Labels drawn from the data set's label distribution ``[n, c_dim]`` (StyleGAN2-ADA)."""
    if not c_dim:
        return torch.zeros(n, 0, device=device)
    return data.batch(torch.randint(len(data), (n,)))[1].to(device)


def uniform_labels(data, n: int, c_dim: int, device) -> torch.Tensor:
    """One-hot labels of classes drawn uniformly ``[n, c_dim]`` (BigGAN-PyTorch's ``y_.sample_()``)."""
    if not c_dim:
        return torch.zeros(n, 0, device=device)
    return torch.nn.functional.one_hot(torch.randint(0, c_dim, (n,)), c_dim).float().to(device)


def stylegan2() -> Backbone:
    """StyleGAN2 (Karras et al. 2020) as StyleGAN2-ADA trains it."""
    return Backbone("stylegan2", stylegan2_networks, stylegan2_loss, lambda cfg: STYLEGAN2_ROUNDS, stylegan2_ema,
                    ("w_avg",), labels_from_data, lambda cfg: (cfg.loss.pl_interval, cfg.loss.r1_interval))


# ---------------------------------------------------------------------------------------------------- BigGAN
def biggan_networks(cfg: TrainConfig, c_dim: int) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    """BigGAN's G and D for a resolved config (``network.width`` is the reference's G_ch = D_ch)."""
    n = cfg.network
    if cfg.init.G is not None:
        return BigGANGenerator(**cfg.init.G), BigGANDiscriminator(**cfg.init.D)
    common = dict(c_dim=c_dim, img_resolution=cfg.data.resolution, img_channels=cfg.data.channels, ch=n.width)
    return BigGANGenerator(z_dim=n.z_dim, **common), BigGANDiscriminator(**common)


def biggan_rounds(cfg: TrainConfig) -> tuple[tuple[str, ...], ...]:
    """``d_steps`` D steps, each on its own real batch, then one G step (BigGAN-PyTorch's training function)."""
    return (("Dmain",),) * cfg.d_steps + (("Gmain",),)


@torch.no_grad()
def biggan_ema(G_ema: torch.nn.Module, G: torch.nn.Module, cfg: TrainConfig, iteration: int, cur_nimg: int) -> None:
    """BigGAN-PyTorch's EMA: every entry of the state dict (parameters, power-iteration vectors, BatchNorm
    statistics) ``<- decay * G_ema + (1 - decay) * G`` with ``decay = ema_decay``, except during iterations 1 to
    ``ema_start - 1``, where ``G_ema`` copies G (the reference's test ``itr and itr < start`` lets iteration 0
    decay)."""
    decay = 0.0 if iteration and iteration < cfg.ema_start else cfg.ema_decay
    source, target = G.state_dict(), G_ema.state_dict()
    for key, t in target.items():
        t.copy_(t * decay + source[key] * (1 - decay))


def biggan() -> Backbone:
    """BigGAN (Brock et al. 2019) as DiffAugment's BigGAN-CIFAR trains it: hinge loss, ``d_steps`` D steps per
    G step, a decaying EMA from ``ema_start``, uniformly drawn classes for the fakes."""
    return Backbone("biggan", biggan_networks, lambda cfg: biggan_terms(), biggan_rounds, biggan_ema,
                    ("stored_mean", "stored_var"), uniform_labels, lambda cfg: (1, 1))
