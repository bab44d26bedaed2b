"""Latent continuity (FakeCLR supplementary Fig. 1): how abruptly images change along latent interpolations.

For ``num_pairs`` random latent pairs, ``steps`` frames at ``t = 0, 1/(steps-1), ..., 1`` are generated along a
path in Z (``slerp`` of the directions, or ``lerp``) or in W (``lerp`` or ``slerp`` of the mapped ``w``, all
layers). Between successive frames (images in [0, 1]):

* the **pixel score** is the mean absolute difference over pixels and channels;
* a step is a **jump** when its pixel score exceeds 0.15 (the threshold of the paper's figure, where such steps
  get red borders and the others blue ones);
* the **LPIPS score** measures the same step with LPIPS (VGG16 by default; images below 64 px are upsampled
  bilinearly to 64 px first, since the VGG/AlexNet trunks need that much context).

A generator whose latent space is continuous changes a little at each step; a memorising or collapsed one jumps
between a few images, which shows as a few large steps. The metric reports the mean pixel score, the share of
jumps and the mean LPIPS score; :func:`fakeclr.tools.continuity.continuity_figure` draws the paper's figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .features import random_labels
from .ppl import slerp

__all__ = ["THRESHOLD", "Interpolation", "interpolate", "interpolation_frames", "step_scores", "lpips_steps",
           "latent_continuity"]

THRESHOLD = 0.15  # supplementary Fig. 1: red border above, blue at or below


@dataclass
class Interpolation:
    """Frames ``[P, S, C, H, W]`` (float in [0, 1]) of ``P`` paths with ``S`` steps and their step scores."""

    frames: torch.Tensor
    pixel: torch.Tensor          # [P, S-1] mean |frame[k+1] - frame[k]|
    lpips: torch.Tensor | None   # [P, S-1] LPIPS(frame[k], frame[k+1]) or None

    def summary(self, threshold: float = THRESHOLD) -> dict[str, float]:
        out = {"pixel": float(self.pixel.mean()), "above": float((self.pixel > threshold).float().mean())}
        if self.lpips is not None:
            out["lpips"] = float(self.lpips.mean())
        return out


def interpolate(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Points between ``a, b [P, ...]`` at ``t [S]`` -> ``[P, S, ...]``; ``kind`` is ``'lerp'`` or ``'slerp'``.

    ``slerp`` interpolates the directions on the unit sphere and the norms linearly (for Z the mapping network
    normalises the norm away; for W this keeps the path at a typical radius).
    """
    shape = a.shape[1:]
    a2, b2 = a.reshape(a.shape[0], 1, -1), b.reshape(b.shape[0], 1, -1)
    tt = t.reshape(1, -1, 1).to(a)
    if kind == "lerp":
        out = a2 + (b2 - a2) * tt
    elif kind == "slerp":
        p, s = a2.shape[0], t.numel()
        direction = slerp(a2.expand(p, s, -1).reshape(p * s, -1), b2.expand(p, s, -1).reshape(p * s, -1),
                          tt.expand(p, s, 1).reshape(p * s, 1)).reshape(p, s, -1)
        norm = a2.norm(dim=-1, keepdim=True) * (1 - tt) + b2.norm(dim=-1, keepdim=True) * tt
        out = direction * norm
    else:
        raise ValueError(f"interpolation must be 'lerp' or 'slerp', got {kind!r}")
    return out.reshape(a.shape[0], t.numel(), *shape)


@torch.no_grad()
def interpolation_frames(G, num_pairs: int, steps: int = 10, space: str = "z", kind: str = "slerp", seed: int = 0,
                         device="cpu", dataset=None, truncation_psi: float = 1.0, noise_mode: str = "const",
                         batch: int = 16) -> torch.Tensor:
    """Images ``[num_pairs, steps, C, H, W]`` in [0, 1] along random latent paths (same for the same seed)."""
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(2, num_pairs, G.z_dim, generator=gen)
    c = random_labels(dataset, num_pairs, gen)
    c = c.to(device) if G.c_dim else None
    t = torch.linspace(0, 1, steps)
    if space == "z":
        zs = interpolate(z[0], z[1], t, kind).to(device)                         # [P, S, z_dim]
        cc = c.repeat_interleave(steps, 0) if c is not None else None
        ws = G.mapping(zs.reshape(-1, G.z_dim), cc, truncation_psi=truncation_psi)
    elif space == "w":
        w = [G.mapping(zz.to(device), c, truncation_psi=truncation_psi) for zz in z]   # [P, num_ws, w_dim] each
        ws = interpolate(w[0], w[1], t, kind).reshape(-1, *w[0].shape[1:])
    else:
        raise ValueError(f"space must be 'z' or 'w', got {space!r}")
    imgs = torch.cat([G.synthesis(chunk, noise_mode=noise_mode) for chunk in ws.split(batch)])
    imgs = ((imgs.float() + 1) / 2).clamp(0, 1).cpu()
    return imgs.reshape(num_pairs, steps, *imgs.shape[1:])


def step_scores(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between successive frames: ``[P, S, C, H, W]`` in [0, 1] -> ``[P, S-1]``."""
    return (frames[:, 1:] - frames[:, :-1]).abs().flatten(2).mean(dim=2)


@torch.no_grad()
def lpips_steps(frames: torch.Tensor, lpips, device="cpu", min_size: int = 64) -> torch.Tensor:
    """LPIPS between successive frames ``[P, S, C, H, W]`` in [0, 1] -> ``[P, S-1]`` (small images upsampled)."""
    p, s = frames.shape[:2]
    x = frames.reshape(p * s, *frames.shape[2:]).to(device) * 2 - 1
    x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
    if x.shape[-1] < min_size:
        x = F.interpolate(x, size=(min_size, min_size), mode="bilinear", align_corners=False)
    x = x.reshape(p, s, *x.shape[1:])
    return torch.stack([lpips(x[i, :-1], x[i, 1:]).cpu() for i in range(p)])


def latent_continuity(G, num_pairs: int = 50, steps: int = 10, space: str = "z", kind: str = "slerp",
                      seed: int = 0, device="cpu", lpips=None, dataset=None, **kwargs) -> Interpolation:
    """Frames and step scores of ``num_pairs`` random interpolations (LPIPS scores when ``lpips`` is given)."""
    frames = interpolation_frames(G, num_pairs, steps, space, kind, seed, device, dataset, **kwargs)
    return Interpolation(frames, step_scores(frames), lpips_steps(frames, lpips, device) if lpips is not None else None)
