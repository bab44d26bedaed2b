"""Data-efficient augmentations for GAN training and the controllers of their strength ``p``.

- :class:`AugmentPipe`: ADA's augmentation pipeline (Karras et al. 2020), presets in :data:`AUGPIPE_PRESETS`;
- :class:`DiffAugment`: Differentiable Augmentation (Zhao et al. 2020);
- :func:`pseudo_augment`: Adaptive Pseudo Augmentation (Jiang et al. 2021);
- :class:`AdaptiveP`, :class:`LinearP`, :class:`FixedP`: schedules of ``p`` (ADA feedback, ADA-linear, constant);
- :class:`Augmentation`: a run's augmentation (``--aug``), built by the builders ``config.AUGMENTATIONS`` names.
"""

from fakeclr.augment.ada import AUGPIPE_DEFAULTS, AUGPIPE_PRESETS, AugmentPipe
from fakeclr.augment.apa import pseudo_augment
from fakeclr.augment.augmentation import Augmentation
from fakeclr.augment.controller import AdaptiveP, FixedP, LinearP, PController
from fakeclr.augment.diffaugment import DIFFAUGMENT_OPS, DiffAugment

__all__ = [
    "AugmentPipe", "AUGPIPE_PRESETS", "AUGPIPE_DEFAULTS",
    "PController", "AdaptiveP", "LinearP", "FixedP",
    "DiffAugment", "DIFFAUGMENT_OPS",
    "pseudo_augment", "Augmentation",
]
