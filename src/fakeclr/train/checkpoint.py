"""Checkpoints that hold tensors and JSON only; loading never executes code.

Two kinds of file live in a run directory:

``network-snapshot-KKKKKK.safetensors``
    The networks (``G``, ``D``, ``G_ema``, the contrastive heads and ``D_ema``): :mod:`fakeclr.network_file`.
``training-state-KKKKKK.pt``
    Everything needed to continue exactly: networks, optimizer states, the loss terms' buffers, the contrastive
    method's modules and queues, augmentation state, data sampler and RNG states of every rank, and the counters.
    Written with ``torch.save`` from plain dicts of tensors and numbers, read back with
    ``torch.load(weights_only=True)``.

Both are written through :func:`fakeclr.files.atomic_write`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import atomic_write, remove_quietly
# the network-file functions, for the loop and the tests that reach them as ckpt.*
from ..network_file import load_networks, load_state_dict_checked, read_network_header, save_networks  # noqa: F401

STATE_FORMAT = "fakeclr-state/1"
_STATE_RE = re.compile(r"training-state-(\d+(?:\.\d+)?)\.pt$")


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
        remove_quietly(str(p))
