"""Assembling a run: data, networks, augmentation, method, phases and their optimizers, and the registry of
everything a training state holds (:func:`build_run`); starting it or restoring a state (:func:`restore_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import dist
from ..augment import Augmentation
from ..config import BACKBONES, METHODS, DataConfig, TrainConfig, validate
from ..data import open_dataset
from ..errors import UserError
from ..phase import PHASES, Method
from . import checkpoint as ckpt
from .backbone import Backbone
from .feed import RealFeed, RealSampler
from .init import load_init_heads, networks_for_run


@dataclass
class Phase:
    """One optimisation phase: the modules it trains, its optimizers, how often it runs and its loss terms.

    ``opts[0]`` is G's or D's optimizer; further ones belong to modules with an optimizer of their own (the
    released code's contrastive heads, ``--head-optimizer own``)."""
    name: str
    modules: list[torch.nn.Module]
    opts: list[torch.optim.Optimizer]
    interval: int
    terms: list

    def parameters(self):
        return [p for m in self.modules for p in m.parameters()]

    @property
    def gain(self) -> float:
        return float(self.interval)


def make_optimizer(modules: list[torch.nn.Module], cfg: TrainConfig, interval: int) -> torch.optim.Adam:
    """Adam; with lazy regularisation every ``interval`` steps, lr and betas are rescaled (StyleGAN2 App. B)."""
    ratio = interval / (interval + 1) if interval > 1 else 1.0
    o = cfg.optim
    params = [p for m in modules for p in m.parameters()]
    return torch.optim.Adam(params, lr=o.lr * ratio, betas=(o.beta1 ** ratio, o.beta2 ** ratio), eps=o.eps)


def build_phases(G, D, cfg: TrainConfig, terms: list, d_extras: list[torch.nn.Module] = (),
                 own_optimizers: dict[str, list[torch.nn.Module]] | None = None,
                 lazy_intervals: tuple[int, int] | None = None) -> list[Phase]:
    """Group the terms by phase; a phase without terms is dropped. G/D optimizers are shared by their phases.

    ``d_extras`` (the contrastive heads) are trained in the D phases, by D's optimizer unless ``own_optimizers``
    gives them one each: ``{"G": [...], "D": [...]}`` names whose settings (lr, betas and lazy ratio) that
    optimizer copies (the released InsGen/FakeCLR code: the fake head follows G's, the real head D's).

    ``lazy_intervals`` are G's and D's regularisation intervals (the backbone's, :class:`Backbone`); by default
    ``pl_interval`` / ``r1_interval``, whether or not the regulariser is on, as in StyleGAN2-ADA, where
    ``G_reg_interval`` stays 4 when ``pl_weight`` is 0 (its ``cifar`` config).
    """
    if lazy_intervals is None:
        lazy_intervals = (cfg.loss.pl_interval, cfg.loss.r1_interval)
    g_int, d_int = (max(k, 1) for k in lazy_intervals)
    own = own_optimizers or {}
    g_modules, d_modules = [G], [D, *d_extras]
    owned = {id(m) for ms in own.values() for m in ms}
    G_opt = make_optimizer(g_modules, cfg, g_int)
    D_opt = make_optimizer([m for m in d_modules if id(m) not in owned], cfg, d_int)
    head_opts = [make_optimizer([m], cfg, g_int if side == "G" else d_int) for side in ("G", "D")
                 for m in own.get(side, [])]
    spec = {"Gmain": (g_modules, [G_opt], 1), "Greg": (g_modules, [G_opt], g_int),
            "Dmain": (d_modules, [D_opt, *head_opts], 1), "Dreg": (d_modules, [D_opt, *head_opts], d_int)}
    phases = []
    for name in PHASES:
        modules, opts, interval = spec[name]
        phase_terms = [t for t in terms if t.phase == name]
        if phase_terms:
            phases.append(Phase(name, modules, opts, interval, phase_terms))
    return phases


@dataclass
class TrainingRun:
    """One process's share of a run, built from a resolved config: data, networks, method, phases, and the
    registry of everything the training state holds (saved and restored by the same list).

    ``batch`` is per process; ``cur_nimg`` counts real images shown to D over all processes (kimg = 1000) and
    ``iteration`` the iterations done."""
    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    data: Any
    c_dim: int
    batch: int
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    method: Method
    augmentation: Augmentation
    phases: list[Phase]
    sampler: RealSampler
    feed: RealFeed                               # real batches in the sampler's order
    registry: ckpt.TrainingState
    init: dict[str, torch.nn.Module] | None      # the --init networks of a fresh fine-tuning run
    frozen: list[str]                            # FreezeD layers
    backbone: Backbone | None = None
    rounds: tuple[tuple[str, ...], ...] = ()     # one iteration's phases (Backbone.rounds)
    images_per_iteration: int = 0                # real images shown per iteration over all processes
    cur_nimg: int = 0
    iteration: int = 0
    nonfinite: torch.Tensor | None = None        # [phases] int: iterations since the last tick with a non-finite loss
    pseudo: torch.Tensor | None = None           # APA: the latest Gmain fakes [batch, C, H, W]

    def phase_named(self, name: str) -> Phase | None:
        """The phase called ``name``, or ``None`` when it has no terms."""
        return next((p for p in self.phases if p.name == name), None)

    @property
    def nets(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    @property
    def trainables(self) -> list[torch.nn.Module]:
        return [self.G, self.D, *self.method.trainable]


def open_training_data(data: DataConfig, whole: bool = False):
    """The data set ``data`` describes (``--data`` and its options). ``whole``: every image of it, without the
    subset and the x-flips, for the snapshot metrics (StyleGAN2-ADA's FID/KID/PR/IS set ``max_size=None,
    xflip=False``); None when there is no subset, so the run's own data set already holds every image."""
    if whole and data.subset is None:
        return None
    return open_dataset(data.source, resolution=data.resolution, channels=data.channels,
                        mirror=data.mirror and not whole, subset=None if whole else data.subset,
                        subset_seed=data.subset_seed, skip_bad=data.skip_bad, use_labels=data.use_labels,
                        stream=data.stream)


def build_run(cfg: TrainConfig, run_dir: Path, device: torch.device, fresh: bool, source: str | Path | None,
              extra_terms: list | None = None) -> TrainingRun:
    """Data, networks (from ``cfg.init`` when ``fresh``), augmentation, loss terms, phases and the state
    registry of this process, at iteration 0. ``source`` names the state file in error messages."""
    rank, world = dist.rank(), dist.world_size()
    cfg = TrainConfig.from_dict(cfg.to_dict())           # completed below from the data; the caller's is not changed
    data = open_training_data(cfg.data)
    cfg.data.resolution, cfg.data.channels = data.resolution, data.num_channels
    if cfg.data.use_labels and not data.has_labels:
        raise UserError(f"--cond: {cfg.data.source} has no labels (a dataset.json with \"labels\" beside the images); "
                        "drop --cond to train unconditionally, or add the labels file.")
    validate(cfg, world)
    if cfg.metrics:
        from ..metrics.registry import parse_metric_names
        cfg.metrics = parse_metric_names(cfg.metrics)
    c_dim = data.label_dim if cfg.data.use_labels else 0

    torch.manual_seed(cfg.seed)
    G, D, G_ema, init = networks_for_run(cfg, c_dim, device, load_init=fresh)
    frozen = D.freeze_layers(cfg.optim.freeze_d)
    augmentation = Augmentation.from_config(cfg.augment, cfg.kimg).to(device)
    backbone = BACKBONES.build(cfg.network.backbone)
    terms = backbone.terms(cfg)
    method = METHODS.build(cfg.contrastive.method, cfg.contrastive, D, data.num_raw, cfg.data.mirror,
                           int(round(cfg.kimg * 1000))).to(device)
    terms += method.terms + list(extra_terms or [])
    stateful_terms = _term_states(terms)
    for t in stateful_terms.values():
        t.to(device)
    phases = build_phases(G, D, cfg, terms, method.trainable, method.own_optimizers, backbone.lazy_intervals(cfg))
    rounds = backbone.rounds(cfg)
    unscheduled = sorted({p.name for p in phases} - {name for r in rounds for name in r})
    if unscheduled:
        raise UserError(f"--backbone {backbone.name} runs no {', '.join(unscheduled)} phase, which this method's "
                        "terms need; choose another method or backbone.")
    sampler = RealSampler(len(data), seed=cfg.seed * world + rank)
    torch.manual_seed(cfg.seed * world + rank)
    feed = RealFeed(data, sampler, cfg.batch // world, device, workers=cfg.data.workers)
    run = TrainingRun(cfg, run_dir, device, data, c_dim, cfg.batch // world, G, D, G_ema, method, augmentation,
                      phases, sampler, feed, ckpt.TrainingState(), init, frozen, backbone, rounds,
                      backbone.images_per_iteration(cfg),
                      nonfinite=torch.zeros(len(PHASES), dtype=torch.long, device=device))

    # The training state, one list for both ways (save and restore).
    d_opts = next(p.opts for p in phases if D in p.modules)
    optimizers = {"G_opt": next(p.opts[0] for p in phases if G in p.modules), "D_opt": d_opts[0],
                  **{f"head_opt{i}": opt for i, opt in enumerate(d_opts[1:])}}
    where = f"Checkpoint {source}"

    def load_nets(sds):
        for name, module in run.nets.items():
            ckpt.load_state_dict_checked(module, sds[name], where)

    def load_progress(s):
        run.cur_nimg, run.iteration = int(s["cur_nimg"]), int(s["iteration"])
    reg = run.registry
    reg.add("nets", lambda: {name: m.state_dict() for name, m in run.nets.items()}, load_nets)
    reg.add("optim", lambda: {name: opt.state_dict() for name, opt in optimizers.items()},
            lambda sds: [opt.load_state_dict(sds[name]) for name, opt in optimizers.items()])
    reg.add("terms", lambda: {name: t.state_dict() for name, t in stateful_terms.items()},
            lambda sds: [stateful_terms[n].load_state_dict(sd)
                         for n, sd in _saved_term_states(sds, stateful_terms, source).items()])
    reg.add("method", method.state_dict, lambda sd: method.load_state_dict(
        sd, lambda m, msd, name: ckpt.load_state_dict_checked(m, msd, f"{where} ({name})")))
    reg.add_module("augment", augmentation, per_rank=True)
    reg.add_module("sampler", sampler, per_rank=True)
    reg.add("rng", lambda: _get_rng_state(device), lambda s: _set_rng_state(s, device), per_rank=True)
    reg.add("progress", lambda: {"cur_nimg": run.cur_nimg, "iteration": run.iteration}, load_progress)
    if augmentation.pseudo_real and _d_before_g(rounds):
        # APA's fakes carry over to the next iteration's D steps: they are training state.
        reg.add("pseudo", lambda: {"img": run.pseudo}, lambda s: setattr(run, "pseudo", s["img"]), per_rank=True)
    return run


def _d_before_g(rounds: tuple[tuple[str, ...], ...]) -> bool:
    """Whether a D phase runs before the first G phase of an iteration."""
    order = [name for r in rounds for name in r]
    first_g = next((i for i, n in enumerate(order) if n.startswith("G")), len(order))
    return any(n.startswith("D") for n in order[:first_g])


def restore_run(run: TrainingRun, state: dict | None, source: str | Path | None) -> list[str]:
    """Continue from a training state, or start: load the ``--init`` heads (returns their names) and give every
    process rank 0's initial networks."""
    if state is not None:
        run.registry.load_state_dict(state, dist.rank(), source)
        return []
    loaded = load_init_heads(run.init, run.method) if run.init is not None else []
    for module in (run.G, run.D, run.G_ema, *run.method.modules.values()):
        dist.broadcast_module(module)
    return loaded


def _term_states(terms: list) -> dict[str, torch.nn.Module]:
    """The terms with state (buffers such as the path-length mean), keyed by class name (``PathLength``; a second
    of the same class gets ``#2``), so that reordering terms cannot hand one term another's state."""
    out: dict[str, torch.nn.Module] = {}
    for t in terms:
        if isinstance(t, torch.nn.Module):
            name, k = type(t).__name__, 2
            while name in out:
                name, k = f"{type(t).__name__}#{k}", k + 1
            out[name] = t
    return out


def _saved_term_states(saved: dict, terms: dict[str, torch.nn.Module], path) -> dict[str, dict]:
    """The saved term states by the names of :func:`_term_states`. States written before terms were named
    (``term0``, ``term1``, ... by position) are matched in order, which is what those runs saved."""
    if saved and all(k.startswith("term") and k[4:].isdigit() for k in saved):
        ordered = [saved[k] for k in sorted(saved, key=lambda k: int(k[4:]))]
        if len(ordered) == len(terms):
            return dict(zip(terms, ordered))
    if set(saved) != set(terms):
        raise UserError(f"Checkpoint {path} holds the state of loss terms {sorted(saved)}, this run has "
                        f"{sorted(terms)}; resume with the method and options it was trained with.")
    return saved


def gather_states(t: torch.Tensor | dict) -> dict[str, Any]:
    """Per-rank state (RNG, sampler) collected for the checkpoint as ``{rank: state}``."""
    if not dist.is_initialized():
        return {"0": t}
    # Tensors travel as numpy arrays: gloo's object gather aborts at exit when it pickled torch storages.
    out = dist.all_gather_object(_map_tensors(t, lambda x: x.cpu().numpy()))
    return {str(r): _map_tensors(s, torch.from_numpy, np.ndarray) for r, s in enumerate(out)}


def _map_tensors(obj, fn, kind=torch.Tensor):
    """``obj`` with ``fn`` applied to every leaf of type ``kind`` inside dicts, lists and tuples."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn, kind) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn, kind) for v in obj)
    return obj


def _get_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global RNG states this process draws from: CPU, and the current CUDA device's when training there."""
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(s: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(s["cpu"])
    if device.type == "cuda" and "cuda" in s:
        torch.cuda.set_rng_state(s["cuda"], device)
