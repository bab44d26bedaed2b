"""StyleGAN2 discriminator: config F's residual blocks [SG2, Fig. 7c] by default, or the plain "orig" blocks
(Fig. 7a; StyleGAN2-ADA's cifar configuration) or "skip" blocks (Fig. 7b); fp32, or mixed precision in the
``num_fp16_res`` highest resolutions on CUDA (:mod:`fakeclr.nn.precision`; the epilogue stays fp32).

Blocks ``b{R}, ..., b8`` halve the resolution down to 4x4; the epilogue ``b4`` turns the 4x4 features into a logit.
The 4x4 features (the epilogue's input) are what FakeCLR / InsGen contrastive heads read, so ``forward`` can
return them: in every architecture the output of block ``b8`` (with "skip" the epilogue adds its own ``fromrgb``
of the 4x4 image after that point). Parameter names match the StyleGAN2-ADA ``D`` state dict
(``b32.fromrgb.weight``, ``b4.fc.weight``, ``mapping.embed.weight``, ...).
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import D_ARCHITECTURES
from ..errors import UserError
from .generator import _check_resolution, channels_per_resolution, check_num_fp16_res
from .precision import fp16_resolution
from .layers import DEFAULT_FILTER, DiscriminatorBlock, DiscriminatorEpilogue, MappingNetwork, freeze_parameters

__all__ = ["Discriminator"]


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator with minibatch stddev and projection conditioning.

    Args:
        c_dim: label size, 0 for unconditional.
        img_resolution: input size, a power of two >= 4.
        img_channels: input channels.
        architecture: the blocks [SG2, Fig. 7]: ``"resnet"`` (residual, config F), ``"orig"`` (no skip
            connections) or ``"skip"`` (the downsampled image fed to every block); as StyleGAN2-ADA's
            ``architecture``, with the same parameter names.
        channel_base, channel_max: ``channels(res) = min(channel_base // res, channel_max)``.
        mbstd_group_size: group size of the minibatch stddev layer (``None``: whole batch); the batch size must
            be a multiple of ``min(group_size, N)``.
        mbstd_num_channels: stddev feature maps appended (0 disables the layer).
        cmap_dim: size of the mapped label for the projection head (``None``: channels at 4x4).
        conv_clamp: clamp conv outputs to ``+-conv_clamp`` (``None``: off).
        mapping_layers: depth of the label mapping MLP (used only when ``c_dim > 0``).
        num_fp16_res, fp16_channels_last: mixed precision of the highest resolutions, as in :class:`Generator`.

    ``D.config`` holds these arguments as a JSON-able dict; ``D.feature_channels`` is the channel count of the
    4x4 features returned with ``return_features=True``.
    """

    def __init__(self, c_dim: int = 0, img_resolution: int = 256, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 cmap_dim: int | None = None, conv_clamp: float | None = 256, mapping_layers: int = 8,
                 num_fp16_res: int = 0, fp16_channels_last: bool = False, architecture: str = "resnet"):
        super().__init__()
        if architecture not in D_ARCHITECTURES:
            raise UserError(f"Discriminator architecture '{architecture}' is not one of {', '.join(D_ARCHITECTURES)} "
                            "(--d-architecture).")
        log2 = _check_resolution(img_resolution, "Discriminator")
        check_num_fp16_res(num_fp16_res, img_resolution)
        fp16_res = fp16_resolution(img_resolution, num_fp16_res)
        if c_dim < 0 or img_channels < 1 or mbstd_num_channels < 0:
            raise UserError("Discriminator: c_dim and mbstd_num_channels must be >= 0 and img_channels >= 1.")
        self._config = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                            channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
                            mbstd_num_channels=mbstd_num_channels, cmap_dim=cmap_dim, conv_clamp=conv_clamp,
                            mapping_layers=mapping_layers, num_fp16_res=num_fp16_res,
                            fp16_channels_last=fp16_channels_last, architecture=architecture)
        self.architecture = architecture
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]  # R, R/2, ..., 8
        channels = channels_per_resolution(self.block_resolutions + [4], channel_base, channel_max)
        self.feature_channels = channels[4]
        self.cmap_dim = 0 if c_dim == 0 else (channels[4] if cmap_dim is None else cmap_dim)

        for res in self.block_resolutions:
            in_channels = 0 if res == img_resolution else channels[res]
            setattr(self, f"b{res}", DiscriminatorBlock(in_channels, channels[res], channels[res // 2], res,
                                                        img_channels, architecture=architecture,
                                                        resample_filter=DEFAULT_FILTER,
                                                        conv_clamp=conv_clamp, use_fp16=res >= fp16_res,
                                                        fp16_channels_last=fp16_channels_last))
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, self.cmap_dim, num_ws=None, num_layers=mapping_layers,
                                          w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels[4], self.cmap_dim, resolution=4, img_channels=img_channels,
                                        architecture=architecture, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable); ``Discriminator(**D.config)`` builds the same architecture."""
        return dict(self._config)

    def layer_names(self) -> list[str]:
        """The blocks' layers from the top resolution down, in StyleGAN2-ADA's count for ``--freezed``: ``fromrgb``
        (top block only, every block with "skip"), ``conv0``, ``conv1``, ``skip`` ("resnet" only) per block; the
        epilogue and the label mapping are not counted (they are never frozen)."""
        names = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            names += [f"b{res}.{n}" for n in ("fromrgb", "conv0", "conv1", "skip") if hasattr(block, n)]
        return names

    def freeze_layers(self, n: int) -> list[str]:
        """FreezeD (Mo et al. 2020): the first ``n`` of :meth:`layer_names` keep their weights. Their parameters
        become buffers of the same name, so they get no gradient and no optimizer state, and state dicts (and
        checkpoints) keep their layout. Returns the frozen layers."""
        layers = self.layer_names()
        if not 0 <= n <= len(layers):
            raise UserError(f"--freeze-d {n}: this discriminator has {len(layers)} freezable layers at "
                            f"{self.img_resolution} px ({layers[0]} ... {layers[-1]}); use 0 to {len(layers)}.")
        for name in layers[:n]:
            freeze_parameters(self.get_submodule(name))
        return layers[:n]

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, return_features: bool = False):
        """Score images.

        Args:
            img: ``[N, img_channels, R, R]``.
            c: ``[N, c_dim]`` labels (ignored when ``c_dim == 0``).
            return_features: also return the 4x4 features entering the epilogue.
        Returns:
            ``logits [N, 1]``, or ``(logits, features [N, feature_channels, 4, 4])``.
        """
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img must have shape [N, {', '.join(map(str, expected))}], got {list(img.shape)}")
        x, img = None, img.to(self.b4.out.weight.dtype)  # float32 unless the module was cast (.double() in tests)
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)       # img: None after the top block but with "skip"
        x = x.to(dtype=self.b4.out.weight.dtype, memory_format=torch.contiguous_format)   # features and epilogue: fp32
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        logits = self.b4(x, img, cmap)
        return (logits, x) if return_features else logits
