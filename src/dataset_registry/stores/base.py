"""The store abstraction: where artifacts live, and the commit protocol that makes them
appear whole. Backends (`local`, and `object` for every fsspec object store) subclass
`Store`; every backend passes the conformance suite
`dataset_registry.testing.stores.StoreSuite` (run by tests/stores/ and the outside plugin).

A build gets a `Staging` (the coordinator's local folder, where `finish` writes)
and hands its tasks a `Drop` (picklable: where a task's files go, seen from any
worker). The marker, `_registry.json`, is written last: no marker, no artifact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from ..artifact.marker import (  # noqa: F401 - the layout names and the one marker parser, as before
    FILES,
    MARKER,
    MARKER_FIELDS,
    PARTS,
    RANGES,
    RESERVED,
    SCRATCH,
    SKIPPED,
    UNPUBLISHED,
    Marker,
    parse_marker,
    table_damage,
)
from ..core.remote import Remote
from ..errors import BuildError, VerifyError


@contextmanager
def file_lock(folder: str, key: str, timeout: float = -1) -> Iterator[None]:
    """The lock file `<folder>/<key>.lock`, held across processes of this machine."""
    from filelock import FileLock

    os.makedirs(folder, exist_ok=True)
    with FileLock(os.path.join(folder, f"{key}.lock"), timeout=timeout):
        yield


def record_path(kind: str, name: str) -> str:
    """Where record `name` of `kind` lies under a store's root ('/'-separated)."""
    import re

    if not (re.fullmatch(r"[a-z]+", kind) and re.fullmatch(r"[A-Za-z0-9_-]+", name)):
        raise ValueError(f"record {kind}/{name}: not a plain name")  # a caller's bug
    return f".{kind}/{name}.json"


def artifact_path(key: str) -> str:
    """Where artifact `key` lies under a store's root ('/'-separated): `<key[:2]>/<key>`."""
    return f"{key[:2]}/{key}"


@dataclass
class Staging:
    key: str
    path: str  # the coordinator's local folder for this build
    token: str = ""  # tells concurrent builds of one key apart


@dataclass(frozen=True)
class Drop:
    """Where a task writes, seen from whichever worker runs it (pickled to it).

    `folder()` is the local folder the task's `Output` writes into; `ship` runs
    after the task succeeded, `discard` after it failed. `ranged`: in-place
    writes (`Output.write_at`) must be kept as ranges, because the task's folder
    is not the file the coordinator assembles.
    """

    remote: Remote = field(default_factory=Remote)
    ranged: bool = False

    def folder(self) -> str:
        raise NotImplementedError

    def ship(self, folder: str) -> None:
        """Hand the finished task's files on (nothing to do when written in place)."""

    def discard(self, folder: str) -> None:
        """Forget a failed task's files (nothing to do when written in place)."""


@dataclass(frozen=True)
class FolderDrop(Drop):
    """Tasks write straight into the coordinator's staging folder (same machine, or a
    filesystem shared with every worker)."""

    path: str = ""

    def folder(self) -> str:
        return self.path


@dataclass(frozen=True)
class ScratchDrop(Drop):
    """Tasks write into a private temporary folder, shipped elsewhere when done."""

    ranged: bool = True

    def folder(self) -> str:
        return tempfile.mkdtemp(prefix="registry-task-")

    def discard(self, folder: str) -> None:
        shutil.rmtree(folder, ignore_errors=True)


class Store(ABC):
    """One abstraction per module: the store. Backends subclass this."""

    url: str  # what the catalog records: never holds a credential
    remote: Remote = Remote()  # how a remote backend reaches its objects

    @abstractmethod
    def marker(self, key: str) -> Marker | None:
        """The committed marker of `key` (`parse_marker` of its bytes), or None if `key`
        is not built."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where the artifact of `key` lives (a path or URL)."""

    @abstractmethod
    def local_path(self, key: str) -> str:
        """A local folder with the artifact's files (a cached copy for a remote store)."""

    def tables(self, key: str) -> str:
        """A local folder holding the artifact's `_files.parquet` (and `_skipped.parquet`)."""
        return self.local_path(key)

    def member_root(self, key: str) -> str:
        """Where tasks read the artifact's files from, when it is another build's input."""
        return self.local_path(key)

    @abstractmethod
    def begin(self, key: str) -> Staging:
        """A fresh, private staging area for a build of `key`."""

    # whether `resume` may hand back a killed build's staging area (engine/resume.py)
    resumable = False

    def resume(self, key: str) -> Staging | None:
        """The staging area a killed build of `key` left, with tasks finished (their
        done records), for the build to go on in; None: start afresh (`begin`). The
        caller holds `lock(key)`, so no live build of `key` writes there."""
        return None

    @abstractmethod
    def drop(self, staging: Staging, remote: Remote) -> Drop:
        """Where this build's tasks write (picklable)."""

    def gather(self, staging: Staging) -> None:  # noqa: B027 - optional hook
        """Bring what the tasks dropped elsewhere into `staging.path`, before `finish`."""

    @abstractmethod
    def commit(self, staging: Staging, marker: Marker) -> bool:
        """Publish a finished build, marker last; False if another builder committed first.
        The marker's bytes are `marker.to_json()`, whichever store writes them."""

    @abstractmethod
    def replace(self, staging: Staging, marker: Marker) -> None:
        """Publish a finished build over whatever `staging.key` holds now (a damaged
        artifact, or nothing): `registry resolve --repair`. The caller holds `lock(key)`.
        Until the new artifact is complete, the old one stays as it was."""

    @abstractmethod
    def abort(self, staging: Staging) -> None:
        """Throw away a failed build's staging area."""

    @abstractmethod
    def lock(self, key: str, timeout: float = -1) -> Any:
        """Context manager held by the one process (of this machine) building `key`."""

    @abstractmethod
    def committed(self) -> Iterator[str]:
        """Every committed key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a committed artifact (gc); the marker goes first."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Staging areas and unmarked files no live build holds (what gc sweeps)."""

    @abstractmethod
    def remove_leftover(self, path: str) -> None: ...

    @abstractmethod
    def put_record(self, kind: str, name: str, record: dict[str, Any]) -> None:
        """Keep a small JSON record (e.g. a job run) at `.<kind>/<name>.json` under the root,
        so the catalog can re-index it on rebuild."""

    @abstractmethod
    def records(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every readable record of `kind`, by name (an unparsable one is skipped)."""

    def delete_record(self, kind: str, name: str) -> None:
        """Remove record `name` of `kind` (`registry unpin`); one already gone is fine."""
        fs, root = self.filesystem()
        with suppress(FileNotFoundError):
            fs.rm_file(f"{root}/{record_path(kind, name)}")

    @abstractmethod
    def filesystem(self) -> tuple[Any, str]:
        """(fsspec filesystem, root path in it) for reading artifacts in place (verify)."""

    def verify(self, key: str) -> list[str]:
        """Problems found checking a committed artifact: its marker (parses, is this
        key's), its `_files.parquet` against the marker's digest and counts, and every
        file against its row. Read from the store itself, never from a cached copy."""
        from ..artifact.output import verify_artifact

        try:
            marker = self.marker(key)
        except VerifyError as exc:
            return [str(exc)]
        if marker is None:
            return [f"{self.uri(key)}: not built (no {MARKER})"]
        fs, root = self.filesystem()
        folder = f"{root}/{artifact_path(key)}"
        problems = [f"{folder}/{rel}: a link leading out of the artifact"
                    for rel in sorted(links_leaving(folder))] if "file" in fs.protocol else []
        return problems + verify_artifact(fs, folder, marker)


def outside(path: Any, leaving: set[str]) -> str | None:
    """Why the file-table row `path` would read outside its artifact, or None.
    `leaving`: the artifact's links that lead out of it (`links_leaving`)."""
    if not isinstance(path, str) or not path:
        return "has no path"
    parts = path.split("/")
    if path.startswith(("/", "\\")) or os.path.isabs(path):
        return "is an absolute path"
    if ".." in parts:
        return "climbs out of the artifact with '..'"
    for i in range(1, len(parts) + 1):
        if "/".join(parts[:i]) in leaving:
            return f"leads out of the artifact through the link {'/'.join(parts[:i])!r}"
    return None


def links_leaving(root: str, *, absolute: bool = False) -> set[str]:
    """'/'-separated paths of the symbolic links under `root` whose real path lies
    outside it (a build writes none; one found was put there). `absolute`: every link to
    an absolute path too, which leads out once the folder moves (staging, at commit)."""
    base = os.path.realpath(root)
    found: set[str] = set()

    def scan(folder: str, rel: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if os.path.commonpath([base, real]) != base or \
                            (absolute and os.path.isabs(os.readlink(entry.path))):
                        found.add(name)
                elif entry.is_dir():
                    scan(entry.path, name + "/")

    if os.path.isdir(root):
        scan(root, "")
    return found


def refuse_links_leaving(folder: str, what: str) -> None:
    """Before a build's files are published (renamed into place, or uploaded): a
    BuildError naming the first symbolic link under `folder` that leads out of it (or to
    an absolute path). Publishing it would serve, or upload, whatever it points at:
    plugins are code run with the user's rights, and a recipe writes files, not such
    links. `what`: the build, for the message."""
    leaving = sorted(links_leaving(folder, absolute=True))
    if leaving:
        link = os.path.join(folder, *leaving[0].split("/"))
        raise BuildError(f"{what}: {leaving[0]!r} is a symbolic link leading out of the "
                         f"artifact (to {os.readlink(link)!r}); refused: nothing is published")
