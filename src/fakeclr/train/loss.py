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

A term is a small object with a ``phase`` and a ``__call__(ctx) -> scalar loss`` (:class:`fakeclr.phase.Term`).
Methods built on top (the contrastive family) add their own terms to a phase; the loop never changes. Terms of one
phase share a :class:`fakeclr.phase.PhaseContext`, which memoises the forward passes.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from .. import dist
from ..phase import PHASES, DOutput, PhaseContext, Term  # noqa: F401  (the loop and terms use them from here too)


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


class GeneratorHinge:
    """Hinge loss for G (Lim & Ye 2017; BigGAN): ``-E[D(G(z))]``."""
    phase = "Gmain"

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        out = ctx.d_fake(detach=False)
        ctx.report("Loss/scores/fake", out.logits)
        loss = -out.logits
        ctx.report("Loss/G/loss", loss)
        return loss.mean()


class DiscriminatorHinge:
    """Hinge loss for D: ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``, with fakes and reals scored by one D
    forward (BigGAN-PyTorch's G_D), so that spectral norm takes one power-iteration step per D step."""
    phase = "Dmain"

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        fake, real = ctx.d_fake_and_real()
        loss_real = F.relu(1 - real.logits)
        loss_fake = F.relu(1 + fake.logits)
        ctx.report("Loss/D/loss", loss_fake + loss_real)
        return loss_real.mean() + loss_fake.mean()


def biggan_terms() -> list:
    """BigGAN's game: the hinge loss, no regulariser (orthogonal regularisation is off in the CIFAR setting)."""
    return [GeneratorHinge(), DiscriminatorHinge()]


def stylegan2_terms(r1_gamma: float, pl_weight: float, pl_batch_shrink: int, pl_decay: float) -> list:
    """The four terms of StyleGAN2 training; a zero weight drops its term (and so its phase)."""
    terms: list = [GeneratorAdversarial(), DiscriminatorAdversarial()]
    if pl_weight > 0:
        terms.append(PathLength(pl_weight, pl_batch_shrink, pl_decay))
    if r1_gamma > 0:
        terms.append(R1(r1_gamma))
    return terms
