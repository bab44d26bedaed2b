"""The style-mixing figure of StyleGAN [SG1, Fig. 3]: rows x columns of seeds, chosen layers swapped.

Cell ``(r, c)`` renders the row seed's ``w`` with the layers in ``layers`` taken from the column seed. The top row
shows the column seeds, the left column the row seeds, the corner stays blank. Taking the first (coarse, 4-8 px)
layers from the column copies pose and face shape; the middle ones features; the last (fine) ones colour scheme.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..images import make_grid
from .generate import Psi, expand_ranges, synthesize, ws_for_seeds
from .media import save_frame, zoom


def parse_layers(text: str, num_ws: int) -> list[int]:
    """``"0-3"``, ``"4,5"``, ``"coarse"`` / ``"middle"`` / ``"fine"`` (thirds of ``num_ws``) -> sorted layer indices."""
    named = {"coarse": range(0, num_ws // 3), "middle": range(num_ws // 3, 2 * num_ws // 3),
             "fine": range(2 * num_ws // 3, num_ws)}
    try:
        layers = set(expand_ranges(text, named))
    except ValueError:
        raise UserError(f"--layers '{text}' is not a list of layer indices or ranges such as 0-3,6 "
                        "(or coarse, middle, fine).") from None
    if not layers or min(layers) < 0 or max(layers) >= num_ws:
        raise UserError(f"--layers '{text}' must name layers within 0-{num_ws - 1} (this network has {num_ws}).")
    return sorted(layers)


@torch.no_grad()
def mix_ws(row_ws: torch.Tensor, col_ws: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """``row_ws [R, L, D]``, ``col_ws [C, L, D]`` -> ``[R, C, L, D]``: each row latent with ``layers`` from each column."""
    mixed = row_ws[:, None].repeat(1, col_ws.shape[0], 1, 1)
    mixed[:, :, layers] = col_ws[None, :, layers]
    return mixed


@torch.no_grad()
def style_mixing_images(G, row_seeds: list[int], col_seeds: list[int], layers: list[int], psi: Psi = 1.0,
                        cutoff: int | None = None, class_idx: int | None = None, noise_mode: str = "const",
                        device="cpu") -> torch.Tensor:
    """uint8 images ``[R + 1, C + 1, channels, H, W]`` of the figure (``[0, 0]`` is black)."""
    row_ws = ws_for_seeds(G, row_seeds, psi, cutoff, class_idx, device)
    col_ws = ws_for_seeds(G, col_seeds, psi, cutoff, class_idx, device)
    R, C = len(row_seeds), len(col_seeds)
    rows = synthesize(G, row_ws, noise_mode)
    cols = synthesize(G, col_ws, noise_mode)
    mixed = synthesize(G, mix_ws(row_ws, col_ws, layers).flatten(0, 1), noise_mode).reshape(R, C, *rows.shape[1:])
    out = torch.zeros(R + 1, C + 1, *rows.shape[1:], dtype=torch.uint8)
    out[0, 1:] = cols
    out[1:, 0] = rows
    out[1:, 1:] = mixed
    return out


def save_style_mixing(images: torch.Tensor, path: str | Path, scale: int = 1) -> Path:
    """Write the ``[R + 1, C + 1, channels, H, W]`` figure as one PNG (``scale``: integer zoom)."""
    grid: np.ndarray = make_grid(images.flatten(0, 1), cols=images.shape[1])
    return save_frame(zoom(grid, scale), path)
