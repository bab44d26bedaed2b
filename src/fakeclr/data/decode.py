"""Decoding and conversion of one image of a source into uint8 ``[C, R, R]``.

Every image goes through the same steps, in this order:

1. decode with PIL and apply its EXIF orientation (so photos come out the way viewers show them);
2. normalise the mode: palette images become RGB (RGBA if they carry transparency); images with alpha (RGBA, LA,
   PA) are composited on black, i.e. each colour value becomes ``round(v * alpha / 255)``; 16-bit and 32-bit
   grayscale (I;16, I) is scaled by 1/257 to 8 bits (an ``I`` image whose values all fit in 0..255 is kept as
   is); float grayscale (F) is scaled by 255 when its values lie in [0, 1], else clipped; CMYK, YCbCr and other
   modes go through PIL's ``convert("RGB")``;
3. convert to the channel count: 1 channel uses PIL's ``convert("L")`` (ITU-R 601-2 luma,
   ``L = R*299/1000 + G*587/1000 + B*114/1000``), 3 channels replicate a grayscale image;
4. centre-crop to a square of side ``min(width, height)`` (top-left corner at ``((w - s) // 2, (h - s) // 2)``);
5. resize to ``resolution x resolution`` with PIL's LANCZOS filter, unless it is already that size (then the
   pixels are untouched); with ``pad=True`` a smaller square is instead placed in the centre of a
   ``resolution x resolution`` canvas of zeros (top-left corner at ``(resolution - s) // 2`` on both axes; MNIST's
   28 px in 32 px: 2 rows and columns of zeros before, 2 after), never resampled.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from fakeclr.data.sources import Source

__all__ = ["BadImage", "read_header", "load_image", "crop_and_resize", "to_chw"]

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class BadImage(Exception):
    """An image file that PIL cannot read; carries the reason."""


def _composite_on_black(im: Image.Image) -> Image.Image:
    """An image with alpha as 'L' or 'RGB', each value scaled by ``alpha / 255`` and rounded (black behind)."""
    gray = im.mode in ("LA", "La")
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint32)  # [H, W, 4]
    out = (rgba[..., :3] * rgba[..., 3:] + 127) // 255  # round(v * a / 255) for integers
    out = out.astype(np.uint8)
    return Image.fromarray(out[..., 0] if gray else out)


def _wide_gray_to_l(im: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as 8-bit 'L' (see the module docstring for the scaling)."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        a = a * 255.0 if a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0 else a
    elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
        a = np.clip(a.astype(np.float64), 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8))


def _normalize_mode(im: Image.Image) -> Image.Image:
    """``im`` as mode 'L' (grayscale data) or 'RGB' (everything else); see step 2 of the module docstring."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in _ALPHA_MODES:
        return _composite_on_black(im)
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I") or im.mode == "F":
        return _wide_gray_to_l(im)
    if im.mode in ("L", "RGB"):
        return im
    return im.convert("RGB")


def _decode(src: Source, name: str) -> Image.Image:
    """Image ``name`` fully decoded, upright, as 'L' or 'RGB'; ``BadImage`` when PIL cannot read it."""
    try:
        with src.open(name) as im:
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a broken EXIF block does not make the pixels unreadable
                pass
            return _normalize_mode(im)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, zlib/zip errors, ... for bad files
        raise BadImage(str(e) or type(e).__name__) from e


def read_header(src: Source, name: str) -> tuple[int, bool]:
    """``(min(width, height), is_grayscale)`` of image ``name`` from its header; ``BadImage`` if unreadable."""
    try:
        with src.open_header(name) as im:
            return min(im.size), im.mode in _GRAY_MODES
    except Exception as e:
        raise BadImage(str(e) or type(e).__name__) from e


def crop_and_resize(im: Image.Image, resolution: int, pad: bool = False) -> Image.Image:
    """Centre-crop ``im`` to a square and resize it to ``resolution`` with LANCZOS (skipped if already that size),
    or with ``pad`` centre it on a zero canvas of that size (a square larger than ``resolution`` is still resized)."""
    w, h = im.size
    s = min(w, h)
    if w != h:
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if pad and s < resolution:
        canvas = Image.new(im.mode, (resolution, resolution), 0)
        canvas.paste(im, ((resolution - s) // 2, (resolution - s) // 2))
        return canvas
    if s != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return im


def to_chw(im: Image.Image) -> np.ndarray:
    """A PIL 'L' or 'RGB' image as a contiguous uint8 array ``[C, H, W]``."""
    a = np.asarray(im, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return np.ascontiguousarray(a)


def load_image(src: Source, name: str, resolution: int, channels: int, pad: bool = False) -> np.ndarray:
    """Image ``name`` through steps 1-5 of the module docstring: uint8 ``[channels, resolution, resolution]``."""
    im = _decode(src, name)
    im = im.convert("L" if channels == 1 else "RGB")
    return to_chw(crop_and_resize(im, resolution, pad))
