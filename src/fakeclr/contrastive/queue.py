"""A FIFO queue of contrastive keys that remembers when each key was enqueued (FakeCLR supp. Alg. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import dist


class FeatureQueue(torch.nn.Module):
    """Ring buffer of ``size`` keys ``[size, dim]`` with their enqueue iterations ``[size]``.

    Starts full of random unit vectors enqueued at iteration 0 (as MoCo and the released code do). Keys are
    gathered over DDP processes before they are enqueued, so every process holds the same queue. All of it is
    buffers: ``state_dict`` carries keys, iterations, write pointer and fill count. The pointer and the count are
    mirrored on the host (``_ptr``, ``_filled``), so that using the queue never reads the device.
    """

    def __init__(self, dim: int, size: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.dim = dim
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("iters", torch.zeros(size, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.full((), size, dtype=torch.long))
        self._ptr, self._filled = 0, size

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the filled part: keys ``[M, dim]`` and iterations ``[M]`` (M = number filled).

        Copies, because the loss keeps them for its backward pass while the queue is updated in place.
        """
        n = self._filled
        return self.keys[:n].clone(), self.iters[:n].clone()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, iteration: int) -> None:
        """Add ``[N, dim]`` keys (this process's; all processes' are gathered) stamped with ``iteration``."""
        keys = dist.all_gather_cat(keys.detach())
        n = keys.shape[0]
        if n >= self.size:                       # a batch larger than the queue keeps its last `size` keys
            keys, n = keys[-self.size:], self.size
        ptr = self._ptr
        idx = (torch.arange(n, device=self.keys.device) + ptr) % self.size
        self.keys[idx] = keys.to(self.keys.dtype)
        self.iters[idx] = iteration
        self._set_counters((ptr + n) % self.size, min(self._filled + n, self.size))

    @torch.no_grad()
    def resize(self, size: int) -> None:
        """Change the capacity, keeping the newest ``min(filled, size)`` keys (FakeCLR diversity-aware queue)."""
        if size == self.size:
            return
        n_old, ptr = self._filled, self._ptr
        # Filled entries oldest first: a full ring's oldest key sits at the write pointer; a ring that is not
        # full was filled from slot 0 (the pointer equals the fill count).
        order = torch.arange(n_old, device=self.keys.device)
        if n_old == self.size:
            order = (order + ptr) % self.size
        keep = order[-size:] if size < n_old else order
        n = keep.numel()
        keys = torch.zeros(size, self.dim, dtype=self.keys.dtype, device=self.keys.device)
        iters = torch.zeros(size, dtype=torch.long, device=self.keys.device)
        keys[:n], iters[:n] = self.keys[keep], self.iters[keep]
        self.keys, self.iters = keys, iters
        self._set_counters(n % size, n)

    def _set_counters(self, ptr: int, filled: int) -> None:
        self._ptr, self._filled = ptr, filled
        self.ptr.fill_(ptr)
        self.filled.fill_(filled)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The capacity is state: adopt the saved buffer shapes before loading.
        key = prefix + "keys"
        if key in state_dict and state_dict[key].shape != self.keys.shape:
            self.keys = torch.empty_like(state_dict[key], device=self.keys.device)
            self.iters = torch.empty_like(state_dict[prefix + "iters"], device=self.iters.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ptr, self._filled = int(self.ptr), int(self.filled)
