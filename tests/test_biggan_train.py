"""Training with ``--backbone biggan`` at tiny scale: its schedule and EMA, every augmentation with every method,
and a resumed run equal to the uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch

from fakeclr.config import AUGMENTATIONS, METHODS
from fakeclr.errors import UserError
from fakeclr.nn.biggan import BigGANDiscriminator, BigGANGenerator
from fakeclr.train import checkpoint as ckpt
from fakeclr.train.loop import train
from fakeclr.train.resolve import resolve


def tiny_biggan(kimg=0.032, aug="diffaugment", method="ada", **over):
    """BigGAN of width 2 on the 100 LFW faces at 32 px: batch 8, 2 D steps per G step (16 images an iteration)."""
    overrides = {"network.backbone": "biggan", "network.width": 2, "network.z_dim": 16, "data.resolution": 32,
                 "batch": 8, "d_steps": 2, "ema_start": 2, "kimg": kimg, "augment.kind": aug,
                 "contrastive.method": method, "tick_kimg": 0.016, "snapshot_kimg": 0.032, **over}
    if aug == "fixed":
        overrides["augment.p"] = 0.5
    return resolve("tiny", overrides)


def _stats(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_schedule_counts_d_steps_and_images(tmp_path):
    """Per iteration: d_steps D steps (each on its own batch) and one G step; kimg counts the reals shown to D."""
    out = train(tiny_biggan(kimg=0.048), tmp_path, tensorboard=False)
    assert out["cur_nimg"] == 48 and out["iterations"] == 3               # 3 iterations of 2 x 8 reals
    state = ckpt.load_state(out["state"])
    g_steps = {int(s["step"]) for s in state["optim"]["G_opt"]["state"].values()}
    d_steps = {int(s["step"]) for s in state["optim"]["D_opt"]["state"].values()}
    assert g_steps == {3} and d_steps == {6}
    assert state["sampler"]["0"]["pos"] == 6 * 8                          # 6 real batches drawn (of 100 images)
    nets = out["nets"]
    assert isinstance(nets["G"], BigGANGenerator) and isinstance(nets["D"], BigGANDiscriminator)


def test_optimizers_are_the_references_adam(tmp_path):
    """BigGAN has no lazy regulariser: G's and D's Adam keep lr 2e-4 and betas (0, 0.999) as given (StyleGAN2's
    lazy ratio, which its presets apply even with the regulariser off, must not leak in)."""
    from fakeclr.train.assembly import build_run
    cfg = resolve("biggan-cifar", {"data.source": "lfw", "network.width": 1})
    run = build_run(cfg, tmp_path, torch.device("cpu"), fresh=True, source=None)
    groups = [o.param_groups[0] for ph in run.phases for o in ph.opts]
    assert {(g["lr"], g["betas"], g["eps"]) for g in groups} == {(2e-4, (0.0, 0.999), 1e-8)}
    assert {ph.name: ph.interval for ph in run.phases} == {"Gmain": 1, "Dmain": 1}


def test_g_ema_copies_g_until_ema_start(tmp_path):
    """With ema_start 3, after iteration 2 (< 3) G_ema equals G, buffers included; after more it does not."""
    out = train(tiny_biggan(kimg=0.048, ema_start=3), tmp_path / "a", tensorboard=False)
    G, G_ema = out["nets"]["G"], out["nets"]["G_ema"]
    for (k, a), b in zip(G.state_dict().items(), G_ema.state_dict().values()):
        assert torch.equal(a, b), k
    out = train(tiny_biggan(kimg=0.064, ema_start=3), tmp_path / "b", tensorboard=False)
    G, G_ema = out["nets"]["G"], out["nets"]["G_ema"]
    assert not torch.equal(G.linear.weight, G_ema.linear.weight)


@pytest.mark.parametrize("method", METHODS.names)
@pytest.mark.parametrize("aug", AUGMENTATIONS.names)
def test_every_augmentation_and_method_trains(tmp_path, aug, method):
    out = train(tiny_biggan(aug=aug, method=method), tmp_path, tensorboard=False)
    assert out["iterations"] == 2
    last = _stats(tmp_path)[-1]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if k.startswith("Loss/") and
               isinstance(v, (int, float)))
    keys = set().union(*(s.keys() for s in _stats(tmp_path)))
    if method in ("instance-fake", "instance-perturbation", "insgen", "fakeclr"):
        assert any(k.startswith("Loss/cl/fake") for k in keys), keys
    if method in ("instance-real", "insgen"):
        assert any(k.startswith("Loss/cl/real") for k in keys), keys


@pytest.mark.parametrize("aug,method", [("apa", "fakeclr"), ("ada", "insgen")])
def test_resume_equals_straight_through(tmp_path, aug, method):
    """Stopped after one snapshot and continued, the run ends bit for bit where the uninterrupted one does
    (spectral-norm vectors, BatchNorm statistics, APA's carried-over fakes and the EMA included)."""
    a = train(tiny_biggan(kimg=0.064, aug=aug, method=method), tmp_path / "a", tensorboard=False)
    train(tiny_biggan(kimg=0.064, aug=aug, method=method), tmp_path / "b", stop_at_kimg=0.032, tensorboard=False)
    b = train(tiny_biggan(kimg=0.064, aug=aug, method=method), tmp_path / "b", tensorboard=False)
    sa, sb = ckpt.load_state(a["state"]), ckpt.load_state(b["state"])
    for name in ("G", "D", "G_ema"):
        for k, v in sa["nets"][name].items():
            assert torch.equal(v, sb["nets"][name][k]), f"{name}.{k} differs after resume"
    if aug == "apa":
        assert torch.equal(sa["pseudo"]["0"]["img"], sb["pseudo"]["0"]["img"])


def test_options_of_the_other_backbone_are_refused():
    with pytest.raises(UserError, match="--gamma is not used by --backbone biggan"):
        resolve("biggan-cifar", {"loss.r1_gamma": 1.0, "data.source": "lfw"})
    with pytest.raises(UserError, match="d_steps is not used by --backbone stylegan2"):
        resolve("tiny", {"d_steps": 4})
    with pytest.raises(UserError, match="32, 64, 128 px"):
        train(tiny_biggan(**{"data.resolution": 16}), "/nonexistent-never-written", tensorboard=False)


@pytest.mark.slow
def test_the_documented_cifar_command_trains_from_the_downloaded_archive(tmp_path, capsys):
    """`fakeclr train --backbone biggan --preset biggan-cifar --data cifar-10-python.tar.gz --cond --method fakeclr`
    (docs/training.md), on a tiny archive of the same format and with a narrow network, for one iteration."""
    from packed_files import cifar10_files, write_tar

    from fakeclr.cli import main
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_files(per_batch=8))
    out = tmp_path / "run"
    assert main(["train", "--backbone", "biggan", "--preset", "biggan-cifar", "--data", str(archive), "--cond",
                 "--method", "fakeclr", "--outdir", str(out), "--kimg", "0.04", "--batch", "10",
                 "--no-tensorboard"]) == 0
    text = capsys.readouterr().out
    assert "80 images at 32px, 3 channel(s); biggan, batch 10 (40 reals an iteration)" in text   # mirrored
    state = ckpt.load_state(next(out.glob("training-state-*.pt")))
    assert json.loads(state["config"])["network"]["backbone"] == "biggan"
    assert state["nets"]["G"]["blocks.0.0.bn1.gain.weight"].shape == (10, 256)   # one gain per CIFAR-10 class
