"""The embedded default data set: 100 LFW faces shipped inside scikit-image (no download, no path).

``skimage.data.lfw_subset()`` returns 200 grayscale 25x25 crops as float64 in [0, 1]; the first 100 are faces
from Labeled Faces in the Wild, the rest are background patches. We keep the 100 faces, quantise them to uint8
(``round(x * 255)``) and resize them to 32x32 with PIL's LANCZOS filter. The result is the set's *native* form: a
folder of 32x32 grayscale PNGs would open identically, and the usual pipeline (resize to another resolution,
replicate to 3 channels) applies on top.

Spelling: ``"embedded:lfw"`` (canonical) or the bare ``"lfw"``; it is also what ``open_dataset(None)`` opens.
A bare ``"lfw"`` means the embedded set only when no file or folder of that name exists (a real path wins).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from fakeclr.errors import UserError

__all__ = ["DEFAULT_SOURCE", "EMBEDDED_NAMES", "LFW_COUNT", "LFW_RESOLUTION", "embedded_name", "load_lfw"]

DEFAULT_SOURCE = "embedded:lfw"
EMBEDDED_NAMES = ("lfw",)
LFW_COUNT = 100
LFW_RESOLUTION = 32
_PREFIX = "embedded:"


def embedded_name(source: str | os.PathLike | None) -> str | None:
    """The embedded set ``source`` names (``"lfw"``), or None when it names a path.

    ``None`` means the default set. ``"embedded:<name>"`` always means an embedded set (unknown names raise
    ``UserError``); a bare ``"<name>"`` does only when no such path exists.
    """
    if source is None:
        return embedded_name(DEFAULT_SOURCE)
    if not isinstance(source, str):
        return None
    if source.startswith(_PREFIX):
        name = source[len(_PREFIX):]
        if name not in EMBEDDED_NAMES:
            known = ", ".join(_PREFIX + n for n in EMBEDDED_NAMES)
            raise UserError(f"Unknown embedded data set '{source}'; the embedded sets are: {known}.")
        return name
    if source in EMBEDDED_NAMES and not os.path.exists(source):
        return source
    return None


def load_lfw() -> np.ndarray:
    """The 100 embedded LFW faces as uint8 ``[100, 32, 32]`` (grayscale, row-major, values 0..255)."""
    from skimage.data import lfw_subset  # local import: scikit-image is slow to import

    faces = np.asarray(lfw_subset()[:LFW_COUNT], dtype=np.float64)  # [100, 25, 25] in [0, 1]
    faces = np.clip(np.rint(faces * 255.0), 0, 255).astype(np.uint8)
    size = (LFW_RESOLUTION, LFW_RESOLUTION)
    out = [np.asarray(Image.fromarray(face).resize(size, Image.LANCZOS)) for face in faces]
    return np.stack(out)
