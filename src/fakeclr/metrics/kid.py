"""Kernel Inception Distance (Bińkowski et al., ICLR 2018), computed as StyleGAN2-ADA does.

The unbiased estimate of the squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3`` on
Inception features, averaged over ``num_subsets`` (100) random subsets of ``m = min(N_real, N_gen,
max_subset_size)`` (1000) real and generated features each (drawn without replacement):

``MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)``.

Subsets come from ``numpy.random.RandomState(seed)`` (StyleGAN2-ADA draws from NumPy's global RNG).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["polynomial_kernel", "mmd2_unbiased", "kernel_inception_distance"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x y^T / D + 1)^3`` for ``x [n, D]``, ``y [m, D]`` -> ``[n, m]``."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally sized samples ``x, y [m, D]`` under :func:`polynomial_kernel`."""
    m = x.shape[0]
    a = polynomial_kernel(x, x) + polynomial_kernel(y, y)
    b = polynomial_kernel(x, y)
    return float((a.sum() - np.diag(a).sum()) / (m * (m - 1)) - b.sum() * 2 / (m * m))


def kernel_inception_distance(real: torch.Tensor | np.ndarray, gen: torch.Tensor | np.ndarray,
                              num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID between feature sets ``[N_r, D]`` and ``[N_g, D]`` (mean of ``num_subsets`` subset estimates)."""
    real = np.asarray(real, dtype=np.float64)
    gen = np.asarray(gen, dtype=np.float64)
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 generated samples")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        total += mmd2_unbiased(x, y)
    return total / num_subsets
