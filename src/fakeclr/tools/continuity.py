"""``fakeclr continuity``: the latent-continuity figure of FakeCLR supplementary Fig. 1 and its scores file
(the score itself is :mod:`fakeclr.metrics.continuity`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..files import atomic_write
from ..images import save_png
from ..metrics.continuity import THRESHOLD, Interpolation, latent_continuity
from ..metrics.weights import load_lpips
from .figures import BLUE, RED, WHITE, bordered, centered_text, display_size, font, tile

__all__ = ["continuity_figure", "write_continuity"]


def continuity_figure(result: Interpolation, path, threshold: float = THRESHOLD, max_rows: int = 8) -> None:
    """Write the supplementary Fig. 1-style PNG: per path, a row of frames and, between successive frames, the
    small grey difference image (3x brightened) with a red border above ``threshold`` or a blue one at or below,
    and its pixel score in red (LPIPS score below it when computed)."""
    frames = (result.frames[:max_rows] * 255).round().to(torch.uint8)
    p, s = frames.shape[:2]
    d = display_size(frames.shape[-1], 64)
    small, gap, text = d // 2, 8, 14
    fnt = font(11)
    block = d + gap + small + 4 + 2 * text + gap
    canvas = Image.new("RGB", (gap + s * (d + gap), gap + p * block), WHITE)
    draw = ImageDraw.Draw(canvas)
    for i in range(p):
        y = gap + i * block
        for k in range(s):
            canvas.paste(tile(frames[i, k], d), (gap + k * (d + gap), y))
        for k in range(s - 1):
            diff = (frames[i, k + 1].float() - frames[i, k].float()).abs().mean(0, keepdim=True)
            diff = (diff * 3).clamp(0, 255).to(torch.uint8)
            score = float(result.pixel[i, k])
            cx = gap + (k + 1) * (d + gap) - gap // 2
            x0, y0 = cx - small // 2, y + d + gap
            bordered(canvas, tile(diff, small), x0, y0, RED if score > threshold else BLUE)
            label = f"{score:.3f}"
            centered_text(draw, cx, y0 + small + 3, label, RED, fnt)
            if result.lpips is not None:
                centered_text(draw, cx, y0 + small + 3 + text, f"{float(result.lpips[i, k]):.3f}", (90, 90, 90), fnt)
    save_png(np.asarray(canvas), path)


def write_continuity(G, outdir, num_pairs: int = 6, steps: int = 10, space: str = "z", kind: str = "slerp",
                     seed: int = 0, device="cpu", lpips_net: str | None = "vgg") -> dict:
    """Compute the interpolations, write ``continuity.png`` and ``continuity.json`` into ``outdir``; return the
    summary (``pixel``, ``above``, ``lpips``) plus the settings and file paths."""
    outdir = Path(outdir)
    lpips = load_lpips(lpips_net, device) if lpips_net else None
    result = latent_continuity(G, num_pairs, steps, space, kind, seed, device, lpips=lpips)
    png, js = outdir / "continuity.png", outdir / "continuity.json"
    continuity_figure(result, png, max_rows=num_pairs)
    summary = dict(result.summary(), space=space, interpolation=kind, pairs=num_pairs, steps=steps, seed=seed,
                   threshold=THRESHOLD, lpips_net=lpips_net, figure=str(png), scores=str(js))
    record = dict(summary, pixel_steps=result.pixel.tolist(),
                  lpips_steps=result.lpips.tolist() if result.lpips is not None else None)
    atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    return summary
