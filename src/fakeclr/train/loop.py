"""The training loop, top to bottom: :func:`build_run` (data, networks, method, phases, the state registry),
:func:`restore_run` (a training state, or the start), then :func:`train_step` in a loop with ticks and snapshots.

One iteration: draw a real batch and one latent batch per phase, run the phases that are due (``Gmain``,
``Greg``, ``Dmain``, ``Dreg``; see :mod:`fakeclr.train.loss`), update ``G_ema``, update the augmentation
probability, and at tick / snapshot boundaries log, draw the sample grid and write checkpoints. Progress is
counted in images (``cur_nimg``); kimg = 1000 images. Everything a continued run needs is in the training state,
so a run stopped at any snapshot and resumed equals the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import dist
from ..config import TrainConfig, validate
from ..data import open_dataset
from ..errors import UserError
from ..images import readable_zoom, save_grid
from ..nn import Discriminator, Generator
from ..provenance import record_start
from . import checkpoint as ckpt
from ..contrastive.method import ContrastiveMethod
from .augmentation import Augmentation
from .feed import RealFeed, RealSampler
from .loss import PHASES, PhaseContext, stylegan2_terms
from .monitor import Monitor


class TrainingStopped(Exception):
    """Training ended early on a signal; the state was saved. ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


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


def build_networks(cfg: TrainConfig, c_dim: int) -> tuple[Generator, Discriminator]:
    """G and D for a resolved config (``cfg.data.resolution`` and ``channels`` set): the architecture of the
    ``--init`` file when there is one (``cfg.init``), else the config's network options."""
    n = cfg.network
    # Precision is the run's choice, not the file's; a preset's count is capped at the resolutions there are.
    fp16 = dict(num_fp16_res=min(n.num_fp16_res, cfg.data.resolution.bit_length() - 2),
                fp16_channels_last=n.fp16_channels_last)
    if cfg.init.G is not None:
        return Generator(**{**cfg.init.G, **fp16}), Discriminator(**{**cfg.init.D, **fp16})
    common = dict(c_dim=c_dim, img_resolution=cfg.data.resolution, img_channels=cfg.data.channels,
                  channel_base=n.channel_base, channel_max=n.channel_max, conv_clamp=n.conv_clamp, **fp16)
    G = Generator(z_dim=n.z_dim, w_dim=n.w_dim, mapping_layers=n.mapping_layers, **common)
    D = Discriminator(mbstd_group_size=n.mbstd_group_size, **common)
    return G, D


def networks_for_run(cfg: TrainConfig, c_dim: int, device: torch.device | str = "cpu", load_init: bool = True):
    """``G, D, G_ema`` of a run on ``device`` (G and D in train mode), and the ``--init`` networks they were
    loaded from (``None`` for a run from scratch, or when ``load_init`` is false because a state follows)."""
    G, D = build_networks(cfg, c_dim)
    init = None
    if cfg.init.network is not None:
        check_init_fits(cfg, c_dim)
        if load_init:
            init = ckpt.load_networks(cfg.init.network)
            if "D" not in init or not {"G", "G_ema"} & set(init):
                raise UserError(f"--init {cfg.init.source} holds {', '.join(init)}; fine-tuning needs a generator "
                                "and D.")
            G.load_state_dict(init.get("G", init.get("G_ema")).state_dict())
            D.load_state_dict(init["D"].state_dict())
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if init is not None and "G_ema" in init:
        G_ema.load_state_dict(init["G_ema"].state_dict())
    return G, D, G_ema, init


def make_optimizer(modules: list[torch.nn.Module], cfg: TrainConfig, interval: int) -> torch.optim.Adam:
    """Adam; with lazy regularisation every ``interval`` steps, lr and betas are rescaled (StyleGAN2 App. B)."""
    ratio = interval / (interval + 1) if interval > 1 else 1.0
    o = cfg.optim
    params = [p for m in modules for p in m.parameters()]
    return torch.optim.Adam(params, lr=o.lr * ratio, betas=(o.beta1 ** ratio, o.beta2 ** ratio), eps=o.eps)


def build_phases(G, D, cfg: TrainConfig, terms: list, d_extras: list[torch.nn.Module] = (),
                 own_optimizers: dict[str, list[torch.nn.Module]] | None = None) -> list[Phase]:
    """Group the terms by phase; a phase without terms is dropped. G/D optimizers are shared by their phases.

    ``d_extras`` (the contrastive heads) are trained in the D phases, by D's optimizer unless ``own_optimizers``
    gives them one each: ``{"G": [...], "D": [...]}`` names whose settings (lr, betas and lazy ratio) that
    optimizer copies (the released InsGen/FakeCLR code: the fake head follows G's, the real head D's).

    The lazy-regularisation ratio follows ``pl_interval`` / ``r1_interval`` whether or not the regulariser is on,
    as in StyleGAN2-ADA, where ``G_reg_interval`` stays 4 when ``pl_weight`` is 0 (its ``cifar`` config).
    """
    g_int, d_int = max(cfg.loss.pl_interval, 1), max(cfg.loss.r1_interval, 1)
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


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, cfg: TrainConfig, cur_nimg: int, batch: int) -> None:
    """``G_ema <- beta * G_ema + (1 - beta) * G`` with half-life ``ema_kimg``, ramped up early to at most
    ``ema_rampup * cur_nimg`` images, where ``cur_nimg`` counts the images shown before the iteration that just ran
    (at the first iteration 0, so ``G_ema`` takes ``G``; StyleGAN2-ADA). Buffers are copied."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a state at the end of the iteration and stops."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _grid_latents(G: Generator, n: int, c_dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    z = torch.randn(n, G.z_dim, generator=gen).to(device)
    c = torch.zeros(n, c_dim, device=device)
    if c_dim:
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    return z, c


@torch.no_grad()
def _sample_grid(G_ema, z, c, batch: int) -> torch.Tensor:
    return torch.cat([G_ema(zz, cc, noise_mode="const").cpu() for zz, cc in zip(z.split(batch), c.split(batch))])


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
    G: Generator
    D: Discriminator
    G_ema: Generator
    method: ContrastiveMethod
    augmentation: Augmentation
    phases: list[Phase]
    sampler: RealSampler
    feed: RealFeed                               # real batches in the sampler's order
    registry: ckpt.TrainingState
    init: dict[str, torch.nn.Module] | None      # the --init networks of a fresh fine-tuning run
    frozen: list[str]                            # FreezeD layers
    cur_nimg: int = 0
    iteration: int = 0
    nonfinite: torch.Tensor | None = None        # [phases] int: iterations since the last tick with a non-finite loss

    @property
    def nets(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    @property
    def trainables(self) -> list[torch.nn.Module]:
        return [self.G, self.D, *self.method.trainable]


def _resume_target(resume: str | Path | None, run_dir: Path) -> Path | None:
    """The training state to continue from: ``resume`` (a file, or the newest state of a directory), else the
    newest state in ``run_dir``, else ``None``."""
    if resume is not None and Path(resume).is_dir():
        found = ckpt.latest_state(resume)
        if found is None:
            raise UserError(f"--resume {resume} is a directory without training-state-*.pt files.")
        return found
    return Path(resume) if resume is not None else ckpt.latest_state(run_dir)


def build_run(cfg: TrainConfig, run_dir: Path, device: torch.device, fresh: bool, source: str | Path | None,
              extra_terms: list | None = None) -> TrainingRun:
    """Data, networks (from ``cfg.init`` when ``fresh``), augmentation, loss terms, phases and the state
    registry of this process, at iteration 0. ``source`` names the state file in error messages."""
    rank, world = dist.rank(), dist.world_size()
    data = open_dataset(cfg.data.source, resolution=cfg.data.resolution, channels=cfg.data.channels,
                        mirror=cfg.data.mirror, subset=cfg.data.subset, subset_seed=cfg.data.subset_seed,
                        skip_bad=cfg.data.skip_bad, use_labels=cfg.data.use_labels, stream=cfg.data.stream)
    cfg.data.resolution, cfg.data.channels = data.resolution, data.num_channels
    validate(cfg, world)
    if cfg.metrics:
        from ..metrics.registry import parse_metric_names
        cfg.metrics = parse_metric_names(cfg.metrics)
    c_dim = data.label_dim if cfg.data.use_labels else 0

    torch.manual_seed(cfg.seed)
    G, D, G_ema, init = networks_for_run(cfg, c_dim, device, load_init=fresh)
    frozen = D.freeze_layers(cfg.optim.freeze_d)
    augmentation = Augmentation.from_config(cfg.augment, cfg.kimg).to(device)
    terms = stylegan2_terms(cfg.loss.r1_gamma, cfg.loss.pl_weight, cfg.loss.pl_batch_shrink, cfg.loss.pl_decay)
    method = ContrastiveMethod(cfg.contrastive, D, data.num_raw, cfg.data.mirror, int(round(cfg.kimg * 1000))).to(device)
    terms += method.terms + list(extra_terms or [])
    stateful_terms = _term_states(terms)
    for t in stateful_terms.values():
        t.to(device)
    phases = build_phases(G, D, cfg, terms, method.trainable, method.own_optimizers)
    sampler = RealSampler(len(data), seed=cfg.seed * world + rank)
    torch.manual_seed(cfg.seed * world + rank)
    feed = RealFeed(data, sampler, cfg.batch // world, device, workers=cfg.data.workers)
    run = TrainingRun(cfg, run_dir, device, data, c_dim, cfg.batch // world, G, D, G_ema, method, augmentation,
                      phases, sampler, feed, ckpt.TrainingState(), init, frozen,
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
    return run


def restore_run(run: TrainingRun, state: dict | None, source: str | Path | None) -> list[str]:
    """Continue from a training state, or start: load the ``--init`` heads (returns their names) and give every
    process rank 0's initial networks."""
    if state is not None:
        run.registry.load_state_dict(state, dist.rank(), source)
        return []
    loaded = _load_init_heads(run.init, run.method) if run.init is not None else []
    for module in (run.G, run.D, run.G_ema, *run.method.modules.values()):
        dist.broadcast_module(module)
    return loaded


def train_step(run: TrainingRun, monitor: Monitor) -> None:
    """One iteration: draw a real batch and one latent batch per phase, run the phases that are due, then
    update ``G_ema`` and the augmentation probability.

    Nothing here reads a value of the device on the host (the optimizers' step counts aside, which live on the
    host; one read per ADA augmentation for its padding): the statistics go to the monitor as tensors and a
    non-finite loss is marked in ``run.nonfinite``, both read at the next tick (:func:`train`)."""
    cfg, G, D, device, batch, c_dim = run.cfg, run.G, run.D, run.device, run.batch, run.c_dim
    augmentation, phases = run.augmentation, run.phases
    t0 = time.perf_counter()
    real_u8, real_c = run.feed.next()
    real_img = real_u8.to(device, non_blocking=True).float() / 127.5 - 1
    real_c = real_c.to(device) if c_dim else torch.zeros(batch, 0, device=device)
    # One latent batch for each of the four phases, whether or not a phase has terms (StyleGAN2-ADA draws them all
    # even when its Greg phase has nothing to do), so that a phase's latents do not depend on which others exist.
    all_z = torch.randn(len(PHASES), batch, G.z_dim, device=device)
    all_c = _random_labels(run.data, len(PHASES) * batch, c_dim, device).reshape(len(PHASES), batch, c_dim)
    pseudo = None
    run.method.before_iteration()
    monitor.add_time("data", time.perf_counter() - t0)
    for phase in phases:
        z, c = all_z[PHASES.index(phase.name)], all_c[PHASES.index(phase.name)]
        if run.iteration % phase.interval != 0:
            continue
        t0 = time.perf_counter()
        phase_real = real_img
        if D in phase.modules and augmentation.pseudo_real and pseudo is not None:
            phase_real = augmentation.pseudo_augment(real_img, pseudo)       # APA: fakes shown as reals
        ctx = PhaseContext(G=G, D=D, augment=augmentation.pipe, real_img=phase_real, real_c=real_c,
                           gen_z=z, gen_c=c, style_mixing_prob=cfg.loss.style_mixing_prob,
                           gain=phase.gain if phase.interval > 1 else 1.0, iteration=run.iteration,
                           cur_nimg=run.cur_nimg, real_logit_observers=[augmentation.observe])
        for module in run.trainables:
            module.requires_grad_(module in phase.modules)
        for opt in phase.opts:
            opt.zero_grad(set_to_none=True)
        loss = sum(term(ctx) for term in phase.terms) * ctx.gain
        run.nonfinite[PHASES.index(phase.name)] += ~torch.isfinite(loss.detach())
        loss.backward()
        dist.average_gradients(phase.parameters())
        for p in phase.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        for opt in phase.opts:
            opt.step()
        if phase.name == "Gmain" and ctx.computed_fake() is not None:
            pseudo = ctx.computed_fake().detach()
        monitor.add(ctx.stats)
        monitor.add_time(phase.name, time.perf_counter() - t0)
    t0 = time.perf_counter()
    for module in run.trainables:
        module.requires_grad_(False)
    dist.average_buffers(G, "w_avg")
    # The ramp-up sees the images shown *before* this iteration (0 at the first), as StyleGAN2-ADA's loop does.
    update_ema(run.G_ema, G, cfg, run.cur_nimg, cfg.batch)
    run.cur_nimg += cfg.batch
    run.iteration += 1
    augmentation.update(run.iteration, run.cur_nimg, cfg.batch)
    monitor.add_time("ema_augment", time.perf_counter() - t0)


def train(cfg: TrainConfig, run_dir: str | Path, resume: str | Path | None = None, device: str = "cpu",
          stop_at_kimg: float | None = None, tensorboard: bool = True, stream=None,
          extra_terms: list | None = None) -> dict[str, Any]:
    """Train (or continue training) a StyleGAN2 per ``cfg`` into ``run_dir``: build the run, restore its state
    (or start), then iterate with a status line every tick and a checkpoint every snapshot.

    Args:
        cfg: resolved config (``cfg.data.resolution`` and ``cfg.data.channels`` may be ``None``: taken from data).
        run_dir: output directory; if it holds a training state and ``resume`` is ``None``, training continues
            from the newest one.
        resume: a training-state file (or a run directory) to continue from.
        stop_at_kimg: stop (with a state checkpoint) once this many kimg are done, without changing the plan
            (``cfg.kimg`` still drives schedules such as ADA-linear).
    Returns:
        ``{"cur_nimg", "iterations", "state", "network"}`` of the last checkpoint written, and ``"nets"``: this
        process's ``G``, ``D``, ``G_ema`` and the method's modules (heads, ``D_ema``, queues).
    """
    stream = sys.stdout if stream is None else stream
    device = dist.init(device)
    rank, world = dist.rank(), dist.world_size()
    run_dir = Path(run_dir)
    resume = _resume_target(resume, run_dir)
    state = ckpt.load_state(resume) if resume is not None else None
    if state is not None:
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        _check_resumable(saved, cfg, resume)
        cfg = _continue_config(saved, cfg)
    run = build_run(cfg, run_dir, device, state is None, resume, extra_terms)
    loaded = restore_run(run, state, resume)
    G_ema, method, batch = run.G_ema, run.method, run.batch

    total_nimg = int(round(cfg.kimg * 1000))
    stop_nimg = total_nimg if stop_at_kimg is None else min(total_nimg, int(round(stop_at_kimg * 1000)))
    tick_nimg, snap_nimg = int(round(cfg.tick_kimg * 1000)), int(round(cfg.snapshot_kimg * 1000))
    grid_z, grid_c = _grid_latents(run.G, 64 if cfg.data.resolution <= 64 else 32, run.c_dim, device)
    if rank == 0:
        _announce(run, state is not None, loaded, grid_z, grid_c, stream)
    run.init = None                          # the --init networks are loaded; do not hold a second copy
    monitor = Monitor(run_dir if rank == 0 else None, cfg.kimg, tensorboard=tensorboard, stream=stream)
    tick_start_nimg = run.cur_nimg
    last = {"cur_nimg": run.cur_nimg, "iterations": run.iteration, "state": resume, "network": None}

    def save_checkpoint() -> None:
        state_out = {"config": cfg.to_json(), **run.registry.state_dict(_gather_states)}
        net_path, path = ckpt.network_path(run_dir, run.cur_nimg), ckpt.state_path(run_dir, run.cur_nimg)
        if rank == 0:
            ckpt.save_networks(net_path, {**run.nets, **method.networks},
                               meta={"kimg": run.cur_nimg / 1000, "config": cfg.to_dict()})
            ckpt.save_state(path, state_out)
            ckpt.prune_states(run_dir, keep=2)
            if cfg.metrics:
                _snapshot_metrics(cfg, G_ema, run.data, device, run_dir, net_path.name, run.cur_nimg, monitor, stream)
        last.update(cur_nimg=run.cur_nimg, iterations=run.iteration, state=path, network=net_path)
        dist.barrier()

    with _StopFlag() as stop:
        try:
            while run.cur_nimg < stop_nimg:
                train_step(run, monitor)
                cur_nimg = run.cur_nimg
                # ---------------------------------------------------------------- ticks, snapshots, stop
                done = cur_nimg >= stop_nimg
                tick = done or cur_nimg // tick_nimg != (cur_nimg - cfg.batch) // tick_nimg
                snap = done or cur_nimg // snap_nimg != (cur_nimg - cfg.batch) // snap_nimg
                if not (tick or snap):
                    continue
                # The one read of the device between ticks: a signal on any process, a non-finite loss.
                stopping = _check_boundary(run, stop, tick_start_nimg, last["state"])
                if tick or stopping:
                    method.on_tick()
                    extra = {"augment_p": run.augmentation.p, "iteration": run.iteration}
                    if method.queue_size is not None:
                        extra["fake_queue_size"] = method.queue_size
                    monitor.tick(cur_nimg, tick_start_nimg, extra)
                    tick_start_nimg = cur_nimg
                if snap or stopping:
                    t0 = time.perf_counter()
                    if rank == 0:
                        grid = _sample_grid(G_ema, grid_z, grid_c, batch)
                        save_grid(grid, run_dir / f"fakes{ckpt.kimg_tag(cur_nimg)}.png")
                        if cur_nimg >= total_nimg:  # the end of the run: the same grid enlarged, to be looked at
                            zoom = readable_zoom(grid.shape[-1] * math.ceil(math.sqrt(len(grid))))
                            save_grid(grid, run_dir / "fakes-final.png", zoom=zoom)
                    save_checkpoint()
                    monitor.add_time("snapshot", time.perf_counter() - t0)      # shown in the next tick
                if stopping:
                    monitor.close()
                    signum = stop.signum or signal.SIGTERM
                    raise TrainingStopped(f"Stopped by {signal.Signals(signum).name} at kimg {cur_nimg / 1000:g}; "
                                          f"state saved to {last['state']}. Run the same command to continue.",
                                          128 + int(signum))
        finally:
            run.feed.close()                 # the streaming workers, if any
    monitor.close()
    return {**last, "nets": {**run.nets, **method.modules}}


def _check_boundary(run: TrainingRun, stop: _StopFlag, since_nimg: int, last_state) -> bool:
    """At a tick or snapshot: whether a signal asked any process to stop; a loss that was not finite on any
    process since the last tick stops the run with one sentence, before anything is written."""
    flags = torch.cat([torch.tensor([1 if stop.signum else 0], device=run.device), run.nonfinite])
    stop_count, *nonfinite = dist.all_reduce_sum(flags).tolist()
    if any(nonfinite):
        phases = ", ".join(name for name, n in zip(PHASES, nonfinite) if n)
        raise UserError(f"Training diverged: the {phases} loss was not finite between kimg {since_nimg / 1000:g} "
                        f"and {run.cur_nimg / 1000:g}; the last good checkpoint is {last_state}. Lower the learning "
                        "rate or raise --gamma, then resume from it.")
    return stop_count > 0


def _announce(run: TrainingRun, resumed: bool, loaded: list[str], grid_z, grid_c, stream) -> None:
    """Rank 0 at the start: config.json, the reals and kimg-0 grids of a new run, and the opening lines."""
    cfg, run_dir, world = run.cfg, run.run_dir, dist.world_size()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json() + "\n")
    record_start(run_dir, run.cur_nimg / 1000, device=run.device)
    if not resumed:
        reals = run.data.batch(torch.arange(min(len(grid_z), len(run.data))))[0]
        save_grid(reals, run_dir / "reals.png")
        save_grid(_sample_grid(run.G_ema, grid_z, grid_c, run.batch), run_dir / f"fakes{0:06d}.png")
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6     # noqa: E731
    print(f"Training {cfg.preset} on {cfg.data.source}: {len(run.data)} images at {cfg.data.resolution}px, "
          f"{cfg.data.channels} channel(s); batch {cfg.batch} on {world} process(es)"
          f"{' (' + dist.backend() + ')' if dist.backend() else ''}; "
          f"{'resuming at kimg ' + format(run.cur_nimg / 1000, 'g') if resumed else 'starting'}; "
          f"G {params(run.G):.2f}M, D {params(run.D):.2f}M params.", file=stream, flush=True)
    if run.init is not None:
        print(f"Initialised from {cfg.init.source}: {', '.join(['G', 'G_ema', 'D'] + loaded)} "
              "(kimg 0; optimizers, queues and augmentation start fresh).", file=stream, flush=True)
    if run.frozen:
        print(f"FreezeD: {len(run.frozen)} D layer(s) fixed ({run.frozen[0]} ... {run.frozen[-1]}).", file=stream,
              flush=True)


def _gather_states(t: torch.Tensor | dict) -> dict[str, Any]:
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


def _snapshot_metrics(cfg: TrainConfig, G_ema, data, device, run_dir: Path, snapshot: str, cur_nimg: int,
                      monitor: Monitor, stream) -> None:
    """Evaluate ``cfg.metrics`` on G_ema: ``metric-<name>.jsonl`` lines, TensorBoard ``Metrics/...``, a status line.

    The metrics draw from their own seeded generators and leave the training RNG untouched.
    """
    from ..metrics.registry import MetricContext, append_metric_jsonl, calc_metric
    ctx = MetricContext(G=G_ema, dataset=data, device=device, num_gen=cfg.metrics_num_gen, progress=False)
    for name in cfg.metrics:
        result = calc_metric(name, ctx)
        append_metric_jsonl(run_dir, result, snapshot=snapshot, kimg=cur_nimg / 1000)
        for key, value in result.results.items():
            monitor.scalar(f"Metrics/{key}", value, cur_nimg)
        values = "  ".join(f"{k} {v:.4g}" for k, v in result.results.items())
        print(f"  {values}  ({result.num} images, {result.seconds:.0f}s)", file=stream, flush=True)


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


def _random_labels(data, n: int, c_dim: int, device) -> torch.Tensor:
    """Labels for generated images drawn from the data set's label distribution ``[n, c_dim]``."""
    if not c_dim:
        return torch.zeros(n, 0, device=device)
    return data.batch(torch.randint(len(data), (n,)))[1].to(device)


# Fields that may change when a run is continued: its length and the logging cadence.
_CONTINUABLE = {"kimg", "tick_kimg", "snapshot_kimg", "metrics", "metrics_num_gen"}


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


def check_init_fits(cfg: TrainConfig, c_dim: int) -> None:
    """One sentence when the ``--init`` network cannot train on this data (resolution, channels, labels)."""
    g, src = cfg.init.G, cfg.init.source
    if g["img_resolution"] != cfg.data.resolution:
        raise UserError(f"--init {src} is a {g['img_resolution']} px network but the data are trained at "
                        f"{cfg.data.resolution} px; --resolution must match the network (--resolution "
                        f"{g['img_resolution']}).")
    if g["img_channels"] != cfg.data.channels:
        raise UserError(f"--init {src} makes {g['img_channels']}-channel images but the data have "
                        f"{cfg.data.channels}; pass --channels {g['img_channels']} or use a network of "
                        f"{cfg.data.channels} channel(s).")
    if g["c_dim"] > 0 and c_dim == 0:
        raise UserError(f"--init {src} is a conditional network ({g['c_dim']} classes) but the data are unlabelled; "
                        "train with --cond on data with dataset.json labels, or use an unconditional network.")
    if g["c_dim"] == 0 and c_dim > 0:
        raise UserError(f"--init {src} is an unconditional network but --cond asks for {c_dim} labels; drop "
                        "--cond or use a conditional network.")
    if g["c_dim"] != c_dim:
        raise UserError(f"--init {src} is conditioned on {g['c_dim']} labels but the data have {c_dim}; use a "
                        "network trained with the same labels.")


def _load_init_heads(init: dict[str, torch.nn.Module], method) -> list[str]:
    """Load the method's contrastive modules (heads, their momentum copies, ``D_ema``) that the ``--init`` file
    holds; the others keep their fresh start (``D_ema`` a copy of the loaded D). Returns the loaded names."""
    loaded = []
    for name, module in method.modules.items():
        if name in init and hasattr(module, "config"):
            ckpt.load_state_dict_checked(module, init[name].state_dict(), f"--init network '{name}'")
            loaded.append(name)
    return loaded


def _check_resumable(saved: TrainConfig, new: TrainConfig, path) -> None:
    a, b = saved.to_dict(), new.to_dict()
    for key in sorted(set(a) | set(b)):
        if key in _CONTINUABLE or key in ("data", "init"):   # init: where the run began, kept from the state
            continue
        if a.get(key) != b.get(key):
            raise UserError(f"Checkpoint {path} was trained with different settings ({key}: {a.get(key)} there, "
                            f"{b.get(key)} now); use the same options, or another --outdir for a new run.")


def _continue_config(saved: TrainConfig, new: TrainConfig) -> TrainConfig:
    """The saved config with the continuable fields taken from the new one (how the data are fed, too: streaming
    gives the same images)."""
    out = TrainConfig.from_dict(saved.to_dict())
    for key in _CONTINUABLE:
        setattr(out, key, getattr(new, key))
    out.data.stream, out.data.workers = new.data.stream, new.data.workers
    return out
