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
from typing import Any, Callable

import torch

from ..errors import UserError
from ..files import KIND_ADVICE, atomic_write, content_digest, file_kind, remove_quietly
# the network-file functions, for the loop and the tests that reach them as ckpt.*
from ..network_file import load_networks, load_state_dict_checked, read_network_header, save_networks  # noqa: F401

STATE_FORMAT = "fakeclr-state/1"
# The kimg tag of a file a run writes (kimg_tag): training-state-000200.pt, network-snapshot-000000.048.safetensors,
# fakes000004.png. One pattern for every reader (the loop, report, study).
_TAGGED = re.compile(r"(training-state-|network-snapshot-|fakes)(\d{6}(?:\.\d{3})?)(\.pt|\.safetensors|\.png)$")


# ---------------------------------------------------------------------------------------------------- state
class TrainingState:
    """Everything a run continues from, by name: saving and restoring iterate the same entries (edm2's
    CheckpointIO), so nothing can be saved and then forgotten on load, or the reverse.

    An entry is ``name -> (save() -> data, load(data))``; a ``per_rank`` entry is gathered from every process on
    save (``{rank: data}``) and each process loads its own (rank 0's when the run had fewer processes).
    """

    def __init__(self):
        self._entries: dict[str, tuple[Callable[[], Any], Callable[[Any], None], bool]] = {}

    def add(self, name: str, save: Callable[[], Any], load: Callable[[Any], None], per_rank: bool = False) -> None:
        if name in self._entries:
            raise ValueError(f"training-state entry {name!r} added twice")
        self._entries[name] = (save, load, per_rank)

    def add_module(self, name: str, obj, per_rank: bool = False) -> None:
        """An object with ``state_dict()`` / ``load_state_dict(sd)``."""
        self.add(name, obj.state_dict, obj.load_state_dict, per_rank)

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def state_dict(self, gather: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """``{name: data}``; ``gather(data) -> {rank: data}`` for the per-rank entries."""
        return {name: gather(save()) if per_rank else save() for name, (save, _, per_rank) in self._entries.items()}

    def load_state_dict(self, state: dict[str, Any], rank: int, path) -> None:
        missing = [n for n in self._entries if n not in state]
        if missing:
            raise UserError(f"Checkpoint {path} has no {', '.join(missing)} (written by another version of "
                            "fakeclr?); resume from a state of this version or start a new --outdir.")
        for name, (_, load, per_rank) in self._entries.items():
            data = state[name]
            load(data.get(str(rank), data["0"]) if per_rank else data)


def kimg_tag(cur_nimg: int) -> str:
    """File-name tag of a training position: ``000200`` at whole kimg, ``000000.048`` otherwise."""
    return f"{cur_nimg // 1000:06d}" if cur_nimg % 1000 == 0 else f"{cur_nimg // 1000:06d}.{cur_nimg % 1000:03d}"


def tagged_kimg(name: str, prefix: str | None = None) -> float | None:
    """The kimg in the name of a file a run writes (``training-state-000000.048.pt`` -> 0.048), or ``None`` for
    another name; ``prefix`` (``training-state-``, ``network-snapshot-``, ``fakes``) restricts the kind."""
    m = _TAGGED.search(str(name))
    if m is None or (prefix is not None and m.group(1) != prefix):
        return None
    return float(m.group(2))


def state_path(run_dir: str | os.PathLike, cur_nimg: int) -> Path:
    return Path(run_dir) / f"training-state-{kimg_tag(cur_nimg)}.pt"


def network_path(run_dir: str | os.PathLike, cur_nimg: int) -> Path:
    return Path(run_dir) / f"network-snapshot-{kimg_tag(cur_nimg)}.safetensors"


def latest_state(run_dir: str | os.PathLike) -> Path | None:
    """The training state with the most images in ``run_dir``, or ``None``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [(k, p) for p in run_dir.iterdir() if (k := tagged_kimg(p.name, "training-state-")) is not None]
    return max(found)[1] if found else None


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a training state (plain dicts of tensors, numbers, strings) atomically."""
    state = {"format": STATE_FORMAT, **state}
    state["sha256"] = content_digest(state)                    # checked by load_state
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``; a truncated or foreign file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} (--resume) does not exist; pass a training-state-*.pt file or a run directory.")
    kind = file_kind(path)
    if kind not in ("training-state", "zip", "other"):
        raise UserError(f"Checkpoint {path} (--resume) is not a training state but {KIND_ADVICE[kind]}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors ...
        raise UserError(f"Checkpoint {path} is truncated or not a fakeclr training state ({type(e).__name__}); "
                        "resume from an earlier training-state-*.pt.") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"Checkpoint {path} is not a fakeclr training state (format {STATE_FORMAT} expected).")
    written = state.pop("sha256", None)                         # states before checksums have none
    if written is not None and content_digest(state) != written:
        raise UserError(f"Checkpoint {path} is damaged: its content no longer matches the checksum written with it; "
                        "resume from an earlier training-state-*.pt (--resume FILE) or a network snapshot (--init).")
    return state


def prune_states(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest training states (network snapshots are kept)."""
    run_dir = Path(run_dir)
    found = sorted((k, p) for p in run_dir.iterdir() if (k := tagged_kimg(p.name, "training-state-")) is not None)
    for _, p in found[:-keep] if keep > 0 else []:
        remove_quietly(str(p))
