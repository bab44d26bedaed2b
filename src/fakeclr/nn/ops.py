"""Low-level ops of StyleGAN2 in plain PyTorch: FIR resampling (upfirdn2d) and bias + activation.

The research code ships these as JIT-compiled CUDA extensions with a slow fallback. Here the plain PyTorch
formulation is the only implementation: it runs on any device, is differentiable by autograd, and is what the
tests check. All image tensors are ``[N, C, H, W]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "setup_filter", "upfirdn2d", "upsample2d", "downsample2d", "filter2d", "bias_act", "ACTIVATIONS",
]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    """``v`` as an ``(x, y)`` pair."""
    if isinstance(v, int):
        return v, v
    assert len(v) == 2
    return int(v[0]), int(v[1])


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Padding as ``(x0, x1, y0, y1)`` from an int, ``(x, y)`` or a 4-sequence."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    assert len(padding) == 4
    return tuple(int(p) for p in padding)  # type: ignore[return-value]


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """``(width, height)`` of a 1-D (separable) or 2-D filter; ``(1, 1)`` for ``None``."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def setup_filter(f, device=None, normalize: bool = True, flip_filter: bool = False, gain: float = 1.0,
                 separable: bool | None = None) -> torch.Tensor:
    """A FIR filter as a float32 tensor ready for :func:`upfirdn2d`.

    Args:
        f: filter taps; 1-D ``[T]`` (separable, applied along x and y) or 2-D ``[T, T]``.
        normalize: scale so that the (outer-product) taps sum to 1, i.e. unit DC gain.
        separable: keep a 1-D filter 1-D; default: only for filters of 8 taps or more.
    Returns:
        ``[T]`` or ``[T, T]``.
    """
    f = torch.as_tensor([1.0] if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


class _DepthwiseCorrelation(torch.autograd.Function):
    """``y = x ⋆ w`` per channel at stride 1, no padding: ``x [N, C, H, W]``, constant taps ``w [kh, kw]``.

    The forward is ``F.conv2d`` with ``groups=C``, as before. The backward is the same correlation again (of the
    zero-padded gradient with the flipped taps, through this Function, so that it has gradients of any order,
    as R1 and path-length regularisation need) instead of PyTorch's CPU depthwise convolution backward, which is
    several times slower than the forward for the 1-channel and few-channel images the augmentation filters.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return _conv_per_channel(x, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (w,) = ctx.saved_tensors
        kh, kw = w.shape
        # dL/dx[i] = sum_k g[i - k] w[k]: the "full" correlation (k - 1 zeros on each side) with the flipped taps.
        grad = F.pad(grad, [kw - 1, kw - 1, kh - 1, kh - 1])
        return _DepthwiseCorrelation.apply(grad, w.flip([0, 1])), None


def _depthwise(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Per-channel correlation of ``x [N, C, H, W]`` with ``w [kh, kw]`` at ``stride = (y, x)``.

    A 1-D pass (``kh == 1`` or ``kw == 1``, the separable filters of the augmentation) at stride 1 takes
    :class:`_DepthwiseCorrelation`'s backward: 1.3-2.5x faster for one backward and 1.5-7x for R1's double one
    (benchmarks/ops_speed.py). 2-D filters over many channels (G and D) keep autograd's, which is faster there.
    """
    if stride == (1, 1) and 1 in w.shape and not w.requires_grad:
        return _DepthwiseCorrelation.apply(x, w)
    return _conv_per_channel(x, w, stride)


def _conv_per_channel(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """``F.conv2d`` of every channel of ``x [N, C, H, W]`` with the same taps ``w [kh, kw]`` (a correlation)."""
    return F.conv2d(x, w[None, None].expand(x.shape[1], 1, *w.shape), groups=x.shape[1], stride=stride)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: int | Sequence[int] = 0, flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with a FIR filter, then keep every ``down``-th pixel.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[T]`` (separable) or ``[T, T]`` from :func:`setup_filter`; ``None`` is the identity filter.
        up, down: integer factors, one for both axes or ``(x, y)``.
        padding: ``int``, ``(x, y)`` or ``(x0, x1, y0, y1)``; negative values crop.
        flip_filter: correlate instead of convolve.
        gain: overall gain; spread over the filter's dimensions.
    Returns:
        ``[N, C, (H*up_y + pad_y0 + pad_y1 - T_y + 1) // down_y ...]`` rounded up, likewise for W.
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    n, c, h, w = x.shape

    # Zero insertion: each pixel followed by (up - 1) zeros along each axis.
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    # Positive padding pads with zeros, negative padding crops.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    # Depthwise FIR filter. conv2d correlates, so the taps are flipped for a true convolution.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    # Downsampling keeps every down-th output from the first: the strided convolution computes only those.
    if f.ndim == 2:
        return _depthwise(x, f, (downy, downx))
    x = _depthwise(x, f[None, :], (1, downx))
    return _depthwise(x, f[:, None], (downy, 1))


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 2, padding: int | Sequence[int] = 0,
               flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample ``[N, C, H, W]`` to ``[N, C, H*up, W*up]`` with a FIR filter (padding chosen to keep alignment)."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int = 2, padding: int | Sequence[int] = 0,
                 flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Low-pass with a FIR filter, then downsample ``[N, C, H, W]`` to ``[N, C, H/down, W/down]``."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain)


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding: int | Sequence[int] = 0, flip_filter: bool = False,
             gain: float = 1.0) -> torch.Tensor:
    """Filter ``[N, C, H, W]`` with a FIR filter, keeping the size (plus any extra ``padding``)."""
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


# name -> (function, default alpha, default gain). Gains keep the signal variance of He initialisation.
ACTIVATIONS = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
}


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``.

    Args:
        x: any shape; ``b`` (``[x.shape[dim]]``) is broadcast along ``dim``.
        act: a key of :data:`ACTIVATIONS`; ``alpha`` and ``gain`` default to that activation's values.
        clamp: symmetric clamp of the output, or ``None``.
    """
    fn, default_alpha, default_gain = ACTIVATIONS[act]
    alpha = default_alpha if alpha is None else alpha
    gain = default_gain if gain is None else gain
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
