"""Metrics by name, StyleGAN2-ADA's way: one context (generator, data, device, seed) and one function per name.

``compute_metrics(["fid5k_full", "kid5k_full"], G, dataset, device)`` returns ``{"fid5k_full": ...,
"kid5k_full": ...}``. Within one context, real features and generated features of the same count are computed
once and shared (the same seed gives the same images, so sharing equals recomputing). ``num_gen`` overrides
every metric's sample count (generated images for FID/KID/PR/IS, samples for PPL, paths for continuity): CPU
runs need far fewer than 50k.

Names (sample count, protocol): ``fid50k_full``/``fid5k_full`` (all real images), ``kid50k_full``/``kid5k_full``
(up to 1M reals, 100 subsets of min(N, 1000)), ``pr50k3_full``/``pr5k3_full`` (k = 3, up to 200k reals),
``is50k``/``is5k`` (10 splits), ``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``, ``ppl_wend`` (50k samples, crop),
``ppl2_wend`` (no crop), ``continuity_z`` (Z, slerp), ``continuity_w`` (W, lerp) (50 paths of 10 steps).
Folder-vs-folder names (all images of each folder): ``fid``, ``kid``, ``pr``, ``is`` (of the fake folder).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from . import continuity as _continuity
from .features import dataset_features, detector_tag, folder_features, generator_features, read_folder, Progress
from .fid import fid_from_features
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .ppl import compared_size, lpips_distance_fn, perceptual_path_length
from .precision_recall import precision_recall
from .weights import load_inception, load_lpips

__all__ = ["METRICS", "FOLDER_METRICS", "MetricContext", "MetricResult", "calc_metric", "compute_metrics",
           "compute_folder_metrics", "append_metric_jsonl", "parse_metric_names", "metric_label"]


@dataclass
class MetricContext:
    """What a metric needs: the generator, the training data (uint8 images, labels), device, seed and knobs."""

    G: torch.nn.Module | None
    dataset: object | None
    device: torch.device | str = "cpu"
    seed: int = 0
    num_gen: int | None = None
    batch: int = 32
    cache: bool = True
    progress: bool = True
    _memo: dict = field(default_factory=dict)

    def count(self, default: int) -> int:
        return self.num_gen if self.num_gen is not None else default

    def inception(self, classifier: bool = False):
        return load_inception(self.device, classifier=classifier)

    def real_features(self, max_items: int | None = None) -> torch.Tensor:
        """Inception features of the first ``max_items`` training images (no x-flips), cached on disk."""
        if self.dataset is None:
            raise UserError("This metric needs the training data; pass --data.")
        key = ("real", max_items)
        if key not in self._memo:
            net = self.inception()
            self._memo[key] = dataset_features(net.features, self.dataset.images, self.device,
                                               name=getattr(self.dataset, "source", "data") or "data",
                                               detector=detector_tag(net), max_items=max_items, batch=self.batch,
                                               cache=self.cache, progress=self.progress)
        return self._memo[key]

    def gen_features(self, num: int, probabilities: bool = False) -> torch.Tensor:
        """Inception features ``[num, 2048]`` (or class probabilities ``[num, 1008]``) of ``num`` generated images."""
        if self.G is None:
            raise UserError("This metric needs a generator; pass --network.")
        key = ("gen", num, probabilities)
        if key not in self._memo:
            net = self.inception(classifier=probabilities)
            fn = net.probabilities if probabilities else net.features
            self._memo[key] = generator_features(fn, self.G, num, self.seed, self.device, batch=self.batch,
                                                 dataset=self.dataset,
                                                 progress=Progress("generated-image features", num, self.progress))
        return self._memo[key]


@dataclass(frozen=True)
class Metric:
    """``fn(ctx, num)`` returns a number, a tuple (named by ``keys``) or a dict of numbers."""

    fn: Callable[[MetricContext, int], object]
    default_num: int
    description: str
    keys: tuple[str, ...] | None = None


def _fid(max_real):
    def fn(ctx, num):
        return fid_from_features(ctx.real_features(max_real), ctx.gen_features(num))
    return fn


def _kid(ctx, num):
    return kernel_inception_distance(ctx.real_features(1_000_000), ctx.gen_features(num), num_subsets=100,
                                     max_subset_size=1000, seed=ctx.seed)


def _pr(ctx, num):
    return precision_recall(ctx.real_features(200_000), ctx.gen_features(num), k=3)


def _is(ctx, num):
    return inception_score(ctx.gen_features(num, probabilities=True), num_splits=10)


def _ppl(space, sampling, crop):
    def fn(ctx, num):
        if ctx.G is None:
            raise UserError("PPL needs a generator; pass --network.")
        side = compared_size(ctx.G.img_resolution, crop)
        if side < 16:
            raise UserError(f"PPL would compare {side}x{side} px images, too small for LPIPS-VGG16 (16 px at least); "
                            "use ppl2_wend (no crop) or a generator of at least 32 px.")
        lpips = load_lpips("vgg", ctx.device)
        return perceptual_path_length(ctx.G, lpips_distance_fn(lpips), num, epsilon=1e-4, space=space,
                                      sampling=sampling, crop=crop, batch=max(1, ctx.batch // 4), seed=ctx.seed,
                                      dataset=ctx.dataset, device=ctx.device, progress=ctx.progress)
    return fn


def _cont(space, kind):
    def fn(ctx, num):
        if ctx.G is None:
            raise UserError("Latent continuity needs a generator; pass --network.")
        res = _continuity.latent_continuity(ctx.G, num, 10, space, kind, ctx.seed, ctx.device,
                                            lpips=load_lpips("vgg", ctx.device), dataset=ctx.dataset)
        return res.summary()
    return fn


METRICS: dict[str, Metric] = {
    "fid50k_full": Metric(_fid(None), 50000, "FID, 50k generated vs all real images"),
    "fid5k_full": Metric(_fid(None), 5000, "FID, 5k generated vs all real images"),
    "kid50k_full": Metric(_kid, 50000, "KID, 50k generated vs all real, 100 subsets"),
    "kid5k_full": Metric(_kid, 5000, "KID, 5k generated vs all real, 100 subsets"),
    "pr50k3_full": Metric(_pr, 50000, "precision/recall, k=3", ("precision", "recall")),
    "pr5k3_full": Metric(_pr, 5000, "precision/recall, k=3", ("precision", "recall")),
    "is50k": Metric(_is, 50000, "Inception Score, 10 splits", ("mean", "std")),
    "is5k": Metric(_is, 5000, "Inception Score, 10 splits", ("mean", "std")),
    "ppl_zfull": Metric(_ppl("z", "full", True), 50000, "PPL in Z, full paths, crop"),
    "ppl_wfull": Metric(_ppl("w", "full", True), 50000, "PPL in W, full paths, crop"),
    "ppl_zend": Metric(_ppl("z", "end", True), 50000, "PPL in Z, path ends, crop"),
    "ppl_wend": Metric(_ppl("w", "end", True), 50000, "PPL in W, path ends, crop"),
    "ppl2_wend": Metric(_ppl("w", "end", False), 50000, "PPL in W, path ends, no crop"),
    "continuity_z": Metric(_cont("z", "slerp"), 50, "latent continuity, Z slerp, 10 steps"),
    "continuity_w": Metric(_cont("w", "lerp"), 50, "latent continuity, W lerp, 10 steps"),
}

_COUNTED = re.compile(r"^(fid|kid|pr|is)(\d+k?)(\d?_full|)$")


def metric_label(name: str, num: int) -> str:
    """The name a result is filed under: ``name`` with its sample count replaced by ``num`` where the name states
    one (``fid5k_full`` with 1000 images -> ``fid1k_full``; 500 -> ``fid500_full``; ``pr5k3_full`` with 500 ->
    ``pr500_3_full``). PPL and continuity names state no count and are kept (the JSON line records ``num``)."""
    m = _COUNTED.match(name)
    if m is None:
        return name
    count = f"{num // 1000}k" if num % 1000 == 0 else str(num)
    rest = m.group(3)
    if rest[:1].isdigit() and not count.endswith("k"):
        rest = "_" + rest
    return f"{m.group(1)}{count}{rest}"


def _result_keys(label: str, out, keys: tuple[str, ...] | None) -> dict[str, float]:
    """A metric function's number / tuple / dict as ``{result key: float}`` under ``label``."""
    if isinstance(out, dict):
        return {f"{label}_{k}": float(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return {f"{label}_{k}": float(v) for k, v in zip(keys, out)}
    return {label: float(out)}


FOLDER_METRICS = ("fid", "kid", "pr", "is")


@dataclass
class MetricResult:
    """One metric's results (``{key: value}``), its name, sample count and wall time in seconds."""

    metric: str
    results: dict[str, float]
    num: int
    seconds: float

    def to_dict(self) -> dict:
        return {"metric": self.metric, "results": self.results, "num": self.num, "total_time": self.seconds}


def parse_metric_names(text: str | list[str], allowed=None) -> list[str]:
    """``"fid5k_full,kid5k_full"`` -> a list of known names (``UserError`` for unknown ones)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    allowed = list(METRICS) if allowed is None else list(allowed)
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise UserError(f"Unknown metric {', '.join(bad) or '(none given)'}; choose from: {', '.join(allowed)}.")
    return names


def calc_metric(name: str, ctx: MetricContext) -> MetricResult:
    """Compute one registered metric in ``ctx``; it is filed under :func:`metric_label` of its sample count."""
    metric = METRICS[parse_metric_names([name])[0]]
    num = ctx.count(metric.default_num)
    label = metric_label(name, num)
    start = time.time()
    results = _result_keys(label, metric.fn(ctx, num), metric.keys)
    return MetricResult(label, results, num, time.time() - start)


def compute_metrics(names, G, dataset, device="cpu", num_gen: int | None = None, seed: int = 0, batch: int = 32,
                    cache: bool = True, progress: bool = False) -> dict[str, float]:
    """The training-time hook: compute ``names`` (list or comma string) for ``G`` against ``dataset``.

    ``G`` is used as given (pass ``G_ema`` in eval mode); ``dataset`` is an :class:`~fakeclr.data.ImageDataset`.
    Returns one flat dict of result keys (e.g. ``fid5k_full``, ``pr5k3_full_precision``) to floats. The same
    arguments give the same numbers. The caller's RNG state is not changed.
    """
    ctx = MetricContext(G, dataset, device, seed, num_gen, batch, cache, progress)
    out: dict[str, float] = {}
    for name in parse_metric_names(names):
        out.update(calc_metric(name, ctx).results)
    return out


def append_metric_jsonl(run_dir, result: MetricResult, snapshot: str | None = None, **extra) -> Path:
    """Append ``result`` as one JSON line to ``run_dir/metric-<name>.jsonl`` (StyleGAN2-ADA's layout)."""
    path = Path(run_dir) / f"metric-{result.metric}.jsonl"
    record = dict(result.to_dict(), snapshot=snapshot, timestamp=time.time(), **extra)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    return path


def compute_folder_metrics(names, real_dir, fake_dir, device="cpu", batch: int = 32, seed: int = 0,
                           progress: bool = True) -> dict[str, float]:
    """``fid``, ``kid``, ``pr``, ``is`` between all images of two folders (``is`` uses the fake folder only).

    Images are fed at their own size; the detector resizes them to 299 px (StyleGAN2-ADA's protocol).
    """
    names = parse_metric_names(names, FOLDER_METRICS)
    out: dict[str, float] = {}
    fake_imgs = read_folder(fake_dir)
    needs_real = any(n != "is" for n in names)
    if needs_real:
        net = load_inception(device)
        real = folder_features(net.features, read_folder(real_dir), device, batch, "real features", progress)
        fake = folder_features(net.features, fake_imgs, device, batch, "fake features", progress)
    for n in names:
        if n == "fid":
            out["fid"] = fid_from_features(real, fake)
        elif n == "kid":
            out["kid"] = kernel_inception_distance(real, fake, seed=seed)
        elif n == "pr":
            out["precision"], out["recall"] = precision_recall(real, fake, k=3)
        elif n == "is":
            clf = load_inception(device, classifier=True)
            probs = folder_features(clf.probabilities, fake_imgs, device, batch, "fake probabilities", progress)
            out["is_mean"], out["is_std"] = inception_score(probs)
    return out
