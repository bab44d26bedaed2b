"""The FIR filtering of upfirdn2d against its previous implementations, side by side in one process, for the
shapes training uses.

1. Downsampling: the strided convolution against filtering at full rate and keeping every second sample.
2. The backward pass: the per-channel correlation's own backward (the same correlation of the padded gradient
   with the flipped taps) against autograd through ``F.conv2d(groups=C)``, one backward and R1's double one.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ops_speed.py [--repeats 50]

Rows: the ADA warp's 2x downsampling (sym6, 12 taps) of a batch of 16 RGB images at the 2x-upsampled, padded size
(32 px training: 86 px; 256 px: 534 px, batch 4), and D's 2x downsampling (4 taps) of 32- and 128-channel
feature maps. Both paths give identical outputs (tests/test_nn.py); the columns are milliseconds per call.
Table 2: the stride-1 filter passes of the ADA warp's 2x upsampling (a 12-tap pass over the zero-inserted image)
for grey and RGB batches, and a 4x4 filter over G/D feature maps; forward + backward, and forward + the double
backward that R1 takes through the augmentation. Gradients agree to float rounding (tests/test_nn.py).
"""

from __future__ import annotations

import argparse
import time

import torch

import torch.nn.functional as F

from fakeclr.nn.ops import _DepthwiseCorrelation, setup_filter, upfirdn2d

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564,
        0.04472490177066578, 0.0017677669529663687, -0.007800708325034148]


def full_rate(x, f, padding, flip):
    """The previous path: filtering at full rate (upfirdn2d with down=1), then every second sample."""
    return upfirdn2d(x, f, padding=padding, flip_filter=flip)[:, :, ::2, ::2]


def conv_autograd(x, w):
    """The previous path: ``F.conv2d`` with ``groups=C``, differentiated by autograd."""
    return F.conv2d(x, w[None, None].expand(x.shape[1], 1, *w.shape), groups=x.shape[1])


def backward_once(fn, x, w):
    fn(x, w).square().sum().backward()


def backward_twice(fn, x, w):
    (g,) = torch.autograd.grad(fn(x, w).square().sum(), x, create_graph=True)
    g.square().sum().backward()


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

    taps = setup_filter(SYM6)
    back = [("ADA up pass, 32 px, grey", (16, 1, 97, 97), taps[None, :]),
            ("ADA up pass, 32 px, RGB", (16, 3, 97, 97), taps[None, :]),
            ("ADA up pass, 256 px, RGB", (4, 3, 545, 545), taps[:, None]),
            ("4x4 filter, 32 ch at 32 px", (16, 32, 35, 35), setup_filter([1, 3, 3, 1])),
            ("4x4 filter, 128 ch at 128 px", (8, 128, 131, 131), setup_filter([1, 3, 3, 1]))]
    print(f"\n{'case':<30} {'conv autograd (ms)':>19} {'own backward (ms)':>18} {'ratio':>6}"
          f" {'double, conv':>13} {'double, own':>12} {'ratio':>6}")
    for name, shape, w in back:
        x = torch.randn(*shape, requires_grad=True)
        row = []
        for step in (backward_once, backward_twice):
            a = ms(lambda: step(conv_autograd, x, w), max(args.repeats // 5, 2))
            b = ms(lambda: step(_DepthwiseCorrelation.apply, x, w), max(args.repeats // 5, 2))
            row += [a, b, a / b]
        print(f"{name:<30} {row[0]:19.2f} {row[1]:18.2f} {row[2]:6.2f} {row[3]:13.2f} {row[4]:12.2f} {row[5]:6.2f}")


if __name__ == "__main__":
    main()
