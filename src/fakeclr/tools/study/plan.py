"""A study's plan: every run on every data set and seed as a :class:`Job`, the configuration it trains with given
as ``{field path: value}`` on a preset (resolved by :func:`fakeclr.train.resolve.resolve`, as ``fakeclr train``
resolves its flags), and its evaluation points."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import AUGMENTATIONS, TrainConfig, options as config_options, preset_config
from ...errors import UserError
from .specs import SCALES, Scale, Study, run_init, run_overrides

__all__ = ["Job", "plan_study", "check_jobs", "data_name", "evaluation_points"]


@dataclass
class Job:
    """One run of a study: where it lives, the preset and ``overrides`` (``{field path: value}``) that make its
    configuration, and how it is evaluated (``points`` in kimg, ``num_gen`` images per FID/KID)."""
    run: str
    data: str
    data_name: str
    seed: int
    run_dir: Path
    preset: str
    overrides: dict[str, Any]
    kimg: float
    points: list[float]
    num_gen: int
    continuity_paths: int
    noise_floor: bool = True  # whether this seed's evaluation measures the noise floor
    init: str | None = None   # the network the run fine-tunes from (fakeclr train --init)
    ref: str | None = None    # the reference set FID is measured against (a test split), else the training data

    @property
    def label(self) -> str:
        return f"{self.data_name}/{self.run}-seed{self.seed}"

    def config(self, notes: list[str] | None = None, dry_run: bool = False) -> TrainConfig:
        """The resolved configuration of this run (``notes``: sentences on values changed on the way); a pickled
        ``init`` network is converted into the run directory (into a temporary folder with ``dry_run``)."""
        from ...train.resolve import resolve
        init = None
        if self.init is not None:
            from ..finetune import resolve_init
            init = resolve_init(self.init, None if dry_run else self.run_dir)
        cfg = resolve(self.preset, self.overrides, init=init, notes=notes)
        if self.ref is not None:                          # before training: a reference of another size is refused
            from ...metrics.inputs import check_reference
            check_reference(self.ref, cfg.data.resolution, cfg.data.channels, "--ref")
        return cfg

    def command(self) -> str:
        """The run as the ``fakeclr train`` command that trains the same configuration, for people to read; the
        config fields without a flag follow as ``path=value``."""
        flags = {o.path: o for o in config_options()}
        args, fields = ["--preset", self.preset, "--outdir", str(self.run_dir), "--no-tensorboard"], []
        args += ["--init", self.init] if self.init is not None else []
        for path, value in self.overrides.items():
            opt = flags.get(path)
            if opt is None or (value is False and opt.switch):        # no flag says it
                fields.append(f"{path}={value}")
            elif value is True:
                args.append(opt.flag)
            elif value is False:
                args.append(opt.flag.replace("--", "--no-", 1))
            elif value is not None:
                args += [opt.flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return "fakeclr train " + " ".join(args) + (f" with {' '.join(fields)}" if fields else "")


def data_name(data: str) -> str:
    """The directory name a data set's runs go under: ``lfw`` or the folder/zip name without extension."""
    if data == "lfw":
        return "lfw"
    p = Path(data)
    return p.stem if p.suffix.lower() == ".zip" else p.name


def evaluation_points(kimg: float, every: float) -> list[float]:
    """kimg of the evaluation points: every ``every`` kimg, and the end. ``[kimg]`` alone if ``every >= kimg``."""
    n = int(math.floor(kimg / every + 1e-9))
    points = [round(every * i, 6) for i in range(1, n + 1)]
    if not points or abs(points[-1] - kimg) > 1e-9:
        points.append(kimg)
    return points


def plan_study(study: Study, datas: list[str], outdir: str | Path, scale: str = "cpu32",
               seeds: list[int] = (0, 1, 2), kimg: float | None = None, num_gen: int | None = None,
               eval_every: float | None = None, noise_seeds: int = 1, ref: str | None = None) -> list[Job]:
    """Every run of ``study`` on every data set and seed, in the order they will run (seed-major, so that the
    first seed of every method finishes first). The noise floor is measured on the first ``noise_seeds`` of
    ``seeds`` (0: on none). ``ref``: a reference set (a test split) that FID is measured against instead of the
    training data (:func:`~fakeclr.tools.study.evaluate.evaluate_run`)."""
    if scale not in SCALES:
        raise UserError(f"Unknown scale '{scale}' (--scale); choose one of: {', '.join(SCALES)}.")
    if not datas:
        raise UserError("Give at least one data set: --data DIR (repeatable), or --data lfw.")
    sc = SCALES[scale]
    kimg = sc.kimg if kimg is None else kimg
    every = sc.eval_every if eval_every is None else eval_every
    num_gen = sc.num_gen if num_gen is None else num_gen
    if kimg <= 0 or every <= 0:
        raise UserError("--kimg and --eval-every must be positive.")
    if num_gen < 2:
        raise UserError("--num-gen must be at least 2.")
    if noise_seeds < 0:
        raise UserError("--noise-seeds must be 0 or more.")
    if ref is not None and not Path(ref).exists():
        raise UserError(f"--ref {ref} does not exist; give the reference images (e.g. the test split written by "
                        "fakeclr dataset --split test).")
    noisy = set(list(seeds)[:noise_seeds])
    names = [data_name(d) for d in datas]
    if len(set(names)) != len(names):
        raise UserError(f"Two --data sets share the name '{next(n for n in names if names.count(n) > 1)}'; "
                        "rename one (runs are stored under DIR/<data name>/).")
    runs = {run: run_overrides(run, options) for run, options in study.runs.items()}
    inits = {run: run_init(options) for run, options in study.runs.items()}
    outdir = Path(outdir)
    jobs = []
    for seed in seeds:
        for data, dname in zip(datas, names):
            source = data if data == "lfw" else str(Path(data).resolve())
            for run, own in runs.items():
                overrides = {"data.source": source, "seed": seed, "kimg": float(kimg),
                             "snapshot_kimg": float(min(every, kimg, sc.snap))}
                if sc.resolution is not None:
                    overrides["data.resolution"] = sc.resolution
                overrides.update(_scale_overrides(sc, own, sc.preset_for(own.get("network.backbone"))))
                overrides.update(own)
                preset = sc.preset_for(own.get("network.backbone"))
                jobs.append(Job(run, source, dname, seed, outdir / dname / f"{run}-seed{seed}", preset,
                                overrides, kimg, evaluation_points(kimg, every), num_gen, sc.continuity_paths,
                                seed in noisy, inits[run],
                                None if ref is None else str(Path(ref).resolve())))
    return jobs


def _scale_overrides(sc: Scale, own: dict[str, Any], preset: str) -> dict[str, Any]:
    """The scale's options (by path) that the run's augmentation reads: ``augment.speed_kimg`` (``--ada-kimg``)
    goes to ADA and APA runs, not to ADA-linear or DiffAugment ones, which would refuse it."""
    aug = own.get("augment.kind", preset_config(preset).augment.kind)
    uses = AUGMENTATIONS.get(aug).uses if aug in AUGMENTATIONS else ()
    out = {}
    for path, value in run_overrides(f"of scale {sc.preset}", sc.options).items():
        if not path.startswith("augment.") or path.partition(".")[2] in uses:
            out[path] = value
    return out


def check_jobs(jobs: list[Job]) -> None:
    """Resolve every job's configuration as ``fakeclr train --dry-run`` would; the first error as one sentence
    naming the run."""
    for job in jobs:
        try:
            job.config(dry_run=True)
        except UserError as e:
            raise UserError(f"Run {job.label}: {e}") from None
