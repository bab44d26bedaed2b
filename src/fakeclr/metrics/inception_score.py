"""Inception Score (Salimans et al., NeurIPS 2016), the StyleGAN2-ADA protocol.

``IS = exp(E_x KL(p(y|x) || p(y)))`` over ``num_splits`` (10) consecutive equal splits of the generated images;
reported as the mean and standard deviation over the splits. ``p(y|x)`` is the softmax of the Inception
classifier's 1008 logits without the output bias (:meth:`fakeclr.metrics.inception.InceptionV3.probabilities`).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["inception_score"]


def inception_score(probs: torch.Tensor | np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """``probs [N, K]`` (rows sum to 1) -> ``(mean, std)`` of the per-split scores."""
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        # 0 log 0 = 0: a float32 softmax of a confident classifier has exact zeros, which would make the
        # plain formula NaN (StyleGAN2-ADA's included).
        pos = part > 0
        kl = np.where(pos, part * (np.log(np.where(pos, part, 1)) - np.log(np.where(pos, marginal, 1))), 0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
