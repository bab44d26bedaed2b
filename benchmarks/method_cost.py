"""Training cost of each method (FakeCLR Table 1): sec/kimg and the ratio to ADA, side by side, one process.

    .venv/bin/python benchmarks/method_cost.py [--preset lfw-demo] [--kimg 0.5] [--rounds 2] [--device cpu]
        [--methods ada,instance-real,...] [--variants]

Every method trains the same number of images on the same preset and data; the rounds are interleaved
(ada, insgen, fakeclr, ..., ada, insgen, ...) so that a drift in machine speed hits all methods alike, and the
best round of each method is reported. ``--variants`` adds FakeCLR with ``--no-reuse-forward`` (the released
code's second D forward for the queries) to show what reusing the adversarial forward saves.
The paper (Table 1, V100): InsGen 1.90x ADA, FakeCLR 1.73x ADA.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from fakeclr.config import METHOD_PRESETS, method_config, preset_config
from fakeclr.train.loop import train


def run_once(preset: str, method: str, kimg: float, device: str, reuse: bool = True) -> float:
    """Seconds per kimg of one training run, after two untimed warm-up iterations."""
    cfg = preset_config(preset)
    cfg.data.source = "lfw"
    cfg.contrastive = method_config(method)
    cfg.contrastive.reuse_forward = reuse
    warm = cfg.batch * 2 / 1000
    cfg.kimg = warm + kimg
    cfg.tick_kimg = cfg.snapshot_kimg = cfg.kimg
    null = open(os.devnull, "w")
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, tmp, device=device, stop_at_kimg=warm, tensorboard=False, stream=null)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = train(cfg, tmp, device=device, tensorboard=False, stream=null)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds / ((out["cur_nimg"] - round(warm * 1000)) / 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lfw-demo")
    ap.add_argument("--kimg", type=float, default=0.5, help="timed kimg per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHOD_PRESETS))
    ap.add_argument("--variants", action="store_true", help="also FakeCLR without forward reuse")
    args = ap.parse_args()
    runs = [(m, True) for m in args.methods.split(",")]
    if args.variants:
        runs.append(("fakeclr", False))
    best: dict[tuple[str, bool], float] = {}
    for r in range(args.rounds):
        for method, reuse in runs:
            s = run_once(args.preset, method, args.kimg, args.device, reuse)
            best[(method, reuse)] = min(best.get((method, reuse), float("inf")), s)
            print(f"round {r + 1}: {method}{'' if reuse else ' (no reuse)'} {s:.2f} sec/kimg", file=sys.stderr)
    base = best[("ada", True)]
    print(f"preset {args.preset}, device {args.device}, {torch.get_num_threads()} threads, {args.kimg:g} kimg "
          f"timed per run, best of {args.rounds} interleaved rounds")
    print(f"{'method':<34} {'sec/kimg':>9} {'x ADA':>7}")
    for (method, reuse), s in best.items():
        name = method + ("" if reuse else " (--no-reuse-forward)")
        print(f"{name:<34} {s:9.2f} {s / base:7.2f}")


if __name__ == "__main__":
    main()
