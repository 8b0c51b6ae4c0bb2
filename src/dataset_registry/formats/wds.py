"""WebDataset shards: tars of samples, `<key>.<ext>` entries side by side.

The reference writer stamps the current time into every header; ours writes
fixed headers (mtime 0, uid/gid 0, no user names, mode 0444) in sample order,
so the same samples give the same bytes. Headers are the bytes `tarfile`
writes in GNU format (checked in the tests), made from one template: `tarfile`
itself costs ~40 us an entry, more than copying a 100 KiB image.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping
from typing import Protocol, TypeVar

import xxhash

BLOCK = tarfile.BLOCKSIZE
T = TypeVar("T")  # an int, or an array of them
_NAME, _SIZE, _CHKSUM = slice(0, 100), slice(124, 136), slice(148, 156)


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class ShardError(ValueError):
    """A sample key or extension a WebDataset reader would misread."""


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tarfile_header(name: str, size: int) -> bytes:
    """The header `tarfile` writes for an entry (with GNU long-name blocks if needed)."""
    return _info(name, size).tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


_TEMPLATE = tarfile_header("x", 0)
# the header's fixed fields, between its name, size and checksum fields
_MODES, _TIMES, _REST = _TEMPLATE[100:124], _TEMPLATE[136:148], _TEMPLATE[156:]
# tar's checksum is the sum of the header's bytes, its own 8 counted as spaces: that of
# the fixed fields, plus the name's and the size's (summing 512 bytes an entry cost more)
_FIXED_SUM = sum(_MODES) + sum(_TIMES) + sum(_REST) + 8 * ord(" ")


def entry_header(name: str, size: int) -> bytes:
    """`tarfile_header(name, size)`, fast for names that fit the 100-byte field."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) >= 100 or size >= 8 ** 11:
        return tarfile_header(name, size)
    size_field = b"%011o\0" % size
    checksum = b"%06o\0 " % (_FIXED_SUM + sum(encoded) + sum(size_field))
    return b"".join((encoded.ljust(100, b"\0"), _MODES, size_field, _TIMES, checksum, _REST))


class ShardWriter:
    """Writes samples into one tar stream, hashing what it writes; `close()` ends it
    as `tarfile` does (two zero blocks, padded to a whole 10240-byte record). `offset`:
    where `f` starts in the shard, for a writer of its later samples (offsets and the
    closing padding are the shard's; the hash is of what this writer wrote, and not kept
    where `hashed` is off: a writer of one region of a shard, which is hashed whole)."""

    def __init__(self, f: Writable, offset: int = 0, *, hashed: bool = True) -> None:
        self._f = f
        self.offset = offset
        self.count = 0
        self._digest = xxhash.xxh3_128() if hashed else None

    def _emit(self, data: bytes) -> None:
        self._f.write(data)
        if self._digest is not None:
            self._digest.update(data)
        self.offset += len(data)

    def write(self, key: str, entries: Mapping[str, bytes]) -> int:
        """Append one sample; return the byte offset where its first header starts."""
        # WebDataset splits a name at its first dot after the last slash: a key with a dot
        # would be cut, and two samples with one key would merge.
        if not key or "." in key.rsplit("/", 1)[-1]:
            raise ShardError(f"sample key {key!r} must be non-empty and hold no '.'")
        start = self.offset
        for ext, data in entries.items():
            if not ext or ext.startswith("."):
                raise ShardError(f"sample {key}: bad extension {ext!r}")
            self._emit(entry_header(f"{key}.{ext}", len(data)))
            self._emit(data)
            if len(data) % BLOCK:
                self._emit(_ZEROS[:BLOCK - len(data) % BLOCK])
        self.count += 1
        return start

    def close(self) -> tuple[int, str]:
        """End the archive; return its size and xxh3-128 ("" where not `hashed`)."""
        self._emit(b"\0" * (closed_size(self.offset) - self.offset))
        return self.offset, "" if self._digest is None else self._digest.hexdigest()


_ZEROS = bytes(BLOCK)


def closed_size(size: int) -> int:
    """A tar's bytes once ended after `size` bytes of entries: two zero blocks, padded
    to a whole 10240-byte record, as `tarfile` ends one."""
    end = size + 2 * BLOCK
    return end + -end % tarfile.RECORDSIZE


def cls_bytes(label: int) -> bytes:
    """The `.cls` entry: ASCII digits, no newline."""
    return str(int(label)).encode("ascii")


def sample_bytes(key: str, sizes: Mapping[str, int]) -> int:
    """Bytes a sample (extension -> entry size) takes in a shard: a header per entry
    (plus GNU long-name blocks for a name past 100 bytes) and data padded to 512."""
    total = 0
    for ext, size in sizes.items():
        total += entry_bytes(size)
        name = len(f"{key}.{ext}".encode("utf-8", "surrogateescape"))
        if name > 100:
            total += entry_bytes(name + 1)
    return total


def entry_bytes(size: T) -> T:
    """Bytes an entry of `size` data bytes (an int, or a numpy array of them) takes in a
    tar under a short name: its header block and its data padded to whole blocks."""
    return BLOCK + -(-size // BLOCK) * BLOCK
