"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), the StyleGAN2-ADA protocol.

Each feature set defines a manifold: the union of balls around its points, each ball's radius the distance to
the point's k-th nearest neighbour within the set (k = 3; the point itself is the 0th, hence ``kthvalue(k +
1)``). Precision = share of generated points inside the real manifold; recall = share of real points inside the
generated manifold. Distances are Euclidean, computed in blocks of ``row_batch x col_batch``.

Parity note: StyleGAN2-ADA computes this on VGG16 fc features in float16; the PyPI-reachable networks carry no
VGG16 classifier layers, so fakeclr uses the 2048-d Inception pool features (as torch-fidelity does), in float32.
"""

from __future__ import annotations

import torch

__all__ = ["pairwise_distances", "manifold_radii", "coverage", "precision_recall"]


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, col_batch: int = 10000) -> torch.Tensor:
    """Euclidean distances ``[len(a), len(b)]`` (float32)."""
    return torch.cat([torch.cdist(a[None].float(), cb[None].float())[0] for cb in b.split(col_batch)], dim=1)


def manifold_radii(points: torch.Tensor, k: int = 3, row_batch: int = 10000) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point ``[N]``."""
    return torch.cat([pairwise_distances(rows, points).kthvalue(k + 1, dim=1).values
                      for rows in points.split(row_batch)])


def coverage(manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, row_batch: int = 10000) -> float:
    """Share of ``probes`` within ``radii[j]`` of some ``manifold[j]``."""
    inside = [(pairwise_distances(rows, manifold) <= radii[None]).any(dim=1) for rows in probes.split(row_batch)]
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, gen: torch.Tensor, k: int = 3, row_batch: int = 10000) -> tuple[float, float]:
    """``(precision, recall)`` of generated features ``gen [N_g, D]`` against real ``real [N_r, D]``."""
    real, gen = torch.as_tensor(real).float(), torch.as_tensor(gen).float()
    precision = coverage(real, manifold_radii(real, k, row_batch), gen, row_batch)
    recall = coverage(gen, manifold_radii(gen, k, row_batch), real, row_batch)
    return precision, recall
