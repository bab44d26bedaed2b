"""Networks: StyleGAN2 generator and discriminator (config F, fp32) and the low-level ops they use."""

from .discriminator import Discriminator
from .generator import Generator, SynthesisNetwork
from .layers import (
    Conv2dLayer, DiscriminatorBlock, DiscriminatorEpilogue, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer,
    SynthesisBlock, SynthesisLayer, ToRGBLayer, conv2d_resample, modulated_conv2d, normalize_2nd_moment,
)



def has_w_space(G) -> bool:
    """Whether ``G`` has StyleGAN2's mapping network (a W space to truncate, mix, project or walk); BigGAN does
    not."""
    return hasattr(G, "mapping")


def require_w_space(G, command: str) -> None:
    """One sentence when ``command`` needs StyleGAN2's W space and ``G`` is another network family."""
    if not has_w_space(G):
        from ..errors import UserError
        raise UserError(f"{command} works in StyleGAN2's W space; this is a {type(G).__name__} network, which has "
                        "none (fakeclr generate and the FID/KID metrics work with it).")


__all__ = ["has_w_space", "require_w_space", 
    "Generator", "Discriminator", "SynthesisNetwork", "MappingNetwork", "FullyConnectedLayer", "Conv2dLayer",
    "conv2d_resample", "modulated_conv2d", "normalize_2nd_moment", "SynthesisLayer", "ToRGBLayer",
    "SynthesisBlock", "MinibatchStdLayer", "DiscriminatorBlock", "DiscriminatorEpilogue",
]
