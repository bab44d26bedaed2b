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
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError, check_resolution
from .registry import Entry, Registry

# ---------------------------------------------------------------------------------------------------- registries
# What a run can choose by name: the builder of each (imported when a run is built), the fields of its section it
# reads, and for a method the parts it composes. Adding one is an entry here and its builder (docs/architecture.md).
_ADA_FIELDS = ("pipe", "target", "interval", "speed_kimg", "p")
AUGMENTATIONS = Registry("augmentation", "--aug", [
    Entry("ada", "adaptive p", "fakeclr.augment.augmentation:adaptive_ada", uses=_ADA_FIELDS),
    Entry("ada-linear", "", "fakeclr.augment.augmentation:linear_ada", uses=("pipe", "target", "interval")),
    Entry("fixed", "needs --p", "fakeclr.augment.augmentation:fixed_ada", uses=("pipe", "p")),
    Entry("diffaugment", "", "fakeclr.augment.augmentation:diffaugment", uses=("diffaugment_policy",)),
    Entry("apa", "", "fakeclr.augment.augmentation:apa", uses=("target", "interval", "speed_kimg", "p")),
    Entry("none", "", "fakeclr.augment.augmentation:no_augmentation"),
])
# Methods of the paper's comparison (FakeCLR Table 1/2): compositions of the contrastive parts (the fields of
# ContrastiveConfig they set), all built by ContrastiveMethod.
_CONTRASTIVE = "fakeclr.contrastive.method:ContrastiveMethod"
METHODS = Registry("method", "--method", [
    Entry("ada", "no contrastive term", _CONTRASTIVE),
    Entry("instance-real", "", _CONTRASTIVE, preset=dict(real_instance=True)),
    Entry("instance-fake", "", _CONTRASTIVE, preset=dict(fake_positive="augment")),
    Entry("instance-perturbation", "", _CONTRASTIVE, preset=dict(fake_positive="perturb", perturbation="fixed")),
    # InsGen (Yang et al. 2021): real + fake-perturbation instance discrimination, and the fake term on G.
    Entry("insgen", "", _CONTRASTIVE, preset=dict(real_instance=True, fake_positive="perturb",
                                                  perturbation="fixed", fake_on_g=True)),
    # FakeCLR: contrastive learning only on perturbed fakes, noise-related augmentation, diversity-aware queue,
    # forgetting factor, and the term on G.
    Entry("fakeclr", "", _CONTRASTIVE, preset=dict(fake_positive="perturb", perturbation="noise", fake_on_g=True,
                                                   forgetting="paper", queue_sizer="dataset")),
])
# Network families: G and D, the adversarial loss and its regularisers, the schedule and G_ema's rule. ``uses``
# lists the config paths only that backbone reads (an option of the other one is refused when given).
BACKBONES = Registry("backbone", "--backbone", [
    Entry("stylegan2", "StyleGAN2-ADA", "fakeclr.train.backbone:stylegan2", uses=(
        "network.w_dim", "network.mapping_layers", "network.channel_base", "network.channel_max",
        "network.conv_clamp", "network.mbstd_group_size", "network.d_architecture", "network.num_fp16_res",
        "network.fp16_channels_last",
        "loss.r1_gamma", "loss.r1_interval", "loss.pl_weight", "loss.pl_interval", "loss.pl_batch_shrink",
        "loss.pl_decay", "loss.style_mixing_prob", "ema_kimg", "ema_rampup")),
    Entry("biggan", "BigGAN-CIFAR of DiffAugment", "fakeclr.train.backbone:biggan", uses=(
        "network.width", "d_steps", "ema_decay", "ema_start")),
])

# The choices of the options below that the library's parts also check (one place for each list).
PERTURBATIONS = ("noise", "fixed")              # latent perturbation of a fake's positive view
D_ARCHITECTURES = ("resnet", "orig", "skip")    # StyleGAN2's discriminator blocks (SG2 Fig. 7c, 7a, 7b)
FORGETTING_MODES = ("paper", "official", "none")  # forgetting factor of the fake queue
QUEUE_SIZERS = ("dataset", "generated")         # diversity-aware queue size rules


def option(default: Any = dataclasses.MISSING, *, help: str | None = None, flag: str | None = None, choices: tuple | None = None,
           switch: bool = False, default_factory: Any = dataclasses.MISSING):
    """A config field that is also a ``fakeclr train`` flag: the one place for its spelling, help and choices.

    A field with ``help`` is a flag; ``flag`` defaults to ``--`` + the field name with dashes. ``choices`` are
    checked by :func:`validate` (for flags and config files alike) and offered by the parser. ``switch`` makes a
    boolean an on-only flag (``--cond``) instead of ``--x/--no-x``."""
    meta = {"help": help, "flag": flag, "choices": choices, "switch": switch}
    return field(default=default, default_factory=default_factory, metadata={"option": meta})


@dataclass(frozen=True)
class Option:
    """One training option as the CLI sees it: the field's dotted ``path`` in :class:`TrainConfig` (``loss.r1_gamma``),
    its ``flag``, ``help``, ``choices``, value ``type`` (int, float, str, bool, list) and ``switch``."""
    path: str
    flag: str
    help: str
    choices: tuple | None
    type: type
    switch: bool
    section: str            # the dataclass that holds it ("" for TrainConfig itself)


@dataclass
class DataConfig:
    """Training data."""
    # The embedded default "lfw": 100 LFW faces, 32x32 grayscale.
    source: str = option("lfw", flag="--data", help="image folder, zip archive, or 'lfw' (the embedded default: "
                         "100 LFW faces)")
    resolution: int | None = option(None, help="training resolution (a power of two)")   # None: the data's own
    channels: int | None = option(None, choices=(1, 3), help="image channels")  # None: 1 if all images are grey, else 3
    mirror: bool = option(False, help="add x-flipped copies of the data")
    subset: float | None = option(None, help="use a fixed subset: a count (>= 1) or a fraction (< 1)")
    subset_seed: int = option(0, help="which images --subset picks (default 0; independent of --seed, so a seed "
                                      "sweep trains on the same images)")
    skip_bad: bool = option(False, switch=True, help="skip unreadable images instead of stopping")
    use_labels: bool = option(False, flag="--cond", switch=True, help="condition on the labels of dataset.json")
    # Streaming (fakeclr.data.stream): None = when the decoded images would exceed 2 GiB.
    stream: bool | None = option(None, help="decode images when they are drawn, in --workers processes, instead of "
                                            "holding them all decoded (default: above 2 GiB of decoded images)")
    workers: int = option(2, help="DataLoader worker processes that decode a streamed data set (0: the training "
                                  "process itself)")


@dataclass
class NetworkConfig:
    """Architecture of G and D (StyleGAN2)."""
    backbone: str = option("stylegan2", choices=BACKBONES.names, help="network family: " + BACKBONES.describe())
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384      # fmaps * 32768 (StyleGAN2-ADA)
    channel_max: int = 512
    conv_clamp: int | None = 256
    mbstd_group_size: int = 4
    d_architecture: str = option("resnet", choices=D_ARCHITECTURES, help="discriminator blocks (StyleGAN2 Fig. 7): "
                                 "resnet (residual, config F; default), orig (no skip connections: StyleGAN2-ADA's "
                                 "cifar configuration, default in the cifar preset) or skip (the image fed to every "
                                 "block)")
    # Mixed precision (StyleGAN2-ADA): 4x4 and 8x8 stay fp32 whatever the count.
    num_fp16_res: int = option(0, flag="--fp16-res", help="mixed precision: the N highest resolutions of G and D in "
                               "fp16 on CUDA, with conv clamp 256 (StyleGAN2-ADA; default 4 in the GPU presets, 0 in "
                               "tiny and lfw-demo; CPU runs stay fp32)")
    fp16_channels_last: bool = option(False, flag="--nhwc", help="channels-last activations in the fp16 blocks "
                                                                 "(StyleGAN2-ADA's --nhwc)")
    # BigGAN: the channel multiplier ch of G and D (the reference's G_ch = D_ch = 64: 256 channels at 32 px).
    width: int = 64


@dataclass
class LossConfig:
    """Losses and regularisation."""
    r1_gamma: float = option(1.0, flag="--gamma", help="R1 regularisation weight")
    r1_interval: int = 16          # lazy R1 (StyleGAN2 Sec. 3.1): every N iterations with the gain N; 0 or 1 =
                                   # every iteration, in its own Dreg phase (a second D optimizer step per
                                   # iteration, not StyleGAN2-ADA's single fused "Dboth" step)
    pl_weight: float = option(2.0, help="path-length regularisation weight (0 disables)")   # FakeCLR Table 3: 2, 5, 10
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9


@dataclass
class OptimConfig:
    """Optimisers."""
    lr: float = option(0.0025, help="Adam learning rate of G and D")
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8
    # FreezeD (Mo et al. 2020), layers counted as StyleGAN2-ADA's --freezed (fromrgb, conv0, conv1, skip per block).
    freeze_d: int = option(0, help="FreezeD: keep D's first N layers from the top resolution fixed (StyleGAN2-ADA's "
                                   "--freezed count; default 0)")


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
    """Data-efficient augmentation of D's inputs."""
    kind: str = option("ada", flag="--aug", choices=AUGMENTATIONS.names,
                       help="augmentation: " + AUGMENTATIONS.describe())
    pipe: str = option("bgc", flag="--augpipe", help="ADA pipeline preset: blit, geom, color, filter, noise, cutout, "
                       "bg, bgc, bgcf, bgcfn, bgcfnc")
    target: float = option(0.6, help="ADA/APA target of E[sign(D(real))]; ADA-linear's final p")
    p: float = option(0.0, help="augmentation probability for --aug fixed (initial p otherwise)")
    interval: int = 4              # iterations between p updates
    speed_kimg: float = option(500.0, flag="--ada-kimg", help="kimg for an adaptive p (--aug ada, apa) to move by 1 "
                               "(StyleGAN2-ADA's ada_kimg; default 500)")
    diffaugment_policy: str = option("color,translation,cutout", flag="--diffaugment",
                                     help="DiffAugment policy, e.g. color,translation,cutout")


@dataclass
class ContrastiveConfig:
    """Contrastive methods (FakeCLR and its baselines; FakeCLR Sec. 3-4).

    ``method`` picks a composition of the fields below (:data:`METHODS`); any field can then be changed on its
    own for ablations."""
    method: str = option("ada", choices=METHODS.names, help=METHODS.describe())
    # Instance-real: real-image instance discrimination (real head + real queue).
    real_instance: bool = False
    # The positive of a fake query: "none" (no fake term), "augment" (a 2nd augmentation of the same fake:
    # Instance-fake) or "perturb" (G(z + eps): Instance-perturbation, InsGen, FakeCLR).
    fake_positive: str = option("none", choices=("none", "augment", "perturb"))
    perturbation: str = option("noise", choices=PERTURBATIONS, help="latent perturbation of the positive view: "
                               "noise-related (FakeCLR) or fixed radius (InsGen)")
    lam: float = 0.1                    # noise-related: eps = n * lam * min(|z|, z_norm_cap) (FakeCLR Sec. 4.1)
    z_norm_cap: float = 3.0
    radius: float = 0.15                # fixed: eps = radius * n (InsGen)
    fake_on_g: bool = option(False, flag="--cl-on-g", help="also train G with the fake contrastive loss")
    lw_real: float = option(1.0, help="weight of the real instance loss")
    lw_fake: float = option(1.0, help="weight of the fake instance loss")
    lw_fake_on_g: float = option(0.1, help="weight of the fake contrastive loss on G")
    tau: float = option(0.2, help="InfoNCE temperature")
    tau_m: float = option(0.01, help="forgetting-factor temperature")
    forgetting: str = option("none", choices=FORGETTING_MODES, help="forgetting factor of the fake "
                             "queue: paper (supp. Eq. 1), official (released code: m=1), none")
    queue_size: int | None = option(None, help="fix the fake queue size (default: diversity-aware)")
    # "dataset": 5% of the images (x2 mirrored); "generated": follows the diversity of the generated images.
    queue_sizer: str = option("dataset", choices=QUEUE_SIZERS, help="diversity-aware queue size rule")
    queue_fraction: float = 0.05
    queue_min: int = 16
    queue_max: int | None = None        # "generated" sizer's upper bound; None = the dataset rule's size
    real_queue_size: int | None = None  # None = the dataset rule
    head_dim: int = 128
    momentum: float = 0.999             # D_ema and momentum heads
    mixing: str = option("shared", choices=("shared", "independent"), help="style mixing of the two fake views: "
                         "shared (default) or independent (released code)")
    real_in_fake_queue: str = option("none", choices=("none", "start", "half"), help="FakeCLR Table 5: half of the "
                                     "fake queue from real images from the start (A) or half-way (B)")
    # Queries reuse the adversarial D forward of the same phase (the cost of FakeCLR Table 1).
    reuse_forward: bool = option(True, help="queries reuse the adversarial D forward (default); --no-reuse-forward "
                                            "runs D again")
    # The released InsGen / FakeCLR code's mechanics, each a switch so that `fakeclr-released` trains exactly like
    # that code (docs/parity.md measures it step for step).
    head_momentum: str = option("iteration", choices=("iteration", "forward"), help="momentum update of the key "
                                "heads: once per iteration with D_ema (default), or at every key computation "
                                "(released code: twice per iteration for the fake head with --cl-on-g)")
    head_optimizer: str = option("d", choices=("d", "own"), help="optimizer of the contrastive heads: D's (default), "
                                 "or one Adam each, with G's lr, betas and lazy ratio for the fake head and D's for "
                                 "the real head (released code)")
    positive_first: bool = option(False, help="draw the fake positive view (latent perturbation and its G forward) "
                                  "before the query view's augmentation (released code; matters with "
                                  "--no-reuse-forward)")
    fake_queue_keys: str = option("positive", choices=("positive", "query"), help="keys enqueued in the fake queue: "
                                  "the positive keys (MoCo, released FakeCLR; default) or the momentum head's "
                                  "projection of the query features (released InsGen)")


def method_config(name: str) -> ContrastiveConfig:
    """The contrastive section of method ``name``: its preset fields over the defaults."""
    return ContrastiveConfig(method=name, **METHODS.get(name).preset)


@dataclass
class TrainConfig:
    """One training run: the sections above plus its length, batch, EMA, intervals, metrics and seed."""
    preset: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    init: InitConfig = field(default_factory=InitConfig)
    kimg: float = option(25000.0, help="training length in thousands of real images")
    batch: int = option(32, help="total batch size over all processes")
    ema_kimg: float = option(10.0, help="half-life of G_ema in kimg")
    ema_rampup: float | None = 0.05
    # BigGAN's schedule: D steps per G step (each on its own real batch), and G_ema's fixed decay per iteration,
    # from iteration ema_start on (before it G_ema copies G).
    d_steps: int = 1
    ema_decay: float = 0.9999
    ema_start: int = 0
    tick_kimg: float = option(4.0, flag="--tick", help="kimg between status lines")   # also stats.jsonl, TensorBoard
    snapshot_kimg: float = option(200.0, flag="--snap", help="kimg between snapshots (sample grid + checkpoints)")
    # Computed on G_ema at every snapshot; "none" on the command line clears a preset's list.
    metrics: list[str] = option(default_factory=list, help="metrics at every snapshot, e.g. fid5k_full,kid5k_full "
                                "(see fakeclr metrics --list)")
    metrics_num_gen: int | None = option(None, help="generated images per snapshot metric (fewer for CPU runs; "
                                         "results are then named by this count, e.g. fid500_full)")
    metrics_ref: str | None = option(None, help="reference images of fid10k at every snapshot (folder or zip at the "
                                     "training resolution, or CIFAR / IDX data: its test split)")
    seed: int = option(0, help="random seed")

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


# Fields renamed since configs were first written: (class, old name) -> new name. Older config.json files and
# training states load with their values moved to the new names.
_RENAMED = {("ContrastiveConfig", "real"): "real_instance", ("ContrastiveConfig", "fake_view"): "fake_positive",
            ("ContrastiveConfig", "on_g"): "fake_on_g", ("ContrastiveConfig", "clip"): "z_norm_cap"}


def _section_types(cls) -> dict[str, type]:
    """The fields of ``cls`` that are config dataclasses themselves, by name."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def _from_dict(cls, d: dict[str, Any]):
    """Rebuild a (nested) dataclass from :func:`dataclasses.asdict` output; unknown keys are an error."""
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    sections = _section_types(cls)
    for key, value in d.items():
        key = _RENAMED.get((cls.__name__, key), key)
        if key not in names:
            raise UserError(f"Unknown configuration field '{key}' for {cls.__name__}; the file was written by "
                            "another version of fakeclr.")
        kwargs[key] = _from_dict(sections[key], value) if key in sections else value
    return cls(**kwargs)


def _value_type(hint) -> type:
    """``int | None`` -> int, ``list[str]`` -> list, ``bool`` -> bool."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        return list
    return args[0] if args else hint


def options(cls=None, prefix: str = "") -> list[Option]:
    """Every training option (a field declared with :func:`option` and a ``help``), section by section, in the
    order of the dataclasses: the CLI builds its flags from this list."""
    cls = TrainConfig if cls is None else cls
    hints, sections, out = typing.get_type_hints(cls), _section_types(cls), []
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if f.name in sections:
            out += options(sections[f.name], path + ".")
            continue
        meta = f.metadata.get("option")
        if meta is None or meta["help"] is None:
            continue
        out.append(Option(path, meta["flag"] or "--" + f.name.replace("_", "-"), meta["help"], meta["choices"],
                          _value_type(hints[f.name]), meta["switch"], prefix.rstrip(".")))
    return out


def _choice_fields(cls=None, prefix: str = ""):
    """``(path, choices, flag or None)`` of every field with fixed choices (``None`` among them where the field
    may be unset)."""
    cls = TrainConfig if cls is None else cls
    sections, hints = _section_types(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in sections:
            yield from _choice_fields(sections[f.name], prefix + f.name + ".")
        elif f.metadata.get("option", {}).get("choices"):
            meta = f.metadata["option"]
            flag = (meta["flag"] or "--" + f.name.replace("_", "-")) if meta["help"] else None
            optional = type(None) in typing.get_args(hints[f.name])
            yield prefix + f.name, meta["choices"] + ((None,) if optional else ()), flag


def get_option(cfg: "TrainConfig", path: str) -> Any:
    obj = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_option(cfg: "TrainConfig", path: str, value: Any) -> None:
    """Set the field at dotted ``path`` (``loss.r1_gamma``) of ``cfg``."""
    *sections, name = path.split(".")
    obj = cfg
    for part in sections:
        obj = getattr(obj, part)
    setattr(obj, name, value)


# ---------------------------------------------------------------------------------------------------- presets
# Each preset lists only what differs from the dataclass defaults. Sources:
#   [ADA]     StyleGAN2-ADA (Karras et al. 2020), train.py `cfg_specs`: paper256, cifar and the `auto` heuristic.
#   [FakeCLR] the FakeCLR README's training command: cfg=paper256, batch 64, mirror, ada_linear (target 0.6).
# Ticks and snapshots are whole iterations of the preset's batch (3.2 kimg = 50 iterations of 64, where [ADA]'s
# loop ticks at the first batch past each 4 kimg).
PRESETS: dict[str, dict[str, Any]] = {
    # Every code path in seconds: for tests and smoke runs.
    "tiny": dict(
        data=dict(resolution=16),
        network=dict(z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32, mbstd_group_size=4),
        loss=dict(r1_gamma=0.01, r1_interval=4, pl_interval=2),
        augment=dict(kind="ada", interval=2),
        kimg=0.2, batch=8, ema_kimg=0.05, ema_rampup=0.05, tick_kimg=0.04, snapshot_kimg=0.096,
    ),
    # The README's main job: FakeCLR on the embedded LFW faces at 32x32, 2 CPU cores, about 10 minutes.
    "lfw-demo": dict(
        data=dict(source="lfw", resolution=32, mirror=True),
        # Channels 64 at 4-16 px and 32 at 32 px: about 18 sec/kimg on 2 CPU cores (benchmarks/train_speed.py).
        network=dict(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64),
        loss=dict(r1_gamma=0.05),        # ADA `auto`: 0.0002 * 32**2 / batch ~ 0.013; a few-shot set wants more
        # ADA-linear to 0.3, not FakeCLR's 0.6: the best mean FID/KID of the demo screen (2 seeds, results.md).
        augment=dict(kind="ada-linear", target=0.3),
        contrastive=dict(method="fakeclr"),
        kimg=24.0, batch=16, ema_kimg=1.0, ema_rampup=0.05, tick_kimg=0.8, snapshot_kimg=4.0,
    ),
    # FakeCLR's few-shot setting [FakeCLR]: paper256 [ADA] + mirror + ADA-linear + FakeCLR, 256x256.
    "fewshot256": dict(
        data=dict(resolution=256, mirror=True),
        network=dict(mapping_layers=8, channel_base=16384, channel_max=512, mbstd_group_size=8, num_fp16_res=4),
        loss=dict(r1_gamma=1.0),
        augment=dict(kind="ada-linear", target=0.6),
        contrastive=dict(method="fakeclr"),
        kimg=10000.0, batch=64, ema_kimg=20.0, ema_rampup=None, tick_kimg=3.2, snapshot_kimg=200.0,
    ),
    # [ADA] paper256: mb 64, mbstd 8, fmaps 0.5, lr 0.0025, gamma 1, ema 20, no ramp-up, mapping 8.
    "paper256": dict(
        data=dict(resolution=256),
        network=dict(mapping_layers=8, channel_base=16384, channel_max=512, mbstd_group_size=8, num_fp16_res=4),
        loss=dict(r1_gamma=1.0),
        augment=dict(kind="ada", target=0.6),
        kimg=25000.0, batch=64, ema_kimg=20.0, ema_rampup=None, tick_kimg=3.2, snapshot_kimg=200.0,
    ),
    # [ADA] cifar: mb 64, mbstd 32, fmaps 1, gamma 0.01, ema 500, ramp 0.05, mapping 2, no PL reg, no style mixing,
    # and D's 'orig' architecture (no residual connections). Everything else is [ADA]'s default, as ours: lr 0.0025,
    # Adam betas (0, 0.99), lazy R1 every 16, fp16 in 4 resolutions with clamp 256, ADA target 0.6 with bgc, ada_kimg
    # 500. [ADA] splits the batch into 32 per GPU (ref_gpus 2): with one process we run one batch of 64, whose
    # minibatch-stddev groups of 32 are the same size.
    "cifar": dict(
        data=dict(resolution=32),
        network=dict(mapping_layers=2, channel_base=32768, channel_max=512, mbstd_group_size=32, num_fp16_res=4,
                     d_architecture="orig"),
        loss=dict(r1_gamma=0.01, pl_weight=0.0, style_mixing_prob=0.0),
        augment=dict(kind="ada", target=0.6),
        kimg=100000.0, batch=64, ema_kimg=500.0, ema_rampup=0.05, tick_kimg=3.2, snapshot_kimg=200.0,
    ),
    # BigGAN on CIFAR as DiffAugment-biggan-cifar trains it (scripts/biggan-cifar10.sh; Zhao et al. 2020): ch 64,
    # z 128, batch 50, 4 D steps per G step, Adam 2e-4 (0, 0.999) for both, EMA 0.9999 from iteration 1000,
    # hinge loss, mirrored data, no augmentation (add --aug diffaugment --diffaugment translation,cutout for
    # DiffAugment-BigGAN). Length: the reference's 5000 epochs of the 20 % subset (50M images); it saves every
    # 2000 iterations (400 kimg) and evaluates every 4000.
    "biggan-cifar": dict(
        data=dict(resolution=32, mirror=True),
        network=dict(backbone="biggan", z_dim=128, width=64),
        optim=dict(lr=2e-4, beta1=0.0, beta2=0.999, eps=1e-8),
        augment=dict(kind="none"),
        kimg=50000.0, batch=50, d_steps=4, ema_decay=0.9999, ema_start=1000, tick_kimg=20.0, snapshot_kimg=400.0,
    ),
    # CPU scale of issue 29's Table 4 runs (Fashion-MNIST padded to 32 px, 2 cores): both backbones about 25 sec/kimg
    # on one thread (benchmarks/train_speed.py). The EMA keeps its reference's share of a run: BigGAN's half-life
    # of 6931 iterations in 250k is 43 in a 100-kimg run of 64 reals an iteration (decay 0.985, from iteration 10);
    # StyleGAN2-ADA cifar's 500 kimg in 100000 is 0.5 kimg in 100.
    "biggan-cpu": dict(
        data=dict(resolution=32, mirror=True),
        network=dict(backbone="biggan", z_dim=128, width=16),
        optim=dict(lr=2e-4, beta1=0.0, beta2=0.999, eps=1e-8),
        augment=dict(kind="none"),
        kimg=102.4, batch=16, d_steps=4, ema_decay=0.985, ema_start=10, tick_kimg=1.6, snapshot_kimg=12.8,
    ),
    "cifar-cpu": dict(
        data=dict(resolution=32, mirror=True),
        network=dict(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64, mbstd_group_size=16,
                     d_architecture="orig"),
        loss=dict(r1_gamma=0.01, pl_weight=0.0, style_mixing_prob=0.0),
        augment=dict(kind="ada", target=0.6),
        kimg=102.4, batch=16, ema_kimg=0.5, ema_rampup=0.05, tick_kimg=1.6, snapshot_kimg=12.8,
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


def validate(cfg: TrainConfig, world_size: int = 1) -> None:
    """Check a resolved config; raise :class:`UserError` naming the flag at fault."""
    for path, choices, flag in _choice_fields():
        value = get_option(cfg, path)
        if value not in choices:
            named = ", ".join(str(c) for c in choices if c is not None)
            raise UserError(f"{flag or path} {value!r} is not one of: {named}.")
    if cfg.data.resolution is not None:
        check_resolution(cfg.data.resolution, "--resolution")
    if cfg.batch < 1 or cfg.batch % world_size != 0:
        raise UserError(f"--batch {cfg.batch} is not divisible by the number of processes ({world_size}); "
                        f"use a multiple of {world_size}.")
    per_rank = cfg.batch // world_size
    group = min(cfg.network.mbstd_group_size, per_rank)
    reads = BACKBONES.get(cfg.network.backbone).uses if cfg.network.backbone in BACKBONES else ()
    if "network.mbstd_group_size" in reads and group > 0 and per_rank % group != 0:
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
    if cfg.augment.kind == "fixed" and cfg.augment.p == 0:
        raise UserError("--aug fixed needs --p (the constant augmentation probability, above 0).")
    if cfg.snapshot_kimg <= 0 or cfg.tick_kimg <= 0:
        raise UserError("--snap and the tick interval must be positive.")
    if cfg.augment.interval < 1 or cfg.loss.r1_interval < 0 or cfg.loss.pl_interval < 0:
        raise UserError("The ADA interval must be at least 1 iteration and the regularisation intervals "
                        "(r1_interval, pl_interval) 0 or more iterations.")
    if cfg.data.workers < 0:
        raise UserError(f"--workers must be non-negative (got {cfg.data.workers}).")
    if cfg.d_steps < 1 or cfg.ema_start < 0 or not 0 <= cfg.ema_decay < 1 or cfg.network.width < 1:
        raise UserError("d_steps and network.width must be at least 1, ema_start non-negative and ema_decay in "
                        "[0, 1).")
    if cfg.optim.freeze_d < 0:
        raise UserError(f"--freeze-d must be non-negative (got {cfg.optim.freeze_d}).")
    validate_contrastive(cfg.contrastive)


def validate_contrastive(c: "ContrastiveConfig") -> None:
    if c.queue_size is not None and c.queue_size < 1:
        raise UserError(f"--queue-size must be at least 1 (got {c.queue_size}).")
    if c.tau <= 0 or c.tau_m <= 0:
        raise UserError("--tau and --tau-m must be positive.")
    if c.real_in_fake_queue != "none" and c.fake_positive == "none":
        raise UserError("--real-in-fake-queue needs a fake contrastive term (a method with a fake queue, e.g. fakeclr).")
