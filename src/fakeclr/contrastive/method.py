"""The contrastive family as parts and loss terms added to the GAN's phases.

======================  ===========================================================================  =========
method                  terms                                                                         queue(s)
======================  ===========================================================================  =========
instance-real           D: real view vs a second augmented real view  (:class:`RealInstanceTerm`)    real
instance-fake           D: fake view vs a second augmented view of the same fake (:class:`FakeInstanceTerm`)  fake
instance-perturbation   D: ``G(z)`` vs ``G(z + 0.15 n)``                                              fake
insgen                  real + perturbation (fixed radius) + G term (:class:`GeneratorContrastiveTerm`) both
fakeclr                 perturbation with noise-related eps, forgetting factor, diversity-aware queue, G term   fake
======================  ===========================================================================  =========

Queries come from D (trained), keys from its momentum copy ``D_ema`` and a momentum head (MoCo). A query reuses
the adversarial D forward of its phase (``reuse_forward``): the released code runs D a second time on another
random augmentation of the same images, which is the same distribution at twice the cost; ``reuse_forward=False``
restores it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import ContrastiveConfig
from ..phase import PhaseContext
from .diversity import QueueSizer, dataset_queue_size
from .heads import ProjectionHead, momentum_copy, momentum_update
from .infonce import iteration_weighted_info_nce
from .perturbation import LatentPerturbation
from .queue import FeatureQueue


class _KeyEncoder:
    """``D_ema`` + a momentum head: images ``[N, C, H, W]`` -> unit keys ``[N, head_dim]`` (no gradient).

    With ``head`` and ``momentum`` given (``--head-momentum forward``), the momentum head first takes a MoCo step
    towards ``head`` at every call, as the released code's head does at each of its forwards."""

    def __init__(self, D_ema: torch.nn.Module, head_ema: ProjectionHead, head: ProjectionHead | None = None,
                 momentum: float = 0.999):
        self.D_ema, self.head_ema, self.head, self.momentum = D_ema, head_ema, head, momentum

    @torch.no_grad()
    def __call__(self, ctx: PhaseContext, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            momentum_update(self.head_ema, self.head, self.momentum)
        _, features = self.D_ema(ctx.augment(img.detach()), c, return_features=True)
        return self.head_ema(features)


class RealInstanceTerm:
    """Instance-real (InsGen): each real image is its own class; positive = another augmentation of it."""
    phase = "Dmain"

    def __init__(self, head: ProjectionHead, keys: _KeyEncoder, queue: FeatureQueue, cfg: ContrastiveConfig):
        self.head, self.keys, self.queue, self.cfg = head, keys, queue, cfg

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        if self.cfg.reuse_forward:
            features = ctx.d_real(requires_grad=False)[1].features
        else:
            features = ctx.run_D(ctx.real_img, ctx.real_c).features
        q = self.head(features)
        k = self.keys(ctx, ctx.real_img, ctx.real_c)
        neg, neg_iters = self.queue.entries()
        loss = iteration_weighted_info_nce(q, k, neg, neg_iters, self.cfg.tau, self.cfg.tau_m, mode="none")
        self.queue.enqueue(k, ctx.iteration)
        ctx.report("Loss/cl/real", loss)
        return self.cfg.lw_real * loss


class FakeInstanceTerm:
    """Fake instance discrimination in D: query ``G(z)``; positive ``G(z)`` re-augmented or ``G(z + eps)``.

    The fake queue's negatives are weighted by the forgetting factor (supp. Eq. 1) and its keys stamped with the
    iteration. With ``real_in_fake_queue`` (FakeCLR Table 5) half of each enqueued batch are keys of real images,
    from the start (Config A) or from half-way through training (Config B).
    """
    phase = "Dmain"

    def __init__(self, head: ProjectionHead, keys: _KeyEncoder, queue: FeatureQueue, cfg: ContrastiveConfig,
                 perturb: LatentPerturbation | None, sizer: QueueSizer, total_nimg: int):
        self.head, self.keys, self.queue, self.cfg = head, keys, queue, cfg
        self.perturb, self.sizer, self.total_nimg = perturb, sizer, total_nimg

    def positive_images(self, ctx: PhaseContext) -> torch.Tensor:
        """The positive view's images ``[N, C, H, W]`` (no gradient)."""
        img = ctx.fake()[0]
        if self.perturb is None:
            return img.detach()
        with torch.no_grad():
            mixing = ctx.fake_mixing if self.cfg.mixing == "shared" else None
            return ctx.run_G(self.perturb(ctx.gen_z), ctx.gen_c, mixing=mixing)[0]

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        positive = self.positive_images(ctx) if self.cfg.positive_first else None
        if self.cfg.reuse_forward:
            features = ctx.d_fake(detach=True).features
        else:
            features = ctx.run_D(ctx.fake()[0].detach(), ctx.gen_c).features
        q = self.head(features)
        k = self.keys(ctx, self.positive_images(ctx) if positive is None else positive, ctx.gen_c)
        neg, neg_iters = self.queue.entries()
        loss = iteration_weighted_info_nce(q, k, neg, neg_iters, self.cfg.tau, self.cfg.tau_m, self.cfg.forgetting)
        if self.cfg.fake_queue_keys == "query":      # released InsGen: the momentum head on the query's features
            with torch.no_grad():
                k = self.keys.head_ema(features.detach())
        self.queue.enqueue(self._keys_to_enqueue(ctx, k), ctx.iteration)
        if self.sizer.adaptive:
            with torch.no_grad():
                real_q = self.head(ctx.d_real(requires_grad=False)[1].features)
            self.sizer.observe(q.detach(), real_q)
        ctx.report("Loss/cl/fake", loss)
        return self.cfg.lw_fake * loss

    def _keys_to_enqueue(self, ctx: PhaseContext, k: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.real_in_fake_queue
        if mode == "none" or (mode == "half" and ctx.cur_nimg < self.total_nimg // 2):
            return k
        half = k.shape[0] // 2
        real_k = self.keys(ctx, ctx.real_img[half:], ctx.real_c[half:])
        return torch.cat([k[:half], real_k])


class GeneratorContrastiveTerm:
    """The fake contrastive loss back-propagated into G (InsGen, FakeCLR; weight 0.1): queries of ``G(z)`` with
    gradient, positive = another augmentation of the same fake, negatives = the fake queue (not updated)."""
    phase = "Gmain"

    def __init__(self, head: ProjectionHead, keys: _KeyEncoder, queue: FeatureQueue, cfg: ContrastiveConfig):
        self.head, self.keys, self.queue, self.cfg = head, keys, queue, cfg

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        img = ctx.fake()[0]
        if self.cfg.reuse_forward:
            features = ctx.d_fake(detach=False).features
        else:
            features = ctx.run_D(img, ctx.gen_c).features
        q = self.head(features)
        k = self.keys(ctx, img, ctx.gen_c)
        neg, neg_iters = self.queue.entries()
        loss = iteration_weighted_info_nce(q, k, neg, neg_iters, self.cfg.tau, self.cfg.tau_m, self.cfg.forgetting)
        ctx.report("Loss/cl/fake_on_G", loss)
        return self.cfg.lw_fake_on_g * loss


class ContrastiveMethod:
    """The parts of a contrastive method and the terms it adds; empty for ``ada``.

    Args:
        cfg: the contrastive configuration.
        D: the discriminator (queries; its momentum copy gives keys).
        num_images: training images before mirroring; ``mirror``: x-flip doubling (queue-size rule).
        total_nimg: planned training length in images (Table 5 Config B switches at half of it).
    Attributes:
        modules: ``{name: module}`` whose state is checkpointed (``D_ema``, heads, momentum heads, queues).
        networks: the part of ``modules`` that goes into network files (``D_ema``, heads; not the queues).
        trainable: the heads, optimised with D in the D phases.
        own_optimizers: ``{"G": [...], "D": [...]}``: heads that get an optimizer of their own with G's or D's
            settings (``--head-optimizer own``); empty otherwise.
        terms: loss terms for :func:`fakeclr.train.loop.train`.
    """

    def __init__(self, cfg: ContrastiveConfig, D: torch.nn.Module, num_images: int, mirror: bool, total_nimg: int):
        self.cfg = cfg
        self.modules: dict[str, torch.nn.Module] = {}
        self.networks: dict[str, torch.nn.Module] = {}
        self.trainable: list[torch.nn.Module] = []
        self.own_optimizers: dict[str, list[torch.nn.Module]] = {}
        self.terms: list = []
        self._momentum: list[tuple[torch.nn.Module, torch.nn.Module]] = []     # (copy, source) pairs, MoCo
        base = dataset_queue_size(num_images, mirror, cfg.queue_fraction)
        self.sizer = QueueSizer(cfg.queue_sizer, base, fixed=cfg.queue_size, min_size=cfg.queue_min,
                                max_size=cfg.queue_max)
        if not (cfg.real_instance or cfg.fake_positive != "none"):
            return
        gen = torch.Generator().manual_seed(0x5EED)      # queue initialisation independent of the global RNG
        self.D_ema = self._add("D_ema", momentum_copy(D), network=True)
        self._momentum.append((self.D_ema, D))
        width = D.feature_channels
        if cfg.real_instance:
            head = self._add("real_head", ProjectionHead(width, cfg.head_dim), trainable=True, network=True)
            keys = self._key_encoder("real", head)
            size = cfg.real_queue_size or base
            queue = self._add("real_queue", FeatureQueue(cfg.head_dim, size, generator=gen))
            self.terms.append(RealInstanceTerm(head, keys, queue, cfg))
        if cfg.fake_positive != "none":
            head = self._add("fake_head", ProjectionHead(width, cfg.head_dim), trainable=True, network=True)
            keys = self._key_encoder("fake", head)
            queue = self._add("fake_queue", FeatureQueue(cfg.head_dim, self.sizer.initial_size(), generator=gen))
            perturb = None
            if cfg.fake_positive == "perturb":
                perturb = LatentPerturbation(cfg.perturbation, lam=cfg.lam, norm_cap=cfg.z_norm_cap, radius=cfg.radius)
            self.terms.append(FakeInstanceTerm(head, keys, queue, cfg, perturb, self.sizer, total_nimg))
            if cfg.fake_on_g:
                self.terms.append(GeneratorContrastiveTerm(head, keys, queue, cfg))

    def _key_encoder(self, kind: str, head: ProjectionHead) -> _KeyEncoder:
        """The momentum head of ``head`` with ``D_ema``; the released code's own optimizer of a head follows G's
        settings for the fake head and D's for the real one."""
        head_ema = self._add(f"{kind}_head_ema", momentum_copy(head), network=True)
        if self.cfg.head_optimizer == "own":
            self.own_optimizers.setdefault("G" if kind == "fake" else "D", []).append(head)
        if self.cfg.head_momentum == "forward":               # the head steps at each key computation instead
            return _KeyEncoder(self.D_ema, head_ema, head, self.cfg.momentum)
        self._momentum.append((head_ema, head))
        return _KeyEncoder(self.D_ema, head_ema)

    def _add(self, name: str, module: torch.nn.Module, trainable: bool = False, network: bool = False):
        self.modules[name] = module
        if network:
            self.networks[name] = module
        if trainable:
            self.trainable.append(module)
        return module

    def to(self, device) -> "ContrastiveMethod":
        for m in self.modules.values():
            m.to(device)
        return self

    @torch.no_grad()
    def before_iteration(self) -> None:
        """Momentum updates of ``D_ema`` and the key heads (MoCo), once per iteration before the phases."""
        for copy, source in self._momentum:
            momentum_update(copy, source, self.cfg.momentum)

    def on_tick(self) -> dict[str, float]:
        """At a tick boundary: the diversity-aware queue may change size. Returns what the tick logs."""
        queue = self.modules.get("fake_queue")
        if queue is None:
            return {}
        size = self.sizer.tick()
        if size is not None:
            queue.resize(size)
        return {"fake_queue_size": queue.size}

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {n: m.state_dict() for n, m in self.modules.items()}, "sizer": self.sizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any], load_module) -> None:
        for name, module in self.modules.items():
            load_module(module, state["modules"][name], name)
        self.sizer.load_state_dict(state["sizer"])
