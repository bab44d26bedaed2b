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
``fid10k``: DiffAugment's CIFAR protocol, 10k generated vs every image of a reference set (``ref``, e.g. the
10k test images; see :data:`DIFFAUGMENT`). Each FID/KID/PR/IS metric names its :class:`Protocol` (which real
images, which labels, how G is run), and its result records the protocol and the reference it used.
Folder-vs-folder names (all images of each folder): ``fid``, ``kid``, ``pr``, ``is`` (of the fake folder).
"""

from __future__ import annotations

import copy
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
from .features import (
    LABEL_RULES, dataset_features, detector_tag, folder_features, generator_features, images_digest, read_folder,
    Progress,
)
from .fid import fid_from_features
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .ppl import compared_size, lpips_distance_fn, perceptual_path_length
from .precision_recall import precision_recall
from .weights import load_inception, load_lpips

__all__ = ["METRICS", "FOLDER_METRICS", "Protocol", "STYLEGAN2_ADA", "DIFFAUGMENT", "MetricContext", "FolderContext",
           "MetricResult", "calc_metric", "needs_reference", "check_metrics_ref",
           "compute_metrics", "compute_folder_metrics", "append_metric_jsonl", "parse_metric_names", "metric_label",
           "higher_is_better"]


@dataclass(frozen=True)
class Protocol:
    """How a metric draws its real and generated images (the parts where the papers' codebases differ).

    reference: ``"train"``, the whole training data, without x-flips and without its ``--subset`` (the first
        ``max_real`` images; None = all), or ``"ref"``, every image of the reference set the caller names
        (``--ref``, e.g. CIFAR-10's test split).
    labels: a conditional G's labels, ``"dataset"`` (the label of a random item of the whole training data,
        StyleGAN2-ADA) or ``"uniform"`` (uniform classes, DiffAugment BigGAN-CIFAR's ``y_.sample_()``).
    batch_stats: run a copy of G in train mode, so BatchNorm normalises with the statistics of each generated
        batch (DiffAugment BigGAN-CIFAR: ``G_eval_mode`` off), on whole batches of ``gen_batch`` latents; the
        caller's G and its buffers are left alone. False: G as given (eval mode).
    gen_batch: latents per G call (None: the context's ``batch``).
    ddof: the covariance divides by ``N - ddof`` (FID only; 0 StyleGAN2-ADA, 1 ``np.cov`` in DiffAugment).
    """

    reference: str = "train"
    max_real: int | None = None
    labels: str = "dataset"
    batch_stats: bool = False
    gen_batch: int | None = None
    ddof: int = 0

    def __post_init__(self):
        assert self.reference in ("train", "ref") and self.labels in LABEL_RULES and self.ddof in (0, 1)


# StyleGAN2-ADA's metric_utils.py / metric_main.py: reals from the training set without x-flips, labels of random
# training items, G_ema in eval mode, biased covariance.
STYLEGAN2_ADA = Protocol()
# DiffAugment's fid10k (DiffAugment-biggan-cifar: inception_tf.py, utils.sample, train_fns.test, eval.py; defaults
# --num_inception_images 10000, --batch_size 50, --G_eval_mode off): 10k images from G in train mode (BatchNorm with
# batch statistics of 50 images), uniform classes, against the statistics of the CIFAR test split (loader with
# train=False, no mirroring; its StyleGAN2 port uses split='test' too), np.cov covariances.
DIFFAUGMENT = Protocol(reference="ref", labels="uniform", batch_stats=True, gen_batch=50, ddof=1)


@dataclass
class MetricContext:
    """What a metric needs: the generator, the training data (uint8 images, labels), device, seed and knobs.

    ``ref`` names the reference set of ``Protocol(reference="ref")`` metrics (a folder, zip or ``lfw``; opened
    at G's resolution and channels, which it must have). ``open_data`` opens the training data when ``dataset``
    is None and a metric needs it (so ``fid10k`` of an unconditional or uniformly labelled G never opens it).

    ``open_whole`` opens every image of the training data when ``dataset`` is a ``--subset`` of it (None when it
    is not): StyleGAN2-ADA's FID, KID, PR and IS set ``max_size=None`` (``metric_main.py``), so their real images
    and the labels of their generated images come from the whole data set, while PPL and continuity keep the
    run's own data (the anchor's PPL does not reset ``max_size``).
    """

    G: torch.nn.Module | None
    dataset: object | None
    device: torch.device | str = "cpu"
    seed: int = 0
    num_gen: int | None = None
    batch: int = 32
    cache: bool = True
    progress: bool = True
    ref: str | None = None
    open_data: Callable[[], object] | None = None
    ref_flag: str = "--ref"
    open_whole: Callable[[], object | None] | None = None
    _memo: dict = field(default_factory=dict)

    def count(self, default: int) -> int:
        return self.num_gen if self.num_gen is not None else default

    def inception(self, classifier: bool = False):
        return load_inception(self.device, classifier=classifier)

    def data(self):
        """The training data: ``dataset``, else what ``open_data`` opens (once), else ``UserError``."""
        if self.dataset is None and self.open_data is not None:
            self.dataset = self.open_data()
        if self.dataset is None:
            raise UserError("This metric needs the training data; pass --data.")
        return self.dataset

    def label_data(self):
        """The training data where a conditional G draws its labels from it (else ``dataset`` as given)."""
        return self.data() if self.G is not None and getattr(self.G, "c_dim", 0) else self.dataset

    def whole_data(self):
        """Every image of the training data (StyleGAN2-ADA's ``max_size=None``): what ``open_whole`` opens (once),
        else :meth:`data` when the data is no subset."""
        if "whole" not in self._memo:
            whole = self.open_whole() if self.open_whole is not None else None
            self._memo["whole"] = whole if whole is not None else self.data()
        return self._memo["whole"]

    def reference(self):
        """The reference set ``ref`` (every image, no labels), opened once."""
        if self.ref is None:
            raise UserError(f"This metric compares with a reference set; pass {self.ref_flag} (e.g. the test split "
                            "written by fakeclr dataset).")
        if "ref_set" not in self._memo:
            from .inputs import reference_dataset
            self._memo["ref_set"] = reference_dataset(self.ref, self.G, self.ref_flag)
        return self._memo["ref_set"]

    def _features_of(self, kind: str, images, name: str, max_items: int | None) -> torch.Tensor:
        key = (kind, max_items)
        if key not in self._memo:
            net = self.inception()
            self._memo[key] = dataset_features(net.features, images, self.device, name=name,
                                               detector=detector_tag(net), max_items=max_items, batch=self.batch,
                                               cache=self.cache, progress=self.progress)
        return self._memo[key]

    def real_features(self, max_items: int | None = None) -> torch.Tensor:
        """Inception features of the first ``max_items`` images of the whole training data (no x-flips, no
        subset), cached on disk."""
        data = self.whole_data()
        return self._features_of("real", data.images, getattr(data, "source", "data") or "data", max_items)

    def reference_features(self, protocol: Protocol = STYLEGAN2_ADA) -> torch.Tensor:
        """Features ``[N, 2048]`` of the real images ``protocol`` compares with, cached on disk (the key hashes
        the images themselves, so an edited reference file is never served stale statistics)."""
        if protocol.reference == "train":
            return self.real_features(protocol.max_real)
        return self._features_of("ref", self.reference().images, f"ref-{self.ref}", None)

    def reference_record(self, protocol: Protocol) -> dict:
        """What a result records of the real images it used: source, count and a digest of the images."""
        key = ("record", protocol.reference, protocol.max_real)
        if key not in self._memo:
            data = self.whole_data() if protocol.reference == "train" else self.reference()
            images = data.images
            if protocol.max_real is not None and protocol.max_real < images.shape[0]:
                images = images.head(protocol.max_real) if hasattr(images, "head") else images[:protocol.max_real]
            source = getattr(data, "source", None) if protocol.reference == "train" else self.ref
            record = {"set": "training data" if protocol.reference == "train" else "reference",
                      "source": str(source), "images": int(images.shape[0]), "digest": images_digest(images)}
            split = (getattr(data, "origin", None) or {}).get("split")       # CIFAR / IDX data, or an archive of it
            if split is not None:
                record["split"] = split
            self._memo[key] = record
        return self._memo[key]

    def protocol_record(self, protocol: Protocol) -> dict:
        """How the generated images were drawn (labels, G's mode, batch) and the covariance, for the JSON line."""
        c_dim = getattr(self.G, "c_dim", 0) if self.G is not None else 0
        return {"labels": (protocol.labels if c_dim else "none"),
                "generator": "train mode (batch statistics)" if protocol.batch_stats else "eval mode",
                "gen_batch": protocol.gen_batch or self.batch, "covariance": f"N-{protocol.ddof}"}

    def _generator(self, batch_stats: bool) -> torch.nn.Module:
        if not batch_stats:
            return self.G
        if "G_train" not in self._memo:                  # a copy: BatchNorm's running stats of G stay untouched
            self._memo["G_train"] = copy.deepcopy(self.G).train().requires_grad_(False)
        return self._memo["G_train"]

    def gen_features(self, num: int, probabilities: bool = False, protocol: Protocol = STYLEGAN2_ADA) -> torch.Tensor:
        """Inception features ``[num, 2048]`` (or class probabilities ``[num, 1008]``) of ``num`` generated images,
        drawn as ``protocol`` says (labels, G's mode, batch)."""
        if self.G is None:
            raise UserError("This metric needs a generator; pass --network.")
        batch = protocol.gen_batch or self.batch
        key = ("gen", num, probabilities, protocol.labels, protocol.batch_stats, batch)
        if key not in self._memo:
            net = self.inception(classifier=probabilities)
            fn = net.probabilities if probabilities else net.features
            labelled = self.G is not None and getattr(self.G, "c_dim", 0) and protocol.labels == "dataset"
            dataset = self.whole_data() if labelled else self.dataset
            self._memo[key] = generator_features(fn, self._generator(protocol.batch_stats), num, self.seed,
                                                 self.device, batch=batch, dataset=dataset,
                                                 progress=Progress("generated-image features", num, self.progress),
                                                 labels=protocol.labels, whole_batches=protocol.batch_stats)
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
    protocol: Protocol | None = None        # how images are drawn (FID/KID/PR/IS); recorded with each result
    reals: bool = True                       # compares with real images (False: IS)

    def direction(self, part: str | None) -> bool | None:
        """The direction of the result part ``part`` (``None`` for the single number)."""
        if isinstance(self.higher_is_better, dict):
            return self.higher_is_better.get(part) if part is not None else next(iter(self.higher_is_better.values()))
        return self.higher_is_better


_KID, _PR = Protocol(max_real=1_000_000), Protocol(max_real=200_000)     # StyleGAN2-ADA's caps on the reals


def _fid_metric(protocol: Protocol):
    def fn(ctx, num):
        return fid_from_features(ctx.reference_features(protocol), ctx.gen_features(num, protocol=protocol),
                                 ddof=protocol.ddof)
    return fn


def _kid_metric(ctx, num):
    return kernel_inception_distance(ctx.reference_features(_KID), ctx.gen_features(num), num_subsets=100,
                                     max_subset_size=1000, seed=ctx.seed)


def _pr_metric(ctx, num):
    return precision_recall(ctx.reference_features(_PR), ctx.gen_features(num), k=3)


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
                                      dataset=ctx.label_data(), device=ctx.device, progress=ctx.progress)
    return fn


def _continuity_metric(space, kind):
    def fn(ctx, num):
        if ctx.G is None:
            raise UserError("Latent continuity needs a generator; pass --network.")
        res = _continuity.latent_continuity(ctx.G, num, 10, space, kind, ctx.seed, ctx.device,
                                            lpips=load_lpips("vgg", ctx.device), dataset=ctx.label_data())
        return res.summary()
    return fn


_PR_BETTER = {"precision": HIGHER, "recall": HIGHER}
_IS_BETTER = {"mean": HIGHER, "std": None}
_CONT_BETTER = {"pixel": LOWER, "above": LOWER, "lpips": LOWER}   # mean jumps along a path: smaller = smoother

METRICS: dict[str, Metric] = {
    "fid50k_full": Metric(_fid_metric(STYLEGAN2_ADA), 50000, "FID, 50k generated vs all real images",
                          protocol=STYLEGAN2_ADA),
    "fid5k_full": Metric(_fid_metric(STYLEGAN2_ADA), 5000, "FID, 5k generated vs all real images",
                         protocol=STYLEGAN2_ADA),
    "fid10k": Metric(_fid_metric(DIFFAUGMENT), 10000, "FID, 10k generated vs all --ref images (DiffAugment: "
                     "uniform classes, G batch stats of 50)", protocol=DIFFAUGMENT),
    "kid50k_full": Metric(_kid_metric, 50000, "KID, 50k generated vs all real, 100 subsets", protocol=_KID),
    "kid5k_full": Metric(_kid_metric, 5000, "KID, 5k generated vs all real, 100 subsets", protocol=_KID),
    "pr50k3_full": Metric(_pr_metric, 50000, "precision/recall, k=3", ("precision", "recall"), _PR_BETTER,
                          protocol=_PR),
    "pr5k3_full": Metric(_pr_metric, 5000, "precision/recall, k=3", ("precision", "recall"), _PR_BETTER,
                         protocol=_PR),
    "is50k": Metric(_is_metric, 50000, "Inception Score, 10 splits", ("mean", "std"), _IS_BETTER,
                    protocol=STYLEGAN2_ADA, reals=False),
    "is5k": Metric(_is_metric, 5000, "Inception Score, 10 splits", ("mean", "std"), _IS_BETTER,
                   protocol=STYLEGAN2_ADA, reals=False),
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
    reference: dict | None = None          # the real images compared with: set, source, images, digest
    protocol: dict | None = None           # how the generated images were drawn (labels, G's mode, batch), covariance

    def to_dict(self) -> dict:
        out = {"metric": self.metric, "results": self.results, "num": self.num, "total_time": self.seconds}
        known = {k: v for k, v in self.higher_is_better.items() if v is not None}
        if known:
            out["higher_is_better"] = known
        if self.reference is not None:
            out["reference"] = self.reference
        if self.protocol is not None:
            out["protocol"] = self.protocol
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
    seconds = time.time() - start
    p = metric.protocol
    return MetricResult(label, results, num, seconds,
                        {key: metric.direction(key[len(label) + 1:] or None) for key in results},
                        reference=ctx.reference_record(p) if p is not None and metric.reals else None,
                        protocol=ctx.protocol_record(p) if p is not None else None)


def needs_reference(names) -> list[str]:
    """The metrics among ``names`` that compare with a reference set (``ref``) rather than the training data."""
    return [n for n in parse_metric_names(names)
            if METRICS[n].protocol is not None and METRICS[n].protocol.reference == "ref"]


def check_metrics_ref(names, ref: str | None, resolution: int | None, channels: int | None,
                      flag: str = "--metrics-ref") -> None:
    """A training run's snapshot metrics and its reference set, checked before training starts: a metric that
    compares with a reference set needs ``ref``, and ``ref`` (used or not, as a resumed run may add fid10k) must
    hold images at the run's ``resolution`` and ``channels``."""
    with_ref = needs_reference(names) if names else []
    if ref is None and with_ref:
        raise UserError(f"--metrics {with_ref[0]} compares with a reference set; pass {flag} (e.g. the test split "
                        "written by fakeclr dataset).")
    if ref is not None:
        from .inputs import check_reference
        check_reference(ref, resolution, channels, flag)


def compute_metrics(names, G, dataset, device="cpu", num_gen: int | None = None, seed: int = 0, batch: int = 32,
                    cache: bool = True, progress: bool = False, ref: str | None = None) -> dict[str, float]:
    """The training-time hook: compute ``names`` (list or comma string) for ``G`` against ``dataset``.

    ``G`` is used as given (pass ``G_ema`` in eval mode); ``dataset`` is an :class:`~fakeclr.data.ImageDataset`;
    ``ref`` the reference set of ``fid10k`` (a folder or zip of images at G's resolution).
    Returns one flat dict of result keys (e.g. ``fid5k_full``, ``pr5k3_full_precision``) to floats. The same
    arguments give the same numbers. The caller's RNG state is not changed.
    """
    ctx = MetricContext(G, dataset, device, seed, num_gen, batch, cache, progress, ref=ref)
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
