"""Typed training configuration and the named presets.

A run is fully described by one :class:`TrainConfig` (nested dataclasses of plain values). It is written to the run
directory as ``config.json`` and stored inside every checkpoint, so a checkpoint rebuilds its networks and a run
directory resumes without the original command line.

Presets are plain data (:data:`PRESETS`); each value cites where it comes from. ``auto`` is filled in from the
resolution and the number of processes by StyleGAN2-ADA's heuristic (:func:`resolve_auto`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

AUGMENTATIONS = ("ada", "ada-linear", "fixed", "diffaugment", "apa", "none")


@dataclass
class DataConfig:
    source: str = "lfw"            # folder, zip, or "lfw" (the embedded default: 100 LFW faces, 32x32 grayscale)
    resolution: int | None = None  # None = the data's own resolution
    channels: int | None = None    # None = decided by the data (1 if every image is grayscale, else 3)
    mirror: bool = False           # x-flip copies double the data set
    subset: float | None = None    # a count (>= 1) or a fraction (< 1) of the images, picked with subset_seed
    subset_seed: int = 0
    skip_bad: bool = False         # skip unreadable images instead of stopping
    use_labels: bool = False       # condition G and D on dataset.json labels


@dataclass
class NetworkConfig:
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384      # fmaps * 32768 (StyleGAN2-ADA)
    channel_max: int = 512
    conv_clamp: int | None = 256
    mbstd_group_size: int = 4
    num_fp16_res: int = 0          # mixed precision (StyleGAN2-ADA): the N highest resolutions of G and D in fp16 on
                                   # CUDA; capped at the network's resolution count (4x4 and 8x8 stay fp32)
    fp16_channels_last: bool = False   # channels-last activations in those blocks (StyleGAN2-ADA's --nhwc)


@dataclass
class LossConfig:
    r1_gamma: float = 1.0
    r1_interval: int = 16          # lazy R1 (StyleGAN2 Sec. 3.1): every N iterations with the gain N; 0 or 1 =
                                   # every iteration, in its own Dreg phase (a second D optimizer step per
                                   # iteration, not StyleGAN2-ADA's single fused "Dboth" step)
    pl_weight: float = 2.0         # path-length regularisation weight (FakeCLR Table 3 compares 2, 5, 10)
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9


@dataclass
class OptimConfig:
    lr: float = 0.0025             # Adam, the same for G and D (StyleGAN2-ADA)
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8
    freeze_d: int = 0              # FreezeD (Mo et al. 2020): D's first N layers from the top resolution stay fixed,
                                   # counted as StyleGAN2-ADA's --freezed (fromrgb, conv0, conv1, skip per block)


@dataclass
class InitConfig:
    """Where a fine-tuning run's weights came from (``fakeclr train --init``); empty for a run from scratch.

    ``G`` and ``D`` are the constructor configs read from that file, so the architecture always matches it and a
    resumed run rebuilds it without the file."""
    source: str | None = None       # the file given to --init (a fakeclr network file or a network pickle)
    sha256: str | None = None       # of that file
    network: str | None = None      # the fakeclr network file the weights are loaded from (a converted pickle)
    G: dict[str, Any] | None = None
    D: dict[str, Any] | None = None


@dataclass
class AugmentConfig:
    kind: str = "ada"              # one of AUGMENTATIONS
    pipe: str = "bgc"              # ADA pipeline preset (blit, geom, color, bg, bgc, bgcf, bgcfn, bgcfnc, ...)
    target: float = 0.6            # ADA / APA target of E[sign(D(real))]; ADA-linear's final p
    p: float = 0.0                 # initial p (adaptive), or the constant p (fixed)
    interval: int = 4              # iterations between p updates
    speed_kimg: float = 500.0      # kimg for p to move by 1 (adaptive)
    diffaugment_policy: str = "color,translation,cutout"


METHODS = ("ada", "instance-real", "instance-fake", "instance-perturbation", "insgen", "fakeclr")


@dataclass
class ContrastiveConfig:
    """The contrastive family on top of the GAN (FakeCLR Sec. 3-4). ``method`` picks a preset of the fields below
    (:data:`METHOD_PRESETS`); any field can then be changed on its own for ablations."""
    method: str = "ada"
    real: bool = False                  # Instance-real: real-image instance discrimination (real head + queue)
    fake_view: str = "none"             # positive of a fake: "none" (no fake term), "augment" (2nd augmentation of
                                        # the same fake: Instance-fake) or "perturb" (G(z + eps))
    perturbation: str = "noise"         # "noise": eps = n * lam * min(|z|, clip) (FakeCLR); "fixed": radius * n
    lam: float = 0.1
    clip: float = 3.0
    radius: float = 0.15
    on_g: bool = False                  # the fake contrastive term also trains G (InsGen, FakeCLR)
    lw_real: float = 1.0
    lw_fake: float = 1.0
    lw_fake_on_g: float = 0.1
    tau: float = 0.2                    # InfoNCE temperature
    tau_m: float = 0.01                 # forgetting-factor temperature (supp. Eq. 1)
    forgetting: str = "none"            # "paper" | "official" (m_i = 1, the released behaviour) | "none"
    queue_size: int | None = None       # fixed fake-queue size; None = from queue_sizer
    queue_sizer: str = "dataset"        # "dataset" (5% of the images, x2 mirrored) | "generated" (follows diversity)
    queue_fraction: float = 0.05
    queue_min: int = 16
    queue_max: int | None = None        # "generated" sizer's upper bound; None = the dataset rule's size
    real_queue_size: int | None = None  # None = the dataset rule
    head_dim: int = 128
    momentum: float = 0.999             # D_ema and momentum heads
    mixing: str = "shared"              # style mixing of the two fake views: "shared" cutoff and second latent, or
                                        # "independent" (the released code)
    real_in_fake_queue: str = "none"    # Table 5: "start" (Config A) or "half" (Config B): half the enqueued keys
                                        # of the fake queue come from real images
    reuse_forward: bool = True          # queries reuse the adversarial D forward of the same phase (cost, Table 1)


# Methods of the paper's comparison (FakeCLR Table 1/2) as presets of ContrastiveConfig.
METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "ada": dict(),
    "instance-real": dict(real=True),
    "instance-fake": dict(fake_view="augment"),
    "instance-perturbation": dict(fake_view="perturb", perturbation="fixed"),
    # InsGen (Yang et al. 2021): real + fake-perturbation instance discrimination, and the fake term on G.
    "insgen": dict(real=True, fake_view="perturb", perturbation="fixed", on_g=True),
    # FakeCLR: contrastive learning only on perturbed fakes, noise-related augmentation, diversity-aware queue,
    # forgetting factor, and the term on G.
    "fakeclr": dict(fake_view="perturb", perturbation="noise", on_g=True, forgetting="paper", queue_sizer="dataset"),
}


def method_config(name: str) -> ContrastiveConfig:
    if name not in METHOD_PRESETS:
        raise UserError(f"Unknown method '{name}' (--method); choose one of: {', '.join(METHOD_PRESETS)}.")
    return ContrastiveConfig(method=name, **METHOD_PRESETS[name])


@dataclass
class TrainConfig:
    preset: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    init: InitConfig = field(default_factory=InitConfig)
    kimg: float = 25000.0          # training length, thousands of real images shown to D
    batch: int = 32                # total over all processes
    ema_kimg: float = 10.0         # half-life of G_ema, kimg
    ema_rampup: float | None = 0.05
    tick_kimg: float = 4.0         # status line, stats.jsonl and TensorBoard every tick
    snapshot_kimg: float = 200.0   # sample grid, network snapshot and training state
    metrics: list[str] = field(default_factory=list)   # computed on G_ema at every snapshot (fakeclr.metrics)
    metrics_num_gen: int | None = None                  # generated images per metric; None = the metric's own
    seed: int = 0

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    """Rebuild a (nested) dataclass from :func:`dataclasses.asdict` output; unknown keys are an error."""
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in d.items():
        if key not in fields:
            raise UserError(f"Unknown configuration field '{key}' for {cls.__name__}; the file was written by "
                            "another version of fakeclr.")
        sub = _DATACLASS_FIELDS.get((cls.__name__, key))
        kwargs[key] = _from_dict(sub, value) if sub is not None else value
    return cls(**kwargs)


_DATACLASS_FIELDS = {("TrainConfig", "data"): DataConfig, ("TrainConfig", "network"): NetworkConfig,
                     ("TrainConfig", "loss"): LossConfig, ("TrainConfig", "optim"): OptimConfig,
                     ("TrainConfig", "augment"): AugmentConfig, ("TrainConfig", "contrastive"): ContrastiveConfig,
                     ("TrainConfig", "init"): InitConfig}


# ---------------------------------------------------------------------------------------------------- presets
# Each preset lists only what differs from the dataclass defaults. Sources:
#   [ADA]     StyleGAN2-ADA (Karras et al. 2020), train.py `cfg_specs`: paper256, cifar and the `auto` heuristic.
#   [FakeCLR] the FakeCLR README's training command: cfg=paper256, batch 64, mirror, ada_linear (target 0.6).
PRESETS: dict[str, dict[str, Any]] = {
    # Every code path in seconds: for tests and smoke runs.
    "tiny": dict(
        data=dict(resolution=16),
        network=dict(z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32, mbstd_group_size=4),
        loss=dict(r1_gamma=0.01, r1_interval=4, pl_interval=2),
        augment=dict(kind="ada", interval=2),
        kimg=0.2, batch=8, ema_kimg=0.05, ema_rampup=0.05, tick_kimg=0.04, snapshot_kimg=0.1,
    ),
    # The README's main job: FakeCLR on the embedded LFW faces at 32x32, 2 CPU cores, about 10 minutes.
    "lfw-demo": dict(
        data=dict(source="lfw", resolution=32, mirror=True),
        # Channels 64 at 4-16 px and 32 at 32 px: about 18 sec/kimg on 2 CPU cores (benchmarks/train_speed.py).
        network=dict(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64),
        loss=dict(r1_gamma=0.05),        # ADA `auto`: 0.0002 * 32**2 / batch ~ 0.013; a few-shot set wants more
        augment=dict(kind="ada-linear", target=0.6),
        contrastive=dict(method="fakeclr"),
        kimg=24.0, batch=16, ema_kimg=1.0, ema_rampup=0.05, tick_kimg=1.0, snapshot_kimg=4.0,
    ),
    # FakeCLR's few-shot setting [FakeCLR]: paper256 [ADA] + mirror + ADA-linear + FakeCLR, 256x256.
    "fewshot256": dict(
        data=dict(resolution=256, mirror=True),
        network=dict(mapping_layers=8, channel_base=16384, channel_max=512, mbstd_group_size=8, num_fp16_res=4),
        loss=dict(r1_gamma=1.0),
        augment=dict(kind="ada-linear", target=0.6),
        contrastive=dict(method="fakeclr"),
        kimg=10000.0, batch=64, ema_kimg=20.0, ema_rampup=None, tick_kimg=4.0, snapshot_kimg=200.0,
    ),
    # [ADA] paper256: mb 64, mbstd 8, fmaps 0.5, lr 0.0025, gamma 1, ema 20, no ramp-up, mapping 8.
    "paper256": dict(
        data=dict(resolution=256),
        network=dict(mapping_layers=8, channel_base=16384, channel_max=512, mbstd_group_size=8, num_fp16_res=4),
        loss=dict(r1_gamma=1.0),
        augment=dict(kind="ada", target=0.6),
        kimg=25000.0, batch=64, ema_kimg=20.0, ema_rampup=None, tick_kimg=4.0, snapshot_kimg=200.0,
    ),
    # [ADA] cifar: mb 64, mbstd 32, fmaps 1, gamma 0.01, ema 500, ramp 0.05, mapping 2, no PL reg, no style mixing.
    # (ADA also switches D to the 'orig' architecture; fakeclr has the ResNet D only.)
    "cifar": dict(
        data=dict(resolution=32),
        network=dict(mapping_layers=2, channel_base=32768, channel_max=512, mbstd_group_size=32, num_fp16_res=4),
        loss=dict(r1_gamma=0.01, pl_weight=0.0, style_mixing_prob=0.0),
        augment=dict(kind="ada", target=0.6),
        kimg=100000.0, batch=64, ema_kimg=500.0, ema_rampup=0.05, tick_kimg=4.0, snapshot_kimg=200.0,
    ),
    # [ADA] auto: batch, mbstd, fmaps, lr, gamma and EMA follow the resolution and process count (resolve_auto).
    "auto": dict(
        network=dict(mapping_layers=2, num_fp16_res=4),
        kimg=25000.0, ema_rampup=0.05, tick_kimg=4.0, snapshot_kimg=200.0,
    ),
}


def resolve_auto(cfg: TrainConfig, resolution: int, world_size: int) -> None:
    """Fill in the `auto` preset for a data resolution and a process count ([ADA] train.py heuristic)."""
    res, gpus = resolution, world_size
    cfg.batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
    cfg.network.mbstd_group_size = min(cfg.batch // gpus, 4)
    cfg.network.channel_base = 32768 if res >= 512 else 16384
    cfg.optim.lr = 0.002 if res >= 1024 else 0.0025
    cfg.loss.r1_gamma = 0.0002 * res ** 2 / cfg.batch
    cfg.ema_kimg = cfg.batch * 10 / 32


def _merge(obj, overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict):
            _merge(getattr(obj, key), value)
        else:
            setattr(obj, key, value)


def preset_config(name: str) -> TrainConfig:
    """A :class:`TrainConfig` for a named preset (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise UserError(f"Unknown preset '{name}' (--preset); choose one of: {', '.join(PRESETS)}.")
    cfg = TrainConfig(preset=name)
    overrides = copy.deepcopy(PRESETS[name])
    method = overrides.get("contrastive", {}).pop("method", None)
    if method is not None:
        cfg.contrastive = method_config(method)
    _merge(cfg, overrides)
    return cfg


def is_power_of_two(n: int) -> bool:
    return n >= 4 and (n & (n - 1)) == 0


def validate(cfg: TrainConfig, world_size: int = 1) -> None:
    """Check a resolved config; raise :class:`UserError` naming the flag at fault."""
    if cfg.augment.kind not in AUGMENTATIONS:
        raise UserError(f"Unknown augmentation '{cfg.augment.kind}' (--aug); choose one of: {', '.join(AUGMENTATIONS)}.")
    res = cfg.data.resolution
    if res is not None and not is_power_of_two(res):
        lower = 2 ** int(math.floor(math.log2(max(res, 4))))
        raise UserError(f"--resolution {res} is not a power of two; use {lower} or {lower * 2}.")
    if cfg.batch < 1 or cfg.batch % world_size != 0:
        raise UserError(f"--batch {cfg.batch} is not divisible by the number of processes ({world_size}); "
                        f"use a multiple of {world_size}.")
    per_rank = cfg.batch // world_size
    group = min(cfg.network.mbstd_group_size, per_rank)
    if group > 0 and per_rank % group != 0:
        raise UserError(f"--batch {cfg.batch} gives {per_rank} images per process, which the minibatch-stddev "
                        f"group size {cfg.network.mbstd_group_size} does not divide; use a multiple of it.")
    if cfg.kimg <= 0:
        raise UserError(f"--kimg must be positive (got {cfg.kimg}).")
    if cfg.loss.r1_gamma < 0:
        raise UserError(f"--gamma must be non-negative (got {cfg.loss.r1_gamma}).")
    if cfg.loss.pl_weight < 0:
        raise UserError(f"--pl-weight must be non-negative (got {cfg.loss.pl_weight}).")
    if not 0 <= cfg.augment.target <= 1:
        raise UserError(f"--target must lie in [0, 1] (got {cfg.augment.target}).")
    if cfg.augment.speed_kimg <= 0:
        raise UserError(f"--ada-kimg must be positive (got {cfg.augment.speed_kimg}).")
    if not 0 <= cfg.augment.p <= 1:
        raise UserError(f"--p must lie in [0, 1] (got {cfg.augment.p}).")
    if cfg.snapshot_kimg <= 0 or cfg.tick_kimg <= 0:
        raise UserError("--snap and the tick interval must be positive.")
    if cfg.optim.freeze_d < 0:
        raise UserError(f"--freeze-d must be non-negative (got {cfg.optim.freeze_d}).")
    validate_contrastive(cfg.contrastive)


_CHOICES = {"fake_view": ("none", "augment", "perturb"), "perturbation": ("noise", "fixed"),
            "forgetting": ("paper", "official", "none"), "queue_sizer": ("dataset", "generated"),
            "mixing": ("shared", "independent"), "real_in_fake_queue": ("none", "start", "half")}


def validate_contrastive(c: "ContrastiveConfig") -> None:
    if c.method not in METHOD_PRESETS:
        raise UserError(f"Unknown method '{c.method}' (--method); choose one of: {', '.join(METHOD_PRESETS)}.")
    for name, choices in _CHOICES.items():
        if getattr(c, name) not in choices:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {getattr(c, name)!r} is not one of: {', '.join(choices)}.")
    if c.queue_size is not None and c.queue_size < 1:
        raise UserError(f"--queue-size must be at least 1 (got {c.queue_size}).")
    if c.tau <= 0 or c.tau_m <= 0:
        raise UserError("--tau and --tau-m must be positive.")
    if c.real_in_fake_queue != "none" and c.fake_view == "none":
        raise UserError("--real-in-fake-queue needs a fake contrastive term (a method with a fake queue, e.g. fakeclr).")
