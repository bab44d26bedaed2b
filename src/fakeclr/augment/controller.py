"""Controllers of the augmentation probability ``p`` (ADA pipe or APA).

All controllers share one interface, meant to be driven by the training loop like this::

    ctrl = AdaptiveP(target=0.6)
    ...
    real_logits = D(augment(real_img))
    ctrl.observe(real_logits)                      # every pass of D on real images (main and R1 passes)
    ...
    iteration += 1; cur_nimg += batch_size         # counters after the step, as in StyleGAN2-ADA
    new_p = ctrl.update(iteration, cur_nimg, batch_size)
    if new_p is not None:
        augment_pipe.set_p(new_p)

``observe`` only accumulates on the logits' device (no host sync); every ``interval`` iterations ``update`` reduces the
accumulated ``sign(D(x_real))`` (summed over all ranks when ``torch.distributed`` is initialised, so every rank takes
the same decision), exposes the mean as :attr:`mean_sign` (the "Loss/signs/real" statistic, i.e. the overfitting
heuristic r_t of Karras et al. 2020, Sec. 3), resets the accumulators and, depending on the controller, returns a
new ``p``. ``state_dict()`` holds plain floats (JSON-able); loading it resumes bit-identically, mid-interval included.
"""

from __future__ import annotations

import numpy as np
import torch
from .. import dist

__all__ = ["PController", "AdaptiveP", "LinearP", "FixedP"]


class PController:
    """Base class: ``p``, the sign statistics of the real logits and the update interval.

    Args:
        p_init: initial ``p``.
        interval: update every ``interval`` iterations (the reference's ``ada_interval``).
    """

    def __init__(self, p_init: float = 0.0, interval: int = 4):
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}.")
        self.p = float(p_init)
        self.interval = int(interval)
        self.mean_sign: float | None = None   # last reduced mean of sign(D(real)), for logging
        self._sign_sum: torch.Tensor | float = 0.0
        self._sign_count = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate ``sign(real_logits)`` (any shape; usually ``[N, 1]``); detached, no device sync."""
        signs = real_logits.detach().sign().to(torch.float64)
        self._sign_sum = self._sign_sum + signs.sum()
        self._sign_count += signs.numel()

    def update(self, iteration: int, cur_nimg: int, batch_size: int) -> float | None:
        """Call once per training iteration, after advancing the counters.

        Args:
            iteration: number of iterations done (1 after the first step).
            cur_nimg: number of real images shown so far (after this step).
            batch_size: global batch size (all ranks together).
        Returns:
            the new ``p`` if it was updated on this iteration, else ``None``.
        """
        if iteration % self.interval != 0:
            return None
        mean = self._reduce_signs()
        new_p = self._next_p(mean, cur_nimg, batch_size)
        if new_p is None:
            return None
        self.p = new_p
        return new_p

    def _next_p(self, mean_sign: float | None, cur_nimg: int, batch_size: int) -> float | None:
        raise NotImplementedError

    def _reduce_signs(self) -> float | None:
        """Mean of the accumulated signs over the interval (all ranks), then reset. ``None`` if nothing observed."""
        total = torch.as_tensor(self._sign_sum, dtype=torch.float64)   # on the logits' device once observed
        stats = torch.stack([total, torch.full_like(total, float(self._sign_count))])
        total, count = dist.all_reduce_sum(stats).tolist()
        self._sign_sum, self._sign_count = 0.0, 0
        if count > 0:
            self.mean_sign = total / count
            return self.mean_sign
        return None

    def state_dict(self) -> dict[str, float]:
        """``p``, the pending (not yet reduced) sign sum and count, and ``mean_sign`` once there is one."""
        state = {"p": float(self.p), "sign_sum": float(self._sign_sum), "sign_count": float(self._sign_count)}
        if self.mean_sign is not None:
            state["mean_sign"] = float(self.mean_sign)
        return state

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.p = float(state["p"])
        self._sign_sum = float(state.get("sign_sum", 0.0))
        self._sign_count = int(state.get("sign_count", 0))
        mean = state.get("mean_sign")
        self.mean_sign = None if mean is None else float(mean)


class AdaptiveP(PController):
    """ADA's feedback rule (Karras et al. 2020, Sec. 3): push ``p`` up when D is overconfident on reals.

    Every ``interval`` iterations, with ``r_t = E[sign(D(x_real))]`` over those iterations::

        p <- max(0, p + sign(r_t - target) * batch_size * interval / (speed_kimg * 1000))

    so ``p`` can move by 1 in ``speed_kimg`` thousand images. As in the reference there is no upper clamp (``p``
    may exceed 1, which saturates every op's probability), ``r_t == target`` leaves ``p`` unchanged, and ``p`` is
    updated in float32 like the reference's buffer. APA (Jiang et al. 2021) uses the same rule for its ``p``.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500, p_init: float = 0.0):
        super().__init__(float(np.float32(p_init)), interval)  # p always holds a float32 value, like the buffer
        self.target = float(target)
        self.speed_kimg = float(speed_kimg)

    def step_size(self, batch_size: int) -> float:
        """``|delta p|`` of one update."""
        return batch_size * self.interval / (self.speed_kimg * 1000)

    def _next_p(self, mean_sign, cur_nimg, batch_size):
        if mean_sign is None:
            return None  # nothing observed in this interval: keep p
        adjust = np.sign(mean_sign - self.target) * self.step_size(batch_size)
        return float(max(np.float32(self.p) + np.float32(adjust), np.float32(0.0)))


class LinearP(PController):
    """"ADA-linear" of InsGen / FakeCLR: ``p = target * cur_kimg / total_kimg``, set every ``interval`` iterations.

    The sign statistic is still reduced (for logging) but does not steer ``p``.
    """

    def __init__(self, target: float = 0.6, total_kimg: float = 25000, interval: int = 4, p_init: float = 0.0):
        super().__init__(p_init, interval)
        if total_kimg <= 0:
            raise ValueError(f"total_kimg must be > 0, got {total_kimg}.")
        self.target = float(target)
        self.total_kimg = float(total_kimg)

    def _next_p(self, mean_sign, cur_nimg, batch_size):
        return (self.target / self.total_kimg) * (cur_nimg / 1e3)


class FixedP(PController):
    """A constant ``p``; ``update`` never changes it (the sign statistic is still reduced for logging)."""

    def __init__(self, p: float = 0.0, interval: int = 4):
        super().__init__(p, interval)

    def _next_p(self, mean_sign, cur_nimg, batch_size):
        return None
