"""Cost of the metric passes on this machine: Inception and LPIPS images/s, and fid5k_full on a 100-image set.

    python benchmarks/metrics_speed.py                 # ~5-10 min on 2 CPU cores (fid5k_full timed on 1000
                                                       # generated images and extrapolated to 5000)
    python benchmarks/metrics_speed.py --num-gen 5000  # the real fid5k_full (about 4x longer)
    python benchmarks/metrics_speed.py --quick         # a minute: fewer images everywhere

The 100-image set is ../shared/data/100-shot-obama (256 px) when present, else the embedded LFW faces. The
generator is a randomly initialised StyleGAN2 at the set's resolution (its cost is printed apart), or
``--network`` for a real snapshot. Real-image features are not taken from the cache, so their cost is included.
Each pass is timed with torch's default thread count and with one thread (on a busy shared machine one thread
is often faster: two OpenMP threads competing with other processes stall each other).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fakeclr.data import open_dataset
from fakeclr.metrics import load_inception, load_lpips
from fakeclr.metrics.features import Progress, dataset_features, detector_tag, generator_features
from fakeclr.metrics.fid import fid_from_features
from fakeclr.nn import Generator

ROOT = Path(__file__).resolve().parents[1]
OBAMA = ROOT.parent / "shared" / "data" / "100-shot-obama"


def rate(fn, n: int, repeats: int = 1) -> float:
    """Items per second of ``fn()`` processing ``n`` items (best of ``repeats`` after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


@torch.no_grad()
def passes(batch: int, size: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
    x = imgs.float() / 127.5 - 1
    inc, vgg, alex = load_inception(), load_lpips("vgg"), load_lpips("alex")
    return {
        "inception": rate(lambda: inc.features(imgs), batch),
        "lpips-vgg": rate(lambda: vgg(x, x.flip(0)), batch),
        "lpips-alex": rate(lambda: alex(x, x.flip(0)), batch),
    }


def fid_timing(num_gen: int, network: str | None, threads: int) -> None:
    torch.set_num_threads(threads)
    if OBAMA.is_dir():
        data = open_dataset(str(OBAMA))
    else:
        data = open_dataset("lfw")
    print(f"data: {data.source}, {len(data.images)} images at {data.resolution} px, {data.num_channels} channel(s)")
    if network:
        from fakeclr.metrics.inputs import load_generator
        G = load_generator(network)
    else:
        torch.manual_seed(0)
        G = Generator(z_dim=512, w_dim=512, img_resolution=data.resolution, img_channels=data.num_channels,
                      mapping_layers=2, channel_base=1024, channel_max=64).eval()
    inc = load_inception()
    t0 = time.perf_counter()
    real = dataset_features(inc.features, data.images, "cpu", "bench", detector_tag(inc), cache=False, progress=False)
    t1 = time.perf_counter()
    from fakeclr.metrics.features import generator_images
    n_probe = min(64, num_gen)
    for _ in generator_images(G, n_probe, 0, "cpu", batch=32):
        pass
    t_gen = (time.perf_counter() - t1) / n_probe
    t2 = time.perf_counter()
    gen = generator_features(inc.features, G, num_gen, 0, "cpu", batch=32, dataset=data,
                             progress=Progress("generated", num_gen, True, 60))
    t3 = time.perf_counter()
    fid = fid_from_features(real, gen)
    t4 = time.perf_counter()
    per_gen = (t3 - t2) / num_gen
    print(f"real features: {t1 - t0:.1f} s ({len(real) / (t1 - t0):.1f} img/s)")
    print(f"generated: {num_gen} images in {t3 - t2:.1f} s ({1 / per_gen:.1f} img/s incl. generation; "
          f"generation alone {t_gen * 1e3:.0f} ms/img)")
    print(f"FID formula: {t4 - t3:.2f} s; FID = {fid:.2f} (meaningless for a random generator)")
    total = (t1 - t0) + (t3 - t2) + (t4 - t3)
    print(f"FID, {num_gen} generated vs {len(real)} real images, measured: {total:.0f} s")
    if num_gen != 5000:
        est = (t1 - t0) + per_gen * 5000 + (t4 - t3)
        print(f"fid5k_full extrapolated to 5000 generated images: {est:.0f} s ({est / 60:.1f} min)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-gen", type=int, default=1000, help="generated images for the FID timing (default 1000)")
    p.add_argument("--batch", type=int, default=16, help="images per pass in the throughput test (default 16)")
    p.add_argument("--size", type=int, default=256, help="image side for the throughput test (default 256)")
    p.add_argument("--network", help="a network snapshot instead of the random generator")
    p.add_argument("--quick", action="store_true", help="small counts: a rough figure in about a minute")
    args = p.parse_args()
    if args.quick:
        args.num_gen, args.batch = 100, 8
    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, default threads {default_threads}")
    inception_rate = {}
    for threads in sorted({default_threads, 1}, reverse=True):
        r = passes(args.batch, args.size, threads)
        inception_rate[threads] = r["inception"]
        print(f"threads={threads}: Inception {r['inception']:.1f} img/s, LPIPS-VGG16 {r['lpips-vgg']:.1f} pairs/s, "
              f"LPIPS-AlexNet {r['lpips-alex']:.1f} pairs/s ({args.size} px, batch {args.batch})")
    best = max(inception_rate, key=inception_rate.get)
    print(f"FID timing with threads={best}:")
    fid_timing(args.num_gen, args.network, best)


if __name__ == "__main__":
    main()
