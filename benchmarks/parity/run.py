"""Parity with the anchors: StyleGAN2-ADA's, InsGen's and the released FakeCLR's own training loops beside
fakeclr's, on the same weights, batches and random draws, compared after every phase (docs/parity.md).

    .venv/bin/python benchmarks/parity/run.py --stylegan2-ada ../anchors/stylegan2-ada-pytorch \\
        --insgen ../anchors/insgen --fakeclr ../anchors/FakeCLR --biggan ../anchors/data-efficient-gans \\
        [--anchor-python PY] [--cases ada,insgen,...] [--write-golden] [--speed]

Each anchor is a ``git clone`` at the commit of ``anchors.py`` (checked file by file); it runs in a subprocess with
``--anchor-python`` (default: this interpreter; it needs torch, numpy, scipy, pillow, click, requests and psutil,
which StyleGAN2-ADA's modules import). Prints, per case, one row per quantity: the largest absolute and relative
difference over all phases and iterations, and the first (iteration, phase) where it exceeds the tolerance.
``--write-golden`` keeps the anchors' traces as numbers in tests/assets/parity_golden.json (tests/test_parity.py):
the cases run replace theirs, the others stay as they were.
``--speed`` times both loops instead (one thread, rounds interleaved): sec/kimg and the ratio fakeclr / anchor.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import anchors  # noqa: E402
import cases  # noqa: E402
import fakeclr_side  # noqa: E402
from traces import GROUP_TOLERANCE, LOSS_TOLERANCE, compare, golden_of  # noqa: E402

GOLDEN = HERE.parents[1] / "tests" / "assets" / "parity_golden.json"


def run_anchor(case: cases.Case, checkout: Path, python: str, work: Path, run, time_warmup: int | None = None):
    """The anchor's records for ``case`` (or its sec/kimg with ``time_warmup``), starting from ``run``'s state."""
    anchor_dir = work / case.anchor
    if not anchor_dir.exists():
        anchors.prepare(case.anchor, checkout, work)
    images, labels = cases.reals(run.cfg.data.resolution)
    inputs = {"state": fakeclr_side.initial_state(run), "images": torch.from_numpy(images),
              "labels": torch.from_numpy(labels), "batches": cases.batch_indices(case), "seed_base": cases.SEED_BASE}
    tag = case.name + ("-time" if time_warmup is not None else "")
    out_dir = work / f"out-{tag}"
    out_dir.mkdir(exist_ok=True)
    torch.save(inputs, out_dir / "inputs.pt")
    spec = cases.anchor_spec(case, run.cfg, run.c_dim, run.D.feature_channels)
    (out_dir / "spec.json").write_text(json.dumps(spec, indent=1))
    out = out_dir / ("time.json" if time_warmup is not None else "trace.pt")
    cmd = [python, str(HERE / "anchor_side.py"), str(anchor_dir), str(out_dir / "spec.json"),
           str(out_dir / "inputs.pt"), str(out)]
    if time_warmup is not None:
        cmd += ["--time", str(time_warmup)]
    with open(out_dir / "anchor.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PARITY_THREADS": "1"})
    if proc.returncode != 0:
        tail = (out_dir / "anchor.log").read_text().splitlines()[-15:]
        raise SystemExit(f"The {case.anchor} anchor failed on case {case.name}; its log ({out_dir / 'anchor.log'}) "
                         "ends:\n" + "\n".join(tail))
    if time_warmup is not None:
        return json.loads(out.read_text())["sec_per_kimg"]
    return torch.load(out, weights_only=True)


def parity(args, work: Path) -> int:
    golden, failed = {}, []
    for name in args.cases:
        case = cases.CASES[name]
        run = fakeclr_side.build(case, work / f"fakeclr-{name}")
        anchor = run_anchor(case, args.checkouts[case.anchor], args.anchor_python, work, run)
        ours = fakeclr_side.train(run, case, gen_c=anchor["gen_c"] or None)   # BigGAN: both draw their own
        rows = compare(anchor["records"], ours)
        print(f"\n## {name}: fakeclr vs {anchors.ANCHORS[case.anchor][0]} ({case.description}; "
              f"{case.iterations} iterations)\n")
        print("| quantity | max abs diff | max rel diff | tolerance (rel) | first beyond |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['quantity']} | {r['abs']:.2e} | {r['rel']:.2e} | {r['tol']:.0e} | {r['first'] or '-'} |")
            if r["first"]:
                failed.append(f"{name}: {r['quantity']} at {r['first']}")
        golden[name] = golden_of(case, anchor)
    if args.write_golden:
        kept = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        kept = {name: g for name, g in kept.items() if name in cases.CASES}
        GOLDEN.write_text(json.dumps({**kept, **golden}, indent=1, sort_keys=True) + "\n")
        print(f"\nwrote {', '.join(golden)} to {GOLDEN}")
    print("\nall quantities within tolerance" if not failed else "\nbeyond tolerance:\n  " + "\n  ".join(failed))
    return 1 if failed else 0


def speed(args, work: Path) -> int:
    """sec/kimg of the anchor's loop and fakeclr's on the same configuration, one thread, rounds interleaved."""
    torch.set_num_threads(1)
    sizes = {"lfw-demo": dict(res=32, base=1024, cmax=64, z=64, maps=2),
             "64px-128ch": dict(res=64, base=8192, cmax=128, z=128, maps=2)}
    print("| size | method | anchor | anchor sec/kimg | fakeclr sec/kimg | fakeclr / anchor |")
    print("|---|---|---|---|---|---|")
    for size, s in sizes.items():
        for name in ("ada", "insgen", "fakeclr-released"):
            base = cases.CASES[name]
            case = cases.Case(f"{name}-{size}", base.anchor, base.method, {
                **base.overrides, "network.channel_base": s["base"], "network.channel_max": s["cmax"],
                "network.z_dim": s["z"], "network.w_dim": s["z"], "network.mapping_layers": s["maps"]},
                iterations=args.speed_iterations)
            best = {"anchor": math.inf, "fakeclr": math.inf}
            for _ in range(args.rounds):
                run = fakeclr_side.build(case, work / f"speed-{case.name}", resolution=s["res"])
                t = run_anchor(case, args.checkouts[case.anchor], args.anchor_python, work, run, time_warmup=2)
                best["anchor"] = min(best["anchor"], t)
                run = fakeclr_side.build(case, work / f"speed-{case.name}", resolution=s["res"])
                best["fakeclr"] = min(best["fakeclr"], fakeclr_side.train(run, case, record=False, warmup=2))
            print(f"| {size} | {name} | {case.anchor} | {best['anchor']:.2f} | {best['fakeclr']:.2f} | "
                  f"{best['fakeclr'] / best['anchor']:.2f} |", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stylegan2-ada", help="checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--insgen", help="checkout of genforce/insgen")
    ap.add_argument("--fakeclr", help="checkout of iceli1007/FakeCLR")
    ap.add_argument("--biggan", help="checkout of mit-han-lab/data-efficient-gans (DiffAugment-biggan-cifar)")
    ap.add_argument("--anchor-python", default=sys.executable, help="interpreter for the anchors")
    ap.add_argument("--cases", default=",".join(cases.CASES), help="comma-separated, of: " + ", ".join(cases.CASES))
    ap.add_argument("--write-golden", action="store_true", help=f"write the anchors' traces to {GOLDEN.name}")
    ap.add_argument("--speed", action="store_true", help="time both loops instead of comparing them")
    ap.add_argument("--rounds", type=int, default=2, help="--speed: interleaved rounds (best is kept)")
    ap.add_argument("--speed-iterations", type=int, default=10, help="--speed: iterations per round (2 warm-up)")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in cases.CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(cases.CASES)}")
    args.checkouts = {"stylegan2-ada": args.stylegan2_ada, "insgen": args.insgen, "fakeclr": args.fakeclr,
                      "biggan": args.biggan}
    needed = {cases.CASES[c].anchor for c in args.cases} if not args.speed else set(args.checkouts) - {"biggan"}
    missing = [f"--{a}" for a in sorted(needed) if not args.checkouts[a]]
    if missing:
        ap.error(f"{', '.join(missing)} missing: give the path of a clone of each anchor the cases use")
    torch.set_num_threads(1)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        return speed(args, Path(args.keep)) if args.speed else parity(args, Path(args.keep))
    with tempfile.TemporaryDirectory(prefix="fakeclr-parity-") as tmp:
        return speed(args, Path(tmp)) if args.speed else parity(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
