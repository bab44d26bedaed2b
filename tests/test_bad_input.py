"""Bad input across the commands, as a table: each case exits non-zero with one error sentence that names the file
or flag at fault, prints no traceback, and writes or changes nothing (issue 27).

The files the cases point at are made once per module: a tiny run (network snapshot, training state, grid), a
network pickle, an image, a text file, an empty file, a folder. (A read-only folder is no case here: CI runs as
root, which writes anywhere.)
"""

import gzip
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from fakeclr.cli import main
from fakeclr.config import preset_config
from fakeclr.train.loop import train
from packed_files import cifar10_files, idx_bytes, idx_images, py2_pickle, write_folder, write_idx, write_tar


class _Evil:
    """Pickled, it asks the loader to call ``os.system``; a refused load never calls it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _packed_files(root) -> dict[str, str]:
    """Damaged CIFAR and IDX data, one fault each."""
    files = cifar10_files(per_batch=2, test=1)
    tar = write_tar(root / "cifar-10-python.tar.gz", "cifar-10-batches-py", files).read_bytes()
    (root / "cut-cifar-10-python.tar.gz").write_bytes(tar[:len(tar) // 2])
    cut = write_folder(root / "cut-batch", files)
    (cut / "data_batch_3").write_bytes(files["data_batch_3"][:5000])
    evil = write_folder(root / "evil-batch", files)
    (evil / "data_batch_2").write_bytes(pickle.dumps({"data": _Evil(root / "pwned")}, protocol=2))
    few = write_folder(root / "few-batches",
                       {k: v for k, v in files.items() if k not in ("data_batch_4", "data_batch_5")})
    images, labels = idx_images(4, 8)
    magic = write_idx(root / "idx-magic", "train", images, labels, gz=False)
    magic.write_bytes(idx_bytes(images, magic=0x00000801))
    short = write_idx(root / "idx-short", "train", images, labels)
    short.write_bytes(gzip.compress(idx_bytes(images)[:-7]))
    count = write_idx(root / "idx-count", "train", images, labels[:3])
    lonely = write_idx(root / "idx-nolabels", "train", images, labels)
    (root / "idx-nolabels" / "train-labels-idx1-ubyte.gz").unlink()
    return {"cut_tar": str(root / "cut-cifar-10-python.tar.gz"), "cut_batch": str(cut),
            "cut_batch_file": str(cut / "data_batch_3"), "evil_batch": str(evil / "data_batch_2"),
            "evil": str(evil), "few": str(few), "idx_magic": str(magic), "idx_short": str(short),
            "idx_count": str(count.parent), "idx_count_labels": str(count.parent / "train-labels-idx1-ubyte.gz"),
            "idx_nolabels": str(lonely)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    cfg = preset_config("tiny")
    cfg.data.source, cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = "lfw", 0.008, 0.008, 0.008
    out = train(cfg, root / "run", tensorboard=False)
    (root / "net.pkl").write_bytes(pickle.dumps({"G": [1, 2, 3]}, protocol=4))
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(root / "img.png")
    (root / "notes.txt").write_text("not an image\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "folder").mkdir()
    (root / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
    (root / "rgb").mkdir()                          # 16 px like the tiny network, but 3 channels where it has 1
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), (90 * i, 20, 200), np.uint8)).save(root / "rgb" / f"{i}.png")
    paths = {"net": str(out["network"]), "state": str(out["state"]), "pkl": str(root / "net.pkl"),
             "png": str(root / "img.png"), "txt": str(root / "notes.txt"), "empty": str(root / "empty.bin"),
             "folder": str(root / "folder"), "images": str(root / "images"), "rgb": str(root / "rgb"),
             "missing": str(root / "missing"), "out": str(root / "out"), "run": str(root / "run"),
             **_packed_files(root)}
    return root, paths


def _tree(root):
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
        for name in dirnames:
            out[os.path.join(dirpath, name)] = "dir"
    return out


T = ["train", "--preset", "tiny", "--outdir", "{out}/t", "--kimg", "0.008"]
CASES = [
    # train: data
    (T + ["--data", "{missing}"], "{missing}"),
    (T + ["--data", "{folder}"], "{folder}"),
    (T + ["--data", "{txt}"], "{txt}"),
    (T + ["--data", "{empty}"], "{empty}"),
    (T + ["--data", "{images}", "--cond"], "--cond"),
    (T + ["--data", "{images}", "--subset", "10"], "--subset 10"),
    (T + ["--data", "{images}", "--resolution", "20"], "power of two"),
    (T + ["--data", "lfw", "--channels", "2"], "--channels"),
    # train: options
    (T + ["--aug", "none", "--p", "0.5"], "--p is not used by --aug none"),
    (T + ["--aug", "ada", "--diffaugment", "color"], "--diffaugment is not used by --aug ada"),
    (T + ["--aug", "diffaugment", "--target", "0.3"], "--target is not used by --aug diffaugment"),
    (T + ["--aug", "ada-linear", "--ada-kimg", "10"], "--ada-kimg is not used by --aug ada-linear"),
    (T + ["--aug", "fixed"], "--aug fixed needs --p"),
    (T + ["--aug", "fancy"], "--aug"),
    (T + ["--method", "simclr"], "--method"),
    (T + ["--backbone", "stylegan3"], "--backbone"),
    (T + ["--backbone", "biggan", "--gamma", "1"], "--gamma is not used by --backbone biggan"),
    (T + ["--backbone", "biggan", "--resolution", "16"], "BigGAN is defined here at 32, 64, 128 px"),
    (T + ["--preset", "huge"], "--preset"),
    (T + ["--batch", "6"], "--batch 6"),
    (T + ["--batch", "0"], "--batch"),
    (T + ["--kimg", "-1"], "--kimg"),
    (T + ["--gamma", "-1"], "--gamma"),
    (T + ["--pl-weight", "-2"], "--pl-weight"),
    (T + ["--target", "1.5"], "--target"),
    (T + ["--p", "2", "--aug", "fixed"], "--p"),
    (T + ["--ada-kimg", "0"], "--ada-kimg"),
    (T + ["--snap", "0"], "--snap"),
    (T + ["--workers", "-1"], "--workers"),
    (T + ["--freeze-d", "-1"], "--freeze-d"),
    (T + ["--fp16-res", "9"], "--fp16-res 9"),
    (T + ["--queue-size", "0", "--method", "fakeclr"], "--queue-size"),
    (T + ["--tau", "0"], "--tau"),
    (T + ["--real-in-fake-queue", "half"], "--real-in-fake-queue"),
    (T + ["--forgetting", "always"], "--forgetting"),
    (T + ["--metrics", "fid1m_nothing"], "fid1m_nothing"),
    (T + ["--subset", "abc"], "--subset"),
    (T + ["--metrics", "fid10k"], "--metrics-ref"),
    (T + ["--metrics", "fid10k", "--metrics-ref", "{missing}"], "{missing}"),
    (T + ["--metrics", "fid10k", "--metrics-ref", "{net}"], "is a network file"),
    (T + ["--metrics", "fid10k", "--metrics-ref", "{rgb}"], "with 3 channel(s) but the network makes 16x16 with 1"),
    (T + ["--metrics-ref", "{rgb}"], "--metrics-ref {rgb} holds 16x16 images with 3 channel(s)"),
    (T + ["--gamma", "x"], "--gamma"),
    # train: files
    (T + ["--resume", "{missing}"], "{missing}"),
    (T + ["--resume", "{net}"], "is not a training state but a network file"),
    (T + ["--resume", "{pkl}"], "is not a training state but a network pickle"),
    (T + ["--resume", "{png}"], "is not a training state but an image"),
    (T + ["--resume", "{folder}"], "{folder}"),
    (T + ["--init", "{missing}"], "{missing}"),
    (T + ["--init", "{state}"], "training state"),
    (["train", "--preset", "tiny", "--outdir", "{png}", "--kimg", "0.008"], "{png}"),
    (["train", "--preset", "tiny", "--outdir", "{png}/run", "--kimg", "0.008"], "{png}"),
    # dataset
    (["dataset", "{missing}", "{out}/d.zip", "--resolution", "16"], "{missing}"),
    (["dataset", "{images}", "{out}/d.zip", "--resolution", "12"], "power of two"),
    (["dataset", "{images}", "{out}/d.tar", "--resolution", "16"], ".zip"),
    (["dataset", "{images}", "{folder}", "--resolution", "16"], "{folder}"),
    (["dataset", "{images}", "{png}", "--resolution", "16"], "exists; pass --force"),
    (["dataset", "{images}", "{png}/d.zip", "--resolution", "16"], "{png}"),
    (["dataset", "{images}", "{images}", "--resolution", "16"], "{images}"),
    (["dataset", "{images}", "{out}/d.zip", "--channels", "2", "--resolution", "16"], "--channels"),
    (["dataset", "{images}", "{out}/d.zip", "--resolution", "16", "--subset", "7"], "--subset 7"),
    # dataset: CIFAR and IDX files
    (["dataset", "{cut_tar}", "{out}/d.zip", "--resolution", "32"], "{cut_tar}"),
    (["dataset", "{cut_batch}", "{out}/d.zip", "--resolution", "32"], "{cut_batch_file}' is truncated"),
    (["dataset", "{evil}", "{out}/d.zip", "--resolution", "32"], "{evil_batch}' holds a Python object (posix.system)"),
    (["dataset", "{few}", "{out}/d.zip", "--resolution", "32"], "data_batch_4, data_batch_5"),
    (["dataset", "{few}", "{out}/d.zip", "--resolution", "32", "--split", "valid"], "--split"),
    (["dataset", "{images}", "{out}/d.zip", "--resolution", "16", "--split", "test"], "--split"),
    (["dataset", "{idx_magic}", "{out}/d.zip", "--resolution", "32"], "magic number 0x00000801"),
    (["dataset", "{idx_short}", "{out}/d.zip", "--resolution", "32"], "{idx_short}' holds 249 bytes"),
    (["dataset", "{idx_count}", "{out}/d.zip", "--resolution", "32"], "{idx_count_labels}' has 3 labels for the 4"),
    (["dataset", "{idx_nolabels}", "{out}/d.zip", "--resolution", "32"], "train-labels-idx1-ubyte.gz"),
    (["dataset", "{idx_short}", "{out}/d.zip", "--resolution", "32", "--split", "test"], "--split test"),
    (T + ["--data", "{cut_tar}"], "{cut_tar}"),
    # generate, metrics, export, import, tools
    (["generate", "--network", "{missing}", "--grid", "{out}/g.png"], "{missing}"),
    (["generate", "--network", "{pkl}", "--grid", "{out}/g.png"], "fakeclr import"),
    (["generate", "--network", "{state}", "--grid", "{out}/g.png"], "training state"),
    (["generate", "--network", "{txt}", "--grid", "{out}/g.png"], "{txt}"),
    (["generate", "--network", "{net}"], "--outdir"),
    (["generate", "--network", "{net}", "--grid", "{out}/g.png", "--count", "0"], "--count"),
    (["generate", "--network", "{net}", "--grid", "{out}/g.png", "--seeds", "a-b"], "a-b"),
    (["generate", "--network", "{net}", "--grid", "{out}/g.png", "--class", "3"], "--class"),
    (["generate", "--network", "{net}", "--grid", "{out}/g.png", "--trunc", "x"], "--trunc"),
    (["metrics", "--network", "{pkl}"], "fakeclr import"),
    (["metrics", "--network", "{net}", "--metrics", "nope"], "nope"),
    (["metrics", "--network", "{net}", "--num-gen", "1"], "--num-gen"),
    (["metrics", "--real", "{images}"], "--fake"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k"], "--ref"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{missing}"], "--ref {missing} does not exist"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{net}"], "is a network file"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{pkl}"], "is a network file"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{rgb}"], "--ref {rgb} holds 16x16 images"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{folder}"], "--ref {folder}"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{txt}"], "--ref {txt}"),
    (["metrics", "--network", "{net}", "--metrics", "fid10k", "--ref", "{cut_tar}"], "--ref {cut_tar}"),
    (["metrics", "--network", "{net}", "--metrics", "fid5k_full", "--ref", "{images}"], "--ref is read by fid10k only"),
    (["metrics"], "--network"),
    (["export", "{state}", "--onnx", "{out}/g.onnx"], "training state"),
    (["export", "{missing}", "--torchscript", "{out}/g.pt"], "{missing}"),
    (["import", "{png}", "{out}/n.safetensors"], "{png}"),
    (["import", "{missing}", "{out}/n.safetensors"], "{missing}"),
    (["interpolate", "--network", "{state}", "--seeds", "0,1", "--outdir", "{out}/i"], "training state"),
    (["style-mix", "--network", "{pkl}", "--out", "{out}/s.png"], "fakeclr import"),
    (["project", "--network", "{net}", "--target", "{missing}", "--outdir", "{out}/p"], "{missing}"),
    (["lpips", "{png}", "{missing}"], "{missing}"),
    (["lpips", "{png}", "{txt}"], "{txt}"),
    (["report", "{missing}"], "{missing}"),
    (["study", "nonexistent-study", "--outdir", "{out}/s", "--dry-run"], "nonexistent-study"),
    # outputs through a file where a folder should be
    (["generate", "--network", "{net}", "--outdir", "{txt}", "--count", "2"], "{txt}"),
    (["generate", "--network", "{net}", "--grid", "{txt}/g.png", "--count", "2"], "{txt}"),
    (["interpolate", "--network", "{net}", "--seeds", "0,1", "--outdir", "{txt}"], "{txt}"),
    (["style-mix", "--network", "{net}", "--out", "{txt}/x.png"], "{txt}"),
    (["export", "{net}", "--torchscript", "{txt}/g.pt"], "{txt}"),
    (["report", "{run}", "--out", "{txt}"], "{txt}"),
]


@pytest.mark.parametrize("argv,named", CASES, ids=[" ".join(a[:1] + a[7:] if a[0] == "train" else a)[:60]
                                                   for a, _ in CASES])
def test_bad_input_gives_one_sentence_and_changes_nothing(files, capsys, argv, named):
    root, paths = files
    argv = [a.format(**paths) for a in argv]
    named = named.format(**paths)
    before = _tree(root)
    try:
        code = main(argv)
    except SystemExit as e:                       # argparse: a usage line and its error line
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code not in (0, None), argv
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines and "error: " in lines[-1], err
    error = lines[-1] if lines[-1].startswith("fakeclr: error: ") else "\n".join(lines)
    assert lines[-1].startswith("fakeclr: error: ") and len(lines) == 1 or lines[0].startswith("usage:"), err
    assert named in error, (named, err)
    assert _tree(root) == before, "a bad input wrote or changed files"
