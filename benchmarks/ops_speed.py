"""Downsampling in upfirdn2d: the strided convolution against filtering at full rate and keeping every second
sample (the previous implementation), side by side in one process, for the shapes training uses.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ops_speed.py [--repeats 50]

Rows: the ADA warp's 2x downsampling (sym6, 12 taps) of a batch of 16 RGB images at the 2x-upsampled, padded size
(32 px training: 86 px; 256 px: 534 px, batch 4), and D's 2x downsampling (4 taps) of 32- and 128-channel
feature maps. Both paths give identical outputs (tests/test_nn.py); the columns are milliseconds per call.
"""

from __future__ import annotations

import argparse
import time

import torch

from fakeclr.nn.ops import setup_filter, upfirdn2d

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564,
        0.04472490177066578, 0.0017677669529663687, -0.007800708325034148]


def full_rate(x, f, padding, flip):
    """The previous path: filtering at full rate (upfirdn2d with down=1), then every second sample."""
    return upfirdn2d(x, f, padding=padding, flip_filter=flip)[:, :, ::2, ::2]


def ms(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    cases = [("ADA warp, 32 px", (16, 3, 86, 86), SYM6, -6, True),
             ("ADA warp, 256 px", (4, 3, 534, 534), SYM6, -6, True),
             ("D block, 32 ch at 32 px", (16, 32, 34, 34), [1, 3, 3, 1], 0, False),
             ("D block, 128 ch at 128 px", (8, 128, 130, 130), [1, 3, 3, 1], 0, False)]
    print(f"{torch.get_num_threads()} thread(s), {args.repeats} calls each")
    print(f"{'case':<28} {'full rate (ms)':>15} {'strided (ms)':>13} {'ratio':>6}")
    for name, shape, taps, pad, flip in cases:
        x = torch.randn(*shape)
        f = setup_filter(taps)
        new = upfirdn2d(x, f, down=2, padding=pad, flip_filter=flip)
        assert torch.equal(new, full_rate(x, f, pad, flip)), name
        a = ms(lambda: full_rate(x, f, pad, flip), args.repeats)
        b = ms(lambda: upfirdn2d(x, f, down=2, padding=pad, flip_filter=flip), args.repeats)
        print(f"{name:<28} {a:15.2f} {b:13.2f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
