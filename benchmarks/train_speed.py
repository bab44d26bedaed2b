"""Training speed and peak memory per preset on this machine.

    .venv/bin/python benchmarks/train_speed.py [--presets tiny,lfw-demo] [--kimg 1.0] [--device cpu]

Each preset trains in its own subprocess (so the peak resident memory is that preset's alone) for ``--kimg``
thousand images on the embedded LFW data, after one warm-up tick that is not timed. Prints sec/kimg, images/s
and peak RSS side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _child(preset: str, kimg: float, device: str, aug: str | None) -> None:
    import torch

    from fakeclr.config import preset_config
    from fakeclr.train.loop import train

    cfg = preset_config(preset)
    cfg.data.source = "lfw"
    if aug:
        cfg.augment.kind = aug
    warm = cfg.batch * 4 / 1000               # four iterations of warm-up
    cfg.kimg = warm + kimg
    cfg.tick_kimg = cfg.snapshot_kimg = cfg.kimg
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, tmp, device=device, stop_at_kimg=warm, tensorboard=False, stream=open(os.devnull, "w"))
        t0 = time.perf_counter()
        out = train(cfg, tmp, device=device, tensorboard=False, stream=open(os.devnull, "w"))
        seconds = time.perf_counter() - t0
    nimg = out["cur_nimg"] - int(round(warm * 1000))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps({"preset": preset, "aug": cfg.augment.kind, "nimg": nimg, "seconds": seconds,
                      "sec_per_kimg": seconds / (nimg / 1000), "peak_mb": peak_mb,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,lfw-demo")
    ap.add_argument("--kimg", type=float, default=1.0, help="timed kimg per preset (default 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--aug", default=None, help="override the presets' augmentation")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.kimg, args.device, args.aug)
        return
    rows = []
    for preset in args.presets.split(","):
        cmd = [sys.executable, __file__, "--child", preset, "--kimg", str(args.kimg), "--device", args.device]
        if args.aug:
            cmd += ["--aug", args.aug]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    peak = "peak GPU MB" if args.device.startswith("cuda") else "peak RSS MB"
    print(f"device {args.device}, {rows[0]['threads']} torch threads, {args.kimg:g} kimg timed per preset")
    print(f"{'preset':<12} {'aug':<12} {'sec/kimg':>9} {'img/s':>8} {peak:>12}")
    for r in rows:
        print(f"{r['preset']:<12} {r['aug']:<12} {r['sec_per_kimg']:9.2f} {r['nimg'] / r['seconds']:8.1f} {r['peak_mb']:12.0f}")


if __name__ == "__main__":
    main()
