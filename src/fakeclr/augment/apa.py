"""Adaptive Pseudo Augmentation (APA) of Jiang et al. 2021, "Deceive D: Adaptive Pseudo Augmentation for GAN
Training with Limited Data" (NeurIPS 2021).

When D overfits, some of the real images it sees are swapped for the generator's own (detached) samples, which D is
still told are real: for every real image independently,

    x'_i = G(z_i).detach()   with probability p,
    x'_i = x_i               otherwise.

``p`` is adapted with the ADA overfitting heuristic ``r_t = E[sign(D(x_real))]`` (target 0.6): use
:class:`fakeclr.augment.controller.AdaptiveP` and pass its ``p`` here (the authors use ``speed_kimg=500``, and 100
when fine-tuning a pretrained model). In the authors' loop the fakes are the generator's most recent batch, and the
swap is applied wherever D sees reals (main loss and R1), before the usual augmentation.
"""

from __future__ import annotations

import torch

__all__ = ["pseudo_augment"]


def pseudo_augment(real_img: torch.Tensor, fake_img: torch.Tensor, p: float | torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each real image by the matching fake one with probability ``p`` (APA, Jiang et al. 2021).

    Args:
        real_img: ``[N, C, H, W]``.
        fake_img: ``[N, C, H, W]`` generated images; detached here, so no gradient reaches G through this path.
        p: replacement probability (float or 0-dim tensor); ``p <= 0`` keeps every real image (the uniforms are
            drawn anyway, so the random stream does not depend on ``p``).
        generator: optional torch generator on ``real_img``'s device for the Bernoulli draws (one ``U(0, 1)`` per
            image, the reference's draw; default: the global generator).
    Returns:
        ``[N, C, H, W]``: ``where(u_i < p, fake_i, real_i)`` with ``u_i ~ U(0, 1)``.
    """
    if fake_img.shape != real_img.shape:
        raise ValueError(f"pseudo_augment needs fakes shaped like the reals, got {list(fake_img.shape)} for "
                         f"{list(real_img.shape)}.")
    u = torch.rand([real_img.shape[0], 1, 1, 1], generator=generator, device=real_img.device)
    replace = u < p
    return torch.where(replace, fake_img.detach().to(real_img.dtype), real_img)
