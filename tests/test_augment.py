"""Tests of fakeclr.augment: ADA pipe, p controllers, DiffAugment and APA.

Golden data (tests/assets/augment_golden.npz, float32) was produced by running the reference implementations on CPU
(torch 2.13) outside this repository:

- ``op/<name>/q<pct>``, ``preset/<name>/q<pct>``, ``gray/...``, ``seed<k>/...``: NVlabs/stylegan2-ada-pytorch at
  commit d72cc7d041b42ec8e806021a205ed9349f87c6a4, ``training.augment.AugmentPipe(**options)`` with ``p`` filled as
  named (1 for ``op``/``preset``/``gray``), ``torch.manual_seed(k)`` (0 unless named ``seed<k>``) right before the
  call, and ``debug_percentile=<pct>`` where named. Inputs: ``input`` = ``torch.manual_seed(0);
  torch.rand(2, 3, 24, 24) * 2 - 1``; ``imgfilter`` and ``bgcfnc`` use it whole (imgfilter's 43-tap reflect padding
  needs at least 22 pixels), everything else its center crop ``[..., 6:18, 6:18]`` (channel 0 only for ``gray``).
- ``diffaug/<policy>``: mit-han-lab/data-efficient-gans at commit 0b6339510be1e3859d360cbf464d0a425514a6b4,
  ``DiffAugment_pytorch.DiffAugment(crop, policy)`` after ``torch.manual_seed(5)``.

On the machine that made them our implementation reproduces every array bit for bit, except where a whole geometric
stage is the identity for the entire batch (e.g. xflip at percentile 0.3): we skip it, the reference resamples and
is off by < 5e-6. The tolerance 1e-4 leaves room for other BLAS / torch builds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fakeclr.augment import (AUGPIPE_PRESETS, AdaptiveP, AugmentPipe, DiffAugment, FixedP, LinearP,
                             pseudo_augment)
from fakeclr.augment.diffaugment import rand_cutout, rand_translation
from fakeclr.errors import UserError

GOLDEN = Path(__file__).parent / "assets" / "augment_golden.npz"
OPS = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip",
       "hue", "saturation", "imgfilter", "noise", "cutout"]
ATOL = 1e-4


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def _inputs(golden):
    big = golden["input"]
    small = big[:, :, 6:18, 6:18].contiguous()
    return big, small, small[:, :1].contiguous()


def _run(pipe, x, pct=None, p=1.0, seed=0):
    pipe.set_p(p)
    torch.manual_seed(seed)
    with torch.no_grad():
        return pipe(x, debug_percentile=pct)


# ---------------------------------------------------------------------------------------------------------------------
# AugmentPipe: parity with StyleGAN2-ADA

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("pct", [0.3, 0.8])
def test_single_op_matches_reference(golden, op, pct):
    big, small, _ = _inputs(golden)
    out = _run(AugmentPipe(**{op: 1}), big if op == "imgfilter" else small, pct=pct)
    torch.testing.assert_close(out, golden[f"op/{op}/q{pct}"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("pct", [0.3, 0.8])
def test_presets_match_reference(golden, pct):
    big, small, _ = _inputs(golden)
    torch.testing.assert_close(_run(AugmentPipe.from_preset("bgc"), small, pct=pct), golden[f"preset/bgc/q{pct}"],
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(_run(AugmentPipe(preset="bgcfnc"), big, pct=pct), golden[f"preset/bgcfnc/q{pct}"],
                               atol=ATOL, rtol=0)


def test_random_draws_match_reference(golden):
    """Same seed and p -> same images: the random numbers are consumed in the reference's order and shapes."""
    big, small, gray = _inputs(golden)
    cases = [("seed1/bgcfnc/p1.0", "bgcfnc", big, 1.0, 1), ("seed2/bgcfnc/p0.6", "bgcfnc", big, 0.6, 2),
             ("seed3/bgc/p0.5", "bgc", small, 0.5, 3), ("seed4/gray_bgc/p1.0", "bgc", gray, 1.0, 4)]
    for key, preset, x, p, seed in cases:
        torch.testing.assert_close(_run(AugmentPipe(preset), x, p=p, seed=seed), golden[key], atol=ATOL, rtol=0,
                                   msg=lambda m: f"{key}: {m}")


def test_grayscale_matches_reference(golden):
    _, _, gray = _inputs(golden)
    torch.testing.assert_close(_run(AugmentPipe("bgc"), gray, pct=0.8), golden["gray/bgc/q0.8"], atol=ATOL, rtol=0)


def test_grayscale_color_semantics():
    """One channel: brightness adds, contrast scales, lumaflip negates; hue and saturation do nothing."""
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    q = torch.tensor(0.8)  # debug percentile -> normal quantile erfinv(2q - 1) (times sqrt 2 omitted, as the reference)
    bright = 0.2 * torch.erfinv(q * 2 - 1)
    torch.testing.assert_close(_run(AugmentPipe(brightness=1), x, pct=0.8), x + bright)
    torch.testing.assert_close(_run(AugmentPipe(contrast=1), x, pct=0.8), x * torch.exp2(0.5 * torch.erfinv(q * 2 - 1)))
    torch.testing.assert_close(_run(AugmentPipe(lumaflip=1), x, pct=0.8), -x)
    assert torch.equal(_run(AugmentPipe(hue=1, saturation=1), x, pct=0.8), x)


def test_channel_count_checks():
    x4 = torch.rand(2, 4, 8, 8)
    assert _run(AugmentPipe(xflip=1, cutout=1), x4, pct=0.8).shape == x4.shape
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AugmentPipe(brightness=1)(x4)
    with pytest.raises(ValueError, match="at least 22x22"):
        AugmentPipe(imgfilter=1)(torch.rand(1, 3, 16, 16), debug_percentile=0.8)


def test_p_zero_is_identity():
    x = torch.randn(3, 3, 32, 32)
    pipe = AugmentPipe("bgcfnc", p=0.0)
    for seed in range(3):
        torch.manual_seed(seed)
        assert torch.equal(pipe(x), x)


@pytest.mark.parametrize("op", OPS)
def test_each_op_is_differentiable(op):
    x = (torch.rand(2, 3, 24, 24) * 2 - 1).requires_grad_(True)
    torch.manual_seed(0)
    y = AugmentPipe(**{op: 1})(x, debug_percentile=0.8)
    assert not torch.equal(y, x.detach()), f"{op} had no effect"
    (grad,) = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_double_backward_for_r1():
    """R1 differentiates D(augment(x)) w.r.t. x and then backpropagates through that gradient."""
    x = (torch.rand(2, 3, 24, 24) * 2 - 1).requires_grad_(True)
    w = torch.randn(1, 3, 3, 3, requires_grad=True)
    torch.manual_seed(0)
    logits = torch.nn.functional.conv2d(AugmentPipe("bgcfnc")(x), w).tanh().sum()
    (g,) = torch.autograd.grad(logits, x, create_graph=True)
    g.square().sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_presets_and_options():
    assert set(AUGPIPE_PRESETS) == {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf",
                                    "bgcfn", "bgcfnc"}
    assert {k for k, v in AUGPIPE_PRESETS["bgcfnc"].items() if v == 1} == set(OPS)
    pipe = AugmentPipe.from_preset("bgc", hue=0, p=0.25)
    assert pipe.xflip == 1 and pipe.hue == 0 and pipe.imgfilter == 0 and pipe.scale_std == 0.2
    assert float(pipe.p) == 0.25 and list(pipe.state_dict()) == ["p"]
    other = AugmentPipe("bgc")
    other.load_state_dict(pipe.state_dict())
    assert float(other.p) == 0.25
    with pytest.raises(UserError, match="valid presets are blit, geom, color"):
        AugmentPipe(preset="bgcx")
    with pytest.raises(UserError, match="Unknown augmentation option"):
        AugmentPipe(xflop=1)


# ---------------------------------------------------------------------------------------------------------------------
# Controllers

def _drive(ctrl, logits_per_iter, batch_size=8, start=0):
    """Run the controller like the training loop; returns the list of update() results."""
    results = []
    for k, logits in enumerate(logits_per_iter, start=start + 1):
        ctrl.observe(logits)
        results.append(ctrl.update(k, k * batch_size, batch_size))
    return results


def test_adaptive_p_moves_up_and_down():
    step = 64 * 4 / (500 * 1000)
    ctrl = AdaptiveP(target=0.6, interval=4, speed_kimg=500)
    res = _drive(ctrl, [torch.ones(64, 1)] * 8, batch_size=64)
    assert res[:3] == [None] * 3 and res[4:7] == [None] * 3
    assert res[3] == pytest.approx(step, rel=1e-6) and res[7] == pytest.approx(2 * step, rel=1e-6)
    assert ctrl.mean_sign == 1.0
    res = _drive(ctrl, [-torch.ones(64, 1)] * 16, batch_size=64, start=8)
    assert res[3] == pytest.approx(step, rel=1e-6) and res[7] == 0.0 and res[11] == 0.0 and ctrl.p == 0.0
    assert ctrl.mean_sign == -1.0


def test_adaptive_p_matches_reference_rule():
    """Independent float32 re-computation of StyleGAN2-ADA's update (no upper clamp; r_t == target: no move)."""
    gen = torch.Generator().manual_seed(0)
    ctrl = AdaptiveP(target=0.6, interval=4, speed_kimg=2, p_init=0.95)
    ref_p, signs, batch = torch.tensor(0.95), [], 32
    for it in range(1, 401):
        logits = torch.randn(batch, 1, generator=gen) + (1.5 if it < 200 else -1.5)
        ctrl.observe(logits)
        signs.append(logits.sign())
        new = ctrl.update(it, it * batch, batch)
        if it % 4 == 0:
            mean = torch.cat(signs).double().mean().item()
            signs = []
            ref_p.copy_((ref_p + np.sign(mean - 0.6) * (batch * 4) / (2 * 1000)).max(torch.tensor(0.0)))
            assert new == float(ref_p)
        else:
            assert new is None
    assert float(ref_p) >= 0
    hi = AdaptiveP(p_init=0.9999)
    _drive(hi, [torch.ones(4, 1)] * 4, batch_size=4000)
    assert hi.p > 1  # the reference clamps only at 0
    even = AdaptiveP(target=0.5, p_init=0.3)
    _drive(even, [torch.tensor([1.0, 1.0, 1.0, -1.0])] * 4, batch_size=4)
    assert even.p == float(np.float32(0.3)) and even.mean_sign == 0.5


def test_linear_p_schedule():
    ctrl = LinearP(target=0.6, total_kimg=10, interval=4)
    res = _drive(ctrl, [torch.ones(16)] * 12, batch_size=16)
    for k, r in enumerate(res, start=1):
        assert r == (None if k % 4 else (0.6 / 10) * (k * 16 / 1e3))
    assert ctrl.p == pytest.approx(0.6 * 12 * 16 / 10000) and ctrl.mean_sign == 1.0


def test_fixed_p():
    ctrl = FixedP(0.3)
    assert _drive(ctrl, [torch.ones(4)] * 8) == [None] * 8 and ctrl.p == 0.3 and ctrl.mean_sign == 1.0


@pytest.mark.parametrize("make", [lambda: AdaptiveP(speed_kimg=1), lambda: LinearP(total_kimg=1), lambda: FixedP(0.2)])
def test_controller_state_round_trip(make):
    gen = torch.Generator().manual_seed(1)
    logits = [torch.randn(8, 1, generator=gen) + 0.4 for _ in range(30)]
    a = make()
    _drive(a, logits[:10])                                   # stops mid-interval (10 % 4 != 0)
    b = make()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert _drive(a, logits[10:], start=10) == _drive(b, logits[10:], start=10)
    assert a.state_dict() == b.state_dict()


def _ddp_worker(rank, world_size, init_file, out_dir):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    ctrl = AdaptiveP(target=0.6, interval=2)
    # rank 0 sees only positive logits, rank 1 mostly negative: global mean = (4 + (-2)) / 8 = 0.25 < 0.6
    logits = torch.ones(4) if rank == 0 else torch.tensor([1.0, -1.0, -1.0, -1.0])
    ctrl.observe(logits)
    ctrl.update(1, 8, 8)
    ctrl.observe(logits)
    p = ctrl.update(2, 16, 8)
    Path(out_dir, f"{rank}.json").write_text(json.dumps({"p": p, "mean": ctrl.mean_sign}))
    torch.distributed.destroy_process_group()


def test_adaptive_p_all_reduces_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1] == {"p": 0.0, "mean": 0.25}


# ---------------------------------------------------------------------------------------------------------------------
# DiffAugment

@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_matches_reference(golden, policy):
    _, small, _ = _inputs(golden)
    torch.manual_seed(5)
    out = DiffAugment(policy)(small)
    assert out.shape == small.shape
    torch.testing.assert_close(out, golden[f"diffaug/{policy}"], atol=1e-6, rtol=0)


def test_diffaugment_color_formula():
    x = torch.rand(3, 3, 5, 7) * 2 - 1
    torch.manual_seed(11)
    u = [torch.rand(3, 1, 1, 1) for _ in range(3)]
    y = x + (u[0] - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (2 * u[1]) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (u[2] + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.manual_seed(11)
    torch.testing.assert_close(DiffAugment("color")(x), y)


def test_diffaugment_translation_shifts_by_integers_with_zero_fill():
    h, w = 16, 24
    x = (torch.arange(h * w, dtype=torch.float32) + 1).view(1, 1, h, w).repeat(32, 2, 1, 1)
    torch.manual_seed(0)
    y = rand_translation(x)
    shifts = set()
    for n in range(32):
        nz = y[n, 0].nonzero()
        i, j = nz[0].tolist()
        src = int(y[n, 0, i, j].item()) - 1
        dy, dx = src // w - i, src % w - j
        assert abs(dy) <= 2 and abs(dx) <= 3                  # round(16 / 8), round(24 / 8)
        expected = torch.zeros(h, w)
        expected[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
            x[n, 0, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
        assert torch.equal(y[n, 0], expected) and torch.equal(y[n, 1], expected)
        shifts.add((dy, dx))
    assert len(shifts) > 5


def test_diffaugment_cutout_zeroes_a_square():
    h, w = 16, 12
    x = torch.ones(64, 3, h, w)
    torch.manual_seed(0)
    y = rand_cutout(x)
    full = 0
    for n in range(64):
        zero = y[n, 0] == 0
        assert torch.equal(zero, y[n, 2] == 0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert zero.sum() == (r1 - r0) * (c1 - c0) and zero[r0:r1, c0:c1].all()   # an axis-aligned rectangle
        assert (r1 - r0 == 8 or r0 == 0 or r1 == h) and (c1 - c0 == 6 or c0 == 0 or c1 == w)
        assert r1 - r0 <= 8 and c1 - c0 <= 6
        full += int(r1 - r0 == 8 and c1 - c0 == 6)
    assert full > 10


def test_diffaugment_policy_parsing_and_grad():
    with pytest.raises(UserError, match="valid ops are color, translation, cutout"):
        DiffAugment("color,rotate")
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    assert torch.equal(DiffAugment("")(x), x)
    DiffAugment("color, translation,cutout")(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------------
# APA

def test_pseudo_augment():
    real = torch.randn(6, 3, 4, 4, requires_grad=True)
    fake = torch.randn(6, 3, 4, 4, requires_grad=True)
    assert torch.equal(pseudo_augment(real, fake, 0.0), real)
    out = pseudo_augment(real, fake, 1.0)
    assert torch.equal(out, fake.detach())
    out.sum().backward()
    assert fake.grad is None and torch.equal(real.grad, torch.zeros_like(real))
    assert torch.equal(pseudo_augment(real, fake, torch.tensor(1.0)), fake.detach())

    n = 20000
    real, fake = torch.zeros(n, 1, 2, 2), torch.ones(n, 1, 2, 2)
    gen = torch.Generator().manual_seed(0)
    out = pseudo_augment(real, fake, 0.5, generator=gen)
    per_image = out.mean(dim=(1, 2, 3))
    assert set(per_image.unique().tolist()) <= {0.0, 1.0}           # whole images are swapped
    assert abs(per_image.mean().item() - 0.5) < 0.02
    assert torch.equal(out, pseudo_augment(real, fake, 0.5, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        pseudo_augment(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4), 0.5)
