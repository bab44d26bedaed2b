"""BigGAN networks (``fakeclr.nn.biggan``) against the reference implementation.

Goldens (``tests/assets/biggan_golden.npz``) are outputs of the BigGAN of mit-han-lab/data-efficient-gans
(``DiffAugment-biggan-cifar/BigGAN.py`` and ``layers.py`` at the commit of its default branch fetched 2026-12-07),
run on CPU in fp32 with torch 2.13 by a scratch script outside the repository, with the reference's CIFAR settings
(``G_shared`` off, no attention, N02 init, SN eps 1e-8, BN eps 1e-5). For each case of :data:`CASES`:

1. the networks built after ``torch.manual_seed(seed)``: their state-dict keys and the sum of |value| per key
   (the reference draws its initial weights and power-iteration vectors in the same order as ours);
2. every parameter and buffer overwritten by :func:`fill` (the same function, in the scratch script), then: G in
   training mode on :func:`inputs` (images, gradients of ``<img, w>`` w.r.t. z, the first linear weight and a
   class-conditional gain), a second forward, the buffers after both (``u0``, ``sv0``, running statistics), G in
   eval mode (running statistics); D likewise (logits, gradients w.r.t. the image, a conv weight and the
   projection embedding, a second forward, its ``u0``/``sv0``, eval logits);
3. the parameter counts of the reference CIFAR-10 and CIFAR-100 networks (ch 64, z 128).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from fakeclr.errors import UserError
from fakeclr.nn.biggan import BigGANDiscriminator, BigGANGenerator

GOLDEN = np.load(pathlib.Path(__file__).parent / "assets" / "biggan_golden.npz")
ATOL = 2e-5

CASES = {
    "r32_c10": dict(res=32, ch=4, z_dim=16, classes=10, n=4, seed=1),
    "r32_c1": dict(res=32, ch=2, z_dim=8, classes=1, n=3, seed=2),
    "r64_c5": dict(res=64, ch=2, z_dim=12, classes=5, n=2, seed=3),
}


def fill(net: torch.nn.Module, seed: int) -> None:
    """Every parameter and buffer from ``numpy.random.RandomState(seed)``, keys in sorted order, scaled so that
    biases, gains and running statistics stay near their usual values."""
    rs = np.random.RandomState(seed)
    sd = net.state_dict()
    with torch.no_grad():
        for key in sorted(sd):
            t = sd[key]
            v = rs.standard_normal(tuple(t.shape)).astype(np.float32)
            leaf = key.rsplit(".", 1)[-1]
            if "stored_var" in key:
                v = 1.0 + 0.2 * np.abs(v)
            elif "stored_mean" in key or leaf == "bias" and (".gain" in key or ".bias" in key and "bn" in key):
                v = 0.1 * v
            elif leaf == "sv0":
                v = 1.0 + 0.1 * np.abs(v)
            elif key.endswith("gain.weight") or key.endswith("bias.weight"):
                v = 0.1 * v
            elif leaf == "gain":
                v = 1.0 + 0.1 * v
            elif leaf == "bias":
                v = 0.1 * v
            t.copy_(torch.from_numpy(v.reshape(tuple(t.shape))))


def inputs(seed: int, n: int, z_dim: int, classes: int, res: int):
    """``z [n, z_dim]``, class indices ``y [n]``, images ``[n, 3, res, res]`` and weights ``w`` of G's output."""
    rs = np.random.RandomState(1000 + seed)
    z = torch.from_numpy(rs.standard_normal((n, z_dim)).astype(np.float32))
    y = torch.from_numpy(rs.randint(0, classes, n).astype(np.int64))
    img = torch.from_numpy(rs.uniform(-1, 1, (n, 3, res, res)).astype(np.float32))
    w = torch.from_numpy(rs.standard_normal((n, 3, res, res)).astype(np.float32))
    return z, y, img, w


def one_hot(y: torch.Tensor, c: dict) -> torch.Tensor | None:
    return torch.nn.functional.one_hot(y, c["classes"]).float() if c["classes"] > 1 else None


def close(name: str, value: torch.Tensor) -> None:
    np.testing.assert_allclose(value.detach().numpy(), GOLDEN[name], atol=ATOL, rtol=1e-5, err_msg=name)


def _build(who: str, c: dict) -> torch.nn.Module:
    c_dim = c["classes"] if c["classes"] > 1 else 0
    if who == "G":
        return BigGANGenerator(z_dim=c["z_dim"], c_dim=c_dim, img_resolution=c["res"], ch=c["ch"])
    return BigGANDiscriminator(c_dim=c_dim, img_resolution=c["res"], ch=c["ch"])


@pytest.mark.parametrize("who", ["G", "D"])
@pytest.mark.parametrize("name", CASES)
def test_initialisation_matches_reference(name, who):
    """Same seed, same initial weights and power-iteration vectors as the reference (keys, per-key sums)."""
    c = CASES[name]
    torch.manual_seed(c["seed"])
    net = _build(who, c)
    sd = net.state_dict()
    assert sorted(sd) == list(GOLDEN[f"{name}/{who}/init_keys"])
    absum = [sd[k].double().abs().sum().item() for k in sorted(sd)]
    np.testing.assert_allclose(absum, GOLDEN[f"{name}/{who}/init_absum"], rtol=1e-6)
    assert sum(p.numel() for p in net.parameters()) == int(GOLDEN[f"{name}/{who}/params"])


@pytest.mark.parametrize("name", CASES)
def test_generator_matches_reference(name):
    c = CASES[name]
    G = _build("G", c)
    fill(G, c["seed"])
    z, y, _, w = inputs(c["seed"], c["n"], c["z_dim"], c["classes"], c["res"])
    G.train()
    zz = z.clone().requires_grad_(True)
    img = G(zz, one_hot(y, c))
    (img * w).sum().backward()
    close(f"{name}/G/train1", img)
    close(f"{name}/G/grad_z", zz.grad)
    close(f"{name}/G/grad_linear_w", G.linear.weight.grad)
    close(f"{name}/G/grad_gain0", G.blocks[0][0].bn1.gain.weight.grad)
    with torch.no_grad():
        close(f"{name}/G/train2", G(z, one_hot(y, c)))
    for k, v in G.state_dict().items():
        if k.endswith(("u0", "sv0", "stored_mean", "stored_var")):
            close(f"{name}/G/buf/{k}", v)
    G.eval()
    for m in G.modules():                   # the reference's eval mode uses the running statistics
        if hasattr(m, "eval_batch_stats"):
            m.eval_batch_stats = False
    with torch.no_grad():
        close(f"{name}/G/eval", G(z, one_hot(y, c)))


@pytest.mark.parametrize("name", CASES)
def test_discriminator_matches_reference(name):
    c = CASES[name]
    D = _build("D", c)
    fill(D, c["seed"] + 100)
    _, y, img, _ = inputs(c["seed"], c["n"], c["z_dim"], c["classes"], c["res"])
    D.train()
    im = img.clone().requires_grad_(True)
    logits, features = D(im, one_hot(y, c), return_features=True)
    logits.sum().backward()
    close(f"{name}/D/train1", logits)
    close(f"{name}/D/grad_img", im.grad)
    close(f"{name}/D/grad_conv1_w", D.blocks[0][0].conv1.weight.grad)
    close(f"{name}/D/grad_embed", D.embed.weight.grad)
    assert features.shape == (c["n"], D.feature_channels, c["res"] // 4 if c["res"] == 32 else 4,
                              c["res"] // 4 if c["res"] == 32 else 4)
    with torch.no_grad():
        close(f"{name}/D/train2", D(img, one_hot(y, c)))
    for k, v in D.state_dict().items():
        if k.endswith(("u0", "sv0")):
            close(f"{name}/D/buf/{k}", v)
    D.eval()
    with torch.no_grad():
        close(f"{name}/D/eval", D(img, one_hot(y, c)))


@pytest.mark.parametrize("classes", [10, 100])
def test_parameter_counts_of_the_cifar_networks(classes):
    """The reference's CIFAR networks (ch 64, z 128): 4.30M / 4.21M parameters with 10 classes."""
    G = BigGANGenerator(z_dim=128, c_dim=classes, img_resolution=32, ch=64)
    D = BigGANDiscriminator(c_dim=classes, img_resolution=32, ch=64)
    assert sum(p.numel() for p in G.parameters()) == int(GOLDEN[f"cifar{classes}/G/params"])
    assert sum(p.numel() for p in D.parameters()) == int(GOLDEN[f"cifar{classes}/D/params"])


def test_eval_with_batch_statistics_leaves_the_buffers_alone():
    """The default eval mode normalises with the batch's statistics (as the reference samples) and changes no
    buffer: the same output as training mode, and the state dict unchanged."""
    c = CASES["r32_c10"]
    G = _build("G", c)
    fill(G, 7)
    z, y, _, _ = inputs(7, 4, c["z_dim"], 10, 32)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        out_eval = G.eval()(z, one_hot(y, c))
        assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
        G.train()
        out_train = G(z, one_hot(y, c))
    torch.testing.assert_close(out_eval, out_train)


def test_bad_arguments():
    with pytest.raises(UserError, match="16 px"):
        BigGANGenerator(img_resolution=16)
    with pytest.raises(UserError, match="Truncation"):
        BigGANGenerator(z_dim=8, ch=1)(torch.zeros(1, 8), truncation_psi=0.7)
    D = BigGANDiscriminator(ch=1)
    with pytest.raises(UserError, match="--freeze-d 9"):
        D.freeze_layers(9)
    assert D.freeze_layers(2) == ["blocks.0.0", "blocks.1.0"]
    assert not any(n.startswith(("blocks.0", "blocks.1")) for n, _ in D.named_parameters())
    assert "blocks.0.0.conv1.weight" in D.state_dict()
