"""One owner per run directory: ``fakeclr.lock`` names the process that trains into it (issue 27).

The lock is a file created with ``O_CREAT | O_EXCL`` holding ``{"host", "pid", "started"}``; rank 0 of a run takes it
before anything is written and removes it when training ends, however it ends. A second ``fakeclr train`` into the
same directory gets one sentence naming the owner. A lock left by a process that is gone on this host (its pid is
no longer running) is taken over with a message. What a lock file cannot promise: on a filesystem shared by several
machines it keeps a second process out while the file exists, but a lock of another host is never judged stale
(its pid cannot be checked from here), so after a crash there the file has to be deleted by hand, as the message
says; and ``O_EXCL`` is only as atomic as the filesystem makes it (NFS v3 and later are).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write

LOCK_NAME = "fakeclr.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # another user's process
        return True
    return True


class RunLock:
    """The lock of ``run_dir``; :meth:`acquire` takes it (or raises), :meth:`release` gives it back."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.me = {"host": socket.gethostname(), "pid": os.getpid(),
                   "started": datetime.datetime.now().isoformat(timespec="seconds")}
        self.held = False
        self.created: list[Path] = []

    def acquire(self) -> str | None:
        """Take the lock; returns a message when a stale lock was taken over, ``None`` otherwise."""
        # The folders this lock creates (the run directory and missing parents), removed again if left empty.
        self.created = [p for p in [self.run_dir, *self.run_dir.parents] if not p.exists()]
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"Cannot use {self.run_dir} as the run directory (--outdir): {e.strerror or e}; "
                            "choose a folder you can write.") from e
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return self._take_over_if_stale()
        except OSError as e:
            raise UserError(f"Cannot write in {self.run_dir} (--outdir): {e.strerror or e}; choose a folder you "
                            "can write.") from e
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.me) + "\n")
        self.held = True
        return None

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) and {"host", "pid"} <= set(owner) else None
        except (OSError, ValueError):
            return None

    def _take_over_if_stale(self) -> str:
        owner = self._owner()
        if owner is None or owner["host"] != self.me["host"] or _alive(int(owner["pid"])):
            who = (f"fakeclr process {owner['pid']} on {owner['host']} (since {owner.get('started', '?')})"
                   if owner else "another process (its lock file is unreadable)")
            raise UserError(f"{self.run_dir} is in use by {who}: one run directory takes one training. Wait for it "
                            f"to finish or stop it, or train into another --outdir; if that process is gone, delete "
                            f"{self.path}.")
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(json.dumps(self.me) + "\n"))
        if self._owner() != self.me:        # another process took it over at the same moment
            raise UserError(f"{self.run_dir} was taken by another fakeclr process just now; train into another "
                            "--outdir.")
        self.held = True
        return (f"Took over the lock of {self.run_dir} from process {owner['pid']}, which is no longer running "
                f"(since {owner.get('started', '?')}).")

    def release(self) -> None:
        if self.held and self._owner() == self.me:
            try:
                self.path.unlink()
                for folder in self.created:          # a run that wrote nothing leaves no empty folder behind
                    folder.rmdir()
            except OSError:
                pass
        self.held = False
