"""``fakeclr export``: ONNX (run by onnxruntime) and TorchScript files compute what PyTorch computes."""

from __future__ import annotations

import pytest
import torch

from fakeclr.cli import main
from fakeclr.nn import Discriminator, Generator
from fakeclr.tools.export import ONNX_TOLERANCE, check_export, example_inputs, export_module
from fakeclr.train.checkpoint import save_networks

KW = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, mapping_layers=2, channel_base=128, channel_max=16)


def generator(c_dim: int = 0, seed: int = 0) -> Generator:
    """A tiny G whose w_avg, noise strengths and biases are non-zero, so truncation and noise matter."""
    torch.manual_seed(seed)
    G = Generator(c_dim=c_dim, **KW).eval().requires_grad_(False)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, t in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                t.normal_(0, 0.3)
    return G



@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("synthesis, c_dim", [(False, 0), (False, 3), (True, 0)])
def test_exported_graph_equals_pytorch_for_two_batch_sizes(fmt, synthesis, c_dim, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    G = generator(c_dim)
    path = tmp_path / f"g.{fmt}"
    kw = {} if synthesis else dict(truncation_psi=0.6, truncation_cutoff=4)
    module = export_module(G, path, fmt, synthesis=synthesis, **kw)
    checks = check_export(module, G, path, fmt, synthesis, batches=(1, 5))
    assert [c.shape for c in checks] == [(1, 3, 16, 16), (5, 3, 16, 16)]
    assert all(c.max_abs_diff <= ONNX_TOLERANCE for c in checks), checks
    # and the reference really is the generator with those settings, not something the file agrees with anyway
    inputs = example_inputs(G, synthesis, 5, seed=5)
    with torch.no_grad():
        if synthesis:
            ref = G.synthesis(inputs[0], noise_mode="const")
        else:
            ref = G(*inputs, truncation_psi=0.6, truncation_cutoff=4, noise_mode="const") if c_dim else \
                G(inputs[0], None, truncation_psi=0.6, truncation_cutoff=4, noise_mode="const")
            assert not torch.allclose(ref, G(*inputs, noise_mode="const") if c_dim else G(inputs[0], None,
                                                                                          noise_mode="const"))
    torch.testing.assert_close(module(*inputs), ref, rtol=0, atol=1e-5)


def test_export_cli_prints_the_check_and_bad_flags(tmp_path, capsys):
    net = tmp_path / "network-snapshot-000001.safetensors"
    G = generator()
    save_networks(net, {"G_ema": G, "D": Discriminator(img_resolution=16, channel_base=128, channel_max=16)})
    assert main(["export", str(net), "--torchscript", str(tmp_path / "g.pt"), "--noise-mode", "none"]) == 0
    out = capsys.readouterr().out
    assert "batch 1 -> [1, 3, 16, 16], batch 5 -> [5, 3, 16, 16]; max |difference| to PyTorch 0" in out
    loaded = torch.jit.load(str(tmp_path / "g.pt"))
    z = torch.randn(3, 16)
    torch.testing.assert_close(loaded(z), G(z, None, noise_mode="none"), rtol=0, atol=1e-5)   # G: fused modconv
    for argv, message in ((["export", str(net)], "Say what to write: --onnx G.onnx and/or --torchscript G.pt."),
                          (["export", str(net), "--torchscript", str(tmp_path / "s.pt"), "--synthesis", "--trunc",
                            "0.5"], "--trunc and --trunc-cutoff act in the mapping network"),
                          (["export", str(tmp_path / "nope.safetensors"), "--torchscript", str(tmp_path / "x.pt")],
                           "does not exist")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "x.pt").exists()


def test_onnx_without_the_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    import builtins
    real = builtins.__import__

    def no_onnx(name, *a, **k):
        if name in ("onnx", "onnxscript"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    import fakeclr.errors
    with pytest.raises(fakeclr.errors.UserError, match=r"pip install 'fakeclr\[export\]'"):
        export_module(generator(), tmp_path / "g.onnx", "onnx")
    assert not (tmp_path / "g.onnx").exists()
