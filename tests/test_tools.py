"""User tools on a tiny generator: generate (truncation per layer, projected w), interpolate, style-mix, project."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from fakeclr.cli import main, make_parser
from fakeclr.errors import UserError
from fakeclr.nn import Generator
from fakeclr.tools import generate as gen
from fakeclr.tools import interpolate as itp
from fakeclr.tools import project as prj
from fakeclr.tools import style_mixing as sm
from fakeclr.tools.media import mp4_available
from fakeclr.train.checkpoint import save_networks

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, mapping_layers=2, channel_base=128, channel_max=16)


def tiny_generator(seed: int = 0) -> Generator:
    """A freshly initialised tiny G (num_ws 6) with ``w_avg`` set to the mean ``w``, as after training."""
    torch.manual_seed(seed)
    G = Generator(**TINY).eval().requires_grad_(False)
    G.mapping.w_avg.copy_(prj.w_statistics(G, 2000, seed=1)[0])
    return G


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def network(tmp_path_factory, G):
    import copy
    path = tmp_path_factory.mktemp("net") / "network-snapshot-000001.safetensors"
    save_networks(path, {"G": copy.deepcopy(G), "G_ema": G})
    return path


def _flags(command):
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_tool_flags_are_frozen():
    """Users script these; the list changes only on purpose."""
    common = {"--network", "--net", "--device"}
    assert common | {"--seeds", "--pairs", "--seed", "--frames", "--space", "--method", "--loop", "--trunc",
                     "--trunc-cutoff", "--class", "--noise-mode", "--outdir", "--grid-cols", "--fps", "--zoom",
                     "--no-mp4"} <= _flags("interpolate")
    assert common | {"--rows", "--cols", "--layers", "--trunc", "--trunc-cutoff", "--class", "--noise-mode", "--out",
                     "--zoom"} <= _flags("style-mix")
    assert common | {"--target", "--outdir", "--steps", "--w-plus", "--noise", "--no-noise", "--lr", "--w-avg-samples",
                     "--seed", "--distance", "--lpips-weights", "--class", "--video", "--no-video",
                     "--zoom"} <= _flags("project")
    assert {"--out", "--title"} <= _flags("report")
    assert {"--trunc", "--trunc-cutoff", "--projected-w", "--class"} <= _flags("generate")


# ---------------------------------------------------------------------------------------------------- generate
def test_per_layer_truncation_matches_the_mapping_network(G):
    z = gen.latents_for_seeds([3, 4], G.z_dim)
    ref = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.equal(gen.ws_for_seeds(G, [3, 4], 0.5, 2), ref)
    assert torch.equal(gen.ws_for_seeds(G, [3, 4], [0.5, 0.5, 1, 1, 1, 1]), ref)
    assert torch.equal(gen.ws_for_seeds(G, [3, 4], 1.0), G.mapping(z, None))     # psi 1 is exactly off
    ws = gen.ws_for_seeds(G, [3], [0, 1, 0.25, 1, 1, 1])[0]
    w = G.mapping(z[:1], None)[0]
    assert torch.allclose(ws[0], G.mapping.w_avg) and torch.equal(ws[1], w[1])
    assert torch.allclose(ws[2], G.mapping.w_avg + 0.25 * (w[2] - G.mapping.w_avg), atol=1e-6)


def test_psi_parsing_and_errors(G):
    assert gen.parse_psi("0.7") == 0.7 and gen.parse_psi("0.5,1") == [0.5, 1.0]
    with pytest.raises(UserError, match="--trunc"):
        gen.parse_psi("a,b")
    with pytest.raises(UserError, match="6 synthesis layers"):
        gen.layer_psi(6, [0.5, 1])
    with pytest.raises(UserError, match="--trunc-cutoff"):
        gen.layer_psi(6, 0.5, 9)


def test_generate_cli_cutoff_and_projected_w(tmp_path, network, G):
    out = tmp_path / "a"
    assert main(["generate", "--network", str(network), "--seeds", "1,2", "--trunc", "0.6", "--trunc-cutoff", "3",
                 "--outdir", str(out)]) == 0
    img = np.asarray(Image.open(out / "seed0002.png"))
    expect = gen.synthesize(G, G.mapping(gen.latents_for_seeds([2], G.z_dim), None, truncation_psi=0.6,
                                         truncation_cutoff=3))[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(img, expect)
    # A saved W+ latent renders to the same image as its seed.
    npz = tmp_path / "w.npz"
    np.savez(npz, w=gen.ws_for_seeds(G, [5])[0].numpy())
    assert main(["generate", "--network", str(network), "--projected-w", str(npz), "--outdir", str(tmp_path / "p"),
                 "--seeds", "5"]) == 0
    assert main(["generate", "--network", str(network), "--seeds", "5", "--outdir", str(tmp_path / "s")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p" / "projected0000.png")),
                                  np.asarray(Image.open(tmp_path / "s" / "seed0005.png")))
    bad = tmp_path / "bad.npz"
    np.savez(bad, w=np.zeros((3, 7), np.float32))
    with pytest.raises(UserError, match="project with the same network"):
        gen.load_projected_w(bad, G)


def test_generate_conditional_labels():
    torch.manual_seed(0)
    G = Generator(**{**TINY, "c_dim": 3}).eval()
    a = gen.generate(G, [0, 1], class_idx=0)
    b = gen.generate(G, [0, 1], class_idx=2)
    assert a.shape == (2, 3, 16, 16) and not torch.equal(a, b)
    assert torch.equal(a, gen.generate(G, [0, 1], class_idx=0))
    with pytest.raises(UserError, match="--class"):
        gen.generate(G, [0])


# ---------------------------------------------------------------------------------------------------- interpolate
def test_walk_hits_keys_and_slerp_stays_on_the_sphere():
    keys = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    for method in ("lerp", "slerp"):
        path = itp.walk(keys, 9, method)
        assert path.shape == (9, 8)
        assert torch.allclose(path[0], keys[0], atol=1e-5) and torch.allclose(path[4], keys[1], atol=1e-5)
        assert torch.allclose(path[8], keys[2], atol=1e-5)
    unit = torch.nn.functional.normalize(keys, dim=1)
    assert torch.allclose(itp.walk(unit, 7, "slerp").norm(dim=1), torch.ones(7), atol=1e-5)
    mid = itp.slerp(unit[0], unit[1], torch.tensor(0.5))
    assert torch.allclose((mid * unit[0]).sum(), (mid * unit[1]).sum(), atol=1e-5)   # equal angle to both ends
    loop = itp.walk(keys, 6, "lerp", loop=True)
    assert torch.allclose(loop[0], keys[0]) and torch.allclose(loop[2], keys[1], atol=1e-5)
    layered = itp.walk(torch.randn(2, 4, 8), 5, "slerp")     # W+ keys: per-layer vectors
    assert layered.shape == (5, 4, 8)


def test_interpolation_ws_shapes_and_endpoints(G):
    ws = itp.interpolation_ws(G, [[1, 2], [3, 4, 5]], 7, space="w", method="lerp")
    assert ws.shape == (2, 7, G.num_ws, G.w_dim)
    assert torch.allclose(ws[0, 0], gen.ws_for_seeds(G, [1])[0], atol=1e-6)
    assert torch.allclose(ws[1, -1], gen.ws_for_seeds(G, [5])[0], atol=1e-6)
    wz = itp.interpolation_ws(G, [[1, 2]], 5, space="z", method="slerp", psi=0.5)
    assert torch.allclose(wz[0, -1], gen.ws_for_seeds(G, [2], 0.5)[0], atol=1e-4)
    assert itp.random_pairs(3, seed=1) == itp.random_pairs(3, seed=1) != itp.random_pairs(3, seed=2)


def test_interpolate_cli_writes_grid_gif_mp4(tmp_path, network, G, capsys):
    out = tmp_path / "interp"
    args = ["interpolate", "--network", str(network), "--seeds", "1,2", "--pairs", "1", "--frames", "6",
            "--grid-cols", "3", "--zoom", "2", "--outdir", str(out)]
    assert main(args) == 0
    grid = Image.open(out / "interp_grid.png")
    assert grid.size == (3 * 16 * 2, 2 * 16 * 2)           # 3 frames per row, one row per path, zoom 2
    gif = Image.open(out / "interp.gif")
    assert gif.n_frames == 6 and gif.size == ((2 * 16 + 2) * 2, 16 * 2)   # 2 paths side by side, 2 px gap
    first = np.asarray(grid)[:32, :32]
    expect = np.asarray(Image.fromarray(gen.generate(G, [1])[0].permute(1, 2, 0).numpy()).resize((32, 32), Image.NEAREST))
    np.testing.assert_array_equal(first, expect)
    if mp4_available():
        import imageio_ffmpeg
        assert imageio_ffmpeg.count_frames_and_secs(str(out / "interp.mp4"))[0] == 6
    else:
        assert "MP4 skipped" in capsys.readouterr().err
    before = (out / "interp_grid.png").read_bytes()
    assert main(args) == 0 and (out / "interp_grid.png").read_bytes() == before   # deterministic


def test_interpolation_without_an_mp4_encoder(tmp_path, monkeypatch):
    import fakeclr.tools.media as media
    monkeypatch.setattr(media, "mp4_available", lambda: False)
    frames = torch.zeros(1, 3, 1, 4, 4, dtype=torch.uint8)
    files = itp.write_interpolation(frames, tmp_path)
    assert files.mp4 is None and "pip install imageio-ffmpeg" in files.message and files.gif.is_file()


def test_interpolate_needs_a_path(network):
    assert main(["interpolate", "--network", str(network), "--outdir", "x"]) == 2
    assert main(["interpolate", "--network", str(network), "--seeds", "3", "--outdir", "x"]) == 2


# ---------------------------------------------------------------------------------------------------- style mixing
def test_style_mixing_swaps_the_chosen_layers(G):
    row, col = gen.ws_for_seeds(G, [1, 2]), gen.ws_for_seeds(G, [3, 4, 5])
    mixed = sm.mix_ws(row, col, [0, 1])
    assert mixed.shape == (2, 3, G.num_ws, G.w_dim)
    assert torch.equal(mixed[1, 2, :2], col[2, :2]) and torch.equal(mixed[1, 2, 2:], row[1, 2:])
    images = sm.style_mixing_images(G, [1, 2], [3, 4, 5], list(range(G.num_ws)))
    assert images.shape == (3, 4, 3, 16, 16) and images[0, 0].max() == 0
    assert torch.equal(images[2, 3], images[0, 3])            # all layers from the column = the column image
    assert torch.equal(images[1, 0], gen.generate(G, [1])[0])
    assert sm.parse_layers("coarse", 6) == [0, 1] and sm.parse_layers("0-2,5", 6) == [0, 1, 2, 5]
    with pytest.raises(UserError, match="0-5"):
        sm.parse_layers("4-9", 6)


def test_style_mix_cli(tmp_path, network):
    out = tmp_path / "mix.png"
    assert main(["style-mix", "--network", str(network), "--rows", "0-2", "--cols", "5,6", "--layers", "fine",
                 "--out", str(out), "--zoom", "3"]) == 0
    assert Image.open(out).size == (3 * 16 * 3, 4 * 16 * 3)


# ---------------------------------------------------------------------------------------------------- projector
def test_learning_rate_and_noise_ramps():
    cfg = prj.ProjectorConfig(num_steps=100)
    assert prj.learning_rate(0.0, cfg) == 0.0
    assert prj.learning_rate(0.025, cfg) == pytest.approx(0.05)              # half way up the 5% warm-up
    assert prj.learning_rate(0.5, cfg) == pytest.approx(0.1)
    assert prj.learning_rate(0.875, cfg) == pytest.approx(0.05)              # half way down the cosine
    assert prj.w_noise_scale(0.0, cfg, 2.0) == pytest.approx(2.0 * 0.05)
    assert prj.w_noise_scale(0.375, cfg, 2.0) == pytest.approx(0.1 * 0.25) and prj.w_noise_scale(0.8, cfg, 2.0) == 0


def test_noise_regularization_penalises_correlated_noise():
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(16, 16, generator=g)]
    smooth = [torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4, generator=g), size=16, mode="bilinear")[0, 0]]
    smooth = [(s - s.mean()) / s.std() for s in smooth]
    assert prj.noise_regularization(smooth) > 20 * prj.noise_regularization(white)
    stripes = torch.ones(8, 8)
    stripes[:, ::2] = -1       # autocorrelation -1 along x, +1 along y
    assert prj.noise_regularization([stripes]) == pytest.approx(2.0)


def test_projector_recovers_the_latent_of_a_generated_image(G):
    """Target made by G itself: the distance falls by orders of magnitude and w lands next to the true w."""
    w_true = gen.ws_for_seeds(G, [7])[0]
    target = G.synthesis(w_true[None], noise_mode="const")[0]
    cfg = prj.ProjectorConfig(num_steps=100, w_avg_samples=2000)
    steps = []
    proj = prj.project(G, target, prj.pixel_distance, cfg, progress=lambda s, d, l: steps.append(s))
    assert steps == list(range(100)) and proj.w_steps.shape == (100, G.num_ws, G.w_dim)
    w_avg, _ = prj.w_statistics(G, 2000)
    assert proj.distance[-1] < 0.01 * proj.distance[0]
    rel = (proj.w[0] - w_true[0]).norm() / (w_avg - w_true[0]).norm()
    assert rel < 0.1, f"projected w is {rel:.3f} of the way from the true w to w_avg"
    assert torch.equal(proj.w[0], proj.w[-1])                 # one w shared by all layers (not W+)
    # G itself is untouched (the noise maps were optimised on a copy).
    assert torch.equal(G.synthesis(w_true[None], noise_mode="const")[0], target)


def _lpips_or_skip():
    try:
        from fakeclr.metrics.weights import load_lpips
    except ImportError:
        pytest.skip("fakeclr.metrics.weights (LPIPS) is not available")
    import os
    old = os.environ.get("FAKECLR_OFFLINE")
    os.environ["FAKECLR_OFFLINE"] = "1"
    try:
        return load_lpips("vgg")
    except Exception as e:  # weights not cached here: the test needs them offline
        pytest.skip(f"LPIPS-VGG16 weights are not available offline ({e})")
    finally:
        if old is None:
            os.environ.pop("FAKECLR_OFFLINE", None)
        else:
            os.environ["FAKECLR_OFFLINE"] = old


def test_projector_reduces_lpips_on_a_generated_target():
    lpips = _lpips_or_skip()
    torch.manual_seed(1)
    G = Generator(**{**TINY, "img_resolution": 32}).eval().requires_grad_(False)   # VGG16 needs >= 32 px
    target = G.synthesis(gen.ws_for_seeds(G, [3]), noise_mode="const")[0]
    dist = prj.lpips_distance(lpips)
    proj = prj.project(G, target, dist, prj.ProjectorConfig(num_steps=10, w_avg_samples=500))
    w_avg, _ = prj.w_statistics(G, 500)
    start = float(dist(G.synthesis(w_avg.expand(1, G.num_ws, -1), noise_mode="const"), target[None]))
    final = prj.final_scores(G, target, proj, dist)["distance"]
    assert final < 0.7 * start, (start, final)     # 10 steps on CPU; the full run uses 1000


def test_project_cli_files_and_generate_roundtrip(tmp_path, network, G, capsys):
    target = tmp_path / "target.png"
    img = gen.generate(G, [9])[0].permute(1, 2, 0).numpy()
    Image.fromarray(img).resize((40, 32)).save(target)              # off-size and non-square: cropped, resized
    out = tmp_path / "proj"
    assert main(["project", "--network", str(network), "--target", str(target), "--outdir", str(out), "--steps", "12",
                 "--w-avg-samples", "500", "--distance", "mse"]) == 0
    text = capsys.readouterr().out
    assert "final pixel MSE" in text and "step    12/12" in text
    for name in ("target.png", "proj.png", "projected_w.npz", "proj.gif"):
        assert (out / name).is_file(), name
    with np.load(out / "projected_w.npz") as f:
        assert f["w"].shape == (1, G.num_ws, G.w_dim) and any(k.startswith("noise.") for k in f.files)
    assert Image.open(out / "proj.gif").n_frames == 12
    # generate --projected-w renders exactly the projector's reconstruction (w and optimised noise maps).
    assert main(["generate", "--network", str(network), "--projected-w", str(out / "projected_w.npz"),
                 "--grid", str(tmp_path / "again.png")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(out / "proj.png")))


def test_project_cli_falls_back_to_mse_without_lpips(tmp_path, network, G, capsys, monkeypatch):
    import fakeclr.metrics.weights as weights

    def unavailable(*args, **kwargs):
        raise UserError("Could not obtain LPIPS-VGG16 (offline)")
    monkeypatch.setattr(weights, "load_lpips", unavailable)
    target = tmp_path / "t.png"
    Image.fromarray(gen.generate(G, [2])[0].permute(1, 2, 0).numpy()).save(target)
    assert main(["project", "--network", str(network), "--target", str(target), "--outdir", str(tmp_path / "o"),
                 "--steps", "3", "--w-avg-samples", "100", "--no-video"]) == 0
    out, err = capsys.readouterr()
    assert "LPIPS-VGG16 is unavailable" in err and "projecting with pixel MSE instead" in err
    assert "final pixel MSE" in out and not (tmp_path / "o" / "proj.gif").exists()


def test_project_cli_bad_target(tmp_path, network, capsys):
    assert main(["project", "--network", str(network), "--target", str(tmp_path / "none.png"), "--outdir",
                 str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
