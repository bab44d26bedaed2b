"""Loss terms of StyleGAN2 training, grouped by the phase that optimises them.

The training loop runs four phases per iteration (StyleGAN2 Sec. 3.1 "lazy regularisation"):

=========  =====================  ==========================================================
phase      optimises              terms (this module)
=========  =====================  ==========================================================
``Gmain``  G, every iteration     :class:`GeneratorAdversarial` (non-saturating logistic)
``Greg``   G, every pl_interval   :class:`PathLength`
``Dmain``  D, every iteration     :class:`DiscriminatorAdversarial`
``Dreg``   D, every r1_interval   :class:`R1`
=========  =====================  ==========================================================

A term is a small object with a ``phase`` and a ``__call__(ctx) -> scalar loss``. Methods built on top (the
contrastive family) add their own terms to a phase; the loop never changes. Terms of one phase share a
:class:`PhaseContext`, which memoises the forward passes (a fake batch, D on the real batch with its last-block
features) so that an added term reuses them instead of running G or D again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from .. import dist

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


@dataclass
class DOutput:
    """D on a batch: ``logits [N, 1]`` and last-block ``features [N, C4, 4, 4]``."""
    logits: torch.Tensor
    features: torch.Tensor


@dataclass
class PhaseContext:
    """Inputs of one phase on one process, with memoised forward passes shared by the phase's terms.

    Attributes:
        real_img: ``[N, C, H, W]`` float in [-1, 1] (already pseudo-augmented by APA where that is on).
        real_c: ``[N, c_dim]``.
        gen_z: ``[N, z_dim]``, ``gen_c: [N, c_dim]``: this phase's latents.
        gain: multiplier of the phase's loss (the lazy-regularisation interval for the reg phases).
        iteration: training iteration (0-based) at which the phase runs; cur_nimg: images shown so far.
    """
    G: torch.nn.Module
    D: torch.nn.Module
    augment: Callable[[torch.Tensor], torch.Tensor]
    real_img: torch.Tensor
    real_c: torch.Tensor
    gen_z: torch.Tensor
    gen_c: torch.Tensor
    style_mixing_prob: float
    gain: float = 1.0
    iteration: int = 0
    cur_nimg: int = 0
    stats: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    real_logit_observers: list[Callable[[torch.Tensor], None]] = field(default_factory=list)
    fake_mixing: tuple[int, torch.Tensor] | None = None
    last_mixing: tuple[int, torch.Tensor] | None = None
    _cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ reporting
    def report(self, name: str, value: torch.Tensor) -> None:
        """Record a statistic (any shape; its mean over the tick is logged)."""
        self.stats.setdefault(name, []).append(value.detach().float().flatten())

    # ------------------------------------------------------------------ forward passes
    def run_G(self, z: torch.Tensor, c: torch.Tensor,
              mixing: tuple[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``G(z, c)`` with style mixing regularisation (StyleGAN Sec. 3.1): ``(img [N,C,H,W], ws [N,L,w_dim])``.

        With probability ``style_mixing_prob`` the layers from a random cutoff on take the styles of a second
        latent. ``mixing = (cutoff, second_z)`` repeats a given choice instead of drawing one; the choice made
        is left in ``last_mixing``. The mapping network's W average is updated by the main latent only.
        """
        ws = self.G.mapping(z, c, update_emas=True)
        num_ws = ws.shape[1]
        if mixing is None and self.style_mixing_prob > 0:
            cutoff = torch.randint(1, num_ws, ()).item() if num_ws > 1 else num_ws
            if torch.rand(()).item() >= self.style_mixing_prob:
                cutoff = num_ws
            mixing = (cutoff, torch.randn_like(z))
        if mixing is not None and mixing[0] < num_ws:
            ws2 = self.G.mapping(mixing[1], c, update_emas=False)
            ws = torch.cat([ws[:, :mixing[0]], ws2[:, mixing[0]:]], dim=1)
        self.last_mixing = mixing
        img = self.G.synthesis(ws)
        return img, ws

    def fake(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The phase's fake batch ``G(gen_z, gen_c)``, computed once: ``(img, ws)``; its style-mixing choice is
        kept in ``fake_mixing``."""
        if "fake" not in self._cache:
            self._cache["fake"] = self.run_G(self.gen_z, self.gen_c)
            self.fake_mixing = self.last_mixing
        return self._cache["fake"]

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> DOutput:
        """D on the augmented images."""
        logits, features = self.D(self.augment(img), c, return_features=True)
        return DOutput(logits, features)

    def d_fake(self, detach: bool) -> DOutput:
        """D on the phase's fake batch (G detached in D phases), computed once."""
        key = ("d_fake", detach)
        if key not in self._cache:
            img = self.fake()[0]
            self._cache[key] = self.run_D(img.detach() if detach else img, self.gen_c)
        return self._cache[key]

    def d_real(self, requires_grad: bool = False) -> tuple[torch.Tensor, DOutput]:
        """D on the real batch, computed once: ``(input image, output)``; the input needs grad for R1."""
        key = ("d_real", requires_grad)
        if key not in self._cache:
            img = self.real_img.detach().requires_grad_(requires_grad)
            out = self.run_D(img, self.real_c)
            self.report("Loss/scores/real", out.logits)
            self.report("Loss/signs/real", out.logits.sign())
            for observe in self.real_logit_observers:
                observe(out.logits.detach())
            self._cache[key] = (img, out)
        return self._cache[key]


class Term(Protocol):
    phase: str

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        """The term's contribution to the phase's loss: a scalar (already averaged over the batch)."""


class GeneratorAdversarial:
    """Non-saturating logistic loss for G (Goodfellow et al. 2014): ``E[softplus(-D(G(z)))]``."""
    phase = "Gmain"

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        out = ctx.d_fake(detach=False)
        ctx.report("Loss/scores/fake", out.logits)
        loss = F.softplus(-out.logits)
        ctx.report("Loss/G/loss", loss)
        return loss.mean()


class DiscriminatorAdversarial:
    """Logistic loss for D: ``E[softplus(D(G(z)))] + E[softplus(-D(x))]``."""
    phase = "Dmain"

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        fake = ctx.d_fake(detach=True)
        _, real = ctx.d_real(requires_grad=False)
        loss_fake = F.softplus(fake.logits)
        loss_real = F.softplus(-real.logits)
        ctx.report("Loss/D/loss", loss_fake + loss_real)
        return loss_fake.mean() + loss_real.mean()


class R1:
    """R1 gradient penalty (Mescheder et al. 2018): ``gamma/2 * E[||grad_x D(x)||^2]`` on real images.

    The gradient is taken w.r.t. the images before augmentation (the augmentation is differentiable), as in
    StyleGAN2-ADA.
    """
    phase = "Dreg"

    def __init__(self, gamma: float):
        self.gamma = gamma

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        img, real = ctx.d_real(requires_grad=True)
        (grad,) = torch.autograd.grad(real.logits.sum(), img, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3])
        ctx.report("Loss/r1_penalty", penalty)
        loss = penalty * (self.gamma / 2)
        ctx.report("Loss/D/reg", loss)
        # `real.logits * 0` keeps every D parameter in the graph, so all of them get a (zero) gradient.
        return (real.logits.squeeze(1) * 0 + loss).mean()


class PathLength(torch.nn.Module):
    """Path-length regularisation (StyleGAN2 Sec. 3.2, Eq. 4): ``E[(||J_w^T y||_2 - a)^2]``.

    ``y ~ N(0, I) / sqrt(H*W)`` and ``a`` is the running mean of the lengths (``pl_mean``, decay ``decay``). The
    penalty uses ``1/batch_shrink`` of the phase's latents. ``pl_mean`` is a buffer: it is training state.
    """
    phase = "Greg"

    def __init__(self, weight: float, batch_shrink: int = 2, decay: float = 0.01):
        super().__init__()
        self.weight = weight
        self.batch_shrink = batch_shrink
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, ctx: PhaseContext) -> torch.Tensor:
        n = max(ctx.gen_z.shape[0] // self.batch_shrink, 1)
        img, ws = ctx.run_G(ctx.gen_z[:n], ctx.gen_c[:n])
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        # The running mean follows the mean over all processes (the value), with this process's gradient path.
        local = lengths.mean()
        overall = dist.all_reduce_sum(local.detach().clone()) / dist.world_size()
        pl_mean = self.pl_mean.lerp(local + (overall - local).detach(), self.decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        ctx.report("Loss/pl_penalty", penalty)
        loss = penalty * self.weight
        ctx.report("Loss/G/reg", loss)
        # `img[:, 0, 0, 0] * 0` keeps the synthesis output in the graph, so every G parameter gets a gradient.
        return (img[:, 0, 0, 0] * 0 + loss).mean()


def stylegan2_terms(r1_gamma: float, pl_weight: float, pl_batch_shrink: int, pl_decay: float) -> list:
    """The four terms of StyleGAN2 training; a zero weight drops its term (and so its phase)."""
    terms: list = [GeneratorAdversarial(), DiscriminatorAdversarial()]
    if pl_weight > 0:
        terms.append(PathLength(pl_weight, pl_batch_shrink, pl_decay))
    if r1_gamma > 0:
        terms.append(R1(r1_gamma))
    return terms
