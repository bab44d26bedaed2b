"""The anchors a parity case runs: the commits verified, the files the harness relies on (sha256), and the one
line each needs edited to run on the CPU. Nothing of the anchors is kept here but these facts; the checkouts are
the user's (``git clone`` beside the repository), copied to a temporary folder and patched there.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

# name -> (repository, verified commit, {file: sha256 of the file at that commit}, {file: {line: new text}})
# The new lines are ours: the training device becomes the CPU (BigGAN needs none). Everything else the CPU needs is changed at import
# by anchor_side.py (CUDA events and memory statistics, pin_memory, .cuda(), the all-gather, the sampler).
_CPU_DEVICE = "    device = torch.device('cpu')  # parity harness: the CPU instead of cuda:<rank>\n"
# Files InsGen and the released FakeCLR share unchanged (FakeCLR was built on InsGen).
_INSGEN_BASE = {
    "training/loss.py": "882624070e4690bb4025aea5d0874ae4abcf0caa2fc691c60af84b54ebd1b1da",
    "training/networks.py": "c673a63f999f05f30fb0d150fd4fca2d7b1b873f0312afdf095e244770f0cff8",
    "training/augment.py": "fd81c871a9bfbb7feaad138b1e875db05c640060bdbf0342247d209eb48ba8f9",
    "training/dataset.py": "10e433ffde6e3e63963711390ee8eeaa6f0e5a00da9f883117331a48b36e5145",
    "torch_utils/misc.py": "10ea2142dd7154327d6b92d361c4ff4d2ae9bab75307d4550a027adf9cf827f5",
    "torch_utils/training_stats.py": "c1c105b7e5c2fa5883516bf2bc05b588da5f45939d37f3fe281abca4579e7616",
}
ANCHORS = {
    "stylegan2-ada": ("NVlabs/stylegan2-ada-pytorch", "d72cc7d041b42ec8e806021a205ed9349f87c6a4", {
        "training/training_loop.py": "0b589a731712c51791eb22efe0dc1ee6856bf3e9335920db02a3e38dee909eb3",
        "training/loss.py": "1bd68d7dc1c92c1b78b91f193a45a433b1ff374614f91909ea8cb88eac7bc2d7",
        "training/networks.py": "df49fc78a0364015a09b592bb43546af83a6cdaad753d89a2a1a69bd6e171c24",
        "training/augment.py": "fd81c871a9bfbb7feaad138b1e875db05c640060bdbf0342247d209eb48ba8f9",
        "training/dataset.py": "10e433ffde6e3e63963711390ee8eeaa6f0e5a00da9f883117331a48b36e5145",
        "torch_utils/misc.py": "8b66e614f3dbb27b9b3280030efcb65a94e5cfd0e9d940302692452cb7c44012",
        "torch_utils/training_stats.py": "c1c105b7e5c2fa5883516bf2bc05b588da5f45939d37f3fe281abca4579e7616",
    }, {"training/training_loop.py": {124: _CPU_DEVICE}}),
    "insgen": ("genforce/insgen", "52bda7cfe59094fbb2f533a0355fff1392b0d380", {
        "training/training_loop.py": "bab8f3fe3d4f4ac8aaeb23d533f35798bbc6076e4d4a716278fab6ae0bb93632",
        "training/contrastive_loss.py": "b01b71abae7d2fd9d3726614415acc1ba5fa4b8cc9bc3cc49e3cc76d26c29d57",
        "training/contrastive_head.py": "0a60e67ba63fec534a100c013a2424ad27bd0936649767a4e8242e864934f2f9",
        **_INSGEN_BASE,
    }, {"training/training_loop.py": {129: _CPU_DEVICE}}),
    "fakeclr": ("iceli1007/FakeCLR", "d8f073578d48270c04f800888dfd8ac843d6e278", {
        "training/training_loop.py": "0654aa3121a2173fa6ea001e325429ba5402dbe6bc02a12bcd02cbaca71292f4",
        "training/contrastive_loss.py": "d8ffc5875197ba31dbca7567983ae54d9efd77404bceef2c25cd46a7dd60fbac",
        "training/contrastive_head_iteration.py": "38a1938f5d0953779dbe44041668249a99c371de9d4552cc8e2a26efee9aa26e",
        **_INSGEN_BASE,
    }, {"training/training_loop.py": {129: _CPU_DEVICE}}),
    # DiffAugment's BigGAN-CIFAR (on ajbrock/BigGAN-PyTorch); no line edited: it never names a device in the files
    # the harness runs (anchor_side.run_biggan builds the networks on the CPU and stubs the unused imports).
    "biggan": ("mit-han-lab/data-efficient-gans", "0b6339510be1e3859d360cbf464d0a425514a6b4", {
        "DiffAugment-biggan-cifar/train_fns.py": "f9f20e31b470c742bd519ba46d7ac43c4cd33299f5922b76cd40300871989f4e",
        "DiffAugment-biggan-cifar/BigGAN.py": "e26c72b355c1cc88be9499e840a9c3e60c2de4c35bbee6650134b41397ff7188",
        "DiffAugment-biggan-cifar/layers.py": "6b36f0ab19ec7f842a9e25b7716d8f12fd09636423a91818a22a6fc333330be1",
        "DiffAugment-biggan-cifar/utils.py": "17f76f64d27a2c2b4e13c011c203a3c097a0fd41bd2e2f29f7a5d9fa969a00d5",
        "DiffAugment-biggan-cifar/losses.py": "18b4cdfc217ee3ae6a42aa2d712e0f2ee5ec1e76adb1c6f7394ade561585c7f7",
        "DiffAugment-biggan-cifar/DiffAugment_pytorch.py":
            "d61fed24900fea3be17e3cd10d8880f895905732fd53f1f9b3013673b36fa0e2",
        "DiffAugment-biggan-cifar/train.py": "8fca68aa3a81f44f3895241bd5c15ffc6eb796b0c3e0591e99209d88d2dd0718",
    }, {}),
}


class AnchorMismatch(SystemExit):
    pass


def prepare(name: str, checkout: str | Path, into: str | Path) -> Path:
    """Copy the checkout of anchor ``name`` to ``into``/name, check the files against the verified commit, and
    apply the line edits. Exits with a sentence if the checkout is another version."""
    repo, commit, hashes, edits = ANCHORS[name]
    src, dst = Path(checkout).expanduser(), Path(into) / name
    for rel, want in hashes.items():
        f = src / rel
        got = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None
        if got != want:
            raise AnchorMismatch(f"{f} is not the file of {repo} at {commit[:12]} that this harness was verified "
                                 f"with ({'missing' if got is None else 'sha256 ' + got[:12]}); check out that "
                                 f"commit (git -C {src} checkout {commit}).")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    for rel, lines in edits.items():
        text = (dst / rel).read_text(encoding="utf-8-sig").splitlines(keepends=True)
        for number, new in lines.items():
            text[number - 1] = new
        (dst / rel).write_text("".join(text), encoding="utf-8")
    return dst
