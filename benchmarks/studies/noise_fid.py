"""FID1k of a table2 study's final G_ema with the metrics' random noise (the protocol) vs noise inputs off.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/noise_fid.py SEEDS [RUNS_DIR] [DATA] [--runs R,...]
        [--json OUT]

SEEDS e.g. ``2,0``; RUNS_DIR the study's data-set folder (default studies/table2/100-shot-obama), DATA the
training images (default ../shared/data/100-shot-obama), RUNS the study's run names (default
ada-linear,insgen,fakeclr). Prints one line per network with both FIDs (1000 generated images, metric seed 0,
the same images for both modes but the noise).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fakeclr.data import open_dataset
from fakeclr.metrics.features import dataset_features, detector_tag, generator_features
from fakeclr.metrics.fid import fid_from_features
from fakeclr.metrics.inputs import load_generator
from fakeclr.metrics.weights import load_inception


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("seeds")
    ap.add_argument("runs_dir", metavar="RUNS_DIR", nargs="?", default="studies/table2/100-shot-obama")
    ap.add_argument("data", nargs="?", default="../shared/data/100-shot-obama")
    ap.add_argument("--kimg", default="000040")
    ap.add_argument("--runs", default="ada-linear,insgen,fakeclr")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_inception("cpu")
    data = open_dataset(args.data, resolution=32)
    real = dataset_features(net.features, data.images, "cpu", name=data.source, detector=detector_tag(net),
                            progress=False)
    out = {}
    for seed in args.seeds.split(","):
        for method in args.runs.split(","):
            G = load_generator(Path(args.runs_dir) / f"{method}-seed{seed}" / f"network-snapshot-{args.kimg}.safetensors")
            row = {}
            for mode in ("random", "none"):
                feats = generator_features(net.features, G, 1000, 0, "cpu", batch=32, dataset=data,
                                           G_kwargs={"noise_mode": mode})
                row[mode] = fid_from_features(real, feats)
            out[f"{method}-seed{seed}"] = row
            print(method, seed, {k: round(v, 1) for k, v in row.items()}, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
