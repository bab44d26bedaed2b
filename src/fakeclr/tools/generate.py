"""Generate images from a network snapshot: one PNG per seed, or one grid."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..images import make_grid, save_grid, save_png, to_uint8


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"--seeds '{text}' is not a list of integers or ranges such as 0-7,10.") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds '{text}' names no non-negative seed; give seeds such as 0-7,10.")
    return seeds


def latents_for_seeds(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One ``z ~ N(0, I)`` per seed, each from its own generator: ``[len(seeds), z_dim]``."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


@torch.no_grad()
def generate(G, seeds: list[int], truncation_psi: float = 1.0, noise_mode: str = "const",
             class_idx: int | None = None, batch: int = 16, device="cpu") -> torch.Tensor:
    """uint8 images ``[len(seeds), C, H, W]``, the same for the same seeds."""
    if G.c_dim and class_idx is None:
        raise UserError(f"The network is conditional on {G.c_dim} classes; pass --class.")
    if class_idx is not None and not 0 <= class_idx < max(G.c_dim, 1):
        raise UserError(f"--class {class_idx} is out of range for a network with {G.c_dim} classes.")
    z = latents_for_seeds(seeds, G.z_dim).to(device)
    c = torch.zeros(len(seeds), G.c_dim, device=device)
    if G.c_dim:
        c[:, class_idx] = 1
    out = [to_uint8(G(zz, cc, truncation_psi=truncation_psi, noise_mode=noise_mode))
           for zz, cc in zip(z.split(batch), c.split(batch))]
    return torch.cat(out)


def write_images(images: torch.Tensor, seeds: list[int], outdir: str | Path | None, grid: str | Path | None) -> list[Path]:
    """Save ``seedNNNN.png`` files into ``outdir`` and/or one grid PNG; returns the paths written."""
    written = []
    if outdir is not None:
        outdir = Path(outdir)
        for img, seed in zip(images, seeds):
            path = outdir / f"seed{seed:04d}.png"
            save_png(make_grid(img[None]), path)
            written.append(path)
    if grid is not None:
        save_grid(images, grid)
        written.append(Path(grid))
    return written
