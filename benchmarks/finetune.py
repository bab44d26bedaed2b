"""Fine-tuning vs training from scratch (issue 12): KID and FID on 100-shot Obama at 32 px after the same budget.

    .venv/bin/python benchmarks/finetune.py --data ../shared/data/100-shot-obama --outdir studies/finetune \
        [--source-kimg 16] [--kimg 8] [--eval-every 4] [--num-gen 1000] [--seeds 0] [--jobs 1]

1. The source network: ``fakeclr train --preset lfw-demo`` (FakeCLR, ADA-linear) on the embedded LFW faces
   (32 px grey) for ``--source-kimg``.
2. A study (``fakeclr study``, so it is resumable and evaluated like every other comparison) on the target data at
   the ``cpu32`` scale, grey (``--channels 1``, as the source): ``scratch``, ``finetune`` (``--init SOURCE``) and
   ``finetune-freezed4`` (``--init SOURCE --freeze-d 4``, the 32 px block of D fixed), all with the same method,
   options and budget.

Prints FID and KID of each run at every evaluation point side by side (and the study's files say the rest). The
same command again continues where it stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from fakeclr.tools.generate import parse_seeds
from fakeclr.tools.study import Study, plan_study, run_study, snapshots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="target data set (folder or zip)")
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--source-kimg", type=float, default=16)
    ap.add_argument("--kimg", type=float, default=8)
    ap.add_argument("--eval-every", type=float, default=4)
    ap.add_argument("--num-gen", type=int, default=1000)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.outdir)

    source_dir = out / "source-lfw"
    done = [p for k, p in snapshots(source_dir) if k >= args.source_kimg - 1e-6] if source_dir.is_dir() else []
    if not done:                         # (re)start or continue the source run
        cmd = [sys.executable, "-m", "fakeclr", "train", "--preset", "lfw-demo", "--data", "lfw", "--outdir",
               str(source_dir), "--kimg", f"{args.source_kimg:g}", "--snap", "4", "--no-tensorboard"]
        print("source:", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        done = [p for k, p in snapshots(source_dir) if k >= args.source_kimg - 1e-6]
    net = done[0]
    common = {"channels": 1}
    study = Study("finetune", "fine-tuning from an LFW network vs training from scratch", {
        "scratch": dict(common),
        "finetune": {**common, "init": str(net.resolve())},
        "finetune-freezed4": {**common, "init": str(net.resolve()), "freeze-d": 4},
    }, subject="finetune")
    jobs = plan_study(study, [args.data], out, "cpu32", parse_seeds(args.seeds), args.kimg, args.num_gen,
                      args.eval_every)
    record = run_study(study, jobs, out, args.jobs)

    rows = {}
    for run in record["runs"]:
        for point in run.get("curve", []):
            for key, value in point.items():
                if key != "kimg":
                    rows.setdefault(f"{run['name']}-seed{run['seed']}", {})[f"{key}@{point['kimg']:g}"] = value
    keys = sorted({k for r in rows.values() for k in r}, key=lambda k: (k.split("@")[0], float(k.split("@")[1])))
    print(f"\n{'run':<28}" + "".join(f"{k:>18}" for k in keys))
    for name, metrics in rows.items():
        print(f"{name:<28}" + "".join(f"{metrics.get(k, float('nan')):>18.4g}" for k in keys))
    print("\n" + "\n".join(c["text"] for c in record["claims"]))
    return 0 if all(r["status"] == "done" for r in record["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
