"""The same computations on a CUDA device as on the CPU (skipped where there is none).

CI has no GPU, so these run only where one is lent: ``bash scripts/device_check.sh`` runs them with the GPU
benchmarks. TF32 is switched off so that CUDA matmuls and convolutions are fp32 like the CPU's; the tolerances
are those of fp32 arithmetic in another order (the CPU results themselves are checked against the anchors in
test_nn.py / test_augment.py). Training on CUDA is not bit-reproducible (atomics in some backward kernels), so
resume is compared with a tolerance there and exactly on the CPU (test_train.py).
"""

from __future__ import annotations

import os

import pytest
import torch

# FAKECLR_TEST_DEVICE=cpu runs the same checks CPU-vs-CPU (to test these tests where there is no GPU).
DEV = os.environ.get("FAKECLR_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEV == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA device (CI has none)")


@pytest.fixture(autouse=True)
def _fp32_matmuls():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _both(x: torch.Tensor | None):
    return (None, None) if x is None else (x, x.to(DEV))


@pytest.mark.parametrize("name", ["g16_rgb", "g32_grey_cond"])
def test_generator_on_cuda_equals_cpu(name):
    from test_nn import G_CASES, build, make_inputs
    G_cpu, G_gpu = build("G", name), build("G", name).to(DEV)
    inp = make_inputs(G_CASES[name], "G")
    (z, zg), (c, cg) = _both(inp["z"]), _both(inp["c"])
    with torch.no_grad():
        ws, ws_g = G_cpu.mapping(z, c), G_gpu.mapping(zg, cg)
        torch.testing.assert_close(ws_g.cpu(), ws, atol=1e-5, rtol=1e-5)
        for fused in (True, False):
            img = G_cpu.synthesis(ws, noise_mode="const", fused_modconv=fused)
            img_g = G_gpu.synthesis(ws_g, noise_mode="const", fused_modconv=fused)
            torch.testing.assert_close(img_g.cpu(), img, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["d16_rgb", "d32_grey_cond"])
def test_discriminator_and_r1_gradient_on_cuda_equal_cpu(name):
    from test_nn import D_CASES, build, make_inputs
    D_cpu, D_gpu = build("D", name), build("D", name).to(DEV)
    inp = make_inputs(D_CASES[name], "D")
    out = {}
    for dev, D in (("cpu", D_cpu), (DEV, D_gpu)):
        img = inp["img"].to(dev).requires_grad_(True)
        c = inp["c"].to(dev) if inp["c"] is not None else None
        logits, feats = D(img, c, return_features=True)
        (grad,) = torch.autograd.grad(logits.sum(), img, create_graph=True)      # R1: d logits / d img
        r1 = grad.square().sum()
        (w_grad,) = torch.autograd.grad(r1, D.b4.fc.weight)                     # the double backward
        out[dev] = [t.detach().cpu() for t in (logits, feats, grad, w_grad)]
    for a, b in zip(out["cpu"], out[DEV]):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_augment_pipe_on_cuda_equals_cpu():
    from fakeclr.augment import AugmentPipe
    pipe = AugmentPipe(preset="bgcf", cutout=1)       # every op whose draws debug_percentile fixes (not noise)
    pipe.p.fill_(1.0)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for pct in (0.2, 0.8):
        a = pipe(x, debug_percentile=pct)
        b = pipe.to(DEV)(x.to(DEV), debug_percentile=pct).cpu()
        pipe.cpu()
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def _tiny_cfg(method: str, kimg: float):
    from fakeclr.config import method_config, preset_config
    cfg = preset_config("tiny")
    cfg.data.source = "lfw"
    cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = kimg, 0.032, 0.016
    cfg.contrastive = method_config(method)
    return cfg


@pytest.mark.parametrize("method", ["ada", "fakeclr"])
def test_training_on_cuda_resumes_like_straight_through(tmp_path, method):
    from fakeclr.train import checkpoint as ckpt
    from fakeclr.train.loop import train
    a = train(_tiny_cfg(method, 0.064), tmp_path / "a", device=DEV, tensorboard=False)
    train(_tiny_cfg(method, 0.064), tmp_path / "b", device=DEV, stop_at_kimg=0.032, tensorboard=False)
    b = train(_tiny_cfg(method, 0.064), tmp_path / "b", device=DEV, tensorboard=False)
    sa, sb = ckpt.load_state(a["state"]), ckpt.load_state(b["state"])
    assert ("cuda" in sa["rng"]["0"]) == (DEV == "cuda")          # the CUDA generator's state is checkpointed
    for name in ("G", "D", "G_ema"):
        for k, v in sa["nets"][name].items():
            torch.testing.assert_close(sb["nets"][name][k], v, atol=1e-4, rtol=1e-3, msg=f"{name}.{k}")
    assert sa["augment"]["0"]["p"] == pytest.approx(sb["augment"]["0"]["p"], abs=1e-6)


def test_metric_features_on_cuda_equal_cpu():
    from fakeclr.errors import UserError
    from fakeclr.metrics.weights import load_inception
    try:
        cpu = load_inception("cpu")
    except UserError as e:
        pytest.skip(f"Inception unavailable on this machine: {e}")
    gpu = load_inception(DEV)
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(gpu.features(x).cpu(), cpu.features(x), atol=1e-3, rtol=1e-3)


def test_fp16_blocks_on_cuda_are_close_to_fp32():
    """num_fp16_res on CUDA computes in fp16 by itself (on CPU the check mode forces it), within the tolerances
    of tests/test_precision.py, with fp32 images, logits and gradients."""
    import contextlib

    from fakeclr.nn.precision import reduced_precision_on_cpu
    from test_precision import TOL, nets
    G32, D32 = (m.to(DEV) for m in nets(0))
    G16, D16 = (m.to(DEV) for m in nets(2))
    G16.load_state_dict(G32.state_dict())
    D16.load_state_dict(D32.state_dict())
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(0)).to(DEV)
    force = reduced_precision_on_cpu(torch.float16) if DEV == "cpu" else contextlib.nullcontext()
    out = {}
    with torch.no_grad():
        ref = G32(z, None, noise_mode="const")
    for name, G, D in (("fp32", G32, D32), ("fp16", G16, D16)):
        with force if name == "fp16" else contextlib.nullcontext():
            img = G(z, None, noise_mode="const")
            x = ref.clone().requires_grad_(True)              # D and its R1 gradient on the same images
            logits = D(x)
            (r1,) = torch.autograd.grad(logits.sum(), x)
        out[name] = (img.detach(), logits.detach(), r1)
    (a_img, a_log, a_r1), (b_img, b_log, b_r1) = out["fp32"], out["fp16"]
    assert b_img.dtype == b_log.dtype == b_r1.dtype == torch.float32
    assert (b_img - a_img).abs().max() <= TOL[torch.float16]["img"]
    assert (b_log - a_log).abs().max() <= TOL[torch.float16]["logits"]
    assert ((b_r1 - a_r1).norm() / a_r1.norm()) <= TOL[torch.float16]["grad"]
    assert (b_img - a_img).abs().max() > 0                    # it really ran in fp16


@pytest.mark.slow
def test_torchrun_world_of_one_trains_and_resumes(tmp_path):
    """A 1-process torchrun joins a process group (NCCL on CUDA), trains, and the same command continues."""
    import subprocess
    import sys
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "fakeclr",
            "train", "--preset", "tiny", "--data", "lfw", "--outdir", str(tmp_path), "--snap", "0.032",
            "--no-tensorboard", "--device", DEV]
    first = subprocess.run(base + ["--kimg", "0.032"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    backend = "nccl" if DEV == "cuda" else "gloo"
    assert f"on 1 process(es) ({backend})" in first.stdout
    second = subprocess.run(base + ["--kimg", "0.064"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resuming at kimg 0.032" in second.stdout
    assert (tmp_path / "training-state-000000.064.pt").is_file()
