"""Write a training archive: a zip of same-size PNGs (plus dataset.json when there are labels).

The archive layout is StyleGAN2-ADA's: image ``i`` is stored as ``f"{i // 1000:05d}/img{i:08d}.png"`` in the
source's name order, so the archive opens to exactly the tensors the source opened to (PNG is lossless), and
``dataset.json`` maps those names to class indices or float vectors; it also records the data set's ``origin``
when there is one (a CIFAR or IDX split, a subset's rule, count, seed and source indices; see
:mod:`fakeclr.data.opening`), with ``"labels": null`` if the images have none. Entries are stored uncompressed (PNG is
already compressed) with a fixed timestamp, so the same input gives a byte-identical archive.

The archive is written to a temporary file in the destination folder and moved into place with ``os.replace``:
an interrupted or failed run leaves no file at ``dest`` (and an existing ``dest`` file is replaced only on
success).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from fakeclr.errors import UserError
from fakeclr.data.dataset import ImageDataset
from fakeclr.data.opening import open_dataset

__all__ = ["prepare_dataset", "write_archive", "format_summary", "archive_name"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def archive_name(index: int) -> str:
    """The archive path of image ``index``: ``"00000/img00000000.png"`` style."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png_bytes(image: np.ndarray) -> bytes:
    """uint8 ``[C, R, R]`` (C = 1 or 3) encoded as PNG ('L' or 'RGB')."""
    pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _labels_json(dataset: ImageDataset) -> bytes | None:
    """dataset.json content for the archive names, or None without labels and origin."""
    origin = getattr(dataset, "origin", None)
    if not dataset.has_labels and origin is None:
        return None
    doc: dict = {"labels": None}
    if dataset.has_labels:
        labels = dataset.labels.numpy()
        if dataset.label_kind == "class":
            values = [int(i) for i in labels.argmax(axis=1)]
        else:
            values = [[float(x) for x in row] for row in labels]
        doc["labels"] = [[archive_name(i), v] for i, v in enumerate(values)]
    if origin is not None:
        doc["origin"] = origin
    return json.dumps(doc).encode("utf-8")


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def write_archive(dataset: ImageDataset, dest: str | os.PathLike) -> int:
    """Write the raw (unmirrored) images and labels of ``dataset`` to the zip ``dest`` atomically; returns bytes."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"Could not write {dest} ({e.strerror or e}); choose a folder you can write.") from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                images = dataset.images          # a tensor, or decoded one by one for a streamed set
                for i in range(dataset.num_raw):
                    _add(zf, archive_name(i), _png_bytes(images[i].numpy()))
                labels = _labels_json(dataset)
                if labels is not None:
                    _add(zf, "dataset.json", labels)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UserError(f"Could not write {dest} ({e.strerror or e}); free some disk space or choose another path. "
                        "Nothing was written; an earlier file of that name is intact.") from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest.stat().st_size


def _check_dest(dest: Path, source, force: bool) -> None:
    if source is not None and Path(os.path.expanduser(os.fspath(source))).resolve() == dest.resolve():
        raise UserError(f"The destination {dest} is the source itself; write the archive to another path (the "
                        "source would be replaced by its converted images).")
    if dest.exists() and not dest.is_dir() and not force:
        raise UserError(f"Destination '{dest}' exists; pass --force to replace it, or choose another path.")
    if dest.is_dir():
        raise UserError(f"Destination '{dest}' is a folder; give a .zip file path such as '{dest / 'data.zip'}'.")
    if dest.suffix.lower() != ".zip":
        raise UserError(f"Destination '{dest}' must end in .zip, e.g. '{dest.with_suffix('.zip')}'.")
    if dest.parent.exists() and not dest.parent.is_dir():
        raise UserError(f"Destination folder '{dest.parent}' is a file; choose another path for the archive.")


def prepare_dataset(source: str | os.PathLike | None, dest: str | os.PathLike, resolution: int | None,
                    channels: int | None = 3, skip_bad: bool = False, subset: int | float | None = None,
                    subset_seed: int = 0, use_labels: bool = True, force: bool = False, split: str | None = None,
                    pad: bool = False, subset_rule: str = "stylegan2-ada") -> dict:
    """Convert ``source`` (as :func:`open_dataset` reads it) into a training archive at ``dest``.

    Every image is converted, centre-cropped and resized to ``resolution`` (None = native) with ``channels``
    channels (None = inferred) exactly as :func:`open_dataset` does (``split``, ``pad`` and ``subset_rule`` as
    there), then stored as PNG. Nothing is written when anything fails. Returns a summary dict: ``source``,
    ``dest``, ``count``, ``resolution``, ``channels``, ``labels`` (bool), ``label_dim``, ``skipped`` (names of
    unreadable images skipped), ``num_skipped``, ``bytes``, ``origin`` (the data set's, or None).
    An existing ``dest`` is replaced only with ``force``; ``dest`` may not be ``source``.
    """
    dest = Path(os.path.expanduser(os.fspath(dest)))
    _check_dest(dest, source, force)
    dataset = open_dataset(source, resolution=resolution, channels=channels, mirror=False, subset=subset,
                           subset_seed=subset_seed, skip_bad=skip_bad, use_labels=use_labels,
                           split=split, pad=pad, subset_rule=subset_rule)
    size = write_archive(dataset, dest)
    return {
        "source": dataset.source, "dest": str(dest), "count": dataset.num_raw,
        "resolution": dataset.resolution, "channels": dataset.num_channels,
        "labels": dataset.has_labels, "label_dim": dataset.label_dim,
        "skipped": list(dataset.skipped), "num_skipped": len(dataset.skipped), "bytes": size,
        "origin": dataset.origin,
    }


def format_summary(summary: dict) -> str:
    """A short human-readable report of a :func:`prepare_dataset` summary (one or two lines)."""
    r = summary["resolution"]
    labels = f"{summary['label_dim']}-dim labels" if summary["labels"] else "no labels"
    line = (f"Wrote {summary['count']} images ({r}x{r}, {summary['channels']} channel"
            f"{'s' if summary['channels'] != 1 else ''}, {labels}) from {summary['source']} to {summary['dest']} "
            f"({summary['bytes'] / 1e6:.1f} MB).")
    origin = summary.get("origin") or {}
    if "format" in origin or "subset" in origin:
        what = f"{origin['format'].upper()} {origin['split']} split" if "format" in origin else "the source"
        sub = origin.get("subset")
        if sub:
            what += (f", subset of {sub['count']} of {origin['images']} images by the {sub['rule']} rule with seed "
                     f"{sub['seed']}")
        line += f"\nImages: {what} (recorded in dataset.json)."
    if summary["num_skipped"]:
        shown = ", ".join(summary["skipped"][:10]) + (", ..." if summary["num_skipped"] > 10 else "")
        line += f"\nSkipped {summary['num_skipped']} unreadable image(s): {shown}"
    return line
