"""Perceptual path length (Karras et al., StyleGAN, CVPR 2019, Eq. 2-3), the StyleGAN2-ADA protocol.

For each sample: latents ``z0, z1 ~ N(0, I)``, a position ``t ~ U(0, 1)`` (``sampling='full'``) or ``t = 0``
(``'end'``), and the path either in Z (``slerp`` of the normalised ``z``, then mapping) or in W (``lerp`` of the
mapped ``w``, all layers). The two images at ``t`` and ``t + eps`` (``eps = 1e-4``) share one random noise draw;
optionally centre-cropped (rows ``3/8..7/8``, columns ``2/8..6/8``: the face region of FFHQ), box-downsampled to
256 px if larger, and compared with LPIPS (VGG16): ``d = LPIPS(img(t), img(t + eps)) / eps^2``. PPL is the mean of
``d`` after dropping values outside the 1st..99th percentiles (NumPy ``'lower'``/``'higher'`` percentiles).

Registered variants (StyleGAN2-ADA names): ``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``, ``ppl_wend`` (crop on)
and ``ppl2_wend`` (crop off).
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from .features import Progress, random_labels

__all__ = ["slerp", "ppl_latents", "ppl_distances", "filtered_mean", "perceptual_path_length", "lpips_distance_fn",
           "compared_size"]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the *normalised* ``a, b [N, D]`` at ``t [N, 1]`` (a unit vector ``[N, D]``)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def ppl_latents(num: int, z_dim: int, sampling: str, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(t [num], z0 [num, z_dim], z1 [num, z_dim])`` for one batch, drawn from ``gen``."""
    if sampling not in ("full", "end"):
        raise ValueError(f"sampling must be 'full' or 'end', got {sampling!r}")
    t = torch.rand(num, generator=gen) * (1.0 if sampling == "full" else 0.0)
    z = torch.randn(num * 2, z_dim, generator=gen)
    return t, z[:num], z[num:]


def _path_ws(G, t, z0, z1, c, epsilon: float, space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two ``ws [N, num_ws, w_dim]`` at ``t`` and ``t + eps`` along the path in ``space``."""
    if space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), torch.cat([c, c]) if c is not None else None).chunk(2)
        tt = t[:, None, None].to(w0.dtype)
        return w0.lerp(w1, tt), w0.lerp(w1, tt + epsilon)
    if space == "z":
        zt0, zt1 = slerp(z0, z1, t[:, None]), slerp(z0, z1, t[:, None] + epsilon)
        return G.mapping(torch.cat([zt0, zt1]), torch.cat([c, c]) if c is not None else None).chunk(2)
    raise ValueError(f"space must be 'z' or 'w', got {space!r}")


def _crop_and_shrink(img: torch.Tensor, crop: bool, resolution: int) -> torch.Tensor:
    """Centre crop (optional), then box-downsample by ``resolution // 256`` (StyleGAN2-ADA takes the factor from
    the generator's resolution, so a cropped 1024 px image ends at 128 px)."""
    if crop:
        s = img.shape[2] // 8
        img = img[:, :, s * 3:s * 7, s * 2:s * 6]
    factor = resolution // 256
    if factor > 1:
        n, c, h, w = img.shape
        img = img.reshape(n, c, h // factor, factor, w // factor, factor).mean(dim=(3, 5))
    return img


def compared_size(resolution: int, crop: bool) -> int:
    """Side in px of the images PPL compares for a generator of ``resolution`` (after crop and downsampling)."""
    return (resolution // 2 if crop else resolution) // max(1, resolution // 256)


def lpips_distance_fn(lpips) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Distance of two float images in [-1, 1] ``[N, C, H, W]`` under an :class:`LPIPS` network -> ``[N]``."""
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        return lpips(a, b)
    return distance


@torch.no_grad()
def ppl_distances(G, distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], num_samples: int,
                  epsilon: float = 1e-4, space: str = "w", sampling: str = "end", crop: bool = True,
                  batch: int = 4, seed: int = 0, dataset=None, device="cpu", progress: bool = False) -> torch.Tensor:
    """Per-sample ``d = distance(img(t), img(t + eps)) / eps^2`` ``[num_samples]`` (float32, CPU).

    ``distance`` takes two float image batches in [-1, 1] (after crop/downsampling) and returns ``[N]``.
    Noise buffers of a private copy of ``G`` are redrawn for each batch and used as constant noise, so both
    images of a pair see the same noise.
    """
    from ..nn import require_w_space
    require_w_space(G, "PPL")
    device = torch.device(device)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    noise = [buf for name, buf in G.named_buffers() if name.endswith("noise_const")]
    gen = torch.Generator().manual_seed(seed)
    out, done, prog = [], 0, Progress(f"ppl ({space}{sampling})", num_samples, progress)
    while done < num_samples:
        n = min(batch, num_samples - done)
        t, z0, z1 = ppl_latents(n, G.z_dim, sampling, gen)
        c = random_labels(dataset, n, gen)
        c = c.to(device) if G.c_dim else None
        for buf in noise:
            buf.copy_(torch.randn(buf.shape, generator=gen))
        ws0, ws1 = _path_ws(G, t.to(device), z0.to(device), z1.to(device), c, epsilon, space)
        img = G.synthesis(torch.cat([ws0, ws1]), noise_mode="const")
        img = img.float() if img.dtype in (torch.float16, torch.bfloat16) else img
        img = _crop_and_shrink(img, crop, G.img_resolution)
        a, b = img.chunk(2)
        out.append((distance(a, b) / epsilon ** 2).float().cpu())
        done += n
        prog.update(done)
    return torch.cat(out)


def filtered_mean(dist: torch.Tensor | np.ndarray) -> float:
    """Mean of the values within the [1st, 99th] percentiles (``'lower'`` / ``'higher'`` interpolation)."""
    d = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


def perceptual_path_length(G, distance, num_samples: int, epsilon: float = 1e-4, space: str = "w",
                           sampling: str = "end", crop: bool = True, batch: int = 4, seed: int = 0, dataset=None,
                           device="cpu", progress: bool = False) -> float:
    """PPL of ``G`` (see the module docstring); ``distance`` as in :func:`ppl_distances`."""
    return filtered_mean(ppl_distances(G, distance, num_samples, epsilon, space, sampling, crop, batch, seed,
                                       dataset, device, progress))
