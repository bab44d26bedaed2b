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

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .figures import RED, WHITE, centered_text, display_size, font, tile

__all__ = ["pixel_distances", "lpips_distances", "nearest", "neighbour_figure", "nearest_neighbour_report"]


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


def neighbour_figure(queries: torch.Tensor, pool: torch.Tensor, idx: torch.Tensor, dist: torch.Tensor, path,
                     title: str = "") -> None:
    """PNG: queries in the first row (red frame), their ``k`` nearest pool images in the rows below, each with
    its distance underneath."""
    from ..images import save_png
    q, k = idx.shape
    d = display_size(queries.shape[-1], 64)
    gap, text, head = 6, 13, 18 if title else 0
    fnt = font(10)
    width = gap + q * (d + gap)
    canvas = Image.new("RGB", (width, head + gap + (k + 1) * (d + text + gap) + gap), WHITE)
    draw = ImageDraw.Draw(canvas)
    if title:
        centered_text(draw, width // 2, 3, title, (0, 0, 0), font(12))
    for i in range(q):
        x = gap + i * (d + gap)
        y = head + gap
        draw.rectangle([x - 2, y - 2, x + d + 1, y + d + 1], fill=RED)
        canvas.paste(tile(queries[i], d), (x, y))
        for j in range(k):
            y = head + gap + (j + 1) * (d + text + gap) + gap
            canvas.paste(tile(pool[int(idx[i, j])], d), (x, y))
            centered_text(draw, x + d // 2, y + d + 1, f"{float(dist[i, j]):.4f}", (0, 0, 0), fnt)
    save_png(np.asarray(canvas), path)


def nearest_neighbour_report(generated: torch.Tensor, training: torch.Tensor, outdir, k: int = 5,
                             num_queries: int = 8, lpips=None, device="cpu", training_names=None,
                             generated_seeds=None) -> dict:
    """Write Figs. 4-5-style PNGs and ``neighbours.json`` into ``outdir``; return the JSON record.

    ``generated`` uint8 ``[G, C, H, W]`` (the first ``num_queries`` are the generated queries, all of them are
    the pool for real queries), ``training`` uint8 ``[N, C, H, W]`` (the first ``num_queries`` are the real
    queries). Files: ``neighbours-generated-{pixel,lpips}.png``, ``neighbours-real-{pixel,lpips}.png``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    names = list(training_names) if training_names is not None else [str(i) for i in range(len(training))]
    seeds = list(generated_seeds) if generated_seeds is not None else list(range(len(generated)))
    spaces = {"pixel": pixel_distances}
    if lpips is not None:
        spaces["lpips"] = lambda a, b: lpips_distances(a, b, lpips, device)
    record: dict = {"k": k, "pixel_metric": "mean squared difference in [0, 1]",
                    "lpips_metric": f"LPIPS v0.1 {getattr(lpips, 'net', '')}" if lpips is not None else None,
                    "generated_queries": {}, "real_queries": {}}
    gq, rq = generated[:num_queries], training[:num_queries]
    for space, fn in spaces.items():
        dist, idx = nearest(fn(gq, training), k)
        neighbour_figure(gq, training, idx, dist, outdir / f"neighbours-generated-{space}.png",
                         f"generated (top) and nearest training images, {space}")
        record["generated_queries"][space] = [
            {"seed": seeds[i], "neighbours": [{"image": names[int(j)], "distance": float(v)}
                                              for v, j in zip(dist[i], idx[i])]} for i in range(len(gq))]
        dist, idx = nearest(fn(rq, generated), k)
        neighbour_figure(rq, generated, idx, dist, outdir / f"neighbours-real-{space}.png",
                         f"training (top) and nearest generated images, {space}")
        record["real_queries"][space] = [
            {"image": names[i], "neighbours": [{"seed": seeds[int(j)], "distance": float(v)}
                                               for v, j in zip(dist[i], idx[i])]} for i in range(len(rq))]
    from ..files import atomic_write
    atomic_write(outdir / "neighbours.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    return record
