"""``fakeclr neighbours``: generate a pool of images and write the nearest-neighbour figures of FakeCLR Figs. 4-5
and ``neighbours.json`` (the distances are :mod:`fakeclr.metrics.neighbours`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..files import atomic_write
from ..images import save_png
from ..metrics.neighbours import lpips_distances, nearest, pixel_distances
from .figures import RED, WHITE, centered_text, display_size, font, tile
from .generate import generate

__all__ = ["neighbour_figure", "nearest_neighbour_report", "write_neighbours"]


def neighbour_figure(queries: torch.Tensor, pool: torch.Tensor, idx: torch.Tensor, dist: torch.Tensor, path,
                     title: str = "") -> None:
    """PNG: queries in the first row (red frame), their ``k`` nearest pool images in the rows below, each with
    its distance underneath."""
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
    atomic_write(outdir / "neighbours.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    return record


def write_neighbours(G, dataset, outdir, num_queries: int = 8, k: int = 5, pool: int = 500, seed: int = 0,
                     device="cpu", lpips_net: str | None = "vgg") -> list[Path]:
    """Generate ``pool`` images (seeds ``seed..seed+pool-1`` of :func:`fakeclr.tools.generate.generate`, constant
    noise), run :func:`nearest_neighbour_report` against ``dataset`` and return the files written."""
    from ..metrics.weights import load_lpips
    seeds = list(range(seed, seed + pool))
    generated = generate(G, seeds, noise_mode="const", class_idx=0 if G.c_dim else None, device=device).cpu()
    lpips = load_lpips(lpips_net, device) if lpips_net else None
    nearest_neighbour_report(generated, dataset.images[:], outdir, k=k, num_queries=num_queries, lpips=lpips,
                             device=device, training_names=dataset.names, generated_seeds=seeds)
    outdir = Path(outdir)
    spaces = ["pixel"] + (["lpips"] if lpips is not None else [])
    return [outdir / f"neighbours-{who}-{s}.png" for who in ("generated", "real") for s in spaces] + \
        [outdir / "neighbours.json"]
