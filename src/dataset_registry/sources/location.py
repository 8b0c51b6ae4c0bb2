"""Where a source's bytes are: a local path or an object-storage URL, behind one interface.

Sources on object storage are indexed by one sequential read (every member is hashed
for the fingerprint anyway), then read in place by byte ranges through the
member index: a tar on S3 is never downloaded whole by a build.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.keys import hash_bytes, hash_file
from ..core.protocols import protocol
from ..core.remote import Remote, is_remote
from ..core.statsig import stat_signature, walk_stat
from ..errors import SourceError
from .layouts import BESIDE
from .tarindex import IndexedMember, Opener, scan_tar, tar_is_synthetic
from .zipcheck import DEFLATED
from .zipindex import is_zip, scan_zip, unpacked

if TYPE_CHECKING:  # (the pools, and numpy: imported only to read an archive)
    from .zippool import Central

SYNTHETIC_MARKER = "SYNTHETIC-IMAGENET.txt"
"""File `registry synth` leaves at the root of a folder source."""

Progress = Callable[[int], None] | None


class LocalPlace:
    def __init__(self, location: str) -> None:
        self.location = os.path.abspath(location)
        self.empty_folders: list[str] = []  # a folder's, as its last signature found them

    def exists(self) -> bool:
        return os.path.exists(self.location)

    def is_file(self) -> bool:
        return os.path.isfile(self.location)

    def signature(self) -> str:
        self.empty_folders = []
        return stat_signature(self.location, self.empty_folders)

    def size(self) -> int:
        """The archive's size in bytes (what indexing it reads, about)."""
        return os.path.getsize(self.location)

    def scan_tar(self, nested: Callable[[str], bool], progress: Progress = None
                 ) -> Iterator[IndexedMember]:
        return scan_archive(self.location, nested, None, progress)

    def scan_folder(self, progress: Progress) -> Iterator[IndexedMember]:
        for rel, st in walk_stat(self.location):
            if rel == SYNTHETIC_MARKER:
                continue
            yield IndexedMember(rel, 0, st.st_size,
                                hash_file(os.path.join(self.location, rel)))
            if progress:
                progress(st.st_size)

    def synthetic(self) -> bool:
        if self.is_file():
            return tar_is_synthetic(self.location)
        return os.path.exists(os.path.join(self.location, SYNTHETIC_MARKER))

    def open(self) -> Any:
        return open(self.location, "rb")

    def beside(self, name: str) -> str:
        """The path of file `name` next to this (archive) location."""
        return os.path.join(os.path.dirname(self.location), *name.split("/"))

    def beside_member(self, name: str) -> IndexedMember | None:
        path = self.beside(name)
        if not os.path.isfile(path):
            return None
        return IndexedMember(BESIDE + name, 0, os.path.getsize(path), hash_file(path))

    def beside_signature(self, name: str) -> str:
        path = self.beside(name)
        return stat_signature(path) if os.path.exists(path) else "missing"

    def read(self, member: IndexedMember) -> bytes:
        """One member's bytes (a layout reads its label tables this way)."""
        if member.path.startswith(BESIDE):
            with open(self.beside(member.path[len(BESIDE):]), "rb") as f:
                return f.read()
        if self.is_file():
            with open(self.location, "rb") as f:
                return unpacked(os.pread(f.fileno(), member.packed or member.size,
                                         member.offset), member.size, member.packed,
                                f"{self.location}: {member.path}")
        with open(os.path.join(self.location, member.path), "rb") as f:
            return f.read()


class RemotePlace:
    """A tar or a folder (prefix) on object storage; signatures from sizes and each
    object's version token (S3's ETag, GCS's md5Hash, ...: `protocols.py`)."""

    _BATCH = 64  # objects hashed per round of concurrent requests

    def __init__(self, location: str, remote: Remote) -> None:
        self.location = location.rstrip("/")
        self.remote = remote
        self.proto = protocol(self.location)
        self.fs = remote.filesystem(self.location)
        # as the filesystem names paths (memory: a leading '/'), so find()'s results match
        self.path = type(self.fs)._strip_protocol(self.location).rstrip("/")
        self._info: dict[str, Any] | None = None
        # object storage keeps no folders, only keys (a console's "folder" is a key of its own)
        self.empty_folders: list[str] = []

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.remote.call(f"reading source {self.location}", fn, *args, **kwargs)

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self.fs.invalidate_cache(self.path)
            self._info = self._call(self.fs.info, self.path)
        return self._info

    def exists(self) -> bool:
        try:
            self.info()
        except FileNotFoundError:
            return False
        return True

    def is_file(self) -> bool:
        return self.info()["type"] == "file"

    def _objects(self) -> list[tuple[str, int, str]]:
        """(relative name, size, version) of every object under the folder, sorted."""
        found = self._call(self.fs.find, self.path, detail=True)
        rows = [(p[len(self.path):].lstrip("/"), int(i["size"]), self.proto.version(i))
                for p, i in found.items()]
        return sorted(r for r in rows if not any(s.startswith(".") for s in r[0].split("/")))

    def signature(self) -> str:
        if self.is_file():
            info = self.info()
            return f"remote-file:{info['size']}:{self.proto.version(info)}"
        rows = "\n".join(f"{n}\t{s}\t{e}" for n, s, e in self._objects())
        return "remote-dir:" + hash_bytes(rows.encode())

    def size(self) -> int:
        return int(self.info()["size"])

    def scan_tar(self, nested: Callable[[str], bool], progress: Progress = None
                 ) -> Iterator[IndexedMember]:
        return scan_archive(self.location, nested, lambda _: self.open(), progress)

    def scan_folder(self, progress: Progress) -> Iterator[IndexedMember]:
        objects = [o for o in self._objects() if o[0] != SYNTHETIC_MARKER]
        for i in range(0, len(objects), self._BATCH):
            batch = objects[i:i + self._BATCH]
            paths = [f"{self.path}/{name}" for name, _, _ in batch]
            blobs = self._call(self.fs.cat, paths)
            for name, size, _ in batch:
                yield IndexedMember(name, 0, size, hash_bytes(blobs[f"{self.path}/{name}"]))
                if progress:
                    progress(size)

    def synthetic(self) -> bool:
        if self.is_file():
            return tar_is_synthetic(self.location, opener=lambda _: self.open())
        return bool(self._call(self.fs.exists, f"{self.path}/{SYNTHETIC_MARKER}"))

    def open(self) -> Any:
        try:
            return self.fs.open(self.path, "rb", block_size=16 << 20, cache_type="readahead")
        except FileNotFoundError:
            raise SourceError(f"{self.location}: does not exist") from None

    def beside(self, name: str) -> str:
        return f"{self.path.rsplit('/', 1)[0]}/{name}"

    def _beside_info(self, name: str) -> dict[str, Any] | None:
        try:
            info = self._call(self.fs.info, self.beside(name))
        except FileNotFoundError:
            return None
        return info if info["type"] == "file" else None

    def beside_member(self, name: str) -> IndexedMember | None:
        info = self._beside_info(name)
        if info is None:
            return None
        data = self._call(self.fs.cat_file, self.beside(name))
        return IndexedMember(BESIDE + name, 0, int(info["size"]), hash_bytes(data))

    def beside_signature(self, name: str) -> str:
        info = self._beside_info(name)
        return "missing" if info is None else f"{info['size']}:{self.proto.version(info)}"

    def read(self, member: IndexedMember) -> bytes:
        if member.path.startswith(BESIDE):
            return self._call(self.fs.cat_file, self.beside(member.path[len(BESIDE):]))
        if self.is_file():
            return unpacked(self._call(self.fs.cat_file, self.path, start=member.offset,
                                       end=member.offset + (member.packed or member.size)),
                            member.size, member.packed, f"{self.location}: {member.path}")
        return self._call(self.fs.cat_file, f"{self.path}/{member.path}")


def scan_archive(location: str, nested: Callable[[str], bool], opener: Opener | None,
                 progress: Progress = None, central: Central | None = None
                 ) -> Iterator[IndexedMember]:
    """The members of the tar or zip at `location` (told apart by their first bytes);
    `progress` gets each member's bytes as it is hashed; a local zip's members are read
    from its `central` directory where it was read already."""
    from .nestedpool import scan_local  # (the pools, and numpy: only to read an archive)
    from .zippool import scan_zip_local

    if archive_kind(location, opener) == "tar":
        if opener is None:
            yield from scan_local(location, nested, progress)
        else:
            yield from scan_tar(location, nested=nested, opener=opener, progress=progress)
        return
    members = scan_zip(location, opener=opener, progress=progress) if opener else \
        scan_zip_local(location, progress, central=central)
    for m in members:
        yield IndexedMember(m.path, m.offset, m.size, m.xxh3,
                            m.packed if m.method == DEFLATED else 0)


def archive_kind(location: str, opener: Opener | None = None) -> str:
    """"zip" or "tar": told apart by the first bytes; a `.zip` that does not start as one
    (a stub in front, not a zip at all) is "zip", named by the zip reader, whose messages
    say what it is. SourceError if it cannot be opened."""
    try:
        with (opener or _open_local)(location) as f:
            head = f.read(4)
    except OSError as exc:
        raise SourceError(f"{location}: cannot open: {exc.strerror or exc}") from None
    return "zip" if is_zip(head) or location.lower().endswith(".zip") else "tar"


def _open_local(path: str) -> Any:
    return open(path, "rb")


def place(location: str, remote: Remote | None = None) -> LocalPlace | RemotePlace:
    return RemotePlace(location, remote or Remote()) if is_remote(location) \
        else LocalPlace(location)
