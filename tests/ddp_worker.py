"""Run under torchrun by tests/test_dist.py: train `tiny` on gloo processes and record each rank's networks."""

import hashlib
import json
import sys

import torch.distributed as tdist

from fakeclr import dist
from fakeclr.config import method_config, preset_config
from fakeclr.train.loop import train


def digest(module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(outdir: str, method: str) -> None:
    cfg = preset_config("tiny")
    cfg.contrastive = method_config(method)
    cfg.data.source = "lfw"
    cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = 0.064, 0.032, 0.032
    out = train(cfg, outdir, device="cpu", tensorboard=False)
    mine = {"rank": dist.rank(), "world": dist.world_size(), "iterations": out["iterations"],
            **{name: digest(m) for name, m in out["nets"].items()}}
    objs = [None] * dist.world_size()
    tdist.all_gather_object(objs, mine)
    if dist.rank() == 0:
        with open(f"{outdir}/ranks.json", "w") as f:
            json.dump(objs, f)
    dist.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ada")
