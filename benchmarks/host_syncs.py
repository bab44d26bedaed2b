"""How often one training iteration reads a tensor's value on the host (each read waits for the device on a GPU).

    python benchmarks/host_syncs.py [--iterations 16] [--methods ada,insgen,fakeclr] [--sites]

Builds the ``tiny`` preset on the embedded LFW faces for each method, runs two iterations to warm up, then counts
the reads (``aten._local_scalar_dense``, ``tolist``/``numpy``, device-to-host copies) during ``--iterations``
iterations between two ticks (16 covers every lazy-regularisation phase of the preset), and prints the count per
iteration; ``--sites`` lists the source lines that cause them. The tick itself (its one all-reduce and read of the
statistics) is not an iteration and is not counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakeclr.config import method_config, preset_config  # noqa: E402
from fakeclr.train import loop  # noqa: E402
from fakeclr.train.host_sync import HostSyncCounter  # noqa: E402
from fakeclr.train.monitor import Monitor  # noqa: E402


def count(method: str, iterations: int, aug: str = "ada", warmup: int = 2) -> HostSyncCounter:
    """The host reads of ``iterations`` iterations of ``method`` after ``warmup`` ones (tiny preset, LFW)."""
    cfg = preset_config("tiny")
    cfg.data.source, cfg.augment.kind = "lfw", aug
    cfg.contrastive = method_config(method)
    cfg.kimg = 100.0                             # far from the end: no schedule reaches its last step
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = assembly.build_run(cfg, Path(tmp), torch.device("cpu"), fresh=True, source=None)
        assembly.restore_run(run, None, None)
        monitor = Monitor(None, cfg.kimg, tensorboard=False)
        for _ in range(warmup):
            loop.train_step(run, monitor)
        with HostSyncCounter() as counter:
            for _ in range(iterations):
                loop.train_step(run, monitor)
        run.feed.close()
    return counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=16)
    ap.add_argument("--methods", default="ada,insgen,fakeclr")
    ap.add_argument("--aug", default="ada")
    ap.add_argument("--sites", action="store_true", help="list the source lines that read values")
    args = ap.parse_args()
    print(f"host reads per iteration (tiny preset, --aug {args.aug}, {args.iterations} iterations after 2)")
    for method in args.methods.split(","):
        counter = count(method, args.iterations, args.aug)
        print(f"{method:14s} {counter.count / args.iterations:6.2f}")
        if args.sites:
            for site, n in counter.by_site.most_common():
                print(f"    {n / args.iterations:6.2f}  {site}")


if __name__ == "__main__":
    main()
