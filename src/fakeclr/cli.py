"""The ``fakeclr`` command: parse, build a config, call the library. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import AUGMENTATIONS, PRESETS, TrainConfig, preset_config, resolve_auto, validate
from .errors import UserError


# ---------------------------------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a GAN (StyleGAN2 + data-efficient augmentation)",
                       description="Train a StyleGAN2 on a folder, a zip archive or the embedded LFW faces. "
                                   "A run directory that holds a training state is continued automatically.")
    p.add_argument("--data", help="image folder, zip archive, or 'lfw' (the embedded default: 100 LFW faces)")
    p.add_argument("--preset", default="lfw-demo", choices=list(PRESETS), help="named configuration (default: lfw-demo)")
    p.add_argument("--outdir", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--resume", help="training-state-*.pt file or run directory to continue from")
    p.add_argument("--kimg", type=float, help="training length in thousands of real images")
    p.add_argument("--batch", type=int, help="total batch size over all processes")
    p.add_argument("--aug", choices=AUGMENTATIONS, help="augmentation: ada (adaptive p), ada-linear, fixed (needs --p), "
                                                         "diffaugment, apa, none")
    p.add_argument("--p", type=float, help="augmentation probability for --aug fixed (initial p otherwise)")
    p.add_argument("--target", type=float, help="ADA/APA target of E[sign(D(real))]; ADA-linear's final p")
    p.add_argument("--augpipe", help="ADA pipeline preset: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc")
    p.add_argument("--diffaugment", help="DiffAugment policy, e.g. color,translation,cutout")
    p.add_argument("--gamma", type=float, help="R1 regularisation weight")
    p.add_argument("--pl-weight", type=float, help="path-length regularisation weight (0 disables)")
    p.add_argument("--lr", type=float, help="Adam learning rate of G and D")
    p.add_argument("--ema-kimg", type=float, help="half-life of G_ema in kimg")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None, help="add x-flipped copies of the data")
    p.add_argument("--resolution", type=int, help="training resolution (a power of two)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="image channels")
    p.add_argument("--subset", type=float, help="use a fixed subset: a count (>= 1) or a fraction (< 1)")
    p.add_argument("--cond", action="store_true", help="condition on the labels of dataset.json")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--snap", type=float, help="kimg between snapshots (sample grid + checkpoints)")
    p.add_argument("--tick", type=float, help="kimg between status lines")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    p.set_defaults(run=_run_train)


def build_train_config(args, world_size: int = 1) -> TrainConfig:
    """The :class:`TrainConfig` for ``fakeclr train`` arguments: the preset, then the flags on top."""
    cfg = preset_config(args.preset)
    d = cfg.data
    if args.data is not None:
        d.source = args.data
    for flag, obj, field in (("resolution", d, "resolution"), ("channels", d, "channels"), ("mirror", d, "mirror"),
                             ("subset", d, "subset"), ("seed", d, "subset_seed")):
        if getattr(args, flag) is not None:
            setattr(obj, field, getattr(args, flag))
    d.skip_bad = d.skip_bad or args.skip_bad
    d.use_labels = d.use_labels or args.cond
    if cfg.preset == "auto" or d.resolution is None or d.channels is None:
        from .data import open_dataset
        probe = open_dataset(d.source, resolution=d.resolution, channels=d.channels, subset=d.subset,
                             subset_seed=d.subset_seed, skip_bad=d.skip_bad, use_labels=d.use_labels)
        d.resolution, d.channels = probe.resolution, probe.num_channels
        if cfg.preset == "auto":
            resolve_auto(cfg, d.resolution, world_size)
    flags = {"kimg": (cfg, "kimg"), "batch": (cfg, "batch"), "seed": (cfg, "seed"), "snap": (cfg, "snapshot_kimg"),
             "tick": (cfg, "tick_kimg"), "ema_kimg": (cfg, "ema_kimg"), "gamma": (cfg.loss, "r1_gamma"),
             "pl_weight": (cfg.loss, "pl_weight"), "lr": (cfg.optim, "lr"), "aug": (cfg.augment, "kind"),
             "p": (cfg.augment, "p"), "target": (cfg.augment, "target"), "augpipe": (cfg.augment, "pipe"),
             "diffaugment": (cfg.augment, "diffaugment_policy")}
    for flag, (obj, field) in flags.items():
        if getattr(args, flag) is not None:
            setattr(obj, field, getattr(args, flag))
    if cfg.augment.kind == "fixed" and args.p is None:
        raise UserError("--aug fixed needs --p (the constant augmentation probability).")
    validate(cfg, world_size)
    return cfg


def _run_train(args) -> int:
    from . import dist
    from .train.loop import TrainingStopped, train
    cfg = build_train_config(args, dist.env_world_size())
    if args.dry_run:
        print(cfg.to_json())
        return 0
    device = args.device
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        last = train(cfg, args.outdir, resume=args.resume, device=device, tensorboard=not args.no_tensorboard)
    except TrainingStopped as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    if dist.rank() == 0:
        print(f"Done: {last['cur_nimg'] / 1000:g} kimg. Network: {last['network']}  State: {last['state']}  "
              f"Sample grids: {Path(args.outdir) / 'fakes*.png'}")
    return 0


# ---------------------------------------------------------------------------------------------------- generate
def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate images from a network snapshot")
    p.add_argument("--network", required=True, help="network-snapshot-*.safetensors")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", default=None, help="seeds, e.g. 0-7,10 (default: 0-15)")
    g.add_argument("--count", type=int, help="generate seeds 0..count-1")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (default 1)")
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    p.add_argument("--class", dest="class_idx", type=int, help="class index for a conditional network")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"), help="which generator (default G_ema)")
    p.add_argument("--outdir", help="write one seedNNNN.png per seed here")
    p.add_argument("--grid", help="write all images as one grid PNG here")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_generate)


def _run_generate(args) -> int:
    from .tools.generate import generate, parse_seeds, write_images
    from .train.checkpoint import load_networks
    if args.count is not None and args.count < 1:
        raise UserError("--count must be at least 1.")
    seeds = list(range(args.count)) if args.count is not None else parse_seeds(args.seeds or "0-15")
    if args.outdir is None and args.grid is None:
        raise UserError("Say where to write: --outdir DIR for one PNG per seed, or --grid FILE.png.")
    G = load_networks(args.network, (args.net,), device=args.device)[args.net]
    images = generate(G, seeds, args.trunc, args.noise_mode, args.class_idx, device=args.device)
    for path in write_images(images, seeds, args.outdir, args.grid):
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------------- dataset
def _add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="convert an image folder or zip into a training archive")
    p.add_argument("source", help="image folder or zip archive")
    p.add_argument("dest", help="output .zip archive")
    p.add_argument("--resolution", type=int, required=True, help="output resolution (a power of two)")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3))
    p.add_argument("--subset", type=float, help="a count (>= 1) or a fraction (< 1) of the images")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
    p.set_defaults(run=_run_dataset)


def _run_dataset(args) -> int:
    from .data import format_summary, prepare_dataset
    summary = prepare_dataset(args.source, args.dest, args.resolution, channels=args.channels,
                              skip_bad=args.skip_bad, subset=args.subset, subset_seed=args.seed)
    print(format_summary(summary))
    return 0


# ---------------------------------------------------------------------------------------------------- main
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeclr", description="Data-efficient GAN training with FakeCLR.")
    parser.add_argument("--version", action="version", version=f"fakeclr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_dataset(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as e:
        print(f"fakeclr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fakeclr: interrupted.", file=sys.stderr)
        return 130
