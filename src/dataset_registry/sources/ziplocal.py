"""The fast reader of a run of plain zip members: local headers checked in bulk against
the central directory, members hashed from large reads.

The strict reader (`zipindex._read_member`) reads each local header with four small
reads, parses its extra fields and compares it with the directory in Python, then
checks and hashes the data through a generator: ~8 µs a member, most of a worker's time
indexing a zip of small images. Most members are plain: a local header agreeing with
the directory entry (same name bytes, flags, method, CRC and sizes), a few extra fields,
the data right after it and the next member right after the data. This reader vouches
only for such runs: it reads the run's bytes in large windows, checks every header of a
window at once (numpy), and only hashes member by member. Anything it cannot prove
plain — a data descriptor, a ZIP64 or Unicode Path field, an odd extra block, a gap or an
overlap, a CRC or a deflate stream that does not check out — makes it give the whole run
up (`NotPlain`), and the strict reader reads it again and decides, in its own words. So
the two never disagree: this one returns exactly the members the strict one would, or
nothing.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import xxhash

from .zipcheck import DEFLATED, STORED
from .zipdirectory import NotPlain, check_extra_fields, u16, u32
from .zipindex import _SAME_FLAGS, ZipMember

if TYPE_CHECKING:
    from .zippool import _Run

WINDOW = 16 << 20  # bytes read at once: the headers and data of many small members
_LOCAL = 30  # bytes of a local header before its name
_SIGNATURE = 0x04034B50  # b"PK\3\4" as a little-endian word
_DESCRIPTOR = 1 << 3
_HASH_PIECE = 8 << 20  # a member larger than a window is hashed this much at a time
_FOLDER = ZipMember("", 0, 0, 0, STORED, "")  # (a folder's row in MemberColumns: unread)


class MemberColumns:
    """A run's members as columns, in file order (the fast reader makes no object per
    member): iterated, (entry number, member; None for a folder) of each, as the strict
    reader gives them."""

    def __init__(self, rows: list[int], folder: list[bool], paths: list[str],
                 offsets: list[int], sizes: list[int], packed: list[int], methods: list[int],
                 digests: list[str]) -> None:
        self.rows, self.folder, self.paths = rows, folder, paths
        self.offsets, self.sizes, self.packed, self.methods = offsets, sizes, packed, methods
        self.digests = digests

    @classmethod
    def of(cls, read: list[tuple[int, ZipMember | None]]) -> MemberColumns:
        """The strict reader's (entry number, member or None) pairs, as columns."""
        members = [m or _FOLDER for _, m in read]
        return cls([i for i, _ in read], [m is None for _, m in read],
                   *(list(column) for column in zip(*members, strict=True)) if members
                   else ([],) * 6)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[int, ZipMember | None]]:
        for row, folder, *member in zip(self.rows, self.folder, self.paths, self.offsets,
                                        self.sizes, self.packed, self.methods, self.digests,
                                        strict=True):
            yield row, None if folder else ZipMember(*member)


def read_plain_run(f: BinaryIO, run: _Run, file_size: int) -> MemberColumns:
    """Each member of `run`, in file order, as `zipindex` reads them, if every one is plain;
    NotPlain otherwise."""
    folder, flags, method, crc, packed, size, offset, follows = run.columns
    if (flags & _DESCRIPTOR).any():
        raise NotPlain("data descriptors")
    if (follows > file_size).any() or (offset + _LOCAL > follows).any():
        raise NotPlain("members past the end or overlapping")
    names = np.frombuffer(run.names, np.uint8)
    name_len = np.diff(run.name_starts)
    crcs, lengths, sizes, methods = (column.tolist() for column in (crc, packed, size, method))
    stored = method == STORED
    digests: list[str] = []
    data: list[np.ndarray] = []
    fd = f.fileno()
    i = 0
    while i < len(offset):
        start = int(offset[i])
        # the members whose every byte (header to the next member) lies in one window
        stop = max(i + 1, int(np.searchsorted(follows, start + WINDOW, "right")))
        end = int(follows[stop - 1])
        big = end - start > WINDOW  # (one member larger than a window: its data is
        # hashed in pieces, from the file, after its header is checked)
        window = os.pread(fd, min(end - start, WINDOW) if big else end - start, start)
        data_at = _check_headers(np.frombuffer(window, np.uint8), offset[i:stop] - start,
                                 names, run.name_starts[i:stop], name_len[i:stop],
                                 flags[i:stop], method[i:stop], crc[i:stop], packed[i:stop],
                                 size[i:stop], follows[i:stop] - start, big)
        data.append(data_at + start)
        view = memoryview(window)
        if not big and stored[i:stop].all() and (packed[i:stop] == size[i:stop]).all():
            # (each stored member: its bytes as they lie, checked and hashed; the loop of
            # `_hash` without a call a member, most of a worker's time at 1.5 KB a member)
            for at, length, check in zip(data_at.tolist(), lengths[i:stop], crcs[i:stop],
                                         strict=True):
                piece = view[at:at + length]
                if zlib.crc32(piece) != check:
                    raise NotPlain("CRC or size")
                digests.append(xxhash.xxh3_128_hexdigest(piece))
        else:
            for k, at in enumerate(data_at.tolist(), i):
                digests.append(_hash_big(fd, start + at, lengths[k], crcs[k], methods[k])
                               if big else
                               _hash(view[at:at + lengths[k]], sizes[k], crcs[k], methods[k]))
        i = stop
    rows = run.rows.tolist()
    return MemberColumns(rows, folder.tolist(), run.paths.split("\n")[:len(rows)],
                         np.concatenate(data).tolist(), sizes, lengths, methods, digests)


def _check_headers(window: np.ndarray, at: np.ndarray, names: np.ndarray,
                   name_starts: np.ndarray, name_len: np.ndarray, flags: np.ndarray,
                   method: np.ndarray, crc: np.ndarray, packed: np.ndarray, size: np.ndarray,
                   follows: np.ndarray, big: bool) -> np.ndarray:
    """Where each member's data starts in the window, if its local header is plain and
    agrees with its directory entry, and its data ends where the next thing starts."""
    if (at + _LOCAL > len(window)).any():
        raise NotPlain("header past the window")
    extra_len = u16(window, at + 28)
    data_at = at + _LOCAL + name_len + extra_len
    bad = (u32(window, at) != _SIGNATURE) | ((u16(window, at + 6) ^ flags) & _SAME_FLAGS != 0) | \
        (u16(window, at + 8) != method) | (u32(window, at + 14) != crc) | \
        (u32(window, at + 18) != packed) | (u32(window, at + 22) != size) | \
        (u16(window, at + 26) != name_len) | (data_at + packed != follows) | \
        (data_at > len(window))
    if bad.any():
        raise NotPlain("local header")
    # the names, byte for byte: each local name where its entry's is in `names`
    first, last = int(name_starts[0]), int(name_starts[-1] + name_len[-1])
    shift = np.repeat(at + _LOCAL - name_starts, name_len)
    spots = np.arange(first, last)
    if len(spots) != len(shift) or (window[spots + shift] != names[first:last]).any():
        raise NotPlain("local name")
    if extra_len.any():
        check_extra_fields(window, at + _LOCAL + name_len, extra_len)
    if not big and data_at[-1] + packed[-1] != len(window):
        raise NotPlain("window")
    return data_at


def _hash(data: memoryview, size: int, crc: int, method: int) -> str:
    """The member's xxh3, if its bytes inflate (or are) exactly its size with its CRC."""
    if method == DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            out: bytes | memoryview = inflater.decompress(data, size + 1)
        except zlib.error:
            raise NotPlain("deflate stream") from None
        if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
            raise NotPlain("deflate stream")
    elif method == STORED:
        out = data
    else:
        raise NotPlain("method")
    if len(out) != size or zlib.crc32(out) != crc:
        raise NotPlain("CRC or size")
    return xxhash.xxh3_128_hexdigest(out)


def _hash_big(fd: int, at: int, length: int, crc: int, method: int) -> str:
    """`_hash` of a stored member larger than a window, read a piece at a time."""
    if method != STORED:
        raise NotPlain("a big deflated member")
    hasher = xxhash.xxh3_128()
    check = done = 0
    while done < length:
        piece = os.pread(fd, min(_HASH_PIECE, length - done), at + done)
        if not piece:
            raise NotPlain("truncated")
        check = zlib.crc32(piece, check)
        hasher.update(piece)
        done += len(piece)
    if check != crc:
        raise NotPlain("CRC")
    return hasher.hexdigest()
