"""Read zips in place: a member index (path, data offset, sizes, method, xxh3).

The twin of tarindex. Nothing is extracted: a member is later read with one `pread` of
its `packed` bytes at `offset`, and `read_zip_member` inflates them. A zip is indexed
only if every member it yields is what Info-ZIP `unzip` extracts, byte for byte, under
the same path, and if every byte of it is accounted for (local headers, data, data
descriptors, central directory, end records, nothing else: hidden bytes are where
streaming readers and `unzip` start to disagree). Everything else is refused, naming
the zip and the member: encryption, methods other than stored and deflate, names that
could escape or that `unzip` rewrites, links and special files, two members on one
path, headers that disagree, overlapping members, deflate ratios past MAX_RATIO, CRC
errors, multi-disk zips and zips with bytes in front or behind.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

import xxhash

from ..errors import SourceError
from .folders import EMPTY_FOLDER
from .tarindex import Opener
from .zipcheck import (
    DEFLATED,
    ENCRYPTED,
    FULL16,
    FULL32,
    STORED,
    UNICODE_PATH_EXTRA,
    UTF8_NAME,
    Names,
    check_entry,
    check_name,
    extra_fields,
    method_name,
    shown,
    zip64_values,
)

if TYPE_CHECKING:
    from .zipdirectory import Directory

_CHUNK = 1 << 20
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_LOCATOR = struct.Struct("<4sIQI")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCAL_SIG, _CENTRAL_SIG, _DESCRIPTOR_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x07\x08"
_END_SIG, _LOCATOR_SIG, _END64_SIG = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_DESCRIPTOR = 1 << 3  # CRC and sizes follow the data
_SAME_FLAGS = ENCRYPTED | _DESCRIPTOR | UTF8_NAME  # must agree between local and central
_LARGEST_FILE = (1 << 63) - 1  # bytes: a ZIP64 value past it is damage (and no int64)


class ZipMember(NamedTuple):  # (a tuple: ~3 times cheaper to make than a frozen dataclass)
    path: str  # as unzip writes it: '/'-separated, no './', no trailing '/'
    offset: int  # absolute offset of the member's (compressed) data in the zip file
    size: int  # uncompressed size
    packed: int  # bytes of data at `offset`: == size when stored
    method: int  # STORED or DEFLATED
    xxh3: str  # xxh3_128 hexdigest of the uncompressed bytes


class _MemberLike(Protocol):
    size: int
    packed: int
    method: int


def is_zip(head: bytes) -> bool:
    """True for the first bytes of a zip (a first member's header, or an empty zip)."""
    return head[:4] in (_LOCAL_SIG, _END_SIG)


def read_zip_member(data: bytes, member: _MemberLike, where: str) -> bytes:
    """The uncompressed bytes of a member from its `packed` bytes; inflating stops one
    byte past `size`, so a member changed since it was indexed cannot inflate further."""
    if member.method == STORED:
        out = bytes(data)
    elif member.method == DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(data, member.size + 1)
        except zlib.error as exc:
            raise SourceError(f"{where}: deflated data is corrupt ({exc}): did the zip change "
                              "since it was indexed?") from None
        if len(out) <= member.size and (not inflater.eof or inflater.unused_data):
            raise SourceError(f"{where}: its deflate stream does not end where its "
                              f"{len(data):,} packed bytes do: did the zip change since it "
                              "was indexed?")
    else:
        raise SourceError(f"{where}: compression method {method_name(member.method)} is not "
                          "supported")
    if len(data) != member.packed or len(out) != member.size:
        raise SourceError(f"{where}: {len(data):,} packed bytes give {len(out):,} bytes, not "
                          f"the {member.size:,} indexed: did the zip change since?")
    return out


def unpacked(data: bytes, size: int, packed: int, where: str) -> bytes:
    """A member's bytes from what lies at its offset: inflated when `packed` says they are
    a deflated zip member's, as they are otherwise (a tar's, a stored zip member's)."""
    return read_zip_member(data, _Deflated(size, packed), where) if packed else data


@dataclass(frozen=True)
class _Deflated:
    size: int
    packed: int
    method: int = DEFLATED


@dataclass(slots=True)
class _Entry:
    """One central-directory entry, checked."""

    index: int
    raw: bytes  # the name as stored (the local header must hold the same bytes)
    shown: str  # the name for messages
    path: str
    folder: bool
    flags: int
    method: int
    crc: int
    packed: int
    size: int
    offset: int  # of the local header


def scan_zip(path: str, *, opener: Opener | None = None,
             progress: Callable[[int], None] | None = None) -> Iterator[ZipMember]:
    """Yield every file member of the zip at `path` in central-directory order, each
    read once, its CRC-32 checked and its bytes hashed; `opener` opens a non-local path
    (a seekable binary file, e.g. from fsspec); `progress` gets each member's packed
    size (the zip's bytes read). Folders are skipped; anything ambiguous is refused."""
    try:
        f = opener(path) if opener else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceError(f"{path}: cannot open: {exc.strerror or exc}") from None
    from .zipdirectory import read_directory  # (here: zipdirectory imports this module)

    with f:
        size = f.seek(0, os.SEEK_END)
        cd_offset, cd_size, count = _find_directory(f, size, path)
        directory = read_directory(f, cd_offset, cd_size, count, path)
        yield from _read_members(f, directory, cd_offset, size, path, progress)
    for _, folder in directory.empty_folders():
        yield empty_folder(folder)


def empty_folder(path: str) -> ZipMember:
    """The member standing for the empty folder `path` ("/" ending it): `folders`, no
    layout sees it."""
    return ZipMember(path, 0, 0, 0, STORED, EMPTY_FOLDER)


def _find_directory(f: BinaryIO, size: int, where: str) -> tuple[int, int, int]:
    """Where the central directory is and how many entries it has, from the end record
    (and the ZIP64 one), which must close the file exactly."""
    f.seek(0)
    head = f.read(4)
    tail_size = min(size, _END.size + 0xFFFF)  # the end record and the longest comment
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(_END_SIG, 0, max(0, len(tail) - _END.size + 4))  # room for 22 bytes
    if at < 0:
        if head == _LOCAL_SIG:
            raise SourceError(f"{where}: truncated or damaged zip: no end-of-central-directory "
                              f"record in its last {tail_size:,} bytes")
        raise SourceError(f"{where}: not a zip (no end-of-central-directory record; it starts "
                          f"with {head!r})")
    end_at = size - tail_size + at
    _, disk, cd_disk, here, count, cd_size, cd_offset, comment = _END.unpack_from(tail, at)
    closes = end_at + _END.size + comment
    if closes < size:
        raise SourceError(f"{where}: {size - closes:,} bytes follow the zip's end record (at "
                          f"byte {end_at:,}): data appended to the zip? refusing to read it")
    if closes > size:
        raise SourceError(f"{where}: truncated zip: its end record at byte {end_at:,} "
                          f"announces a {comment:,}-byte comment, {closes - size:,} bytes "
                          "more than the file holds")
    cd_end = end_at
    locator = tail[at - _LOCATOR.size:at] if at >= _LOCATOR.size else b""
    if locator[:4] == _LOCATOR_SIG:
        _, zip64_disk, record_at, disks = _LOCATOR.unpack(locator)
        if zip64_disk or disks > 1:
            raise SourceError(f"{where}: a multi-disk (split or spanned) zip of {disks} "
                              "disks; refusing to read it")
        cd_end = end_at - _LOCATOR.size - _END64.size  # (no extensible data: see below)
        f.seek(max(0, cd_end))
        record = f.read(_END64.size)
        if len(record) < _END64.size or record[:4] != _END64_SIG:
            raise SourceError(f"{where}: damaged zip: no ZIP64 end record in front of its "
                              "ZIP64 locator; refusing to read it")
        _, length, _, _, disk64, cd_disk64, here64, count64, cd_size64, cd_offset64 = \
            _END64.unpack(record)
        if length != _END64.size - 12:  # (extensible data: PKWARE's, never written)
            raise SourceError(f"{where}: ZIP64 end record of {length + 12:,} bytes, not 56; "
                              "refusing to read this zip")
        if record_at != cd_end:
            if record_at == cd_offset64 + cd_size64:  # every offset off by the same amount
                _bytes_in_front(cd_end - record_at, where)
            raise SourceError(f"{where}: damaged zip: its ZIP64 locator points to byte "
                              f"{record_at:,}, not to its ZIP64 end record at byte {cd_end:,}")
        for name, old, new, full in [("disk number", disk, disk64, FULL16),
                                     ("directory's disk", cd_disk, cd_disk64, FULL16),
                                     ("entries on this disk", here, here64, FULL16),
                                     ("entry count", count, count64, FULL16),
                                     ("directory size", cd_size, cd_size64, FULL32),
                                     ("directory offset", cd_offset, cd_offset64, FULL32)]:
            if old not in (new, full):
                raise SourceError(f"{where}: its end record and ZIP64 end record disagree on "
                                  f"the {name} ({old:,} and {new:,}); refusing to read it")
        disk, cd_disk, here, count = disk64, cd_disk64, here64, count64
        cd_size, cd_offset = cd_size64, cd_offset64
    if disk or cd_disk or here != count:
        raise SourceError(f"{where}: a multi-disk (split or spanned) zip (its end record is "
                          f"on disk {disk + 1}, {here:,} of {count:,} entries with it); refusing "
                          "to read it")
    if cd_offset + cd_size != cd_end:
        _bytes_in_front(cd_end - cd_size - cd_offset, where)
        raise SourceError(f"{where}: damaged zip: its central directory ({cd_size:,} bytes at "
                          f"byte {cd_offset:,}, says its end record) does not end at byte "
                          f"{cd_end:,} where the end records start")
    return cd_offset, cd_size, count


def _bytes_in_front(shift: int, where: str) -> None:
    if shift > 0:
        raise SourceError(f"{where}: its offsets point {shift:,} bytes before its records: "
                          "bytes in front of the zip (a self-extractor stub, or another zip "
                          "it was appended to?); refusing to read it")


class _Reader:
    """Sequential reads through a 1 MiB buffer, so small members cost no read call each."""

    def __init__(self, f: BinaryIO, pos: int) -> None:
        f.seek(pos)
        self._f, self._buf, self._at, self.pos = f, b"", 0, pos

    def read(self, n: int) -> bytes:
        """`n` bytes, fewer only at the end of the file."""
        have = len(self._buf) - self._at
        if n <= have:
            data = self._buf[self._at:self._at + n]
            self._at += n
        elif n >= _CHUNK:  # large: straight from the file, not through the buffer
            data = self._buf[self._at:] + self._f.read(n - have)
            self._buf, self._at = b"", 0
        else:
            self._buf = self._buf[self._at:] + self._f.read(_CHUNK)
            data, self._at = self._buf[:n], min(n, len(self._buf))
        self.pos += len(data)
        return data


def _read_directory(f: BinaryIO, cd_offset: int, cd_size: int, count: int,
                    where: str) -> list[_Entry]:
    reader = _Reader(f, cd_offset)
    names = Names(where)
    entries = []
    for index in range(count):
        at = reader.pos
        fixed = reader.read(_CENTRAL.size)
        if len(fixed) < _CENTRAL.size or fixed[:4] != _CENTRAL_SIG or \
                at + _CENTRAL.size > cd_offset + cd_size:
            raise SourceError(f"{where}: damaged central directory: no entry {index + 1:,} of "
                              f"{count:,} at byte {at:,}; refusing to read this zip")
        (_, made, needed, flags, method, _, _, crc, packed, size, name_len, extra_len,
         comment_len, disk, _, external, offset) = _CENTRAL.unpack(fixed)
        raw = reader.read(name_len)
        extras = reader.read(extra_len)
        reader.read(comment_len)
        if reader.pos > cd_offset + cd_size:
            raise SourceError(f"{where}: damaged central directory: entry {index + 1:,} runs "
                              "past its end; refusing to read this zip")
        name = shown(raw)
        member = f"{where}: member {name}"
        fields = extra_fields(extras, member)
        size, packed, offset, disk = zip64_values(fields, [size, packed, offset, disk], member)
        path, folder = check_name(raw, flags, made >> 8, fields, member)
        check_entry(flags, method, needed, size, packed, external, folder, disk,
                    member)
        if max(size, packed, offset) > _LARGEST_FILE:
            _too_large(size, packed, offset, member)
        names.add(path, folder, name)
        entries.append(_Entry(index, raw, name, path, folder, flags, method, crc, packed,
                              size, offset))
    if reader.pos != cd_offset + cd_size:
        raise SourceError(f"{where}: damaged central directory: "
                          f"{cd_offset + cd_size - reader.pos:,} bytes after its {count:,} "
                          "entries; refusing to read this zip")
    return entries


def _too_large(size: int, packed: int, offset: int, member: str) -> None:
    what, value = next((w, v) for w, v in (("size", size), ("packed size", packed),
                                           ("offset", offset)) if v > _LARGEST_FILE)
    raise SourceError(f"{member} has a ZIP64 {what} of {value:,} bytes, more than any file "
                      "holds; refusing to read this zip")


def _read_members(f: BinaryIO, directory: Directory, cd_offset: int, size: int, where: str,
                  progress: Callable[[int], None] | None) -> Iterator[ZipMember]:
    """Read the members in file order, in one pass (each starting where the last ended),
    and yield them in central-directory order as soon as all before them are read; each
    entry is made only as it is read."""
    order = directory.file_order()
    starts = [*directory.offset[order].tolist(), cd_offset]
    in_order = DirectoryOrder()
    reader = _Reader(f, 0)
    before: _Entry | None = None
    for i, index in enumerate(order.tolist()):
        entry = directory.entry(index)
        if entry.offset != reader.pos:
            _unaccounted(reader.pos, entry.offset, before, where)
        member = _read_member(reader, entry, starts[i + 1], cd_offset, size, where)
        if progress and not entry.folder:
            progress(entry.packed)
        yield from in_order.put(entry.index, member)
        before = entry
    if reader.pos != cd_offset:
        _unaccounted(reader.pos, cd_offset, before, where)


class DirectoryOrder:
    """Members read in file order, given back in central-directory order as soon as all
    before them are read (folders, read as None, given as nothing)."""

    def __init__(self) -> None:
        self._done: dict[int, ZipMember | None] = {}
        self._next = 0

    def put(self, index: int, member: ZipMember | None) -> Iterator[ZipMember]:
        self._done[index] = member
        while self._next in self._done:
            found = self._done.pop(self._next)
            self._next += 1
            if found is not None:
                yield found


def _unaccounted(pos: int, to: int, before: _Entry | None, where: str) -> None:
    if before is None:
        raise SourceError(f"{where}: {to - pos:,} bytes in front of its first member or "
                          "central directory (a self-extractor stub, or data prepended to the "
                          "zip); refusing to read it")
    raise SourceError(f"{where}: {to - pos:,} bytes at byte {pos:,}, after member "
                      f"{before.shown}, that no member accounts for; refusing to read this zip")


def _read_member(reader: _Reader, entry: _Entry, follows: int, cd_offset: int, size: int,
                 where: str) -> ZipMember | None:
    member = f"{where}: member {entry.shown}"
    fixed = reader.read(_LOCAL.size)
    if len(fixed) < _LOCAL.size or fixed[:4] != _LOCAL_SIG:
        raise SourceError(f"{member}: no local header at byte {entry.offset:,}, where the "
                          "central directory says it is; refusing to read this zip")
    _, _, flags, method, _, _, crc, packed, length, name_len, extra_len = _LOCAL.unpack(fixed)
    name = reader.read(name_len)
    fields = extra_fields(reader.read(extra_len), member)
    unicode_path = fields.get(UNICODE_PATH_EXTRA)
    if name != entry.raw or (unicode_path is not None and unicode_path[5:] != name):
        disagree = f"name {shown(name)}"
    elif (flags ^ entry.flags) & _SAME_FLAGS:
        disagree = f"flags ({flags:#06x}, not {entry.flags:#06x})"
    elif method != entry.method:
        disagree = f"compression method ({method_name(method)}, not {method_name(entry.method)})"
    else:
        disagree = ""
        if not flags & _DESCRIPTOR:  # (else the sizes and CRC follow the data)
            length, packed = zip64_values(fields, [length, packed], member)
            if (crc, packed, length) != (entry.crc, entry.packed, entry.size):
                disagree = (f"CRC and sizes ({crc:#010x}, {packed:,}, {length:,}; not "
                            f"{entry.crc:#010x}, {entry.packed:,}, {entry.size:,})")
    if disagree:
        raise SourceError(f"{member}: its local header (at byte {entry.offset:,}) and central "
                          f"directory entry disagree on the {disagree}; refusing to read "
                          "this zip")
    offset = reader.pos
    end = offset + entry.packed
    if end > size:
        raise SourceError(f"{member}: its {entry.packed:,} bytes of data run past the end of "
                          "the file (a truncated zip?); refusing to read it")
    if end > follows:  # (unzip reads such members: the "overlapping files" zip bomb)
        what = "the central directory" if follows == cd_offset else "another member"
        raise SourceError(f"{member}: its data (bytes {offset:,} to {end:,}) overlaps {what} "
                          f"at byte {follows:,}; refusing to read this zip")
    xxh3 = _hash_data(reader, entry, member)
    if entry.flags & _DESCRIPTOR:  # (at most 24 bytes: anything longer is not one)
        gap = follows - end
        _check_descriptor(reader.read(gap) if gap <= 24 else b"", gap, entry, member)
    elif end < follows:
        _unaccounted(end, follows, entry, where)
    if entry.folder:
        return None
    return ZipMember(entry.path, offset, entry.size, entry.packed, entry.method, xxh3)


def _hash_data(reader: _Reader, entry: _Entry, member: str) -> str:
    """Check the member's CRC-32 and size and return the xxh3_128 of its bytes, inflated
    1 MiB at a time and never past the size its header gives."""
    hasher = xxhash.xxh3_128()
    crc = length = 0
    for out in _unpacked(reader, entry, member):
        length += len(out)
        if length > entry.size:
            raise SourceError(f"{member}: inflates past its size of {entry.size:,} bytes; "
                              "refusing to read this zip")
        crc = zlib.crc32(out, crc)
        hasher.update(out)
    if length != entry.size:
        raise SourceError(f"{member}: holds {length:,} bytes, not the {entry.size:,} its "
                          "header says; refusing to read this zip")
    if crc != entry.crc:
        raise SourceError(f"{member}: CRC-32 mismatch ({crc:#010x}, its header says "
                          f"{entry.crc:#010x}): the zip is corrupt; refusing to read it")
    return hasher.hexdigest()


def _unpacked(reader: _Reader, entry: _Entry, member: str) -> Iterator[bytes]:
    """The member's uncompressed bytes, in pieces of at most 1 MiB."""
    left = entry.packed
    inflater = zlib.decompressobj(-15) if entry.method == DEFLATED else None
    while left and not (inflater and inflater.eof):
        data = reader.read(min(left, _CHUNK))
        if not data:
            raise SourceError(f"{member}: the zip ends inside its data (did it shrink while "
                              "being read?)")
        left -= len(data)
        if inflater is None:
            yield data
            continue
        while True:
            try:
                out = inflater.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise SourceError(f"{member}: corrupt deflate data ({exc}); refusing to read "
                                  "this zip") from None
            yield out
            data = inflater.unconsumed_tail
            if inflater.eof or (not data and len(out) < _CHUNK):
                break  # (a full 1 MiB out may leave output pending in zlib: go round)
    if inflater and not inflater.eof:
        raise SourceError(f"{member}: its deflate stream is cut short; refusing to read this "
                          "zip")
    if inflater and (inflater.unused_data or left):
        raise SourceError(f"{member}: its deflate stream ends {len(inflater.unused_data) + left:,}"
                          " bytes before its data does; refusing to read this zip")


def _check_descriptor(raw: bytes, gap: int, entry: _Entry, member: str) -> None:
    """The data descriptor filling the gap to the next member: CRC and sizes (32 or 64
    bits, signature optional), equal to the central directory's."""
    want = (entry.crc, entry.packed, entry.size)
    for layout in ("<4sIII", "<4sIQQ", "<III", "<IQQ"):
        if struct.calcsize(layout) != len(raw):
            continue
        values = struct.unpack(layout, raw)
        if layout.startswith("<4s") and values[0] != _DESCRIPTOR_SIG:
            continue
        if tuple(values[-3:]) == want:
            return
    raise SourceError(f"{member}: its data descriptor ({gap:,} bytes after its data) does "
                      "not hold the CRC and sizes of its central directory entry; refusing "
                      "to read this zip")
