"""``fakeclr neighbours``: generate a pool of images and write the nearest-neighbour figures of FakeCLR Figs. 4-5
(the comparison itself is :func:`fakeclr.metrics.neighbours.nearest_neighbour_report`)."""

from __future__ import annotations

from pathlib import Path

from ..metrics.neighbours import nearest_neighbour_report
from .generate import generate

__all__ = ["write_neighbours"]


def write_neighbours(G, dataset, outdir, num_queries: int = 8, k: int = 5, pool: int = 500, seed: int = 0,
                     device="cpu", lpips_net: str | None = "vgg") -> list[Path]:
    """Generate ``pool`` images (seeds ``seed..seed+pool-1`` of :func:`fakeclr.tools.generate.generate`, constant
    noise), run :func:`nearest_neighbour_report` against ``dataset`` and return the files written."""
    from ..metrics.weights import load_lpips
    seeds = list(range(seed, seed + pool))
    generated = generate(G, seeds, noise_mode="const", class_idx=0 if G.c_dim else None, device=device).cpu()
    lpips = load_lpips(lpips_net, device) if lpips_net else None
    nearest_neighbour_report(generated, dataset.images, outdir, k=k, num_queries=num_queries, lpips=lpips,
                             device=device, training_names=dataset.names, generated_seeds=seeds)
    outdir = Path(outdir)
    spaces = ["pixel"] + (["lpips"] if lpips is not None else [])
    return [outdir / f"neighbours-{who}-{s}.png" for who in ("generated", "real") for s in spaces] + \
        [outdir / "neighbours.json"]
