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
from ..files import append_line
from . import continuity as _continuity
from .features import dataset_features, detector_tag, folder_features, generator_features, read_folder, Progress
from .fid import fid_from_features
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .ppl import compared_size, lpips_distance_fn, perceptual_path_length
from .precision_recall import precision_recall
from .weights import load_inception, load_lpips

__all__ = ["METRICS", "FOLDER_METRICS", "MetricContext", "FolderContext", "MetricResult", "calc_metric",
           "compute_metrics", "compute_folder_metrics", "append_metric_jsonl", "parse_metric_names", "metric_label",
           "higher_is_better"]


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


LOWER, HIGHER = False, True     # values of ``higher_is_better``; None: a number that is no score (a spread)


@dataclass(frozen=True)
class Metric:
    """``fn(ctx, num)`` returns a number, a tuple (named by ``keys``) or a dict of numbers.

    ``higher_is_better`` gives the direction of each result: one bool for a single number, or ``{key: bool or
    None}`` for the named parts of a tuple or dict (``None``: not a score, e.g. a standard deviation)."""

    fn: Callable[[MetricContext, int], object]
    default_num: int
    description: str
    keys: tuple[str, ...] | None = None
    higher_is_better: bool | dict[str, bool | None] = LOWER

    def direction(self, part: str | None) -> bool | None:
        """The direction of the result part ``part`` (``None`` for the single number)."""
        if isinstance(self.higher_is_better, dict):
            return self.higher_is_better.get(part) if part is not None else next(iter(self.higher_is_better.values()))
        return self.higher_is_better


def _fid_metric(max_real):
    def fn(ctx, num):
        return fid_from_features(ctx.real_features(max_real), ctx.gen_features(num))
    return fn


def _kid_metric(ctx, num):
    return kernel_inception_distance(ctx.real_features(1_000_000), ctx.gen_features(num), num_subsets=100,
                                     max_subset_size=1000, seed=ctx.seed)


def _pr_metric(ctx, num):
    return precision_recall(ctx.real_features(200_000), ctx.gen_features(num), k=3)


def _is_metric(ctx, num):
    return inception_score(ctx.gen_features(num, probabilities=True), num_splits=10)


def _ppl_metric(space, sampling, crop):
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


def _continuity_metric(space, kind):
    def fn(ctx, num):
        if ctx.G is None:
            raise UserError("Latent continuity needs a generator; pass --network.")
        res = _continuity.latent_continuity(ctx.G, num, 10, space, kind, ctx.seed, ctx.device,
                                            lpips=load_lpips("vgg", ctx.device), dataset=ctx.dataset)
        return res.summary()
    return fn


_PR_BETTER = {"precision": HIGHER, "recall": HIGHER}
_IS_BETTER = {"mean": HIGHER, "std": None}
_CONT_BETTER = {"pixel": LOWER, "above": LOWER, "lpips": LOWER}   # mean jumps along a path: smaller = smoother

METRICS: dict[str, Metric] = {
    "fid50k_full": Metric(_fid_metric(None), 50000, "FID, 50k generated vs all real images"),
    "fid5k_full": Metric(_fid_metric(None), 5000, "FID, 5k generated vs all real images"),
    "kid50k_full": Metric(_kid_metric, 50000, "KID, 50k generated vs all real, 100 subsets"),
    "kid5k_full": Metric(_kid_metric, 5000, "KID, 5k generated vs all real, 100 subsets"),
    "pr50k3_full": Metric(_pr_metric, 50000, "precision/recall, k=3", ("precision", "recall"), _PR_BETTER),
    "pr5k3_full": Metric(_pr_metric, 5000, "precision/recall, k=3", ("precision", "recall"), _PR_BETTER),
    "is50k": Metric(_is_metric, 50000, "Inception Score, 10 splits", ("mean", "std"), _IS_BETTER),
    "is5k": Metric(_is_metric, 5000, "Inception Score, 10 splits", ("mean", "std"), _IS_BETTER),
    "ppl_zfull": Metric(_ppl_metric("z", "full", True), 50000, "PPL in Z, full paths, crop"),
    "ppl_wfull": Metric(_ppl_metric("w", "full", True), 50000, "PPL in W, full paths, crop"),
    "ppl_zend": Metric(_ppl_metric("z", "end", True), 50000, "PPL in Z, path ends, crop"),
    "ppl_wend": Metric(_ppl_metric("w", "end", True), 50000, "PPL in W, path ends, crop"),
    "ppl2_wend": Metric(_ppl_metric("w", "end", False), 50000, "PPL in W, path ends, no crop"),
    "continuity_z": Metric(_continuity_metric("z", "slerp"), 50, "latent continuity, Z slerp, 10 steps", None, _CONT_BETTER),
    "continuity_w": Metric(_continuity_metric("w", "lerp"), 50, "latent continuity, W lerp, 10 steps", None, _CONT_BETTER),
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


@dataclass
class MetricResult:
    """One metric's results (``{key: value}``), its name, sample count and wall time in seconds."""

    metric: str
    results: dict[str, float]
    num: int
    seconds: float
    higher_is_better: dict[str, bool | None] = field(default_factory=dict)   # by result key

    def to_dict(self) -> dict:
        out = {"metric": self.metric, "results": self.results, "num": self.num, "total_time": self.seconds}
        known = {k: v for k, v in self.higher_is_better.items() if v is not None}
        if known:
            out["higher_is_better"] = known
        return out


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
    return MetricResult(label, results, num, time.time() - start,
                        {key: metric.direction(key[len(label) + 1:] or None) for key in results})


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
    append_line(path, json.dumps(record))
    return path


@dataclass
class FolderContext:
    """Two image folders (``fake`` generated, ``real`` reference) and their Inception features, computed once."""

    real_dir: str | Path
    fake_dir: str | Path
    device: torch.device | str = "cpu"
    batch: int = 32
    seed: int = 0
    progress: bool = True
    _memo: dict = field(default_factory=dict)

    def _memoised(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def images(self, which: str):
        return self._memoised(("images", which), lambda: read_folder(self.real_dir if which == "real" else self.fake_dir))

    def features(self, which: str) -> torch.Tensor:
        """Pool features ``[N, 2048]`` of all images of the ``"real"`` or ``"fake"`` folder."""
        net = load_inception(self.device)
        return self._memoised(("features", which), lambda: folder_features(
            net.features, self.images(which), self.device, self.batch, f"{which} features", self.progress))

    def fake_probabilities(self) -> torch.Tensor:
        clf = load_inception(self.device, classifier=True)
        return self._memoised("probabilities", lambda: folder_features(
            clf.probabilities, self.images("fake"), self.device, self.batch, "fake probabilities", self.progress))


@dataclass(frozen=True)
class FolderMetric:
    """``fn(ctx)`` returns ``{result key: value}``; ``higher_is_better`` by result key (None: no score)."""

    fn: Callable[[FolderContext], dict[str, float]]
    description: str
    higher_is_better: dict[str, bool | None]


FOLDER_METRICS: dict[str, FolderMetric] = {
    "fid": FolderMetric(lambda c: {"fid": fid_from_features(c.features("real"), c.features("fake"))},
                        "FID between the folders", {"fid": LOWER}),
    "kid": FolderMetric(lambda c: {"kid": kernel_inception_distance(c.features("real"), c.features("fake"),
                                                                    seed=c.seed)},
                        "KID between the folders, 100 subsets", {"kid": LOWER}),
    "pr": FolderMetric(lambda c: dict(zip(("precision", "recall"),
                                          precision_recall(c.features("real"), c.features("fake"), k=3))),
                       "precision/recall, k=3", {"precision": HIGHER, "recall": HIGHER}),
    "is": FolderMetric(lambda c: dict(zip(("is_mean", "is_std"), inception_score(c.fake_probabilities()))),
                       "Inception Score of the fake folder, 10 splits", {"is_mean": HIGHER, "is_std": None}),
}


def compute_folder_metrics(names, real_dir, fake_dir, device="cpu", batch: int = 32, seed: int = 0,
                           progress: bool = True) -> dict[str, float]:
    """``fid``, ``kid``, ``pr``, ``is`` between all images of two folders (``is`` uses the fake folder only).

    Images are fed at their own size; the detector resizes them to 299 px (StyleGAN2-ADA's protocol).
    """
    ctx = FolderContext(real_dir, fake_dir, device, batch, seed, progress)
    out: dict[str, float] = {}
    for name in parse_metric_names(names, FOLDER_METRICS):
        out.update(FOLDER_METRICS[name].fn(ctx))
    return out


def _label_pattern(name: str) -> str:
    """A regex for the labels ``name`` is filed under at any sample count (``fid5k_full`` -> fid1k_full,
    fid500_full, ...; ``pr5k3_full`` -> pr1k3_full, pr500_3_full)."""
    m = _COUNTED.match(name)
    if m is None:
        return re.escape(name)
    rest = m.group(3)
    rest = f"_?{rest[0]}{re.escape(rest[1:])}" if rest[:1].isdigit() else re.escape(rest)
    return rf"{m.group(1)}\d+k?{rest}"


def higher_is_better(key: str) -> bool | None:
    """The direction of a result key as :func:`calc_metric` or :func:`compute_folder_metrics` files it
    (``fid1k_full``, ``pr500_3_full_precision``, ``is5k_std``, ``continuity_w_lpips``, ``recall``): True if a
    higher value is better, False if lower, None for a number that is no score or a key no metric here writes."""
    for metric in FOLDER_METRICS.values():
        if key in metric.higher_is_better:
            return metric.higher_is_better[key]
    for name, metric in METRICS.items():
        m = re.fullmatch(rf"({_label_pattern(name)})(?:_(\w+))?", key)
        if m is not None and (m.group(2) is None or m.group(2) in (metric.keys or ()) or
                              isinstance(metric.higher_is_better, dict) and m.group(2) in metric.higher_is_better):
            return metric.direction(m.group(2))
    return None
