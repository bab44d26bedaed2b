"""Training cost of each method (FakeCLR Table 1): sec/kimg and the ratio to ADA, side by side, one process.

    .venv/bin/python benchmarks/method_cost.py [--preset lfw-demo] [--kimg 0.5] [--rounds 2] [--device cpu]
        [--methods ada,instance-real,...] [--variants] [--fp16 preset|off|preset,off] [--json FILE]
        [--data DATA] [--snap KIMG] [--p P]

Every method trains the same number of images on the same preset and data; the rounds are interleaved
(ada, insgen, fakeclr, ..., ada, insgen, ...) so that a drift in machine speed hits all methods alike, and the
best round of each method is reported. ``--variants`` adds FakeCLR with ``--no-reuse-forward`` (the released
code's second D forward for the queries) to show what reusing the adversarial forward saves. ``--fp16`` runs
each method with the preset's mixed precision (``preset``: e.g. 4 fp16 resolutions at fewshot256, fp16 on CUDA
only) and/or fp32 (``off``); the ratio to ADA is taken within each precision. Peak memory is the CUDA allocator's
peak on a GPU, the process's peak RSS on the CPU. ``--json`` also writes the table as JSON.
The paper (Table 1, V100): InsGen 1.90x ADA, FakeCLR 1.73x ADA.

To measure what a whole run costs rather than the bare iterations: ``--data`` trains on that data set (e.g. an
RGB one; default the grey LFW faces), ``--snap`` writes snapshots at that interval inside the timed part, and
``--p`` holds the augmentation probability at that value (a fixed p, e.g. the 0.3 that ADA-linear averages over
a run to 0.6). The table then shows where each method's time goes (``Timing/<part>`` of fakeclr.train.monitor).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from fakeclr.config import METHODS, method_config, preset_config
from fakeclr.train.loop import train


PARTS = ("data", "Gmain", "Greg", "Dmain", "Dreg", "ema_augment", "snapshot")


def run_once(preset: str, method: str, kimg: float, device: str, reuse: bool = True,
             fp16: str = "preset", data: str = "lfw", snap: float | None = None,
             p: float | None = None) -> tuple[float, float, dict[str, float]]:
    """Seconds per kimg of one training run, after two untimed warm-up iterations, the peak memory (MB), and
    the seconds per kimg of each part of an iteration."""
    import json
    import resource
    cfg = preset_config(preset)
    cfg.data.source = data
    if p is not None:
        cfg.augment.kind, cfg.augment.p = "fixed", p
    cfg.contrastive = method_config(method)
    cfg.contrastive.reuse_forward = reuse
    if fp16 == "off":
        cfg.network.num_fp16_res = 0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    warm = cfg.batch * 2 / 1000
    cfg.kimg = warm + kimg
    cfg.tick_kimg = cfg.snapshot_kimg = cfg.kimg
    if snap is not None:
        cfg.snapshot_kimg = snap
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
        last = json.loads(open(os.path.join(tmp, "stats.jsonl")).read().splitlines()[-1])
        parts = {k: last.get(f"Timing/{k}", 0.0) for k in PARTS}
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return seconds / ((out["cur_nimg"] - round(warm * 1000)) / 1000), peak, parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lfw-demo")
    ap.add_argument("--kimg", type=float, default=0.5, help="timed kimg per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS.names))
    ap.add_argument("--variants", action="store_true", help="also FakeCLR without forward reuse")
    ap.add_argument("--fp16", default="preset", help="precision(s): preset (the preset's num_fp16_res), off (fp32)")
    ap.add_argument("--json", help="also write the results here as JSON")
    ap.add_argument("--data", default="lfw", help="training data (default: the embedded grey LFW faces)")
    ap.add_argument("--snap", type=float, help="kimg between snapshots in the timed part (default: one, at the end)")
    ap.add_argument("--p", type=float, help="a fixed augmentation probability instead of the preset's schedule")
    args = ap.parse_args()
    precisions = args.fp16.split(",")
    runs = [(m, True, f) for f in precisions for m in args.methods.split(",")]
    if args.variants:
        runs += [("fakeclr", False, f) for f in precisions]
    best: dict[tuple[str, bool, str], tuple[float, float]] = {}
    parts: dict[tuple[str, bool, str], dict[str, float]] = {}
    for r in range(args.rounds):
        for method, reuse, fp16 in runs:
            s, peak, part = run_once(args.preset, method, args.kimg, args.device, reuse, fp16, args.data,
                                     args.snap, args.p)
            old = best.get((method, reuse, fp16), (float("inf"), 0.0))
            if s < old[0]:
                parts[(method, reuse, fp16)] = part
            best[(method, reuse, fp16)] = (min(old[0], s), max(old[1], peak))
            print(f"round {r + 1}: {method}{'' if reuse else ' (no reuse)'} fp16={fp16} {s:.2f} sec/kimg, "
                  f"{peak:.0f} MB", file=sys.stderr)
    n_fp16 = preset_config(args.preset).network.num_fp16_res
    print(f"preset {args.preset}, data {args.data}, device {args.device}, {torch.get_num_threads()} threads, "
          f"{args.kimg:g} kimg timed per run, best of {args.rounds} interleaved rounds; fp16=preset is {n_fp16} fp16 "
          f"resolution(s){'' if args.device.startswith('cuda') else ' (fp32 on CPU)'}; "
          f"snapshots {'every ' + format(args.snap, 'g') + ' kimg' if args.snap else 'at the end'}; "
          f"p {'fixed at ' + format(args.p, 'g') if args.p is not None else 'as the preset schedules it'}")
    peak_name = "peak GPU MB" if args.device.startswith("cuda") else "peak RSS MB"
    print(f"{'method':<34} {'fp16':>7} {'sec/kimg':>9} {'x ADA':>7} {peak_name:>12}")
    rows = []
    for (method, reuse, fp16), (s, peak) in best.items():
        base = best.get(("ada", True, fp16), (float("nan"),))[0]
        name = method + ("" if reuse else " (--no-reuse-forward)")
        print(f"{name:<34} {fp16:>7} {s:9.2f} {s / base:7.2f} {peak:12.0f}")
        rows.append({"method": method, "reuse_forward": reuse, "fp16": fp16, "num_fp16_res": n_fp16 if fp16 ==
                     "preset" else 0, "sec_per_kimg": s, "ratio_to_ada": s / base, "peak_mb": peak})
    print("\nwhere the time goes, sec/kimg (best round): " + ", ".join(PARTS))
    for (method, reuse, fp16), part in parts.items():
        name = method + ("" if reuse else " (--no-reuse-forward)")
        print(f"{name:<34} {fp16:>7} " + " ".join(f"{part[k]:8.2f}" for k in PARTS))
        next(r for r in rows if (r["method"], r["reuse_forward"], r["fp16"]) == (method, reuse, fp16))["parts"] = part
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "device": args.device, "kimg": args.kimg, "rounds": args.rounds,
                       "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
