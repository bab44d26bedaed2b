"""Files written whole or not at all: every write goes to a temporary file in the same folder and is renamed into
place, so a crash or a full disk leaves the previous file intact."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UserError

__all__ = ["atomic_write", "remove_quietly"]


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
        remove_quietly(tmp)
        raise UserError(f"Could not write {path} ({e.strerror or e}); free some disk space or choose another "
                        f"--outdir. Any earlier file of that name is intact.") from e
    except BaseException:
        remove_quietly(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_quietly(p: str) -> None:
    try:
        os.remove(p)
    except OSError:
        pass
