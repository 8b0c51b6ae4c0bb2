"""The local store: a folder, with staging and one rename as the commit.

Layout::

    <root>/<key[:2]>/<key>/            a committed artifact (its files, _files.parquet,
                                       and _registry.json, the marker)
    <root>/.staging/<key>.<token>/     a build in progress (or a crashed one, for gc)
    <root>/.locks/<key>.lock           held by the one process building <key>

A build writes into staging, writes the marker last, then renames the whole
folder into place: a reader that finds `_registry.json` finds everything.
A committed artifact is read-only, as in the Nix store: its files and folders
lose their write bits at commit, and get them back only to be removed (gc) or
replaced (`registry resolve --repair`).
Tasks write straight into staging, so workers must share this filesystem
(local processes, a Dask LocalCluster, or a cluster on a shared volume).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ..artifact.marker import DONE_LOG, local_table_damage
from ..core.atomic import fsync_path, write_atomic
from ..core.remote import Remote
from ..errors import BuildError, StorageError, VerifyError
from .base import (
    FILES,
    MARKER,
    PARTS,
    FolderDrop,
    Marker,
    Staging,
    Store,
    artifact_path,
    file_lock,
    parse_marker,
    record_path,
    refuse_links_leaving,
)

_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


class LocalStore(Store):
    grace_seconds = 6 * 3600  # unmarked artifact folders younger than this are left alone

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root

    def _dir(self, key: str) -> str:
        return os.path.join(self.root, *artifact_path(key).split("/"))

    def marker(self, key: str) -> Marker | None:
        path = os.path.join(self._dir(key), MARKER)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VerifyError(f"{path}: the marker is unreadable ({exc.strerror})") from None
        marker = parse_marker(data, path, key)
        table = os.path.join(self._dir(key), FILES)
        damage = local_table_damage(table)
        if damage:  # damaged means not served, by any reader
            raise VerifyError(f"{table}: {damage}")
        return marker

    def uri(self, key: str) -> str:
        return self._dir(key)

    def local_path(self, key: str) -> str:
        return self._dir(key)

    def begin(self, key: str) -> Staging:
        path = os.path.join(self.root, ".staging", f"{key}.{uuid.uuid4().hex[:12]}")
        with self._writing(path):
            os.makedirs(path)
        return Staging(key, path, os.path.basename(path).split(".", 1)[1])

    resumable = True  # tasks write into the staging folder itself: their parts are here

    def resume(self, key: str) -> Staging | None:
        """The newest of this key's staging folders that holds done records and was not
        finalized (`finalize` takes `.parts` out, done records included: `.parts/done.log`,
        see engine/resume.py), taken over under a new token; others: gc's.

        The rename fences off the killed build's tasks: one still running (a Dask worker
        outlives its coordinator) writes by the old path, so whatever it opens from now
        on lands in a folder of its own (gc's), never among this build's parts and files,
        and never in the artifact this build publishes. Only a file it had open already
        is shared: its part, which this build removes (its task runs again), or one of
        its task's files, which this build's run of that task rewrites to the same bytes
        (tasks are deterministic)."""
        folder = os.path.join(self.root, ".staging")
        found = []
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            stem, _, token = name.partition(".")
            path = os.path.join(folder, name)
            if stem == key and re.fullmatch(r"[0-9a-f]{12}", token) and \
                    os.path.isfile(os.path.join(path, PARTS, DONE_LOG)) and \
                    not os.path.lexists(os.path.join(path, MARKER)):
                found.append((os.stat(path).st_mtime, path, token))
        if not found:
            return None
        _, killed, _ = max(found)
        token = uuid.uuid4().hex[:12]
        path = os.path.join(folder, f"{key}.{token}")
        with self._writing(path):
            os.rename(killed, path)
        return Staging(key, path, token)

    def drop(self, staging: Staging, remote: Remote) -> FolderDrop:
        return FolderDrop(remote=remote, path=staging.path)

    def commit(self, staging: Staging, marker: Marker) -> bool:
        final = self._publishable(staging, marker)
        try:
            os.rename(staging.path, final)
        except OSError:
            if self.marker(staging.key) is None:
                name = marker.name or staging.key
                raise BuildError(f"cannot publish {final}: it exists without a marker (a "
                                 "damaged or half-deleted artifact); rebuild it in place "
                                 f"with: registry resolve --repair {name}") from None
            self.abort(staging)
            return False
        _chmod(final, remove=_WRITE)
        fsync_path(os.path.dirname(final))
        return True

    def replace(self, staging: Staging, marker: Marker) -> None:
        final = self._publishable(staging, marker)
        aside, mode = None, 0
        if os.path.lexists(final):  # moved aside, not deleted, until the new one is in
            aside = os.path.join(self.root, ".staging",
                                 f"{staging.key}.damaged-{uuid.uuid4().hex[:8]}")
            mode = os.lstat(final).st_mode
            _chmod(final, add=stat.S_IWUSR)  # renaming a folder rewrites its ".."
            os.rename(final, aside)
        try:
            os.rename(staging.path, final)
        except OSError as exc:
            if aside is not None:
                os.rename(aside, final)
                os.chmod(final, stat.S_IMODE(mode))
            raise BuildError(f"cannot replace {final}: {exc.strerror}; it is left as it "
                             "was") from None
        _chmod(final, remove=_WRITE)
        fsync_path(os.path.dirname(final))
        if aside is not None:
            _remove_tree(aside)

    def _publishable(self, staging: Staging, marker: Marker) -> str:
        """Write the marker into `staging`, seal its contents read-only, and return where
        the artifact goes (its parent folder made). The top folder stays writable until
        renamed: renaming a folder rewrites its ".." entry. A link leading out of it is
        refused first (sealing would chmod what it points at)."""
        refuse_links_leaving(staging.path, f"{marker.name or staging.key} (key {staging.key})")
        path = os.path.join(staging.path, MARKER)
        with self._writing(path):  # fsynced: a committed artifact must survive a crash
            write_atomic(path, marker.to_json(), fsync=True)
        for dirpath, dirnames, filenames in os.walk(staging.path):
            for name in dirnames + filenames:
                _chmod(os.path.join(dirpath, name), remove=_WRITE)
        final = self._dir(staging.key)
        with self._writing(os.path.dirname(final)):
            os.makedirs(os.path.dirname(final), exist_ok=True)
        return final

    def abort(self, staging: Staging) -> None:
        _remove_tree(staging.path)

    def lock(self, key: str, timeout: float = -1) -> AbstractContextManager[None]:
        return _locked(self, os.path.join(self.root, ".locks"), key, timeout)

    @contextmanager
    def _writing(self, path: str) -> Iterator[None]:
        """An OSError writing `path` (full disk, read-only or unwritable store) as a
        StorageError naming it and the store."""
        try:
            yield
        except TimeoutError:
            raise  # a build lock held elsewhere (`lock(key, timeout)`): not a write failure
        except OSError as exc:
            raise StorageError(f"{path}: cannot write into the store {self.root} "
                               f"({exc.strerror or exc})") from None

    def committed(self) -> Iterator[str]:
        if not os.path.isdir(self.root):
            return
        for prefix in sorted(os.listdir(self.root)):
            if len(prefix) != 2 or prefix.startswith("."):
                continue
            for key in sorted(os.listdir(os.path.join(self.root, prefix))):
                if os.path.exists(os.path.join(self.root, prefix, key, MARKER)):
                    yield key

    def delete(self, key: str) -> None:
        # Rename first so a reader never sees a half-deleted artifact with its marker.
        doomed = os.path.join(self.root, ".staging", f"{key}.deleting-{uuid.uuid4().hex[:8]}")
        os.makedirs(os.path.dirname(doomed), exist_ok=True)
        _chmod(self._dir(key), add=stat.S_IWUSR)
        os.rename(self._dir(key), doomed)
        _remove_tree(doomed)

    def leftovers(self) -> list[str]:
        """Staging folders no live build's lock holds, then artifact folders without a
        marker (a delete or a copy cut short) untouched for `grace_seconds`: one that
        young may be a copy still arriving (another machine on a shared filesystem)."""
        return self._staging_leftovers() + self._unmarked_leftovers()

    def _unmarked_leftovers(self) -> list[str]:
        import time

        cutoff = time.time() - self.grace_seconds
        found = []
        for prefix in sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []:
            folder = os.path.join(self.root, prefix)
            if len(prefix) != 2 or prefix.startswith(".") or not os.path.isdir(folder):
                continue
            for key in sorted(os.listdir(folder)):
                path = os.path.join(folder, key)
                if os.path.lexists(os.path.join(path, MARKER)) or not key.startswith(prefix):
                    continue
                if _newest_change(path) <= cutoff:
                    found.append(path)
        return found

    def _staging_leftovers(self) -> list[str]:
        from filelock import FileLock, Timeout

        staging = os.path.join(self.root, ".staging")
        if not os.path.isdir(staging):
            return []
        found = []
        for name in sorted(os.listdir(staging)):
            key = name.split(".", 1)[0]
            lock = FileLock(os.path.join(self.root, ".locks", f"{key}.lock"))
            try:
                with lock.acquire(timeout=0):
                    found.append(os.path.join(staging, name))
            except Timeout:
                continue  # a live build holds it
        return found

    def remove_leftover(self, path: str) -> None:
        _remove_tree(path)

    def put_record(self, kind: str, name: str, record: dict[str, Any]) -> None:
        path = os.path.join(self.root, *record_path(kind, name).split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, json.dumps(record, sort_keys=True))

    def records(self, kind: str) -> Iterator[dict[str, Any]]:
        folder = os.path.join(self.root, f".{kind}")
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for name in names:
            if name.endswith(".json"):
                try:
                    with open(os.path.join(folder, name), encoding="utf-8") as f:
                        yield json.load(f)
                except (OSError, ValueError):
                    continue

    def filesystem(self) -> tuple[Any, str]:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), self.root


def _chmod(path: str, *, add: int = 0, remove: int = 0) -> None:
    if not os.path.islink(path):  # an artifact holds no links; never chmod through one
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        os.chmod(path, (mode | add) & ~remove)


def _newest_change(path: str) -> float:
    """The latest modification time of `path` or anything under it (links not followed)."""
    newest = os.lstat(path).st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _remove_tree(path: str) -> None:
    """rmtree of a (possibly sealed) tree: removing entries needs write bits on folders."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        _chmod(path, add=stat.S_IRWXU)
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                _chmod(os.path.join(dirpath, name), add=stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(store: LocalStore, folder: str, key: str, timeout: float) -> Iterator[None]:
    with store._writing(os.path.join(folder, f"{key}.lock")):
        lock = file_lock(folder, key, timeout)
        lock.__enter__()
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
