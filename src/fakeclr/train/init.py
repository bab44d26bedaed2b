"""Fine-tuning from a pretrained network (``fakeclr train --init``): the networks of a run loaded from the file,
and the checks that the file can train on the data."""

from __future__ import annotations

import copy

import torch

from ..config import BACKBONES, TrainConfig
from ..errors import UserError
from . import checkpoint as ckpt


def networks_for_run(cfg: TrainConfig, c_dim: int, device: torch.device | str = "cpu", load_init: bool = True):
    """``G, D, G_ema`` of a run on ``device`` (G and D in train mode), and the ``--init`` networks they were
    loaded from (``None`` for a run from scratch, or when ``load_init`` is false because a state follows)."""
    G, D = BACKBONES.build(cfg.network.backbone).networks(cfg, c_dim)
    init = None
    if cfg.init.network is not None:
        check_init_fits(cfg, c_dim)
        if load_init:
            init = ckpt.load_networks(cfg.init.network)
            if "D" not in init or not {"G", "G_ema"} & set(init):
                raise UserError(f"--init {cfg.init.source} holds {', '.join(init)}; fine-tuning needs a generator "
                                "and D.")
            G.load_state_dict(init.get("G", init.get("G_ema")).state_dict())
            D.load_state_dict(init["D"].state_dict())
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if init is not None and "G_ema" in init:
        G_ema.load_state_dict(init["G_ema"].state_dict())
    return G, D, G_ema, init


def check_init_fits(cfg: TrainConfig, c_dim: int) -> None:
    """One sentence when the ``--init`` network cannot train on this data (resolution, channels, labels)."""
    g, src = cfg.init.G, cfg.init.source
    if g["img_resolution"] != cfg.data.resolution:
        raise UserError(f"--init {src} is a {g['img_resolution']} px network but the data are trained at "
                        f"{cfg.data.resolution} px; --resolution must match the network (--resolution "
                        f"{g['img_resolution']}).")
    if g["img_channels"] != cfg.data.channels:
        raise UserError(f"--init {src} makes {g['img_channels']}-channel images but the data have "
                        f"{cfg.data.channels}; pass --channels {g['img_channels']} or use a network of "
                        f"{cfg.data.channels} channel(s).")
    if g["c_dim"] > 0 and c_dim == 0:
        raise UserError(f"--init {src} is a conditional network ({g['c_dim']} classes) but the data are unlabelled; "
                        "train with --cond on data with dataset.json labels, or use an unconditional network.")
    if g["c_dim"] == 0 and c_dim > 0:
        raise UserError(f"--init {src} is an unconditional network but --cond asks for {c_dim} labels; drop "
                        "--cond or use a conditional network.")
    if g["c_dim"] != c_dim:
        raise UserError(f"--init {src} is conditioned on {g['c_dim']} labels but the data have {c_dim}; use a "
                        "network trained with the same labels.")


def load_init_heads(init: dict[str, torch.nn.Module], method) -> list[str]:
    """Load the method's contrastive modules (heads, their momentum copies, ``D_ema``) that the ``--init`` file
    holds; the others keep their fresh start (``D_ema`` a copy of the loaded D). Returns the loaded names."""
    loaded = []
    for name, module in method.modules.items():
        if name in init and hasattr(module, "config"):
            ckpt.load_state_dict_checked(module, init[name].state_dict(), f"--init network '{name}'")
            loaded.append(name)
    return loaded
