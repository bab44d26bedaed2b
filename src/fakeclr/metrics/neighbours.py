"""Nearest-neighbour test (FakeCLR Figs. 4-5): does the generator copy its few training images?

Two directions, each in two spaces:

* **generated queries**: for generated images (the figure's first row), the ``k`` nearest *training* images
  (the rows below). Copies of training images show up as near-identical neighbours at tiny distance.
* **real queries**: for training images (first row), the ``k`` nearest among a pool of generated images; this
  shows whether the generator covers the training set (and, again, whether it reproduces it exactly).

Spaces: **pixel** (mean squared difference of the images in [0, 1]) and **LPIPS** (VGG16 by default; images below
64 px are upsampled bilinearly to 64 px before LPIPS, as in :mod:`fakeclr.metrics.continuity`). LPIPS features
are computed once per image and pairwise distances are formed from them, so the cost is one trunk pass per
image, not per pair.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F


__all__ = ["pixel_distances", "lpips_distances", "nearest"]


def pixel_distances(queries: torch.Tensor, pool: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Mean squared difference (images in [0, 1]) of uint8 ``queries [Q, C, H, W]`` and ``pool [N, C, H, W]``.

    Returns ``[Q, N]``.
    """
    q = queries.flatten(1).float() / 255
    out = []
    for chunk in pool.split(batch):
        p = chunk.flatten(1).float() / 255
        out.append((q.square().sum(1, keepdim=True) - 2 * q @ p.T + p.square().sum(1)[None]).clamp_min(0) / q.shape[1])
    return torch.cat(out, dim=1)


def _lpips_input(images: torch.Tensor, device, min_size: int = 64) -> torch.Tensor:
    x = images.to(device).float() / 127.5 - 1
    x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
    if x.shape[-1] < min_size:
        x = F.interpolate(x, size=(min_size, min_size), mode="bilinear", align_corners=False)
    return x


@torch.no_grad()
def lpips_distances(queries: torch.Tensor, pool: torch.Tensor, lpips, device="cpu", batch: int = 16) -> torch.Tensor:
    """LPIPS between uint8 ``queries [Q, C, H, W]`` and ``pool [N, C, H, W]`` -> ``[Q, N]`` (CPU)."""
    fq = [lpips.features_of(_lpips_input(q[None], device)) for q in queries]
    out = []
    for chunk in pool.split(batch):
        fp = lpips.features_of(_lpips_input(chunk, device))
        out.append(torch.stack([lpips.distance_from_features(f, fp).cpu() for f in fq]))
    return torch.cat(out, dim=1)


def nearest(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distances, indices)`` of the ``k`` smallest entries of each row of ``dist [Q, N]``, ascending."""
    vals, idx = dist.topk(min(k, dist.shape[1]), dim=1, largest=False)
    return vals, idx
