"""Mixed precision the StyleGAN2-ADA way: the highest ``num_fp16_res`` resolutions of G and D compute in fp16.

Which blocks: ``fp16_resolution = max(2 ** (log2(R) + 1 - num_fp16_res), 8)``; every block at a resolution
``>= fp16_resolution`` is reduced (so the 4x4 block and the D epilogue never are). Within such a block the
activations are cast to fp16 on entry (optionally channels-last), every layer casts its fp32 parameters to the
activation dtype per call (the parameters, their gradients and Adam stay fp32), the convolution outputs are
clamped to ``+-conv_clamp`` (256 in the anchor's configs), and the modulated convolutions pre-normalise weights
and styles by their max-norm before demodulation (which cancels the scale) so fp16 cannot overflow. The
generator's image skip path stays fp32 (each ToRGB output is cast back before it is added) and so do the
mapping network and the D epilogue.

fp16 is used on CUDA only: on CPU the blocks compute in fp32 unless :func:`reduced_precision_on_cpu` says
otherwise (for tests; CPU fp16 is slow and gains nothing).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["fp16_resolution", "block_dtype", "reduced_precision_on_cpu"]

_cpu_dtype: torch.dtype | None = None


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """The lowest resolution whose blocks compute in reduced precision (> ``img_resolution`` when none do)."""
    if num_fp16_res <= 0:
        return img_resolution * 2
    return max(2 ** (img_resolution.bit_length() - 1 + 1 - num_fp16_res), 8)


def block_dtype(use_fp16: bool, device: torch.device) -> torch.dtype | None:
    """The dtype a block computes in, or ``None`` for "the parameters' own" (fp32; left untouched)."""
    if not use_fp16:
        return None
    if device.type == "cuda":
        return torch.float16
    return _cpu_dtype


@contextlib.contextmanager
def reduced_precision_on_cpu(dtype: torch.dtype = torch.float16) -> Iterator[None]:
    """Inside this block, fp16 blocks compute in ``dtype`` (fp16 or bf16) on CPU too."""
    global _cpu_dtype
    old, _cpu_dtype = _cpu_dtype, dtype
    try:
        yield
    finally:
        _cpu_dtype = old
