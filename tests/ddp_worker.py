"""Run under torchrun by tests/test_dist.py: train `tiny` on gloo processes and record each rank's networks, and
every call that reached torch.distributed's collectives during training (who made it, on which device)."""

import hashlib
import json
import sys

import torch
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


COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "reduce", "reduce_scatter",
               "all_to_all", "gather", "scatter", "all_gather_object", "broadcast_object_list", "gather_object",
               "scatter_object_list")


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


def audit_collectives(calls: list) -> dict:
    """Wrap torch.distributed's collectives so that each call records its op, the file that made it, the devices
    of its tensors and the device the group's backend takes (NCCL: CUDA only). Returns the originals."""
    originals = {name: getattr(tdist, name) for name in COLLECTIVES if hasattr(tdist, name)}
    for name, real in originals.items():
        def wrapper(*args, _real=real, _name=name, **kwargs):
            expected = getattr(dist, "backend_device", lambda: torch.device("cpu"))()
            calls.append({"op": _name, "caller": sys._getframe(1).f_code.co_filename,
                          "devices": [str(t.device) for t in _tensors((args, list(kwargs.values())))],
                          "expected": str(expected)})
            return _real(*args, **kwargs)
        setattr(tdist, name, wrapper)
    return originals


def main(outdir: str, method: str) -> None:
    """``method`` is a method name, optionally with ``:stream`` (the data streamed through one DataLoader worker
    per process) or ``:biggan`` (the width-2 BigGAN at 32 px, 2 D steps per G step)."""
    method, _, feed = method.partition(":")
    cfg = preset_config("tiny")
    cfg.contrastive = method_config(method)
    cfg.data.source = "lfw"
    if feed == "stream":
        cfg.data.stream, cfg.data.workers = True, 1
    if feed == "biggan":
        cfg.network.backbone, cfg.network.width, cfg.data.resolution, cfg.d_steps = "biggan", 2, 32, 2
    cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = 0.064, 0.032, 0.032
    calls: list = []
    originals = audit_collectives(calls)
    out = train(cfg, outdir, device="cpu", tensorboard=False)
    for name, real in originals.items():
        setattr(tdist, name, real)
    mine = {"rank": dist.rank(), "world": dist.world_size(), "iterations": out["iterations"],
            **{name: digest(m) for name, m in out["nets"].items()}, "collectives": calls}
    objs = [None] * dist.world_size()
    tdist.all_gather_object(objs, mine)
    if dist.rank() == 0:
        with open(f"{outdir}/ranks.json", "w") as f:
            json.dump(objs, f)
    dist.leave(0)                   # as `fakeclr train` ends a torchrun worker


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ada")
