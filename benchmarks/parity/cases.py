"""The parity cases: a fakeclr configuration, the anchor that defines its behaviour, and the inputs both get.

The StyleGAN2 cases train a small StyleGAN2 (16 px, RGB, batch 8) for ``iterations`` iterations with a lazy R1
step (every 4) and a path-length step (every 2) inside; the ``biggan`` case a BigGAN of width 2 at 32 px (batch 8,
2 D steps per G step, 3 classes, DiffAugment). Both loops start from the same weights (fakeclr's, seeded, copied
into the anchor), see the same real batches and, whenever they take a real batch (at the top of every iteration;
BigGAN: of every D step), reseed torch and numpy with :func:`iteration_seed`, so that every random draw is the same
wherever the two loops draw in the same order. This module is shared by the harness (``run.py``) and the golden-trace test (tests/test_parity.py); it
imports fakeclr but nothing of the anchors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakeclr.config import TrainConfig, method_config, preset_config, set_option

BATCH = 8
IMAGES = 16
RESOLUTION = 16
CLASSES = 3
SEED_BASE = 1000            # iteration k reseeds torch and numpy with SEED_BASE + k

# The released code's mechanics as fakeclr switches (docs/parity.md); `fakeclr-released` in the studies.
RELEASED = {"contrastive.reuse_forward": False, "contrastive.positive_first": True,
            "contrastive.head_momentum": "forward", "contrastive.head_optimizer": "own",
            "contrastive.mixing": "independent"}


@dataclass(frozen=True)
class Case:
    """One comparison. ``anchor``: ``stylegan2-ada``, ``insgen``, ``fakeclr`` (the released code) or ``biggan``
    (DiffAugment's BigGAN-CIFAR); ``overrides``: dotted config paths set after the preset and the method."""
    name: str
    anchor: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    cond: bool = False
    iterations: int = 8
    description: str = ""
    preset: str = "tiny"
    resolution: int = RESOLUTION

    @property
    def fetches(self) -> int:
        """Real batches one iteration takes: one per D step (``d_steps``; StyleGAN2: 1)."""
        return int(self.overrides.get("d_steps", 1))


_ADA = {"augment.kind": "ada", "augment.p": 0.2, "augment.speed_kimg": 0.1}   # p starts at 0.2 and moves by 0.16
_LINEAR = {"augment.kind": "ada-linear", "augment.target": 0.6}
_BIGGAN = {"network.width": 2, "network.z_dim": 8, "d_steps": 2, "ema_decay": 0.5, "ema_start": 2,
           "augment.kind": "diffaugment", "data.mirror": False}

CASES: dict[str, Case] = {c.name: c for c in [
    Case("ada", "stylegan2-ada", "ada", _ADA, description="adaptive p"),
    Case("ada-fixed", "stylegan2-ada", "ada", {"augment.kind": "fixed", "augment.p": 0.5}, description="fixed p 0.5"),
    Case("ada-cond", "stylegan2-ada", "ada", _ADA, cond=True, description="adaptive p, 3 classes"),
    Case("cifar", "stylegan2-ada", "ada", {**_ADA, "loss.pl_weight": 0.0, "loss.style_mixing_prob": 0.0,
                                           "network.d_architecture": "orig"},
         description="no path length, no style mixing, the 'orig' D (StyleGAN2-ADA's cifar configuration)"),
    Case("insgen", "insgen", "insgen",
         {**_LINEAR, **RELEASED, "contrastive.fake_queue_keys": "query", "contrastive.queue_size": 24,
          "contrastive.real_queue_size": 24}, description="InsGen's released mechanics, queues of 24"),
    Case("fakeclr-released", "fakeclr", "fakeclr",
         {**_LINEAR, **RELEASED, "contrastive.forgetting": "official", "contrastive.queue_size": 24},
         description="the released FakeCLR, fake queue of 24"),
    # BigGAN-CIFAR as DiffAugment trains it, narrowed: width 2 (8 channels), z 8, 2 D steps per G step. EMA decay
    # 0.5 from iteration 2: G_ema decays at iteration 0 (the reference's `itr and itr < start` lets 0 through),
    # copies G at iteration 1 and decays again from 2, so both branches and their boundaries are compared.
    Case("biggan", "biggan", "ada", {**_BIGGAN, "augment.diffaugment_policy": "color,translation,cutout"},
         cond=True, iterations=4, preset="biggan-cpu", resolution=32,
         description="BigGAN width 2 at 32 px, 2 D steps, 3 classes, DiffAugment color,translation,cutout"),
    # Unconditional: fakeclr's single class against the reference's n_classes 1 (it has no unconditional mode).
    Case("biggan-uncond", "biggan", "ada", {**_BIGGAN, "augment.diffaugment_policy": "translation,cutout"},
         iterations=4, preset="biggan-cpu", resolution=32,
         description="BigGAN width 2 at 32 px, 2 D steps, unconditional (one class), DiffAugment translation,cutout"),
]}


def config(case: Case, data_dir: str | Path, resolution: int = RESOLUTION) -> TrainConfig:
    """The fakeclr configuration of a case, training on :func:`write_images` in ``data_dir``."""
    cfg = preset_config(case.preset)
    cfg.contrastive = method_config(case.method)
    cfg.data.source, cfg.data.channels, cfg.data.use_labels = str(data_dir), 3, case.cond
    cfg.data.resolution = resolution
    cfg.batch, cfg.kimg, cfg.seed = BATCH, 0.1, 0          # kimg: ADA-linear reaches 0.6 * 0.064 / 0.1 in 8 its
    for path, value in case.overrides.items():
        set_option(cfg, path, value)
    return cfg


def reals(resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """``IMAGES`` smooth RGB images ``uint8 [N, 3, R, R]`` and class labels ``int64 [N]``, from a fixed seed."""
    gen = torch.Generator().manual_seed(7)
    low = torch.rand(IMAGES, 3, 4, 4, generator=gen)
    img = torch.nn.functional.interpolate(low, size=resolution, mode="bilinear", align_corners=False)
    img = (img + 0.15 * torch.rand(img.shape, generator=gen)).clamp(0, 1)
    return (img * 255).round().to(torch.uint8).numpy(), np.arange(IMAGES) % CLASSES


def write_images(data_dir: str | Path, resolution: int = RESOLUTION) -> None:
    """:func:`reals` as PNG files with a ``dataset.json`` of their labels (StyleGAN2-ADA's format)."""
    from PIL import Image
    import json
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    images, labels = reals(resolution)
    names = []
    for i, img in enumerate(images):
        names.append(f"img{i:04d}.png")
        Image.fromarray(img.transpose(1, 2, 0)).save(data_dir / names[-1])
    (data_dir / "dataset.json").write_text(json.dumps({"labels": [[n, int(c)] for n, c in zip(names, labels)]}))


def batch_indices(case: Case) -> list[list[int]]:
    """The real images of every fetch, ``case.fetches`` per iteration (the same for both loops): a fixed
    permutation, cycled."""
    perm = torch.randperm(IMAGES, generator=torch.Generator().manual_seed(11)).tolist()
    fetches = case.iterations * case.fetches
    flat = [perm[(k * BATCH + j) % IMAGES] for k in range(fetches) for j in range(BATCH)]
    return [flat[k * BATCH:(k + 1) * BATCH] for k in range(fetches)]


def iteration_seed(k: int) -> None:
    """Reseed torch and numpy at fetch ``k`` (both loops, after the real batch is taken): the top of iteration
    ``k`` for StyleGAN2, of the ``k``-th D step for BigGAN."""
    torch.manual_seed(SEED_BASE + k)
    np.random.seed(SEED_BASE + k)


def one_hot(labels: np.ndarray, c_dim: int) -> np.ndarray:
    out = np.zeros((len(labels), c_dim), np.float32)
    if c_dim:
        out[np.arange(len(labels)), labels] = 1
    return out


# StyleGAN2-ADA's augmentation pipelines by name (train.py's table), as the anchor's AugmentPipe arguments.
_BLIT, _GEOM = dict(xflip=1, rotate90=1, xint=1), dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
AUGPIPES = {"blit": _BLIT, "geom": _GEOM, "color": _COLOR, "bgc": {**_BLIT, **_GEOM, **_COLOR}}


def anchor_spec(case: Case, cfg: TrainConfig, c_dim: int, feature_channels: int) -> dict[str, Any]:
    """The anchor's ``training_loop`` arguments that give the same run as ``cfg`` (JSON), plus what the runner
    needs to know (``anchor``, ``iterations``); for BigGAN its command line (:func:`biggan_spec`)."""
    if case.anchor == "biggan":
        return biggan_spec(case, cfg, c_dim)
    n, loss, o, a, cl = cfg.network, cfg.loss, cfg.optim, cfg.augment, cfg.contrastive
    net = dict(channel_base=n.channel_base, channel_max=n.channel_max, num_fp16_res=0, conv_clamp=n.conv_clamp)
    G = dict(class_name="training.networks.Generator", z_dim=n.z_dim, w_dim=n.w_dim,
             mapping_kwargs=dict(num_layers=n.mapping_layers), synthesis_kwargs=dict(net))
    D = dict(class_name="training.networks.Discriminator", architecture=n.d_architecture, block_kwargs={},
             mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=n.mbstd_group_size), **net)
    opt = dict(class_name="torch.optim.Adam", lr=o.lr, betas=[o.beta1, o.beta2], eps=o.eps)
    spec: dict[str, Any] = dict(
        G_kwargs=G, D_kwargs=D, G_opt_kwargs=opt, D_opt_kwargs=dict(opt),
        augment_kwargs=dict(class_name="training.augment.AugmentPipe", **AUGPIPES[a.pipe]),
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=loss.r1_gamma,
                         style_mixing_prob=loss.style_mixing_prob, pl_weight=loss.pl_weight,
                         pl_batch_shrink=loss.pl_batch_shrink, pl_decay=loss.pl_decay),
        random_seed=0, num_gpus=1, rank=0, batch_size=cfg.batch, batch_gpu=cfg.batch,
        ema_kimg=cfg.ema_kimg, ema_rampup=cfg.ema_rampup, G_reg_interval=loss.pl_interval,
        D_reg_interval=loss.r1_interval, augment_p=a.p, ada_target=None if a.kind == "fixed" else a.target,
        ada_interval=a.interval, ada_kimg=a.speed_kimg, total_kimg=cfg.kimg, kimg_per_tick=1000,
        image_snapshot_ticks=None, network_snapshot_ticks=None, cudnn_benchmark=False)
    if case.anchor != "stylegan2-ada":
        spec["loss_kwargs"]["class_name"] = "training.contrastive_loss.StyleGAN2LossCL"
        head = dict(inplanes=feature_channels, temperature=cl.tau, momentum=cl.momentum)
        module = "contrastive_head_iteration" if case.anchor == "fakeclr" else "contrastive_head"
        spec["GHead_kwargs"] = dict(class_name=f"training.{module}.CLHead", queue_size=cl.queue_size, **head)
        if cl.real_instance:
            spec["DHead_kwargs"] = dict(class_name="training.contrastive_head.CLHead",
                                        queue_size=cl.real_queue_size, **head)
        spec["no_cl_on_g"] = not cl.fake_on_g
        spec["cl_loss_weight"] = dict(lw_real_cl=cl.lw_real, lw_fake_cl=cl.lw_fake, lw_fake_cl_on_g=cl.lw_fake_on_g)
        spec["ada_linear"] = a.kind == "ada-linear"
    return {"anchor": case.anchor, "iterations": case.iterations, "c_dim": c_dim, "training_loop": spec}


def biggan_spec(case: Case, cfg: TrainConfig, c_dim: int) -> dict[str, Any]:
    """DiffAugment-BigGAN's ``train.py`` flags for the same run as ``cfg`` (its scripts' CIFAR flags, narrowed to
    the case; everything else keeps the parser's defaults: no shared embedding, no hierarchy, ReLU, SN eps 1e-8,
    BN eps 1e-5, toggled grads), with the resolution and class count that ``train.py`` would take from the data set.
    """
    n, o, a = cfg.network, cfg.optim, cfg.augment
    policy = a.diffaugment_policy if a.kind == "diffaugment" else ""
    flags = ["--batch_size", cfg.batch, "--num_D_steps", cfg.d_steps, "--num_D_accumulations", 1,
             "--num_G_accumulations", 1, "--G_lr", o.lr, "--D_lr", o.lr, "--G_B1", o.beta1, "--D_B1", o.beta1,
             "--G_B2", o.beta2, "--D_B2", o.beta2, "--adam_eps", o.eps, "--G_ch", n.width, "--D_ch", n.width,
             "--dim_z", n.z_dim, "--G_attn", "0", "--D_attn", "0", "--G_init", "N02", "--D_init", "N02",
             "--G_ortho", 0.0, "--ema", "--use_ema", "--ema_decay", cfg.ema_decay, "--ema_start", cfg.ema_start,
             "--DiffAugment", policy, "--seed", 0]
    return {"anchor": case.anchor, "iterations": case.iterations, "c_dim": c_dim,
            "resolution": cfg.data.resolution, "flags": [str(f) for f in flags]}
