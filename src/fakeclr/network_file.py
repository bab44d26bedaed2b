"""Network files: ``network-snapshot-*.safetensors`` hold the networks as safetensors with a JSON header
(safetensors metadata key ``"fakeclr"``) naming each network's class and constructor config. fakeclr rebuilds the
modules from a fixed registry of its own classes (:func:`_registry`): nothing in the file is code. Used by
training (snapshots, ``--init``), the metrics and every tool."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError
from .files import KIND_ADVICE, atomic_write, content_digest, file_kind

__all__ = ["NETWORK_FORMAT", "save_networks", "read_network_header", "load_networks", "load_state_dict_checked"]

NETWORK_FORMAT = "fakeclr-network/1"


def _registry() -> dict[str, type]:
    from .contrastive.heads import ProjectionHead
    from .nn import Discriminator, Generator
    from .nn.biggan import BigGANDiscriminator, BigGANGenerator
    return {"Generator": Generator, "Discriminator": Discriminator, "ProjectionHead": ProjectionHead,
            "BigGANGenerator": BigGANGenerator, "BigGANDiscriminator": BigGANDiscriminator}


def save_networks(path: str | os.PathLike, nets: dict[str, torch.nn.Module], meta: dict[str, Any] | None = None) -> None:
    """Write ``{name: module}`` as one safetensors file; each module must expose ``.config`` (JSON-able kwargs)."""
    tensors: dict[str, torch.Tensor] = {}
    header: dict[str, Any] = {"format": NETWORK_FORMAT, "nets": {}, "meta": meta or {}}
    for name, module in nets.items():
        header["nets"][name] = {"class": type(module).__name__, "config": module.config}
        for key, t in module.state_dict().items():
            tensors[f"{name}.{key}"] = t.detach().cpu().contiguous()
    header["sha256"] = content_digest(tensors)                 # checked by load_networks
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"fakeclr": json.dumps(header)}))


def read_network_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a network file (no tensors are read)."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Network file {path} does not exist; pass a network-snapshot-*.safetensors from a run directory.")
    kind = file_kind(path)
    if kind not in ("safetensors", "other"):
        raise UserError(f"{path} is not a fakeclr network file but {KIND_ADVICE[kind]}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors network file ({e}); it may be truncated.") from e
    if "fakeclr" not in meta:
        raise UserError(f"{path} is a safetensors file without a fakeclr header; use a network snapshot written by fakeclr.")
    header = json.loads(meta["fakeclr"])
    if header.get("format") != NETWORK_FORMAT:
        raise UserError(f"{path} has network format {header.get('format')!r}; this fakeclr reads {NETWORK_FORMAT}.")
    return header


def load_networks(path: str | os.PathLike, names: tuple[str, ...] | None = None,
                  device: torch.device | str = "cpu") -> dict[str, torch.nn.Module]:
    """Rebuild the networks of a network file (all, or ``names``) on ``device``, in eval mode."""
    header = read_network_header(path)
    registry = _registry()
    names = tuple(header["nets"]) if names is None else names
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} could not be read ({e}); it may be truncated.") from e
    if "sha256" in header and content_digest(tensors) != header["sha256"]:    # files before checksums have none
        raise UserError(f"{path} is damaged: its tensors no longer match the checksum written with them; use another "
                        "network snapshot of the run.")
    nets = {}
    for name in names:
        if name not in header["nets"]:
            raise UserError(f"{path} holds no network '{name}' (it has: {', '.join(header['nets'])}).")
        spec = header["nets"][name]
        if spec["class"] not in registry:
            raise UserError(f"{path}: unknown network class {spec['class']!r}.")
        module = registry[spec["class"]](**spec["config"])
        sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        load_state_dict_checked(module, sd, f"{path} ({name})")
        nets[name] = module.to(device).eval().requires_grad_(False)
    return nets


def load_state_dict_checked(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(sd)`` with a one-sentence :class:`UserError` when the architecture differs."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} differently shaped tensors"
                  + (f", e.g. {(missing + unexpected + wrong)[0]}" if (missing + unexpected + wrong) else ""))
        raise UserError(f"{what} belongs to a different architecture ({detail}); use a checkpoint made with the "
                        "same preset and network options.")
    module.load_state_dict(sd)
