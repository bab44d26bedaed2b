"""What a loss term sees: the phase it belongs to, and the :class:`PhaseContext` of one phase on one process.

The training loop runs four phases per iteration (``Gmain``, ``Greg``, ``Dmain``, ``Dreg``; StyleGAN2 Sec. 3.1
"lazy regularisation"). A term is a small object with a ``phase`` and a ``__call__(ctx) -> scalar loss``
(:class:`Term`); the StyleGAN2 terms live in :mod:`fakeclr.train.loss`, the contrastive ones in
:mod:`fakeclr.contrastive`. Terms of one phase share a :class:`PhaseContext`, which memoises the forward passes (a
fake batch, D on the real batch with its last-block features) so that an added term reuses them instead of
running G or D again. This module sits below both packages, so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

__all__ = ["PHASES", "DOutput", "PhaseContext", "Term", "Method"]

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


@dataclass
class DOutput:
    """D on a batch: ``logits [N, 1]`` and last-block ``features [N, C4, 4, 4]``."""
    logits: torch.Tensor
    features: torch.Tensor


@dataclass
class PhaseContext:
    """Inputs of one phase on one process, with memoised forward passes shared by the phase's terms.

    Attributes:
        real_img: ``[N, C, H, W]`` float in [-1, 1] (already pseudo-augmented by APA where that is on).
        real_c: ``[N, c_dim]``.
        gen_z: ``[N, z_dim]``, ``gen_c: [N, c_dim]``: this phase's latents.
        gain: multiplier of the phase's loss (the lazy-regularisation interval for the reg phases).
        iteration: training iteration (0-based) at which the phase runs; cur_nimg: images shown so far.
    """
    G: torch.nn.Module
    D: torch.nn.Module
    augment: Callable[[torch.Tensor], torch.Tensor]
    real_img: torch.Tensor
    real_c: torch.Tensor
    gen_z: torch.Tensor
    gen_c: torch.Tensor
    style_mixing_prob: float
    gain: float = 1.0
    iteration: int = 0
    cur_nimg: int = 0
    stats: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    real_logit_observers: list[Callable[[torch.Tensor], None]] = field(default_factory=list)
    fake_mixing: tuple[torch.Tensor, torch.Tensor] | None = None
    last_mixing: tuple[torch.Tensor, torch.Tensor] | None = None
    _cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ reporting
    def report(self, name: str, value: torch.Tensor) -> None:
        """Record a statistic (any shape; its mean over the tick is logged)."""
        self.stats.setdefault(name, []).append(value.detach().float().flatten())

    # ------------------------------------------------------------------ forward passes
    def run_G(self, z: torch.Tensor, c: torch.Tensor,
              mixing: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``G(z, c)`` as training runs it: ``(img [N,C,H,W], latents)`` (StyleGAN2: ``ws [N, L, w_dim]``, with
        style mixing; see the generator's ``sample``). ``mixing`` repeats a style-mixing choice instead of drawing
        one; the choice made is left in ``last_mixing``."""
        img, latents, self.last_mixing = self.G.sample(z, c, self.style_mixing_prob, mixing)
        return img, latents

    def fake(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The phase's fake batch ``G(gen_z, gen_c)``, computed once: ``(img, ws)``; its style-mixing choice is
        kept in ``fake_mixing``."""
        if "fake" not in self._cache:
            self._cache["fake"] = self.run_G(self.gen_z, self.gen_c)
            self.fake_mixing = self.last_mixing
        return self._cache["fake"]

    def computed_fake(self) -> torch.Tensor | None:
        """The fake images ``[N, C, H, W]`` if a term of the phase made them, else ``None`` (nothing is run)."""
        return self._cache["fake"][0] if "fake" in self._cache else None

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> DOutput:
        """D on the augmented images."""
        logits, features = self.D(self.augment(img), c, return_features=True)
        return DOutput(logits, features)

    def d_fake(self, detach: bool) -> DOutput:
        """D on the phase's fake batch (G detached in D phases), computed once."""
        key = ("d_fake", detach)
        if key not in self._cache:
            img = self.fake()[0]
            self._cache[key] = self.run_D(img.detach() if detach else img, self.gen_c)
        return self._cache[key]

    def d_fake_and_real(self) -> tuple[DOutput, DOutput]:
        """D on the fake batch (G detached) and the real batch in one forward pass, ``(fake, real)``, served
        afterwards as :meth:`d_fake` ``(detach=True)`` and :meth:`d_real` (BigGAN scores them together)."""
        if ("d_fake", True) not in self._cache or ("d_real", False) not in self._cache:
            n = self.gen_z.shape[0]
            img = torch.cat([self.fake()[0].detach(), self.real_img.detach()])
            out = self.run_D(img, torch.cat([self.gen_c, self.real_c]))
            fake = DOutput(out.logits[:n], out.features[:n])
            real = DOutput(out.logits[n:], out.features[n:])
            self._note_real(real)
            self._cache[("d_fake", True)] = fake
            self._cache[("d_real", False)] = (self.real_img.detach(), real)
        return self._cache[("d_fake", True)], self._cache[("d_real", False)][1]

    def _note_real(self, out: DOutput) -> None:
        self.report("Loss/scores/real", out.logits)
        self.report("Loss/signs/real", out.logits.sign())
        for observe in self.real_logit_observers:
            observe(out.logits.detach())

    def d_real(self, requires_grad: bool = False) -> tuple[torch.Tensor, DOutput]:
        """D on the real batch, computed once: ``(input image, output)``; the input needs grad for R1."""
        key = ("d_real", requires_grad)
        if key not in self._cache:
            img = self.real_img.detach().requires_grad_(requires_grad)
            out = self.run_D(img, self.real_c)
            self._note_real(out)
            self._cache[key] = (img, out)
        return self._cache[key]


class Term(Protocol):
    phase: str

    def __call__(self, ctx: PhaseContext) -> torch.Tensor:
        """The term's contribution to the phase's loss: a scalar (already averaged over the batch)."""


class Method(Protocol):
    """What the training loop needs of a method (``--method``, built by the builder :data:`fakeclr.config.METHODS`
    names; :class:`fakeclr.contrastive.ContrastiveMethod` for the paper's family).

    Attributes:
        terms: its loss terms (each names its phase).
        modules: ``{name: module}`` it owns, all checkpointed in the training state (momentum copies, heads, queues).
        networks: the part of ``modules`` that goes into network files.
        trainable: modules trained in the D phases, by D's optimizer unless ``own_optimizers`` lists them.
        own_optimizers: ``{"G": [...], "D": [...]}``: modules with an optimizer of their own with G's or D's settings.
    """
    terms: list[Term]
    modules: dict[str, torch.nn.Module]
    networks: dict[str, torch.nn.Module]
    trainable: list[torch.nn.Module]
    own_optimizers: dict[str, list[torch.nn.Module]]

    def to(self, device) -> "Method": ...

    def before_iteration(self) -> None:
        """Once per iteration, before the phases (momentum updates)."""

    def on_tick(self) -> dict[str, float]:
        """At a tick: any change of its own (a queue's size); returns values to log."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], load_module: Callable) -> None:
        """Restore ``state``; ``load_module(module, state_dict, name)`` loads one module with checks."""
