"""GAN inversion: find the ``w`` (and noise maps) whose image matches a target [SG2, Sec. 5 / Appendix D].

The recipe of the StyleGAN2 projector, with the perceptual distance passed in (LPIPS-VGG16 from the CLI):

* start at ``w_avg``, the mean of ``w`` over ``w_avg_samples`` mapped ``z`` (its spread ``w_std`` sets the
  scale of the exploration noise);
* Adam (betas 0.9, 0.999) on ``w`` (one ``w`` for all layers, or one per layer with ``w_plus``) and on every
  ``noise_const`` map, started from N(0, 1);
* learning rate ``lr0 * ramp(t)`` with ``t = step / steps``: a linear warm-up over the first ``lr_rampup``
  fraction and a cosine decay to 0 over the last ``lr_rampdown`` fraction;
* Gaussian noise ``w_std * initial_noise_factor * max(0, 1 - t / noise_ramp)^2`` added to ``w`` at each step
  (wide search early, none after ``noise_ramp``);
* loss = ``distance(G(w), target) + regularize_noise_weight * sum_levels (autocorrelation at shift 1)^2`` over
  a pyramid of each noise map down to 8x8, which keeps the noise maps from encoding the image; after each step
  every noise map is renormalised to zero mean and unit variance.

``distance(img_a, img_b) -> [N]`` takes images in [-1, 1] with ``G``'s channel count.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..images import make_grid, to_uint8
from .media import MP4_MISSING, save_frame, tile, write_gif, write_mp4, zoom

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ProjectorConfig:
    """Defaults of the StyleGAN2 projector (``num_steps`` in optimisation steps)."""

    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_lr: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown: float = 0.25
    lr_rampup: float = 0.05
    noise_ramp: float = 0.75
    regularize_noise_weight: float = 1e5
    w_plus: bool = False          # one w per synthesis layer (W+) instead of one shared w
    optimize_noise: bool = True
    seed: int = 303               # start of the noise maps and of the exploration noise
    stats_seed: int = 123         # z samples for w_avg / w_std


def learning_rate(t: float, cfg: ProjectorConfig) -> float:
    """Learning rate at progress ``t = step / num_steps`` in [0, 1): warm-up, flat, cosine decay to 0."""
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.initial_lr * ramp * min(1.0, t / cfg.lr_rampup)


def w_noise_scale(t: float, cfg: ProjectorConfig, w_std: float) -> float:
    """Std of the exploration noise added to ``w`` at progress ``t``; 0 from ``t = noise_ramp`` on."""
    return w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2


@torch.no_grad()
def w_statistics(G, num_samples: int = 10000, seed: int = 123, c: torch.Tensor | None = None,
                 batch: int = 1000) -> tuple[torch.Tensor, float]:
    """``(w_avg [w_dim], w_std)``: mean of ``w`` over ``num_samples`` random ``z`` and the RMS distance to it."""
    gen = torch.Generator().manual_seed(seed)
    device = G.mapping.w_avg.device
    ws = []
    for start in range(0, num_samples, batch):
        n = min(batch, num_samples - start)
        z = torch.randn(n, G.z_dim, generator=gen).to(device)
        cc = None if c is None else c.expand(n, -1)
        ws.append(G.mapping(z, cc)[:, 0].float())
    w = torch.cat(ws)                                            # [num_samples, w_dim]
    w_avg = w.mean(0)
    w_std = float((w - w_avg).square().sum(1).mean().sqrt())
    return w_avg, w_std


def noise_buffers(G) -> dict[str, torch.Tensor]:
    """The synthesis network's constant noise maps ``{name: [H, W]}`` (in place: optimising them edits ``G``)."""
    return {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}


def noise_regularization(maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and pyramid levels (halved down to 8x8) of the squared shift-1 autocorrelation in x and y."""
    reg = torch.zeros(())
    for m in maps:
        x = m[None, None]                                          # [1, 1, H, W]
        while True:
            reg = reg + (x * torch.roll(x, shifts=1, dims=3)).mean() ** 2 + (x * torch.roll(x, shifts=1, dims=2)).mean() ** 2
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    return reg


def pixel_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image ``[N]`` (a simple stand-in for LPIPS)."""
    return (a - b).square().flatten(1).mean(1)


def lpips_distance(lpips: torch.nn.Module, max_resolution: int = 256) -> Distance:
    """Wrap an LPIPS module (``[N, 3, H, W]`` in [-1, 1]) for any ``G``: grey images are repeated to 3 channels
    and images larger than ``max_resolution`` are area-downsampled to it (VGG16 was trained on 224 px).

    When the module offers ``features_of`` / ``distance_from_features`` (fakeclr's LPIPS does), the features of
    the second argument are computed once and reused while the same tensor comes back (the projector's target).
    """
    def prep(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > max_resolution:
            x = F.interpolate(x, size=(max_resolution, max_resolution), mode="area")
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x

    cache: dict[str, object] = {}
    reuse = hasattr(lpips, "features_of") and hasattr(lpips, "distance_from_features")

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if not reuse:
            return lpips(prep(a), prep(b))
        if cache.get("b") is not b:
            with torch.no_grad():
                cache["b"], cache["fb"] = b, lpips.features_of(prep(b))
        return lpips.distance_from_features(lpips.features_of(prep(a)), cache["fb"])
    return distance


@dataclass
class Projection:
    """Result of :func:`project`: the final latents, every step's latents and the loss history."""

    w: torch.Tensor                     # [num_ws, w_dim], the final projected latent (W+ layout)
    w_steps: torch.Tensor               # [num_steps, num_ws, w_dim]
    noise: dict[str, torch.Tensor]      # optimised noise maps {name: [H, W]}
    distance: list[float] = field(default_factory=list)    # per step, before the update
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def prepare_target(image: torch.Tensor, G) -> torch.Tensor:
    """uint8 ``[C, H, W]`` or float ``[C, H, W]`` in [-1, 1] -> float ``[1, C, H, W]`` in [-1, 1] on G's device."""
    expected = (G.img_channels, G.img_resolution, G.img_resolution)
    if tuple(image.shape) != expected:
        raise UserError(f"The target is {list(image.shape)}, the network makes {list(expected)}; "
                        "load it with load_target() to crop and resize it.")
    x = image.float() / 127.5 - 1 if image.dtype == torch.uint8 else image.float()
    return x[None].to(G.mapping.w_avg.device)


def project(G, target: torch.Tensor, distance: Distance, cfg: ProjectorConfig | None = None,
            c: torch.Tensor | None = None, progress: Callable[[int, float, float], None] | None = None) -> Projection:
    """Optimise a latent (and the noise maps) so that ``G`` reproduces ``target``.

    Args:
        G: a :class:`~fakeclr.nn.Generator` (left untouched: a copy is optimised).
        target: ``[C, H, W]``, uint8 or float in [-1, 1], the network's size.
        distance: ``(img_a [N, C, H, W], img_b [N, C, H, W]) -> [N]``, differentiable, images in [-1, 1].
        cfg: the schedule (:class:`ProjectorConfig`).
        c: ``[1, c_dim]`` label for a conditional network.
        progress: called as ``progress(step, distance, loss)`` after every step.
    Returns:
        :class:`Projection` with ``w [num_ws, w_dim]`` and ``w_steps [num_steps, num_ws, w_dim]``.
    """
    cfg = cfg or ProjectorConfig()
    if cfg.num_steps < 1:
        raise UserError("--steps must be at least 1.")
    G = copy.deepcopy(G).eval().requires_grad_(False)
    device = G.mapping.w_avg.device
    target = prepare_target(target, G)
    w_avg, w_std = w_statistics(G, cfg.w_avg_samples, cfg.stats_seed, c)
    gen = torch.Generator().manual_seed(cfg.seed)

    noise = noise_buffers(G) if cfg.optimize_noise else {}
    for buf in noise.values():
        buf.copy_(torch.randn(buf.shape, generator=gen).to(device))
        buf.requires_grad_(True)
    layers = G.num_ws if cfg.w_plus else 1
    w_opt = w_avg.detach().clone()[None, None].repeat(1, layers, 1).requires_grad_(True)   # [1, layers, w_dim]
    optimizer = torch.optim.Adam([w_opt] + list(noise.values()), betas=(0.9, 0.999), lr=cfg.initial_lr)

    w_steps = torch.zeros(cfg.num_steps, G.num_ws, G.w_dim)
    result = Projection(w=w_avg, w_steps=w_steps, noise={})
    start = time.perf_counter()
    for step in range(cfg.num_steps):
        t = step / cfg.num_steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t, cfg)
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale(t, cfg, w_std)
        ws = (w_opt + w_noise).expand(1, G.num_ws, -1) if layers == 1 else w_opt + w_noise
        synth = G.synthesis(ws, noise_mode="const")
        dist = distance(synth, target).sum()
        reg = noise_regularization(list(noise.values())) if noise else torch.zeros(())
        loss = dist + cfg.regularize_noise_weight * reg
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        w_steps[step] = w_opt.detach()[0].expand(G.num_ws, -1).cpu()
        with torch.no_grad():
            for buf in noise.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        result.distance.append(float(dist.detach()))
        result.loss.append(float(loss.detach()))
        if progress is not None:
            progress(step, result.distance[-1], result.loss[-1])
    result.seconds = time.perf_counter() - start
    result.w = w_steps[-1].clone()
    result.noise = {k: v.detach().cpu().clone() for k, v in noise.items()}
    return result


# ---------------------------------------------------------------------------------------------------- files
def load_target(path: str | Path, G) -> torch.Tensor:
    """An image file -> uint8 ``[C, H, W]``: centre-cropped to a square, resized (Lanczos) to ``G``'s size."""
    from PIL import Image
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--target {path} does not exist; pass an image file (PNG, JPEG, ...).")
    try:
        img = Image.open(path)
        img = img.convert("L" if G.img_channels == 1 else "RGB")
    except OSError as e:
        raise UserError(f"--target {path} is not a readable image ({e}).") from e
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    img = img.resize((G.img_resolution, G.img_resolution), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


@torch.no_grad()
def render_with_noise(G, w: torch.Tensor, noise: dict[str, torch.Tensor]) -> torch.Tensor:
    """``G.synthesis(w [N, num_ws, w_dim])`` with ``noise_mode='const'`` and the given noise maps (G unchanged)."""
    G = copy.deepcopy(G)
    bufs = noise_buffers(G)
    for name, value in noise.items():
        if name not in bufs or bufs[name].shape != value.shape:
            raise UserError(f"Noise map {name} does not fit this network; project with the same network.")
        bufs[name].copy_(value)
    return G.synthesis(w.to(G.mapping.w_avg.device), noise_mode="const")


def save_projection(G, target: torch.Tensor, proj: Projection, outdir: str | Path, video: bool = True,
                    frames: int = 100, fps: float = 10, scale: int = 1) -> dict[str, Path]:
    """Write ``target.png``, ``proj.png``, ``projected_w.npz`` (``w [1, num_ws, w_dim]`` and ``noise.NAME`` maps)
    and, with ``video``, ``proj.gif`` / ``proj.mp4`` (target | reconstruction, ``frames`` steps spread evenly)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    tgt = target if target.dtype == torch.uint8 else to_uint8(target[None])[0]
    files["target"] = save_frame(zoom(make_grid(tgt[None]), scale), outdir / "target.png")
    final = to_uint8(render_with_noise(G, proj.w[None], proj.noise))
    files["proj"] = save_frame(zoom(make_grid(final), scale), outdir / "proj.png")
    arrays = {"w": proj.w[None].numpy()}
    arrays.update({f"noise.{k}": v.numpy() for k, v in proj.noise.items()})
    np.savez(outdir / "projected_w.npz", **arrays)
    files["w"] = outdir / "projected_w.npz"
    if video:
        steps = sorted({round(i * (len(proj.w_steps) - 1) / max(frames - 1, 1)) for i in range(frames)})
        # The noise maps move during the optimisation; the video shows each step's w with the final maps.
        imgs = to_uint8(torch.cat([render_with_noise(G, proj.w_steps[s:s + 1], proj.noise) for s in steps]))
        left = make_grid(tgt[None])
        seq = [zoom(tile([left, make_grid(im[None])], 2, pad=2), scale) for im in imgs]
        files["gif"] = write_gif(seq, outdir / "proj.gif", fps=fps)
        mp4 = write_mp4(seq, outdir / "proj.mp4", fps=fps)
        if mp4 is not None:
            files["mp4"] = mp4
    return files


def final_scores(G, target: torch.Tensor, proj: Projection, distance: Distance) -> dict[str, float]:
    """``{"distance": ..., "mse": ...}`` of the final reconstruction (no exploration noise), images in [-1, 1]."""
    with torch.no_grad():
        tgt = prepare_target(target, G)
        img = render_with_noise(G, proj.w[None], proj.noise)
        return {"distance": float(distance(img, tgt).sum()), "mse": float(pixel_distance(img, tgt).sum())}


MP4_NOTE = MP4_MISSING
