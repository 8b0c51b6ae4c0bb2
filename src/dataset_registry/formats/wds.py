"""WebDataset shards: tars of samples, `<key>.<ext>` entries side by side.

The reference writer stamps the current time into every header; ours writes
fixed headers (mtime 0, uid/gid 0, no user names, mode 0444) in sample order,
so the same samples give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import BinaryIO


class ShardError(ValueError):
    """A sample key or extension a WebDataset reader would misread."""


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class ShardWriter:
    """Writes samples into one tar stream; `close()` ends it (two zero blocks)."""

    def __init__(self, f: BinaryIO) -> None:
        self._tar = tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT)  # noqa: SIM115
        self.count = 0

    def write(self, key: str, entries: Mapping[str, bytes]) -> int:
        """Append one sample; return the byte offset where its first header starts."""
        # WebDataset splits a name at its first dot after the last slash: a key with a dot
        # would be cut, and two samples with one key would merge.
        if not key or "." in key.rsplit("/", 1)[-1]:
            raise ShardError(f"sample key {key!r} must be non-empty and hold no '.'")
        start = self._tar.offset
        for ext, data in entries.items():
            if not ext or ext.startswith("."):
                raise ShardError(f"sample {key}: bad extension {ext!r}")
            self._tar.addfile(_info(f"{key}.{ext}", len(data)), io.BytesIO(data))
        self.count += 1
        return start

    def close(self) -> None:
        self._tar.close()


def cls_bytes(label: int) -> bytes:
    """The `.cls` entry: ASCII digits, no newline."""
    return str(int(label)).encode("ascii")


def sample_bytes(key: str, sizes: list[int]) -> int:
    """Bytes a sample takes in a shard: a 512-byte header per entry (plus GNU long-name
    blocks past 100 characters) and data padded to 512."""
    total = 0
    for size in sizes:
        total += 512 + -(-size // 512) * 512
        if len(key) + 5 > 100:
            total += 512 + -(-(len(key) + 6) // 512) * 512
    return total
