"""Real images for the loop, in the order of the run's :class:`RealSampler`.

In-memory data are indexed in the training process. A streamed data set (:mod:`fakeclr.data.stream`) is decoded
by DataLoader worker processes a few batches ahead of the loop (pinned memory when training on CUDA). Each
process draws from its own sampler (seeded by its rank) and decodes only the images it draws. The workers follow
a copy of the sampler; the run's own sampler advances only when the loop takes a batch, so the sampler state
saved in a training state is always that of the batches consumed, and a resumed run sees the same images as an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["RealSampler", "RealFeed"]


class RealSampler:
    """Endless shuffled passes over a data set, reproducible from its own generator (training state)."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.gen)
        self.pos = 0

    def next(self, k: int) -> torch.Tensor:
        """The next ``k`` indices ``[k]``."""
        out = []
        while len(out) < k:
            if self.pos == self.n:
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.pos = 0
            take = min(k - len(out), self.n - self.pos)
            out.extend(self.perm[self.pos:self.pos + take].tolist())
            self.pos += take
        return torch.tensor(out, dtype=torch.long)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.gen.set_state(s["gen"])
        self.perm = s["perm"].clone()
        self.pos = int(s["pos"])


class _Batches(torch.utils.data.Dataset):
    """A data set indexed by a whole batch of item indices (what the workers decode)."""

    def __init__(self, data):
        self.data = data

    def __getitem__(self, idx: torch.Tensor):
        images, labels = self.data.batch(idx)
        return images, labels, idx


class _Ahead(torch.utils.data.Sampler):
    """Endless index batches ``[batch]`` from a copy of the run's sampler (the workers' look-ahead)."""

    def __init__(self, sampler: RealSampler, batch: int):
        self.sampler, self.batch = sampler, batch

    def __iter__(self):
        while True:
            yield self.sampler.next(self.batch)


class RealFeed:
    """``next()`` -> ``(images uint8 [B, C, R, R], labels float32 [B, label_dim])``, the items of
    ``sampler.next(batch)``; streamed data with ``workers > 0`` are decoded ahead by a DataLoader."""

    def __init__(self, data, sampler: RealSampler, batch: int, device, workers: int = 2, prefetch: int = 2):
        self.data, self.sampler, self.batch = data, sampler, batch
        self.pin = torch.device(device).type == "cuda"
        self.workers = workers if getattr(data, "streaming", False) else 0
        self.prefetch = prefetch
        self._it = None

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.workers and self._it is None:
            # Started at the first batch, i.e. after a training state was restored: the workers follow a copy of
            # the sampler as it is now.
            ahead = RealSampler(self.sampler.n, 0)
            ahead.load_state_dict(self.sampler.state_dict())
            loader = torch.utils.data.DataLoader(_Batches(self.data), batch_size=None,
                                                 sampler=_Ahead(ahead, self.batch), num_workers=self.workers,
                                                 prefetch_factor=self.prefetch, pin_memory=self.pin,
                                                 generator=torch.Generator().manual_seed(0))   # not the global RNG
            self._it = iter(loader)
        idx = self.sampler.next(self.batch)
        if self.workers == 0:
            images, labels = self.data.batch(idx)
            return (images.pin_memory(), labels) if self.pin else (images, labels)
        images, labels, got = next(self._it)
        if not torch.equal(got, idx):
            raise RuntimeError("the streaming loader fell out of step with the run's sampler")
        return images, labels

    def close(self) -> None:
        """Stop the worker processes (the next ``next()`` starts new ones from the sampler's state)."""
        self._it = None
