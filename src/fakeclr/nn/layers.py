"""Building blocks of the StyleGAN2 generator and discriminator (config F: "skip" G, "resnet" D; D also
"orig" and "skip").

fp32 unless a block is built with ``use_fp16`` and runs on CUDA (mixed precision: :mod:`fakeclr.nn.precision`).

References:
    [SG2]   Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020.
    [SG1]   Karras et al., "A Style-Based Generator Architecture for GANs", CVPR 2019.
    [PGGAN] Karras et al., "Progressive Growing of GANs", ICLR 2018 (equalized learning rate, minibatch stddev).

Every trainable weight is stored with unit variance and scaled at run time by ``1 / sqrt(fan_in)`` (times a
learning-rate multiplier), the equalized learning rate of [PGGAN, Sec. 4.1]. Parameter and buffer names follow
the StyleGAN2-ADA state dicts (``fc0.weight``, ``affine.bias``, ``noise_const``, ``resample_filter``, ...), so
weights can be moved between the two by name. Images and feature maps are ``[N, C, H, W]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..config import D_ARCHITECTURES
from .ops import (ACTIVATIONS, _padding4, _filter_size, bias_act, downsample2d, setup_filter, upfirdn2d,
                  upsample2d)
from .precision import block_dtype

__all__ = [
    "FullyConnectedLayer", "Conv2dLayer", "conv2d_resample", "normalize_2nd_moment", "MappingNetwork",
    "modulated_conv2d", "SynthesisLayer", "ToRGBLayer", "SynthesisBlock", "MinibatchStdLayer",
    "DiscriminatorBlock", "DiscriminatorEpilogue",
]

DEFAULT_FILTER = (1, 3, 3, 1)
NOISE_MODES = ("random", "const", "none")


# ---------------------------------------------------------------------------------------------------------------
# Plain layers.


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate: ``act(x @ (W * g).T + b * lr)``, ``g = lr / sqrt(in_features)``.

    The stored weight is ``randn / lr_multiplier`` so that the effective initial weight is ``randn / sqrt(fan_in)``
    while Adam's steps on it are scaled by ``lr_multiplier`` (the mapping network uses 0.01, [SG1, Sec. C]).

    Shapes: ``x [N, in_features] -> [N, out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = None if self.bias is None else (self.bias * self.lr_multiplier if self.lr_multiplier != 1 else self.bias)
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}, lr={self.lr_multiplier:g}"



def freeze_parameters(module: torch.nn.Module) -> None:
    """FreezeD's freezing (Mo et al. 2020): every parameter of ``module`` and its submodules becomes a buffer of the
    same name, so it gets no gradient and no optimizer state while state dicts (and checkpoints) keep their
    layout."""
    for m in module.modules():
        for name, param in list(m.named_parameters(recurse=False)):
            delattr(m, name)
            m.register_buffer(name, param.detach())

def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int | Sequence[int] = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """2-D convolution fused with FIR up- or downsampling by an integer factor.

    * ``up > 1``: strided transposed convolution (zero insertion + conv), then the low-pass ``f`` (gain ``up**2``).
    * ``down > 1``: low-pass ``f`` first, then a strided convolution (for 1x1 kernels: downsample, then convolve).
    * otherwise a plain convolution.

    Args:
        x: ``[N, C_in, H, W]``.
        w: ``[C_out, C_in // groups, kh, kw]``.
        f: FIR filter from :func:`setup_filter` (``None``: identity).
        padding: padding of the (upsampled) image, ``int``, ``(x, y)`` or ``(x0, x1, y0, y1)``; the filter's own
            padding is added here so that the output is ``[N, C_out, H * up / down, W * up / down]`` for
            ``padding = k // 2``.
        flip_weight: ``True`` = correlation (what ``F.conv2d`` computes), ``False`` = true convolution.
    """
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: up- and downsampling at once is not supported")
    c_out, c_in_g, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:  # room for the filter around the zero-stuffed image
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2

    if up > 1:
        # conv_transpose2d wants [C_in, C_out // groups, kh, kw]; swap the in/out axes inside each group.
        wt = w.reshape(groups, c_out // groups, c_in_g, kh, kw).transpose(1, 2).reshape(groups * c_in_g, -1, kh, kw)
        if flip_weight:  # a transposed conv already convolves; flip to correlate
            wt = wt.flip([2, 3])
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        # Let the transposed conv crop what it can; the FIR pass pads or crops the rest.
        tx, ty = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[ty, tx], groups=groups)
        return upfirdn2d(x, f, padding=[px0 + tx, px1 + tx, py0 + ty, py1 + ty], gain=up ** 2)

    if not flip_weight:
        w = w.flip([2, 3])
    if down > 1:
        if kw == 1 and kh == 1:  # cheaper: decimate first, then the pointwise conv on the small image
            x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
            return F.conv2d(x, w, groups=groups)
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return F.conv2d(x, w, stride=down, groups=groups)
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, w, padding=[py0, px0], groups=groups)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return F.conv2d(x, w, groups=groups)


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate (gain ``1 / sqrt(C_in * k * k)``), optional FIR resampling,
    bias, activation and output clamp.

    Shapes: ``x [N, C_in, H, W] -> [N, C_out, H * up / down, W * up / down]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = DEFAULT_FILTER, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ACTIVATIONS[activation][2]
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", setup_filter(resample_filter))

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """``gain`` scales the activation output and the clamp (the resnet blocks pass ``sqrt(0.5)``)."""
        w = (self.weight * self.weight_gain).to(x.dtype)             # fp32 parameters, cast per call (fp16 blocks)
        b = None if self.bias is None else self.bias.to(x.dtype)
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}->{self.out_channels}, k={self.kernel_size}, act={self.activation}, "
                f"up={self.up}, down={self.down}, clamp={self.conv_clamp}")


# ---------------------------------------------------------------------------------------------------------------
# Mapping network z -> w.


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (pixel norm of the latent, [SG1, Sec. 2])."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(torch.nn.Module):
    """MLP from ``z`` (and an optional class label ``c``) to the intermediate latent ``w`` [SG1, Sec. 2].

    ``z`` and the embedded ``c`` are each normalised to unit second moment and concatenated, then go through
    ``num_layers`` lrelu dense layers with learning-rate multiplier 0.01. With ``num_ws`` set the result is
    broadcast to ``[N, num_ws, w_dim]`` (one copy per synthesis layer) and a running mean ``w_avg`` is kept for
    the truncation trick [SG1, Sec. 3.2]. The discriminator reuses this class (``z_dim=0``, ``num_ws=None``,
    ``w_avg_beta=None``) to map labels for its projection head.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        if z_dim + embed_features == 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        dims = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(dims[i], dims[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        """Map latents to ``w``.

        Args:
            z: ``[N, z_dim]`` (ignored when ``z_dim == 0``).
            c: ``[N, c_dim]`` one-hot or soft labels (ignored when ``c_dim == 0``).
            truncation_psi: ``w <- w_avg + psi * (w - w_avg)``; 1 disables, 0 returns ``w_avg``.
            truncation_cutoff: truncate only the first ``cutoff`` of the ``num_ws`` copies (``None``: all).
            update_emas: move ``w_avg`` towards this batch's mean ``w`` (decay ``w_avg_beta``). Off by default,
                whatever the train/eval mode, so only the training step that asks for it changes the average.
        Returns:
            ``[N, num_ws, w_dim]``, or ``[N, w_dim]`` when ``num_ws is None``.
        """
        parts = []
        if self.z_dim > 0:
            _check_2d(z, self.z_dim, "z")
            parts.append(normalize_2nd_moment(z.to(self.fc0.weight.dtype)))
        if self.c_dim > 0:
            _check_2d(c, self.c_dim, "c")
            parts.append(normalize_2nd_moment(self.embed(c.to(self.embed.weight.dtype))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)

        if update_emas and self.w_avg_beta is not None and self.num_ws is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs w_avg, which this mapping network does not track")
            t = self.w_avg.lerp(x, truncation_psi)
            if truncation_cutoff is not None and self.num_ws is not None:
                t = torch.cat([t[:, :truncation_cutoff], x[:, truncation_cutoff:]], dim=1)
            x = t
        return x


def _check_2d(t: torch.Tensor | None, dim: int, name: str) -> None:
    if t is None or t.ndim != 2 or t.shape[1] != dim:
        got = None if t is None else list(t.shape)
        raise ValueError(f"{name} must have shape [N, {dim}], got {got}")


# ---------------------------------------------------------------------------------------------------------------
# Synthesis network layers.


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """Style-modulated convolution of [SG2, Sec. 2.2], optionally upsampling and adding noise.

    Modulation (Eq. 1): ``w'[n,o,i,:,:] = s[n,i] * w[o,i,:,:]``.
    Demodulation (Eq. 3): ``w''[n,o] = w'[n,o] / sqrt(sum_{i,k} w'[n,o,i,k]^2 + 1e-8)``, so each output map has
    unit expected standard deviation (Eq. 2) for unit-variance inputs.

    ``fused_modconv=True`` builds the per-sample weights and runs one grouped convolution (group = sample);
    ``False`` scales the activations before and after a shared convolution instead, which is the same function
    and is faster for training batches. The noise is added after demodulation.

    Args:
        x: ``[N, C_in, H, W]``.  weight: ``[C_out, C_in, k, k]`` (already gain-free, unit variance).
        styles: ``[N, C_in]``.  noise: broadcastable to ``[N, C_out, H*up, W*up]`` or ``None``.
    Returns:
        ``[N, C_out, H * up, W * up]`` (for ``padding = k // 2``).
    """
    n = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    if styles.shape != (n, c_in):
        raise ValueError(f"styles must be [{n}, {c_in}], got {list(styles.shape)}")
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise by the max-norms so that the fp16 products cannot overflow; demodulation (Eq. 3) divides
        # each output map by its norm, so the scale cancels (the anchor's rule).
        weight = weight * (1 / math.sqrt(c_in * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, c_in, 1, 1)  # [N, O, I, k, k], Eq. 1
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O], Eq. 3

    dt = x.dtype                                      # styles, weights and noise follow the activations
    if noise is not None:
        noise = noise.to(dt)
    if not fused_modconv:
        x = x * styles.to(dt).reshape(n, c_in, 1, 1)
        x = conv2d_resample(x, weight.to(dt), resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if dcoefs is not None and noise is not None:
            return torch.addcmul(noise, x, dcoefs.to(dt).reshape(n, c_out, 1, 1))  # x * d + noise, one rounding
        if dcoefs is not None:
            x = x * dcoefs.to(dt).reshape(n, c_out, 1, 1)
        return x if noise is None else x + noise

    if dcoefs is not None:
        w = w * dcoefs.reshape(n, c_out, 1, 1, 1)
    x = conv2d_resample(x.reshape(1, n * c_in, *x.shape[2:]), w.reshape(n * c_out, c_in, kh, kw).to(dt),
                        resample_filter, up=up, padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, c_out, *x.shape[2:])
    return x if noise is None else x + noise


class SynthesisLayer(torch.nn.Module):
    """One modulated 3x3 conv of the generator: affine style, (up)conv, per-pixel noise, bias, lrelu [SG2, Fig. 2d].

    Noise is a single-channel map scaled by the learned scalar ``noise_strength`` (initially 0). ``noise_mode``:
    ``'random'`` draws fresh noise per call, ``'const'`` uses the fixed buffer ``noise_const`` (deterministic
    output), ``'none'`` adds nothing.

    Shapes: ``x [N, C_in, R/up, R/up], w [N, w_dim] -> [N, C_out, R, R]`` with ``R = resolution``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = DEFAULT_FILTER, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.up, self.use_noise, self.activation, self.conv_clamp = up, use_noise, activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation][2]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # styles start around 1
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", setup_filter(resample_filter))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1.0) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        # The weight is demodulated, so its equalized-lr gain would cancel out and is not applied.
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, res={self.resolution}, up={self.up}"


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation [SG2, Sec. 4.1, "skip" generator].

    Shapes: ``x [N, C, R, R], w [N, w_dim] -> [N, img_channels, R, R]``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # no demodulation, so the equalized-lr gain goes on the styles
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution of the "skip" generator [SG2, Fig. 7b].

    The first block (``in_channels == 0``) starts from the learned constant ``const [C, 4, 4]`` and has one conv;
    later blocks upsample with ``conv0`` and refine with ``conv1``. Every block adds its ToRGB output to the
    FIR-upsampled image of the previous block.

    Shapes: ``x [N, C_in, R/2, R/2] | None, img [N, img_channels, R/2, R/2] | None,
    ws [N, num_conv + 1, w_dim] -> (x [N, C_out, R, R], img [N, img_channels, R, R])``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 resample_filter: Sequence[float] = DEFAULT_FILTER, conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.use_fp16, self.channels_last = use_fp16, use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "random",
                fused_modconv: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        reduced = block_dtype(self.use_fp16, ws.device)   # None: the parameters' own dtype (fp32)
        dtype = reduced or self.conv1.weight.dtype
        fmt = torch.channels_last if self.channels_last and reduced is not None else torch.contiguous_format
        if fused_modconv is None:  # grouped conv for inference (fp32, or one sample), activation scaling otherwise
            fused_modconv = not self.training and (reduced is None or ws.shape[0] == 1)
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1).to(dtype=dtype, memory_format=fmt)
        else:   # (a no-op for fp32 input to an fp32 block)
            x = self.conv0(x.to(dtype=dtype, memory_format=fmt), next(w_iter), noise_mode=noise_mode,
                           fused_modconv=fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
        if reduced is not None:                         # the image skip path stays fp32
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img

    def extra_repr(self) -> str:
        return f"res={self.resolution}, {self.in_channels}->{self.out_channels}"


# ---------------------------------------------------------------------------------------------------------------
# Discriminator layers.


class MinibatchStdLayer(torch.nn.Module):
    """Append the mean standard deviation over groups of samples as extra feature maps [PGGAN, Sec. 3].

    The batch is split into groups of ``G = min(group_size, N)`` samples taken with stride ``N / G`` (sample ``j``
    goes to group ``j mod (N / G)``) and the channels into ``num_channels`` slices; each slice gets the stddev over
    its group, averaged over channels and pixels, broadcast to ``[H, W]``.

    Shapes: ``[N, C, H, W] -> [N, C + num_channels, H, W]``; ``N`` must be a multiple of ``G``.
    """

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size is None else min(self.group_size, n)
        f = self.num_channels
        if n % g != 0 or c % f != 0:
            raise ValueError(f"minibatch stddev: batch {n} must be a multiple of the group size {g} "
                             f"and channels {c} a multiple of {f}")
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # [n/G, F, c, H, W] variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator, in one of StyleGAN2's three architectures [SG2, Fig. 7]:

    - ``"resnet"`` (config F, Fig. 7c): ``out = (conv1_down(conv0(x)) + skip_down(x)) * sqrt(0.5)``, where the
      skip is a bias-free 1x1 conv after FIR downsampling;
    - ``"orig"`` (Fig. 7a, no skip connections; StyleGAN2-ADA's cifar configuration): ``out = conv1_down(conv0(x))``;
    - ``"skip"`` (Fig. 7b): as ``"orig"``, with the image at this block's resolution mapped by a 1x1 ``fromrgb``
      conv and added to ``x`` first; the image goes on FIR-downsampled to the next block.

    The top block (``in_channels == 0``) starts from the image alone: ``x = fromrgb(img)``.

    Shapes: ``x [N, C_in, R, R]`` (``None`` in the top block), ``img [N, img_channels, R, R]`` (top block and
    ``"skip"``; ``None`` otherwise) -> ``x [N, C_out, R/2, R/2]``, ``img [N, img_channels, R/2, R/2]``
    (``"skip"``) or ``None``.
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[float] = DEFAULT_FILTER, conv_clamp: float | None = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError("DiscriminatorBlock: in_channels must be 0 (top block) or tmp_channels")
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"DiscriminatorBlock: architecture must be one of {', '.join(D_ARCHITECTURES)}")
        self.in_channels, self.tmp_channels, self.out_channels = in_channels, tmp_channels, out_channels
        self.resolution, self.img_channels, self.architecture = resolution, img_channels, architecture
        self.use_fp16, self.channels_last = use_fp16, use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation=activation, conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation=activation, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x, img)`` of the next block: see the class docstring for which of them are ``None``."""
        device = (x if x is not None else img).device
        reduced = block_dtype(self.use_fp16, device)   # None: the parameters' own dtype (fp32)
        dtype = reduced or self.conv0.weight.dtype
        memory_format = torch.channels_last if self.channels_last and reduced else torch.contiguous_format
        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if hasattr(self, "fromrgb"):
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture != "resnet":
            return self.conv1(self.conv0(x)), img
        gain = math.sqrt(0.5)  # keeps the variance of the residual sum
        y = self.skip(x, gain=gain)
        return y + self.conv1(self.conv0(x), gain=gain), img

    def extra_repr(self) -> str:
        return (f"res={self.resolution}, {self.in_channels or self.img_channels}->{self.out_channels}, "
                f"{self.architecture}")


class DiscriminatorEpilogue(torch.nn.Module):
    """Final 4x4 block: (``"skip"`` architecture: the 4x4 image through a 1x1 ``fromrgb`` conv added to ``x``),
    minibatch stddev, 3x3 conv, dense, output layer.

    Unconditional: the output layer gives one logit. Conditional (``cmap_dim > 0``): it gives a ``cmap_dim``
    vector that is projected on the mapped label, ``logit = <out, cmap> / sqrt(cmap_dim)`` (projection
    discriminator, Miyato & Koyama 2018).

    Shapes: ``x [N, C, 4, 4], img [N, img_channels, 4, 4] | None, cmap [N, cmap_dim] | None -> [N, 1]``.
    """

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, img_channels: int = 3,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"DiscriminatorEpilogue: architecture must be one of {', '.join(D_ARCHITECTURES)}")
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, 1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None = None,
                cmap: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.fc.weight.dtype   # fp32 always (unless the module was cast, e.g. .double() in tests)
        x = x.to(dtype=dtype, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(dtype=dtype, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x
