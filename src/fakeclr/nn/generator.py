"""StyleGAN2 generator, config F with the "skip" synthesis network [SG2, Fig. 7b]; fp32, or mixed precision in
the ``num_fp16_res`` highest resolutions on CUDA (:mod:`fakeclr.nn.precision`).

``Generator = MappingNetwork (z, c -> ws) + SynthesisNetwork (ws -> img)``. Parameter names match the
StyleGAN2-ADA ``G`` state dict (``mapping.fc0.weight``, ``synthesis.b4.const``, ``synthesis.b8.conv0.affine.weight``,
...), so weights move between the two by name.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError, check_resolution
from .layers import DEFAULT_FILTER, MappingNetwork, SynthesisBlock
from .precision import fp16_resolution

__all__ = ["SynthesisNetwork", "Generator", "channels_per_resolution", "check_num_fp16_res"]


def channels_per_resolution(resolutions, channel_base: int, channel_max: int) -> dict[int, int]:
    """Feature maps at each resolution: ``min(channel_base // res, channel_max)`` (halved per doubling)."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def check_num_fp16_res(num_fp16_res: int, img_resolution: int) -> None:
    """``num_fp16_res`` counts resolutions from the top; there are ``log2(R) - 1`` of them (4 .. R)."""
    n = img_resolution.bit_length() - 2
    if not 0 <= num_fp16_res <= n:
        raise UserError(f"--fp16-res {num_fp16_res}: a {img_resolution} px network has {n} resolutions (4 to "
                        f"{img_resolution}); use 0 to {n} (4x4 and 8x8 stay fp32 whatever the count, as in "
                        "StyleGAN2-ADA).")


def _check_resolution(img_resolution: int, who: str) -> int:
    """log2 of a valid ``img_resolution`` (:func:`~fakeclr.errors.check_resolution`'s rule)."""
    return check_resolution(img_resolution, f"{who} img_resolution").bit_length() - 1


class SynthesisNetwork(torch.nn.Module):
    """``ws [N, num_ws, w_dim] -> img [N, img_channels, R, R]`` through blocks ``b4, b8, ..., bR``.

    Block ``b{res}`` reads ``num_conv + 1`` consecutive latents; its ToRGB latent is also the first latent of the
    next block, so ``num_ws = 2 * log2(R) - 2``.
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, conv_clamp: float | None = 256,
                 resample_filter=DEFAULT_FILTER, num_fp16_res: int = 0, fp16_channels_last: bool = False):
        super().__init__()
        log2 = _check_resolution(img_resolution, "Generator")
        check_num_fp16_res(num_fp16_res, img_resolution)
        fp16_res = fp16_resolution(img_resolution, num_fp16_res)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = channels_per_resolution(self.block_resolutions, channel_base, channel_max)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   resample_filter=resample_filter, conv_clamp=conv_clamp,
                                   use_fp16=res >= fp16_res, fp16_channels_last=fp16_channels_last)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last block's ToRGB

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None) -> torch.Tensor:
        """Render images.

        Args:
            ws: ``[N, num_ws, w_dim]``.
            noise_mode: ``'random'`` | ``'const'`` | ``'none'`` (see :class:`~fakeclr.nn.layers.SynthesisLayer`).
            fused_modconv: grouped-conv path; ``None``: fused in eval mode, unfused in train mode (same function).
        Returns:
            ``[N, img_channels, img_resolution, img_resolution]``, roughly in ``[-1, 1]``.
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(self.b4.const.dtype)
        x = img = None
        i = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, i, block.num_conv + block.num_torgb), noise_mode=noise_mode,
                           fused_modconv=fused_modconv)
            i += block.num_conv
        return img


class Generator(torch.nn.Module):
    """StyleGAN2 generator (config F, skip architecture).

    Args:
        z_dim, w_dim: latent sizes.
        c_dim: label size, 0 for unconditional.
        img_resolution: output size, a power of two >= 4 (16..1024 in practice).
        img_channels: output channels (1 grey, 3 RGB, ...).
        mapping_layers: depth of the mapping MLP (8 in the paper, 2 in ADA's low-data "auto" config).
        channel_base, channel_max: ``channels(res) = min(channel_base // res, channel_max)``.
        conv_clamp: clamp conv outputs to ``+-conv_clamp`` (``None``: off); ADA trains with 256.
        mapping_lr_multiplier: learning-rate multiplier of the mapping layers.
        w_avg_beta: decay of the running mean of ``w`` used for truncation.
        num_fp16_res: the highest resolutions that compute in fp16 on CUDA (StyleGAN2-ADA's mixed precision;
            0 = fp32 throughout); ``fp16_channels_last``: channels-last activations in those blocks.

    ``G.config`` holds these arguments as a JSON-able dict, so ``Generator(**G.config)`` rebuilds the network.
    """

    def __init__(self, z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 256,
                 img_channels: int = 3, mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 conv_clamp: float | None = 256, mapping_lr_multiplier: float = 0.01, w_avg_beta: float = 0.995,
                 num_fp16_res: int = 0, fp16_channels_last: bool = False):
        super().__init__()
        if z_dim < 1 or w_dim < 1 or c_dim < 0 or img_channels < 1 or mapping_layers < 1:
            raise UserError("Generator: z_dim, w_dim, img_channels and mapping_layers must be >= 1 and c_dim >= 0.")
        self._config = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                            img_channels=img_channels, mapping_layers=mapping_layers, channel_base=channel_base,
                            channel_max=channel_max, conv_clamp=conv_clamp,
                            mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta,
                            num_fp16_res=num_fp16_res, fp16_channels_last=fp16_channels_last)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base=channel_base,
                                          channel_max=channel_max, conv_clamp=conv_clamp, num_fp16_res=num_fp16_res,
                                          fp16_channels_last=fp16_channels_last)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, num_layers=mapping_layers,
                                      lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable); ``Generator(**G.config)`` builds the same architecture."""
        return dict(self._config)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random", update_emas: bool = False,
                fused_modconv: bool | None = None) -> torch.Tensor:
        """``z [N, z_dim], c [N, c_dim] | None -> img [N, img_channels, R, R]``.

        ``update_emas=True`` also moves ``mapping.w_avg`` towards this batch's mean ``w`` (nothing else is
        updated); the default leaves every buffer unchanged.
        """
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)

    def sample(self, z: torch.Tensor, c: torch.Tensor | None, style_mixing_prob: float = 0.0,
               mixing: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``G(z, c)`` as training runs it, with style mixing regularisation (StyleGAN Sec. 3.1):
        ``(img [N, C, H, W], ws [N, num_ws, w_dim], mixing)``.

        With probability ``style_mixing_prob`` the layers from a random cutoff on take the styles of a second
        latent. ``mixing = (cutoff, second_z)`` (a 0-d integer tensor, ``num_ws`` for no mixing, and ``[N, z_dim]``)
        repeats a given choice instead of drawing one; the choice made is returned (``None`` for none). The mapping
        network's W average is updated by the main latent only.
        """
        ws = self.mapping(z, c, update_emas=True)
        num_ws = ws.shape[1]
        if mixing is None and style_mixing_prob > 0:
            # The cutoff and the coin stay tensors: reading them on the host would wait for the device.
            cutoff = torch.randint(1, num_ws, ()) if num_ws > 1 else torch.tensor(num_ws)
            cutoff = torch.where(torch.rand(()) < style_mixing_prob, cutoff, torch.tensor(num_ws))
            mixing = (cutoff, torch.randn_like(z))
        if mixing is not None:
            ws2 = self.mapping(mixing[1], c, update_emas=False)
            layer = torch.arange(num_ws, device=ws.device)[None, :, None]
            ws = torch.where(layer < mixing[0].to(ws.device), ws, ws2)
        return self.synthesis(ws), ws, mixing
