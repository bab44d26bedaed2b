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
    assert cl["on_g"] is False and cl["perturbation"] == "noise" and cl["real_in_fake_queue"] == "half"
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
