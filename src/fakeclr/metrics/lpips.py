"""LPIPS v0.1 (Zhang et al., CVPR 2018): learned perceptual distance with an AlexNet or VGG16 trunk, plain PyTorch.

For two images ``x0, x1`` in [-1, 1] (``[N, 3, H, W]``), as in the reference implementation
(richzhang/PerceptualSimilarity, ``lpips.LPIPS(net=..., version='0.1')``):

1. scaling layer: ``(x - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448,
   0.450)`` (ImageNet statistics expressed for [-1, 1] inputs);
2. the trunk's ReLU outputs at five depths (AlexNet: relu1..relu5; VGG16: relu1_2, relu2_2, relu3_3, relu4_3,
   relu5_3), each unit-normalised over channels: ``f / (sqrt(sum_c f^2) + 1e-10)``;
3. per layer, the squared difference weighted by the learned non-negative 1x1 "lin" layer (no bias) and averaged
   over the spatial positions; the distance is the sum over the five layers (paper Eq. 1).

The trunk weights are the ImageNet-trained torchvision ones and the lin layers are LPIPS v0.1's; both come from
:mod:`fakeclr.metrics.weights`. Parameter names follow torchvision (``features.0.weight`` ...) and LPIPS
(``lin0.weight`` ...). Gradients flow to the inputs (the projector and PPL-style uses need them); the weights
themselves are buffers.
"""

from __future__ import annotations

import torch

__all__ = ["LPIPS", "NETS", "to_lpips_range"]

NETS = ("alex", "vgg")
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# Trunks as torchvision's ``features`` Sequential: ("conv", cin, cout, kernel, stride, padding) | ("pool", k, s).
# ``taps`` are the indices of the ReLU modules whose outputs LPIPS compares.
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2), ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
         ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)]
_ALEX_TAPS = (1, 4, 7, 9, 11)


def _vgg16_layers() -> list[tuple]:
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", cin, v, 3, 1, 1), ("relu",)]
            cin = v
    return layers


_VGG = _vgg16_layers()
_VGG_TAPS = (3, 8, 15, 22, 29)


def _trunk_spec(net: str) -> tuple[list[tuple], tuple[int, ...]]:
    if net == "alex":
        return _ALEX, _ALEX_TAPS
    if net == "vgg":
        return _VGG, _VGG_TAPS
    raise ValueError(f"LPIPS net must be one of {NETS}, got {net!r}")


def to_lpips_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` in [0, 255] -> float32 in [-1, 1] with 3 channels (grayscale replicated)."""
    x = images.to(torch.float32) / 127.5 - 1 if images.dtype == torch.uint8 else images.to(torch.float32)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


class LPIPS(torch.nn.Module):
    """``LPIPS(net)(x0, x1) -> [N]`` distances; inputs float ``[N, 3, H, W]`` in [-1, 1] (H, W >= 32 for VGG).

    :meth:`features` exposes the normalised, lin-weighted per-layer features so that many pairwise distances
    (nearest neighbours) can reuse one trunk pass per image.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        layers, self.taps = _trunk_spec(net)
        self.net = net
        mods: list[torch.nn.Module] = []
        for spec in layers:
            if spec[0] == "conv":
                _, cin, cout, k, s, p = spec
                mods.append(torch.nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif spec[0] == "relu":
                mods.append(torch.nn.ReLU())
            else:
                mods.append(torch.nn.MaxPool2d(spec[1], stride=spec[2]))
        self.features = torch.nn.Sequential(*mods)
        tap_channels = [self._channels_at(i) for i in self.taps]
        for i, c in enumerate(tap_channels):
            self.register_buffer(f"lin{i}", torch.zeros(1, c, 1, 1))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        for p in list(self.features.parameters()):
            p.requires_grad_(False)

    def _channels_at(self, index: int) -> int:
        return [m.out_channels for m in self.features[:index + 1] if isinstance(m, torch.nn.Conv2d)][-1]

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
                if i == self.taps[-1]:
                    break
        return out

    def features_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[N, 3, H, W]`` in [-1, 1] -> five unit-normalised feature maps ``[N, C_l, H_l, W_l]``."""
        return [f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self._trunk(x)]

    def distance_from_features(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """Distances ``[N]`` between two lists from :meth:`features_of` (broadcasting over the batch)."""
        total = 0
        for i, (a, b) in enumerate(zip(f0, f1)):
            lin = getattr(self, f"lin{i}")
            total = total + ((a - b).square() * lin).sum(dim=1).mean(dim=(1, 2))
        return total

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance ``[N]`` between ``x0`` and ``x1``, float ``[N, 3, H, W]`` in [-1, 1]."""
        return self.distance_from_features(self.features_of(x0), self.features_of(x1))
