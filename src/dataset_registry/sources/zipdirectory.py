"""The fast reader of plain central directories: a zip's entries as columns, checked in bulk.

The strict reader (`zipindex._read_directory`) spends ~7-10 µs an entry in Python (four
reads, the extra fields, the ZIP64 values, the name, the entry, the path set, an object):
12 s at 1.28M entries. Most zips are plain: one record after another, stored or deflated
members with safe names, a few extra fields (Info-ZIP's timestamps and uid/gid; past
4 GiB, the ZIP64 field holding what does not fit the header: the offset, a size). This
reader vouches only for such directories, all at once, with numpy over one read of the
whole directory, and keeps every rule of the strict reader (`zipcheck`, ZIP64 values read
as `zip64_values` reads them): anything it cannot prove plain and safe — a ZIP64 field
too short for its values, a ZIP64 value past 2**56, a Unicode Path field, an odd extra
block, an encrypted or bzip2 member, a link, a '..' or './' or otherwise unusual name,
a name twice, a file that is also a folder, a folder entry after a member inside it —
makes it give up the whole directory (`NotPlain`), and the strict reader reads it again and
decides, in its own words. So the two never disagree: this one either returns exactly the
entries the strict one would, or nothing. Records are checked a chunk at a time on a few
threads, the names of each a batch at a time (small arrays stay in cache and reuse
memory); then paths are compared across the whole directory, by 64-bit hashes, where two
equal hashes only ever make it give up.
"""

from __future__ import annotations

import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.processes import usable_cores
from ..errors import SourceError
from .folders import empty_folders
from .zipcheck import (
    DEFLATED,
    ENCRYPTED,
    FULL16,
    FULL32,
    MAX_RATIO,
    MAX_VERSION_NEEDED,
    RATIO_FREE_SIZE,
    STORED,
    UNICODE_PATH_EXTRA,
    ZIP64_EXTRA,
    check_name,
    shown,
)
from .zipindex import _CENTRAL, _Entry, _read_directory

_FIXED = _CENTRAL.size  # 46 bytes of fixed fields in front of each record's name
_SIGNATURE = 0x02014B50  # b"PK\1\2" as a little-endian word
_MAX_FIELDS = 16  # extra fields a record may have (Info-ZIP writes 2): more is not plain
_MAX_NAME, _MAX_COMPONENT = 4095, 255  # (zipcheck's limits: a file system's)
_CODE_PAGE_HOSTS = (0, 6, 11)  # (zipcheck: non-ASCII names from these are converted)
_ZIP64_WIDTHS = (8, 8, 8, 4)  # bytes of size, packed size, offset and disk in a ZIP64 field
_MAX_ZIP64 = 1 << 56  # larger ZIP64 values are given up: MAX_RATIO times one fits in int64
_BATCH = 1 << 13  # records whose names are checked at once: per-byte arrays stay small
_CHUNK = 2 * _BATCH  # records a thread checks at once (what it makes a byte stays small)
_MAX_THREADS = 4  # (more mostly wait for the GIL, and each holds a chunk's arrays)
_WORD_WEIGHTS = np.frombuffer(np.random.default_rng(0x21D1).bytes(8 * (_MAX_NAME // 8 + 1)),
                              np.uint64) | np.uint64(1)  # (odd: never a factor of 2**64)
_LAST_WORD = np.array([(1 << 8 * n) - 1 for n in range(1, 9)], np.uint64)  # its n bytes
_FIELDS = np.dtype({  # a record's fixed fields (as zipindex._CENTRAL), less those unread
    "names": ["made", "needed", "flags", "method", "crc", "packed", "size", "name_len",
              "extra_len", "disk", "external", "offset", "comment_len"],
    "formats": ["<u2", "<u2", "<u2", "<u2", "<u4", "<u4", "<u4", "<u2", "<u2", "<u2", "<u4",
                "<u4", "<u2"],
    "offsets": [4, 6, 8, 10, 16, 20, 24, 28, 30, 34, 38, 42, 32], "itemsize": _FIXED})


class NotPlain(Exception):
    """The fast reader cannot vouch for this central directory; the strict one decides."""


@dataclass(frozen=True, eq=False)  # (== on numpy columns is ambiguous: compare entries)
class Directory:
    """A checked central directory as columns; row i is entry i in directory order."""

    names: bytes  # every entry's name as stored, concatenated
    name_starts: np.ndarray  # int64, len(self) + 1: entry i's name is names[s[i]:s[i + 1]]
    paths: str  # "\n".join(path of each entry, as check_name gives it; "" for "./")
    path_starts: np.ndarray  # int64, len(self) + 1: entry i's is paths[s[i]:s[i + 1] - 1]
    folder: np.ndarray  # bool
    flags: np.ndarray  # the columns below: whole numbers (flags, method, crc as stored)
    method: np.ndarray
    crc: np.ndarray
    packed: np.ndarray
    size: np.ndarray
    offset: np.ndarray  # of the local header
    parent: np.ndarray | None = None  # uint64: a hash of the folder each entry lies in (0
    # at the top), equal hashes taken as one folder; None from the strict reader. Only
    # cutting the members into runs uses it (a folder split between runs costs time, no
    # more), so it is made where the paths are hashed already.
    records: np.ndarray | None = None  # int64, len(self) + 1: where entry i's record starts
    # in the central directory (the last: its size); None from the strict reader. Entries
    # i to j are then read again by `read_plain` of records[i] to records[j + 1].

    def __len__(self) -> int:
        return len(self.folder)

    def empty_folders(self) -> list[tuple[int, str]]:
        """(entry number, path + "/") of each folder entry no entry lies below (`folders`).
        `zip -r` writes a folder's entry just before its members, so the entry after it
        says (one search step); only for the folders it does not (empty ones, or a folder
        written after its members) are the folders above every entry gathered."""
        joined = "\n" + self.paths  # (entry i's path starts at path_starts[i] + 1)
        explicit, unsure = [], []
        for i in np.flatnonzero(self.folder).tolist():
            start, stop = int(self.path_starts[i]), int(self.path_starts[i + 1])
            path = self.paths[start:stop - 1]
            if path:
                explicit.append((i, path))
                after = stop + len(path) + 2  # (the next entry's first letter below it)
                if not joined.startswith(f"\n{path}/", stop) or joined[after:after + 1] == ".":
                    unsure.append(path)
        if not unsure:
            return []
        empty = set(empty_folders(unsure, {p[:cut] for p in self.paths.split("\n")
                                           if (cut := p.rfind("/")) > 0 and p[cut + 1] != "."}))
        return [(i, f"{path}/") for i, path in explicit if f"{path}/" in empty]

    def entry(self, i: int) -> _Entry:
        """Entry i, equal to the `_Entry` the strict reader gives for it."""
        i = int(i)
        raw = self.names[self.name_starts[i]:self.name_starts[i + 1]]
        path = self.paths[self.path_starts[i]:self.path_starts[i + 1] - 1]
        return _Entry(i, raw, shown(raw), path, bool(self.folder[i]), int(self.flags[i]),
                      int(self.method[i]), int(self.crc[i]), int(self.packed[i]),
                      int(self.size[i]), int(self.offset[i]))

    def file_order(self) -> np.ndarray:
        """Entry numbers by the offset of their local header (ties in directory order)."""
        return np.argsort(self.offset, kind="stable")

    @classmethod
    def from_entries(cls, entries: list[_Entry]) -> Directory:
        def column(name: str) -> np.ndarray:
            return np.array([getattr(e, name) for e in entries], np.int64)

        def starts(lengths: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

        return cls(b"".join(e.raw for e in entries), starts([len(e.raw) for e in entries]),
                   "\n".join(e.path for e in entries),
                   starts([len(e.path) + 1 for e in entries]),
                   np.array([e.folder for e in entries], bool), column("flags"),
                   column("method"), column("crc"), column("packed"), column("size"),
                   column("offset"))


reads: Counter[str] = Counter()
"""Central directories read in this process, by `where` (the zip's path): what tests ask
to see that a zip's directory was read once (a second reading costs ~1 s at a million
entries)."""


def read_directory(f: BinaryIO, cd_offset: int, cd_size: int, count: int,
                   where: str) -> Directory:
    """The directory of `count` entries in [cd_offset, cd_offset + cd_size) of `f`: read
    by the fast reader where it can vouch for it, else by the strict one (which returns or
    raises exactly as it does alone)."""
    reads[where] += 1
    try:
        return read_plain(f, cd_offset, cd_size, count, where)
    except NotPlain:
        return Directory.from_entries(_read_directory(f, cd_offset, cd_size, count, where))


def read_plain(f: BinaryIO, cd_offset: int, cd_size: int, count: int,
               where: str) -> Directory:
    """The directory, if plain: NotPlain otherwise (never a refusal of its own). Its records
    are checked a chunk at a time on up to _MAX_THREADS threads (numpy lets go of the GIL in
    its loops: 1.32 s on one, 0.91 on 4, 0.86 on 8 at 1.28M entries on a 16-core device
    machine), each chunk's columns written in place; then every path is compared with
    every other."""
    if count == 0 or count * _FIXED > cd_size:
        if count == 0 and cd_size == 0:
            return Directory.from_entries([])
        raise NotPlain("entry count")
    f.seek(cd_offset)
    data = f.read(cd_size)
    if len(data) != cd_size:
        raise NotPlain("short read")
    cd = np.frombuffer(data, np.uint8)
    at, fixed = _records(data, cd, count)
    name_len = fixed["name_len"].astype(np.int64)
    if not name_len.all():
        raise NotPlain("empty name")
    name_starts = np.concatenate([[0], np.cumsum(name_len)])
    out = _Columns(count, int(name_starts[-1]))
    firsts = range(0, count, _CHUNK)
    args = ([at[lo:lo + _CHUNK] for lo in firsts], [fixed[lo:lo + _CHUNK] for lo in firsts],
            firsts, repeat(cd), repeat(name_starts), repeat(out), repeat(where))
    threads = min(len(firsts), usable_cores(), _MAX_THREADS)
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="registry-zipdir") as pool:
            parts = list(pool.map(_read_chunk, *args))  # (the first NotPlain is raised here)
    else:
        parts = list(map(_read_chunk, *args))
    del data, cd, fixed, args  # (`at` is kept: 8 bytes an entry)
    _check_names_once(out.folder, out.path_hash,
                      *(np.concatenate([part[i] for part in parts]) for i in (1, 2)))
    paths = "\n".join(part[0] for part in parts)
    del parts
    # (flags, method and CRC kept as narrow as they are stored: 20 MB at 1.28M entries)
    return Directory(out.names.tobytes(), name_starts, paths,
                     np.concatenate([[0], np.cumsum(out.widths)]), out.folder, out.flags,
                     out.method, out.crc, out.packed, out.size, out.offset, out.parent,
                     np.append(at, cd_size))


class _Columns:
    """The directory's columns, made empty and filled in a chunk of records at a time."""

    def __init__(self, count: int, name_bytes: int) -> None:
        self.names = np.empty(name_bytes, np.uint8)
        self.folder = np.empty(count, bool)
        self.flags, self.method = np.empty(count, np.uint16), np.empty(count, np.uint16)
        self.crc = np.empty(count, np.uint32)
        self.packed, self.size, self.offset, self.widths = (np.empty(count, np.int64)
                                                            for _ in range(4))
        self.path_hash = np.empty(count, np.uint64)
        self.parent = np.empty(count, np.uint64)


def _read_chunk(at: np.ndarray, fixed: np.ndarray, first: int, cd: np.ndarray,
                name_starts: np.ndarray, out: _Columns, where: str
                ) -> tuple[str, np.ndarray, np.ndarray]:
    """Check the records at `at` (entries `first` on; `fixed` their fixed fields) one by one as
    the strict reader checks them, NotPlain unless all pass, and fill in their rows of `out`.
    Returns their paths (joined by '\\n') and the hashes of the folders above each entry,
    with its number (see `_check_names_once`)."""
    rows = slice(first, first + len(at))
    flags, method, crc, packed, size, name_len, offset = (
        fixed[name].astype(np.int64)
        for name in ("flags", "method", "crc", "packed", "size", "name_len", "offset"))
    names_at = at + _FIXED
    folder = out.folder[rows] = cd[names_at + name_len - 1] == ord("/")
    zip64_at, zip64_len = check_extra_fields(cd, names_at + name_len,
                                             fixed["extra_len"].astype(np.int64), zip64=True)
    size, packed, offset, disk = _zip64_values(cd, zip64_at, zip64_len, size, packed, offset,
                                               fixed["disk"].astype(np.int64))
    _check_entries(fixed["needed"], flags, method, packed, size, disk, fixed["external"],
                   offset, folder)
    out.flags[rows], out.method[rows], out.crc[rows] = flags, method, crc
    out.packed[rows], out.size[rows], out.offset[rows] = packed, size, offset
    host = fixed["made"] >> 8
    texts, above_hash, above_entry = _read_names(
        cd, names_at, name_len, folder, host, flags, where,
        out.names[name_starts[rows.start]:name_starts[rows.stop]], out.widths[rows],
        out.path_hash[rows], out.parent[rows])
    return "\n".join(texts), above_hash, above_entry + first


def _read_names(cd: np.ndarray, names_at: np.ndarray, name_len: np.ndarray,
                folder: np.ndarray, host: np.ndarray, flags: np.ndarray, where: str,
                names: np.ndarray, widths: np.ndarray, path_hash: np.ndarray,
                parent: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Into `names`, the names (concatenated); into `widths`, the width of each path and its
    separator (in characters); into `path_hash`, each path's hash, and into `parent` its
    folder's (that of the folders above it nearest to it; 0 at the top); if every name is
    plain.
    Returns the paths of each batch (joined by '\\n') and the hashes of the folders above
    each entry, with the entry's number, that `_check_names_once` compares. A batch of
    records at a time, so that what is made per byte stays small."""
    texts, above_hash, above_entry = [], [], []
    done = 0
    for lo in range(0, len(names_at), _BATCH):
        batch = slice(lo, lo + _BATCH)
        part = _names(cd, names_at[batch], name_len[batch])
        names[done:done + len(part)] = part
        done += len(part)
        starts = np.concatenate([[0], np.cumsum(name_len[batch])])
        inner, ascii_only = _check_names(part, starts, folder[batch], host[batch],
                                         flags[batch], where)
        text, widths[batch] = _paths(part, starts, folder[batch], ascii_only)
        texts.append(text)
        inner_entry = _owner(starts, inner)
        words = np.ndarray((len(part),), "<u8", np.concatenate([part, np.zeros(8, np.uint8)]),
                           0, (1,))  # the 8 bytes from each byte on
        path_hash[batch] = _range_hashes(words, starts[:-1], starts[1:] - folder[batch])
        above = _range_hashes(words, starts[inner_entry], inner)
        nearest = np.flatnonzero(np.append(inner_entry[1:] != inner_entry[:-1], True)) \
            if len(inner) else inner  # (each entry's last '/' between components)
        parent[batch] = 0
        parent[lo + inner_entry[nearest]] = above[nearest]
        above_hash.append(above)
        above_entry.append(inner_entry + lo)
    return texts, np.concatenate(above_hash), np.concatenate(above_entry)


def u16(cd: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The little-endian 16-bit words at each of `at`."""
    return cd[at].astype(np.int64) | cd[at + 1].astype(np.int64) << 8


def u32(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The little-endian 32-bit words at each of `at`."""
    return u16(data, at) | u16(data, at + 2) << 16


def _records(data: bytes, cd: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each record starts, and its fixed fields: every signature in the directory,
    which must chain exactly (each record's three lengths lead to the next, the last to
    the end), `count` of them. A signature inside a name or an extra field is not plain
    (the strict reader skips it)."""
    found = []
    for align in range(4):  # the signature as a word, at each of the 4 byte alignments
        words = np.frombuffer(data, "<u4", (len(data) - align) // 4, align)
        found.append(np.flatnonzero(words == _SIGNATURE) * 4 + align)
    at = np.sort(np.concatenate(found))
    if len(at) != count or at[0] != 0 or at[-1] + _FIXED > len(cd):
        raise NotPlain("records")
    fixed = sliding_window_view(cd, _FIXED)[at].reshape(-1).view(_FIELDS)
    ends = at + _FIXED + fixed["name_len"] + fixed["extra_len"] + fixed["comment_len"]
    if ends[-1] != len(cd) or (ends[:-1] != at[1:]).any():
        raise NotPlain("records")
    return at, fixed


def _zip64_values(cd: np.ndarray, body_at: np.ndarray, body_len: np.ndarray,
                  *values: np.ndarray) -> list[np.ndarray]:
    """Size, packed size, offset, disk, as `zipcheck.zip64_values` reads them: each full in
    the header (0xFFFFFFFF, 0xFFFF for the disk) from the entry's ZIP64 field (body at
    `body_at`, `body_len` bytes), in that order, 8 bytes each, 4 for the disk. NotPlain
    where a field is too short for them (the strict reader's refusal) or a value is past
    _MAX_ZIP64; a ZIP64 field on an entry with no full value is ignored, as it does."""
    out = list(values)
    pos = np.zeros(len(body_at), np.int64)  # within each ZIP64 body: the next value's
    for i, (full, width) in enumerate(zip((FULL32, FULL32, FULL32, FULL16), _ZIP64_WIDTHS,
                                          strict=True)):
        rows = np.flatnonzero(values[i] == full)
        if not len(rows):
            continue
        at = pos[rows]
        if (at + width > body_len[rows]).any():  # (no field at all: a length of 0)
            raise NotPlain("a full value with no ZIP64 value for it")
        at += body_at[rows]
        value = u32(cd, at)
        if width == 8:
            high = u32(cd, at + 4)
            if (high >= _MAX_ZIP64 >> 32).any():
                raise NotPlain("a ZIP64 value past 2**56")
            value |= high << 32
        out[i] = values[i].copy()
        out[i][rows] = value
        pos[rows] += width
    return out


def _check_entries(needed: np.ndarray, flags: np.ndarray, method: np.ndarray,
                   packed: np.ndarray, size: np.ndarray, disk: np.ndarray,
                   external: np.ndarray, offset: np.ndarray, folder: np.ndarray) -> None:
    """`zipcheck.check_entry`'s rules (on the values ZIP64 fields give): NotPlain unless all
    pass."""
    kind = (external >> 16) & 0o170000  # (as stat.S_IFMT reads the unix mode)
    bad = (disk != 0) | ((flags & ENCRYPTED) != 0) | ((method != STORED) & (method != DEFLATED)) | \
        (needed > MAX_VERSION_NEEDED) | ((method == STORED) & (packed != size)) | \
        ((method == DEFLATED) & (size > RATIO_FREE_SIZE) & (size > MAX_RATIO * packed)) | \
        ((kind != 0) & (kind != stat.S_IFREG) & (kind != stat.S_IFDIR)) | \
        ((kind == stat.S_IFDIR) & ~folder) | (folder & (size != 0))
    if bad.any():  # (needed > 46 covers a host byte in 'version needed' too)
        raise NotPlain("entry")


def check_extra_fields(cd: np.ndarray, start: np.ndarray, length: np.ndarray, *,
                       zip64: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each extra block must parse exactly into fields, one of each id, none of them a
    Unicode Path (or id 0, padding), nor ZIP64 unless `zip64`: NotPlain otherwise. Returns
    where each block's ZIP64 field's body starts and its length (-1 and 0: none). A round
    reads one field of every block that has one left."""
    pos, end = start.copy(), start + length
    zip64_at, zip64_len = np.full(len(start), -1, np.int64), np.zeros(len(start), np.int64)
    refused = (0, UNICODE_PATH_EXTRA) if zip64 else (0, ZIP64_EXTRA, UNICODE_PATH_EXTRA)
    left = np.flatnonzero(length)
    seen = []  # (entry, field id) of every field
    for _ in range(_MAX_FIELDS):
        if not len(left):
            break
        at, stop = pos[left], end[left]
        if (stop - at < 4).any():
            raise NotPlain("extra field block")
        field_id, body = u16(cd, at), u16(cd, at + 2)
        after = at + 4 + body
        if (after > stop).any() or np.isin(field_id, refused).any():
            raise NotPlain("extra field")
        is_zip64 = field_id == ZIP64_EXTRA  # (a second one is refused below, as a repeat)
        zip64_at[left[is_zip64]] = at[is_zip64] + 4
        zip64_len[left[is_zip64]] = body[is_zip64]
        seen.append(left << 16 | field_id)
        pos[left] = after
        left = left[after < stop]
    if len(left):
        raise NotPlain("extra fields")
    if seen:
        pairs = np.sort(np.concatenate(seen))
        if (pairs[1:] == pairs[:-1]).any():
            raise NotPlain("an extra field twice")
    return zip64_at, zip64_len


def _names(cd: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The bytes of `cd` in [start[i], start[i] + length[i]) (ascending, disjoint),
    concatenated."""
    counts = np.empty(2 * len(start), np.int64)  # gap, name, gap, name, ...
    counts[0::2] = start - np.concatenate([[start[0]], (start + length)[:-1]])
    counts[1::2] = length
    marks = np.zeros(len(counts), bool)
    marks[1::2] = True
    return cd[start[0]:start[-1] + length[-1]][np.repeat(marks, counts)]


def _owner(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The entry each byte position of the names belongs to."""
    return np.searchsorted(starts, positions, "right") - 1


def _check_names(names: np.ndarray, starts: np.ndarray, folder: np.ndarray,
                 host: np.ndarray, flags: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """`zipcheck.check_name`'s rules, stricter: every component non-empty, not '.' or '..'
    (so a path is its name less a folder's '/'); NotPlain unless all pass (UTF-8 is checked
    as the paths are decoded). Returns where the '/'s between components are, and whether
    every name is ASCII."""
    if ((names < 0x20) | (names == 0x7F) | (names == ord("\\"))).any():
        raise NotPlain("control character or backslash")
    first, lengths = starts[:-1], np.diff(starts)
    if (lengths > _MAX_NAME).any():
        raise NotPlain("long name")
    two = first[lengths >= 2]
    letter = names[two] | 0x20  # (lower case)
    if ((names[two + 1] == ord(":")) & (letter >= ord("a")) & (letter <= ord("z"))).any():
        raise NotPlain("drive letter")
    slash = names == ord("/")
    slash[(starts[1:] - 1)[folder]] = False  # a folder's trailing '/' ends no component
    inner = np.flatnonzero(slash)
    begins, ends = (_in_order(len(names), at) for at in ((first, inner + 1),
                                                        (starts[1:] - folder, inner)))
    size = ends - begins if len(begins) == len(ends) else np.zeros(1, np.int64)
    if (size <= 0).any() or (size > _MAX_COMPONENT).any():
        raise NotPlain("empty or long component")  # ('/x', 'a//b', '', '/')
    dot = names[begins] == ord(".")
    two_dots = size == 2
    if (dot & (size == 1)).any() or \
            (dot[two_dots] & (names[begins[two_dots] + 1] == ord("."))).any():
        raise NotPlain("'.' or '..' component")
    ascii_only = names.max() < 0x80
    if not ascii_only:
        high = _owner(starts, np.flatnonzero(names >= 0x80))
        if np.isin(host[high], _CODE_PAGE_HOSTS).any():
            raise NotPlain("non-ASCII name from a DOS code page host")
    semicolons = np.flatnonzero(names == ord(";"))
    if len(semicolons):  # (a VMS version, ';' and digits, is rare: ask the strict rule)
        for i in np.unique(_owner(starts, semicolons)):
            try:
                check_name(names[starts[i]:starts[i + 1]].tobytes(), int(flags[i]),
                           int(host[i]), {}, where)
            except SourceError:
                raise NotPlain("';' and digits") from None
    return inner, bool(ascii_only)


def _in_order(size: int, parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """The positions in `parts` (each in [0, size]), sorted, each once: a component's
    begins (or ends) are each a name's first byte or next to a '/' (a position twice only
    comes of an empty component, then seen as one too few)."""
    marks = np.zeros(size + 1, bool)
    for at in parts:
        marks[at] = True
    return np.flatnonzero(marks)


def _paths(names: np.ndarray, starts: np.ndarray, folder: np.ndarray, ascii_only: bool
           ) -> tuple[str, np.ndarray]:
    """The paths (each name less a folder's '/') joined by '\\n', and the width of each
    path and its separator in that string (in characters); NotPlain if a name is not
    UTF-8."""
    joined = names.copy()
    joined[(starts[1:] - 1)[folder]] = ord("\n")  # a folder's '/' becomes its separator
    joined = np.insert(joined, starts[1:-1][~folder[:-1]], ord("\n"))  # after files
    try:
        paths = joined[:len(joined) - int(folder[-1])].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain("a name that is not UTF-8") from None
    width = np.diff(starts) - folder + 1  # bytes of each path and its separator
    if not ascii_only:  # (characters: less each name's UTF-8 continuation bytes)
        continuing = _owner(starts, np.flatnonzero((names & 0xC0) == 0x80))
        width -= np.bincount(continuing, minlength=len(folder))
    return paths, width


def _check_names_once(folder: np.ndarray, path_hash: np.ndarray, above_hash: np.ndarray,
                      above_entry: np.ndarray) -> None:
    """`zipcheck.Names`' rule: no file path twice, no folder entry twice, no file that is a
    folder entry or above any entry, and no folder entry after an entry inside it (it would
    repeat a folder already made); NotPlain unless all hold. Paths are compared by hash
    (of each path; of each folder above an entry, with that entry's number): equal hashes
    are taken as equal paths, which only ever costs the fast path."""
    files, folders = path_hash[~folder], path_hash[folder]
    for hashes in (files, folders):
        ordered = np.sort(hashes)
        if (ordered[1:] == ordered[:-1]).any():
            raise NotPlain("a path twice")
    above, first = np.unique(above_hash, return_index=True)
    if np.isin(files, np.concatenate([folders, above])).any():
        raise NotPlain("a file that is also a folder")
    if len(above) and len(folders):  # the first entry below each folder comes after it
        at = np.minimum(np.searchsorted(above, folders), len(above) - 1)
        below = above_entry[first[at]]
        if ((above[at] == folders) & (below < np.flatnonzero(folder))).any():
            raise NotPlain("a folder entry after an entry inside it")


def _range_hashes(words: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The hash of names[begin[i]:end[i]] (never empty), `words` the 8 bytes from each
    byte of the names on: the sum of its words, the last cut to the range, each times a
    random weight (wrapping around mod 2**64). Names hold no NUL byte, so a range's words
    differ from those of any other range."""
    if not len(begin):
        return np.empty(0, np.uint64)
    count = (end - begin + 7) >> 3
    first = np.cumsum(count) - count  # each range's first word
    number = np.arange(int(count.sum())) - np.repeat(first, count)  # within its range
    value = words[np.repeat(begin, count) + 8 * number]
    value[first + count - 1] &= _LAST_WORD[end - begin - 8 * (count - 1) - 1]
    return np.add.reduceat(value * _WORD_WEIGHTS[number], first)
