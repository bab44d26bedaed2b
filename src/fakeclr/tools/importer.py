"""Import published StyleGAN2-ADA / InsGen / FakeCLR network pickles without running any code from them.

Those pickles (``network-snapshot-*.pkl``) are a dict ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}``
(InsGen and FakeCLR add ``'D_ema'``, ``'DHead'``, ``'GHead'``). Every network in it was saved through
StyleGAN2-ADA's ``torch_utils.persistence``: the pickle calls a reconstruct function with one ``meta`` dict that
holds the *source code* of the network's module, the class name, and the object's ``__dict__`` (``_parameters``,
``_buffers``, ``_modules``, ``_init_kwargs`` ...). Unpickling it normally ``exec``\\ s that source.

:class:`SafeUnpickler` never does. Its ``find_class`` admits a short list of names, each mapped to a function or
class of *ours* that only builds data:

* the persistence reconstruct function -> :class:`PersistentRecord` (class name + state; the source is dropped);
* plain ``torch.nn`` modules inside (e.g. the heads' ``Sequential``/``Linear``) -> :class:`ModuleRecord`;
* tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> checked rebuilds; the storages, each
  a nested legacy ``torch.save`` blob (``torch.storage._load_from_bytes``), are read by
  ``torch.load(weights_only=True)``;
* ``collections.OrderedDict``, ``builtins.set``/``frozenset``, ``dnnlib`` ``EasyDict`` (-> a plain dict), torch
  dtypes, numpy scalars and non-object arrays (StyleGAN2-ADA stores some gains as ``numpy.float64``).

Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a network class itself ...) stops the
load with :class:`UnsafePickleError` before anything is called. The records then give state dicts (key names are
StyleGAN2-ADA's, which ours share) and constructor kwargs, from which :func:`convert` builds our
:class:`~fakeclr.nn.Generator` / :class:`~fakeclr.nn.Discriminator` and checks every tensor shape.
"""

from __future__ import annotations

import collections
import functools
import io
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import D_ARCHITECTURES
from ..errors import UserError
from ..safeload import RestrictedUnpickler

PERSISTENCE_FUNCS = {("torch_utils.persistence", "_reconstruct_persistent_obj")}
_EASYDICT = {("dnnlib", "EasyDict"), ("dnnlib.util", "EasyDict")}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


class UnsafePickleError(UserError):
    """The pickle asks for something other than network data; nothing from it was executed."""


# ---------------------------------------------------------------------------------------------------- records
@dataclass
class PersistentRecord:
    """A network module as plain data: ``class_name`` (e.g. ``'Generator'``) and its pickled ``__dict__``."""

    class_name: str
    state: dict[str, Any]
    version: int | None = None
    source_chars: int = 0   # length of the embedded source code, which is kept out of memory and never run

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())


class ModuleRecord:
    """A plain ``torch.nn`` module (no persistence wrapper) as data; ``torch_class`` names what it was."""

    torch_class = "torch.nn.Module"

    def __new__(cls, *args, **kwargs):  # pickle's NEWOBJ calls only __new__; a module has no arguments worth keeping
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise UnsafePickleError(f"The pickle gives a {self.torch_class} a state of type {type(state).__name__}, "
                                    "not a dict; refusing it.")
        self.state = state

    @property
    def class_name(self) -> str:
        return self.torch_class.rsplit(".", 1)[-1]


class PlainDict(dict):
    """What ``dnnlib.EasyDict`` becomes: an ordinary dict."""


class _NdarrayRecord:
    """Placeholder built by numpy's ``_reconstruct``; its ``__setstate__`` rebuilds a non-object array."""

    def __init__(self, *args):
        self.array: np.ndarray | None = None

    def __setstate__(self, state):
        try:
            _, shape, dtype, fortran, raw = state
        except (TypeError, ValueError):
            raise UnsafePickleError("The pickle holds a numpy array in an unknown layout; refusing it.") from None
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
            raise UnsafePickleError("The pickle holds a numpy array of Python objects; refusing it.")
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


# ---------------------------------------------------------------------------------------------------- rebuilders
def _reconstruct_persistent(meta) -> PersistentRecord:
    """Stands in for ``persistence._reconstruct_persistent_obj(meta)``: keep the state, drop the source."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafePickleError("A persistent-object record in the pickle is malformed (no class name); refusing it.")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise UnsafePickleError(f"The persistent record of {meta['class_name']} has no state dict; refusing it.")
    src = meta.get("module_src")
    return PersistentRecord(meta["class_name"], dict(state), meta.get("version"), len(src) if isinstance(src, str) else 0)


def _load_storage(data) -> torch.storage.TypedStorage:
    """A tensor storage saved as a nested legacy ``torch.save`` blob, read with ``weights_only=True``."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("A tensor storage in the pickle is not raw bytes; refusing it.")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UnsafePickleError(f"A tensor storage in the pickle could not be read as plain data ({e}).") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnsafePickleError(f"A tensor storage in the pickle holds a {type(storage).__name__}; refusing it.")
    return storage


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> torch.Tensor:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: a view of ``storage`` after checking every argument."""
    ints = lambda xs: isinstance(xs, (tuple, list)) and all(isinstance(x, int) for x in xs)  # noqa: E731
    if not isinstance(storage, torch.storage.TypedStorage) or not isinstance(offset, int) or not ints(size) \
            or not ints(stride) or hooks:
        raise UnsafePickleError("A tensor record in the pickle has unexpected arguments; refusing it.")
    t = torch.empty((0,), dtype=storage.dtype)
    try:
        return t.set_(storage._untyped_storage, offset, tuple(size), tuple(stride))
    except RuntimeError as e:
        raise UnsafePickleError(f"A tensor in the pickle does not fit its storage ({e}).") from None


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None) -> torch.Tensor:
    """Stands in for ``torch._utils._rebuild_parameter[_with_state]``: the data tensor (no Parameter, no hooks)."""
    if not isinstance(data, torch.Tensor) or hooks:
        raise UnsafePickleError("A parameter record in the pickle has unexpected arguments; refusing it.")
    return data


def _numpy_scalar(dtype, data=None):
    """Stands in for numpy's ``scalar(dtype, bytes)``: numeric scalars only."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("The pickle holds a numpy scalar of Python objects; refusing it.")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafePickleError("The pickle holds a numpy dtype given by an object, not a name; refusing it.")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _ordered_dict(*args):
    if args and not (len(args) == 1 and isinstance(args[0], (list, tuple))):
        raise UnsafePickleError("An OrderedDict in the pickle has unexpected arguments; refusing it.")
    return collections.OrderedDict(*args)


def _plain(cls):
    """``set(iterable)``-style constructors, restricted to data arguments."""
    def build(*args):
        if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, set, frozenset))):
            raise UnsafePickleError(f"A {cls.__name__} in the pickle has unexpected arguments; refusing it.")
        return cls(*args)
    return build


# ---------------------------------------------------------------------------------------------------- unpickler
class SafeUnpickler(RestrictedUnpickler):
    """Builds network pickles as plain data and refuses every other global (the allow-list is :meth:`_lookup`)."""

    _TORCH_REBUILD = {"_rebuild_tensor_v2": _rebuild_tensor, "_rebuild_parameter": _rebuild_parameter,
                      "_rebuild_parameter_with_state": _rebuild_parameter}

    def __init__(self, file, source: str = "the pickle"):
        super().__init__(file, self._lookup, refuse=lambda what: UnsafePickleError(
            f"{source} asks to load '{what}', which is not network data; refused and nothing from the file was "
            "run. Only StyleGAN2-ADA / InsGen / FakeCLR network pickles can be imported."),
            refuse_persistent=lambda pid: UnsafePickleError(
                f"{source} uses persistent references (a torch.save archive?), which a network pickle does not; "
                "refusing it."))
        self.source = source
        # Classes handed to the pickle are made per load, so nothing a pickle sets on them outlives it.
        self._module_classes: dict[str, type] = {}
        self._plain_dict = type("PlainDict", (PlainDict,), {})
        self._ndarray = type("NdarrayRecord", (_NdarrayRecord,), {})

    def _lookup(self, module: str, name: str):
        key = (module, name)
        if key in PERSISTENCE_FUNCS:
            return functools.partial(_reconstruct_persistent)
        if module == "torch._utils" and name in self._TORCH_REBUILD:
            return functools.partial(self._TORCH_REBUILD[name])
        if key == ("torch.storage", "_load_from_bytes"):
            return functools.partial(_load_storage)
        if key == ("collections", "OrderedDict"):
            return functools.partial(_ordered_dict)
        if module == "builtins" and name in ("set", "frozenset"):
            return _plain(set if name == "set" else frozenset)
        if key in _EASYDICT:
            return self._plain_dict
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module in _NUMPY_MODULES and name == "scalar":
            return functools.partial(_numpy_scalar)
        if module in _NUMPY_MODULES and name == "_reconstruct":
            return self._reconstruct_ndarray
        if key == ("numpy", "ndarray"):
            return self._ndarray
        if key == ("numpy", "dtype"):
            return functools.partial(_numpy_dtype)
        if module.startswith("torch.nn.modules.") and re.fullmatch(r"[A-Z][A-Za-z0-9_]*", name):
            full = f"{module}.{name}"
            if full not in self._module_classes:
                self._module_classes[full] = type(name, (ModuleRecord,), {"torch_class": full})
            return self._module_classes[full]
        return None

    def _reconstruct_ndarray(self, cls, *args):
        if cls is not self._ndarray:
            raise UnsafePickleError("The pickle rebuilds a numpy array of a type other than ndarray; refusing it.")
        return cls()



def _finish(obj: Any) -> Any:
    """Replace numpy array placeholders by arrays, recursively."""
    if isinstance(obj, _NdarrayRecord):
        return obj.array
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _finish(obj[k])
        return obj
    if isinstance(obj, list):
        return [_finish(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(x) for x in obj)
    if isinstance(obj, (PersistentRecord, ModuleRecord)):
        obj.state = _finish(obj.state)
    return obj


def load_pickle(path: str | Path) -> dict[str, Any]:
    """Read a network pickle safely into ``{name: PersistentRecord | data}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Network pickle {path} does not exist; pass a network-snapshot-*.pkl file.")
    if zipfile.is_zipfile(path):
        raise UserError(f"{path} is a torch.save archive, not a StyleGAN2-ADA network pickle; fakeclr network "
                        "files (.safetensors) need no import.")
    try:
        with open(path, "rb") as f:
            data = _finish(SafeUnpickler(f, str(path)).load())
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError) as e:
        raise UserError(f"{path} is not a readable network pickle ({type(e).__name__}: {e}); it may be truncated.") from e
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentRecord) for k in ("G", "G_ema")):
        raise UserError(f"{path} is a pickle without networks 'G'/'G_ema'; it is not a StyleGAN2-ADA-style snapshot.")
    return data


# ---------------------------------------------------------------------------------------------------- records -> ours
def record_state_dict(rec, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``state_dict()`` a module record would give: persistent parameters and buffers, recursively."""
    st = rec.state
    out: dict[str, torch.Tensor] = {}
    skip = set(st.get("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        for name, t in (st.get(kind) or {}).items():
            if t is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise UserError(f"Network record {prefix}{name} is a {type(t).__name__}, not a tensor.")
            out[prefix + name] = t
    for name, sub in (st.get("_modules") or {}).items():
        if isinstance(sub, (PersistentRecord, ModuleRecord)):
            out.update(record_state_dict(sub, f"{prefix}{name}."))
    return out


def _kwargs(rec: PersistentRecord, positional: tuple[str, ...], required: tuple[str, ...], name: str) -> dict[str, Any]:
    """Constructor arguments of a record (positional ones named), checking that ``required`` are present."""
    kw = dict(zip(positional, rec.init_args))
    kw.update(rec.init_kwargs)
    missing = [k for k in required if k not in kw]
    if missing:
        raise UserError(f"Network '{name}' in the pickle does not record its constructor arguments "
                        f"({', '.join(missing)} missing); it was not saved by StyleGAN2-ADA's persistence module.")
    return kw


# What our classes ignore (speed-only switches) and what they cannot express (architecture options).
_IGNORED = {"num_fp16_res", "fp16_channels_last", "channels_last", "freeze_layers", "class_name"}
_G_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
_D_POSITIONAL = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                 "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs")
_MUST_EQUAL = {"activation": "lrelu", "resample_filter": [1, 3, 3, 1], "embed_features": None,
               "layer_features": None, "use_noise": True, "kernel_size": 3}


def _check_known(name: str, kw: dict[str, Any], known: set[str], what: str) -> None:
    for k, v in kw.items():
        if k in known or k in _IGNORED:
            continue
        if k in _MUST_EQUAL and (v == _MUST_EQUAL[k] or (k == "resample_filter" and list(v) == [1, 3, 3, 1])):
            continue
        raise UserError(f"{name}: {what} option {k}={v!r} has no equivalent in fakeclr's networks, so it cannot "
                        "be imported.")


def generator_config(rec: PersistentRecord, name: str = "G") -> dict[str, Any]:
    """Our :class:`~fakeclr.nn.Generator` kwargs from a StyleGAN2-ADA ``Generator`` record's init kwargs."""
    kw = _kwargs(rec, _G_POSITIONAL, _G_POSITIONAL[:5], name)
    mk, sk = dict(kw.pop("mapping_kwargs", {}) or {}), dict(kw.pop("synthesis_kwargs", {}) or {})
    _check_known(name, kw, {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}, "Generator")
    _check_known(name, mk, {"num_layers", "lr_multiplier", "w_avg_beta"}, "mapping")
    arch = sk.pop("architecture", "skip")
    if arch != "skip":
        raise UserError(f"{name}: synthesis architecture '{arch}' cannot be imported; fakeclr has the 'skip' generator.")
    _check_known(name, sk, {"channel_base", "channel_max", "conv_clamp"}, "synthesis")
    return dict(z_dim=int(kw["z_dim"]), c_dim=int(kw["c_dim"]), w_dim=int(kw["w_dim"]),
                img_resolution=int(kw["img_resolution"]), img_channels=int(kw["img_channels"]),
                mapping_layers=int(mk.get("num_layers", 8)), channel_base=int(sk.get("channel_base", 32768)),
                channel_max=int(sk.get("channel_max", 512)), conv_clamp=sk.get("conv_clamp"),
                mapping_lr_multiplier=float(mk.get("lr_multiplier", 0.01)),
                w_avg_beta=float(mk.get("w_avg_beta", 0.995)))


def discriminator_config(rec: PersistentRecord, name: str = "D") -> dict[str, Any]:
    """Our :class:`~fakeclr.nn.Discriminator` kwargs from a StyleGAN2-ADA ``Discriminator`` record."""
    kw = _kwargs(rec, _D_POSITIONAL, _D_POSITIONAL[:3], name)
    arch = kw.pop("architecture", "resnet")
    if arch not in D_ARCHITECTURES:
        raise UserError(f"{name}: discriminator architecture '{arch}' cannot be imported; fakeclr has "
                        f"{', '.join(D_ARCHITECTURES)}.")
    bk = dict(kw.pop("block_kwargs", {}) or {})
    mk = dict(kw.pop("mapping_kwargs", {}) or {})
    ek = dict(kw.pop("epilogue_kwargs", {}) or {})
    _check_known(name, kw, {"c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "conv_clamp",
                            "cmap_dim"}, "Discriminator")
    _check_known(name, bk, set(), "block")
    _check_known(name, mk, {"num_layers"}, "mapping")
    _check_known(name, ek, {"mbstd_group_size", "mbstd_num_channels"}, "epilogue")
    return dict(c_dim=int(kw["c_dim"]), img_resolution=int(kw["img_resolution"]),
                img_channels=int(kw["img_channels"]), channel_base=int(kw.get("channel_base", 32768)),
                channel_max=int(kw.get("channel_max", 512)), mbstd_group_size=ek.get("mbstd_group_size", 4),
                mbstd_num_channels=int(ek.get("mbstd_num_channels", 1)), cmap_dim=kw.get("cmap_dim"),
                conv_clamp=kw.get("conv_clamp"), mapping_layers=int(mk.get("num_layers", 8)), architecture=arch)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return repr(type(x).__name__)


@dataclass
class ImportResult:
    network: Path
    extra: Path | None                        # records fakeclr has no class for, as raw tensors
    nets: dict[str, str]                      # name -> our class
    skipped: dict[str, str] = field(default_factory=dict)   # name -> why
    notes: list[str] = field(default_factory=list)


def networks_from_pickle(data: dict[str, Any]) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """Our modules (``G``, ``G_ema``, ``D``, ``D_ema`` where present) with the pickle's weights loaded."""
    from ..nn import Discriminator, Generator
    from ..network_file import load_state_dict_checked
    nets, skipped = {}, {}
    for name, kind in (("G", "G"), ("G_ema", "G"), ("D", "D"), ("D_ema", "D")):
        rec = data.get(name)
        if rec is None:
            continue
        if not isinstance(rec, PersistentRecord):
            skipped[name] = f"not a network record ({type(rec).__name__})"
            continue
        expected = "Generator" if kind == "G" else "Discriminator"
        if rec.class_name != expected:
            skipped[name] = f"class {rec.class_name}, expected {expected}"
            continue
        if kind == "G":
            cfg = generator_config(rec, name)
        else:  # a D we cannot rebuild (an option our D lacks) must not block the generators
            try:
                cfg = discriminator_config(rec, name)
            except UserError as e:
                skipped[name] = str(e)
                continue
        module = (Generator if kind == "G" else Discriminator)(**cfg)
        sd = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in record_state_dict(rec).items()}
        load_state_dict_checked(module, sd, f"Pickle network '{name}'")
        nets[name] = module.eval().requires_grad_(False)
    return nets, skipped


# InsGen/FakeCLR snapshot entries -> our contrastive module names (training/training_loop.py of both: ``DHead``
# is the real-image instance head, ``GHead`` the fake-image one); the momentum copy is our ``<name>_ema``.
CONTRASTIVE_HEADS = {"DHead": "real_head", "GHead": "fake_head"}
_KNOWN_RECORDS = ("G", "G_ema", "D", "D_ema", "augment_pipe", "training_set_kwargs")


def build_heads(data: dict[str, Any]) -> tuple[dict[str, torch.nn.Module], list[str]]:
    """The InsGen/FakeCLR ``CLHead`` records as our :class:`~fakeclr.contrastive.ProjectionHead` modules.

    A ``CLHead`` holds ``mlp`` (Linear(C, C), ReLU, Linear(C, 128)) and its momentum copy ``momentum_mlp`` with
    the same layout as ours (``mlp.0``, ``mlp.2``), and a negative queue. The MLPs become ``real_head`` /
    ``real_head_ema`` (``DHead``) and ``fake_head`` / ``fake_head_ema`` (``GHead``); the queue is training state
    (like ``augment_pipe``) and is not converted, which the returned notes say.
    """
    from ..contrastive.heads import ProjectionHead
    from ..network_file import load_state_dict_checked
    heads: dict[str, torch.nn.Module] = {}
    notes: list[str] = []
    for theirs, ours in CONTRASTIVE_HEADS.items():
        rec = data.get(theirs)
        if not isinstance(rec, (PersistentRecord, ModuleRecord)):
            continue
        sd = record_state_dict(rec)
        for prefix, suffix in (("mlp.", ""), ("momentum_mlp.", "_ema")):
            part = {"mlp." + k[len(prefix):]: v.to(torch.float32) for k, v in sd.items() if k.startswith(prefix)}
            if not part:
                continue
            if set(part) != {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}:
                raise UserError(f"'{theirs}.{prefix[:-1]}' has tensors {sorted(part)}, not the two-layer MLP of "
                                "InsGen/FakeCLR's CLHead; fakeclr cannot convert this head.")
            hidden, width = part["mlp.0.weight"].shape
            head = ProjectionHead(width, part["mlp.2.weight"].shape[0], hidden)
            load_state_dict_checked(head, part, f"Pickle head '{theirs}.{prefix[:-1]}'")
            heads[ours + suffix] = head.eval().requires_grad_(False)
        dropped = sorted(k for k in sd if not k.startswith(("mlp.", "momentum_mlp.")))
        names = " and ".join(n for n in (ours, ours + "_ema") if n in heads)
        notes.append(f"{theirs}: converted to {names}" + (f"; training state not kept: {', '.join(dropped)}"
                                                            if dropped else ""))
    return heads, notes


def _fp16_res(rec) -> int:
    """``num_fp16_res`` of a G or D record (0 when absent)."""
    if not isinstance(rec, PersistentRecord):
        return 0
    kw = rec.init_kwargs
    value = kw.get("num_fp16_res", (kw.get("synthesis_kwargs") or {}).get("num_fp16_res", 0))
    return int(value or 0)


def convert(pkl: str | Path, out: str | Path) -> ImportResult:
    """Convert a network pickle into our network file ``out``.

    Records fakeclr has no class for are kept as raw tensors in ``<out>.extra.safetensors`` (with a note).
    """
    from safetensors.torch import save_file

    from ..files import atomic_write
    from ..network_file import save_networks
    pkl, out = Path(pkl), Path(out)
    data = load_pickle(pkl)
    nets, skipped = networks_from_pickle(data)
    if "G_ema" not in nets and "G" not in nets:
        raise UserError(f"{pkl} holds no generator that fakeclr can rebuild ({'; '.join(f'{k}: {v}' for k, v in skipped.items())}).")
    notes = []
    meta: dict[str, Any] = {"imported_from": pkl.name, "source_format": "stylegan2-ada-pytorch pickle"}
    if isinstance(data.get("training_set_kwargs"), dict):
        meta["training_set_kwargs"] = _json_safe(data["training_set_kwargs"])
    pipe = data.get("augment_pipe")
    if isinstance(pipe, PersistentRecord):
        p = (pipe.state.get("_buffers") or {}).get("p")
        if isinstance(p, torch.Tensor) and p.numel() == 1:
            meta["augment_p"] = float(p)
            notes.append(f"augment_pipe: not converted (training-time only); its p = {float(p):.4g} is kept in the header")
    if any(_fp16_res(data.get(n)) for n in ("G", "G_ema", "D", "D_ema")):
        notes.append("fp16 settings (num_fp16_res) are not kept: the converted networks compute in fp32 (the "
                     "original's force_fp32); a training run chooses its own precision (--fp16-res)")
    heads, head_notes = build_heads(data)
    nets.update(heads)
    notes += head_notes
    save_networks(out, nets, meta=meta)

    extra_path = None
    extra_tensors: dict[str, torch.Tensor] = {}
    extra_meta: dict[str, Any] = {}
    for name, rec in data.items():
        if name in nets or name in _KNOWN_RECORDS or name in CONTRASTIVE_HEADS:
            continue
        if isinstance(rec, (PersistentRecord, ModuleRecord)):
            sd = record_state_dict(rec)
            extra_tensors.update({f"{name}.{k}": v.detach().contiguous() for k, v in sd.items()})
            extra_meta[name] = {"class": rec.class_name, "init_kwargs": _json_safe(getattr(rec, "init_kwargs", {})),
                               "tensors": sorted(sd)}
    if extra_tensors:
        extra_path = out.with_name(out.name.removesuffix(".safetensors") + ".extra.safetensors")
        header = json.dumps({"format": "fakeclr-raw-modules/1", "imported_from": pkl.name, "modules": extra_meta})
        atomic_write(extra_path, lambda tmp: save_file(extra_tensors, tmp, metadata={"fakeclr": header}))
        notes.append(f"{', '.join(extra_meta)}: unknown to fakeclr, stored as raw tensors in {extra_path.name}")
    for name in ("D", "D_ema"):
        if name in skipped:
            notes.append(f"{name}: skipped ({skipped[name]})")
    return ImportResult(out, extra_path, {k: type(v).__name__ for k, v in nets.items()}, skipped, notes)
