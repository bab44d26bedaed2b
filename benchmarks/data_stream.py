"""Peak memory and speed of the training data feed: decoded in memory vs streamed (fakeclr.data.stream).

Writes a zip of N generated 64 px RGB images (smooth random patterns, so the archive stays small) for each N in
--counts, then, in a fresh process per (mode, N): opens the data set as training does, draws --batches batches
of --batch images through fakeclr.train.feed.RealFeed, and prints the seconds to open, images/s of the feed and
the peak resident memory of the training process (and of its DataLoader workers, in streaming mode). Each
(mode, N) runs --repeats times in fresh processes; the table shows the medians (peak RSS varies by tens of MiB
from one process to the next).

    python benchmarks/data_stream.py                      # 5,000 and 50,000 images
    python benchmarks/data_stream.py --counts 2000 --batches 20

The streaming figure that matters: the training process's peak RSS should not grow with N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np


def make_zip(path: Path, n: int, res: int = 64, seed: int = 0) -> Path:
    """``n`` PNGs of ``res`` px (8x8 random colours upsampled bicubically, plus a little noise)."""
    from PIL import Image
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            im = np.asarray(small.resize((res, res), Image.Resampling.BICUBIC), dtype=np.int16)
            im = np.clip(im + rng.integers(-4, 5, im.shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG", compress_level=1)
            zf.writestr(f"{i // 1000:05d}/img{i:08d}.png", buf.getvalue())
    tmp.rename(path)
    return path


def measure(path: str, stream: bool, batch: int, batches: int, workers: int) -> dict:
    """One mode in this process: open, feed ``batches`` batches, report."""
    import torch
    from fakeclr.data import open_dataset
    from fakeclr.train.feed import RealFeed, RealSampler
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = open_dataset(path, stream=stream, mirror=True)
    opened = time.perf_counter() - t0
    feed = RealFeed(data, RealSampler(len(data), seed=0), batch, "cpu", workers=workers)
    feed.next()                                             # start-up (workers) not counted
    t0 = time.perf_counter()
    for _ in range(batches):
        images, _ = feed.next()
        images.float().mean()                               # touch the pixels, as training does
    secs = time.perf_counter() - t0
    now = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
    feed.close()
    kb = lambda who: resource.getrusage(who).ru_maxrss / 1024   # noqa: E731  Linux: KiB -> MiB
    return {"mode": "stream" if stream else "memory", "images": data.num_raw, "open_s": round(opened, 2),
            "images_per_s": round(batch * batches / secs, 1), "peak_rss_mib": round(kb(resource.RUSAGE_SELF), 1),
            "rss_after_mib": round(now, 1),
            "workers_peak_rss_mib": round(kb(resource.RUSAGE_CHILDREN), 1) if stream and workers else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="5000,50000", help="image counts of the generated archives")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/fakeclr-bench-stream", help="where the archives are written")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--one", nargs=2, metavar=("ZIP", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1] == "stream", args.batch, args.batches, args.workers)))
        return
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        t0 = time.perf_counter()
        path = make_zip(out / f"rand64-{n}.zip", n)
        print(f"# {path}: {path.stat().st_size / 2**20:.0f} MiB ({time.perf_counter() - t0:.0f} s to have it)",
              flush=True)
        for mode in ("memory", "stream"):
            cmd = [sys.executable, __file__, "--one", str(path), mode, "--batch", str(args.batch), "--batches",
                   str(args.batches), "--workers", str(args.workers)]
            reps = []
            for _ in range(args.repeats):
                res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
                if res.returncode != 0:
                    print(res.stderr, file=sys.stderr)
                    raise SystemExit(f"{mode} on {n} images failed")
                reps.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(reps[-1]), flush=True)
            rows.append({k: (statistics.median(r[k] for r in reps) if isinstance(v, float) else v)
                         for k, v in reps[0].items()})
    print("\n| images | mode | open (s) | feed images/s | training process: peak RSS / RSS after feeding (MiB) "
          "| peak RSS of a worker (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        w = r["workers_peak_rss_mib"]
        print(f"| {r['images']} | {r['mode']} | {r['open_s']} | {r['images_per_s']:.0f} | {r['peak_rss_mib']} / "
              f"{r['rss_after_mib']} | {w if w is not None else '-'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
