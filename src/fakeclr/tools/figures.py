"""Small PIL drawing helpers for the metric figures (continuity, nearest neighbours). No plotting library."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["RED", "BLUE", "WHITE", "font", "tile", "display_size", "bordered", "centered_text"]

RED = (220, 30, 30)
BLUE = (40, 80, 220)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (a fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - old Pillow
        return ImageFont.load_default()


def display_size(resolution: int, minimum: int = 64) -> int:
    """Side at which to show an image: ``resolution`` times the smallest integer making it >= ``minimum``."""
    return resolution * max(1, -(-minimum // resolution))


def tile(img: torch.Tensor, size: int) -> Image.Image:
    """uint8 ``[C, H, W]`` (C = 1 or 3) -> an RGB PIL image of ``size x size`` (nearest-neighbour scaling)."""
    a = img.detach().cpu().numpy().transpose(1, 2, 0)
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
    im = Image.fromarray(np.ascontiguousarray(a), "RGB")
    return im if im.size == (size, size) else im.resize((size, size), Image.NEAREST)


def bordered(canvas: Image.Image, im: Image.Image, x: int, y: int, color: tuple[int, int, int], width: int = 2) -> None:
    """Paste ``im`` at ``(x, y)`` on ``canvas`` with a ``width`` px frame of ``color`` around it."""
    ImageDraw.Draw(canvas).rectangle([x - width, y - width, x + im.width + width - 1, y + im.height + width - 1],
                                     fill=color)
    canvas.paste(im, (x, y))


def centered_text(draw: ImageDraw.ImageDraw, cx: int, y: int, text: str, fill, fnt) -> None:
    """Draw ``text`` with its top edge at ``y``, centred on ``cx``."""
    draw.text((cx - draw.textlength(text, font=fnt) / 2, y), text, fill=fill, font=fnt)
