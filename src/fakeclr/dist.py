"""torchrun helpers. Every function is the identity when torch.distributed is not initialised.

Launch with ``torchrun --nproc_per_node N -m fakeclr train ...`` (or the ``fakeclr`` script): the trainer calls
:func:`init` which joins the process group named by torchrun's environment (gloo on CPU, nccl on CUDA).
Gradients are averaged explicitly per phase (:func:`average_gradients`), which keeps lazy regularisation and
parameters unused in a phase simple (no DDP wrapper, no unused-parameter detection).

This module is the only place that calls ``torch.distributed``'s collectives: each one moves its tensors to
:func:`backend_device` (NCCL takes CUDA tensors only, gloo CPU ones) and returns results on the caller's device.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def env_world_size() -> int:
    """The process count torchrun announces, before :func:`init` (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_by_torchrun() -> bool:
    """True under torchrun (its elastic agent sets ``TORCHELASTIC_RUN_ID``), even with one process."""
    return "TORCHELASTIC_RUN_ID" in os.environ or env_world_size() > 1


def init(device_type: str) -> torch.device:
    """Join torchrun's process group if there is one (also a world of 1, so that a 1-GPU torchrun run uses NCCL
    like a multi-GPU one); return this process's device."""
    if launched_by_torchrun() and not is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device_type)


def backend_device() -> torch.device:
    """The device the process group takes tensors on: the current CUDA device for NCCL (which accepts CUDA
    tensors only), the CPU for gloo. Every collective below moves its tensors there and the result back, so no
    caller needs to know the backend."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _on_backend(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when it is already contiguous on the backend's device, else a copy there."""
    device = backend_device()
    return t if t.device == device and t.is_contiguous() else t.to(device).contiguous()


def backend() -> str | None:
    """``"nccl"``, ``"gloo"``, or ``None`` when not distributed."""
    return str(dist.get_backend()) if is_initialized() else None


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over processes, in place (``t`` itself is returned, on its own device; unchanged when not
    distributed)."""
    if is_initialized():
        b = _on_backend(t)
        dist.all_reduce(b, op=dist.ReduceOp.SUM)
        if b is not t:
            t.copy_(b)
    return t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """``[N, ...]`` per process -> ``[world * N, ...]`` in rank order, on ``t``'s device (no gradient)."""
    if not is_initialized():
        return t
    b = _on_backend(t.detach())
    out = [torch.empty_like(b) for _ in range(world_size())]
    dist.all_gather(out, b)
    return torch.cat(out).to(t.device)


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects; ``[obj]`` when not distributed). The backend
    moves the pickled bytes itself (to the current CUDA device for NCCL, which :func:`init` sets)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over processes. Parameters without a gradient are left out (every process runs the same
    phases, so the same parameters lack one everywhere) and keep no gradient, as in a single process."""
    params = [p for p in params if p.requires_grad and p.grad is not None]
    if not is_initialized() or not params:
        return
    flat = all_reduce_sum(torch.cat([p.grad.flatten() for p in params]))
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
        offset += n


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Make every process hold rank ``src``'s parameters and buffers."""
    if not is_initialized():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        b = _on_backend(t.data)
        dist.broadcast(b, src=src)
        if b is not t.data:
            t.data.copy_(b)


def average_buffers(module: torch.nn.Module, suffix: str) -> None:
    """Average the buffers whose names end with ``suffix`` over processes (running statistics such as w_avg).

    A running mean updated by ``lerp`` with each process's batch mean, averaged over processes, equals the
    update with the mean of the whole batch, so every rank keeps the single-process value.
    """
    if not is_initialized():
        return
    for name, b in module.named_buffers():
        if name.endswith(suffix):
            all_reduce_sum(b)
            b /= world_size()


def shutdown() -> None:
    """Leave the process group (after a barrier) so that no communication thread is alive at interpreter exit."""
    if is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def leave(code: int) -> int:
    """End a torchrun worker with ``code`` once its work is done and the process group is left: the streams are
    flushed and the process exits at once, without the interpreter's teardown, in which gloo's C++ threads
    sometimes aborted a finished run ("terminate called without an active exception", about 1 run in 10 on a
    loaded 2-core machine; benchmarks/torchrun_exits.py). Outside torchrun it only returns ``code``."""
    if not launched_by_torchrun():
        return code
    shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
