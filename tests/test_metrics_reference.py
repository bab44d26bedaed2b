"""FID against a reference set (``fid10k``, DiffAugment's CIFAR protocol) beside the training-set FID
(``fid*_full``, StyleGAN2-ADA's), with a stand-in detector: the formula against SciPy, the cache keyed by the
reference's images, the labels and the generator's mode each protocol names, the record of what was used.

The detector is a stand-in (a few pixels as features) so that these run in seconds; the real Inception is covered
by test_metrics_networks.py.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from fakeclr.data import ImageDataset
from fakeclr.errors import UserError
from fakeclr.metrics import features, registry
from fakeclr.metrics.fid import fid_from_features
from fakeclr.metrics.registry import DIFFAUGMENT, MetricContext, calc_metric
from packed_files import cifar10_files, write_folder, write_tar

DIM = 6                  # stand-in feature width: fewer than the images, so the covariance form is used
CALLS: list = []         # every G call: (batch, class indices, G.training, output); module-level so copies share it


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """The stand-in features of uint8 images ``[N, C, H, W]``: ``DIM`` fixed pixels as floats ``[N, DIM]``."""
    return x.float().flatten(1)[:, 5:5 + DIM]


class PixelDetector(torch.nn.Module):
    """Stands in for the Inception: ``features`` are a few pixels; counts the images it sees."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.ones(1))
        self.seen = 0

    def features(self, x):
        self.seen += x.shape[0]
        return _pixels(x)


class BNGenerator(torch.nn.Module):
    """A conditional G with BatchNorm, 8x8 grayscale: its output depends on train/eval mode and on the batch."""

    z_dim, c_dim, img_resolution, img_channels = 8, 4, 8, 1

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        n = self.img_channels * self.img_resolution ** 2
        self.fc = torch.nn.Linear(self.z_dim + self.c_dim, n)
        self.bn = torch.nn.BatchNorm1d(n)
        self.bn.running_mean += 0.5                          # eval mode differs visibly from batch statistics

    def forward(self, z, c, **kwargs):
        out = torch.tanh(self.bn(self.fc(torch.cat([z, c], 1))))
        out = out.view(-1, self.img_channels, self.img_resolution, self.img_resolution)
        CALLS.append((z.shape[0], c.argmax(1).tolist(), self.training, out.clone()))
        return out


class CifarGenerator(BNGenerator):
    z_dim, c_dim, img_resolution, img_channels = 8, 10, 32, 3


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A detector stand-in, a fresh stats cache, a 12-image reference folder, a G and class-0 training data."""
    det = PixelDetector()
    monkeypatch.setattr(registry, "load_inception", lambda device, classifier=False: det)
    monkeypatch.setattr(features, "stats_cache_dir", lambda: tmp_path / "cache")
    ref = tmp_path / "ref"
    ref.mkdir()
    rng = np.random.RandomState(1)
    for i in range(12):
        Image.fromarray(rng.randint(0, 256, (8, 8), dtype=np.uint8), "L").save(ref / f"{i:02d}.png")
    G = BNGenerator().eval()
    train_images = torch.from_numpy(rng.randint(0, 256, (10, 1, 8, 8), dtype=np.uint8))
    labels = torch.zeros(10, 4)
    labels[:, 0] = 1                                          # every training image is class 0
    data = ImageDataset(train_images, labels, source="toy-train")
    CALLS.clear()
    return det, ref, G, data


def _scipy_fid(real: np.ndarray, gen: np.ndarray, ddof: int) -> float:
    """FID as DiffAugment's inception_tf.py writes it (np.cov, scipy sqrtm); ``ddof=0`` StyleGAN2-ADA's."""
    mu_r, mu_g = real.mean(0), gen.mean(0)
    s_r, s_g = np.cov(real, rowvar=False, ddof=ddof), np.cov(gen, rowvar=False, ddof=ddof)
    s = scipy.linalg.sqrtm(s_g @ s_r)
    return float(np.real(np.square(mu_g - mu_r).sum() + np.trace(s_g + s_r - 2 * s)))


def _folder_features(folder) -> np.ndarray:
    imgs = [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]
    return _pixels(torch.from_numpy(np.stack(imgs))[:, None]).double().numpy()


def _generated_features(num: int) -> np.ndarray:
    """Features of the first ``num`` images G returned, quantised here (StyleGAN2-ADA's rounding)."""
    out = torch.cat([c[3] for c in CALLS])[:num]
    return _pixels((out * 127.5 + 128).clamp(0, 255).to(torch.uint8)).double().numpy()


def test_fid10k_is_the_diffaugment_fid_against_every_reference_image(setup):
    det, ref, G, data = setup
    ctx = MetricContext(G, data, num_gen=120, ref=str(ref), progress=False)
    res = calc_metric("fid10k", ctx)
    assert res.metric == "fid120" and res.num == 120                      # filed under the count used
    want = _scipy_fid(_folder_features(ref), _generated_features(120), ddof=1)
    assert res.results["fid120"] == pytest.approx(want, rel=1e-6)
    # The N-1 covariance matters here (12 reference images): StyleGAN2-ADA's N would give another number.
    assert abs(_scipy_fid(_folder_features(ref), _generated_features(120), ddof=0) - want) > 1e-3 * want
    # G ran as DiffAugment's sample(): a copy in train mode on whole batches of 50 (150 drawn, 120 kept) ...
    assert [(n, training) for n, _, training, _ in CALLS] == [(50, True)] * 3
    # ... with uniformly drawn classes (the training data hold class 0 only) ...
    classes = np.bincount(sum((c[1] for c in CALLS), []), minlength=4)
    assert (classes > 20).all(), classes
    # ... and the caller's G is untouched: still in eval mode, BatchNorm's running statistics unchanged.
    assert not G.training and torch.equal(G.bn.running_mean, torch.full((64,), 0.5))


def test_the_full_metrics_keep_stylegan2_ada_s_protocol_beside_it(setup):
    det, ref, G, data = setup
    ctx = MetricContext(G, data, num_gen=40, ref=str(ref), progress=False)
    res = calc_metric("fid5k_full", ctx)
    want = _scipy_fid(_pixels(data.images).double().numpy(), _generated_features(40), ddof=0)
    assert res.results["fid40_full"] == pytest.approx(want, rel=1e-6)
    assert all(not training for _, _, training, _ in CALLS)               # G as given (eval mode)
    assert set(sum((c[1] for c in CALLS), [])) == {0}                     # labels of random training items
    rec = res.to_dict()
    assert rec["reference"]["set"] == "training data" and rec["reference"]["source"] == "toy-train"
    assert rec["reference"]["images"] == 10 and rec["protocol"] == {
        "labels": "dataset", "generator": "eval mode", "gen_batch": 32, "covariance": "N-0"}


def test_the_full_metrics_of_a_subset_run_use_the_whole_data_set(setup):
    """StyleGAN2-ADA's fid50k_full/kid/pr/is set ``max_size=None``: a run trained on ``--subset`` is compared with
    every image of its data set, and its generated images take the labels of random items of the whole set."""
    det, ref, G, subset = setup                               # the subset: 10 images, class 0 only
    rng = np.random.RandomState(2)
    whole_images = torch.cat([subset.images, torch.from_numpy(rng.randint(0, 256, (30, 1, 8, 8), dtype=np.uint8))])
    whole_labels = torch.eye(4)[torch.arange(40) % 4]           # classes 0-3
    whole_labels[:10] = subset.labels
    whole = ImageDataset(whole_images, whole_labels, source="toy-train")
    opened = []
    ctx = MetricContext(G, subset, num_gen=40, progress=False, open_whole=lambda: opened.append(1) or whole)
    res = calc_metric("fid5k_full", ctx)
    want = _scipy_fid(_pixels(whole_images).double().numpy(), _generated_features(40), ddof=0)
    assert res.results["fid40_full"] == pytest.approx(want, rel=1e-6)
    assert set(sum((c[1] for c in CALLS), [])) == {0, 1, 2, 3}          # labels of the whole set's items
    assert res.to_dict()["reference"]["images"] == 40
    calc_metric("kid5k_full", ctx)
    assert opened == [1]                                       # opened once per context
    assert ctx.label_data() is subset                           # PPL and continuity keep the run's own data
    # Without a subset (open_whole gives None) the data set given is the whole one.
    plain = MetricContext(G, subset, num_gen=40, progress=False, open_whole=lambda: None)
    assert calc_metric("fid5k_full", plain).to_dict()["reference"]["images"] == 10


def test_the_result_records_the_reference_and_the_protocol(setup, tmp_path):
    det, ref, G, data = setup
    ctx = MetricContext(G, None, num_gen=50, ref=str(ref), progress=False)       # no training data needed
    rec = calc_metric("fid10k", ctx).to_dict()
    assert rec["reference"]["set"] == "reference" and rec["reference"]["source"] == str(ref)
    assert rec["reference"]["images"] == 12 and len(rec["reference"]["digest"]) == 16
    assert rec["protocol"] == {"labels": "uniform", "generator": "train mode (batch statistics)", "gen_batch": 50,
                               "covariance": "N-1"}
    path = registry.append_metric_jsonl(tmp_path, calc_metric("fid10k", ctx), snapshot="s")
    assert json.loads(path.read_text())["reference"] == rec["reference"]


def test_reference_statistics_are_cached_by_the_reference_s_images(setup):
    det, ref, G, data = setup
    first = calc_metric("fid10k", MetricContext(G, data, num_gen=50, ref=str(ref), progress=False))
    assert det.seen == 12 + 50
    again = calc_metric("fid10k", MetricContext(G, data, num_gen=50, ref=str(ref), progress=False))
    assert det.seen == 12 + 50 + 50 and again.results == first.results             # the reference came from disk
    img = np.asarray(Image.open(ref / "03.png")).copy()
    img[0, 6] ^= 0xFF                                                               # one pixel a feature sees
    Image.fromarray(img, "L").save(ref / "03.png")                                  # same file name, new content
    changed = calc_metric("fid10k", MetricContext(G, data, num_gen=50, ref=str(ref), progress=False))
    assert det.seen == 12 + 50 + 50 + 12 + 50                                       # recomputed, not served stale
    assert changed.results != first.results
    assert changed.reference["digest"] != first.reference["digest"]
    want = _scipy_fid(_folder_features(ref), _generated_features(50)[:50], ddof=1)
    assert changed.results["fid50"] == pytest.approx(want, rel=1e-6)


def test_fid10k_without_a_reference_or_with_a_wrong_one_is_one_sentence(setup, tmp_path):
    det, ref, G, data = setup
    with pytest.raises(UserError, match="pass --ref"):
        calc_metric("fid10k", MetricContext(G, data, num_gen=4, progress=False))
    with pytest.raises(UserError, match="--metrics-ref"):
        calc_metric("fid10k", MetricContext(G, data, num_gen=4, progress=False, ref_flag="--metrics-ref"))
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(big / "a.png")
    with pytest.raises(UserError, match=r"16x16 images with 3 channel\(s\) but the network makes 8x8 with 1"):
        calc_metric("fid10k", MetricContext(G, data, num_gen=4, ref=str(big), progress=False))


def test_diffaugment_protocol_is_what_its_code_does():
    """The facts read from DiffAugment-biggan-cifar, kept here so that a change to them is deliberate."""
    assert DIFFAUGMENT.reference == "ref" and DIFFAUGMENT.labels == "uniform" and DIFFAUGMENT.batch_stats
    assert DIFFAUGMENT.gen_batch == 50 and DIFFAUGMENT.ddof == 1
    assert registry.METRICS["fid10k"].default_num == 10000
    assert registry.needs_reference("fid50k_full,fid10k,kid5k_full") == ["fid10k"]
    assert registry.higher_is_better("fid10k") is False and registry.higher_is_better("fid1k") is False


@pytest.mark.parametrize("n_real,n_gen,dim", [(40, 60, 5), (12, 30, 16)])
def test_fid_with_n_minus_1_covariances_equals_scipy_in_both_forms(n_real, n_gen, dim):
    rng = np.random.RandomState(0)
    real = rng.randn(n_real, dim)
    gen = 0.8 * rng.randn(n_gen, dim) @ rng.randn(dim, dim) / np.sqrt(dim) + 0.3
    for ddof in (0, 1):
        assert fid_from_features(real, gen, ddof=ddof) == pytest.approx(_scipy_fid(real, gen, ddof), rel=1e-6)


def test_train_time_fid10k_against_a_reference_set(tmp_path, monkeypatch, capsys):
    """A run with --metrics fid10k --metrics-ref writes metric-fid<N>.jsonl at each snapshot, naming the reference."""
    from fakeclr.train.loop import train
    from fakeclr.train.resolve import resolve
    det = PixelDetector()
    monkeypatch.setattr(registry, "load_inception", lambda device, classifier=False: det)
    monkeypatch.setattr(features, "stats_cache_dir", lambda: tmp_path / "cache")
    ref = tmp_path / "ref"
    ref.mkdir()
    for i in range(8):
        Image.fromarray(np.random.RandomState(i).randint(0, 256, (16, 16), dtype=np.uint8), "L").save(ref / f"{i}.png")
    cfg = resolve("tiny", {"data.source": "lfw", "kimg": 0.008, "snapshot_kimg": 0.008, "tick_kimg": 0.008,
                           "metrics": "fid10k", "metrics_num_gen": 8, "metrics_ref": str(ref)})
    train(cfg, tmp_path / "run", tensorboard=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metric-fid8.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and np.isfinite(lines[0]["results"]["fid8"]) and lines[0]["kimg"] == 0.008
    assert {r["reference"]["source"] for r in lines} == {str(ref)} and lines[0]["reference"]["images"] == 8
    assert json.loads((tmp_path / "run" / "config.json").read_text())["metrics_ref"] == str(ref)
    # Afterwards `fakeclr metrics` finds the run's reference set in the snapshot and gives the same number.
    from fakeclr.cli import main
    snap = sorted((tmp_path / "run").glob("network-snapshot-*.safetensors"))[-1]
    assert main(["metrics", "--network", str(snap), "--metrics", "fid10k", "--num-gen", "8"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["reference"] == lines[0]["reference"]
    assert line["results"]["fid8"] == pytest.approx(lines[0]["results"]["fid8"], rel=1e-9)
    with pytest.raises(UserError, match="--metrics-ref"):
        resolve("tiny", {"data.source": "lfw", "metrics": "fid10k"})


def test_train_time_full_metrics_of_a_subset_run_compare_with_every_image(tmp_path, monkeypatch, capsys):
    """A run on --subset 10 of the 100 LFW faces evaluates fid*_full against all 100 (StyleGAN2-ADA resets
    max_size), and ``fakeclr metrics`` on its snapshot, with or without --data, gives the same number."""
    from fakeclr.train.loop import train
    from fakeclr.train.resolve import resolve
    det = PixelDetector()
    monkeypatch.setattr(registry, "load_inception", lambda device, classifier=False: det)
    monkeypatch.setattr(features, "stats_cache_dir", lambda: tmp_path / "cache")
    cfg = resolve("tiny", {"data.source": "lfw", "data.subset": 10, "kimg": 0.008, "snapshot_kimg": 0.008,
                           "tick_kimg": 0.008, "metrics": "fid5k_full", "metrics_num_gen": 8})
    train(cfg, tmp_path / "run", tensorboard=False)
    line = json.loads((tmp_path / "run" / "metric-fid8_full.jsonl").read_text().splitlines()[0])
    assert line["reference"]["images"] == 100 and np.isfinite(line["results"]["fid8_full"])
    from fakeclr.cli import main
    snap = sorted((tmp_path / "run").glob("network-snapshot-*.safetensors"))[-1]
    for extra in ([], ["--data", "lfw"]):
        assert main(["metrics", "--network", str(snap), "--metrics", "fid5k_full", "--num-gen", "8", *extra]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["reference"] == line["reference"]
        assert out["results"]["fid8_full"] == pytest.approx(line["results"]["fid8_full"], rel=1e-9)
    # So does the study's evaluation of the run (FID and KID only: no PPL, continuity or noise floor here).
    from fakeclr.tools.study import evaluate
    monkeypatch.setattr(evaluate, "has_w_space", lambda G: False)
    res = evaluate.evaluate_run(tmp_path / "run", [0.008], 8, continuity_paths=0, with_noise_floor=False)
    assert res["metrics"]["fid8_full"] == pytest.approx(line["results"]["fid8_full"], rel=1e-9)
    study_lines = [json.loads(x) for x in (tmp_path / "run" / "metric-fid8_full.jsonl").read_text().splitlines()]
    assert study_lines[-1]["study"] and study_lines[-1]["reference"]["images"] == 100


def test_cifar_data_as_reference_is_its_test_split(setup, tmp_path):
    """``--ref cifar-10-python.tar.gz`` compares with its test batch (not the training batches), and so does the
    test split written as a zip by ``fakeclr dataset --split test``: the same images, the same number."""
    from fakeclr.cli import main
    det, _, _, _ = setup
    files = cifar10_files(per_batch=4, test=7)
    tar = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    G = CifarGenerator().eval()
    res = calc_metric("fid10k", MetricContext(G, None, num_gen=50, ref=str(tar), progress=False))
    assert res.reference["images"] == 7 and res.reference["split"] == "test"
    test = pickle.loads(files["test_batch"], encoding="latin1")["data"].reshape(-1, 3, 32, 32)
    want = _scipy_fid(_pixels(torch.from_numpy(test)).double().numpy(), _generated_features(50), ddof=1)
    assert res.results["fid50"] == pytest.approx(want, rel=1e-6)
    assert main(["dataset", str(tar), str(tmp_path / "test.zip"), "--split", "test", "--resolution", "32"]) == 0
    zipped = calc_metric("fid10k", MetricContext(G, None, num_gen=50, ref=str(tmp_path / "test.zip"), progress=False))
    assert zipped.results == res.results and zipped.reference["images"] == 7
    assert zipped.reference["split"] == "test"                                  # the zip's dataset.json says so
    assert zipped.reference["digest"] == res.reference["digest"]
    # CIFAR data whose test batch is missing is refused, never silently replaced by the training batches.
    folder = write_folder(tmp_path / "no-test", {k: v for k, v in files.items() if k != "test_batch"})
    with pytest.raises(UserError, match="--ref .*no-test is CIFAR or IDX data without a readable test split"):
        calc_metric("fid10k", MetricContext(G, None, num_gen=4, ref=str(folder), progress=False))
