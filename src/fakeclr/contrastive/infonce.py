"""Iteration-weighted InfoNCE: FakeCLR supplementary Eq. (1) and Algorithm 1.

For a query ``q``, its positive key ``k+`` and the queue's negatives ``k_i`` (all L2-normalised)::

    L = -log( exp(q.k+ / tau) / ( exp(q.k+ / tau) + sum_i exp((q.k_i + m_i) / tau) ) )        (supp. Eq. 1)

``m_i`` is the *forgetting factor* of negative ``i``: larger for keys enqueued more recently, so that stale keys
(made by an older D and G) count less. :func:`forgetting_weights` computes it in three modes:

``paper``     what the paper describes (supp. Alg. 1, Fig. 2): the enqueue iterations are min-max normalised over
              the queue, L2-normalised over the queue, divided by ``tau_m`` and soft-maxed **over the queue axis**,
              so ``m`` sums to 1 and grows with recency.
``official``  what the released code computes in effect: it normalises and soft-maxes a ``[1, K]`` tensor over its
              size-1 axis, so every ``m_i`` is exactly 1 (a constant shift of every negative logit).
``none``      ``m_i = 0``: plain MoCo InfoNCE (InsGen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import FORGETTING_MODES



def forgetting_weights(queue_iters: torch.Tensor, tau_m: float = 0.01, mode: str = "paper") -> torch.Tensor:
    """The forgetting factor ``m`` of each queue entry.

    Args:
        queue_iters: ``[K]`` training iteration at which each key was enqueued.
        tau_m: temperature of the softmax over the queue (``paper`` mode).
        mode: ``paper``, ``official`` or ``none`` (see the module docstring).
    Returns:
        ``[K]`` float weights; in ``paper`` mode non-negative, summing to 1, non-decreasing in the iteration.
    """
    t = queue_iters.to(torch.get_default_dtype() if not queue_iters.is_floating_point() else queue_iters.dtype)
    if mode == "official":
        return torch.ones_like(t)
    if mode == "none":
        return torch.zeros_like(t)
    if mode != "paper":
        raise ValueError(f"unknown forgetting mode {mode!r}; expected one of {FORGETTING_MODES}")
    span = t.max() - t.min()
    t = (t - t.min()) / span            # min-max over the queue: oldest 0, newest 1
    t = t / t.norm(p=2)                 # L2 over the queue axis
    # Every key from the same iteration (span 0): no entry is more recent. Chosen on the device, not read.
    return torch.where(span > 0, torch.softmax(t / tau_m, dim=0), 1.0 / t.numel())


def iteration_weighted_info_nce(q: torch.Tensor, k_pos: torch.Tensor, queue: torch.Tensor, queue_iters: torch.Tensor,
                                tau: float = 0.2, tau_m: float = 0.01, mode: str = "paper") -> torch.Tensor:
    """Mean over the batch of supplementary Eq. (1).

    Args:
        q: ``[N, C]`` queries (L2-normalised), ``k_pos``: ``[N, C]`` their positive keys.
        queue: ``[K, C]`` negative keys, ``queue_iters``: ``[K]`` their enqueue iterations.
        tau: temperature of the logits; ``tau_m``, ``mode``: see :func:`forgetting_weights`.
    Returns:
        scalar loss.
    """
    m = forgetting_weights(queue_iters, tau_m, mode).to(q.dtype)
    l_pos = (q * k_pos).sum(dim=1, keepdim=True)          # [N, 1]
    l_neg = q @ queue.t() + m[None, :]                     # [N, K]
    logits = torch.cat([l_pos, l_neg], dim=1) / tau        # [N, 1 + K]
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)
