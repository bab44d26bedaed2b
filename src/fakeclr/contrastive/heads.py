"""Projection heads on D's last-block features and momentum copies (MoCo, He et al. 2020; InsGen; FakeCLR)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


class ProjectionHead(torch.nn.Module):
    """``features [N, C, 4, 4] -> spatial mean [N, C] -> Linear(C, hidden) -> ReLU -> Linear(hidden, out) -> L2``.

    The released InsGen/FakeCLR head is 512 -> 512 -> ReLU -> 128 on D's 4x4 features at 512 channels; here ``C``
    is D's feature width (``D.feature_channels``) and ``hidden`` defaults to it.
    """

    def __init__(self, in_features: int, out_features: int = 128, hidden_features: int | None = None):
        super().__init__()
        hidden = in_features if hidden_features is None else hidden_features
        self._config = {"in_features": in_features, "out_features": out_features, "hidden_features": hidden}
        self.mlp = torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, out_features))

    @property
    def config(self) -> dict:
        return dict(self._config)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` or ``[N, C]`` -> unit vectors ``[N, out_features]``."""
        x = features.float() if features.dtype not in (torch.float32, torch.float64) else features
        if x.ndim > 2:
            x = x.mean(dim=[2, 3])
        return F.normalize(self.mlp(x), dim=1)


def momentum_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy to be updated by :func:`momentum_update` (MoCo's key encoder)."""
    return copy.deepcopy(module).eval().requires_grad_(False)


@torch.no_grad()
def momentum_update(ema: torch.nn.Module, module: torch.nn.Module, momentum: float) -> None:
    """``ema <- momentum * ema + (1 - momentum) * module`` over parameters (MoCo Eq. 2)."""
    for p_ema, p in zip(ema.parameters(), module.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - momentum)
