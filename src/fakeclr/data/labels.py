"""Data set labels: a class index or a vector per image.

Labels come from ``dataset.json`` at the root of the folder or archive, in StyleGAN2-ADA's format:
``{"labels": [["00000/img00000000.png", 6], ...]}`` (``"labels": null`` means unlabelled). Integer labels are
class indices, one-hot encoded over ``max + 1`` classes (the maximum over all image files found); lists of numbers
are used as float vectors. Every image file must have a label.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import torch

from fakeclr.errors import UserError

__all__ = ["LABELS_FILE", "parse_labels", "label_tensor"]

LABELS_FILE = "dataset.json"


def parse_labels(where: str, content: bytes, names: Sequence[str]) -> np.ndarray | None:
    """Labels for ``names`` from dataset.json: int64 ``[N]`` (classes), float32 ``[N, D]`` (vectors) or None."""
    def bad(why: str) -> UserError:
        return UserError(f"Label file {where} is malformed ({why}); expected "
                         '{"labels": [["relative/path.png", class_or_vector], ...]}.')

    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not valid JSON: {e}") from e
    if not isinstance(doc, dict) or "labels" not in doc:
        raise bad('no top-level "labels" key')
    entries = doc["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise bad('"labels" is not a list')
    table: dict[str, object] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise bad(f"entry {str(entry)[:60]} is not a [path, label] pair")
        key = entry[0].replace("\\", "/")
        table[key[2:] if key.startswith("./") else key] = entry[1]
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(f"Label file {where} has no label for {len(missing)} of the {len(names)} images "
                        f"(first: '{missing[0]}'); add the missing entries or delete the label file.")
    values = [table[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if min(values) < 0:
            raise bad("a class label is negative")
        return np.asarray(values, dtype=np.int64)
    def is_vector(v: object) -> bool:
        return isinstance(v, list) and len(v) > 0 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if all(is_vector(v) for v in values) and len({len(v) for v in values}) == 1:
        return np.asarray(values, dtype=np.float32)
    raise bad("labels must all be class indices (ints >= 0) or all number lists of one length")


def label_tensor(raw: np.ndarray | None, keep: Sequence[int], num_classes: int) -> torch.Tensor:
    """float32 ``[len(keep), label_dim]``: one-hot rows for class labels, the vectors as given, or ``[K, 0]``."""
    if raw is None:
        return torch.zeros(len(keep), 0, dtype=torch.float32)
    if raw.ndim == 1:
        out = torch.zeros(len(keep), num_classes, dtype=torch.float32)
        out[torch.arange(len(keep)), torch.from_numpy(raw[list(keep)])] = 1.0
        return out
    return torch.from_numpy(raw[list(keep)].copy())
