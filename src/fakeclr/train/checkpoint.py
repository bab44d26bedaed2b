"""Checkpoints that hold tensors and JSON only; loading never executes code.

Two kinds of file live in a run directory:

``network-snapshot-KKKKKK.safetensors``
    The networks (``G``, ``D``, ``G_ema`` and, later, the contrastive heads) as safetensors, with a JSON header
    (safetensors metadata key ``"fakeclr"``) naming each network's class and constructor config. ``fakeclr``
    rebuilds the modules from a fixed registry of its own classes: nothing in the file is code.
``training-state-KKKKKK.pt``
    Everything needed to continue exactly: networks, optimizer states, augmentation state, loss buffers, RNG
    states, counters, and an ``extras`` dict for method-specific state. Written with ``torch.save`` from plain
    dicts of tensors and numbers, read back with ``torch.load(weights_only=True)``.

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or a full disk
leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError

NETWORK_FORMAT = "fakeclr-network/1"
STATE_FORMAT = "fakeclr-state/1"
_STATE_RE = re.compile(r"training-state-(\d+(?:\.\d+)?)\.pt$")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``; on any failure remove it.

    A full disk (``OSError``) becomes a :class:`UserError` that says the previous file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file what open() would have given it
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise UserError(f"Could not write {path} ({e.strerror or e}); free some disk space or choose another "
                        f"--outdir. Any earlier file of that name is intact.") from e
    except BaseException:
        _remove_quietly(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(p: str) -> None:
    try:
        os.remove(p)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------------- networks
def _registry() -> dict[str, type]:
    from ..contrastive.heads import ProjectionHead
    from ..nn import Discriminator, Generator
    return {"Generator": Generator, "Discriminator": Discriminator, "ProjectionHead": ProjectionHead}


def save_networks(path: str | os.PathLike, nets: dict[str, torch.nn.Module], meta: dict[str, Any] | None = None) -> None:
    """Write ``{name: module}`` as one safetensors file; each module must expose ``.config`` (JSON-able kwargs)."""
    tensors: dict[str, torch.Tensor] = {}
    header: dict[str, Any] = {"format": NETWORK_FORMAT, "nets": {}, "meta": meta or {}}
    for name, module in nets.items():
        header["nets"][name] = {"class": type(module).__name__, "config": module.config}
        for key, t in module.state_dict().items():
            tensors[f"{name}.{key}"] = t.detach().cpu().contiguous()
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"fakeclr": json.dumps(header)}))


def read_network_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a network file (no tensors are read)."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Network file {path} does not exist; pass a network-snapshot-*.safetensors from a run directory.")
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


# ---------------------------------------------------------------------------------------------------- state
def kimg_tag(cur_nimg: int) -> str:
    """File-name tag of a training position: ``000200`` at whole kimg, ``000000.048`` otherwise."""
    return f"{cur_nimg // 1000:06d}" if cur_nimg % 1000 == 0 else f"{cur_nimg // 1000:06d}.{cur_nimg % 1000:03d}"


def state_path(run_dir: str | os.PathLike, cur_nimg: int) -> Path:
    return Path(run_dir) / f"training-state-{kimg_tag(cur_nimg)}.pt"


def network_path(run_dir: str | os.PathLike, cur_nimg: int) -> Path:
    return Path(run_dir) / f"network-snapshot-{kimg_tag(cur_nimg)}.safetensors"


def latest_state(run_dir: str | os.PathLike) -> Path | None:
    """The training state with the most images in ``run_dir``, or ``None``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [(float(m.group(1)), p) for p in run_dir.iterdir() if (m := _STATE_RE.search(p.name))]
    return max(found)[1] if found else None


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a training state (plain dicts of tensors, numbers, strings) atomically."""
    state = {"format": STATE_FORMAT, **state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``; a truncated or foreign file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} (--resume) does not exist; pass a training-state-*.pt file or a run directory.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors ...
        raise UserError(f"Checkpoint {path} is truncated or not a fakeclr training state ({type(e).__name__}); "
                        "resume from an earlier training-state-*.pt.") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"Checkpoint {path} is not a fakeclr training state (format {STATE_FORMAT} expected).")
    return state


def prune_states(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest training states (network snapshots are kept)."""
    run_dir = Path(run_dir)
    found = sorted((float(m.group(1)), p) for p in run_dir.iterdir() if (m := _STATE_RE.search(p.name)))
    for _, p in found[:-keep] if keep > 0 else []:
        _remove_quietly(str(p))
