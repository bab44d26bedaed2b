"""``fakeclr train --init`` (fine-tuning from a pretrained network) and ``--freeze-d`` (FreezeD)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeclr.cli import main
from fakeclr.config import method_config, preset_config
from fakeclr.nn import Discriminator, Generator
from fakeclr.tools.finetune import apply_init, resolve_init
from fakeclr.train import checkpoint as ckpt
from fakeclr.train.loop import train


def faces(root: Path, n: int = 12, size: int = 16, labels: bool = False) -> Path:
    """Another grayscale data set at the tiny preset's 16 px (random blobs), optionally with 2 classes."""
    root.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(7)
    for i in range(n):
        Image.fromarray(rs.randint(0, 256, (size, size), dtype=np.uint8), "L").save(root / f"img{i:02d}.png")
    if labels:
        (root / "dataset.json").write_text(json.dumps({"labels": [[f"img{i:02d}.png", i % 2] for i in range(n)]}))
    return root


def tiny(data: str, kimg: float, method: str = "fakeclr"):
    cfg = preset_config("tiny")
    cfg.data.source, cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = data, kimg, kimg, kimg
    cfg.contrastive = method_config(method)
    return cfg


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A FakeCLR network trained 4 iterations on the LFW faces."""
    out = train(tiny("lfw", 0.032), tmp_path_factory.mktemp("lfw"), tensorboard=False)
    return out["network"]


def test_init_starts_from_the_files_weights_and_freeze_d_keeps_its_layers(pretrained, tmp_path, monkeypatch):
    from fakeclr.train import loop
    src = ckpt.load_networks(pretrained)
    cfg = tiny(str(faces(tmp_path / "faces")), 0.032)
    apply_init(cfg, resolve_init(pretrained, tmp_path / "run"))
    cfg.optim.freeze_d = 4                                     # b16: fromrgb, conv0, conv1, skip
    seen = {}

    def first_context(**kw):                                   # G and D as the first phase of the first iteration
        for name in ("G", "D"):                                # gets them, before any forward pass
            seen.setdefault(name, {k: v.clone() for k, v in kw[name].state_dict().items()})
        return context(**kw)
    context = loop.PhaseContext
    monkeypatch.setattr(loop, "PhaseContext", first_context)
    out = train(cfg, tmp_path / "run", tensorboard=False)
    for name in ("G", "D"):
        ref = src[name].state_dict()
        assert seen[name].keys() == ref.keys()
        assert [k for k in ref if not torch.equal(seen[name][k], ref[k])] == [], name
    D = out["nets"]["D"]
    frozen = {k for k in ref if k.startswith(("b16.fromrgb.", "b16.conv0.", "b16.conv1.", "b16.skip."))
              and not k.endswith("resample_filter")}
    assert frozen == {"b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight", "b16.conv0.bias",
                      "b16.conv1.weight", "b16.conv1.bias", "b16.skip.weight"}
    after = D.state_dict()
    assert all(torch.equal(after[k], src["D"].state_dict()[k]) for k in frozen)
    changed = [k for k in ("b8.conv0.weight", "b8.conv1.weight", "b4.fc.weight", "b4.out.weight")
               if not torch.equal(after[k], src["D"].state_dict()[k])]
    assert len(changed) == 4, changed
    trainable = {n for n, _ in D.named_parameters()}
    assert not frozen & trainable and {"b8.conv0.weight", "b4.out.weight"} <= trainable
    # frozen parameters have no optimizer state: D's optimizer holds D's trainable parameters and the head's
    state = ckpt.load_state(out["state"])
    n_head = sum(1 for _ in out["nets"]["fake_head"].parameters())
    assert len(state["optim"]["D_opt"]["state"]) == len(trainable) + n_head
    # the heads and D_ema came from the file too (FakeCLR to FakeCLR), and config.json says where from
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["init"]
    assert saved["sha256"] == hashlib.sha256(Path(pretrained).read_bytes()).hexdigest()
    assert saved["source"] == str(Path(pretrained).resolve()) and saved["G"] == src["G"].config


def test_init_run_resumes_from_its_state_without_the_file(pretrained, tmp_path):
    """Architecture and origin are in the state: the continued run equals the uninterrupted one."""
    data = str(faces(tmp_path / "faces"))

    def cfg(kimg):
        c = tiny(data, kimg, method="ada")
        apply_init(c, resolve_init(pretrained, None))
        c.snapshot_kimg = 0.016
        return c
    straight = train(cfg(0.032), tmp_path / "a", tensorboard=False)
    train(cfg(0.032), tmp_path / "b", tensorboard=False, stop_at_kimg=0.016)
    resumed = train(cfg(0.032), tmp_path / "b", tensorboard=False)
    for name in ("G", "D", "G_ema"):
        a, b = straight["nets"][name].state_dict(), resumed["nets"][name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_init_from_a_stylegan2_ada_pickle_gives_the_anchors_outputs(tmp_path):
    """The importer's crafted pickle (the published layout; its converted outputs equal the real StyleGAN2-ADA
    code's, tests/assets/importer_golden.npz): the run's networks before training give those outputs."""
    from fakeclr.train.init import networks_for_run
    from test_tools_import import ASSET, craft_pickle, filled, outputs
    pkl = tmp_path / "network-snapshot-000100.pkl"
    craft_pickle(pkl, {name: filled(name) for name in ("G", "D", "G_ema", "D_ema")})
    cfg = tiny(str(faces(tmp_path / "faces")), 0.016)
    cfg.data.channels = 3
    apply_init(cfg, resolve_init(pkl, tmp_path / "run"))
    assert (tmp_path / "run" / "init-network.safetensors").is_file()
    G, D, G_ema, init = networks_for_run(cfg, 0)
    assert {"G", "G_ema", "D", "D_ema", "fake_head", "fake_head_ema"} <= set(init)
    golden = np.load(ASSET)
    for k, v in outputs(G_ema, D.eval()).items():
        np.testing.assert_allclose(v, golden[k], rtol=0, atol=1e-5, err_msg=k)
    assert cfg.network.z_dim == 32 and cfg.network.mbstd_group_size == 2     # the file's architecture


def _net_file(path: Path, c_dim: int) -> Path:
    kw = dict(c_dim=c_dim, img_resolution=16, img_channels=1, channel_base=256, channel_max=32)
    ckpt.save_networks(path, {"G": Generator(z_dim=32, w_dim=32, mapping_layers=2, **kw),
                              "D": Discriminator(mbstd_group_size=4, **kw)})
    return path


@pytest.mark.parametrize("case, message", [
    ("resolution", "is a 16 px network but the data are trained at 32 px; --resolution must match"),
    ("channels", "makes 1-channel images but the data have 3; pass --channels 1"),
    ("conditional", "is a conditional network (2 classes) but the data are unlabelled"),
    ("unconditional", "is an unconditional network but --cond asks for 2 labels"),
    ("not-a-network", "is not a readable safetensors network file"),
    ("missing", "does not exist; pass a fakeclr network-snapshot-*.safetensors"),
    ("no-d", "fine-tuning needs a generator (G or G_ema) and the discriminator D"),
    ("freeze", "--freeze-d 11: this discriminator has 7 freezable layers at 16 px"),
])
def test_bad_init_gets_one_sentence(case, message, tmp_path, capsys):
    data = faces(tmp_path / "faces", labels=case == "unconditional")
    net = _net_file(tmp_path / "net.safetensors", 2 if case == "conditional" else 0)
    extra = {"resolution": ["--resolution", "32"], "channels": ["--channels", "3"],
             "unconditional": ["--cond"], "freeze": ["--freeze-d", "11"]}.get(case, [])
    if case == "not-a-network":
        net.write_text("hello")
    if case == "missing":
        net = tmp_path / "nope.safetensors"
    if case == "no-d":
        ckpt.save_networks(net, {"G_ema": ckpt.load_networks(_net_file(tmp_path / "x.safetensors", 0))["G"]})
    argv = ["train", "--preset", "tiny", "--data", str(data), "--outdir", str(tmp_path / "run"), "--init", str(net),
            "--kimg", "0.016", "--no-tensorboard", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob("network-*"))
