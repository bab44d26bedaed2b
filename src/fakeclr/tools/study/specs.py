"""What a study is: the scales (how big every run is), the built-in studies (named runs and their options), the
paper's numbers for the same comparisons, and the reading of a spec file into a :class:`Study`.

A run's options are config fields: by path (``contrastive.lam``, any field of
:class:`~fakeclr.config.TrainConfig`) or by the name of their ``fakeclr train`` flag without the dashes, with ``-``
or ``_`` (``ada_kimg``, ``pl-weight``); :func:`run_overrides` turns them into ``{path: value}`` for
:func:`fakeclr.train.resolve.resolve`. ``init`` names a network to fine-tune from (``fakeclr train --init``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import options as config_options
from ...errors import UserError

__all__ = ["Scale", "SCALES", "Study", "STUDIES", "PAPER", "load_study", "select_runs", "option_path",
           "run_overrides", "run_init"]


# ---------------------------------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class Scale:
    """How big every run of a study is: a ``fakeclr train`` preset and the study's defaults for it.

    ``kimg``: training length; ``eval_every``: kimg between evaluation points; ``snap``: kimg between snapshots
    (at most ``eval_every``), so a run stopped without warning loses at most that much; ``num_gen``:
    generated images per FID/KID (and PPL samples);
    ``continuity_paths``: interpolation paths of the continuity score; ``options``: options (as a run's) of
    every run at this scale that its augmentation reads (a run's own options come after them and win);
    ``backbone_presets``: the preset of a run that chooses another backbone (``{"biggan": "biggan-cpu"}``).
    """
    preset: str
    resolution: int | None
    kimg: float
    eval_every: float
    num_gen: int
    continuity_paths: int
    snap: float
    options: dict[str, Any] = field(default_factory=dict)
    backbone_presets: dict[str, str] = field(default_factory=dict)

    def preset_for(self, backbone: str | None) -> str:
        """The preset of a run with ``backbone`` (``None``: the run leaves it to the scale's preset)."""
        if backbone is None or backbone not in self.backbone_presets:
            return self.preset
        return self.backbone_presets[backbone]


SCALES: dict[str, Scale] = {
    # Every code path in seconds (tests): 16 px, a few iterations, final evaluation only.
    "tiny": Scale("tiny", 16, kimg=0.05, eval_every=0.05, num_gen=64, continuity_paths=8, snap=0.025),
    # 32 px with the lfw-demo network (channels 64..32, batch 16, ADA-linear, mirror): about 30-40 sec/kimg per
    # run with one thread each on this 2-core machine (docs/results.md).
    # An adaptive p (ADA, APA) moves by at most batch * interval / (ada_kimg * 1000) per update: with
    # StyleGAN2-ADA's ada_kimg = 500, p could not pass 0.08 in a 40-kimg run. 4 kimg lets it cross [0, 1] in a
    # tenth of the run, as 500 kimg does in a few-thousand-kimg run (the ADA-linear schedule scales by itself).
    # The target stays FakeCLR's 0.6 (the paper's setting, and the base every cpu32 result was measured on),
    # whatever the README demo's preset uses.
    "cpu32": Scale("lfw-demo", 32, kimg=40.0, eval_every=10.0, num_gen=1000, continuity_paths=50, snap=5.0,
                   options={"ada-kimg": 4, "target": 0.6}),
    # Table 4 on this machine (issue 29): Fashion-MNIST padded to 32 px, the CPU presets of both backbones (about
    # 25 sec/kimg each on one thread); the length was chosen from the FID-vs-kimg pilot (docs/results.md).
    # An adaptive p (ADA, APA) gets --ada-kimg 10, so that it can cross [0, 1] within a tenth of the run (cpu32's
    # reasoning); FID of 2000 generated images at 51.2 and 102.4 kimg.
    "cifar-cpu": Scale("cifar-cpu", 32, kimg=102.4, eval_every=51.2, num_gen=2000, continuity_paths=0, snap=12.8,
                       options={"ada-kimg": 10}, backbone_presets={"biggan": "biggan-cpu"}),
    # Table 4 as the papers run it (CIFAR-10, 32 px): StyleGAN2-ADA's cifar config and DiffAugment's BigGAN-CIFAR,
    # the BigGAN length (50M images) for both, FID of 10k generated images; a GPU job.
    "cifar": Scale("cifar", 32, kimg=50000.0, eval_every=2000.0, num_gen=10000, continuity_paths=0, snap=400.0,
                   backbone_presets={"biggan": "biggan-cifar"}),
    # The paper's few-shot setting (256 px, batch 64): a GPU job.
    "paper256": Scale("fewshot256", 256, kimg=10000.0, eval_every=500.0, num_gen=5000, continuity_paths=50,
                      snap=100.0),
}


# ---------------------------------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class Study:
    """Runs by name (their options: config field paths or ``fakeclr train`` flag names, see :func:`run_overrides`),
    the run the claims are about (``subject``),
    and the paper's numbers for the same comparison (:data:`PAPER`)."""
    name: str
    description: str
    runs: dict[str, dict[str, Any]]
    subject: str | None = None
    paper: str | None = None
    # Claims "a < b" to test, where one subject does not fit (Table 4 compares within each backbone and setting).
    comparisons: tuple[tuple[str, str], ...] = ()


# The contrastive methods run on ADA-linear, the augmentation of FakeCLR's released training command; `ada-linear`
# alone is in every comparison so that what the contrastive term adds can be read off directly.
_LINEAR = {"aug": "ada-linear"}
_RELEASED = {"forgetting": "official", "mixing": "independent", "reuse-forward": False, "positive-first": True,
             "head-momentum": "forward", "head-optimizer": "own"}
# Table 4: each row's method on its backbone, in each setting the paper reports (BigGAN: conditional only). The
# BigGAN rows are APA (Jiang et al. 2021) and FakeCLR on the same augmentation; the StyleGAN rows InsGen and FakeCLR
# on ADA, InsGen's CIFAR setting. Subsets: 20 % of the training images chosen as StyleGAN2-ADA's --subset does with
# seed 0 (the same images as DiffAugment's BigGAN-CIFAR picks; docs/training.md).
_TABLE4_ROWS = {"biggan-apa": {"backbone": "biggan", "aug": "apa", "method": "ada"},
                "biggan-fakeclr": {"backbone": "biggan", "aug": "apa", "method": "fakeclr"},
                "stylegan2-insgen": {"backbone": "stylegan2", "aug": "ada", "method": "insgen"},
                "stylegan2-fakeclr": {"backbone": "stylegan2", "aug": "ada", "method": "fakeclr"}}
_TABLE4_SETTINGS = {"cond-20": {"cond": True, "subset": 0.2}, "cond-full": {"cond": True},
                    "uncond-20": {"subset": 0.2}, "uncond-full": {}}
_TABLE4_RUNS = {f"{row}-{setting}": {**opts, **data} for row, opts in _TABLE4_ROWS.items()
                for setting, data in _TABLE4_SETTINGS.items()
                if not (row.startswith("biggan") and setting.startswith("uncond"))}
_TABLE4_PAIRS = tuple((f"{b}-fakeclr-{s}", f"{b}-{other}-{s}") for b, other in (("biggan", "apa"),
                                                                               ("stylegan2", "insgen"))
                      for s in _TABLE4_SETTINGS if f"{b}-fakeclr-{s}" in _TABLE4_RUNS)
STUDIES: dict[str, Study] = {
    "table2": Study("table2", "supplementary Table 2: augmentation baselines, InsGen and FakeCLR", {
        "ada": {"method": "ada", "aug": "ada"},
        "ada-linear": {"method": "ada", **_LINEAR},
        "diffaugment": {"method": "ada", "aug": "diffaugment"},
        "apa": {"method": "ada", "aug": "apa"},
        "insgen": {"method": "insgen", **_LINEAR},
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        # The released code's behaviour, every switch of docs/parity.md: m_i = 1 on every negative, the perturbed
        # view style-mixed independently, a second D forward for the queries drawn after the positive view, the
        # momentum head stepped at each of its forwards and trained by an Adam of its own with G's settings.
        "fakeclr-released": {"method": "fakeclr", **_RELEASED, **_LINEAR},
    }, subject="fakeclr", paper="table2"),
    "ablation": Study("ablation", "FakeCLR with each technique switched off (Sec. 4; supp. Eq. 1, Alg. 1)", {
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        "fixed-perturbation": {"method": "fakeclr", "perturbation": "fixed", **_LINEAR},
        "forgetting-official": {"method": "fakeclr", "forgetting": "official", **_LINEAR},
        "forgetting-none": {"method": "fakeclr", "forgetting": "none", **_LINEAR},
        "mixing-independent": {"method": "fakeclr", "mixing": "independent", **_LINEAR},
        "queue-generated": {"method": "fakeclr", "queue-sizer": "generated", **_LINEAR},
        # A fixed queue of 200 keys spans several iterations, so the forgetting factor can act (Table 3's setting).
        "queue200": {"method": "fakeclr", "queue-size": 200, **_LINEAR},
        "queue200-forgetting-official": {"method": "fakeclr", "queue-size": 200, "forgetting": "official", **_LINEAR},
        "queue200-forgetting-none": {"method": "fakeclr", "queue-size": 200, "forgetting": "none", **_LINEAR},
    }, subject="fakeclr"),
    "table3": Study("table3", "supplementary Table 3: path-length weight 2 / 5 / 10 "
                              "(FakeCLR with a fixed queue of 200)", {
        **{f"insgen-pl{w}": {"method": "insgen", "pl-weight": w, **_LINEAR} for w in (2, 5, 10)},
        **{f"fakeclr-pl{w}": {"method": "fakeclr", "pl-weight": w, "queue-size": 200, **_LINEAR} for w in (2, 5, 10)},
    }, subject="fakeclr-pl2", paper="table3"),
    "table5": Study("table5", "supplementary Table 5: real images in the fake queue (Config A / B on the "
                              "instance-perturbation baseline)", {
        "instance-perturbation": {"method": "instance-perturbation", **_LINEAR},
        "fakeclr": {"method": "fakeclr", **_LINEAR},
        "config-a": {"method": "instance-perturbation", "real-in-fake-queue": "start", **_LINEAR},
        "config-b": {"method": "instance-perturbation", "real-in-fake-queue": "half", **_LINEAR},
    }, subject="instance-perturbation", paper="table5"),
    "table4": Study("table4", "supplementary Table 4: CIFAR-10 (here Fashion-MNIST at 32 px on the CPU), BigGAN and "
                              "StyleGAN2, conditional and unconditional, 20 % and all of the training data",
                    _TABLE4_RUNS, paper="table4", comparisons=_TABLE4_PAIRS),
}

# The paper's numbers (../shared/paper-tables.md): study -> [(column label, data-name filter, metric kind,
# {run name: value})]. Metric kinds: "kid" (the paper prints KID x 1e-2, compared with ours x 100), "ppl", "fid".
PAPER: dict[str, list[tuple[str, str | None, str, dict[str, float]]]] = {
    "table2": [
        ("paper KID×100, Obama 256 px", "obama", "kid", {"ada": 1.29, "apa": 1.12, "insgen": 0.605, "fakeclr": 0.296}),
        ("paper PPL, Obama 256 px", "obama", "ppl", {"ada": 843, "apa": 836, "insgen": 818, "fakeclr": 752}),
        ("paper FID, Obama 256 px (released code)", "obama", "fid", {"diffaugment": 46.87, "fakeclr": 26.95}),
        ("paper FID, Grumpy Cat 256 px (released code)", "grumpy", "fid", {"diffaugment": 27.08, "fakeclr": 19.56}),
    ],
    "table3": [
        ("paper FID, FFHQ-2K 256 px", None, "fid", {"insgen-pl2": 12.11, "insgen-pl5": 13.87, "insgen-pl10": 12.29,
                                                  "fakeclr-pl2": 10.40, "fakeclr-pl5": 10.78, "fakeclr-pl10": 11.32}),
        ("paper PPL, FFHQ-2K 256 px", None, "ppl", {"insgen-pl2": 199, "insgen-pl5": 183, "insgen-pl10": 180,
                                                  "fakeclr-pl2": 171, "fakeclr-pl5": 160, "fakeclr-pl10": 145}),
    ],
    "table4": [
        # The BigGAN rows: FID of 10k generated images against the 10k test images (DiffAugment's protocol); the
        # StyleGAN rows: the protocol of InsGen's code (docs/metrics.md says which is known and which a guess).
        ("paper FID, CIFAR-10", None, "fid", {
            "biggan-apa-cond-20": 15.3, "biggan-apa-cond-full": 8.28,
            "biggan-fakeclr-cond-20": 13.6, "biggan-fakeclr-cond-full": 7.62,
            "stylegan2-insgen-cond-20": 5.3, "stylegan2-insgen-cond-full": 2.24,
            "stylegan2-insgen-uncond-20": 4.83, "stylegan2-insgen-uncond-full": 2.7,
            "stylegan2-fakeclr-cond-20": 4.28, "stylegan2-fakeclr-cond-full": 2.13,
            "stylegan2-fakeclr-uncond-20": 4.6, "stylegan2-fakeclr-uncond-full": 2.32}),
    ],
    "table5": [
        ("paper FID, FFHQ-2K 256 px", None, "fid", {"instance-perturbation": 11.29, "config-a": 12.46,
                                                  "config-b": 13.71}),
    ],
}

# What a study sets itself for every run, which a spec may not set per run: config fields by path, and the
# `fakeclr train` arguments that are not config fields.
_RESERVED_PATHS = {"data.source", "seed", "kimg", "data.resolution", "snapshot_kimg", "metrics", "metrics_num_gen",
                   "preset"}
_RESERVED_ARGS = {"outdir", "preset", "resume", "dry-run", "device", "tensorboard", "no-tensorboard"}


def load_study(name_or_spec: str) -> Study:
    """A built-in study by name, or a SPEC file (``.toml`` / ``.json``): ``{"runs": {name: {option: value}}}``
    (or the run table alone), optionally with ``subject`` (the run the claims are about) and ``description``."""
    if name_or_spec in STUDIES:
        return STUDIES[name_or_spec]
    path = Path(name_or_spec)
    if not path.is_file():
        raise UserError(f"'{name_or_spec}' is neither a built-in study ({', '.join(STUDIES)}) nor a spec file; "
                        "give one of those names or the path of a .toml/.json file.")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib
            spec = tomllib.loads(path.read_text())
        else:
            spec = json.loads(path.read_text())
    except ImportError:
        raise UserError(f"Reading {path} needs Python 3.11 (tomllib); write the spec as JSON instead.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"Spec file {path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} "
                        f"({e}); fix it and run the study again.") from None
    if not isinstance(spec, dict):
        raise UserError(f"Spec file {path} must hold a table of runs: name -> {{option: value}}.")
    runs = spec.get("runs", spec) if isinstance(spec.get("runs"), dict) else spec
    runs = {k: v for k, v in runs.items() if k not in ("subject", "description")}
    if not runs or not all(isinstance(v, dict) for v in runs.values()):
        raise UserError(f"Spec file {path} must hold a table of runs: name -> {{option: value}} "
                        "(e.g. {\"runs\": {\"ada\": {\"method\": \"ada\"}}}).")
    for name, options in runs.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
            raise UserError(f"Run name '{name}' in {path} must be letters, digits and _.+- (it names a directory).")
        reserved = [_user_name(k) for k in options if _flag(k) in _RESERVED_ARGS or option_path(k) in _RESERVED_PATHS]
        if reserved:
            raise UserError(f"Run '{name}' in {path} sets {', '.join(reserved)}, which the study sets for every "
                            "run (use the study's --data, --seeds, --kimg, --scale instead).")
        run_overrides(name, options, where=f" in {path}")
    subject = spec.get("subject")
    if subject is not None and subject not in runs:
        raise UserError(f"subject '{subject}' in {path} is not one of its runs ({', '.join(runs)}).")
    return Study(path.stem, str(spec.get("description", f"runs of {path.name}")), runs, subject=subject)


def select_runs(study: Study, names: list[str]) -> Study:
    """``study`` with only the runs ``names`` (in the study's order); the same run directories, so a subset run
    now is skipped when the whole study runs later. The subject stays only if it is among them."""
    unknown = [n for n in names if n not in study.runs]
    if unknown:
        raise UserError(f"--runs: '{unknown[0]}' is not a run of study {study.name} "
                        f"({', '.join(study.runs)}); give a comma-separated list of those names.")
    runs = {k: v for k, v in study.runs.items() if k in names}
    return dataclasses.replace(study, runs=runs, subject=study.subject if study.subject in runs else None)


def _flag(key: str) -> str:
    return str(key).strip().lstrip("-").replace("_", "-")


def _fields() -> dict[str, tuple[type, str]]:
    from ...train.resolve import settable_fields
    return settable_fields()


def _flags() -> dict[str, Any]:
    """``{flag name without dashes: Option}`` of ``fakeclr train``'s config options."""
    return {o.flag.lstrip("-"): o for o in config_options()}


def option_path(key: str) -> str | None:
    """The config field a spec's key sets: a field path as it is (``contrastive.lam``), else the field of the
    ``fakeclr train`` flag it names (``ada_kimg`` / ``ada-kimg`` -> ``augment.speed_kimg``); ``None`` for neither."""
    key = str(key)
    if key in _fields():
        return key
    opt = _flags().get(_flag(key))
    return opt.path if opt is not None else None


def _user_name(key: str) -> str:
    """How a message names a spec's key: its flag where it names one, else the key as written."""
    return "--" + _flag(key) if _flag(key) in _flags() or _flag(key) in _RESERVED_ARGS else str(key)


def run_init(options: dict[str, Any]) -> str | None:
    """The network file a run fine-tunes from (its ``init`` option, ``fakeclr train --init``), if any."""
    return next((str(v) for k, v in options.items() if _flag(k) == "init" and v is not None), None)


def run_overrides(run: str, options: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A run's options as ``{field path: value}``; a value written as text for a number field (``"500"``) is read
    as that number, as ``fakeclr train`` reads its flag. An unknown key gets one sentence naming the run and it."""
    fields = _fields()
    out = {}
    for key, value in options.items():
        if _flag(key) == "init":                  # a network file to fine-tune from (run_init), not a field
            continue
        path = option_path(key)
        if path is None:
            raise UserError(f"Run '{run}'{where} sets '{key}', which is neither a `fakeclr train` option nor a config "
                            "field path (e.g. contrastive.lam); fix or drop it.")
        kind = fields[path][0]
        if isinstance(value, str) and kind in (int, float):
            try:
                value = kind(value)
            except ValueError:
                raise UserError(f"Run '{run}'{where} sets {_user_name(key)} to {value!r}, which is not a "
                                f"{kind.__name__}.") from None
        out[path] = value
    return out
