"""The study's evaluation of one trained run (:func:`evaluate_run`), on ``G_ema`` against the training images
without x-flips (all of them, also for a ``--subset`` run): FID and KID at every evaluation point (a network
snapshot), and at the end PPL, the latent continuity score and the noise floor; each result appended to the run's
``metric-<name>.jsonl`` as it is computed, so an interrupted evaluation continues where it stopped."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...nn import has_w_space
from ...provenance import code_version, recorded_code
from ...train.checkpoint import tagged_kimg
from .summary import noise_floor

__all__ = ["EVAL_SEED", "NOISE_SEED", "snapshots", "evaluate_run"]

EVAL_SEED = 0           # the generated set every run is measured with (the same latents for every run)
NOISE_SEED = 1_000_003  # the second, independent generated set of the noise floor


def snapshots(run_dir: Path) -> list[tuple[float, Path]]:
    """``[(kimg, network file)]`` of a run directory, by kimg."""
    out = [(k, p) for p in Path(run_dir).iterdir()
           if p.suffix == ".safetensors" and (k := tagged_kimg(p.name, "network-snapshot-")) is not None]
    return sorted(out)


def _snapshot_at(snaps: list[tuple[float, Path]], kimg: float) -> tuple[float, Path]:
    """The first snapshot at or after ``kimg`` (the loop writes one when a batch crosses the boundary)."""
    for k, p in snaps:
        if k >= kimg - 1e-6:
            return k, p
    raise UserError(f"No network snapshot at or after kimg {kimg:g} in {snaps[-1][1].parent if snaps else '?'}; "
                    "the run did not reach it.")


def _recorded(run_dir: Path) -> tuple[dict[tuple[str, str], dict[str, float]], float]:
    """Study results already in ``metric-*.jsonl``: ``{(snapshot file, metric): results}``, and the seconds
    they took to compute in all."""
    out, seconds = {}, 0.0
    for path in Path(run_dir).glob("metric-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("study") and rec.get("snapshot"):
                out[(rec["snapshot"], rec["metric"])] = rec["results"]
                seconds += float(rec.get("total_time") or 0.0)
    return out, seconds



def evaluate_run(run_dir: str | Path, points: list[float], num_gen: int, continuity_paths: int = 50,
                 device: str = "cpu", with_noise_floor: bool = True, ref: str | None = None) -> dict[str, Any]:
    """Evaluate a trained run at ``points`` (kimg): FID/KID at each, and PPL, continuity and (``with_noise_floor``)
    the noise floor at the last. Results are appended to ``metric-<name>.jsonl`` (marked ``"study": true``) as they are computed, so
    an interrupted evaluation continues where it stopped and ``fakeclr report`` plots them.

    With a reference set ``ref`` (a test split), FID is measured against it instead, by DiffAugment's protocol
    (``fid10k`` with ``num_gen`` images: uniform classes, G sampled with batch statistics); the training data is
    then not read, and the noise floor is the FID between two generated sets drawn the same way.

    Returns ``{"status": "done", "metrics": {key: value} at the end, "curve": [{"kimg", fid, kid}], ...}``.
    """
    from ...metrics.inputs import load_generator, training_dataset
    from ...metrics.ppl import compared_size
    from ...metrics.registry import (DIFFAUGMENT, METRICS, STYLEGAN2_ADA, MetricContext, MetricResult,
                                     append_metric_jsonl, calc_metric, metric_label)
    from ..report import load_run
    run_dir = Path(run_dir)
    snaps = snapshots(run_dir)
    if not snaps:
        raise UserError(f"{run_dir} holds no network snapshot; train the run first.")
    done, _ = _recorded(run_dir)
    measured = ["fid10k"] if ref is not None else ["fid5k_full", "kid5k_full"]
    protocol = DIFFAUGMENT if ref is not None else STYLEGAN2_ADA
    labels = [metric_label(name, num_gen) for name in measured]
    fid_l = labels[0]
    dataset, curve, final = None, [], {}
    # FID/KID of a --subset run compare with every training image (StyleGAN2-ADA's max_size=None), opened once
    open_whole = functools.cache(lambda: training_dataset(snaps[-1][1], None, whole=True))

    def record(res: MetricResult, snapshot: Path, kimg: float) -> None:
        append_metric_jsonl(run_dir, res, snapshot=snapshot.name, kimg=kimg, study=True)
        done[(snapshot.name, res.metric)] = res.results
        print(f"  kimg {kimg:g} {res.metric}: " + " ".join(f"{k} {v:.4g}" for k, v in res.results.items())
              + f" ({res.seconds:.0f} s)", flush=True)

    for i, point in enumerate(points):
        kimg, snapshot = _snapshot_at(snaps, point)
        last = i == len(points) - 1
        G = load_generator(snapshot, "G_ema", device)
        if ref is None or (last and has_w_space(G)):
            dataset = dataset or training_dataset(snapshot, None, G)
        ctx = MetricContext(G, dataset, device, seed=EVAL_SEED, num_gen=num_gen, progress=False, ref=ref,
                            open_whole=open_whole)
        wanted = [(name, ctx) for name in measured]
        if last and has_w_space(G):                      # PPL and continuity walk StyleGAN2's W space
            wanted.append(("ppl_wend" if compared_size(G.img_resolution, True) >= 16 else "ppl2_wend", ctx))
            if continuity_paths:
                wanted.append(("continuity_w", MetricContext(G, dataset, device, seed=EVAL_SEED,
                                                             num_gen=continuity_paths, progress=False)))
        results: dict[str, float] = {}
        for name, c in wanted:
            label = metric_label(name, c.count(METRICS[name].default_num))
            if (snapshot.name, label) not in done:
                record(calc_metric(name, c), snapshot, kimg)
            results.update(done[(snapshot.name, label)])
        if last and with_noise_floor:
            if (snapshot.name, "noise_floor") not in done:
                start = time.time()
                other = MetricContext(G, dataset, device, seed=NOISE_SEED, num_gen=num_gen, progress=False,
                                      open_whole=open_whole)
                floor = noise_floor(ctx.gen_features(num_gen, protocol=protocol),
                                    other.gen_features(num_gen, protocol=protocol), seed=EVAL_SEED)
                kid_l = labels[1] if len(labels) > 1 else f"kid{fid_l[3:]}"
                record(MetricResult("noise_floor", {f"noise_{fid_l}": floor["fid"], f"noise_{kid_l}": floor["kid"]},
                                    num_gen, time.time() - start), snapshot, kimg)
            results.update(done[(snapshot.name, "noise_floor")])
        if last:
            final = results
        curve.append({"kimg": kimg, **{label: results[label] for label in labels}})
    run = load_run(run_dir)
    return {"status": "done", "metrics": final, "curve": curve, "final_kimg": curve[-1]["kimg"],
            "sec_per_kimg": run.sec_per_kimg, "train_time_s": run.time_s, "eval_time_s": _recorded(run_dir)[1],
            "fakes": run.fakes.name if run.fakes else None,
            "code": recorded_code(run_dir), "eval_code": code_version()}
