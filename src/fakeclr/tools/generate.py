"""Generate images from a network snapshot: one PNG per seed, or one grid.

Also the latent helpers the other tools share: labels for a class, ``ws`` for seeds with truncation toward
``w_avg`` per layer (StyleGAN [SG1, Sec. 3.2]; ``psi`` may differ per synthesis layer), projected ``ws`` read from
the projector's ``.npz``, and rendering ``ws`` in batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from ..images import make_grid, save_grid, save_png, to_uint8
from ..nn import has_w_space


def expand_ranges(text: str, named: dict[str, range] | None = None) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]`` in the given order; ``named`` maps words to ranges. ``ValueError`` if
    a part is neither an integer, a range ``a-b`` nor a known word."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip().lower()
        if named and part in named:
            out.extend(named[part])
        elif "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    try:
        seeds = expand_ranges(text)
    except ValueError:
        raise UserError(f"--seeds '{text}' is not a list of integers or ranges such as 0-7,10.") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds '{text}' names no non-negative seed; give seeds such as 0-7,10.")
    return seeds


def latents_for_seeds(seeds: list[int], z_dim: int) -> torch.Tensor:
    """One ``z ~ N(0, I)`` per seed, each from its own generator: ``[len(seeds), z_dim]``."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


Psi = float | Sequence[float]


def parse_psi(text: str) -> Psi:
    """``"0.7"`` -> ``0.7``; ``"0.5,0.5,0.7,1"`` -> one psi per synthesis layer (``--trunc``)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--trunc '{text}' is not a number or a comma-separated list of numbers, one per layer.") from None
    if not values:
        raise UserError("--trunc is empty; give a psi such as 0.7 or one per layer such as 0.5,0.5,1,1.")
    return values[0] if len(values) == 1 and "," not in text else values


def class_labels(G, class_idx: int | None, n: int, device="cpu") -> torch.Tensor:
    """One-hot labels ``[n, c_dim]`` for ``class_idx`` (``[n, 0]`` for an unconditional network)."""
    if G.c_dim and class_idx is None:
        raise UserError(f"The network is conditional on {G.c_dim} classes; pass --class.")
    if class_idx is not None and not 0 <= class_idx < max(G.c_dim, 1):
        raise UserError(f"--class {class_idx} is out of range for a network with {G.c_dim} classes.")
    c = torch.zeros(n, G.c_dim, device=device)
    if G.c_dim:
        c[:, class_idx] = 1
    return c


def layer_psi(num_ws: int, psi: Psi = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """Per-layer truncation ``[num_ws]``: ``psi`` on layers ``< cutoff`` (all when ``None``), 1 beyond.

    A list gives one psi per layer directly (``cutoff`` must then be ``None``).
    """
    if isinstance(psi, (int, float)):
        out = torch.full((num_ws,), float(psi))
        if cutoff is not None:
            if not 0 <= cutoff <= num_ws:
                raise UserError(f"--trunc-cutoff {cutoff} is outside 0..{num_ws} (the network has {num_ws} layers).")
            out[cutoff:] = 1.0
        return out
    if cutoff is not None:
        raise UserError("--trunc-cutoff applies to a single psi; a per-layer --trunc list already says each layer's psi.")
    if len(psi) != num_ws:
        raise UserError(f"--trunc lists {len(psi)} values; the network has {num_ws} synthesis layers (one psi each).")
    return torch.tensor([float(v) for v in psi])


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: Psi = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """``w_avg + psi_l * (ws - w_avg)`` per layer ``l``: ``ws [N, num_ws, w_dim]``, ``w_avg [w_dim]`` -> same shape.

    Computed with ``torch.lerp`` like the mapping network's own truncation, so ``psi = 1`` returns ``ws`` exactly.
    """
    p = layer_psi(ws.shape[1], psi, cutoff).to(ws.device, ws.dtype)[None, :, None].expand_as(ws)
    return torch.lerp(w_avg.to(ws.device, ws.dtype).expand_as(ws), ws, p)


@torch.no_grad()
def ws_for_seeds(G, seeds: list[int], psi: Psi = 1.0, cutoff: int | None = None, class_idx: int | None = None,
                 device="cpu") -> torch.Tensor:
    """The latents of ``seeds`` in W+, truncated per layer: ``[len(seeds), num_ws, w_dim]``."""
    z = latents_for_seeds(seeds, G.z_dim).to(device)
    ws = G.mapping(z, class_labels(G, class_idx, len(seeds), device))
    return truncate(ws, G.mapping.w_avg, psi, cutoff)


@torch.no_grad()
def synthesize(G, ws: torch.Tensor, noise_mode: str = "const", batch: int = 16) -> torch.Tensor:
    """uint8 images ``[N, C, H, W]`` for ``ws [N, num_ws, w_dim]``, rendered ``batch`` at a time."""
    return torch.cat([to_uint8(G.synthesis(w, noise_mode=noise_mode)) for w in ws.split(batch)])


def load_projected_w(path: str | Path, G) -> torch.Tensor:
    """Latents saved by ``fakeclr project`` (or StyleGAN2-ADA's projector): ``[N, num_ws, w_dim]``.

    The ``.npz`` holds ``w`` as ``[num_ws, w_dim]``, ``[N, num_ws, w_dim]`` or ``[N, w_dim]`` (one w, broadcast).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--projected-w {path} does not exist; pass the projected_w.npz written by fakeclr project.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "w" not in f:
                raise UserError(f"--projected-w {path} has no array 'w' (it has: {', '.join(f.files)}).")
            w = torch.from_numpy(np.asarray(f["w"], dtype=np.float32))
    except (OSError, ValueError) as e:
        raise UserError(f"--projected-w {path} is not a readable .npz file ({e}).") from e
    if w.ndim == 2 and w.shape == (G.num_ws, G.w_dim):
        w = w[None]
    elif w.ndim == 2 and w.shape[1] == G.w_dim:
        w = w[:, None].repeat(1, G.num_ws, 1)
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
        raise UserError(f"--projected-w {path}: w has shape {list(w.shape)}, but this network needs "
                        f"[N, {G.num_ws}, {G.w_dim}]; project with the same network.")
    return w


def load_projected_noise(path: str | Path) -> dict[str, torch.Tensor]:
    """The noise maps ``{buffer name: [H, W]}`` that ``fakeclr project`` optimised along with ``w`` (may be empty)."""
    with np.load(Path(path), allow_pickle=False) as f:
        return {k[len("noise."):]: torch.from_numpy(np.asarray(f[k], dtype=np.float32))
                for k in f.files if k.startswith("noise.")}


@torch.no_grad()
def render_projected(G, path: str | Path, noise_mode: str = "const") -> torch.Tensor:
    """uint8 images ``[N, C, H, W]`` of a projected ``.npz``; with ``noise_mode='const'`` its optimised noise maps
    (when it has them) replace the network's, so the image matches the projector's ``proj.png``."""
    ws = load_projected_w(path, G).to(G.mapping.w_avg.device)
    noise = load_projected_noise(path) if noise_mode == "const" else {}
    if noise:
        from .project import render_with_noise
        return to_uint8(render_with_noise(G, ws, noise))
    return synthesize(G, ws, noise_mode)


@torch.no_grad()
def generate(G, seeds: list[int], truncation_psi: Psi = 1.0, noise_mode: str = "const",
             class_idx: int | None = None, batch: int = 16, device="cpu",
             truncation_cutoff: int | None = None) -> torch.Tensor:
    """uint8 images ``[len(seeds), C, H, W]``, the same for the same seeds.

    ``truncation_psi`` is one psi (on the first ``truncation_cutoff`` layers, or all) or one psi per layer.
    """
    if not has_w_space(G):                      # BigGAN: z directly, one batch at a time, no truncation
        if truncation_psi not in (1, 1.0, "1") or truncation_cutoff is not None:
            raise UserError("--trunc is a StyleGAN2 option (W space); BigGAN networks generate with psi 1.")
        z = latents_for_seeds(seeds, G.z_dim).to(device)
        c = class_labels(G, class_idx, len(seeds), device)
        return torch.cat([to_uint8(G(zz, cc)) for zz, cc in zip(z.split(batch), c.split(batch))])
    ws = ws_for_seeds(G, seeds, truncation_psi, truncation_cutoff, class_idx, device)
    return synthesize(G, ws, noise_mode, batch)


def write_images(images: torch.Tensor, seeds: list[int], outdir: str | Path | None, grid: str | Path | None,
                 prefix: str = "seed") -> list[Path]:
    """Save ``{prefix}NNNN.png`` files into ``outdir`` and/or one grid PNG; returns the paths written."""
    written = []
    if outdir is not None:
        outdir = Path(outdir)
        for img, seed in zip(images, seeds):
            path = outdir / f"{prefix}{seed:04d}.png"
            save_png(make_grid(img[None]), path)
            written.append(path)
    if grid is not None:
        save_grid(images, grid)
        written.append(Path(grid))
    return written
