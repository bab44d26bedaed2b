"""A run's configuration resolved in the library: a preset, the options given on top of it (by field path), the
data and the process count -> one :class:`~fakeclr.config.TrainConfig` that is not changed afterwards.

``fakeclr train`` maps its flags to these paths; a study spec sets the same paths (``contrastive.lam``), so every
field is reachable without a flag of its own. Rules between fields that hold for any config live in
:func:`fakeclr.config.validate`; the rules here are about what was *given* (an option the chosen augmentation does
not read, a precision count for a resolution).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping

from ..config import (AUGMENTATIONS, BACKBONES, InitConfig, TrainConfig, method_config, options, preset_config, resolve_auto,
                      set_option, validate)
from ..errors import UserError


def settable_fields() -> dict[str, tuple[type, str]]:
    """Every settable field of :class:`TrainConfig` as ``{path: (value type, how a user names it)}``: its flag
    where it has one, else its path."""
    flags = {o.path: o.flag for o in options()}
    out = {}

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            if dataclasses.is_dataclass(hints[f.name]):
                if f.name != "init":                      # where a fine-tuning run began: --init, not a field
                    walk(hints[f.name], path + ".")
                continue
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            kind = list if typing.get_origin(hints[f.name]) is list else (args[0] if args else hints[f.name])
            out[path] = (kind, flags.get(path, path))
    walk(TrainConfig, "")
    return out


def _checked(path: str, value: Any, kind: type, name: str) -> Any:
    """``value`` for a field of type ``kind``; one sentence naming the option when it is of another type."""
    if value is None or path in ("data.subset", "metrics"):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, str):
        return value
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise UserError(f"{name} takes a {kind.__name__} value, got {value!r}.")
    return value


def resolve(preset: str = "lfw-demo", overrides: Mapping[str, Any] | None = None, world_size: int = 1,
            init: InitConfig | None = None, notes: list[str] | None = None) -> TrainConfig:
    """The configuration of a run.

    Args:
        preset: a name of :data:`fakeclr.config.PRESETS`.
        overrides: ``{field path: value}`` on top of the preset (``{"augment.kind": "ada-linear",
            "contrastive.lam": 0.2}``). The data options come first (``auto`` follows the data); then
            ``contrastive.method``, which replaces the contrastive section with the method's composition; then the
            rest. ``metrics`` may be a comma-separated string ("none" clears the preset's list).
        world_size: the number of training processes (the batch is split over them).
        init: a fine-tuning network's :class:`InitConfig` (``fakeclr train --init``); its architecture replaces
            the network options.
        notes: where a sentence is appended for each value changed on the way (an interval rounded to whole
            iterations); the CLI prints them.
    Returns:
        a validated :class:`TrainConfig` with the data's resolution and channels filled in.
    """
    fields = settable_fields()
    given = {}
    for path, value in (overrides or {}).items():
        if path not in fields:
            raise UserError(f"Unknown option '{path}'; options are config fields by path, e.g. contrastive.lam or "
                            "loss.r1_gamma (see `fakeclr train --dry-run` for them all).")
        given[path] = _checked(path, value, *fields[path])
    cfg = preset_config(preset)
    for path in [p for p in given if p.startswith("data.")]:
        set_option(cfg, path, given.pop(path))
    d = cfg.data
    if cfg.preset == "auto" or d.resolution is None or d.channels is None:
        from ..data import probe_dataset                   # image headers only; the run decodes the data once
        d.resolution, d.channels = probe_dataset(d.source, resolution=d.resolution, channels=d.channels,
                                                 subset=d.subset, subset_seed=d.subset_seed, skip_bad=d.skip_bad)
        if cfg.preset == "auto":
            resolve_auto(cfg, d.resolution, world_size)
    if "contrastive.method" in given:
        cfg.contrastive = method_config(given.pop("contrastive.method"))
    if "metrics" in given:
        from ..metrics.registry import parse_metric_names
        value = given.pop("metrics")
        cfg.metrics = [] if str(value).strip().lower() == "none" else parse_metric_names(value)
    for path, value in given.items():
        set_option(cfg, path, value)
    _check_given(cfg, given, fields)
    if init is not None:
        apply_init(cfg, init)
    validate(cfg, world_size)
    if cfg.metrics or cfg.metrics_ref:                      # a bad reference set fails now, not at the first snapshot
        from ..metrics.registry import check_metrics_ref
        check_metrics_ref(cfg.metrics, cfg.metrics_ref, cfg.data.resolution, cfg.data.channels)
    _whole_iterations(cfg, notes if notes is not None else [])
    return cfg


def _whole_iterations(cfg: TrainConfig, notes: list[str]) -> None:
    """Round the tick and snapshot intervals up to whole iterations (of ``cfg.batch`` images, times the D steps of
    a BigGAN iteration), with a note for each one changed, so that snapshots are evenly spaced and named at their
    interval (edm2 asserts the same). Up, so that no snapshot comes before the point it was asked for (a study
    evaluates the first one at or after it)."""
    images = BACKBONES.build(cfg.network.backbone).images_per_iteration(cfg)
    for path, flag, what in (("tick_kimg", "--tick", "status lines"), ("snapshot_kimg", "--snap", "snapshots")):
        kimg = getattr(cfg, path)
        iterations = kimg * 1000 / images
        whole = max(1, math.ceil(iterations - 1e-9))
        if abs(iterations - whole) > 1e-9:
            setattr(cfg, path, whole * images / 1000)
            notes.append(f"{flag} {kimg:g} kimg is {iterations:g} iterations of {images} images; {what} every "
                         f"{whole * images / 1000:g} kimg ({whole} iterations) instead.")


def _check_given(cfg: TrainConfig, given: dict[str, Any], fields: dict[str, tuple[type, str]]) -> None:
    """Rules about the options given: one the chosen augmentation does not read, a precision count that the
    resolution does not have."""
    kind = cfg.augment.kind
    if kind in AUGMENTATIONS:
        uses = AUGMENTATIONS.get(kind).uses
        for path in given:
            section, _, name = path.partition(".")
            if section == "augment" and name != "kind" and name not in uses:
                users = [e.name for e in AUGMENTATIONS if name in e.uses]
                raise UserError(f"{fields[path][1]} is not used by --aug {kind}; drop it, or choose an augmentation "
                                f"that uses it ({', '.join(users)}).")
    backbone = cfg.network.backbone
    if backbone in BACKBONES:
        uses = BACKBONES.get(backbone).uses
        for path in given:
            owners = [e.name for e in BACKBONES if path in e.uses]
            if owners and path not in uses:
                what = fields[path][1] if path in fields else path
                raise UserError(f"{what} is not used by --backbone {backbone}; drop it, or choose a backbone that "
                                f"uses it ({', '.join(owners)}).")
    if "network.num_fp16_res" in given and cfg.data.resolution is not None:
        from ..nn.generator import check_num_fp16_res
        check_num_fp16_res(cfg.network.num_fp16_res, cfg.data.resolution)


def apply_init(cfg: TrainConfig, init: InitConfig) -> None:
    """Put ``init`` into ``cfg`` and make ``cfg.network`` say the file's architecture (what config.json shows)."""
    cfg.init = init
    n, g, d = cfg.network, init.G, init.D
    if "ch" in g:                                        # a BigGAN network file (BigGANGenerator's config)
        n.backbone, n.z_dim, n.width = "biggan", g["z_dim"], g["ch"]
        return
    n.z_dim, n.w_dim, n.mapping_layers = g["z_dim"], g["w_dim"], g["mapping_layers"]
    n.channel_base, n.channel_max, n.conv_clamp = g["channel_base"], g["channel_max"], g["conv_clamp"]
    if d.get("mbstd_group_size") is not None:
        n.mbstd_group_size = d["mbstd_group_size"]
    n.d_architecture = d.get("architecture", "resnet")   # files written before D had a choice: resnet

