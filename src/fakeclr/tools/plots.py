"""Figures of the method itself (FakeCLR supplementary Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..contrastive.infonce import forgetting_weights
from ..files import atomic_write


def queue_iterations(size: int, batch: int) -> torch.Tensor:
    """Enqueue iterations of a full queue of ``size`` keys filled ``batch`` keys per iteration, oldest first:
    ``[size]`` (iteration 1 for the oldest batch)."""
    return torch.arange(size) // batch + 1


def plot_forgetting(out: str | Path, tau_ms=(0.005, 0.01, 0.05, 0.1), sizes=(200, 500, 1000), batch: int = 50) -> Path:
    """Supplementary Fig. 2: the forgetting factor ``m`` over a full queue, oldest to newest key, for several
    ``tau_m`` (lines) and queue sizes ``N`` (panels), with ``batch`` keys enqueued per iteration. PNG at ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.4), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        iters = queue_iterations(n, batch)
        for tau_m in tau_ms:
            m = forgetting_weights(iters, tau_m=tau_m, mode="paper").double()
            ax.plot(range(n), m.numpy(), label=f"$\\tau_m$ = {tau_m:g}")
        ax.axhline(1.0 / n, color="grey", lw=0.8, ls=":", label="uniform 1/N")
        ax.set_title(f"N = {n}, batch {batch} ({n // batch} enqueue iterations)")
        ax.set_xlabel("queue entry (oldest -> newest)")
        ax.set_ylabel("forgetting factor $m_i$")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("FakeCLR forgetting factor, supplementary Eq. (1), paper mode (official mode: $m_i = 1$ for all)")
    fig.tight_layout()
    out = Path(out)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return out
