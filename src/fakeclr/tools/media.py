"""Frames to files: tiling, nearest-neighbour zoom, animated GIF (Pillow) and MP4 (optional ``imageio-ffmpeg``).

A frame is a uint8 array ``[H, W, C]`` with ``C`` = 1 (grey) or 3 (RGB), the layout of
:func:`fakeclr.images.make_grid`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..images import save_png
from ..files import atomic_write


def zoom(frame: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge ``[H, W, C]`` by an integer ``factor`` (each pixel becomes a ``factor x factor`` block)."""
    if factor <= 1:
        return frame
    return frame.repeat(factor, axis=0).repeat(factor, axis=1)


def _pil(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(frame[:, :, 0], "L") if frame.shape[2] == 1 else Image.fromarray(frame, "RGB")


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 24, loop: bool = True) -> Path:
    """Write ``frames`` (each ``[H, W, C]`` uint8) as an animated GIF at ``fps`` frames per second.

    RGB frames get an adaptive 256-colour palette each; grey frames are exact.
    """
    if not frames:
        raise ValueError("write_gif needs at least one frame")
    images = [_pil(f) if f.shape[2] == 1 else _pil(f).quantize(colors=256) for f in frames]
    duration = max(20, round(1000 / fps))  # ms; browsers clamp shorter delays to 100 ms
    extra = {"loop": 0} if loop else {}
    atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                  duration=duration, optimize=False, **extra))
    return Path(path)


def mp4_available() -> bool:
    """Whether an MP4 encoder is installed (the ``imageio-ffmpeg`` package ships an ffmpeg binary)."""
    import importlib.util
    return importlib.util.find_spec("imageio_ffmpeg") is not None


MP4_MISSING = "MP4 skipped: no encoder installed (pip install imageio-ffmpeg); the GIF holds the same frames."


def write_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 24) -> Path | None:
    """Write ``frames`` as an H.264 MP4, or return ``None`` when ``imageio-ffmpeg`` is not installed.

    Grey frames are written as RGB; odd sizes are padded with black to even ones (yuv420p needs them).
    """
    if not mp4_available():
        return None
    import imageio_ffmpeg
    h, w = frames[0].shape[:2]
    H, W = h + h % 2, w + w % 2

    def write(tmp: str) -> None:
        gen = imageio_ffmpeg.write_frames(tmp, (W, H), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                          pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                          output_params=["-f", "mp4"])
        gen.send(None)
        for f in frames:
            rgb = np.zeros((H, W, 3), np.uint8)
            rgb[:h, :w] = f if f.shape[2] == 3 else f.repeat(3, axis=2)
            gen.send(np.ascontiguousarray(rgb).tobytes())
        gen.close()

    atomic_write(path, write)
    return Path(path)


def save_frame(frame: np.ndarray, path: str | os.PathLike) -> Path:
    """One ``[H, W, C]`` uint8 frame as a PNG."""
    save_png(frame, path)
    return Path(path)


def tile(frames: Sequence[np.ndarray], cols: int, pad: int = 0) -> np.ndarray:
    """Lay out equally sized ``[H, W, C]`` frames row by row, ``cols`` per row, ``pad`` black pixels between."""
    h, w, c = frames[0].shape
    rows = -(-len(frames) // cols)
    out = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), np.uint8)
    for i, f in enumerate(frames):
        r, k = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = f
    return out
