"""Mixed precision the StyleGAN2-ADA way (fakeclr.nn.precision), checked on CPU by forcing fp16/bf16.

Tolerances (32 px test networks, images roughly in [-3, 3], fp32 reference with the same weights):
fp16 images 2e-2 and D logits 5e-3 max abs, R1 / path-length gradients 5e-2 relative (L2); bf16 (8-bit mantissa)
1.5e-1, 3e-2 and 0.2. Measured when written: fp16 4e-3, 6e-4, 2e-2; bf16 3.5e-2, 7e-3, 8.5e-2.
"""

from __future__ import annotations

import math

import pytest
import torch

from fakeclr.cli import main
from fakeclr.nn import Discriminator, Generator
from fakeclr.nn.layers import modulated_conv2d
from fakeclr.nn.precision import fp16_resolution, reduced_precision_on_cpu

KW = dict(img_resolution=32, img_channels=3, channel_base=1024, channel_max=64)
TOL = {torch.float16: dict(img=2e-2, logits=5e-3, grad=5e-2), torch.bfloat16: dict(img=1.5e-1, logits=3e-2, grad=0.2)}


def nets(num_fp16_res: int, channels_last: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    G = Generator(z_dim=32, w_dim=32, mapping_layers=2, num_fp16_res=num_fp16_res, fp16_channels_last=channels_last,
                  **KW)
    D = Discriminator(num_fp16_res=num_fp16_res, fp16_channels_last=channels_last, mbstd_group_size=4, **KW)
    with torch.no_grad():                       # non-zero noise strengths and biases, so every path matters
        for name, t in list(G.named_parameters()) + list(D.named_parameters()):
            if name.endswith(("noise_strength", "bias")):
                t.normal_(0, 0.2)
    return G, D


def test_which_blocks_are_reduced():
    assert fp16_resolution(256, 4) == 32 and fp16_resolution(32, 4) == 8 and fp16_resolution(32, 1) == 32
    assert fp16_resolution(32, 0) > 32
    G, D = nets(2)
    assert [G.synthesis.b4.use_fp16, G.synthesis.b8.use_fp16, G.synthesis.b16.use_fp16,
            G.synthesis.b32.use_fp16] == [False, False, True, True]
    assert [D.b32.use_fp16, D.b16.use_fp16, D.b8.use_fp16] == [True, True, False]
    G4, D4 = nets(4)                            # 4 counts down to 4x4, but 4x4 and 8x8 stay fp32 (the anchor's floor)
    assert G4.synthesis.b8.use_fp16 and not G4.synthesis.b4.use_fp16 and D4.b8.use_fp16


def test_fp16_blocks_compute_fp32_on_cpu_unless_forced():
    """On CPU a num_fp16_res network is bit-identical to the fp32 one (the goldens of test_nn hold for both)."""
    G0, D0 = nets(0)
    G2, D2 = nets(2)
    G2.load_state_dict(G0.state_dict())
    D2.load_state_dict(D0.state_dict())
    z = torch.randn(4, 32)
    for mode in ("train", "eval"):
        for m in (G0, D0, G2, D2):
            getattr(m, mode)()
        with torch.no_grad():
            a, b = G0(z, None, noise_mode="const"), G2(z, None, noise_mode="const")
            assert torch.equal(a, b) and torch.equal(D0(a), D2(a)), mode


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_forced_reduced_precision_is_close_to_fp32(dtype, channels_last):
    G, D = nets(2, channels_last)
    z = torch.randn(8, 32)
    with torch.no_grad():
        ref_img = G(z, None, noise_mode="const")
        ref_logits = D(ref_img)
    seen = {}
    hook = G.synthesis.b32.conv1.register_forward_hook(
        lambda m, i, o: seen.update(dtype=o.dtype, cl=o.is_contiguous(memory_format=torch.channels_last)))
    hook_d = D.b8.conv0.register_forward_hook(lambda m, i, o: seen.update(d8=o.dtype))
    with reduced_precision_on_cpu(dtype), torch.no_grad():
        img = G(z, None, noise_mode="const")
        logits, feats = D(ref_img, return_features=True)
    hook.remove()
    hook_d.remove()
    assert seen["dtype"] == dtype and seen["d8"] == torch.float32            # 8x8 of D stays fp32
    assert seen["cl"] == channels_last
    assert img.dtype == torch.float32 and logits.dtype == torch.float32 and feats.dtype == torch.float32
    assert img.is_contiguous() and feats.is_contiguous()                     # the fp32 paths are plain NCHW
    assert torch.isfinite(img).all() and torch.isfinite(logits).all()
    assert (img - ref_img).abs().max() <= TOL[dtype]["img"]
    assert (logits - ref_logits).abs().max() <= TOL[dtype]["logits"]
    assert (img - ref_img).abs().max() > 0                                     # it did compute in reduced precision


@pytest.mark.parametrize("architecture", ["orig", "skip"])
def test_orig_and_skip_discriminators_in_reduced_precision(architecture):
    """The 'orig' and 'skip' blocks cast like the resnet ones: fp16 inside b32 and b16 ('skip': the image too),
    fp32 from b8 on and for the features; the logits stay close to fp32."""
    torch.manual_seed(0)
    D = Discriminator(num_fp16_res=2, mbstd_group_size=4, architecture=architecture, **KW)
    with torch.no_grad():
        for name, t in D.named_parameters():
            if name.endswith("bias"):
                t.normal_(0, 0.2)
    img, seen = torch.randn(8, 3, 32, 32), {}
    hooks = [D.b16.conv1.register_forward_hook(lambda m, i, o: seen.update(b16=o.dtype)),
             D.b8.conv0.register_forward_hook(lambda m, i, o: seen.update(b8=o.dtype))]
    with torch.no_grad():
        ref = D(img)
        with reduced_precision_on_cpu(torch.float16):
            logits, feats = D(img, return_features=True)
    for h in hooks:
        h.remove()
    assert seen == {"b16": torch.float16, "b8": torch.float32}
    assert logits.dtype == feats.dtype == torch.float32
    assert 0 < (logits - ref).abs().max() <= TOL[torch.float16]["logits"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_r1_and_path_length_gradients_in_reduced_precision(dtype):
    G, D = nets(2)
    z = torch.randn(8, 32)

    def r1():
        img = G(z, None, noise_mode="const").detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(img).sum(), img)
        return g

    def pl():
        ws = G.mapping(z, None).detach().requires_grad_(True)
        img = G.synthesis(ws, noise_mode="const")
        noise = torch.randn(img.shape, generator=torch.Generator().manual_seed(1)) / math.sqrt(32 * 32)
        (g,) = torch.autograd.grad((img * noise).sum(), ws)
        return g
    for fn in (r1, pl):
        ref = fn()
        with reduced_precision_on_cpu(dtype):
            got = fn()
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        rel = ((got - ref).norm() / ref.norm()).item()
        assert 0 < rel <= TOL[dtype]["grad"], (fn.__name__, rel)
    grads = torch.autograd.grad(D(G(z, None)).sum(), list(D.parameters()))  # parameter gradients stay fp32
    assert all(g.dtype == torch.float32 for g in grads)


def test_fp16_modulated_conv_does_not_overflow_with_large_styles():
    """Styles of 300 on 64 channels overflow fp16 (max 65504) without the anchor's max-norm pre-normalisation."""
    torch.manual_seed(0)
    x = torch.randn(2, 64, 8, 8)
    w = torch.randn(32, 64, 3, 3) * 4
    styles = torch.rand(2, 64) * 300 + 100
    ref = modulated_conv2d(x, w, styles, padding=1, fused_modconv=False)
    got = modulated_conv2d(x.half(), w, styles, padding=1, fused_modconv=False)
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), ref, rtol=0, atol=2e-2)


def test_training_with_fp16_forced_stays_finite(tmp_path):
    from fakeclr.config import method_config, preset_config
    from fakeclr.train.loop import train
    cfg = preset_config("tiny")
    cfg.data.source, cfg.kimg, cfg.tick_kimg, cfg.snapshot_kimg = "lfw", 0.032, 0.016, 0.032
    cfg.network.num_fp16_res = 2
    cfg.contrastive = method_config("fakeclr")
    with reduced_precision_on_cpu(torch.float16):
        out = train(cfg, tmp_path, tensorboard=False)
    import json
    recs = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for r in recs for k, v in r.items() if k.startswith("Loss"))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in out["nets"]["G"].parameters())
    assert out["nets"]["G"].synthesis.b16.use_fp16 and json.loads((tmp_path / "config.json").read_text())[
        "network"]["num_fp16_res"] == 2


def test_fp16_res_flag(capsys, tmp_path):
    assert main(["train", "--preset", "tiny", "--data", "lfw", "--fp16-res", "2", "--nhwc", "--dry-run"]) == 0
    net = __import__("json").loads(capsys.readouterr().out)["network"]
    assert net["num_fp16_res"] == 2 and net["fp16_channels_last"] is True
    assert main(["train", "--preset", "tiny", "--data", "lfw", "--fp16-res", "5", "--outdir", str(tmp_path / "r"),
                 "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--fp16-res 5: a 16 px network has 3 resolutions (4 to 16); use 0 to 3" in err and err.count("\n") == 1
    assert main(["train", "--preset", "fewshot256", "--data", "lfw", "--dry-run"]) == 0
    assert __import__("json").loads(capsys.readouterr().out)["network"]["num_fp16_res"] == 4
