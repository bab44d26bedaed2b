"""The training loop, top to bottom: a run assembled (:func:`fakeclr.train.assembly.build_run`) and started or
restored (:func:`~fakeclr.train.assembly.restore_run`), then :func:`train_step` in a loop with ticks and snapshots.

One iteration: draw a real batch and one latent batch per phase, run the phases that are due (``Gmain``,
``Greg``, ``Dmain``, ``Dreg``; see :mod:`fakeclr.train.loss`), update ``G_ema``, update the augmentation
probability, and at tick / snapshot boundaries log, draw the sample grid and write checkpoints. Progress is
counted in images (``cur_nimg``); kimg = 1000 images. Everything a continued run needs is in the training state,
so a run stopped at any snapshot and resumed equals the uninterrupted run bit for bit on CPU. Which state a run
continues from is :mod:`fakeclr.train.resume`'s policy.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..config import TrainConfig
from ..errors import UserError
from ..files import atomic_write
from ..images import readable_zoom, save_grid
from ..provenance import record_start
from . import checkpoint as ckpt
from .assembly import TrainingRun, build_run, gather_states, open_training_data, restore_run
from .lock import RunLock
from .loss import PHASES, PhaseContext
from .monitor import Monitor
from .resume import check_resumable, continue_config, resume_target


class TrainingStopped(Exception):
    """Training ended early on a signal; the state was saved. ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


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


def _grid_latents(G: torch.nn.Module, n: int, c_dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    z = torch.randn(n, G.z_dim, generator=gen).to(device)
    c = torch.zeros(n, c_dim, device=device)
    if c_dim:
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    return z, c


@torch.no_grad()
def _sample_grid(G_ema, z, c, batch: int) -> torch.Tensor:
    return torch.cat([G_ema(zz, cc, noise_mode="const").cpu() for zz, cc in zip(z.split(batch), c.split(batch))])


def train_step(run: TrainingRun, monitor: Monitor) -> None:
    """One iteration: the backbone's rounds of phases (StyleGAN2: one round G then D; BigGAN: ``d_steps`` D rounds
    then G), each round with its own real batch (when it has a D phase) and one latent batch per phase, the phases
    that are due run in order; then ``G_ema`` and the augmentation probability are updated.

    Nothing here reads a value of the device on the host (the optimizers' step counts aside, which live on the
    host; one read per ADA augmentation for its padding): the statistics go to the monitor as tensors and a
    non-finite loss is marked in ``run.nonfinite``, both read at the next tick (:func:`train`)."""
    cfg, G, D, device, batch, c_dim = run.cfg, run.G, run.D, run.device, run.batch, run.c_dim
    augmentation = run.augmentation
    t0 = time.perf_counter()
    run.method.before_iteration()
    monitor.add_time("data", time.perf_counter() - t0)
    real_img = real_c = None
    for round_phases in run.rounds:
        t0 = time.perf_counter()
        if any(name.startswith("D") for name in round_phases):
            real_u8, real_c = run.feed.next()
            real_img = real_u8.to(device, non_blocking=True).float() / 127.5 - 1
            real_c = real_c.to(device) if c_dim else torch.zeros(batch, 0, device=device)
        # One latent batch for each phase of the round, whether or not the phase has terms (StyleGAN2-ADA draws
        # them all even when its Greg phase has nothing to do).
        all_z = torch.randn(len(round_phases), batch, G.z_dim, device=device)
        all_c = run.backbone.fake_labels(run.data, len(round_phases) * batch, c_dim, device)
        all_c = all_c.reshape(len(round_phases), batch, c_dim)
        monitor.add_time("data", time.perf_counter() - t0)
        for k, name in enumerate(round_phases):
            phase = run.phase_named(name)
            if phase is None or run.iteration % phase.interval != 0:
                continue
            _run_phase(run, phase, real_img, real_c, all_z[k], all_c[k], monitor)
    t0 = time.perf_counter()
    for module in run.trainables:
        module.requires_grad_(False)
    for suffix in run.backbone.synced_buffers:
        dist.average_buffers(G, suffix)
    # The ramp-up sees the images shown *before* this iteration (0 at the first), as StyleGAN2-ADA's loop does.
    run.backbone.update_ema(run.G_ema, G, cfg, run.iteration, run.cur_nimg)
    run.cur_nimg += run.images_per_iteration
    run.iteration += 1
    augmentation.update(run.iteration, run.cur_nimg, run.images_per_iteration)
    monitor.add_time("ema_augment", time.perf_counter() - t0)


def _run_phase(run: TrainingRun, phase, real_img, real_c, z, c, monitor: Monitor) -> None:
    """One optimisation step of ``phase`` on a real batch and its latents. APA shows D the fakes of the latest
    ``Gmain`` as reals (``run.pseudo``; DeceiveD keeps them across iterations too)."""
    t0 = time.perf_counter()
    D, augmentation = run.D, run.augmentation
    phase_real = real_img
    if D in phase.modules and augmentation.pseudo_real and run.pseudo is not None:
        phase_real = augmentation.pseudo_augment(real_img, run.pseudo)       # APA: fakes shown as reals
    ctx = PhaseContext(G=run.G, D=D, augment=augmentation.pipe, real_img=phase_real, real_c=real_c,
                       gen_z=z, gen_c=c, style_mixing_prob=run.cfg.loss.style_mixing_prob,
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
        run.pseudo = ctx.computed_fake().detach()
    monitor.add(ctx.stats)
    monitor.add_time(phase.name, time.perf_counter() - t0)


def train(cfg: TrainConfig, run_dir: str | Path, resume: str | Path | None = None, device: str = "cpu",
          stop_at_kimg: float | None = None, tensorboard: bool = True, stream=None,
          extra_terms: list | None = None, accept_data_change: bool = False) -> dict[str, Any]:
    """Train (or continue training) a StyleGAN2 per ``cfg`` into ``run_dir``: build the run, restore its state
    (or start), then iterate with a status line every tick and a checkpoint every snapshot.

    Args:
        cfg: resolved config (``cfg.data.resolution`` and ``cfg.data.channels`` may be ``None``: taken from data).
        run_dir: output directory; if it holds a training state and ``resume`` is ``None``, training continues
            from the newest one.
        resume: a training-state file (or a run directory) to continue from.
        stop_at_kimg: stop (with a state checkpoint) once this many kimg are done, without changing the plan
            (``cfg.kimg`` still drives schedules such as ADA-linear).
        accept_data_change: continue although the data differ from those the state was trained on (the state
            records their identity; without this a changed data set stops the run with one sentence).
    Returns:
        ``{"cur_nimg", "iterations", "state", "network"}`` of the last checkpoint written, and ``"nets"``: this
        process's ``G``, ``D``, ``G_ema`` and the method's modules (heads, ``D_ema``, queues).
    """
    stream = sys.stdout if stream is None else stream
    device = dist.init(device)
    run_dir = Path(run_dir)
    lock = _lock(run_dir, stream)
    try:
        return _train(cfg, run_dir, resume, device, stop_at_kimg, tensorboard, stream, extra_terms,
                      accept_data_change)
    finally:
        if lock is not None:
            lock.release()


def _lock(run_dir: Path, stream) -> RunLock | None:
    """Rank 0 takes the run directory's lock before anything is written; every process stops with the same
    sentence when it is held by another run."""
    lock, error = (RunLock(run_dir), None) if dist.rank() == 0 else (None, None)
    if lock is not None:
        try:
            note = lock.acquire()
            if note:
                print(note, file=stream, flush=True)
        except UserError as e:
            error = str(e)
    if dist.is_initialized():
        error = next((m for m in dist.all_gather_object(error) if m), None)
    if error:
        raise UserError(error)
    return lock


def _train(cfg: TrainConfig, run_dir: Path, resume, device, stop_at_kimg, tensorboard, stream, extra_terms,
           accept_data_change):
    rank = dist.rank()
    resume = resume_target(resume, run_dir)
    state = ckpt.load_state(resume) if resume is not None else None
    if state is not None:
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        check_resumable(saved, cfg, resume)
        cfg = continue_config(saved, cfg)
    run = build_run(cfg, run_dir, device, state is None, resume, extra_terms)
    cfg = run.cfg                            # completed from the data (resolution, channels)
    data_identity = run.data.identity()
    if state is not None and "data" in state and not accept_data_change:
        _check_same_data(state["data"], data_identity, cfg.data.source, resume)
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

    whole_data = functools.cache(lambda: open_training_data(cfg.data, whole=True))   # opened at the first metric

    def save_checkpoint() -> None:
        state_out = {"config": cfg.to_json(), "data": data_identity, **run.registry.state_dict(gather_states)}
        net_path, path = ckpt.network_path(run_dir, run.cur_nimg), ckpt.state_path(run_dir, run.cur_nimg)
        if rank == 0:
            ckpt.save_networks(net_path, {**run.nets, **method.networks},
                               meta={"kimg": run.cur_nimg / 1000, "config": cfg.to_dict()})
            ckpt.save_state(path, state_out)
            ckpt.prune_states(run_dir, keep=2)
            if cfg.metrics:
                _snapshot_metrics(cfg, G_ema, run.data, whole_data, device, run_dir, net_path.name, run.cur_nimg,
                                  monitor, stream)
        last.update(cur_nimg=run.cur_nimg, iterations=run.iteration, state=path, network=net_path)
        dist.barrier()

    with _StopFlag() as stop:
        try:
            while run.cur_nimg < stop_nimg:
                train_step(run, monitor)
                cur_nimg = run.cur_nimg
                # ---------------------------------------------------------------- ticks, snapshots, stop
                done = cur_nimg >= stop_nimg
                step = run.images_per_iteration
                tick = done or cur_nimg // tick_nimg != (cur_nimg - step) // tick_nimg
                snap = done or cur_nimg // snap_nimg != (cur_nimg - step) // snap_nimg
                if not (tick or snap):
                    continue
                # The one read of the device between ticks: a signal on any process, a non-finite loss.
                stopping = _check_boundary(run, stop, tick_start_nimg, last["state"])
                if tick or stopping:
                    extra = {"augment_p": run.augmentation.p, "iteration": run.iteration, **method.on_tick()}
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


def _check_same_data(saved: dict, now: dict, source: str, path) -> None:
    """One sentence when the data of a resumed run are not those its state was trained on."""
    if saved == now:
        return
    if saved["images"] != now["images"]:
        what = f"it had {saved['images']} images, {source} now gives {now['images']}"
    elif saved["names"] != now["names"]:
        what = f"the same number of images ({now['images']}) but other file names"
    else:
        what = f"the same {now['images']} file names, but some contents or labels differ"
    raise UserError(f"The data changed since {path} was written: {what}. Restore the data to continue this run, "
                    "train into another --outdir, or pass --accept-data-change to continue on these data on purpose.")


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
    atomic_write(run_dir / "config.json", lambda tmp: Path(tmp).write_text(cfg.to_json() + "\n"))
    record_start(run_dir, run.cur_nimg / 1000, device=run.device)
    if not resumed:
        reals = run.data.batch(torch.arange(min(len(grid_z), len(run.data))))[0]
        save_grid(reals, run_dir / "reals.png")
        save_grid(_sample_grid(run.G_ema, grid_z, grid_c, run.batch), run_dir / f"fakes{0:06d}.png")
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6     # noqa: E731
    print(f"Training {cfg.preset} on {cfg.data.source}: {len(run.data)} images at {cfg.data.resolution}px, "
          f"{cfg.data.channels} channel(s); {cfg.network.backbone}, batch {cfg.batch}"
          f"{f' ({run.images_per_iteration} reals an iteration)' if run.images_per_iteration != cfg.batch else ''}"
          f" on {world} process(es)"
          f"{' (' + dist.backend() + ')' if dist.backend() else ''}; "
          f"{'resuming at kimg ' + format(run.cur_nimg / 1000, 'g') if resumed else 'starting'}; "
          f"G {params(run.G):.2f}M, D {params(run.D):.2f}M params.", file=stream, flush=True)
    if run.init is not None:
        print(f"Initialised from {cfg.init.source}: {', '.join(['G', 'G_ema', 'D'] + loaded)} "
              "(kimg 0; optimizers, queues and augmentation start fresh).", file=stream, flush=True)
    if run.frozen:
        print(f"FreezeD: {len(run.frozen)} D layer(s) fixed ({run.frozen[0]} ... {run.frozen[-1]}).", file=stream,
              flush=True)


def _snapshot_metrics(cfg: TrainConfig, G_ema, data, whole_data, device, run_dir: Path, snapshot: str,
                      cur_nimg: int, monitor: Monitor, stream) -> None:
    """Evaluate ``cfg.metrics`` on G_ema: ``metric-<name>.jsonl`` lines, TensorBoard ``Metrics/...``, a status line.
    ``data`` is the run's data set, ``whole_data()`` every image of it when that is a subset (else None).

    The metrics draw from their own seeded generators and leave the training RNG untouched.
    """
    from ..metrics.registry import MetricContext, append_metric_jsonl, calc_metric
    ctx = MetricContext(G=G_ema, dataset=data, device=device, num_gen=cfg.metrics_num_gen, progress=False,
                        ref=cfg.metrics_ref, ref_flag="--metrics-ref", open_whole=whole_data)
    for name in cfg.metrics:
        result = calc_metric(name, ctx)
        append_metric_jsonl(run_dir, result, snapshot=snapshot, kimg=cur_nimg / 1000)
        for key, value in result.results.items():
            monitor.scalar(f"Metrics/{key}", value, cur_nimg)
        values = "  ".join(f"{k} {v:.4g}" for k, v in result.results.items())
        print(f"  {values}  ({result.num} images, {result.seconds:.0f}s)", file=stream, flush=True)
