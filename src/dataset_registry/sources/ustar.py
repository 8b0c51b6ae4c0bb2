"""The fast reader of plain tars: headers parsed from large reads, members hashed from memory.

Python's `tarfile` makes an object per member and reads each header with its own
seek and read: 25-30 µs a member, most of the cost of indexing a tar of small
images. Most tars are plain: one 512-byte ustar (or GNU, or V7) header per regular
file or folder, numbers in octal, UTF-8 names, no extended headers. This reader
vouches only for such tars, member by member, and keeps every rule of the strict
reader (`tarindex`): a member it cannot prove plain and safe — an extended header
(PAX, GNU long name), a link, a device, a sparse file, a bad checksum, a number
field that is not plain octal, a suspicious or repeated name, a size past the end,
anything but zero blocks after the end — makes it give up the whole tar
(`NotPlain`), and the strict reader reads it again and decides, with its own words.
So the two can never disagree on what a tar holds: this one either returns exactly
the members the strict one would, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import xxhash

from .folders import EMPTY_FOLDER, empty_folders

BLOCK = 512
_BUFFER = 1 << 20  # one read covers this many bytes of headers and small members
_SMALL_READ = 16 << 10  # the read after a big member: its next header and a few more
_BATCH = 4096  # headers checked at once (`_verify`)

ReadAt = Callable[[int, int], "bytes | memoryview"]
"""Reads `n` bytes at absolute offset `pos` of the outer file (fewer only at its end); what
it returns may be overwritten by its next call."""


class NotPlain(Exception):
    """The fast reader cannot vouch for this tar; the strict reader must read it. `asked`:
    what `nested` answered for each path it was asked about before (a layout's `nested`
    may note what it is asked: it must be asked once a path, so the strict reader reuses
    these answers rather than asking again)."""


_FILE, _OLD_FILE, _FOLDER = b"0", b"\0", b"5"
_ZERO = bytes(BLOCK)


def read_plain(read_at: ReadAt, start: int, size: int, nested: Callable[[str], bool],
               prefix: str = "", progress: Callable[[int], None] | None = None
               ) -> list[tuple[str, int, int, str | None]]:
    """(path, absolute data offset, size, xxh3) of every file member of the plain tar
    occupying [start, start + size) of the outer file, in tar order; xxh3 is None for a
    member `nested` names (a tar to read in turn, by the caller); `progress` gets each
    member's size as it is hashed. Then each empty folder, as `folders` gives them.
    Raises NotPlain."""
    members: list[tuple[str, int, int, str | None]] = []
    asking: list[tuple[str, bool]] = []  # (the answer being acted on, if not yet in members)
    try:
        return _read_plain(read_at, start, size, nested, prefix, progress, members, asking)
    except NotPlain as exc:
        exc.asked = {path: digest is None for path, _, _, digest in members}
        exc.asked.update(asking)
        raise


def _read_plain(read_at: ReadAt, start: int, size: int, nested: Callable[[str], bool],
                prefix: str, progress: Callable[[int], None] | None,
                members: list[tuple[str, int, int, str | None]],
                asking: list[tuple[str, bool]]) -> list[tuple[str, int, int, str | None]]:
    files: set[str] = set()
    folders: set[str] = set()
    explicit: list[str] = []  # the folder entries, and the folder each entry lies in
    parents: set[str] = set()
    parent = ""
    buf: bytes | memoryview = b""  # window bytes [base, base + len(buf)), from read_at
    base = 0
    pos = 0
    headers: list[bytes] = []  # read but not yet verified
    want = _BUFFER
    while True:
        if pos == size:  # no end-of-archive marker: tar -x reads it so too
            break
        if pos + BLOCK > size:
            raise NotPlain("a partial header")
        if not base <= pos <= base + len(buf) - BLOCK:
            buf, base = read_at(start + pos, min(want, size - pos)), pos
            if len(buf) < BLOCK:
                raise NotPlain("truncated")
        at = pos - base
        header = bytes(buf[at:at + BLOCK])
        if header == _ZERO:
            break
        headers.append(header)
        if len(headers) >= _BATCH:
            _verify(headers)
        name, length, folder = _parse(header)
        name = _checked_name(name, folder)
        data = pos + BLOCK
        if data + length > size:
            raise NotPlain("member past the end")
        above = _add(name, folder, files, folders)
        # (a tar's entries come folder by folder: rarely a new one; a hidden one aside)
        if above != parent and name[len(above) + 1 if above else 0] != ".":
            parent = above
            parents.add(parent)
        pos = data + -(-length // BLOCK) * BLOCK
        # past a member too big for one read, the next read need not be big: a tar of
        # big members (of nested tars) is read a header at a time, not 1 MiB a header
        want = _SMALL_READ if length >= _BUFFER else _BUFFER
        if folder:
            if name:  # (not "./", the tar's own root)
                explicit.append(name)
            continue
        path = prefix + name
        if nested(path):
            members.append((path, start + data, length, None))
            continue
        asking[:] = [(path, False)]
        if data + length <= base + len(buf):
            digest = xxhash.xxh3_128_hexdigest(buf[data - base:data - base + length])
        else:
            digest = _hash_at(read_at, start + data, length)
            buf, base = b"", 0  # (read_at may reuse the memory buf was in)
        members.append((path, start + data, length, digest))
        asking.clear()
        if progress:
            progress(length)
    _verify(headers)
    if not members and not files and not folders:
        raise NotPlain("empty tar")  # (tarfile refuses a tar with no header at all)
    _check_zeros(read_at, start, pos, size, buf, base)
    members += [(prefix + name, 0, 0, EMPTY_FOLDER) for name in empty_folders(explicit, parents)]
    return members


def _parse(header: bytes) -> tuple[str, int, bool]:
    """(name, size, is a folder) of a header, if of a plain type (NotPlain otherwise); its
    number fields and checksum are checked later, many headers at once (`_verify`)."""
    kind = header[156:157]
    if kind not in (_FILE, _OLD_FILE, _FOLDER):
        raise NotPlain("member type")
    raw = header[:100].split(b"\0", 1)[0]
    # as tarfile reads it: a file entry whose name ends in "/" is an old-style folder;
    # a folder's name loses its trailing slashes; then the ustar prefix goes in front
    folder = kind == _FOLDER or (kind == _OLD_FILE and raw.endswith(b"/"))
    if folder:
        raw = raw.rstrip(b"/")
    before = header[345:500].split(b"\0", 1)[0]
    if before:
        raw = before + b"/" + raw
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain("name not UTF-8") from None
    digits = header[124:136].split(b"\0", 1)[0].strip()
    if digits and not digits.isdigit():  # (int() would take a sign, "_" or inner spaces)
        raise NotPlain("size")
    try:
        length = int(digits or b"0", 8)
    except ValueError:  # (an 8 or a 9)
        raise NotPlain("size") from None
    if folder and length:
        raise NotPlain("folder with data")
    return name, length, folder


# The number fields tarfile parses, as plain writers (GNU tar, bsdtar, Python's tarfile)
# write them: octal digits ending in NUL or space, digits then " \0", or all NULs.
# Anything else (base-256, leading spaces) is left to the strict reader.
_NUMBER_FIELDS = ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8))


def _verify(headers: list[bytes]) -> None:
    """Check the number fields and checksums of `headers` (then forgotten), vectorised:
    NotPlain if any is not as a plain writer writes it, or its checksum is wrong."""
    if not headers:
        return
    # numpy at first use: the layouts import this module, and parsing manifests imports
    # the layouts, which must stay light (tests/test_import_graph.py)
    import numpy as np

    octal_digit = np.zeros(256, bool)
    octal_digit[list(b"01234567")] = True
    powers = 8 ** np.arange(6, -1, -1, dtype=np.int64)
    rows = np.frombuffer(b"".join(headers), np.uint8).reshape(len(headers), BLOCK)
    headers.clear()
    octal, nul, space = octal_digit[rows], rows == 0, rows == 0x20
    for at, width in _NUMBER_FIELDS:
        end = at + width
        digits = octal[:, at:end - 1].all(1)
        plain = (digits & (nul[:, end - 1] | space[:, end - 1])) | \
            (octal[:, at:end - 2].all(1) & space[:, end - 2] & nul[:, end - 1]) | \
            nul[:, at:end].all(1)
        if not plain.all():
            raise NotPlain("number field")
    # the checksum: 6 octal digits then NUL and space (or 7 digits and one of them), equal
    # to the unsigned sum of the header with its own field counted as spaces
    six = octal[:, 148:154].all(1) & ((nul[:, 154] & (space[:, 155] | nul[:, 155])) |
                                      (space[:, 154] & (nul[:, 155] | space[:, 155])))
    seven = octal[:, 148:155].all(1) & (nul[:, 155] | space[:, 155])
    if not (six | seven).all():
        raise NotPlain("checksum field")
    values = np.where(six, (rows[:, 148:154].astype(np.int64) - 48) @ powers[1:],
                      (rows[:, 148:155].astype(np.int64) - 48) @ powers)
    total = rows[:, :148].sum(1, dtype=np.int64) + rows[:, 156:].sum(1, dtype=np.int64) + 256
    if not (values == total).all():
        raise NotPlain("checksum")


def _checked_name(name: str, folder: bool) -> str:
    """The path `tar -x` writes the member to, if plainly safe; NotPlain otherwise (the
    strict reader then names what is wrong)."""
    if not name or name[0] in "/\\" or (len(name) > 1 and name[1] == ":") or \
            "\\" in name or "\n" in name or "\r" in name:
        raise NotPlain("name")
    if "//" not in name and "/." not in name and name[0] != "." and name[-1] != "/":
        return name  # (no part is "" or starts with ".": no "." or ".." part to drop)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or (not parts and not folder):
        raise NotPlain("name")
    return "/".join(parts)


def _add(name: str, folder: bool, files: set[str], folders: set[str]) -> str:
    """Note a member's path, refusing (as NotPlain) a repeat or a file-and-folder clash;
    the folder it lies in ("" at the top)."""
    if name in files or (folder and name in folders):
        raise NotPlain("repeated name")
    cut = name.rfind("/")
    above = parent = name[:cut] if cut > 0 else ""
    if parent and parent not in folders:
        while parent:
            if parent in files:
                raise NotPlain("file and folder")
            folders.add(parent)
            cut = parent.rfind("/")
            parent = parent[:cut] if cut > 0 else ""
    if folder:
        if name in files:
            raise NotPlain("file and folder")
        folders.add(name)
    else:
        if name in folders:
            raise NotPlain("file and folder")
        files.add(name)
    return above


def _hash_at(read_at: ReadAt, offset: int, length: int) -> str:
    hasher = xxhash.xxh3_128()
    done = 0
    while done < length:
        chunk = read_at(offset + done, min(8 * _BUFFER, length - done))
        if not chunk:
            raise NotPlain("truncated member")
        hasher.update(chunk)
        done += len(chunk)
    return hasher.hexdigest()


def _check_zeros(read_at: ReadAt, start: int, pos: int, size: int,
                 buf: bytes | memoryview, base: int) -> None:
    """Everything after the end marker must be zero (else the strict reader says why)."""
    if base <= pos <= base + len(buf):
        tail = bytes(buf[pos - base:])
        if tail.count(0) != len(tail):
            raise NotPlain("data after the end")
        pos = base + len(buf)
    while pos < size:
        chunk = read_at(start + pos, min(8 * _BUFFER, size - pos))
        if not chunk:
            return
        if bytes(chunk).count(0) != len(chunk):
            raise NotPlain("data after the end")
        pos += len(chunk)
