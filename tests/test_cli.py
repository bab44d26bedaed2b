"""The `fakeclr` command: its surface, dry runs, generation, and one clear sentence for each bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from fakeclr.cli import main, make_parser

TRAIN_FLAGS = {
    "--data", "--preset", "--outdir", "--resume", "--kimg", "--batch", "--aug", "--p", "--target", "--augpipe",
    "--diffaugment", "--gamma", "--pl-weight", "--lr", "--ema-kimg", "--mirror", "--no-mirror", "--resolution",
    "--channels", "--subset", "--cond", "--skip-bad", "--seed", "--snap", "--tick", "--device", "--no-tensorboard",
    "--dry-run", "-h", "--help", "--method", "--perturbation", "--forgetting", "--queue-size", "--queue-sizer",
    "--cl-on-g", "--no-cl-on-g", "--lw-real", "--lw-fake", "--lw-fake-on-g", "--tau", "--tau-m", "--mixing",
    "--real-in-fake-queue", "--reuse-forward", "--no-reuse-forward", "--ada-kimg", "--subset-seed", "--init", "--freeze-d", "--fp16-res", "--nhwc", "--no-nhwc",
    "--stream", "--no-stream", "--workers", "--d-architecture",
}


def _flags(command):
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_train_flags_are_frozen():
    """Removing or renaming a flag breaks users' scripts: this list changes only on purpose."""
    assert TRAIN_FLAGS <= _flags("train"), TRAIN_FLAGS - _flags("train")
    assert {"--network", "--seeds", "--count", "--trunc", "--noise-mode", "--class", "--outdir", "--grid"} <= _flags("generate")
    assert {"--resolution", "--channels", "--subset", "--seed", "--skip-bad"} <= _flags("dataset")


def test_ada_kimg_sets_the_speed_of_the_adaptive_p(capsys):
    assert main(["train", "--preset", "tiny", "--ada-kimg", "4", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["augment"]["speed_kimg"] == 4.0
    assert main(["train", "--preset", "tiny", "--ada-kimg", "-1", "--dry-run"]) == 2
    assert "--ada-kimg must be positive" in capsys.readouterr().err


def test_dry_run_resolves_auto_preset(capsys):
    assert main(["train", "--preset", "auto", "--data", "lfw", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    # StyleGAN2-ADA's `auto` at 32 px on one process: batch min(4096 // 32, 32) = 32, gamma 0.0002 * 32**2 / 32.
    assert cfg["data"]["resolution"] == 32 and cfg["data"]["channels"] == 1
    assert cfg["batch"] == 32 and cfg["network"]["mbstd_group_size"] == 4
    assert cfg["loss"]["r1_gamma"] == pytest.approx(0.0064)
    assert cfg["ema_kimg"] == pytest.approx(10.0) and cfg["network"]["channel_base"] == 16384


def test_dry_run_applies_flags_over_preset(capsys):
    args = ["train", "--preset", "fewshot256", "--data", "lfw", "--resolution", "32", "--gamma", "0.5",
            "--aug", "diffaugment", "--kimg", "3", "--batch", "8", "--no-mirror", "--dry-run"]
    assert main(args) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["loss"]["r1_gamma"] == 0.5 and cfg["augment"]["kind"] == "diffaugment"
    assert cfg["kimg"] == 3 and cfg["batch"] == 8 and cfg["data"]["mirror"] is False
    assert cfg["ema_kimg"] == 20 and cfg["network"]["mapping_layers"] == 8   # from the preset


def test_train_then_generate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", "lfw", "--kimg", "0.016", "--outdir", str(run),
                 "--no-tensorboard"]) == 0
    net = sorted(run.glob("network-snapshot-*.safetensors"))[-1]
    assert main(["generate", "--network", str(net), "--seeds", "0-2,5", "--outdir", str(tmp_path / "img"),
                 "--grid", str(tmp_path / "grid.png")]) == 0
    files = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert files == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0005.png"]
    a = np.asarray(Image.open(tmp_path / "img" / "seed0005.png"))
    assert a.shape == (16, 16)
    # The same seed gives the same image, alone or in a list.
    assert main(["generate", "--network", str(net), "--seeds", "5", "--outdir", str(tmp_path / "again")]) == 0
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "again" / "seed0005.png")))
    assert Image.open(tmp_path / "grid.png").size == (32, 32)


def _error(capsys, argv, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("fakeclr: error: ") and "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_bad_inputs_give_one_sentence(tmp_path, capsys):
    assert "does not exist" in _error(capsys, ["train", "--data", str(tmp_path / "nope"), "--outdir", str(tmp_path / "o")])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty" in _error(capsys, ["train", "--data", str(empty), "--outdir", str(tmp_path / "o")]).lower()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("not an image")
    assert str(junk) in _error(capsys, ["train", "--data", str(junk), "--outdir", str(tmp_path / "o")])
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (16, 16)).save(bad / "good.png")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    err = _error(capsys, ["train", "--data", str(bad), "--outdir", str(tmp_path / "o")])
    assert "broken.png" in err and "--skip-bad" in err
    assert "power of two" in _error(capsys, ["train", "--data", "lfw", "--resolution", "48", "--dry-run"])
    assert "--p" in _error(capsys, ["train", "--data", "lfw", "--aug", "fixed", "--dry-run"])
    assert "--batch" in _error(capsys, ["train", "--preset", "tiny", "--data", "lfw", "--batch", "6", "--dry-run"])
    assert not (tmp_path / "o").exists()   # nothing was written for any of them


def test_unknown_choice_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "huge"])
    assert info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_dataset_command(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(src / f"{i}.png")
    assert main(["dataset", str(src), str(tmp_path / "out.zip"), "--resolution", "16"]) == 0
    out = capsys.readouterr().out
    assert "3" in out and "16" in out
    assert (tmp_path / "out.zip").is_file()
    assert "power of two" in _error(capsys, ["dataset", str(src), str(tmp_path / "o.zip"), "--resolution", "20"])
    assert not (tmp_path / "o.zip").exists()


def test_generate_bad_network(tmp_path, capsys):
    fake = tmp_path / "net.safetensors"
    fake.write_bytes(b"not a safetensors file")
    assert "truncated" in _error(capsys, ["generate", "--network", str(fake), "--outdir", str(tmp_path)])
    assert "does not exist" in _error(capsys, ["generate", "--network", str(tmp_path / "x.safetensors"), "--outdir", str(tmp_path)])


def test_method_flags_compose(capsys):
    args = ["train", "--data", "lfw", "--method", "fakeclr", "--forgetting", "official", "--queue-size", "200",
            "--no-cl-on-g", "--aug", "diffaugment", "--real-in-fake-queue", "half", "--dry-run"]
    assert main(args) == 0
    cl = json.loads(capsys.readouterr().out)["contrastive"]
    assert cl["method"] == "fakeclr" and cl["forgetting"] == "official" and cl["queue_size"] == 200
    assert cl["fake_on_g"] is False and cl["perturbation"] == "noise" and cl["real_in_fake_queue"] == "half"
    assert main(["train", "--data", "lfw", "--dry-run"]) == 0      # lfw-demo: FakeCLR with ADA-linear
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["contrastive"]["method"] == "fakeclr" and cfg["augment"]["kind"] == "ada-linear"
    assert "--real-in-fake-queue" in _error(capsys, ["train", "--data", "lfw", "--method", "instance-real",
                                                     "--real-in-fake-queue", "start", "--dry-run"])


def test_subset_seed_is_its_own_flag(capsys):
    """--seed changes the training seed only; the images of --subset follow --subset-seed."""
    base = ["train", "--preset", "tiny", "--data", "lfw", "--subset", "10", "--dry-run"]
    assert main(base + ["--seed", "3"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["seed"] == 3 and cfg["data"]["subset_seed"] == 0
    assert main(base + ["--subset-seed", "5"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["seed"] == 0 and cfg["data"]["subset_seed"] == 5 and cfg["data"]["subset"] == 10   # a count
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "tiny", "--data", "lfw", "--subset", "10.5", "--dry-run"])
    assert e.value.code == 2 and "--subset: 10.5: a count must be a whole number" in capsys.readouterr().err


def test_dataset_subset_count(tmp_path, capsys):
    assert main(["dataset", "lfw", str(tmp_path / "ten.zip"), "--resolution", "16", "--subset", "10"]) == 0
    import zipfile
    with zipfile.ZipFile(tmp_path / "ten.zip") as z:
        assert sum(n.endswith(".png") for n in z.namelist()) == 10


# ---------------------------------------------------------------------------------------------------- options
# Values for options whose valid range a generic "different value" would leave.
_OPTION_VALUES = {"data.resolution": 32, "data.subset": 10, "data.channels": 3,
                  "contrastive.method": "insgen", "metrics": "fid5k_full", "network.num_fp16_res": 1,
                  "optim.freeze_d": 2, "augment.p": 0.25, "augment.target": 0.3, "batch": 4,
                  "augment.pipe": "bg", "augment.diffaugment_policy": "color",
                  "tick_kimg": 0.08, "snapshot_kimg": 0.192}          # whole iterations of tiny's batch 8


def _other_value(opt, current):
    """A valid value for ``opt`` that differs from ``current``, and its spelling on the command line."""
    if opt.path in _OPTION_VALUES:
        value = _OPTION_VALUES[opt.path]
    elif opt.type is bool:
        value = not current
    elif opt.choices:
        value = next(c for c in opt.choices if c != current)
    elif opt.type is int:
        value = (current or 0) + 3
    elif opt.type is float:
        value = (current or 0) + 0.375
    else:
        raise AssertionError(f"no test value for {opt.path}")
    if opt.type is bool:
        return value, [opt.flag if value else "--no-" + opt.flag[2:]]
    return value, [opt.flag, str(value)]


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_every_option_flag_sets_its_own_field_and_nothing_else(tmp_path, capsys):
    """The flags are derived from config.options(): each one reaches exactly the field it is declared on."""
    from fakeclr.config import AUGMENTATIONS, get_option, options, preset_config
    for i in range(4):                                   # a grey folder: the same channels as the default LFW
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    _OPTION_VALUES["data.source"] = str(tmp_path)
    _OPTION_VALUES["metrics_ref"] = str(tmp_path)         # reference images of the run's size (fid10k's --ref)
    base_argv = ["train", "--preset", "tiny", "--method", "fakeclr", "--dry-run"]
    assert main(base_argv) == 0
    base = _flat(json.loads(capsys.readouterr().out))
    opts = options()
    assert len(opts) == 51 and len({o.flag for o in opts}) == len(opts)
    for opt in opts:
        if opt.switch and get_option(preset_config("tiny"), opt.path) or opt.choices and len(opt.choices) == 1:
            continue
        value, argv = _other_value(opt, base[opt.path])
        # An augmentation option is given with an augmentation that reads it (tiny's ada does not read them all).
        extra = []
        if opt.path.startswith("augment.") and opt.path != "augment.kind":
            aug = next(e.name for e in AUGMENTATIONS if opt.path.partition(".")[2] in e.uses)
            extra = ["--aug", aug] if aug != base["augment.kind"] else []
        assert main(base_argv + argv + extra) == 0, argv + extra
        cfg = _flat(json.loads(capsys.readouterr().out))
        changed = {k for k in cfg if cfg[k] != base[k]}
        expect = value if opt.path != "metrics" else [value]
        assert cfg[opt.path] == expect, (argv, cfg[opt.path])
        if opt.path == "contrastive.method":      # a method is a preset of the whole contrastive section
            assert changed and all(k.startswith("contrastive.") for k in changed), changed
        else:
            assert changed == {opt.path} | ({"augment.kind"} if extra else set()), (argv, changed)


def test_choices_are_checked_for_config_files_too():
    """One validator per rule: a config.json value outside an option's choices (or a field without a flag) fails
    with the same sentence as the flag would."""
    from fakeclr.config import TrainConfig, preset_config, validate
    from fakeclr.errors import UserError
    d = preset_config("tiny").to_dict()
    d["contrastive"]["forgetting"] = "always"
    with pytest.raises(UserError, match=r"--forgetting 'always' is not one of: paper, official, none\."):
        validate(TrainConfig.from_dict(d))
    d["contrastive"]["forgetting"] = "none"
    d["contrastive"]["fake_positive"] = "mirror"            # no flag: named by its config path
    with pytest.raises(UserError, match=r"contrastive.fake_positive 'mirror' is not one of: none, augment, perturb\."):
        validate(TrainConfig.from_dict(d))


def test_configs_with_the_old_field_names_still_load():
    """Training states and config.json written before the contrastive fields were renamed keep their values."""
    from fakeclr.config import TrainConfig, method_config, preset_config
    cfg = preset_config("tiny")
    cfg.contrastive = method_config("insgen")
    cfg.contrastive.z_norm_cap = 2.5
    old = cfg.to_dict()
    c = old["contrastive"]
    for new, name in (("real_instance", "real"), ("fake_positive", "fake_view"), ("fake_on_g", "on_g"),
                      ("z_norm_cap", "clip")):
        c[name] = c.pop(new)
    assert TrainConfig.from_dict(old) == cfg


def test_train_flags_and_their_help_are_frozen():
    """The flags are derived from the config's option() declarations; what users see (every flag, its help and
    its choices, as the hand-written parser had them) changes only on purpose, with this file."""
    from pathlib import Path
    frozen = json.loads((Path(__file__).parent / "assets" / "train_flags.json").read_text())
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    now = {s: {"help": a.help, "choices": list(a.choices) if a.choices else None}
           for a in sub.choices["train"]._actions for s in a.option_strings if s not in ("-h", "--help")}
    assert now == frozen


def test_dataset_refuses_its_source_and_an_existing_destination(tmp_path, capsys):
    """`fakeclr dataset` never replaces its source, and replaces an existing file only with --force (issue 27)."""
    assert main(["dataset", "lfw", str(tmp_path / "a.zip"), "--resolution", "16", "--subset", "4"]) == 0
    before = (tmp_path / "a.zip").read_bytes()
    err = _error(capsys, ["dataset", str(tmp_path / "a.zip"), str(tmp_path / "a.zip"), "--resolution", "8"])
    assert "is the source itself" in err and (tmp_path / "a.zip").read_bytes() == before
    err = _error(capsys, ["dataset", "lfw", str(tmp_path / "a.zip"), "--resolution", "8"])
    assert "exists; pass --force" in err and (tmp_path / "a.zip").read_bytes() == before
    assert main(["dataset", "lfw", str(tmp_path / "a.zip"), "--resolution", "8", "--subset", "4", "--force"]) == 0
    assert (tmp_path / "a.zip").read_bytes() != before
    err = _error(capsys, ["dataset", "lfw", str(tmp_path / "b.zip"), "--resolution", "8", "--subset", "1000"])
    assert "--subset 1000 asks for more images than the data have (100)" in err


def test_cond_without_labels_is_refused(tmp_path, capsys):
    err = _error(capsys, ["train", "--preset", "tiny", "--data", "lfw", "--cond", "--outdir", str(tmp_path / "r"),
                          "--kimg", "0.008"])
    assert "--cond: lfw has no labels" in err and not (tmp_path / "r" / "config.json").exists()
