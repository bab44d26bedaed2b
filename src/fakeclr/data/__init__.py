"""Data sets: image folders, zip archives and the embedded LFW faces, decoded once into uint8 tensors, or
decoded when drawn (large sets).

``open_dataset`` reads a source into an in-memory :class:`ImageDataset`, or opens it as a
:class:`~fakeclr.data.stream.StreamingDataset` (``stream=``); ``prepare_dataset`` writes a training archive (a
zip of same-size PNGs). The rules for conversion, native resolution, subsets and labels are in the
docstring of :mod:`fakeclr.data.dataset`.
"""

from fakeclr.data.dataset import (
    DEFAULT_SOURCE, IMAGE_EXTENSIONS, ImageDataset, check_channels, check_resolution, open_dataset, probe_dataset,
    subset_indices,
)
from fakeclr.data.embedded import load_lfw
from fakeclr.data.prepare import format_summary, prepare_dataset, write_archive

__all__ = [
    "DEFAULT_SOURCE", "IMAGE_EXTENSIONS", "ImageDataset", "check_channels", "check_resolution", "open_dataset",
    "probe_dataset", "subset_indices", "load_lfw", "format_summary", "prepare_dataset", "write_archive",
]
