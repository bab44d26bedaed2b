"""Diversity-aware queue size (FakeCLR Sec. 4.2): how many negatives the fake queue keeps.

``dataset``    the released rule: ``N = floor(0.05 * number of training images)``, doubled with x-flip mirroring
               (InsGen and FakeCLR ``train.py``); fixed for the run.
``generated``  an adaptive variant: ``N = clip(round(N_dataset * r), N_min, N_max)`` where ``r`` is a running
               mean (decay 0.9 per tick) of the diversity of a fake batch over that of a real batch, each measured
               as the mean pairwise cosine distance ``1 - cos`` of the fake head's normalised features. Few distinct
               fakes (early training, mode collapse) shrink the queue; fakes as varied as the data give the dataset
               rule. Applied at tick boundaries, keeping the newest keys.
A fixed ``--queue-size N`` overrides both (the paper's Table 3 uses 200).
"""

from __future__ import annotations

import torch

from .. import dist
from ..config import QUEUE_SIZERS



def dataset_queue_size(num_images: int, mirror: bool, fraction: float = 0.05) -> int:
    """The released rule ``int(fraction * num_images)``, doubled with mirroring; at least 1."""
    n = int(fraction * num_images)
    return max(n * 2 if mirror else n, 1)


def batch_diversity(features: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine distance of unit vectors ``[N, C]`` (``0`` = all identical): a scalar."""
    n = features.shape[0]
    if n < 2:
        return features.new_zeros(())
    sim = features @ features.t()
    off = sim.sum() - sim.diagonal().sum()
    return 1 - off / (n * (n - 1))


class QueueSizer:
    """Decides the fake queue's size: fixed, the dataset rule, or following generated diversity."""

    def __init__(self, kind: str, base_size: int, fixed: int | None = None, min_size: int = 16,
                 max_size: int | None = None, decay: float = 0.9):
        if kind not in QUEUE_SIZERS:
            raise ValueError(f"unknown queue sizer {kind!r}; expected one of {QUEUE_SIZERS}")
        self.kind, self.base, self.fixed = kind, base_size, fixed
        self.min_size = min(min_size, base_size)
        self.max_size = max_size if max_size is not None else base_size
        self.decay = decay
        self.ratio = 1.0            # running diversity ratio fake / real (state)
        self._sums = [0.0, 0.0]     # this tick's fake and real diversity sums (state)

    def initial_size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        return self.base if self.kind == "dataset" else self._size_for(self.ratio)

    @property
    def adaptive(self) -> bool:
        return self.fixed is None and self.kind == "generated"

    def observe(self, fake_features: torch.Tensor, real_features: torch.Tensor) -> None:
        """Accumulate the diversity of a fake and a real feature batch ``[N, C]`` each."""
        self._sums[0] += float(batch_diversity(fake_features))
        self._sums[1] += float(batch_diversity(real_features))

    def tick(self) -> int | None:
        """At a tick boundary: update the ratio and return the new size (``None`` when not adaptive)."""
        if not self.adaptive:
            return None
        fake, real = dist.all_reduce_sum(torch.tensor(self._sums, dtype=torch.float64)).tolist()
        self._sums = [0.0, 0.0]
        if real > 0:
            self.ratio = self.decay * self.ratio + (1 - self.decay) * min(fake / real, 1.0)
        return self._size_for(self.ratio)

    def _size_for(self, ratio: float) -> int:
        return int(min(max(round(self.base * ratio), self.min_size), self.max_size))

    def state_dict(self) -> dict:
        return {"ratio": self.ratio, "fake_sum": self._sums[0], "real_sum": self._sums[1]}

    def load_state_dict(self, s: dict) -> None:
        self.ratio = float(s["ratio"])
        self._sums = [float(s["fake_sum"]), float(s["real_sum"])]
