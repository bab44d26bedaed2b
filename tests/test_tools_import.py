"""``fakeclr import``: published-pickle conversion without running code from the pickle.

Two kinds of pickle are used.

*Crafted* (built in these tests, no anchor code): the exact record layout of StyleGAN2-ADA's
``torch_utils.persistence`` -- each network pickled as a call ``_reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}`` and ``state`` the module's ``__dict__``
(``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs`` as ``dnnlib.util.EasyDict`` ...). The global names
are those of the originals, provided by stand-in modules that exist only while the pickle is *written*; the
embedded ``module_src`` raises if anyone ever executed it.

*Anchor-made* (once, outside the repository; see docs/tools.md "How the importer was verified"): the real
StyleGAN2-ADA / FakeCLR code built ``G``, ``G_ema``, ``D``, ``D_ema``, ``augment_pipe`` and a FakeCLR ``GHead``
with :data:`G_KWARGS` / :data:`D_KWARGS`, loaded the weights of :func:`filled` networks, and saved the training
loop's snapshot dict with ``pickle.dump``. Its outputs for :func:`golden_inputs` are
``tests/assets/importer_golden.npz``; the pickle itself embeds the anchors' source code and is not committed.
Our importer converted that pickle to outputs identical to these numbers (max abs difference 0).
"""

from __future__ import annotations

import collections
import os
import pathlib
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from fakeclr.nn import Discriminator, Generator
from fakeclr.train.checkpoint import load_networks

ASSET = pathlib.Path(__file__).parent / "assets" / "importer_golden.npz"

# Tiny networks, in our constructor's terms and in StyleGAN2-ADA's (as its train.py builds them).
G_KWARGS = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3, mapping_layers=2, channel_base=256,
                channel_max=32, conv_clamp=256)
D_KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32, mbstd_group_size=2,
                conv_clamp=256)
SG2_G_KWARGS = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3,
                    mapping_kwargs=dict(num_layers=2),
                    synthesis_kwargs=dict(channel_base=256, channel_max=32, num_fp16_res=4, conv_clamp=256))
SG2_D_KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32, num_fp16_res=4,
                    conv_clamp=256, block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=2))
SEEDS = {"G": 11, "G_ema": 12, "D": 13, "D_ema": 14}


def fill(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Overwrite every parameter and buffer except FIR filters from ``numpy.random.RandomState(seed)``.

    Keys in sorted order; mapping weights are scaled by 1 / lr_multiplier (0.01) as at init; biases, noise
    strengths and ``w_avg`` are small and non-zero so that every term of the forward pass matters.
    """
    rs = np.random.RandomState(seed)
    with torch.no_grad():
        for key, t in sorted(net.state_dict().items()):
            if key.endswith("resample_filter"):
                continue
            v = np.asarray(rs.standard_normal(tuple(t.shape)), dtype=np.float32)
            if key.startswith("mapping.fc"):
                v = v * (100.0 if key.endswith("weight") else 0.2)
            elif key.endswith("affine.bias"):
                v = 1.0 + 0.2 * v
            elif key.endswith(("bias", "noise_strength", "w_avg")):
                v = 0.2 * v
            t.copy_(torch.from_numpy(np.asarray(v, dtype=np.float32)).reshape(t.shape))
    return net.eval().requires_grad_(False)


def filled(name: str) -> torch.nn.Module:
    net = Generator(**G_KWARGS) if name.startswith("G") else Discriminator(**D_KWARGS)
    return fill(net, SEEDS[name])


def golden_inputs() -> dict[str, torch.Tensor]:
    rs = np.random.RandomState(2024)
    return {"z": torch.from_numpy(rs.standard_normal((3, 32)).astype(np.float32)),
            "img": torch.from_numpy(rs.standard_normal((4, 3, 16, 16)).astype(np.float32))}


@torch.no_grad()
def outputs(G, D) -> dict[str, np.ndarray]:
    """What the golden holds: images (noise const, psi 1 and 0.7 with cutoff 3) and D logits."""
    x = golden_inputs()
    return {"img": G(x["z"], None, noise_mode="const").numpy(),
            "img_trunc": G(x["z"], None, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const").numpy(),
            "logits": D(x["img"], None).numpy()}


# ---------------------------------------------------------------------------------------------------- crafting
_POISON_SRC = "raise RuntimeError('the embedded module source was executed')\n"


class _EasyDict(dict):
    """Pickled under the name ``dnnlib.util.EasyDict`` (see :func:`_standins`)."""


def _reconstruct_standin(meta):  # pragma: no cover - never called: only its name goes into the pickle
    raise AssertionError("stand-in reconstruct function called")


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, like a persistent_class object."""

    def __init__(self, class_name: str, state: dict):
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=_POISON_SRC, class_name=self.class_name, state=self.state)
        return _reconstruct_standin, (meta,)


def _standins():
    """Modules ``torch_utils.persistence`` and ``dnnlib.util`` holding the stand-ins under the original names."""
    pers = types.ModuleType("torch_utils.persistence")
    _reconstruct_standin.__module__, _reconstruct_standin.__qualname__ = pers.__name__, "_reconstruct_persistent_obj"
    pers._reconstruct_persistent_obj = _reconstruct_standin
    util = types.ModuleType("dnnlib.util")
    _EasyDict.__module__, _EasyDict.__qualname__ = util.__name__, "EasyDict"
    util.EasyDict = _EasyDict
    return {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": pers,
            "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}


def _record(module: torch.nn.Module, class_name: str, init_kwargs: dict | None = None) -> _Persistent:
    """A module's ``__dict__`` as the persistence record holds it (children as records too)."""
    state = {"training": False,
             "_parameters": collections.OrderedDict((k, torch.nn.Parameter(v.clone(), requires_grad=False))
                                                    for k, v in module._parameters.items()),
             "_buffers": collections.OrderedDict((k, v.clone()) for k, v in module._buffers.items()),
             "_non_persistent_buffers_set": set(),
             "_forward_hooks": collections.OrderedDict(), "_forward_pre_hooks": collections.OrderedDict(),
             "_modules": collections.OrderedDict((k, _record(m, type(m).__name__)) for k, m in module._modules.items()),
             "weight_gain": np.float64(0.125),   # StyleGAN2-ADA keeps such gains as numpy scalars
             "_init_args": (), "_init_kwargs": _EasyDict(_deep_easydict(init_kwargs or {}))}
    return _Persistent(class_name, state)


def _deep_easydict(d: dict) -> dict:
    return {k: _EasyDict(_deep_easydict(v)) if isinstance(v, dict) else v for k, v in d.items()}


def craft_pickle(path: pathlib.Path, nets: dict[str, torch.nn.Module], head: bool = True) -> None:
    """Write a StyleGAN2-ADA/FakeCLR-style ``network-snapshot-*.pkl`` for our modules (no anchor code)."""
    data: dict = {"training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": 16}}
    for name, net in nets.items():
        kwargs = SG2_G_KWARGS if isinstance(net, Generator) else SG2_D_KWARGS
        data[name] = _record(net, "Generator" if isinstance(net, Generator) else "Discriminator", kwargs)
    pipe = torch.nn.Module()
    pipe.register_buffer("p", torch.tensor(0.25))
    data["augment_pipe"] = _record(pipe, "AugmentPipe", {"xflip": 1})
    if head:  # FakeCLR's GHead: a persistent CLHead around plain torch.nn modules
        h = torch.nn.Module()
        torch.manual_seed(5)
        h.mlp = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 128))
        h.momentum_mlp = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 128))
        h.register_buffer("queue", torch.randn(128, 8))
        h.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        state = _record(h, "CLHead", {"inplanes": 32}).state
        state["_modules"] = collections.OrderedDict(mlp=h.mlp, momentum_mlp=h.momentum_mlp)  # pickled by torch.nn
        data["GHead"] = _Persistent("CLHead", state)
        other = torch.nn.Module()
        other.register_buffer("w", torch.arange(3.0))
        data["Mystery"] = _record(other, "Mystery", {})
    saved = {k: sys.modules.get(k) for k in _standins()}
    sys.modules.update(_standins())
    try:
        path.write_bytes(pickle.dumps(data, protocol=pickle.DEFAULT_PROTOCOL))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


# ---------------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    path = tmp_path_factory.mktemp("pkl") / "network-snapshot-000100.pkl"
    nets = {name: filled(name) for name in ("G", "D", "G_ema", "D_ema")}
    craft_pickle(path, nets)
    return path, nets


def test_crafted_pickle_has_the_published_layout(crafted):
    """The crafted file names the same globals as a real snapshot (so the test exercises the real format)."""
    import pickletools
    strings = {arg for _, arg, _ in pickletools.genops(crafted[0].read_bytes()) if isinstance(arg, str)}
    assert {"torch_utils.persistence", "_reconstruct_persistent_obj", "dnnlib.util", "EasyDict", "torch._utils",
            "_rebuild_tensor_v2", "_rebuild_parameter", "torch.storage", "_load_from_bytes",
            "torch.nn.modules.container", "Sequential", "numpy._core.multiarray" if np.__version__ >= "2" else
            "numpy.core.multiarray", "scalar"} <= strings


def test_import_reproduces_generator_exactly(crafted, tmp_path):
    from fakeclr.tools.importer import convert
    path, nets = crafted
    out = tmp_path / "imported.safetensors"
    res = convert(path, out)
    assert set(res.nets) == {"G", "G_ema", "D", "D_ema", "fake_head", "fake_head_ema"}
    loaded = load_networks(out)
    for name in ("G", "G_ema", "D", "D_ema"):
        ref, new = nets[name].state_dict(), loaded[name].state_dict()
        assert ref.keys() == new.keys()
        assert all(torch.equal(ref[k], new[k]) for k in ref), name
    a, b = outputs(nets["G_ema"], nets["D"]), outputs(loaded["G_ema"], loaded["D"])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert loaded["G_ema"].config == {**Generator(**G_KWARGS).config}
    assert loaded["D"].config["mbstd_group_size"] == 2
    assert any("p = 0.25" in n for n in res.notes)


def test_import_maps_the_fakeclr_head_to_our_projection_heads(crafted, tmp_path):
    from fakeclr.contrastive.heads import ProjectionHead
    from fakeclr.tools.importer import convert, load_pickle, record_state_dict
    path, _ = crafted
    res = convert(path, tmp_path / "imported.safetensors")
    loaded = load_networks(res.network)
    ref = record_state_dict(load_pickle(path)["GHead"])
    for ours, prefix in (("fake_head", "mlp."), ("fake_head_ema", "momentum_mlp.")):
        head = loaded[ours]
        assert isinstance(head, ProjectionHead) and head.config == {"in_features": 32, "out_features": 128,
                                                                    "hidden_features": 32}
        for k, v in head.state_dict().items():
            assert torch.equal(v, ref[prefix + k[len("mlp."):]]), (ours, k)
        x = torch.randn(3, 32, 4, 4)           # D features -> spatial mean -> the CLHead MLP -> unit vectors
        mlp = lambda v: torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(  # noqa: E731
            v, ref[prefix + "0.weight"], ref[prefix + "0.bias"])), ref[prefix + "2.weight"], ref[prefix + "2.bias"])
        torch.testing.assert_close(head(x), torch.nn.functional.normalize(mlp(x.mean((2, 3))), dim=1))
    assert any(n.startswith("GHead: converted to fake_head and fake_head_ema") and "queue" in n for n in res.notes)
    # a record fakeclr has no class for is kept as raw tensors next to the network file, and a note says so
    from safetensors.torch import load_file
    assert set(load_file(str(res.extra))) == {"Mystery.w"}
    assert any("Mystery" in n and "raw tensors" in n for n in res.notes)


def test_import_matches_the_anchor_golden(crafted, tmp_path):
    """Outputs of the converted networks equal those of the real StyleGAN2-ADA code on the same weights."""
    from fakeclr.tools.importer import convert
    golden = np.load(ASSET)
    out = tmp_path / "imported.safetensors"
    convert(crafted[0], out)
    nets = load_networks(out)
    got = outputs(nets["G_ema"], nets["D"])
    for k, v in got.items():
        np.testing.assert_allclose(v, golden[k], rtol=0, atol=1e-5, err_msg=k)


def _evil_pickle(payload) -> bytes:
    return pickle.dumps({"G": payload})


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evaluates:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("make", ["os.system", "builtins.eval", "partial", "persistent_src"])
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path, capsys, make):
    from fakeclr.cli import main
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    if make == "os.system":
        path.write_bytes(_evil_pickle(_RunsShell(marker)))
    elif make == "builtins.eval":
        path.write_bytes(_evil_pickle(_Evaluates()))
    elif make == "partial":  # a callable smuggled in as data
        import functools
        path.write_bytes(pickle.dumps({"G": functools.partial(os.system, f"touch {marker}")}))
    else:  # a well-formed persistence record whose source would run when unpickled normally
        craft_pickle(path, {"G": filled("G")}, head=False)
    code = main(["import", str(path), str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    if make == "persistent_src":  # the record is data to us: converted, its source never executed
        assert code == 0
        return
    assert code == 2 and "refused" in err and "nothing from the file was run" in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_truncated_and_foreign_files(tmp_path, crafted, capsys):
    from fakeclr.cli import main
    trunc = tmp_path / "trunc.pkl"
    trunc.write_bytes(crafted[0].read_bytes()[:5000])
    assert main(["import", str(trunc), str(tmp_path / "o.safetensors")]) == 2
    assert "truncated" in capsys.readouterr().err
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    assert main(["import", str(plain), str(tmp_path / "o.safetensors")]) == 2
    assert "without networks" in capsys.readouterr().err
    ts = tmp_path / "state.pt"
    torch.save({"a": torch.ones(1)}, ts)
    assert main(["import", str(ts), str(tmp_path / "o.safetensors")]) == 2
    assert "torch.save archive" in capsys.readouterr().err


def test_cifar_orig_discriminator_imports(tmp_path, monkeypatch):
    """ADA's cifar config has an 'orig' D (no skip layers): it converts with its architecture, and the converted D
    gives the outputs of our 'orig' D with the same weights (tests/test_nn.py holds that D's anchor golden)."""
    from fakeclr.tools.importer import convert
    monkeypatch.setitem(globals(), "SG2_D_KWARGS", {**SG2_D_KWARGS, "architecture": "orig"})
    D = fill(Discriminator(**D_KWARGS, architecture="orig"), SEEDS["D"])
    path = tmp_path / "cifar.pkl"
    craft_pickle(path, {"G": filled("G"), "D": D, "G_ema": filled("G_ema")}, head=False)
    res = convert(path, tmp_path / "out.safetensors")
    assert set(res.nets) == {"G", "G_ema", "D"}
    loaded = load_networks(res.network)["D"]
    assert loaded.config["architecture"] == "orig"
    img = golden_inputs()["img"]
    with torch.no_grad():
        assert torch.equal(loaded(img, None), D(img, None))


def test_unsupported_discriminator_is_skipped_not_fatal(tmp_path, monkeypatch):
    """A D with an option fakeclr's lacks (here a ReLU activation): the generators still convert, with a note."""
    from fakeclr.tools.importer import convert
    monkeypatch.setitem(globals(), "SG2_D_KWARGS", {**SG2_D_KWARGS, "block_kwargs": {"activation": "relu"}})
    path = tmp_path / "relu.pkl"
    craft_pickle(path, {"G": filled("G"), "D": filled("D"), "G_ema": filled("G_ema")}, head=False)
    res = convert(path, tmp_path / "out.safetensors")
    assert set(res.nets) == {"G", "G_ema"}
    assert any(n.startswith("D: skipped") and "activation='relu'" in n for n in res.notes)
    assert set(load_networks(res.network)) == {"G", "G_ema"}


def test_unsupported_architecture_is_named(tmp_path):
    from fakeclr.errors import UserError
    from fakeclr.tools.importer import PersistentRecord, generator_config
    rec = PersistentRecord("Generator", {"_init_kwargs": {**SG2_G_KWARGS, "synthesis_kwargs": {"architecture": "resnet"}}})
    with pytest.raises(UserError, match="architecture 'resnet'"):
        generator_config(rec)
    rec = PersistentRecord("Generator", {"_init_kwargs": {**SG2_G_KWARGS, "mapping_kwargs": {"layer_features": 64}}})
    with pytest.raises(UserError, match="layer_features"):
        generator_config(rec)
    with pytest.raises(UserError, match="constructor arguments"):
        generator_config(PersistentRecord("Generator", {"_init_kwargs": {"z_dim": 8}}))
    from fakeclr.tools.importer import discriminator_config
    with pytest.raises(UserError, match="architecture 'residual' cannot be imported; fakeclr has resnet, orig, skip"):
        discriminator_config(PersistentRecord("Discriminator", {"_init_kwargs": {**SG2_D_KWARGS,
                                                                                 "architecture": "residual"}}))
