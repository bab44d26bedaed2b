"""The augmentation of a run: what is applied to D's inputs, and what drives its probability p; the builders that
:data:`fakeclr.config.AUGMENTATIONS` registers.

==============  ======================================  ==========================================
``--aug``       applied to every image D sees            p
==============  ======================================  ==========================================
``ada``         ADA pipeline (``--augpipe``, bgc)        adaptive: sign-of-D(real) heuristic
``ada-linear``  ADA pipeline                             ``target * kimg / total_kimg`` (InsGen/FakeCLR)
``fixed``       ADA pipeline                             constant ``--p``
``diffaugment`` DiffAugment policy (always on)           --
``apa``         nothing; reals replaced by fakes w.p. p  adaptive, like ``ada`` (APA, Jiang et al. 2021)
``none``        nothing                                  --
==============  ======================================  ==========================================
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..config import AUGMENTATIONS, AugmentConfig
from .ada import AugmentPipe
from .apa import pseudo_augment
from .controller import AdaptiveP, FixedP, LinearP
from .diffaugment import DiffAugment


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Augmentation:
    """The augmentation part of a run.

    Attributes:
        pipe: callable ``[N, C, H, W] -> [N, C, H, W]`` applied to real and fake images before D.
        pseudo_real: APA: the real images of the D phases are replaced by fakes with probability ``p``.
    """

    def __init__(self, pipe: torch.nn.Module | None, controller, pseudo_real: bool = False):
        self.module = pipe
        self.controller = controller
        self.pseudo_real = pseudo_real
        self._p = float(controller.p) if controller is not None else 0.0
        self._apply_p()

    @classmethod
    def from_config(cls, cfg: AugmentConfig, total_kimg: float) -> "Augmentation":
        """The augmentation ``cfg.kind`` names, built by its registered builder (:data:`fakeclr.config.AUGMENTATIONS`)."""
        return AUGMENTATIONS.build(cfg.kind, cfg, total_kimg)

    def to(self, device) -> "Augmentation":
        if self.module is not None:
            self.module.to(device)
        return self

    # ------------------------------------------------------------------ used by the loop
    @property
    def pipe(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.module if self.module is not None else _identity

    @property
    def p(self) -> float:
        return self._p

    def observe(self, real_logits: torch.Tensor) -> None:
        """Feed D(real) logits ``[N, 1]`` to an adaptive controller."""
        if self.controller is not None and hasattr(self.controller, "observe"):
            self.controller.observe(real_logits)

    def update(self, iteration: int, cur_nimg: int, batch: int) -> None:
        """After an iteration: let the controller move p (every ``interval`` iterations)."""
        if self.controller is None:
            return
        new_p = self.controller.update(iteration, cur_nimg, batch)
        if new_p is not None:
            self._p = float(new_p)
            self._apply_p()

    def pseudo_augment(self, real_img: torch.Tensor, fake_img: torch.Tensor) -> torch.Tensor:
        """APA: each real image replaced by the detached fake at the same index with probability p."""
        return pseudo_augment(real_img, fake_img, self._p)

    def _apply_p(self) -> None:
        if self.module is not None and hasattr(self.module, "p"):
            self.module.p.fill_(self._p)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"p": self._p, "controller": self.controller.state_dict() if self.controller is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])
        self._p = float(state["p"])
        self._apply_p()


# ---------------------------------------------------------------------------------------------------- builders
# One per registered kind: ``(AugmentConfig, total_kimg) -> Augmentation``.
def adaptive_ada(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    """ADA (Karras et al. 2020): the pipeline with p steered by the sign of D(real)."""
    return Augmentation(AugmentPipe.from_preset(cfg.pipe), AdaptiveP(target=cfg.target, interval=cfg.interval,
                                                                     speed_kimg=cfg.speed_kimg, p_init=cfg.p))


def linear_ada(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    """ADA-linear (InsGen, FakeCLR): the pipeline with p rising linearly to ``target`` over the run."""
    return Augmentation(AugmentPipe.from_preset(cfg.pipe), LinearP(target=cfg.target, total_kimg=total_kimg,
                                                                   interval=cfg.interval))


def fixed_ada(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    """The pipeline with a constant p."""
    return Augmentation(AugmentPipe.from_preset(cfg.pipe), FixedP(cfg.p))


def diffaugment(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    """DiffAugment (Zhao et al. 2020): its policy on every image D sees."""
    return Augmentation(DiffAugment(cfg.diffaugment_policy), None)


def apa(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    """APA (Jiang et al. 2021): reals replaced by fakes with an adaptive p."""
    return Augmentation(None, AdaptiveP(target=cfg.target, interval=cfg.interval, speed_kimg=cfg.speed_kimg,
                                        p_init=cfg.p), pseudo_real=True)


def no_augmentation(cfg: AugmentConfig, total_kimg: float) -> Augmentation:
    return Augmentation(None, None)
