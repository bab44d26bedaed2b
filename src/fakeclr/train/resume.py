"""The resume policy: which training state a run continues from, and which settings may change when it does."""

from __future__ import annotations

from pathlib import Path

from ..config import AUGMENTATIONS, TrainConfig
from ..errors import UserError
from . import checkpoint as ckpt

# Fields that may change when a run is continued: its length and the logging cadence.
CONTINUABLE = {"kimg", "tick_kimg", "snapshot_kimg", "metrics", "metrics_num_gen", "metrics_ref"}


def resume_target(resume: str | Path | None, run_dir: Path) -> Path | None:
    """The training state to continue from: ``resume`` (a file, or the newest state of a directory), else the
    newest state in ``run_dir``, else ``None``."""
    if resume is not None and Path(resume).is_dir():
        found = ckpt.latest_state(resume)
        if found is None:
            raise UserError(f"--resume {resume} is a directory without training-state-*.pt files.")
        return found
    return Path(resume) if resume is not None else ckpt.latest_state(run_dir)


def _read_by_augmentation(cfg: dict) -> dict:
    """The augment section as far as its augmentation reads it: a field it does not read cannot make two runs
    differ (a study's ``--ada-kimg`` on an ADA-linear run, before such options were refused)."""
    aug = dict(cfg.get("augment", {}))
    if aug.get("kind") in AUGMENTATIONS:
        uses = AUGMENTATIONS.get(aug["kind"]).uses
        aug = {k: v for k, v in aug.items() if k == "kind" or k in uses}
    return aug


def check_resumable(saved: TrainConfig, new: TrainConfig, path) -> None:
    """One sentence if ``new`` would train differently from the run of ``saved``; what may change when a run is
    continued is :data:`CONTINUABLE`."""
    a, b = saved.to_dict(), new.to_dict()
    a["augment"], b["augment"] = _read_by_augmentation(a), _read_by_augmentation(b)
    for key in sorted(set(a) | set(b)):
        if key in CONTINUABLE or key in ("data", "init"):   # init: where the run began, kept from the state
            continue
        if a.get(key) != b.get(key):
            raise UserError(f"Checkpoint {path} was trained with different settings ({key}: {a.get(key)} there, "
                            f"{b.get(key)} now); use the same options, or another --outdir for a new run.")


def continue_config(saved: TrainConfig, new: TrainConfig) -> TrainConfig:
    """The saved config with the continuable fields taken from the new one (how the data are fed, too: streaming
    gives the same images)."""
    out = TrainConfig.from_dict(saved.to_dict())
    for key in CONTINUABLE:
        setattr(out, key, getattr(new, key))
    out.data.stream, out.data.workers = new.data.stream, new.data.workers
    return out
