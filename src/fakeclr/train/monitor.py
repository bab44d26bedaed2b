"""What a run shows while it trains: a status line per tick, ``stats.jsonl`` and TensorBoard scalars.

Statistics are collected per tick on each process and averaged over processes at the tick boundary, so every
rank logs the same numbers (rank 0 writes them). Where the time goes is recorded the same way: ``Timing/<part>``
is the part's wall time per kimg in the tick (the phases ``Gmain`` ... ``Dreg``, ``data``, ``ema_augment``,
``snapshot``), next to the total ``sec_per_kimg``. On CUDA the parts are host times of asynchronous kernels
(only the total is exact there).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from .. import dist
from ..files import append_line


def _format_duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _to_host(values: list) -> list[float]:
    """Floats and 0-d tensors (on any device) as floats, with one device-to-host copy for all the tensors."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    read = iter(torch.stack(tensors).cpu().tolist() if tensors else [])
    return [next(read) if isinstance(v, torch.Tensor) else float(v) for v in values]


class Monitor:
    """Accumulates statistics between ticks and writes them out at each tick.

    Args:
        run_dir: where ``stats.jsonl`` and the TensorBoard events go (rank 0 only).
        total_kimg: planned length, for the ETA.
        tensorboard: write TensorBoard scalars (needs the ``tensorboard`` package).
    """

    def __init__(self, run_dir: str | Path | None, total_kimg: float, tensorboard: bool = True, stream=None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.total_kimg = total_kimg
        self.stream = sys.stdout if stream is None else stream
        self.sums: dict[str, list] = {}           # name -> [sum (a float64 tensor on the device), count]
        self.times: dict[str, float] = {}
        self.writer = None
        self.is_writer = dist.rank() == 0 and self.run_dir is not None
        if self.is_writer and tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run_dir))
        self.tick_start_time = time.time()
        self.start_time = time.time()

    def add(self, stats: dict[str, list[torch.Tensor]]) -> None:
        """Add the per-phase statistics (lists of tensors) to the running sums of the tick, on their device: the
        values are read on the host once, at the tick."""
        for name, values in stats.items():
            entry = self.sums.setdefault(name, [0.0, 0])
            for v in values:
                entry[0] = entry[0] + v.detach().double().sum()
                entry[1] += v.numel()

    def add_time(self, part: str, seconds: float) -> None:
        """Add ``seconds`` of wall time spent in ``part`` during this tick."""
        self.times[part] = self.times.get(part, 0.0) + seconds

    def tick(self, cur_nimg: int, tick_start_nimg: int, extra: dict[str, float]) -> dict[str, float]:
        """Average the tick's statistics over processes, print a status line and write them. Returns the record."""
        for part, seconds in self.times.items():     # averaged over processes like the statistics
            self.sums[f"Timing/{part}"] = [seconds, 1.0]
        names = sorted(self.sums)
        # Every rank must reduce the same names in the same order: gather the union first.
        names = sorted(set().union(*dist.all_gather_object(names)))
        sums = _to_host([self.sums.get(n, [0.0, 0])[0] for n in names])
        buf = torch.tensor([[s, self.sums.get(n, [0.0, 0])[1]] for n, s in zip(names, sums)],
                           dtype=torch.float64).reshape(-1, 2)
        dist.all_reduce_sum(buf)
        means = {n: float(s / c) for n, (s, c) in zip(names, buf.tolist()) if c > 0}
        self.sums, self.times = {}, {}

        now = time.time()
        kimg = cur_nimg / 1000
        tick_kimg = max((cur_nimg - tick_start_nimg) / 1000, 1e-9)
        means = {n: (v / tick_kimg if n.startswith("Timing/") else v) for n, v in means.items()}
        sec_per_kimg = (now - self.tick_start_time) / tick_kimg
        self.tick_start_time = now
        record = {"kimg": kimg, "time_s": now - self.start_time, "sec_per_kimg": sec_per_kimg, **extra, **means}

        if self.is_writer:
            eta = sec_per_kimg * max(self.total_kimg - kimg, 0)
            parts = [f"kimg {kimg:g}/{self.total_kimg:g}", f"sec/kimg {sec_per_kimg:7.2f}",
                     f"G {means.get('Loss/G/loss', float('nan')):.3f}", f"D {means.get('Loss/D/loss', float('nan')):.3f}"]
            if "augment_p" in extra:
                parts.append(f"p {extra['augment_p']:.3f}")
            parts.append(f"ETA {_format_duration(eta)}")
            print("  ".join(parts), file=self.stream, flush=True)
            append_line(self.run_dir / "stats.jsonl", json.dumps(record))
            if self.writer is not None:
                for name, value in record.items():
                    if name != "kimg":
                        self.writer.add_scalar(name, value, global_step=int(cur_nimg))
                self.writer.flush()
        return record

    def scalar(self, name: str, value: float, cur_nimg: int) -> None:
        """One TensorBoard scalar outside the tick records (e.g. a snapshot metric)."""
        if self.writer is not None:
            self.writer.add_scalar(name, value, global_step=int(cur_nimg))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
