"""fakeclr's side of a parity case: its own loop (``build_run`` + ``train_step``) on the case's inputs, recorded
at the same points as the anchor's (after every phase's optimizer step, and at the end of every iteration).

The harness changes two things around the loop, both inputs rather than behaviour: the real batches come from the
case (reseeding torch and numpy at every fetch, as the anchor's feed does: the top of an iteration, or of a BigGAN
D step), and in a conditional StyleGAN2 case the labels of the generated images are the anchor's (StyleGAN2-ADA
draws them with numpy, fakeclr with torch; BigGAN's reference draws them with torch as fakeclr does, so there both
loops draw their own).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch

from fakeclr.train import assembly, loop

import cases


class Feed:
    """``run.feed``: the case's batches in order; reseeds at every fetch (:func:`cases.iteration_seed`)."""

    def __init__(self, case: cases.Case, images: torch.Tensor, onehot: torch.Tensor):
        self.batches, self.images, self.onehot, self.k = cases.batch_indices(case), images, onehot, 0

    def next(self):
        idx = torch.as_tensor(self.batches[self.k])
        cases.iteration_seed(self.k)
        self.k += 1
        return self.images[idx], self.onehot[idx]

    def close(self):
        pass


def snapshot(run: assembly.TrainingRun) -> dict[str, torch.Tensor]:
    """Everything compared, under the names anchor_side.py gives the anchor's tensors."""
    out: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}
    for prefix, module in (("G", run.G), ("D", run.D), ("G_ema", run.G_ema)):
        out.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    for prefix, module in (("G", run.G), ("D", run.D)):
        names.update({id(p): f"{prefix}.{k}" for k, p in module.named_parameters()})
    for name, module in run.method.modules.items():
        if name.endswith("_queue"):
            out[f"{name}.keys"] = module.keys.detach().clone()
            out[f"{name}.iters"] = module.iters.detach().clone()
            continue
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
        if name in ("fake_head", "real_head"):
            names.update({id(p): f"{name}.{k}" for k, p in module.named_parameters()})
    for opt in {id(o): o for ph in run.phases for o in ph.opts}.values():
        for p, st in opt.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                out[f"adam.{key}.{names[id(p)]}"] = st[key].detach().clone()
            out[f"adam.step.{names[id(p)]}"] = torch.as_tensor(st["step"], dtype=torch.float64).clone()
    if hasattr(run.augmentation.module, "p"):          # ADA's pipeline (DiffAugment has no probability)
        out["augment.p"] = torch.tensor(run.augmentation.p, dtype=torch.float32)
    if run.backbone.name == "stylegan2":                # StyleGAN2-ADA keeps pl_mean with or without the term
        pl = [t for ph in run.phases for t in ph.terms if hasattr(t, "pl_mean")]
        out["pl_mean"] = pl[0].pl_mean.detach().clone() if pl else torch.zeros([])
    return out


class Recorder:
    """The loop's monitor: ``add`` is called right after a phase's optimizer steps, with the phase's statistics."""

    def __init__(self):
        self.records: list[dict] = []

    def add(self, stats: dict[str, list[torch.Tensor]]) -> None:
        f = sys._getframe(1).f_locals               # train_step's frame
        losses = {n: float(torch.cat(v).double().mean()) for n, v in stats.items()}
        self.records.append({"iteration": f["run"].iteration, "phase": f["phase"].name, "losses": losses,
                             "tensors": snapshot(f["run"])})

    def add_time(self, *args) -> None:
        pass


class _Quiet:
    def add(self, stats):
        pass

    def add_time(self, *args):
        pass


def build(case: cases.Case, workdir: str | Path, resolution: int | None = None) -> assembly.TrainingRun:
    """The case's run at iteration 0 (its networks are the initial state both loops start from); ``resolution``:
    the case's unless told."""
    workdir = Path(workdir)
    resolution = resolution or case.resolution
    cases.write_images(workdir / "data", resolution)
    cfg = cases.config(case, workdir / "data", resolution)
    run = assembly.build_run(cfg, workdir / "run", torch.device("cpu"), fresh=True, source=None)
    assembly.restore_run(run, None, None)
    images, labels = cases.reals(resolution)
    onehot = torch.from_numpy(cases.one_hot(labels, run.c_dim))
    run.feed = Feed(case, torch.from_numpy(images), onehot)
    return run


def initial_state(run: assembly.TrainingRun) -> dict[str, dict | torch.Tensor]:
    """The anchor's starting point: fakeclr's networks, heads and queue keys."""
    state: dict = {"G": run.G.state_dict(), "D": run.D.state_dict(), "G_ema": run.G_ema.state_dict()}
    for name, module in run.method.modules.items():
        state[f"{name}.keys" if name.endswith("_queue") else name] = (
            module.keys.clone() if name.endswith("_queue") else module.state_dict())
    return state


def train(run: assembly.TrainingRun, case: cases.Case, gen_c: list[torch.Tensor] | None = None,
          record: bool = True, warmup: int | None = None) -> list[dict] | float:
    """``case.iterations`` iterations of fakeclr's loop: the records, or (``warmup``) the sec/kimg of the
    iterations after the first ``warmup``. ``gen_c``: the anchor's labels of the fakes ``[phases, B, c_dim]`` per
    iteration (conditional StyleGAN2 cases); ``None``: fakeclr draws its own."""
    original = run.backbone

    def labels(data, n, c_dim, device):
        if not c_dim or gen_c is None:
            return original.fake_labels(data, n, c_dim, device)
        return gen_c[run.iteration].reshape(n, c_dim).to(device)
    run.backbone = dataclasses.replace(original, fake_labels=labels)
    monitor = Recorder() if record else _Quiet()
    try:
        start = None
        for k in range(case.iterations):
            if warmup is not None and k == warmup:
                start = (time.perf_counter(), run.cur_nimg)
            loop.train_step(run, monitor)
            if record:
                monitor.records.append({"iteration": k, "phase": "end", "losses": {}, "tensors": snapshot(run)})
    finally:
        run.backbone = original
    if warmup is not None:
        return (time.perf_counter() - start[0]) / (run.cur_nimg - start[1]) * 1000
    return monitor.records
