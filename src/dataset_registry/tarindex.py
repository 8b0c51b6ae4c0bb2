"""Read tars in place: a member index (name, data offset, size, xxh3), nested tars too.

Nothing is ever extracted. A member is later read with one `pread` at its
absolute offset in the outer file, which works for members of nested tars
because uncompressed tars store their members' bytes verbatim.
Members that could escape a folder on extraction (absolute paths, '..',
links, devices) are refused: a tar holding them is not a dataset source.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import xxhash

from .errors import SourceError, UnsafeMemberError

_CHUNK = 1 << 20

SYNTHETIC_PAX_KEY = "DATASET_REGISTRY.synthetic"
"""PAX global header keyword that marks a tar written by `registry synth`."""


@dataclass(frozen=True)
class IndexedMember:
    path: str  # member path; a nested member is "outer.tar/inner/name"
    offset: int  # absolute offset of the member's data in the outer file
    size: int
    xxh3: str


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


def check_member(tar_path: str, info: tarfile.TarInfo) -> None:
    """Refuse members that are not plain files or folders inside the archive."""
    name = info.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        why = "an absolute path"
    elif ".." in parts:
        why = "a '..' path component"
    elif info.issym() or info.islnk():
        why = f"a {'symbolic' if info.issym() else 'hard'} link to {info.linkname!r}"
    elif not (info.isfile() or info.isdir()):
        why = "a device, fifo or other special file"
    elif any(c in name for c in "\n\r\0"):
        why = "a name with control characters"
    else:
        return
    raise UnsafeMemberError(f"{tar_path}: member {name!r} is {why}; refusing to read this tar")


Opener = Callable[[str], BinaryIO]


def scan_tar(path: str, *, nested: Callable[[str], bool] = lambda name: False,
             progress: Callable[[int], None] | None = None,
             opener: Opener | None = None) -> Iterator[IndexedMember]:
    """Yield every file member of the tar at `path` (and of nested tars `nested` selects);
    `opener` opens a non-local `path` (a seekable binary file, e.g. from fsspec)."""
    try:
        f = (opener or _open_local)(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        yield from _scan(f, path, 0, size, "", nested, progress)


def _open_local(path: str) -> BinaryIO:
    return open(path, "rb")


def tar_is_synthetic(path: str, opener: Opener | None = None) -> bool:
    """True if the tar carries the PAX global header `registry synth` writes."""
    try:
        with (opener or _open_local)(path) as f, tarfile.open(fileobj=f, mode="r:") as tf:
            tf.next()
            return tf.pax_headers.get(SYNTHETIC_PAX_KEY) == "1"
    except (OSError, tarfile.TarError):
        return False


def _scan(f: BinaryIO, display: str, start: int, size: int, prefix: str,
          nested: Callable[[str], bool], progress: Callable[[int], None] | None,
          ) -> Iterator[IndexedMember]:
    window = f if start == 0 else io.BufferedReader(_Slice(f, start, size), _CHUNK)
    seen: set[str] = set()
    try:
        tf = tarfile.open(fileobj=window, mode="r:")  # type: ignore[arg-type]  # noqa: SIM115
        for info in tf:
            check_member(f"{display}:{prefix}" if prefix else display, info)
            if info.isdir():
                continue
            name = info.name[2:] if info.name.startswith("./") else info.name
            if name in seen:
                raise UnsafeMemberError(f"{display}: member {prefix + name!r} appears twice; "
                                        "refusing an ambiguous tar")
            seen.add(name)
            offset = start + info.offset_data
            if nested(name):
                yield from _scan(f, display, offset, info.size, f"{prefix}{name}/", nested,
                                 progress)
                continue
            yield IndexedMember(prefix + name, offset, info.size,
                                _hash_range(f, offset, info.size, display))
            if progress:
                progress(info.size)
        tf.members.clear()
    except tarfile.TarError as exc:
        where = f"{display}:{prefix.rstrip('/')}" if prefix else display
        raise SourceError(f"{where}: not a readable tar ({exc})") from None


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
