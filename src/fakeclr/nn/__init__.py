"""Networks: StyleGAN2 generator and discriminator (config F, fp32) and the low-level ops they use."""

from .discriminator import Discriminator
from .generator import Generator, SynthesisNetwork
from .layers import (
    Conv2dLayer, DiscriminatorBlock, DiscriminatorEpilogue, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer,
    SynthesisBlock, SynthesisLayer, ToRGBLayer, conv2d_resample, modulated_conv2d, normalize_2nd_moment,
)

__all__ = [
    "Generator", "Discriminator", "SynthesisNetwork", "MappingNetwork", "FullyConnectedLayer", "Conv2dLayer",
    "conv2d_resample", "modulated_conv2d", "normalize_2nd_moment", "SynthesisLayer", "ToRGBLayer",
    "SynthesisBlock", "MinibatchStdLayer", "DiscriminatorBlock", "DiscriminatorEpilogue",
]
