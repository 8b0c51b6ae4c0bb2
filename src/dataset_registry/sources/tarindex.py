"""Read tars in place: a member index (name, data offset, size, xxh3), nested tars too.

Nothing is ever extracted. A member is later read with one `pread` at its
absolute offset in the outer file, which works for members of nested tars
because uncompressed tars store their members' bytes verbatim.
Members that could escape a folder on extraction (absolute paths, '..',
links, devices) are refused: a tar holding them is not a dataset source.
So is every tar whose index could differ from what GNU `tar -x` writes:
sparse members (their bytes in the tar are not the file's), sizes past the
end of the tar, malformed or conflicting extended headers, two members
extracting to one path, and a tar not read to its end (tarfile stops
silently at a corrupt header, which would index a few members of many).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import xxhash

from ..core.progress import Counted
from ..errors import SourceError, UnsafeMemberError
from .folders import EMPTY_FOLDER, empty_folders
from .ustar import NotPlain, ReadAt, read_plain

_CHUNK = 1 << 20

SYNTHETIC_PAX_KEY = "DATASET_REGISTRY.synthetic"
"""PAX global header keyword that marks a tar written by `registry synth`."""


@dataclass(frozen=True)
class IndexedMember:
    path: str  # member path; a nested member is "outer.tar/inner/name"
    offset: int  # absolute offset of the member's data in the outer file
    size: int
    xxh3: str
    packed: int = 0  # bytes at `offset` when they are deflated (a zip's), else 0


class _Slice(io.RawIOBase):
    """A read-only window [start, start+size) of an open file, for nested tars."""

    def __init__(self, f: BinaryIO, start: int, size: int) -> None:
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = max(0, min(len(buf), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


def check_member(tar_path: str, info: tarfile.TarInfo, room: int | None = None) -> None:
    """Refuse members that are not plain files or folders inside the archive, or whose
    bytes in the tar are not the file's bytes (sparse files), or that claim more bytes
    than the `room` left in the tar after their header."""
    name = info.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        why = "an absolute path"
    elif ".." in parts:
        why = "a '..' path component"
    elif info.issym() or info.islnk():
        why = f"a {'symbolic' if info.issym() else 'hard'} link to {info.linkname!r}"
    elif _is_sparse(info):
        why = ("a sparse file (GNU or PAX sparse format): its bytes in the tar are not the "
               "file's bytes")
    elif info.ischr() or info.isblk() or info.isfifo():
        why = "a device, fifo or other special file"
    elif not (info.isfile() or info.isdir()):
        why = f"of member type {info.type!r}, not a plain file or folder"
    elif any(c in name for c in "\n\r\0"):
        why = "a name with control characters"
    elif not _is_utf8(name):
        why = "a name that is not UTF-8"
    elif not _normal(name) and not info.isdir():  # (a folder "./" is the tar's root)
        why = "an empty name"
    elif info.size < 0:
        why = f"of negative size ({info.size})"
    elif info.isdir() and info.size:
        why = f"a folder entry carrying {info.size:,} bytes of data"
    elif room is not None and info.offset_data + info.size > room:
        left = max(0, room - info.offset_data)
        why = f"{info.size:,} bytes long, more than the {left:,} bytes left in the tar"
    else:
        return
    raise UnsafeMemberError(f"{tar_path}: member {name!r} is {why}; refusing to read this tar")


def _is_sparse(info: tarfile.TarInfo) -> bool:
    return info.type == tarfile.GNUTYPE_SPARSE or info.sparse is not None or \
        any(key.startswith("GNU.sparse.") for key in info.pax_headers)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # tarfile decodes undecodable bytes to lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _normal(name: str) -> str:
    """The path `tar -x` writes the member to: no '.', empty or trailing components."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


Opener = Callable[[str], BinaryIO]


def scan_tar(path: str, *, nested: Callable[[str], bool] = lambda name: False,
             progress: Callable[[int], None] | None = None,
             opener: Opener | None = None) -> Iterator[IndexedMember]:
    """Yield every file member of the tar at `path` (and of nested tars: `nested` gets a
    member's full path, "outer.tar/inner.tar" below the top); `opener` opens a non-local
    `path` (a seekable binary file, e.g. from fsspec). A tar that is not read to its end
    exactly (a corrupt header mid-way, data after the end-of-archive marker) is refused."""
    try:
        f = (opener or _open_local)(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        yield from scan_members(f, path, 0, size, "", nested, progress)


def _open_local(path: str) -> BinaryIO:
    return open(path, "rb")


def tar_is_synthetic(path: str, opener: Opener | None = None) -> bool:
    """True if the tar carries the PAX global header `registry synth` writes."""
    try:
        with (opener or _open_local)(path) as f, tarfile.open(fileobj=f, mode="r:") as tf:
            tf.next()
            return tf.pax_headers.get(SYNTHETIC_PAX_KEY) == "1"
    except (OSError, tarfile.TarError, *_PARSER_ERRORS):
        return False


# What tarfile raises on hostile headers besides TarError (int() of a sparse map, a
# chain of thousands of extended headers, ...): all mean "not a readable tar".
_PARSER_ERRORS = (ValueError, OverflowError, RecursionError, EOFError, IndexError,
                  UnicodeError)

MAX_NESTING = 4
"""Tars inside tars read at most this deep (the layouts need one: imagenet-train's
per-class tars); deeper is refused rather than recursed into."""


@dataclass(frozen=True)
class NestedTar:
    """A member that is itself a tar to index: its members are named `prefix + name`."""

    prefix: str  # "outer.tar/" (with the slash)
    offset: int  # absolute offset of its bytes in the outer file
    size: int
    depth: int  # how deep it lies (1: a member of the top tar)


def scan_members(f: BinaryIO, display: str, start: int, size: int, prefix: str,
                 nested: Callable[[str], bool], progress: Callable[[int], None] | None,
                 depth: int = 0) -> Iterator[IndexedMember]:
    """Every file member of the tar in [start, start + size) of `f`, nested tars' members in
    their place (`prefix`: the tar's own path, "" at the top; `depth`: how deep it lies);
    a nested tar holding none, as the empty folder it stands for (`empty_tar`)."""
    for item in scan_level(f, display, start, size, prefix, nested, progress, depth):
        if isinstance(item, NestedTar):
            held = False
            for member in scan_members(f, display, item.offset, item.size, item.prefix,
                                       nested, progress, item.depth):
                held = True
                yield member
            if not held:
                yield empty_tar(item)
        else:
            yield item


def empty_tar(tar: NestedTar) -> IndexedMember:
    """A nested tar holding no member, as an empty folder (`folders`): a class tar with no
    image makes no class, which the class count alone would not say. Its path is the tar's
    own with a "/"."""
    return IndexedMember(tar.prefix, tar.offset, 0, EMPTY_FOLDER)


def scan_level(f: BinaryIO, display: str, start: int, size: int, prefix: str,
               nested: Callable[[str], bool], progress: Callable[[int], None] | None,
               depth: int = 0) -> Iterator[IndexedMember | NestedTar]:
    """The members of one tar, in order, a nested tar as a `NestedTar` (not read here): by
    the fast reader where it vouches for the tar, else by the strict one."""
    where = f"{display}:{prefix.rstrip('/')}" if prefix else display
    if depth > MAX_NESTING:
        raise SourceError(f"{where}: tars nested more than {MAX_NESTING} deep; refusing")
    counted = Counted(progress)
    try:
        found = read_plain(plain_reader(f, size), start, size, nested, prefix,
                           counted if progress else None)
    except NotPlain as exc:  # the strict reader below decides, and says what is wrong
        f.seek(start)
        nested = asked_once(nested, getattr(exc, "asked", {}))
        progress = counted.again()
    else:
        for path, offset, length, digest in found:
            if digest is None:
                yield NestedTar(f"{path}/", offset, length, depth + 1)
                continue
            yield IndexedMember(path, offset, length, digest)
        return
    window = f if start == 0 else io.BufferedReader(_Slice(f, start, size), _CHUNK)
    names = _Names(f"{display}:{prefix}" if prefix else display)
    last = None  # the last good member, for messages
    try:
        tf = tarfile.open(fileobj=window, mode="r:")  # type: ignore[arg-type]  # noqa: SIM115
    except (tarfile.TarError, *_PARSER_ERRORS) as exc:
        raise SourceError(f"{where}: not a readable tar ({_why(exc)})") from None
    header_at = 0  # where the current member's header chain starts, in the window
    explicit: list[str] = []  # the folder entries, and the folder each entry lies in
    parents: set[str] = set()
    while True:
        try:
            info = tf.next()
        except (tarfile.TarError, *_PARSER_ERRORS) as exc:
            raise SourceError(f"{where}: not a readable tar at byte {start + header_at:,} "
                              f"({_after(last)}): {_why(exc)}") from None
        tf.members.clear()  # an index of a million members keeps no TarInfo objects
        if info is None:
            break
        if not _is_sparse(info):  # (PAX 1.0 sparse data starts past a map of its own)
            _check_headers(window, header_at, info, names.where, start)
        check_member(names.where, info, size)
        header_at = tf.offset
        name = names.add(info)
        last = prefix + name
        cut = name.rfind("/")
        if cut > 0 and name[cut + 1] != ".":  # (a hidden entry aside: `folders`)
            parents.add(name[:cut])
        if info.isdir():
            if name:  # (not "./", the tar's own root)
                explicit.append(name)
            continue
        offset = start + info.offset_data
        if nested(prefix + name):
            yield NestedTar(f"{prefix}{name}/", offset, info.size, depth + 1)
            continue
        yield IndexedMember(prefix + name, offset, info.size,
                            _hash_range(f, offset, info.size, display))
        if progress:
            progress(info.size)
    _check_end(window, header_at, size, where, start, last)
    for folder in empty_folders(explicit, parents):
        yield IndexedMember(prefix + folder, 0, 0, EMPTY_FOLDER)


def asked_once(nested: Callable[[str], bool], asked: dict[str, bool]
                ) -> Callable[[str], bool]:
    """`nested`, but the answers the fast reader already had given again, not asked anew."""
    return lambda path: asked[path] if path in asked else nested(path)


def plain_reader(f: BinaryIO, size: int) -> ReadAt:
    """`read_at` over `f`: a pread into one reused buffer where it is a local file (no page
    faults of fresh memory per read), else a seek and a read."""
    try:
        fd = f.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = -1
    if fd >= 0:
        buffer = bytearray(min(_CHUNK * 8, max(size, 1)))
        whole = memoryview(buffer)

        def pread(pos: int, n: int) -> memoryview:
            view = whole[:n] if n <= len(buffer) else memoryview(bytearray(n))
            return view[:os.preadv(fd, [view], pos)]

        return pread

    def read_at(pos: int, n: int) -> bytes:
        f.seek(pos)
        return f.read(n)

    return read_at


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "too many extended headers in a row"
    return str(exc) or type(exc).__name__


def _after(last: str | None) -> str:
    return f"after member {last!r}" if last else "before any member"


class _Names:
    """The names of one tar's members as `tar -x` writes them: each at most once, and
    none both a file and a folder (a file 'a' and a member 'a/b')."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.files: set[str] = set()
        self.folders: set[str] = set()

    def add(self, info: tarfile.TarInfo) -> str:
        name = _normal(info.name)
        if name in self.files or (info.isdir() and name in self.folders):
            raise UnsafeMemberError(f"{self.where}: member {name!r} appears twice; "
                                    "refusing an ambiguous tar")
        parents = name.split("/")[:-1]
        folders = ["/".join(parents[:i + 1]) for i in range(len(parents))]
        clash = next((p for p in folders if p in self.files), None)
        if clash is None and not info.isdir() and name in self.folders:
            clash = name
        if clash is not None:
            raise UnsafeMemberError(f"{self.where}: member {clash!r} is both a file and a "
                                    "folder; refusing an ambiguous tar")
        self.folders.update(folders)
        (self.folders if info.isdir() else self.files).add(name)
        return name


_EXTENDED = {tarfile.XHDTYPE: "PAX header", tarfile.XGLTYPE: "PAX global header",
             tarfile.SOLARIS_XHDTYPE: "PAX header", tarfile.GNUTYPE_LONGNAME: "GNU long name",
             tarfile.GNUTYPE_LONGLINK: "GNU long link name"}


def _check_headers(window: BinaryIO, at: int, info: tarfile.TarInfo, where: str,
                   start: int) -> None:
    """Read the extended headers (PAX, GNU long names) in front of a member strictly:
    tarfile skips malformed PAX records silently and takes the first of two long names
    where other readers take the last, so such a member's name or size is ambiguous."""
    header = info.offset_data - tarfile.BLOCKSIZE
    if at < header:  # name the member as its own header does: the others are in question
        window.seek(header)
        name = tarfile.nts(window.read(100), "utf-8", "surrogateescape")
        where = f"{where}: member {name!r} (header at byte {start + header:,})"
    seen: set[str] = set()
    keys: set[bytes] = set()
    while at < header:
        window.seek(at)
        block = window.read(tarfile.BLOCKSIZE)
        kind = _EXTENDED.get(block[156:157])
        length = tarfile.nti(block[124:136])  # checksummed by tarfile already
        if kind is None or length < 0 or at + tarfile.BLOCKSIZE + length > header:
            raise SourceError(f"{where}: unexpected header at byte "
                              f"{start + at:,}; refusing to read this tar")
        if kind in seen and kind != "PAX global header":
            raise SourceError(f"{where} has two {kind}s (readers "
                              "disagree on which one counts); refusing to read this tar")
        seen.add(kind)
        data = window.read(length)
        if kind.startswith("PAX"):
            found = _pax_records(data, f"{where}: {kind} at byte "
                                       f"{start + at:,}")
            every = sorted(k.decode() for k in found & {b"path", b"size", b"linkpath"})
            if kind == "PAX global header" and every:
                raise SourceError(f"{where}: a PAX global header sets "
                                  f"{', '.join(every)} for every member; refusing to read "
                                  "this tar")
            keys |= found if kind == "PAX header" else set()
        at += tarfile.BLOCKSIZE + tarfile.BLOCKSIZE * -(-length // tarfile.BLOCKSIZE)
    if at != header:
        raise SourceError(f"{where}: headers overlap at byte "
                          f"{start + at:,}; refusing to read this tar")
    if "GNU long name" in seen and b"path" in keys:
        raise SourceError(f"{where} has both a GNU long name and a PAX "
                          "path (readers disagree on which one counts); refusing to read "
                          "this tar")


def _pax_records(data: bytes, where: str) -> set[bytes]:
    """The keywords of PAX records '<length> <keyword>=<value>\\n' filling `data` exactly."""
    keys: set[bytes] = set()
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space] if space > pos else b""
        length = int(digits) if digits.isdigit() else 0
        record = data[pos:pos + length]
        key, eq, value = record[len(digits) + 1:-1].partition(b"=")
        if not (eq and key and len(record) == length > len(digits) + 1 and
                record.endswith(b"\n")):
            raise SourceError(f"{where}: malformed PAX record at byte {pos} of the header "
                              f"({bytes(data[pos:pos + 40])!r}); refusing to read this tar")
        if key == b"size" and not value.isdigit():
            raise SourceError(f"{where}: PAX size {value[:40]!r} is not a number; refusing "
                              "to read this tar")
        keys.add(key)
        pos += length
    return keys


def _check_end(window: BinaryIO, at: int, size: int, where: str, start: int,
               last: str | None) -> None:
    """Past the last header tarfile read there may only be end-of-archive zero blocks:
    tarfile stops silently at the first bad header, and a second tar appended after the
    end marker is skipped by `tar -x` too; either way members would go missing."""
    window.seek(at)
    block = window.read(tarfile.BLOCKSIZE)
    if block.strip(b"\0"):
        try:
            tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            why = "a header tarfile could not follow"
        except tarfile.HeaderError as exc:
            why = str(exc)
        raise SourceError(f"{where}: not a readable tar: byte {start + at:,} ({_after(last)}) "
                          f"is not a valid tar header ({why}); the tar is corrupt or "
                          "truncated") from None
    pos = at + len(block)
    while pos < size:
        chunk = window.read(min(_CHUNK, size - pos))
        if not chunk:
            break
        if chunk.strip(b"\0"):
            bad = pos + len(chunk) - len(chunk.lstrip(b"\0"))
            raise SourceError(f"{where}: data after the end-of-archive marker at byte "
                              f"{start + bad:,} ({_after(last)}): is another tar appended, or "
                              "is the tar corrupt? refusing to read it")
        pos += len(chunk)


def _hash_range(f: BinaryIO, offset: int, size: int, display: str) -> str:
    hasher = xxhash.xxh3_128()
    f.seek(offset)
    left = size
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            raise SourceError(f"{display}: truncated tar (member data ends early)")
        hasher.update(chunk)
        left -= len(chunk)
    return hasher.hexdigest()
