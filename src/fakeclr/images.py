"""Images as tensors and PNG files: conversion to uint8, grids, atomic PNG writes."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from .files import atomic_write


def to_uint8(img: torch.Tensor, drange: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """``[N, C, H, W]`` float in ``drange`` -> uint8 ``[N, C, H, W]`` (rounded, clamped)."""
    lo, hi = drange
    x = (img.detach().float().cpu() - lo) * (255.0 / (hi - lo))
    return x.round().clamp(0, 255).to(torch.uint8)


def grid_shape(n: int, max_cols: int | None = None) -> tuple[int, int]:
    """``(cols, rows)`` of a near-square grid for ``n`` images."""
    cols = max(1, math.ceil(math.sqrt(n)))
    if max_cols is not None:
        cols = min(cols, max_cols)
    return cols, math.ceil(n / cols)


def make_grid(img: torch.Tensor, cols: int | None = None) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` -> one ``[rows*H, cols*W, C]`` array (blank cells black)."""
    n, c, h, w = img.shape
    cols = cols or grid_shape(n)[0]
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    arr = img.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = arr[i]
    return canvas


def save_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``[H, W, C]`` uint8 (C = 1 or 3) as a PNG, atomically."""
    mode = "L" if array.shape[2] == 1 else "RGB"
    image = Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_grid(img: torch.Tensor, path: str | os.PathLike, cols: int | None = None,
              drange: tuple[float, float] = (-1.0, 1.0), zoom: int = 1) -> None:
    """Save ``[N, C, H, W]`` (float in ``drange`` or uint8) as one PNG grid, each pixel ``zoom`` x ``zoom``
    (nearest neighbour, for small images that a person could not judge at their size)."""
    if img.dtype != torch.uint8:
        img = to_uint8(img, drange)
    grid = make_grid(img, cols)
    if zoom > 1:
        grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    save_png(grid, path)


def readable_zoom(width: int, target: int = 1024) -> int:
    """The integer zoom that brings a grid ``width`` px wide to about ``target`` px (at least 1)."""
    return max(1, target // max(1, width))
