"""Which code trained a run: the fakeclr version, the git commit of its source (when it runs from a checkout,
with whether that source had uncommitted changes), torch's version, and the kernels torch dispatched to (the CPU's
instruction set, or the GPU).

A run's trajectory depends on floating-point rounding, so the same seed and options train a different network
after a change that only reorders a sum (docs/results.md measured one: FID 335 and 296), and on another machine
(FID 313 and 274 for the same code, seed and options in two sessions): twice on one machine the weights are
bit-identical, while ATen's AVX2 kernels instead of its AVX512 ones give other weights after 0.4 kimg. Results
compare only within one code version on one kind of kernel, and a run directory keeps one line per start in
``code.jsonl`` to say which it was.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from . import __version__
from .files import append_line

__all__ = ["CODE_LOG", "code_version", "kernels", "record_start", "recorded_code", "short"]

CODE_LOG = "code.jsonl"


def _git(where: Path, *args: str) -> str | None:
    """``git args`` run in ``where``: its stripped output, or ``None`` (no git, not a checkout, any failure)."""
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version(where: str | Path | None = None) -> dict[str, Any]:
    """``{"fakeclr", "commit", "dirty", "torch"}`` of the package source in ``where`` (default: this package).

    ``commit`` is the checkout's ``HEAD`` when ``where/__init__.py`` is a file git tracks there (an installed copy
    inside some other repository gets ``None``); ``dirty`` says whether tracked files under ``where`` differ from
    that commit (``None`` without a commit).
    """
    import torch
    where = Path(where) if where is not None else Path(__file__).resolve().parent
    commit = dirty = None
    if _git(where, "ls-files", "--error-unmatch", "__init__.py") is not None:
        commit = _git(where, "rev-parse", "HEAD")
        if commit is not None:
            status = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ".")
            dirty = None if status is None else bool(status)
    return {"fakeclr": __version__, "commit": commit, "dirty": dirty, "torch": torch.__version__}


def kernels(device: Any = "cpu") -> str:
    """The kernels torch runs on ``device``: ``"cpu AVX512"`` (ATen's CPU capability: the instruction set its
    vectorised kernels were chosen for, which ``ATEN_CPU_CAPABILITY`` can lower), ``"cuda NVIDIA H100 80GB HBM3
    sm_90"``, or the device type alone for anything else."""
    import torch
    device = torch.device(device)
    if device.type == "cpu":
        capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
        return f"cpu {capability()}" if capability else "cpu"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda {torch.cuda.get_device_name(device)} sm_{major}{minor}"
    return device.type


def record_start(run_dir: str | Path, kimg: float, where: str | Path | None = None,
                 device: Any = "cpu") -> dict[str, Any]:
    """Append ``{"kimg", "time", **code_version(), "kernels"}`` to ``run_dir/code.jsonl`` (one line per start or
    resume; ``kernels`` of the run's ``device``)."""
    line = {"kimg": kimg, "time": time.strftime("%Y-%m-%d %H:%M:%S"), **code_version(where),
            "kernels": kernels(device)}
    append_line(Path(run_dir) / CODE_LOG, json.dumps(line))
    return line


def recorded_code(run_dir: str | Path) -> list[dict[str, Any]]:
    """The distinct code versions that trained ``run_dir``, in the order they first started it (``[]`` for a run
    trained before ``code.jsonl`` existed). Each is a :func:`code_version` dict plus ``kernels`` (``None`` where a
    line predates it) and ``kimg``, where it started; a resume on other kernels counts as another version."""
    path = Path(run_dir) / CODE_LOG
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    for text in path.read_text().splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        version = {k: line.get(k) for k in ("fakeclr", "commit", "dirty", "torch", "kernels")}
        if all({k: o[k] for k in version} != version for o in out):
            out.append({**version, "kimg": line.get("kimg")})
    return out


def short(version: dict[str, Any] | None) -> str:
    """``"fakeclr 0.1.0 at 1a2b3c4 (+ uncommitted changes), torch 2.13.0, cpu AVX512 kernels"`` (the kernels where
    recorded); ``"unrecorded"`` for ``None``."""
    if not version:
        return "unrecorded"
    where = f" at {version['commit'][:7]}" if version.get("commit") else " (no git commit)"
    on = f", {version['kernels']} kernels" if version.get("kernels") else ""
    return (f"fakeclr {version.get('fakeclr')}{where}{' (+ uncommitted changes)' if version.get('dirty') else ''}, "
            f"torch {version.get('torch')}{on}")
