"""Differentiable Augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020), applied with probability 1 to both real and generated images before D.

Policies (comma-separated, applied in the given order):

- ``color``: brightness ``x + U(-0.5, 0.5)``, then saturation ``(x - m_c) * U(0, 2) + m_c`` with ``m_c`` the
  per-pixel mean over channels, then contrast ``(x - m) * U(0.5, 1.5) + m`` with ``m`` the per-image mean;
- ``translation``: integer shift by up to ``1/8`` of the size along each axis, zero fill;
- ``cutout``: zero a square of half the image size at a random position (clipped at the borders).

The random draws (order, shapes, dtypes) follow the authors' PyTorch reference, so equal seeds give equal images.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from fakeclr.errors import UserError

__all__ = ["DiffAugment", "DIFFAUGMENT_OPS", "rand_brightness", "rand_saturation", "rand_contrast",
           "rand_translation", "rand_cutout"]


def _per_image_uniform(x: torch.Tensor) -> torch.Tensor:
    """``U(0, 1)`` of shape ``[N, 1, 1, 1]`` in x's dtype and device."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def rand_brightness(x: torch.Tensor) -> torch.Tensor:
    """Add ``U(-0.5, 0.5)`` per image. ``[N, C, H, W] -> same``."""
    return x + (_per_image_uniform(x) - 0.5)


def rand_saturation(x: torch.Tensor) -> torch.Tensor:
    """Scale the deviation from the channel mean by ``U(0, 2)`` per image."""
    gray = x.mean(dim=1, keepdim=True)
    return (x - gray) * (_per_image_uniform(x) * 2) + gray


def rand_contrast(x: torch.Tensor) -> torch.Tensor:
    """Scale the deviation from the image mean by ``U(0.5, 1.5)`` per image."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_per_image_uniform(x) + 0.5) + mean


def rand_translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by integers ``(dy, dx)``, ``|dy| <= round(H * ratio)``, ``|dx| <= round(W * ratio)``.

    ``out[n, :, i, j] = x[n, :, i + dy, j + dx]`` where that pixel exists, else 0 (content moves by ``-dy, -dx``).
    """
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, size=[n, 1, 1], device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, size=[n, 1, 1], device=x.device)
    # Index into a copy padded by one zero pixel; every out-of-range source index is clamped onto that border.
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)      # [N, H, 1]
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)      # [N, 1, W]
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def rand_cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a ``round(H * ratio) x round(W * ratio)`` square per image, centered at a random pixel.

    The center ``(cy, cx)`` is uniform over ``0..H-1`` (``0..H`` for even sizes); the square covers rows
    ``cy - size // 2 .. cy - size // 2 + size - 1`` clipped to the image, likewise for columns.
    """
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_h % 2), size=[n, 1, 1], device=x.device)
    cx = torch.randint(0, w + (1 - size_w % 2), size=[n, 1, 1], device=x.device)
    top, left = cy - size_h // 2, cx - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)   # [N, H, W]
    return x * (~inside).to(x.dtype).unsqueeze(1)


# policy name -> ops applied in order
DIFFAUGMENT_OPS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def _parse_policy(policy: str | Sequence[str]) -> list[str]:
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in DIFFAUGMENT_OPS]
    if unknown:
        raise UserError(f"Unknown DiffAugment policy op(s) {', '.join(map(repr, unknown))}; valid ops are "
                        f"{', '.join(DIFFAUGMENT_OPS)} (comma-separated).")
    return names


class DiffAugment(torch.nn.Module):
    """DiffAugment as a module: ``DiffAugment("color,translation,cutout")(x)``, ``[N, C, H, W] -> [N, C, H, W]``.

    Args:
        policy: comma-separated op names (or a list) from :data:`DIFFAUGMENT_OPS`; ``""`` is the identity.
    Raises:
        UserError: unknown op name.
    """

    def __init__(self, policy: str | Sequence[str] = "color,translation,cutout"):
        super().__init__()
        self.policy = _parse_policy(policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            for op in DIFFAUGMENT_OPS[name]:
                x = op(x)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}"
