"""Counting the places where the training step waits for the device: a diagnostic for tests and benchmarks.

On a GPU every read of a tensor's value on the host (``.item()``, ``float(t)``, ``bool(t)``, ``if t:``,
``.tolist()``, ``.numpy()``, a copy to the CPU) blocks until all queued kernels have run. StyleGAN2-ADA's loop keeps
its statistics on the device and reads them once per tick; fakeclr's step aims for the same (issue 28). On the CPU
these reads cost nothing, but they are still visible: a scalar read dispatches ``aten._local_scalar_dense``, and
``tolist`` / ``numpy`` are Python calls that this counter wraps.
"""

from __future__ import annotations

import collections
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_SCALAR = torch.ops.aten._local_scalar_dense.default
_COPIES = (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default)


# Reads of tensors that live on the host by design, on a GPU too: the data pipeline (image indices, decoded
# batches) and Adam's step counts (``capturable=False`` keeps them on the CPU).
HOST_SIDE = ("/torch/optim/", "/fakeclr/data/", "/fakeclr/train/feed.py")


def _where() -> str | None:
    """The innermost frame of fakeclr's own code that caused the read, as ``module.py:line (function)``; ``None``
    for a read of :data:`HOST_SIDE`."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if frame.filename.endswith("host_sync.py"):
            continue
        if any(part in frame.filename for part in HOST_SIDE):
            return None
        if "/fakeclr/" in frame.filename:
            return f"{frame.filename.rsplit('/fakeclr/', 1)[1]}:{frame.lineno} ({frame.name})"
    return "outside fakeclr"


class HostSyncCounter(TorchDispatchMode):
    """Counts host reads of tensor values while active, by the fakeclr source line that caused each.

    ``count`` is the total; ``by_site`` a :class:`collections.Counter` of ``"path.py:line (function)"``. Copies
    from a non-CPU device to the CPU count too (they only occur off the CPU); reads of :data:`HOST_SIDE` do not.
    """

    def __init__(self):
        super().__init__()
        self.by_site: collections.Counter[str] = collections.Counter()
        self._patched: dict[str, object] = {}

    @property
    def count(self) -> int:
        return sum(self.by_site.values())

    def _count(self) -> None:
        site = _where()
        if site is not None:
            self.by_site[site] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SCALAR:
            self._count()
        elif func in _COPIES:
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            if isinstance(src, torch.Tensor) and src.device.type != "cpu" and torch.device(dst).type == "cpu":
                self._count()
        return func(*args, **kwargs)

    def __enter__(self):
        for name in ("tolist", "numpy"):
            original = getattr(torch.Tensor, name)
            self._patched[name] = original

            def counted(t, *a, _original=original, **kw):
                self._count()
                return _original(t, *a, **kw)
            setattr(torch.Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)
        self._patched = {}
        return super().__exit__(*exc)
