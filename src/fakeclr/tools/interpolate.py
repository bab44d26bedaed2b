"""Latent interpolation: walk between seeds in Z or W, render the frames, write a grid PNG, a GIF and an MP4.

A *path* is a list of key seeds visited in order (two seeds: a straight walk; more: a piecewise walk, closed with
``loop``). Every path is sampled at ``frames`` evenly spaced points, and truncation toward ``w_avg`` (per layer,
see :func:`fakeclr.tools.generate.truncate`) is applied after interpolating, so both spaces truncate alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..images import make_grid
from .generate import Psi, class_labels, latents_for_seeds, synthesize, truncate
from .media import MP4_MISSING, save_frame, tile, write_gif, write_mp4, zoom

SPACES = ("z", "w")
METHODS = ("lerp", "slerp")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``a + t (b - a)``: ``a, b [..., D]``, ``t [...]`` broadcast over the last axis."""
    return torch.lerp(a, b, t[..., None].to(a.dtype))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the great circle from ``a`` to ``b``: ``[..., D]``, ``t [...]``.

    ``sin((1-t) theta) / sin(theta) * a + sin(t theta) / sin(theta) * b`` with ``theta`` the angle between ``a``
    and ``b`` (Shoemake 1985); vectors of equal norm stay on their sphere, nearly parallel ones fall back to lerp.
    """
    t = t[..., None].to(a.dtype)
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)).clamp_min(eps)
    theta = torch.acos(cos.clamp(-1 + eps, 1 - eps))
    sin = torch.sin(theta)
    small = sin < 1e-4
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / sin)
    wb = torch.where(small, t, torch.sin(t * theta) / sin)
    return wa * a + wb * b


def walk(keys: torch.Tensor, frames: int, method: str = "lerp", loop: bool = False) -> torch.Tensor:
    """Sample the piecewise path through ``keys [K, ...]`` at ``frames`` even steps -> ``[frames, ...]``.

    Open paths include both ends; a ``loop`` returns to ``keys[0]`` and leaves out the repeated last frame, so
    the animation cycles without a stutter.
    """
    if method not in METHODS:
        raise UserError(f"--method {method!r} is not one of {', '.join(METHODS)}.")
    k = keys.shape[0]
    if k < 2:
        raise UserError("An interpolation path needs at least two seeds, e.g. --seeds 3,7.")
    if frames < 2:
        raise UserError("--frames must be at least 2.")
    if loop:
        keys = torch.cat([keys, keys[:1]])
        pos = torch.arange(frames, dtype=torch.float64) * (k / frames)
    else:
        pos = torch.linspace(0, k - 1, frames, dtype=torch.float64)
    seg = pos.floor().long().clamp(max=keys.shape[0] - 2)
    t = (pos - seg).to(keys.dtype).reshape(frames, *([1] * (keys.ndim - 2)))  # broadcasts over [..., D]
    return (slerp if method == "slerp" else lerp)(keys[seg], keys[seg + 1], t)


def random_pairs(count: int, seed: int = 0) -> list[list[int]]:
    """``count`` random pairs of seeds (each in ``[0, 2^31)``), the same for the same ``seed``."""
    if count < 1:
        raise UserError("--pairs must be at least 1.")
    rng = np.random.RandomState(seed)
    return [[int(a), int(b)] for a, b in rng.randint(0, 2 ** 31 - 1, size=(count, 2))]


@torch.no_grad()
def interpolation_ws(G, paths: list[list[int]], frames: int, space: str = "z", method: str = "lerp",
                     psi: Psi = 1.0, cutoff: int | None = None, class_idx: int | None = None, loop: bool = False,
                     device="cpu") -> torch.Tensor:
    """Latents of every frame of every path: ``[len(paths), frames, num_ws, w_dim]``.

    ``space='z'`` interpolates the seeds' ``z`` and maps each frame; ``space='w'`` maps the key seeds and
    interpolates their ``w`` (per synthesis layer). Truncation comes last in both cases.
    """
    if space not in SPACES:
        raise UserError(f"--space {space!r} is not one of {', '.join(SPACES)}.")
    out = []
    for seeds in paths:
        z = latents_for_seeds(seeds, G.z_dim).to(device)
        if space == "z":
            zs = walk(z, frames, method, loop)                                   # [F, z_dim]
            ws = G.mapping(zs, class_labels(G, class_idx, frames, device))       # [F, num_ws, w_dim]
        else:
            keys = G.mapping(z, class_labels(G, class_idx, len(seeds), device))  # [K, num_ws, w_dim]
            ws = walk(keys, frames, method, loop)
        out.append(truncate(ws, G.mapping.w_avg, psi, cutoff))
    return torch.stack(out)


def render(G, ws: torch.Tensor, noise_mode: str = "const", batch: int = 16) -> torch.Tensor:
    """uint8 frames ``[P, F, C, H, W]`` for ``ws [P, F, num_ws, w_dim]``."""
    p, f = ws.shape[:2]
    img = synthesize(G, ws.flatten(0, 1), noise_mode, batch)
    return img.reshape(p, f, *img.shape[1:])


def grid_columns(frames: int, cols: int) -> list[int]:
    """Indices of ``cols`` frames spread evenly over ``0 .. frames-1`` (both ends included)."""
    cols = max(2, min(cols, frames))
    return sorted({round(i * (frames - 1) / (cols - 1)) for i in range(cols)})


@dataclass
class InterpolationFiles:
    grid: Path
    gif: Path
    mp4: Path | None
    message: str = ""


def write_interpolation(images: torch.Tensor, outdir: str | Path, grid_cols: int = 8, fps: float = 24,
                        scale: int = 1, mp4: bool = True, name: str = "interp") -> InterpolationFiles:
    """Save ``images [P, F, C, H, W]`` (uint8): ``{name}_grid.png`` (row = path, ``grid_cols`` frames along it),
    ``{name}.gif`` and ``{name}.mp4`` (every frame shows all paths side by side; MP4 only with an encoder).
    """
    outdir = Path(outdir)
    p, f = images.shape[:2]
    cols = grid_columns(f, grid_cols)
    grid = zoom(make_grid(images[:, cols].flatten(0, 1), cols=len(cols)), scale)
    grid_path = save_frame(grid, outdir / f"{name}_grid.png")
    per_row = math.ceil(math.sqrt(p))
    frames = [zoom(tile([make_grid(images[i, j][None]) for i in range(p)], per_row, pad=2 if p > 1 else 0), scale)
              for j in range(f)]
    gif = write_gif(frames, outdir / f"{name}.gif", fps=fps)
    mp4_path, message = None, ""
    if mp4:
        mp4_path = write_mp4(frames, outdir / f"{name}.mp4", fps=fps)
        message = "" if mp4_path else MP4_MISSING
    return InterpolationFiles(grid_path, gif, mp4_path, message)
