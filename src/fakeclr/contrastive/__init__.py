"""Contrastive learning for data-efficient GANs: InsGen's instance discrimination and FakeCLR.

- :func:`forgetting_weights`, :func:`iteration_weighted_info_nce`: supplementary Eq. (1), Algorithm 1.
- :class:`FeatureQueue`: keys with their enqueue iterations, FIFO, resizable, DDP-gathered.
- :class:`ProjectionHead`, :func:`momentum_update`: heads on D's last-block features, MoCo momentum copies.
- :class:`LatentPerturbation`: noise-related latent augmentation (FakeCLR) or a fixed radius (InsGen).
- :class:`QueueSizer`: the diversity-aware queue size.
- :class:`ContrastiveMethod`: the parts and loss terms of a method (``--method``).
"""

from .diversity import QueueSizer, batch_diversity, dataset_queue_size
from .heads import ProjectionHead, momentum_copy, momentum_update
from .infonce import FORGETTING_MODES, forgetting_weights, iteration_weighted_info_nce
from .method import ContrastiveMethod, FakeInstanceTerm, GeneratorContrastiveTerm, RealInstanceTerm
from .perturbation import PERTURBATIONS, LatentPerturbation
from .queue import FeatureQueue

__all__ = [
    "forgetting_weights", "iteration_weighted_info_nce", "FORGETTING_MODES", "FeatureQueue", "ProjectionHead",
    "momentum_copy", "momentum_update", "LatentPerturbation", "PERTURBATIONS", "QueueSizer", "batch_diversity",
    "dataset_queue_size", "ContrastiveMethod", "RealInstanceTerm", "FakeInstanceTerm", "GeneratorContrastiveTerm",
]
