"""The adaptive discriminator augmentation (ADA) pipeline of Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data" (NeurIPS 2020), Sec. 2-3 and Appendix B.

Every augmentation is applied to each image independently with probability ``strength * p``, where ``strength`` is a
per-op multiplier (0 disables the op, 1 is the paper's setting) and ``p`` is the overall probability that the
controllers in :mod:`fakeclr.augment.controller` adapt during training. All ops are differentiable w.r.t. the images
(including the second derivative that R1 needs), so the discriminator sees augmented reals *and* fakes and the
generator is trained through the augmentation (paper Sec. 2.2: "non-leaking" augmentations).

The ops run in four stages, in this fixed order (paper App. B):

1. geometric: xflip, rotate90, xint (pixel blitting), then scale, rotate (pre), aniso, rotate (post), xfrac. All are
   composed into one inverse 2D affine matrix per image and executed at once by anti-aliased resampling;
2. color: brightness, contrast, lumaflip, hue, saturation, composed into one 4x4 matrix acting on (r, g, b, 1);
3. imgfilter: random gains for 4 octave bands of a wavelet filter bank, power-normalised;
4. corruptions: additive Gaussian noise, then cutout.

Random numbers are drawn from the global torch generator in exactly the same order and shapes as the StyleGAN2-ADA
reference implementation, so for the same seed, ``p`` and input both produce the same images; ``debug_percentile``
replaces every random parameter by its value at that percentile (for deterministic checks and visualisation).

Single-channel (grayscale) images: the color matrix is reduced to the luma channel, i.e. brightness adds ``b``,
contrast multiplies by ``c`` and lumaflip negates the image (the luma part of the RGB reflection); hue and saturation
do nothing on one channel and draw no random numbers. Any other channel count works for the non-color ops only.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fakeclr.errors import UserError
from fakeclr.nn.ops import downsample2d, setup_filter, upsample2d

__all__ = ["AugmentPipe", "AUGPIPE_PRESETS", "AUGPIPE_DEFAULTS"]

# Low-pass decomposition filters of two Daubechies symlets (standard wavelet tables, e.g. PyWavelets).
# sym6 is the anti-aliasing filter of the geometric stage (App. B.2); sym2 builds the filter bank of imgfilter.
_SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
_SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
         0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
         -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# Every option with its default. Probability multipliers default to 0 (op off); the rest are the paper's strengths.
AUGPIPE_DEFAULTS: dict[str, float | list[float]] = {
    # pixel blitting
    "xflip": 0.0, "rotate90": 0.0, "xint": 0.0,
    "xint_max": 0.125,           # integer translation range, fraction of the image size
    # general geometric
    "scale": 0.0, "rotate": 0.0, "aniso": 0.0, "xfrac": 0.0,
    "scale_std": 0.2,            # log2 std of isotropic scaling
    "rotate_max": 1.0,           # rotation range, 1 = full circle
    "aniso_std": 0.2,            # log2 std of anisotropic scaling
    "xfrac_std": 0.125,          # std of fractional translation, fraction of the image size
    # color
    "brightness": 0.0, "contrast": 0.0, "lumaflip": 0.0, "hue": 0.0, "saturation": 0.0,
    "brightness_std": 0.2,       # std of the added brightness
    "contrast_std": 0.5,         # log2 std of the contrast factor
    "hue_max": 1.0,              # hue rotation range, 1 = full circle
    "saturation_std": 1.0,       # log2 std of the saturation factor
    # image-space filtering
    "imgfilter": 0.0,
    "imgfilter_bands": [1.0, 1.0, 1.0, 1.0],  # per-band multipliers, lowest band first
    "imgfilter_std": 1.0,        # log2 std of the band gains
    # corruptions
    "noise": 0.0, "cutout": 0.0,
    "noise_std": 0.1,            # std of the per-image noise level sigma (|N(0, 1)| * noise_std)
    "cutout_size": 0.5,          # side of the cutout square, fraction of the image size
}

_BLIT = {"xflip": 1, "rotate90": 1, "xint": 1}
_GEOM = {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}
_COLOR = {"brightness": 1, "contrast": 1, "lumaflip": 1, "hue": 1, "saturation": 1}
_FILTER = {"imgfilter": 1}
_NOISE = {"noise": 1}
_CUTOUT = {"cutout": 1}

# The named pipelines of StyleGAN2-ADA's ``--augpipe`` (paper Fig. 4 and App. A); "bgc" is the paper's default.
AUGPIPE_PRESETS: dict[str, dict[str, float]] = {
    "blit": {**_BLIT},
    "geom": {**_GEOM},
    "color": {**_COLOR},
    "filter": {**_FILTER},
    "noise": {**_NOISE},
    "cutout": {**_CUTOUT},
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, **_FILTER},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT},
}

_GEOMETRY_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
_COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")

# Relative power of the 4 imgfilter bands for natural images (~1/f spectrum); gains are normalised against it.
_BAND_POWER = [10 / 13, 1 / 13, 1 / 13, 1 / 13]


# ---------------------------------------------------------------------------------------------------------------------
# Batched homogeneous matrices. Entries are Python numbers or tensors of shape [N]; results are float32 [N, k, k].

def _batched_matrix(rows: Sequence[Sequence[float | torch.Tensor]], like: torch.Tensor) -> torch.Tensor:
    """Stack a nested list of scalars / ``[N]`` tensors into ``[N, len(rows), len(rows[0])]``."""
    entries = [e if isinstance(e, torch.Tensor) else torch.full_like(like, e) for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(like.shape[0], len(rows), len(rows[0]))


def _translate2d(tx, ty, like):
    return _batched_matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale2d(sx, sy, like):
    return _batched_matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate2d(angle, like):
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _batched_matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], like)


def _translate3d(t, like):
    return _batched_matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], like)


def _scale3d(s, like):
    return _batched_matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], like)


def _rotate_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` ``[N]`` about the unit 3-vector ``axis`` (Rodrigues), as ``[N, 4, 4]``."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    vx, vy, vz = axis[0], axis[1], axis[2]
    cross = torch.zeros(3, 3, device=angle.device)                             # [v]_x: cross(v, u) = [v]_x @ u
    cross[0, 1], cross[0, 2], cross[1, 2] = -vz, vy, -vx
    cross[1, 0], cross[2, 0], cross[2, 1] = vz, -vy, vx
    outer = torch.outer(axis[:3], axis[:3])
    rot = (cos[:, None, None] * torch.eye(3, device=angle.device) + sin[:, None, None] * cross
           + outer * (1 - cos)[:, None, None])
    out = torch.eye(4, device=angle.device).repeat(angle.shape[0], 1, 1)
    out[:, :3, :3] = rot
    return out


def _const_translate(tx: float, ty: float, device) -> torch.Tensor:
    return torch.tensor([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=torch.float32, device=device)


def _const_scale(sx: float, sy: float, device) -> torch.Tensor:
    return torch.tensor([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=torch.float32, device=device)


def _wavelet_filter_bank(lowpass: Sequence[float], num_bands: int = 4) -> np.ndarray:
    """Zero-phase FIR filters (rows) that split a signal into ``num_bands`` octave bands, lowest band first.

    From the orthogonal low-pass ``H(z)`` and its mirror ``H(-z)`` we form the half-band pair
    ``H(z)H(1/z)/2`` and ``H(-z)H(-1/z)/2`` (they sum to a unit impulse). Each round stretches the bank by one octave
    (zero insertion) and low-passes it, then adds the new high band; the rows therefore sum to an impulse, so unit
    gains reproduce the input (paper App. B.3).
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo_half = np.convolve(lo, lo[::-1]) / 2
    hi_half = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1.0
    for band in range(1, num_bands):
        stretched = np.zeros([num_bands, 2 * bank.shape[1] - 1])
        stretched[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo_half) for row in stretched])
        start = (bank.shape[1] - hi_half.size) // 2
        bank[band, start:start + hi_half.size] += hi_half
    return bank


# ---------------------------------------------------------------------------------------------------------------------

class AugmentPipe(torch.nn.Module):
    """The ADA augmentation pipeline (Karras et al. 2020), with the reference's ops, order and random draws.

    Construct with option keywords (see :data:`AUGPIPE_DEFAULTS`), a named preset, or both (keywords override the
    preset): ``AugmentPipe(xflip=1)``, ``AugmentPipe(preset="bgc")``, ``AugmentPipe.from_preset("bgc", hue=0)``.

    Args:
        preset: a key of :data:`AUGPIPE_PRESETS` or ``None``.
        p: initial overall augmentation probability (a scalar buffer ``self.p``, saved in ``state_dict``). The default
            1 follows the reference class; training sets it from a controller (ADA starts from 0).
        **options: probability multipliers (``xflip``, ``rotate90``, ``xint``, ``scale``, ``rotate``, ``aniso``,
            ``xfrac``, ``brightness``, ``contrast``, ``lumaflip``, ``hue``, ``saturation``, ``imgfilter``, ``noise``,
            ``cutout``) and strengths (``*_std``, ``*_max``, ``imgfilter_bands``, ``cutout_size``).

    Raises:
        UserError: unknown preset or option name.
    """

    def __init__(self, preset: str | None = None, *, p: float = 1.0, **options):
        super().__init__()
        config = {k: (list(v) if isinstance(v, list) else v) for k, v in AUGPIPE_DEFAULTS.items()}
        if preset is not None:
            config.update(_preset_options(preset))
        unknown = sorted(set(options) - set(AUGPIPE_DEFAULTS))
        if unknown:
            raise UserError(f"Unknown augmentation option(s) {', '.join(unknown)}; valid options are "
                            f"{', '.join(AUGPIPE_DEFAULTS)}.")
        config.update(options)
        if len(config["imgfilter_bands"]) != 4:
            raise UserError(f"imgfilter_bands needs 4 values (one per band), got {list(config['imgfilter_bands'])}.")
        for name, value in config.items():
            setattr(self, name, [float(b) for b in value] if name == "imgfilter_bands" else float(value))
        self.preset = preset

        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float32))
        # Filters are constants, rebuilt on construction: kept out of state_dict (only p is state).
        self.register_buffer("Hz_geom", setup_filter(_SYM6), persistent=False)
        self.register_buffer("Hz_fbank", torch.as_tensor(_wavelet_filter_bank(_SYM2), dtype=torch.float32),
                             persistent=False)

    @classmethod
    def from_preset(cls, name: str, *, p: float = 1.0, **overrides) -> "AugmentPipe":
        """``AugmentPipe(preset=name, p=p, **overrides)``."""
        return cls(preset=name, p=p, **overrides)

    @property
    def options(self) -> dict[str, float | list[float]]:
        """The resolved option values (JSON-able)."""
        return {name: getattr(self, name) for name in AUGPIPE_DEFAULTS}

    def set_p(self, value: float) -> None:
        """Set the overall augmentation probability in place (keeps the buffer's device)."""
        self.p.fill_(float(value))

    def extra_repr(self) -> str:
        active = [f"{k}={v:g}" for k, v in self.options.items() if isinstance(v, float) and v != AUGPIPE_DEFAULTS[k]]
        return f"preset={self.preset!r}, p={float(self.p):.4f}" + (", " + ", ".join(active) if active else "")

    # -----------------------------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, debug_percentile: float | None = None) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: ``[N, C, H, W]`` float, roughly in [-1, 1]; C = 3 (RGB) or 1 for the color ops.
            debug_percentile: if given (in [0, 1]), every random parameter takes its value at this percentile and
                every enabled op is applied regardless of ``p`` (random numbers are still drawn, as in the reference).
        Returns:
            ``[N, C, H, W]``, same dtype. Stages whose parameters are all neutral are skipped, so ``p = 0`` returns
            the input unchanged.
        """
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"AugmentPipe expects a float [N, C, H, W] tensor, got {_describe(images)}.")
        n, c = images.shape[:2]
        if c not in (1, 3) and any(getattr(self, op) > 0 for op in _COLOR_OPS):
            raise ValueError(f"The color augmentations need 1 or 3 channels, got {c}.")
        pct = None
        if debug_percentile is not None:
            pct = torch.as_tensor(debug_percentile, dtype=torch.float32, device=images.device)
        x = images.to(torch.float32)

        # Draw the parameters of the first three stages (in the reference's order; applying a stage draws nothing),
        # then read on the host, once, which stages changed any image and how far the warp must pad.
        g_inv, moved = self._sample_geometry(n, *images.shape[2:], images.device, pct)
        color, recolored = self._sample_color(n, c, images.device, pct)
        gains, filtered = self._sample_band_gains(n, images.device, pct) if self.imgfilter > 0 else (None, None)
        padding = self._warp_padding(g_inv, *images.shape[2:]) if g_inv is not None else None
        warp, recolor, refilter, padding = _read_once(moved, recolored, filtered, padding)
        if warp:
            x = self._warp(x, g_inv, padding)
        if recolor:
            x = _apply_color(x, color)
        if refilter:
            x = self._filter_bands(x, gains)
        if self.noise > 0:
            x = self._add_noise(x, pct)
        if self.cutout > 0:
            x = self._cutout(x, pct)
        return x.to(images.dtype)

    # -----------------------------------------------------------------------------------------------------------------
    # Random parameters.

    def _gate(self, candidate: torch.Tensor, prob: torch.Tensor, neutral: float, mask_shape: Sequence[int],
              pct: torch.Tensor | None, at_percentile: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Keep each image's ``candidate`` value with probability ``prob``, else the op's ``neutral`` value.

        The Bernoulli draw comes after the candidate's draw (the reference's order). With a debug percentile the
        result is overridden by ``at_percentile(pct)`` for every image.
        """
        keep = torch.rand(list(mask_shape), device=candidate.device) < prob
        value = torch.where(keep, candidate, torch.full_like(candidate, neutral))
        if pct is not None:
            value = torch.full_like(value, at_percentile(pct))
        return value

    def _lognormal(self, shape, std, prob, pct, device):
        """``2 ** N(0, std^2)`` gated by ``prob`` (neutral 1); used by scale, aniso, contrast, saturation."""
        candidate = torch.exp2(torch.randn(shape, device=device) * std)
        return self._gate(candidate, prob, 1.0, shape, pct,
                          lambda q: torch.exp2(torch.erfinv(q * 2 - 1) * std))

    def _uniform_angle(self, n, max_turns, prob, pct, device, at_percentile=None):
        """Angle ``U(-pi, pi) * max_turns`` gated by ``prob`` (neutral 0); used by rotate and hue."""
        candidate = (torch.rand([n], device=device) * 2 - 1) * np.pi * max_turns
        return self._gate(candidate, prob, 0.0, [n], pct,
                          at_percentile or (lambda q: (q * 2 - 1) * np.pi * max_turns))

    def _sample_geometry(self, n: int, h: int, w: int, device: torch.device,
                         pct: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Compose the inverse transform (output pixel -> input pixel, centered coordinates), ``[N, 3, 3]``, and
        whether it moves any image (a 0-d bool tensor); ``(None, None)`` when no geometric op is enabled.
        """
        if not any(getattr(self, op) > 0 for op in _GEOMETRY_OPS):
            return None, None
        like = torch.zeros([n], device=device)
        g_inv = torch.eye(3, device=device).repeat(n, 1, 1)
        moved = []  # per-op "this image is changed" masks

        def compose(matrix, changed):
            nonlocal g_inv
            g_inv = g_inv @ matrix
            moved.append(changed)

        p = self.p
        if self.xflip > 0:  # once selected, mirror x with probability 1/2
            i = self._gate(torch.floor(torch.rand([n], device=device) * 2), self.xflip * p, 0.0, [n], pct,
                           lambda q: torch.floor(q * 2))
            compose(_scale2d(1 / (1 - 2 * i), 1.0, like), i != 0)
        if self.rotate90 > 0:  # k * 90 degrees, k uniform in {0, 1, 2, 3}
            i = self._gate(torch.floor(torch.rand([n], device=device) * 4), self.rotate90 * p, 0.0, [n], pct,
                           lambda q: torch.floor(q * 4))
            compose(_rotate2d(np.pi / 2 * i, like), i != 0)
        if self.xint > 0:  # integer translation, uniform in +-xint_max of the size
            t = (torch.rand([n, 2], device=device) * 2 - 1) * self.xint_max
            t = self._gate(t, self.xint * p, 0.0, [n, 1], pct, lambda q: (q * 2 - 1) * self.xint_max)
            tx, ty = torch.round(t[:, 0] * w), torch.round(t[:, 1] * h)
            compose(_translate2d(-tx, -ty, like), (tx != 0) | (ty != 0))
        if self.scale > 0:  # isotropic, lognormal
            s = self._lognormal([n], self.scale_std, self.scale * p, pct, device)
            compose(_scale2d(1 / s, 1 / s, like), s != 1)
        # Rotation is split in two (before and after aniso) so that P(any rotation) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))
        if self.rotate > 0:
            theta = self._uniform_angle(n, self.rotate_max, p_rot, pct, device)
            compose(_rotate2d(theta, like), theta != 0)
        if self.aniso > 0:  # stretch x by s and y by 1/s
            s = self._lognormal([n], self.aniso_std, self.aniso * p, pct, device)
            compose(_scale2d(1 / s, 1 / (1 / s), like), s != 1)
        if self.rotate > 0:  # the post-rotation is 0 under a debug percentile
            theta = self._uniform_angle(n, self.rotate_max, p_rot, pct, device, at_percentile=torch.zeros_like)
            compose(_rotate2d(theta, like), theta != 0)
        if self.xfrac > 0:  # sub-pixel translation, normal with xfrac_std of the size
            t = torch.randn([n, 2], device=device) * self.xfrac_std
            t = self._gate(t, self.xfrac * p, 0.0, [n, 1], pct, lambda q: torch.erfinv(q * 2 - 1) * self.xfrac_std)
            compose(_translate2d(-(t[:, 0] * w), -(t[:, 1] * h), like), (t != 0).any(dim=1))
        return g_inv, _any(moved)

    def _sample_color(self, n: int, c: int, device: torch.device,
                      pct: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Compose the color transform acting on homogeneous ``(r, g, b, 1)``, ``[N, 4, 4]``, and whether it changes
        any image (0-d bool); ``(None, None)`` when no color op is enabled.

        Hue and saturation act only on RGB (they are skipped, drawing nothing, for 1 channel).
        """
        if not any(getattr(self, op) > 0 for op in _COLOR_OPS):
            return None, None
        p = self.p
        like = torch.zeros([n], device=device)
        eye = torch.eye(4, device=device)
        luma = torch.as_tensor(np.asarray([1, 1, 1, 0]) / np.sqrt(3), dtype=torch.float32, device=device)
        luma_proj = torch.outer(luma, luma)  # projection onto the gray axis
        color = eye.repeat(n, 1, 1)
        changed = []
        if self.brightness > 0:  # add b ~ N(0, brightness_std^2) to every channel
            b = self._gate(torch.randn([n], device=device) * self.brightness_std, self.brightness * p, 0.0, [n], pct,
                           lambda q: torch.erfinv(q * 2 - 1) * self.brightness_std)
            color = _translate3d(b, like) @ color
            changed.append(b != 0)
        if self.contrast > 0:  # multiply by a lognormal factor
            s = self._lognormal([n], self.contrast_std, self.contrast * p, pct, device)
            color = _scale3d(s, like) @ color
            changed.append(s != 1)
        if self.lumaflip > 0:  # once selected, reflect the luma component (Householder) with probability 1/2
            i = self._gate(torch.floor(torch.rand([n, 1, 1], device=device) * 2), self.lumaflip * p, 0.0, [n, 1, 1],
                           pct, lambda q: torch.floor(q * 2))
            color = (eye - 2 * luma_proj * i) @ color
            changed.append(i != 0)
        if self.hue > 0 and c > 1:  # rotate around the gray axis
            theta = self._uniform_angle(n, self.hue_max, self.hue * p, pct, device)
            color = _rotate_about(luma, theta) @ color
            changed.append(theta != 0)
        if self.saturation > 0 and c > 1:  # scale the chroma (component orthogonal to the gray axis)
            s = self._lognormal([n, 1, 1], self.saturation_std, self.saturation * p, pct, device)
            color = (luma_proj + (eye - luma_proj) * s) @ color
            changed.append(s != 1)
        return color, _any(changed)

    # -----------------------------------------------------------------------------------------------------------------
    # Execution.

    def _warp_padding(self, g_inv: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The reflect padding the warp needs on each side, ``[4]`` (left, top, right, bottom; whole pixels as
        floats): where the corners of the output land in the input, plus the filter's guard band."""
        device = g_inv.device
        guard = self.Hz_geom.shape[0] // 4  # extra pixels the sym6 filter needs on each side (3)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=device).t()
        src = (g_inv @ corners)[:, :2, :]                                          # [N, xy, corner]
        reach = torch.cat([-src, src], dim=1).amax(dim=(0, 2))                    # [left, top, right, bottom]
        reach = reach + torch.tensor([guard * 2 - cx, guard * 2 - cy] * 2, device=device)
        reach = reach.clamp(min=0).minimum(torch.tensor([w - 1, h - 1] * 2, dtype=torch.float32, device=device))
        return reach.ceil()

    def _warp(self, x: torch.Tensor, g_inv: torch.Tensor, padding: list[int]) -> torch.Tensor:
        """Resample every image with its inverse transform, alias-free (paper App. B.2).

        Steps: reflect-pad by ``padding`` (:meth:`_warp_padding`: just enough to cover what the transform brings
        into view); upsample 2x with the sym6 wavelet; bilinear sampling at the transformed pixel centers;
        low-pass and downsample 2x, cropping the pad.
        Args:
            x: ``[N, C, H, W]``; g_inv: ``[N, 3, 3]`` mapping output pixels to input pixels, both measured from the
            image center in pixels; padding: ``[left, top, right, bottom]`` pixels.
        """
        n, c, h, w = x.shape
        device = x.device
        guard = self.Hz_geom.shape[0] // 4
        left, top, right, bottom = padding
        x = F.pad(x, [left, right, top, bottom], mode="reflect")
        g_inv = _const_translate((left - right) / 2, (top - bottom) / 2, device) @ g_inv

        # 2x upsampling: coordinates are doubled around pixel centers.
        x = upsample2d(x, self.Hz_geom, up=2)
        g_inv = _const_scale(2, 2, device) @ g_inv @ _const_scale(1 / 2, 1 / 2, device)
        g_inv = _const_translate(-0.5, -0.5, device) @ g_inv @ _const_translate(0.5, 0.5, device)

        # Bilinear sampling into a (h + 2 guard) x (w + 2 guard) image at 2x; affine_grid wants [-1, 1] coordinates.
        out_h, out_w = (h + guard * 2) * 2, (w + guard * 2) * 2
        g_inv = (_const_scale(2 / x.shape[3], 2 / x.shape[2], device) @ g_inv
                 @ _const_scale(1 / (2 / out_w), 1 / (2 / out_h), device))
        grid = F.affine_grid(g_inv[:, :2, :], [n, c, out_h, out_w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Back to 1x, dropping the guard band.
        return downsample2d(x, self.Hz_geom, down=2, padding=-guard * 2, flip_filter=True)

    def _sample_band_gains(self, n: int, device: torch.device,
                           pct: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random per-band gains ``2 ** N(0, imgfilter_std^2)`` (paper App. B.3), power-normalised for 1/f images:
        ``[N, bands]``, and whether any image's gains differ from 1 (0-d bool)."""
        num_bands = self.Hz_fbank.shape[0]
        power = torch.tensor(_BAND_POWER, dtype=torch.float32, device=device)
        gains = torch.ones([n, num_bands], device=device)
        changed = []
        for band, strength in enumerate(self.imgfilter_bands):
            std = self.imgfilter_std
            at = (lambda q: torch.exp2(torch.erfinv(q * 2 - 1) * std)) if strength > 0 else torch.ones_like
            g = self._gate(torch.exp2(torch.randn([n], device=device) * std), self.imgfilter * self.p * strength,
                           1.0, [n], pct, at)
            changed.append(g != 1)
            band_gain = torch.ones([n, num_bands], device=device)
            band_gain[:, band] = g
            gains = gains * (band_gain / (power * band_gain.square()).sum(dim=-1, keepdim=True).sqrt())
        return gains, _any(changed)

    def _filter_bands(self, x: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """Filter each image with its band ``gains`` ``[N, bands]`` (:meth:`_sample_band_gains`)."""
        n, c, h, w = x.shape
        taps = (gains @ self.Hz_fbank).repeat_interleave(c, dim=0)                 # [N*C, T]
        pad = self.Hz_fbank.shape[1] // 2
        if min(h, w) <= pad:
            raise ValueError(f"imgfilter needs images of at least {pad + 1}x{pad + 1} pixels (reflect padding of "
                             f"{pad}), got {h}x{w}.")
        x = F.pad(x.reshape(1, n * c, h, w), [pad, pad, pad, pad], mode="reflect")
        x = F.conv2d(x, taps[:, None, None, :], groups=n * c)                      # along x
        x = F.conv2d(x, taps[:, None, :, None], groups=n * c)                      # along y
        return x.reshape(n, c, h, w)

    def _add_noise(self, x: torch.Tensor, pct: torch.Tensor | None) -> torch.Tensor:
        """Add ``N(0, sigma^2)`` per pixel and channel, ``sigma = |N(0, 1)| * noise_std`` per image."""
        n = x.shape[0]
        sigma = torch.randn([n, 1, 1, 1], device=x.device).abs() * self.noise_std
        sigma = self._gate(sigma, self.noise * self.p, 0.0, [n, 1, 1, 1], pct,
                           lambda q: torch.erfinv(q) * self.noise_std)
        return x + torch.randn(x.shape, device=x.device) * sigma

    def _cutout(self, x: torch.Tensor, pct: torch.Tensor | None) -> torch.Tensor:
        """Zero a square of side ``cutout_size`` (fraction of the image) centered at a uniform random point."""
        n, _, h, w = x.shape
        device = x.device
        size = torch.full([n, 2, 1, 1, 1], self.cutout_size, device=device)
        size = torch.where(torch.rand([n, 1, 1, 1, 1], device=device) < self.cutout * self.p, size,
                           torch.zeros_like(size))
        center = torch.rand([n, 2, 1, 1, 1], device=device)
        if pct is not None:
            size = torch.full_like(size, self.cutout_size)
            center = torch.full_like(center, pct)
        # A pixel survives if its center lies outside the square along x or along y.
        keep_x = ((torch.arange(w, device=device).reshape(1, 1, 1, w) + 0.5) / w - center[:, 0]).abs() >= size[:, 0] / 2
        keep_y = ((torch.arange(h, device=device).reshape(1, 1, h, 1) + 0.5) / h - center[:, 1]).abs() >= size[:, 1] / 2
        return x * (keep_x | keep_y).to(x.dtype)



# ---------------------------------------------------------------------------------------------------------------------

def _apply_color(x: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Apply per-image ``[N, 4, 4]`` color matrices to ``[N, C, H, W]``.

    RGB: ``rgb' = A @ rgb + t``. One channel: the gray value ``v`` stands for the pixel ``(v, v, v)``; the result is
    the mean of the three output channels, i.e. ``v' = v * sum(row-mean of A) + mean(t)``.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if c == 3:
        flat = color[:, :3, :3] @ flat + color[:, :3, 3:]
    else:
        row = color[:, :3, :].mean(dim=1, keepdim=True)                            # [N, 1, 4]
        flat = flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]
    return flat.reshape(n, c, h, w)


def _any(masks: list[torch.Tensor]) -> torch.Tensor:
    """Whether any element of any boolean mask is set: a 0-d bool tensor on the masks' device (nothing is read)."""
    return torch.stack([m.any() for m in masks]).any() if masks else torch.tensor(False)


def _read_once(moved: torch.Tensor | None, recolored: torch.Tensor | None, filtered: torch.Tensor | None,
               padding: torch.Tensor | None) -> tuple[bool, bool, bool, list[int] | None]:
    """The pipeline's one host read: which stages change any image (each flag ``None`` where its stage is off),
    and the warp's padding ``[4]``."""
    flags = (moved, recolored, filtered)
    parts = [f.reshape(1).float() for f in flags if f is not None] + ([padding] if padding is not None else [])
    if not parts:
        return False, False, False, None
    values = iter(torch.cat([t.to(parts[-1].device) for t in parts]).tolist())
    warp, recolor, refilter = (f is not None and bool(next(values)) for f in flags)
    return warp, recolor, refilter, [int(next(values)) for _ in range(4)] if padding is not None else None


def _preset_options(name: str) -> dict[str, float]:
    if name not in AUGPIPE_PRESETS:
        raise UserError(f"Unknown augmentation preset {name!r}; valid presets are {', '.join(AUGPIPE_PRESETS)}.")
    return dict(AUGPIPE_PRESETS[name])


def _describe(obj) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a {obj.dtype} tensor of shape {list(obj.shape)}"
    return f"a {type(obj).__name__}"
