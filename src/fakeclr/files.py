"""Files written whole or not at all: every write goes to a temporary file in the same folder and is renamed into
place, so a crash or a full disk leaves the previous file intact. What is written can carry a checksum of its
content (:func:`content_digest`), so that a file damaged later is recognised when it is read."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UserError

__all__ = ["atomic_write", "append_line", "remove_quietly", "content_digest", "file_kind", "KIND_ADVICE"]


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
    except BaseException as e:
        remove_quietly(tmp)
        reason = _write_failure(e, path.parent)
        if reason is None:
            raise
        raise UserError(f"Could not write {path} ({reason}); free some disk space or choose another "
                        f"--outdir. Any earlier file of that name is intact.") from e


# How the writers of our files report a failed write when it is not an OSError: torch.save ("PytorchStreamWriter
# failed writing file", "unexpected pos"), safetensors ("IoError(Os { code: 28 ...").
_WRITE_FAILURES = ("no space left", "os error", "ioerror", "failed writing", "file write failed", "unexpected pos")


def _write_failure(e: BaseException, folder: Path) -> str | None:
    """The reason a write failed, in a few words, or ``None`` when ``e`` is not a failed write (a bug)."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    text = str(e).lower()
    if not isinstance(e, Exception) or not any(marker in text for marker in _WRITE_FAILURES):
        return None
    try:
        full = shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        full = False
    return "No space left on device" if full or "no space left" in text or "code: 28" in text else "the write failed"


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to a log (``stats.jsonl``, ``code.jsonl``, ``metric-*.jsonl``) in one write;
    a full disk or a folder without write permission becomes one sentence naming the file."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as e:
        raise UserError(f"Could not write {path} ({e.strerror or e}); free some disk space or choose another "
                        "--outdir. The lines before are intact.") from e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_quietly(p: str) -> None:
    try:
        os.remove(p)
    except OSError:
        pass


def content_digest(obj) -> str:
    """sha256 of nested dicts / lists of tensors and JSON values, as they would be read back: each tensor's name
    path, dtype, shape and bytes; each other value's JSON. Dict order does not matter."""
    import torch
    h = hashlib.sha256()

    def walk(path: str, x) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{path}|{t.dtype}|{list(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(f"{path}/{k}", x[k])
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(f"{path}/{i}", v)
        else:
            h.update(f"{path}={json.dumps(x, sort_keys=True, default=str)}|".encode())
    walk("", obj)
    return h.hexdigest()


def file_kind(path: str | os.PathLike) -> str:
    """What a file is, from its first bytes: ``"pickle"`` (a network pickle of StyleGAN2-ADA / InsGen / FakeCLR),
    ``"training-state"`` (``torch.save``'s zip with a ``data.pkl``), ``"safetensors"`` (a network file),
    ``"zip"``, ``"image"``, ``"empty"`` or ``"other"``."""
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError:
        return "other"
    if not head:
        return "empty"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "training-state" if b"data.pkl" in head or b"/data/" in head else "zip"
    if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff":
        return "image"
    return "other"


# What to do with a file of each kind, said when a command gets the wrong one.
KIND_ADVICE = {
    "pickle": "a network pickle (StyleGAN2-ADA / InsGen / FakeCLR): convert it with `fakeclr import FILE "
              "OUT.safetensors`, or fine-tune from it with `fakeclr train --init FILE`",
    "training-state": "a fakeclr training state: continue the run with `fakeclr train --resume FILE`; the "
                      "networks to use are in the network-snapshot-*.safetensors beside it",
    "safetensors": "a network file: use it with generate, metrics, export or `fakeclr train --init FILE`",
    "zip": "a zip archive (images?): train on it with `fakeclr train --data FILE`",
    "image": "an image",
    "empty": "empty",
}
