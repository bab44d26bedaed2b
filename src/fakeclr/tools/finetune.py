"""``fakeclr train --init NETWORK``: start a new run from a pretrained network.

The file is a fakeclr network file, or a StyleGAN2-ADA / InsGen / FakeCLR network pickle read through the
restricted importer (:mod:`fakeclr.tools.importer`; nothing in it is run) and converted once into
``RUN/init-network.safetensors``. The run takes the file's architecture (the G and D constructor configs, so the
networks always match the weights) and its weights for G, G_ema, D and, where the file has them and the method
uses them, the contrastive heads and ``D_ema``. Data, augmentation, method and schedule come from the command;
kimg, optimizers, queues and the augmentation probability start fresh. ``config.json`` records the file and its
sha256 (:class:`fakeclr.config.InitConfig`).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from ..config import InitConfig
from ..train.resolve import apply_init
from ..errors import UserError
from .. import network_file

__all__ = ["INIT_NETWORK", "resolve_init", "apply_init"]

INIT_NETWORK = "init-network.safetensors"   # a converted pickle, in the run directory


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"            # the PROTO opcode of pickle protocols 2 and above


def resolve_init(path: str | Path, outdir: str | Path | None) -> InitConfig:
    """The :class:`InitConfig` of ``--init path``; a pickle is converted into ``outdir/init-network.safetensors``
    (into a temporary folder when ``outdir`` is ``None``, e.g. for ``--dry-run``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init {path} does not exist; pass a fakeclr network-snapshot-*.safetensors or a "
                        "StyleGAN2-ADA / InsGen / FakeCLR network-snapshot-*.pkl.")
    network = path
    if _is_pickle(path):
        from .importer import convert
        folder = Path(outdir) if outdir is not None else Path(tempfile.mkdtemp(prefix="fakeclr-init-"))
        network = folder / INIT_NETWORK
        convert(path, network)
    header = network_file.read_network_header(network)
    nets = header["nets"]
    g = nets.get("G") or nets.get("G_ema")
    if g is None or "D" not in nets:
        raise UserError(f"--init {path} holds {', '.join(nets) or 'no networks'}; fine-tuning needs a generator "
                        "(G or G_ema) and the discriminator D.")
    if g["class"] != "Generator" or nets["D"]["class"] != "Discriminator":
        raise UserError(f"--init {path}: G is a {g['class']} and D a {nets['D']['class']}; fine-tuning needs "
                        "fakeclr's Generator and Discriminator.")
    return InitConfig(source=str(path.resolve()), sha256=_sha256(path), network=str(Path(network).resolve()),
                      G=dict(g["config"]), D=dict(nets["D"]["config"]))
