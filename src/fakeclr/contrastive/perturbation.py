"""Latent perturbation: the positive view of a fake ``G(z)`` is ``G(z + eps)``."""

from __future__ import annotations

import torch

from ..config import PERTURBATIONS



class LatentPerturbation:
    """``eps`` for a latent batch ``z [N, z_dim]``.

    ``noise`` (FakeCLR "noise-related latent augmentation"): ``eps = n * lam * min(|z|, norm_cap)``,
    ``n ~ N(0, I)`` elementwise, so each coordinate is perturbed in proportion to its own magnitude, capped
    (released lam 0.1, cap 3).
    ``fixed`` (InsGen / Instance-perturbation): ``eps = radius * n`` (released radius 0.15).
    """

    def __init__(self, kind: str = "noise", lam: float = 0.1, norm_cap: float = 3.0, radius: float = 0.15):
        if kind not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {kind!r}; expected one of {PERTURBATIONS}")
        self.kind, self.lam, self.norm_cap, self.radius = kind, lam, norm_cap, radius

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """Per-coordinate standard deviation of ``eps``: ``[N, z_dim]``."""
        if self.kind == "noise":
            return self.lam * z.abs().clamp(max=self.norm_cap)
        return torch.full_like(z, self.radius)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``z + eps``, ``[N, z_dim]``."""
        return z + torch.randn_like(z) * self.scale(z)
