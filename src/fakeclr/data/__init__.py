"""Data sets: image folders, zip archives and the embedded LFW faces, decoded once into uint8 tensors, or
decoded when drawn (large sets).

``open_dataset`` reads a source (image files, or CIFAR / IDX data packed into arrays: :mod:`fakeclr.data.packed`)
into an in-memory :class:`ImageDataset`, or opens it as a
:class:`~fakeclr.data.stream.StreamingDataset` (``stream=``); ``prepare_dataset`` writes a training archive (a
zip of same-size PNGs). The rules are in the module docstrings: native resolution and subsets in
:mod:`fakeclr.data.opening`, which files a source holds in :mod:`fakeclr.data.sources`, conversion in
:mod:`fakeclr.data.decode`, labels in :mod:`fakeclr.data.labels`.
"""

from fakeclr.errors import check_resolution
from fakeclr.data.dataset import ImageDataset
from fakeclr.data.embedded import DEFAULT_SOURCE, load_lfw
from fakeclr.data.opening import SUBSET_RULES, check_channels, open_dataset, probe_dataset, subset_indices
from fakeclr.data.packed import SPLITS
from fakeclr.data.sources import IMAGE_EXTENSIONS
from fakeclr.data.prepare import format_summary, prepare_dataset, write_archive

__all__ = [
    "DEFAULT_SOURCE", "IMAGE_EXTENSIONS", "SPLITS", "SUBSET_RULES", "ImageDataset", "check_channels",
    "check_resolution", "open_dataset", "probe_dataset", "subset_indices", "load_lfw", "format_summary",
    "prepare_dataset", "write_archive",
]
