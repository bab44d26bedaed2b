"""BigGAN for small images (Brock et al. 2019), as the data-efficient GAN papers train it on CIFAR.

The reference is the BigGAN of DiffAugment's ``DiffAugment-biggan-cifar`` (Zhao et al. 2020, itself
ajbrock/BigGAN-PyTorch): residual blocks, class-conditional BatchNorm in G (a per-class gain and bias from an
embedding, BigGAN Sec. 3), a projection discriminator (Miyato & Koyama 2018) with global sum pooling, spectral
normalisation on every convolution and linear layer of both networks (Miyato et al. 2018) with one step of power
iteration per forward pass, N(0, 0.02) weights. At 32 px: G_ch = D_ch = 64 gives 256 channels throughout, no
self-attention. The state dict layout (module and buffer names, ``u0`` / ``sv0``) is the reference's, so the same
tensors load into either; tests/test_biggan.py checks the outputs against the reference's on the same weights.

fakeclr's interface on top: ``G(z, c)`` and ``D(img, c, return_features=True)`` with one-hot labels ``c
[N, c_dim]`` like the StyleGAN2 networks. With ``c_dim = 0`` both networks have a single class (the embedding then
holds one learned gain/bias per BatchNorm, and D's projection one learned vector); the reference has no
unconditional mode.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError
from .layers import freeze_parameters

__all__ = ["BigGANGenerator", "BigGANDiscriminator", "SNConv2d", "SNLinear", "SNEmbedding",
           "ConditionalBatchNorm", "biggan_channels"]

# Per resolution, the channel multipliers of G's blocks (in, out; each block doubles the size from 4 px) and of
# D's blocks (out; in is the previous out, 3 at the image), and which D blocks halve the size (BigGAN App. B,
# Tables 4-8; the 32 px architecture is SN-GAN's CIFAR ResNet widened to 4 * ch).
_G_ARCH = {32: ([4, 4, 4], [4, 4, 4]), 64: ([16, 16, 8, 4], [16, 8, 4, 2]),
           128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1])}
_D_ARCH = {32: ([4, 4, 4, 4], [True, True, False, False]), 64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
           128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False])}


def biggan_channels(resolution: int, ch: int) -> tuple[list[int], list[int], list[int], list[bool]]:
    """``(G in, G out, D out, D downsample)`` channel lists at ``resolution`` for width ``ch``."""
    if resolution not in _G_ARCH:
        raise UserError(f"BigGAN is defined here at {', '.join(map(str, _G_ARCH))} px, not {resolution} px; "
                        "prepare the data at one of those resolutions.")
    g_in, g_out = _G_ARCH[resolution]
    d_out, down = _D_ARCH[resolution]
    return [ch * m for m in g_in], [ch * m for m in g_out], [ch * m for m in d_out], list(down)


# ---------------------------------------------------------------------------------------------------- spectral norm
class _SpectralNorm:
    """Mixin: ``weight / sigma`` with ``sigma`` estimated by one step of power iteration from the stored ``u0``
    (Miyato et al. 2018, Alg. 1). In training mode the step is kept (``u0`` and the estimate ``sv0`` are
    updated); in eval mode it is taken from the stored ``u0`` and discarded. ``sigma`` carries gradient through
    the weight; ``u`` and ``v`` do not."""

    def _init_sn(self, num_outputs: int, eps: float) -> None:
        self.sn_eps = eps
        self.register_buffer("u0", torch.randn(1, num_outputs))
        self.register_buffer("sv0", torch.ones(1))

    def normalized_weight(self) -> torch.Tensor:
        W = self.weight.view(self.weight.size(0), -1)                       # [out, in * k * k]
        with torch.no_grad():
            v = F.normalize(torch.matmul(self.u0, W), eps=self.sn_eps)     # [1, in * k * k]
            u = F.normalize(torch.matmul(v, W.t()), eps=self.sn_eps)       # [1, out]
            if self.training:
                self.u0[:] = u
        sigma = torch.squeeze(torch.matmul(torch.matmul(v, W.t()), u.t()))
        if self.training:
            with torch.no_grad():
                self.sv0[:] = sigma
        return self.weight / sigma


class SNConv2d(torch.nn.Conv2d, _SpectralNorm):
    """Spectrally normalised convolution (3x3 with padding 1 unless told)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 eps: float = 1e-8):
        torch.nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding)
        self._init_sn(out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(torch.nn.Linear, _SpectralNorm):
    """Spectrally normalised fully connected layer."""

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-8):
        torch.nn.Linear.__init__(self, in_features, out_features)
        self._init_sn(out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(torch.nn.Embedding, _SpectralNorm):
    """Spectrally normalised class embedding (D's projection vectors; the matrix is ``[classes, channels]``)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, eps: float = 1e-8):
        torch.nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self._init_sn(num_embeddings, eps)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.embedding(y, self.normalized_weight())


# ---------------------------------------------------------------------------------------------------- batch norm
class _BatchNormStats(torch.nn.Module):
    """Running statistics ``stored_mean`` / ``stored_var`` (momentum 0.1) and the normalisation.

    Training mode normalises with the batch's statistics and updates the running ones. Eval mode uses the running
    ones when ``eval_batch_stats`` is false; when true (the reference's evaluation, which samples G in training
    mode) it normalises with the batch's statistics and leaves the buffers unchanged."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps, self.eval_batch_stats = eps, True
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def _normalize(self, x: torch.Tensor, weight=None, bias=None) -> torch.Tensor:
        if not self.training and self.eval_batch_stats:
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.stored_mean, self.stored_var, weight, bias, self.training, 0.1, self.eps)


class ConditionalBatchNorm(_BatchNormStats):
    """BatchNorm without affine parameters, then ``x * (1 + gain[y]) + bias[y]`` per class ``y`` (BigGAN's
    class-conditional BatchNorm, with per-BatchNorm embeddings: the reference's CIFAR setting has no shared
    embedding). ``x [N, C, H, W]``, ``y [N]`` long."""

    def __init__(self, channels: int, num_classes: int, eps: float = 1e-5):
        super().__init__(channels, eps)
        self.gain = torch.nn.Embedding(num_classes, channels)
        self.bias = torch.nn.Embedding(num_classes, channels)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(y)).view(y.size(0), -1, 1, 1)
        bias = self.bias(y).view(y.size(0), -1, 1, 1)
        return self._normalize(x) * gain + bias


class BatchNorm(_BatchNormStats):
    """BatchNorm with a learned per-channel ``gain`` and ``bias`` (G's output layer)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__(channels, eps)
        self.gain = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalize(x, self.gain, self.bias)


# ---------------------------------------------------------------------------------------------------- blocks
class GBlock(torch.nn.Module):
    """``cBN -> ReLU -> up x2 (nearest) -> conv3x3 -> cBN -> ReLU -> conv3x3``, plus the shortcut
    ``up x2 -> conv1x1``."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int, bn_eps: float, sn_eps: float):
        super().__init__()
        self.conv1 = SNConv2d(in_channels, out_channels, eps=sn_eps)
        self.conv2 = SNConv2d(out_channels, out_channels, eps=sn_eps)
        self.conv_sc = SNConv2d(in_channels, out_channels, kernel_size=1, padding=0, eps=sn_eps)
        self.bn1 = ConditionalBatchNorm(in_channels, num_classes, bn_eps)
        self.bn2 = ConditionalBatchNorm(out_channels, num_classes, bn_eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[N, in, R, R], y [N] -> [N, out, 2R, 2R]``."""
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class DBlock(torch.nn.Module):
    """``[ReLU ->] conv3x3 -> ReLU -> conv3x3 [-> avgpool 2]`` plus a shortcut: ``[avgpool ->] conv1x1`` for the
    first block, ``conv1x1 [-> avgpool]`` after it, the identity when neither channels nor size change."""

    def __init__(self, in_channels: int, out_channels: int, preactivation: bool, downsample: bool, sn_eps: float):
        super().__init__()
        self.preactivation, self.downsample = preactivation, downsample
        self.conv1 = SNConv2d(in_channels, out_channels, eps=sn_eps)
        self.conv2 = SNConv2d(out_channels, out_channels, eps=sn_eps)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = SNConv2d(in_channels, out_channels, kernel_size=1, padding=0, eps=sn_eps)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            x = self.conv_sc(x) if self.learnable_sc else x
            return F.avg_pool2d(x, 2) if self.downsample else x
        x = F.avg_pool2d(x, 2) if self.downsample else x
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        h = F.avg_pool2d(h, 2) if self.downsample else h
        return h + self._shortcut(x)


def _class_index(c: torch.Tensor | None, n: int, c_dim: int, device) -> torch.Tensor:
    """One-hot labels ``[N, c_dim]`` -> class indices ``[N]`` (all 0 for an unconditional network)."""
    if c_dim == 0 or c is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    return c.argmax(dim=1)


def _init_weights(module: torch.nn.Module) -> None:
    """N(0, 0.02) for every convolution, linear layer and embedding weight; biases keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(m.weight, 0, 0.02)


# ---------------------------------------------------------------------------------------------------- networks
class BigGANGenerator(torch.nn.Module):
    """``z [N, z_dim] -> SNLinear -> [N, 16 ch or 4 ch, 4, 4] -> GBlocks (x2 each) -> BN -> ReLU -> conv3x3 -> tanh``.

    Args:
        z_dim: latent size (128). c_dim: classes (0: unconditional, one internal class).
        img_resolution: 32, 64 or 128. img_channels: output channels. ch: width multiplier (64 in the reference).
        bn_eps, sn_eps: BatchNorm and spectral-norm epsilons (the reference's 1e-5 and 1e-8).
    """

    def __init__(self, z_dim: int = 128, c_dim: int = 0, img_resolution: int = 32, img_channels: int = 3,
                 ch: int = 64, bn_eps: float = 1e-5, sn_eps: float = 1e-8):
        super().__init__()
        self._config = dict(z_dim=z_dim, c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                            ch=ch, bn_eps=bn_eps, sn_eps=sn_eps)
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, img_resolution, img_channels
        g_in, g_out, _, _ = biggan_channels(img_resolution, ch)
        classes = max(c_dim, 1)
        self.bottom_width = 4
        self.linear = SNLinear(z_dim, g_in[0] * self.bottom_width ** 2, eps=sn_eps)
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleList([GBlock(i, o, classes, bn_eps, sn_eps)]) for i, o in zip(g_in, g_out))
        self.output_layer = torch.nn.Sequential(BatchNorm(g_out[-1], bn_eps), torch.nn.ReLU(),
                                                SNConv2d(g_out[-1], img_channels, eps=sn_eps))
        _init_weights(self)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``BigGANGenerator(**G.config)`` builds the same architecture."""
        return dict(self._config)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                noise_mode: str = "const", **_unused) -> torch.Tensor:
        """``z [N, z_dim], c [N, c_dim] | None -> img [N, img_channels, R, R]`` in [-1, 1].

        ``noise_mode`` is accepted for the StyleGAN2 interface and has no effect (BigGAN has no noise inputs);
        truncation is not defined here."""
        if truncation_psi != 1:
            raise UserError("Truncation (--trunc) is a StyleGAN2 option; BigGAN networks sample with psi 1.")
        y = _class_index(c, z.shape[0], self.c_dim, z.device)
        h = self.linear(z).view(z.shape[0], -1, self.bottom_width, self.bottom_width)
        for (block,) in self.blocks:
            h = block(h, y)
        return torch.tanh(self.output_layer(h))

    def sample(self, z: torch.Tensor, c: torch.Tensor, style_mixing_prob: float = 0.0, mixing=None):
        """The training loop's generator call (:meth:`fakeclr.phase.PhaseContext.run_G`): ``(img, z, None)``.
        BigGAN has no style mixing; the latent stands where StyleGAN2 returns its ``ws``."""
        return self(z, c), z, None


class BigGANDiscriminator(torch.nn.Module):
    """``img -> DBlocks -> ReLU -> global sum pool [N, C] -> SNLinear + <SNEmbedding(y), h>`` (projection).

    ``return_features=True`` also returns the last block's activations ``ReLU(h) [N, C, r, r]`` (8 x 8 at 32 px):
    the features the contrastive heads pool (FakeCLR does not say how it attaches to BigGAN; this is the
    analogue of StyleGAN2's 4x4 features entering the epilogue)."""

    def __init__(self, c_dim: int = 0, img_resolution: int = 32, img_channels: int = 3, ch: int = 64,
                 sn_eps: float = 1e-8):
        super().__init__()
        self._config = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, ch=ch,
                            sn_eps=sn_eps)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        _, _, d_out, down = biggan_channels(img_resolution, ch)
        d_in = [img_channels] + d_out[:-1]
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleList([DBlock(i, o, preactivation=k > 0, downsample=dn, sn_eps=sn_eps)])
            for k, (i, o, dn) in enumerate(zip(d_in, d_out, down)))
        self.feature_channels = d_out[-1]
        self.linear = SNLinear(d_out[-1], 1, eps=sn_eps)
        self.embed = SNEmbedding(max(c_dim, 1), d_out[-1], eps=sn_eps)
        _init_weights(self)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``BigGANDiscriminator(**D.config)`` builds the same architecture."""
        return dict(self._config)

    def layer_names(self) -> list[str]:
        """The blocks from the image down, for ``--freeze-d``."""
        return [f"blocks.{k}.0" for k in range(len(self.blocks))]

    def freeze_layers(self, n: int) -> list[str]:
        """FreezeD (Mo et al. 2020): the first ``n`` blocks keep their weights (parameters become buffers)."""
        layers = self.layer_names()
        if not 0 <= n <= len(layers):
            raise UserError(f"--freeze-d {n}: this discriminator has {len(layers)} freezable blocks; "
                            f"use 0 to {len(layers)}.")
        for name in layers[:n]:
            freeze_parameters(self.get_submodule(name))
        return layers[:n]

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, return_features: bool = False):
        """``img [N, img_channels, R, R], c [N, c_dim] -> logits [N, 1]`` (and the features)."""
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img must have shape [N, {', '.join(map(str, expected))}], got {list(img.shape)}")
        h = img
        for (block,) in self.blocks:
            h = block(h)
        features = F.relu(h)
        pooled = torch.sum(features, [2, 3])                                    # [N, C] (SN-GAN's sum pooling)
        y = _class_index(c, img.shape[0], self.c_dim, img.device)
        logits = self.linear(pooled) + torch.sum(self.embed(y) * pooled, 1, keepdim=True)
        return (logits, features) if return_features else logits
