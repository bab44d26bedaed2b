"""A run's configuration resolved in the library (fakeclr.train.resolve) and the registries it draws on."""

import pytest
import torch

from fakeclr.cli import main
from fakeclr.config import AUGMENTATIONS, BACKBONES, METHODS, preset_config
from fakeclr.errors import UserError
from fakeclr.registry import Entry, Registry
from fakeclr.train.assembly import build_run
from fakeclr.train.resolve import resolve


def test_any_field_is_reachable_by_its_path():
    cfg = resolve("tiny", {"contrastive.method": "fakeclr", "contrastive.lam": 0.2, "loss.r1_interval": 8,
                           "augment.kind": "ada-linear", "metrics": "none"})
    assert cfg.contrastive.lam == 0.2 and cfg.loss.r1_interval == 8 and cfg.metrics == []
    assert cfg.contrastive.perturbation == "noise"            # the method's composition, then the field on top
    assert cfg.data.resolution == 16 and cfg.data.channels == 1     # tiny's 16 px of the grey LFW faces
    assert resolve("tiny", {"contrastive.lam": 1}).contrastive.lam == 1.0     # an int where a float is wanted


@pytest.mark.parametrize("overrides,sentence", [
    ({"contrastive.lambda": 0.2}, r"Unknown option 'contrastive.lambda'"),
    ({"loss.r1_gamma": "big"}, r"--gamma takes a float value, got 'big'\."),
    ({"augment.kind": "none", "augment.p": 0.5}, r"--p is not used by --aug none; .*\(ada, fixed, apa\)\."),
    ({"augment.kind": "ada", "augment.diffaugment_policy": "color"}, r"--diffaugment is not used by --aug ada"),
    ({"augment.kind": "fixed"}, r"--aug fixed needs --p"),
    ({"contrastive.method": "simclr"}, r"Unknown method 'simclr' \(--method\); choose one of: ada, "),
])
def test_what_a_run_cannot_use_is_refused_with_one_sentence(overrides, sentence):
    with pytest.raises(UserError, match=sentence):
        resolve("tiny", overrides)


def test_the_cli_refuses_an_option_the_augmentation_does_not_read(capsys):
    assert main(["train", "--preset", "tiny", "--aug", "none", "--p", "0.5", "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert "--p is not used by --aug none" in err and "Traceback" not in err


def test_building_a_run_leaves_the_resolved_config_as_it_was(tmp_path):
    cfg = preset_config("tiny")                  # channels unset: the run takes them from the data
    cfg.data.source = "lfw"
    before = cfg.to_json()
    run = build_run(cfg, tmp_path, torch.device("cpu"), fresh=True, source=None)
    run.feed.close()
    assert cfg.to_json() == before and run.cfg.data.channels == 1


def test_registries_name_their_builders_and_say_their_choices():
    assert AUGMENTATIONS.describe() == "ada (adaptive p), ada-linear, fixed (needs --p), diffaugment, apa, none"
    assert METHODS.names == ("ada", "instance-real", "instance-fake", "instance-perturbation", "insgen", "fakeclr")
    for registry in (AUGMENTATIONS, METHODS, BACKBONES):
        for entry in registry:
            assert callable(registry.builder(entry.name)), entry
    toy = Registry("widget", "--widget", [Entry("w", "", "fakeclr.config:preset_config")])
    assert toy.build("w", "tiny").preset == "tiny"
    with pytest.raises(UserError, match=r"Unknown widget 'v' \(--widget\); choose one of: w\."):
        toy.get("v")


def test_intervals_are_rounded_to_whole_iterations_with_a_note():
    notes = []
    cfg = resolve("tiny", {"snapshot_kimg": 0.05, "tick_kimg": 0.016}, notes=notes)   # batch 8
    assert cfg.snapshot_kimg == 0.056 and cfg.tick_kimg == 0.016                        # 6.25 -> 7; 2 stays
    assert notes == ["--snap 0.05 kimg is 6.25 iterations of 8 images; snapshots every 0.056 kimg (7 iterations) "
                     "instead."]
    assert resolve("tiny", {"snapshot_kimg": 0.001}).snapshot_kimg == 0.008            # at least one iteration
    for preset in ("tiny", "lfw-demo", "fewshot256", "paper256", "cifar"):
        notes = []
        resolve(preset, {"data.resolution": 16}, notes=notes)
        assert notes == [], preset                                                       # the presets need none


def test_file_names_of_a_run_give_their_kimg():
    from fakeclr.train.checkpoint import kimg_tag, tagged_kimg
    assert kimg_tag(4000) == "000004" and kimg_tag(48) == "000000.048"
    assert tagged_kimg("network-snapshot-000004.safetensors") == 4.0
    assert tagged_kimg("runs/x/training-state-000000.048.pt", "training-state-") == 0.048
    assert tagged_kimg("fakes000012.png", "fakes") == 12.0
    assert tagged_kimg("fakes-final.png") is None
    assert tagged_kimg("network-snapshot-000004.safetensors", "training-state-") is None


def test_cifar_preset_is_stylegan2_ada_cifar_configuration():
    """Every value StyleGAN2-ADA's `train.py --cfg cifar` sets (its cfg_specs row and the cifar branch: no path
    length, no style mixing, the 'orig' D; numbers read from the anchor at d72cc7d0), and the defaults it keeps."""
    cfg = resolve("cifar", {"data.source": "lfw"})           # 32 px: CIFAR's size
    n, loss, o, a = cfg.network, cfg.loss, cfg.optim, cfg.augment
    assert (cfg.kimg, cfg.batch, n.mbstd_group_size, n.channel_base, n.channel_max) == (100000, 64, 32, 32768, 512)
    assert (o.lr, o.beta1, o.beta2, o.eps, loss.r1_gamma) == (0.0025, 0, 0.99, 1e-8, 0.01)
    assert (cfg.ema_kimg, cfg.ema_rampup, n.mapping_layers, n.z_dim, n.w_dim) == (500, 0.05, 2, 512, 512)
    assert (loss.pl_weight, loss.style_mixing_prob, n.d_architecture) == (0, 0, "orig")
    assert (n.num_fp16_res, n.conv_clamp, loss.r1_interval, loss.pl_interval) == (4, 256, 16, 4)
    assert (a.kind, a.pipe, a.target, a.speed_kimg, a.interval, cfg.data.mirror) == ("ada", "bgc", 0.6, 500, 4, False)
    assert resolve("cifar", {"data.source": "lfw", "network.d_architecture": "skip"}).network.d_architecture == "skip"
    assert resolve("tiny").network.d_architecture == "resnet"
    with pytest.raises(UserError, match=r"--d-architecture 'residual' is not one of: resnet, orig, skip\."):
        resolve("tiny", {"network.d_architecture": "residual"})


@pytest.mark.parametrize("architecture", ["orig", None])
def test_init_takes_the_discriminator_architecture_of_the_file(tmp_path, architecture):
    """`--init` builds D as the file's D, whatever the preset or --d-architecture say; a file written before D had
    a choice (no `architecture` in its config) is a resnet D."""
    from fakeclr.nn import Discriminator, Generator
    from fakeclr.tools.finetune import resolve_init
    from fakeclr.train import checkpoint as ckpt
    from fakeclr.train.init import networks_for_run
    kw = dict(c_dim=0, img_resolution=16, img_channels=1, channel_base=256, channel_max=32)
    D = Discriminator(mbstd_group_size=4, architecture=architecture or "resnet", **kw)
    path = tmp_path / "net.safetensors"
    ckpt.save_networks(path, {"G": Generator(z_dim=32, w_dim=32, mapping_layers=2, **kw), "D": D})
    init = resolve_init(path, tmp_path)
    if architecture is None:
        del init.D["architecture"]
    cfg = resolve("tiny", {"network.d_architecture": "skip"}, init=init)
    assert cfg.network.d_architecture == (architecture or "resnet")
    _, D2, _, _ = networks_for_run(cfg, 0)                   # loads the file's D strictly
    assert D2.architecture == (architecture or "resnet")
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in D2.state_dict().items())
