"""Tests of the StyleGAN2 generator and discriminator (``fakeclr.nn``).

Parity goldens (``tests/assets/nn_parity.npz``)
-----------------------------------------------
The arrays are outputs of the reference implementation, NVlabs/stylegan2-ada-pytorch at commit
``d72cc7d041b42ec8e806021a205ed9349f87c6a4`` (``training/networks.py``), run on CPU in fp32 with torch 2.13.
For each entry of ``G_CASES`` / ``D_CASES`` below, a scratch script (kept outside the repository):

1. builds our network, fills every parameter and buffer with :func:`fill_deterministic` (a frozen numpy
   ``RandomState`` stream, so the numbers do not depend on torch's RNG or on module construction order);
2. builds the reference network with the matching arguments, ``num_fp16_res=0`` and the same ``conv_clamp``::

       G: training.networks.Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
              mapping_kwargs=dict(num_layers=mapping_layers),
              synthesis_kwargs=dict(channel_base, channel_max, conv_clamp, num_fp16_res=0))
       D: training.networks.Discriminator(c_dim, img_resolution, img_channels, architecture,
              channel_base, channel_max, num_fp16_res=0, conv_clamp, cmap_dim,
              mapping_kwargs=dict(num_layers=mapping_layers),
              epilogue_kwargs=dict(mbstd_group_size, mbstd_num_channels))

   with the case's ``architecture`` ('resnet' where the case names none; 'orig' and 'skip' for the cases named
   so, and 'orig' for ``d32_cifar``, the full-width D of the ``cifar`` preset), and loads our state dict into
   it with ``strict=True`` (the key names and shapes match exactly);
3. runs the reference in eval mode on :func:`make_inputs` and stores, per case: G ``ws`` (psi 1), images with
   ``noise_mode='const'`` and ``'none'``, ``ws``/image with truncation ``psi=0.7`` (``w_avg`` filled non-zero),
   and ``w_avg`` after one update in train mode; D logits and the 4x4 features (the reference has no such
   output, so its blocks ``b{R}..b8`` were run by hand and ``x`` taken before ``b4``; with 'skip' that is before
   the epilogue adds its ``fromrgb`` of the 4x4 image). It also stores the reference state-dict key names with
   their shapes.

The D cases with an architecture (``*_orig``, ``*_skip``, ``d32_cifar``) were added later by the same procedure,
beside the earlier arrays, which were left as they were (the procedure, rerun on the first two D cases, gives
their arrays bit for bit). Our networks are rebuilt here the same way and compared with ``ATOL``; every D case
agreed with the reference to 0 when the goldens were made.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch

from fakeclr.errors import UserError
from fakeclr.nn import Discriminator, Generator
from fakeclr.nn.layers import FullyConnectedLayer, MinibatchStdLayer

ASSET = pathlib.Path(__file__).parent / "assets" / "nn_parity.npz"
ATOL = 1e-5

# The discriminator of the `cifar` preset for CIFAR-10 (32 px, RGB, 10 classes), fp32.
CIFAR_D = dict(c_dim=10, img_resolution=32, img_channels=3, channel_base=32768, channel_max=512,
               mbstd_group_size=32, mbstd_num_channels=1, conv_clamp=256, architecture="orig")

# Tiny configurations used for the parity goldens (name -> constructor kwargs, extra run settings).
G_CASES = {
    "g16_rgb": dict(kwargs=dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3, mapping_layers=2,
                                channel_base=512, channel_max=64, conv_clamp=256),
                    batch=2, trunc_cutoff=None, seed=1),
    "g32_grey_cond": dict(kwargs=dict(z_dim=48, c_dim=4, w_dim=40, img_resolution=32, img_channels=1,
                                      mapping_layers=3, channel_base=1024, channel_max=64, conv_clamp=1.0),
                          batch=2, trunc_cutoff=3, seed=2),
}
D_CASES = {
    "d16_rgb": dict(kwargs=dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=512, channel_max=64,
                                mbstd_group_size=2, mbstd_num_channels=1, conv_clamp=256),
                    batch=4, seed=3),
    "d32_grey_cond": dict(kwargs=dict(c_dim=4, img_resolution=32, img_channels=1, channel_base=1024, channel_max=64,
                                      mbstd_group_size=4, mbstd_num_channels=2, cmap_dim=16, conv_clamp=2.0,
                                      mapping_layers=2),
                          batch=4, seed=4),
    # The other two architectures of StyleGAN2 Fig. 7: 'orig' (StyleGAN2-ADA's cifar configuration) and 'skip'.
    "d32_rgb_orig": dict(kwargs=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=1024, channel_max=64,
                                     mbstd_group_size=2, mbstd_num_channels=1, conv_clamp=256, architecture="orig"),
                         batch=4, seed=5),
    "d32_grey_cond_orig": dict(kwargs=dict(c_dim=4, img_resolution=32, img_channels=1, channel_base=1024,
                                           channel_max=64, mbstd_group_size=4, mbstd_num_channels=2, cmap_dim=16,
                                           conv_clamp=2.0, mapping_layers=2, architecture="orig"),
                               batch=4, seed=6),
    "d16_rgb_skip": dict(kwargs=dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=512, channel_max=64,
                                     mbstd_group_size=2, mbstd_num_channels=1, conv_clamp=1.0, architecture="skip"),
                         batch=4, seed=7),
    # The `cifar` preset's D at full width, as StyleGAN2-ADA's `train.py --cfg cifar --cond 1` builds it for
    # CIFAR-10 (test_cifar_preset_builds_the_golden_discriminator checks that the preset gives these arguments).
    "d32_cifar": dict(kwargs=CIFAR_D, batch=4, seed=8),
}


def fill_deterministic(net: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter and buffer (except the FIR filters) with reproducible values.

    Keys are visited in sorted order and drawn from ``numpy.random.RandomState(seed)``, whose stream numpy keeps
    frozen. Dense weights are ``randn / lr_multiplier`` (as at init), biases and noise strengths are non-zero so
    that every term of the forward pass is exercised.
    """
    rs = np.random.RandomState(seed)
    state = net.state_dict()
    with torch.no_grad():
        for key in sorted(state):
            t = state[key]
            if key.endswith("resample_filter"):
                continue
            v = np.asarray(rs.standard_normal(tuple(t.shape)), dtype=np.float32).reshape(tuple(t.shape))
            owner = net.get_submodule(key.rsplit(".", 1)[0]) if "." in key else net
            leaf = key.rsplit(".", 1)[-1]
            if isinstance(owner, FullyConnectedLayer):
                if leaf == "weight":
                    v = v / owner.lr_multiplier
                else:  # bias; the affine layers' styles stay around 1
                    v = (0.2 * v + (1.0 if key.endswith("affine.bias") else 0.0)) / owner.lr_multiplier
            elif leaf in ("bias", "noise_strength"):
                v = 0.2 * v
            elif leaf == "w_avg":
                v = 0.5 * v
            t.copy_(torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(t.shape))


def make_inputs(case: dict, kind: str) -> dict[str, torch.Tensor | None]:
    """Fixed inputs of a parity case: ``z``/``c`` for G, ``img``/``c`` for D."""
    rs = np.random.RandomState(1000 + case["seed"])
    kw, n = case["kwargs"], case["batch"]
    out: dict[str, torch.Tensor | None] = {}
    if kind == "G":
        out["z"] = torch.from_numpy(rs.standard_normal((n, kw["z_dim"])).astype(np.float32))
    else:
        shape = (n, kw["img_channels"], kw["img_resolution"], kw["img_resolution"])
        out["img"] = torch.from_numpy(rs.standard_normal(shape).astype(np.float32))
    c_dim = kw["c_dim"]
    out["c"] = torch.from_numpy(rs.standard_normal((n, c_dim)).astype(np.float32)) if c_dim else None
    return out


def build(kind: str, name: str) -> torch.nn.Module:
    case = (G_CASES if kind == "G" else D_CASES)[name]
    net = (Generator if kind == "G" else Discriminator)(**case["kwargs"])
    fill_deterministic(net, case["seed"])
    return net.eval()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(ASSET) as f:
        return {k: f[k] for k in f.files}


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    torch.testing.assert_close(actual.detach(), torch.from_numpy(expected), atol=ATOL, rtol=0)


def _key_shapes(net: torch.nn.Module) -> list[str]:
    return sorted(f"{k}:{list(v.shape)}" for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------------------------------------------
# 1. Parity with StyleGAN2-ADA.


@pytest.mark.parametrize("name", sorted(G_CASES))
@pytest.mark.parametrize("fused", [True, False])
def test_generator_matches_reference(golden, name, fused):
    case = G_CASES[name]
    G = build("G", name)
    assert _key_shapes(G) == sorted(golden[f"{name}/keys"].tolist())
    x = make_inputs(case, "G")
    with torch.no_grad():
        ws = G.mapping(x["z"], x["c"])
        _close(ws, golden[f"{name}/ws"])
        _close(G.synthesis(ws, noise_mode="const", fused_modconv=fused), golden[f"{name}/img_const"])
        _close(G.synthesis(ws, noise_mode="none", fused_modconv=fused), golden[f"{name}/img_none"])
        ws_t = G.mapping(x["z"], x["c"], truncation_psi=0.7, truncation_cutoff=case["trunc_cutoff"])
        _close(ws_t, golden[f"{name}/ws_trunc"])
        img_t = G(x["z"], x["c"], truncation_psi=0.7, truncation_cutoff=case["trunc_cutoff"], noise_mode="const",
                  fused_modconv=fused)
        _close(img_t, golden[f"{name}/img_trunc"])
        G.mapping(x["z"], x["c"], update_emas=True)
        _close(G.mapping.w_avg, golden[f"{name}/w_avg_updated"])


@pytest.mark.parametrize("name", sorted(D_CASES))
def test_discriminator_matches_reference(golden, name):
    case = D_CASES[name]
    D = build("D", name)
    assert _key_shapes(D) == sorted(golden[f"{name}/keys"].tolist())
    x = make_inputs(case, "D")
    with torch.no_grad():
        logits, feats = D(x["img"], x["c"], return_features=True)
    _close(logits, golden[f"{name}/logits"])
    _close(feats, golden[f"{name}/features"])
    assert feats.shape[1] == D.feature_channels


def test_cifar_preset_builds_the_golden_discriminator():
    """The `cifar` preset's D (as a run builds it, for CIFAR-10 with labels) is the golden ``d32_cifar`` case:
    StyleGAN2-ADA's 'orig' D of its cifar configuration. Precision is the run's (fp16 blocks compute in fp32 on
    the CPU), so only ``num_fp16_res`` differs from the case."""
    from fakeclr.config import preset_config
    from fakeclr.train.backbone import stylegan2_networks
    cfg = preset_config("cifar")
    cfg.data.channels = 3
    _, D = stylegan2_networks(cfg, c_dim=10)
    assert D.config == Discriminator(**CIFAR_D, num_fp16_res=4).config
    assert D.architecture == "orig" and not any(".skip." in k for k in D.state_dict())


@pytest.mark.parametrize("architecture", ["orig", "skip"])
def test_features_are_the_last_blocks_output_in_every_architecture(architecture):
    """``return_features`` gives what block b8 hands to the epilogue, so the contrastive heads read the same
    place whatever the blocks: the epilogue applied to those features gives the logits."""
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, mbstd_group_size=2, architecture=architecture,
                      **SMALL).eval()
    img = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits, feats = D(img, None, return_features=True)
        x, rgb = D.b16(None, img)
        x, rgb = D.b8(x, rgb)
        assert torch.equal(feats, x) and (rgb is None) == (architecture == "orig")
        assert torch.equal(D.b4(feats, rgb, None), logits)


def test_freezable_layers_follow_the_anchors_count_in_every_architecture():
    """FreezeD's layer order is StyleGAN2-ADA's ``--freezed`` count: the layers its ``freeze_layers=k`` turns into
    buffers as k grows, read from the anchor's networks at 16 px for k = 0..11."""
    anchor = {"resnet": ["b16.fromrgb", "b16.conv0", "b16.conv1", "b16.skip", "b8.conv0", "b8.conv1", "b8.skip"],
              "orig": ["b16.fromrgb", "b16.conv0", "b16.conv1", "b8.conv0", "b8.conv1"],
              "skip": ["b16.fromrgb", "b16.conv0", "b16.conv1", "b8.fromrgb", "b8.conv0", "b8.conv1"]}
    for architecture, layers in anchor.items():
        D = Discriminator(img_resolution=16, img_channels=3, architecture=architecture, **SMALL)
        assert D.layer_names() == layers, architecture
        assert D.freeze_layers(4) == layers[:4]
        assert {n.rsplit(".", 1)[0] for n, _ in D.named_buffers() if n.endswith("weight")} == set(layers[:4])


def test_unknown_architecture_names_the_flag():
    with pytest.raises(UserError, match="--d-architecture"):
        Discriminator(img_resolution=16, img_channels=3, architecture="residual", **SMALL)


# ---------------------------------------------------------------------------------------------------------------
# 2. Shapes.

SMALL = dict(channel_base=256, channel_max=32)


@pytest.mark.parametrize("res", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(res, channels):
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=res, img_channels=channels, mapping_layers=2, **SMALL)
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=channels, mbstd_group_size=2, **SMALL)
    assert G.num_ws == 2 * int(np.log2(res)) - 2
    z = torch.randn(2, 16)
    assert G.mapping(z, None).shape == (2, G.num_ws, 16)
    img = G(z, None)
    assert img.shape == (2, channels, res, res)
    logits, feats = D(img, None, return_features=True)
    assert logits.shape == (2, 1)
    assert feats.shape == (2, D.feature_channels, 4, 4) and D.feature_channels == min(256 // 4, 32)


def test_conditional_shapes():
    G = Generator(z_dim=16, c_dim=5, w_dim=16, img_resolution=16, img_channels=3, mapping_layers=2, **SMALL)
    D = Discriminator(c_dim=5, img_resolution=16, img_channels=3, mapping_layers=2, **SMALL)
    z, c = torch.randn(4, 16), torch.eye(5)[[0, 1, 2, 3]]
    img = G(z, c)
    assert img.shape == (4, 3, 16, 16)
    assert D(img, c).shape == (4, 1)
    assert D.cmap_dim == D.feature_channels
    with pytest.raises(ValueError):
        G(z, None)


# ---------------------------------------------------------------------------------------------------------------
# 3. Gradients.


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, mapping_layers=2, **SMALL)
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=3, mbstd_group_size=2, mapping_layers=2, **SMALL)
    z, c = torch.randn(4, 16), torch.eye(3)[[0, 1, 2, 0]]
    img = G(z, c)  # train mode: unfused modulation, random noise
    loss = torch.nn.functional.softplus(-D(img, c)).mean() + (img * torch.randn_like(img)).mean()
    loss.backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------------------------
# 4. Truncation and the w_avg tracking.


def _tiny_g(**kw) -> Generator:
    torch.manual_seed(0)
    return Generator(**{**dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_layers=2),
                        **SMALL, **kw})


def test_truncation():
    G = _tiny_g()
    G.mapping.w_avg.copy_(torch.randn(16))
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    ws0 = G.mapping(z, None, truncation_psi=0)
    torch.testing.assert_close(ws0, G.mapping.w_avg.expand_as(ws0), atol=0, rtol=0)
    ws_cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(ws_cut[:, 2:], ws[:, 2:], atol=0, rtol=0)
    torch.testing.assert_close(ws_cut[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))


def test_w_avg_updates_only_with_update_emas():
    G = _tiny_g()
    z = torch.randn(3, 16)
    for mode in (True, False):
        G.train(mode)
        before = G.mapping.w_avg.clone()
        G(z, None)
        G.mapping(z, None)
        assert torch.equal(G.mapping.w_avg, before)
        w = G.mapping(z, None, update_emas=True)[:, 0]
        expected = w.mean(0) + 0.995 * (before - w.mean(0))
        torch.testing.assert_close(G.mapping.w_avg, expected)
        assert not G.mapping.w_avg.requires_grad


# ---------------------------------------------------------------------------------------------------------------
# 5. Noise modes.


def test_noise_modes():
    G = _tiny_g().eval()
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    z = torch.randn(2, 16)
    with torch.no_grad():
        const_a, const_b = G(z, None, noise_mode="const"), G(z, None, noise_mode="const")
        rand_a, rand_b = G(z, None, noise_mode="random"), G(z, None, noise_mode="random")
        none = G(z, None, noise_mode="none")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(none, const_a)
    with pytest.raises(ValueError):
        G(z, None, noise_mode="bogus")


# ---------------------------------------------------------------------------------------------------------------
# 6. Config round trip and argument checks.


def test_config_round_trip():
    G = _tiny_g(c_dim=2, conv_clamp=None)
    D = Discriminator(c_dim=2, img_resolution=32, img_channels=1, mbstd_group_size=None, cmap_dim=8,
                      architecture="orig", **SMALL)
    for net, cls in ((G, Generator), (D, Discriminator)):
        cfg = json.loads(json.dumps(net.config))
        clone = cls(**cfg)
        assert clone.config == net.config
        assert _key_shapes(clone) == _key_shapes(net)
        clone.load_state_dict(net.state_dict())
    z, c = torch.randn(2, 16), torch.randn(2, 2)
    G2 = Generator(**G.config).eval()
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        assert torch.equal(G2(z, c, noise_mode="const"), G.eval()(z, c, noise_mode="const"))


def test_bad_arguments():
    with pytest.raises(UserError):
        Generator(z_dim=16, w_dim=16, img_resolution=48, img_channels=3)
    with pytest.raises(UserError):
        Discriminator(img_resolution=2, img_channels=3)
    with pytest.raises(ValueError):
        MinibatchStdLayer(group_size=4)(torch.randn(6, 8, 4, 4))
    D = Discriminator(img_resolution=16, img_channels=3, **SMALL)
    with pytest.raises(ValueError):
        D(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("taps,padding,flip", [(4, 1, False), (12, -6, True), (2, (1, 2, 3, 0), False)])
def test_downsampling_keeps_every_second_sample_of_the_full_filtering(taps, padding, flip):
    """upfirdn2d(down=2) computes only the kept outputs (a strided convolution): they equal, bit for bit, every
    second sample of the same filtering at full rate, from the first."""
    from fakeclr.nn.ops import setup_filter, upfirdn2d
    gen = torch.Generator().manual_seed(taps)
    x = torch.randn(3, 5, 39, 42, generator=gen)
    f = setup_filter(torch.rand(taps, generator=gen) + 0.1)
    full = upfirdn2d(x, f, padding=padding, flip_filter=flip)
    assert torch.equal(upfirdn2d(x, f, down=2, padding=padding, flip_filter=flip), full[:, :, ::2, ::2])
    assert torch.equal(upfirdn2d(x, f, down=(2, 1), padding=padding, flip_filter=flip), full[:, :, :, ::2])


@pytest.mark.parametrize("channels,up,down", [(1, 2, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1)])
def test_fir_backward_equals_autograd_through_the_convolution(channels, up, down):
    """The separable FIR passes have their own backward (the correlation of the padded gradient with the flipped
    taps): the output is the convolution's, bit for bit, and the first and second derivatives equal those of
    autograd through ``F.conv2d(groups=C)``, computed here independently in float64."""
    import torch.nn.functional as F
    from fakeclr.nn import ops
    gen = torch.Generator().manual_seed(channels * 10 + up)
    x = torch.randn(2, channels, 13, 17, generator=gen, dtype=torch.float64, requires_grad=True)
    f = ops.setup_filter(torch.rand(12, generator=gen) + 0.1).double()    # 12 taps: separable
    assert f.ndim == 1

    def by_conv(x):        # the same filtering with autograd's convolution backward
        c = x.shape[1]
        if up > 1:
            x = F.pad(x.reshape(*x.shape[:2], 13, 1, 17, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(2, c, 13 * up, 17 * up)
        x = F.pad(x, [5, 6, 5, 6])
        g = f.flip(0)
        x = F.conv2d(x, g[None, None, None, :].expand(c, 1, 1, 12), groups=c, stride=(1, down))
        return F.conv2d(x, g[None, None, :, None].expand(c, 1, 12, 1), groups=c, stride=(down, 1))

    out = ops.upfirdn2d(x, f, up=up, down=down, padding=[5, 6, 5, 6])
    ref = by_conv(x)
    assert torch.equal(out, ref)
    weight = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (g1,) = torch.autograd.grad((out.square() * weight).sum(), x, create_graph=True)
    (r1,) = torch.autograd.grad((ref.square() * weight).sum(), x, create_graph=True)
    torch.testing.assert_close(g1, r1, rtol=1e-12, atol=1e-12)
    (g2,) = torch.autograd.grad(g1.square().sum(), x)     # R1's double backward
    (r2,) = torch.autograd.grad(r1.square().sum(), x)
    torch.testing.assert_close(g2, r2, rtol=1e-12, atol=1e-12)
