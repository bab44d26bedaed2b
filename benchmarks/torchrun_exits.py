"""How often a complete two-process torchrun training exits non-zero (issue 27: a rank used to abort in teardown,
"terminate called without an active exception", in about 1 of 10 runs on a loaded 2-core machine).

    python benchmarks/torchrun_exits.py [--runs 30] [--method ada]

Runs ``torchrun --standalone --nproc_per_node 2 -m fakeclr train --preset tiny`` (gloo, CPU, 8 iterations, two
snapshots) ``--runs`` times, each into a fresh folder, and prints one line per run and the count of non-zero exits,
of teardown aborts and of runs that did not write their last state.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ABORT = "terminate called without an active exception"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--method", default="ada")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    failed = aborted = incomplete = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                   "fakeclr", "train", "--preset", "tiny", "--data", "lfw", "--method", args.method, "--kimg",
                   "0.064", "--snap", "0.032", "--tick", "0.032", "--no-tensorboard", "--outdir", str(out)]
            t0 = time.time()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            text = proc.stdout + proc.stderr
            complete = (out / "training-state-000000.064.pt").is_file()
            failed += proc.returncode != 0
            aborted += ABORT in text
            incomplete += not complete
            print(f"run {i + 1:2d}: exit {proc.returncode}{'  (teardown abort)' if ABORT in text else ''}"
                  f"{'' if complete else '  (no final state)'}  {time.time() - t0:.1f}s", flush=True)
    print(f"{args.runs} runs: {failed} non-zero exits, {aborted} teardown aborts, {incomplete} without the final state")


if __name__ == "__main__":
    main()
