"""The index of a zip archive's members, read from its central directory (APPNOTE.TXT), kept as arrays."""

from __future__ import annotations

import bisect
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["ZipIndex", "LOCAL_HEADER"]


class ZipIndex:
    """The members of a zip archive that a data set reads, as arrays: sorted ``names`` and, row for row, the
    local-header offset, compressed and uncompressed size, CRC-32, compression method and encryption flag.

    About 40 bytes a member besides its name, where :class:`zipfile.ZipFile` keeps a ``ZipInfo`` object and a
    dictionary entry (about 600 bytes: 31 MiB for 50,000 members, in the training process and in every
    DataLoader worker). :meth:`read` builds it from the central directory itself (APPNOTE.TXT 4.3.12-4.3.16,
    with Zip64), so that no ``ZipInfo`` objects exist even while the archive opens; an archive it does not
    understand (split, prefixed, malformed) is indexed through :mod:`zipfile` instead. Members are read at their
    offsets by :meth:`fakeclr.data.sources.ZipSource.read`.
    """

    TYPES = {"offset": np.int64, "csize": np.int64, "size": np.int64, "crc": np.uint32, "method": np.int16,
             "encrypted": bool}
    FIELDS = tuple(TYPES)

    def __init__(self, names: list[str], columns: dict[str, np.ndarray]):
        order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [names[k] for k in order]
        for field in self.FIELDS:
            setattr(self, field, columns[field][order])

    @classmethod
    def read(cls, path: Path) -> "ZipIndex":
        """The index of the archive at ``path`` (directories left out); ``zipfile.BadZipFile`` if unreadable."""
        with open(path, "rb") as f:
            try:
                return cls._parse(f)
            except (zipfile.BadZipFile, struct.error, ValueError):
                pass
        with zipfile.ZipFile(path) as z:                           # the general (and strict) reader
            infos = [i for i in z.infolist() if not i.is_dir()]
            columns = {"offset": [i.header_offset for i in infos], "csize": [i.compress_size for i in infos],
                       "size": [i.file_size for i in infos], "crc": [i.CRC for i in infos],
                       "method": [i.compress_type for i in infos], "encrypted": [i.flag_bits & 1 for i in infos]}
            return cls([i.filename for i in infos], cls._arrays(columns))

    @classmethod
    def empty(cls) -> "ZipIndex":
        """The index of an archive without members (one that vanished)."""
        return cls([], cls._arrays({k: [] for k in cls.FIELDS}))

    @staticmethod
    def _arrays(columns) -> dict[str, np.ndarray]:
        return {k: np.asarray(columns[k], dtype=t) for k, t in ZipIndex.TYPES.items()}

    @classmethod
    def _parse(cls, f) -> "ZipIndex":
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        tail_at = max(0, file_size - (1 << 16) - 22)
        f.seek(tail_at)
        tail = f.read()
        at = len(tail)
        while True:       # the end of central directory record: the last one whose comment ends the file
            at = tail.rfind(b"PK\x05\x06", 0, at)
            if at < 0:
                raise zipfile.BadZipFile("no end of central directory")
            if len(tail) - at >= 22 and at + 22 + struct.unpack_from("<H", tail, at + 20)[0] == len(tail):
                break
        disk, cd_disk, _, count, cd_size, cd_offset = struct.unpack_from("<4H2L", tail, at + 4)
        if 0xFFFF in (disk, cd_disk, count) or 0xFFFFFFFF in (cd_size, cd_offset):
            loc = tail[at - 20:at] if at >= 20 else b""             # the Zip64 locator just before it
            if loc[:4] != b"PK\x06\x07":
                raise zipfile.BadZipFile("no Zip64 locator")
            (eocd64_at,) = struct.unpack("<Q", loc[8:16])
            f.seek(eocd64_at)
            rec = f.read(56)
            if rec[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("no Zip64 end record")
            disk, cd_disk, _, count, cd_size, cd_offset = struct.unpack("<2L4Q", rec[16:56])
        if disk or cd_disk or cd_offset + cd_size > file_size:
            raise zipfile.BadZipFile("split or prefixed archive")
        f.seek(cd_offset)
        cd = f.read(cd_size)
        names: list[str] = []
        cols = {k: np.empty(count, dtype=t) for k, t in cls.TYPES.items()}
        pos, n = 0, 0
        for _ in range(count):
            if cd[pos:pos + 4] != b"PK\x01\x02":
                raise zipfile.BadZipFile("bad central directory entry")
            (flags, method, crc, csize, size, name_len, extra_len, comment_len,
             offset) = _CENTRAL_HEADER.unpack_from(cd, pos)
            raw = cd[pos + 46:pos + 46 + name_len]
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
            extra = cd[pos + 46 + name_len:pos + 46 + name_len + extra_len]
            pos += 46 + name_len + extra_len + comment_len
            if 0xFFFFFFFF in (size, csize, offset):
                size, csize, offset = _zip64_extra(extra, size, csize, offset)
            if name.endswith("/"):
                continue
            names.append(name)
            for k, v in (("offset", offset), ("csize", csize), ("size", size), ("crc", crc), ("method", method),
                         ("encrypted", flags & 1)):
                cols[k][n] = v
            n += 1
        return cls(names, {k: v[:n] for k, v in cols.items()})

    def row(self, name: str) -> int | None:
        k = bisect.bisect_left(self.names, name)
        return k if k < len(self.names) and self.names[k] == name else None


# A central directory entry's fields from its flags on (APPNOTE.TXT 4.3.12): flags, method, (time, date), CRC-32,
# sizes, name/extra/comment lengths, (disk, attributes), local header offset.
_CENTRAL_HEADER = struct.Struct("<8x2H4x3L3H8xL")


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of the Zip64 extra field (id 1) for those of ``size, csize, offset`` that are 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            size = next(values) if size == 0xFFFFFFFF else size
            csize = next(values) if csize == 0xFFFFFFFF else csize
            offset = next(values) if offset == 0xFFFFFFFF else offset
            return size, csize, offset
        pos += 4 + length
    raise zipfile.BadZipFile("missing Zip64 extra field")


LOCAL_HEADER = struct.Struct("<4s5H3L2H")      # the 30 bytes before a member's name (APPNOTE.TXT 4.3.7)
