"""The object-storage store, written once over any fsspec filesystem: `s3://` (s3fs),
`gs://` (gcsfs), `az://` / `abfs://` (adlfs), `memory://` (fsspec's, this process
only). What differs per protocol (metadata fields, packages, secrets, buckets,
whether workers share the objects) is one row of `protocols.PROTOCOLS`.

Layout under `PROTO://bucket/prefix`::

    <key[:2]>/<key>/...                 the artifact's files, then _registry.json (last)
    .staging/<key>.<token>/             task scratch (.parts, .scratch, .ranges) of a build

Object storage has no rename, so there is no staged copy of the artifact:
tasks upload their files straight to the artifact's place and the coordinator
writes the marker last. A reader trusts only a marker. Two builders of one key
write the same bytes to the same names (builds are deterministic), so both
succeed and one artifact results; a crashed build leaves unmarked files that a
rerun overwrites and `registry gc` sweeps. Staging stays on the coordinator's
disk for what `finish` writes; `local_path` downloads a cached copy on demand.

A protocol whose objects only this process sees (`memory://`) cannot take uploads
from worker processes: its tasks write into the coordinator's staging folder
instead (workers on this machine, as with the local store) and `commit` uploads
it; another build reads its artifacts from the cached local copy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ..core.filewrites import PIECE, pwrite_all
from ..core.protocols import protocol, transport_errors
from ..core.remote import Remote
from ..errors import BadInputError, BuildError, VerifyError
from .base import (
    FILES,
    MARKER,
    RANGES,
    RESERVED,
    SKIPPED,
    UNPUBLISHED,
    Drop,
    FolderDrop,
    Marker,
    ScratchDrop,
    Staging,
    Store,
    artifact_path,
    file_lock,
    parse_marker,
    record_path,
    refuse_links_leaving,
    table_damage,
)

STAGING = ".staging"


def _walk(folder: str) -> Iterator[tuple[str, str]]:
    """(full path, '/'-separated relative path) of every file under `folder`."""
    for dirpath, dirnames, names in os.walk(folder):
        dirnames.sort()
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            yield full, os.path.relpath(full, folder).replace(os.sep, "/")


def literal(path: str) -> str:
    """`path` for fsspec calls that expand globs (rm, glob): its `*?[` escaped, so
    `s3://b/store[1]*` never matches, or deletes, `s3://b/store1-other`."""
    import glob

    return glob.escape(path)


def root_of(fs: Any, url: str) -> str:
    """`url` as `fs` names its paths (s3fs: `bucket/prefix`; memory: `/bucket/prefix`), so
    paths built from it compare equal to the ones `fs.find` returns."""
    return type(fs)._strip_protocol(url.rstrip("/")).rstrip("/")


def artifact_prefix(root: str, key: str) -> str:
    return f"{root}/{artifact_path(key)}"


def staging_prefix(root: str, key: str, token: str) -> str:
    return f"{root}/{STAGING}/{key}.{token}"


def upload(fs: Any, pairs: list[tuple[str, str]]) -> None:
    """Many files in one batched call: s3fs sends them concurrently, not one at a time."""
    if pairs:
        fs.put([local for local, _ in pairs], [remote for _, remote in pairs])


@dataclass(frozen=True)
class ObjectDrop(ScratchDrop):
    """A task's files: the published ones to the artifact's place, scratch to staging."""

    url: str = ""
    key: str = ""
    token: str = ""

    def ship(self, folder: str) -> None:
        try:  # fs.put would upload what a link leading out points at
            refuse_links_leaving(folder, f"a task of the build of {self.key}")
        except BuildError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        fs = self.remote.filesystem(self.url)
        root = root_of(fs, self.url)
        final = artifact_prefix(root, self.key)
        staging = staging_prefix(root, self.key, self.token)
        pairs = [(full, f"{staging if rel.split('/', 1)[0] in UNPUBLISHED else final}/{rel}")
                 for full, rel in _walk(folder)]
        try:
            self.remote.call(f"uploading a task's {len(pairs)} files to {self.url}", upload,
                             fs, pairs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class ObjectStore(Store):
    grace_seconds = 6 * 3600  # unmarked files younger than this may be a live build's

    def __init__(self, url: str, remote: Remote, cache_dir: str) -> None:
        self.url = url.rstrip("/")
        self.remote = remote
        self.proto = protocol(self.url)
        self.fs = remote.filesystem(self.url)
        self.root = root_of(self.fs, self.url)
        self.protocol = self.url.split("://", 1)[0]
        self.cache_dir = os.path.abspath(cache_dir)

    def _dir(self, key: str) -> str:
        return artifact_prefix(self.root, key)

    def _staging(self, staging: Staging) -> str:
        return staging_prefix(self.root, staging.key, staging.token)

    def _cached(self, key: str) -> str:
        """Where `local_path` keeps the downloaded copy of an artifact."""
        return os.path.join(self.cache_dir, "artifacts", *artifact_path(key).split("/"))

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.remote.call(f"{what} ({self.url})", fn, *args, **kwargs)

    def marker(self, key: str) -> Marker | None:
        try:
            data = self._call("reading a marker", self.fs.cat_file, f"{self._dir(key)}/{MARKER}")
        except FileNotFoundError:
            return None
        marker = parse_marker(data, f"{self.uri(key)}/{MARKER}", key)
        table = f"{self._dir(key)}/{FILES}"
        try:  # its size and last 8 bytes: damaged means not served (`verify` reads it all)
            size = int(self._call("reading a file table", self.fs.info, table)["size"])
            tail = self._call("reading a file table", self.fs.cat_file, table,
                              start=max(0, size - 8), end=size) if size else b""
            damage = table_damage(size, tail)
        except FileNotFoundError:
            damage = "missing"
        if damage:
            raise VerifyError(f"{table}: {damage}")
        return marker

    def uri(self, key: str) -> str:
        return f"{self.protocol}://{self._dir(key).lstrip('/')}"

    def member_root(self, key: str) -> str:
        # where no other process sees the objects, tasks read the cached local copy
        return self.uri(key) if self.proto.shared else self.local_path(key)

    def local_path(self, key: str) -> str:
        dest = self._cached(key)
        if os.path.exists(os.path.join(dest, MARKER)):
            return dest
        from filelock import FileLock

        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with FileLock(dest + ".lock"):
            if os.path.exists(os.path.join(dest, MARKER)):
                return dest
            if self.marker(key) is None:
                raise BadInputError(f"{self.uri(key)} is not built (no {MARKER})")
            tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
            try:
                self._download(self._dir(key), tmp)
                os.rename(tmp, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def tables(self, key: str) -> str:
        cached = self._cached(key)
        if os.path.exists(os.path.join(cached, MARKER)):
            return cached
        dest = os.path.join(self.cache_dir, "tables", key)
        if not os.path.exists(os.path.join(dest, FILES)):
            marker = self.marker(key)
            if marker is None:
                raise BadInputError(f"{self.uri(key)} is not built (no {MARKER})")
            tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
            names = [FILES] + ([SKIPPED] if marker.skipped else [])
            os.makedirs(tmp)
            try:
                try:
                    self._call("downloading file tables", self.fs.get,
                               [f"{self._dir(key)}/{n}" for n in names],
                               [os.path.join(tmp, n) for n in names])
                except FileNotFoundError:
                    raise VerifyError(f"{self.uri(key)}/{FILES} (or {SKIPPED}): missing; "
                                      "the artifact is damaged") from None
                shutil.rmtree(dest, ignore_errors=True)
                os.rename(tmp, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def _download(self, prefix: str, dest: str) -> None:
        self.fs.invalidate_cache(prefix)
        found = self._call("listing", self.fs.find, prefix)
        rels = [p[len(prefix):].lstrip("/") for p in found]
        locals_ = [os.path.join(dest, *rel.split("/")) for rel in rels]
        for path in {os.path.dirname(p) for p in locals_} | {dest}:
            os.makedirs(path, exist_ok=True)
        if found:
            self._call("downloading", self.fs.get, found, locals_)

    def begin(self, key: str) -> Staging:
        self._check_bucket()
        token = uuid.uuid4().hex[:12]
        path = os.path.join(self.cache_dir, "staging", f"{key}.{token}")
        os.makedirs(path)
        return Staging(key, path, token)

    def _check_bucket(self) -> None:
        """Before a build: a bucket that does not exist is the user's to fix (exit 2), said
        once, rather than a failed upload from every task."""
        if not self.proto.buckets:
            return
        bucket = self.root.split("/", 1)[0]
        if not self._call(f"checking bucket {bucket}", self.fs.exists, bucket):
            raise BadInputError(f"store {self.url}: bucket {bucket!r} does not exist (create "
                                "it, or name another with --store)")

    def drop(self, staging: Staging, remote: Remote) -> Drop:
        if not self.proto.shared:  # workers could not upload where this process reads
            return FolderDrop(remote=remote, path=staging.path)
        return ObjectDrop(remote=remote, url=self.url, key=staging.key, token=staging.token)

    def gather(self, staging: Staging) -> None:
        """Fetch the tasks' scratch and place their ranges into the files they belong to."""
        if not self.proto.shared:
            return  # the tasks wrote into `staging.path` itself, ranges in place
        self._download(self._staging(staging), staging.path)
        ranges = os.path.join(staging.path, RANGES)
        for full, rel in list(_walk(ranges)):
            target, offset = rel.rsplit("/", 1)
            dest = os.path.join(staging.path, *target.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                with open(full, "rb") as src:
                    position = int(offset)
                    while chunk := src.read(PIECE):  # (see core.filewrites)
                        position = pwrite_all(fd, [chunk], position)
            finally:
                os.close(fd)
        shutil.rmtree(ranges, ignore_errors=True)

    def commit(self, staging: Staging, marker: Marker) -> bool:
        if self.marker(staging.key) is not None:
            self.abort(staging)
            return False  # another coordinator committed the same bytes first
        final = self._dir(staging.key)
        pairs = self._publishable(staging, marker)
        self._call("uploading the artifact", upload, self.fs, pairs)
        body = marker.to_json().encode()
        self._call("writing the marker", self.fs.pipe_file, f"{final}/{MARKER}", body)
        self.abort(staging)
        return True

    def _publishable(self, staging: Staging, marker: Marker) -> list[tuple[str, str]]:
        """(local file, object) of every file of `staging` to upload; a link leading out
        of it is refused (uploading follows links)."""
        refuse_links_leaving(staging.path, f"{marker.name or staging.key} (key {staging.key})")
        final = self._dir(staging.key)
        return [(full, f"{final}/{rel}") for full, rel in _walk(staging.path)
                if rel.split("/", 1)[0] not in UNPUBLISHED]

    def replace(self, staging: Staging, marker: Marker) -> None:
        """No rename here, and tasks upload straight to the artifact's place: their files
        overwrite the damaged ones (with the same, deterministic bytes) while the damaged
        marker stays, so readers keep refusing it; then what `finish` wrote, the new
        marker, and the removal of every object the new file table does not list. A
        failed repair leaves the old marker: the artifact stays one verify reports."""
        import duckdb

        final = self._dir(staging.key)
        pairs = self._publishable(staging, marker)
        table = os.path.join(staging.path, FILES).replace("'", "''")
        listed = duckdb.sql(f"SELECT DISTINCT path FROM read_parquet('{table}')").fetchall()
        self._call("uploading the artifact", upload, self.fs, pairs)
        body = marker.to_json().encode()
        self._call("writing the marker", self.fs.pipe_file, f"{final}/{MARKER}", body)
        wanted = {f"{final}/{p}" for (p,) in listed} | {f"{final}/{n}" for n in RESERVED}
        self.fs.invalidate_cache(final)
        stale = [p for p in self._call("listing", self.fs.find, final) if p not in wanted]
        if stale:
            self._call("deleting what the new build did not write", self.fs.rm, stale)
        for copy in (self._cached(staging.key), os.path.join(self.cache_dir, "tables",
                                                             staging.key)):
            shutil.rmtree(copy, ignore_errors=True)  # local copies of the damaged one
        self.abort(staging)

    def abort(self, staging: Staging) -> None:
        try:
            self.fs.rm(literal(self._staging(staging)), recursive=True)
        except (FileNotFoundError, *transport_errors()):
            pass  # nothing dropped, or the endpoint is down: gc sweeps it later
        shutil.rmtree(staging.path, ignore_errors=True)

    def lock(self, key: str, timeout: float = -1) -> AbstractContextManager[None]:
        # Machine-local: coordinators elsewhere are safe because their bytes are the same.
        return file_lock(os.path.join(self.cache_dir, "locks"), key, timeout)

    def committed(self) -> Iterator[str]:
        self.fs.invalidate_cache(self.root)
        found = self._call("listing", self.fs.glob, f"{literal(self.root)}/*/*/{MARKER}")
        for path in sorted(found):
            prefix, key = path.split("/")[-3:-1]
            if len(prefix) == 2 and key.startswith(prefix):
                yield key

    def delete(self, key: str) -> None:
        self._call("deleting a marker", self.fs.rm_file, f"{self._dir(key)}/{MARKER}")
        self._call("deleting an artifact", self.fs.rm, literal(self._dir(key)), recursive=True)

    def leftovers(self) -> list[str]:
        """Staging prefixes and unmarked artifact folders untouched for `grace_seconds`
        (a live build elsewhere cannot be asked), then this machine's staging folders
        that no live build holds (a coordinator that died)."""
        return self._remote_leftovers() + self._local_leftovers()

    def _remote_leftovers(self) -> list[str]:
        self.fs.invalidate_cache(self.root)
        found = self._call("listing", self.fs.find, self.root, detail=True)
        newest: dict[str, float] = {}
        marked = set()
        for path, info in found.items():
            parts = path[len(self.root):].strip("/").split("/")
            if len(parts) < 3:
                continue
            folder = f"{self.root}/{parts[0]}/{parts[1]}"
            if parts[2] == MARKER:
                marked.add(folder)
            stamp = self.proto.mtime(info)  # unknown: as young as can be, so kept
            newest[folder] = max(newest.get(folder, 0.0), time.time() if stamp is None
                                 else stamp)
        cutoff = time.time() - self.grace_seconds
        return sorted(f for f, t in newest.items() if f not in marked and t <= cutoff)

    def _local_leftovers(self) -> list[str]:
        from filelock import FileLock, Timeout

        folder = os.path.join(self.cache_dir, "staging")
        found = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            locks = os.path.join(self.cache_dir, "locks")
            os.makedirs(locks, exist_ok=True)
            lock = FileLock(os.path.join(locks, f"{name.split('.', 1)[0]}.lock"))
            try:
                with lock.acquire(timeout=0):
                    found.append(os.path.join(folder, name))
            except Timeout:
                continue  # a live build on this machine holds it
        return found

    def remove_leftover(self, path: str) -> None:
        if path.startswith(os.path.join(self.cache_dir, "staging") + os.sep):
            shutil.rmtree(path, ignore_errors=True)
            return
        self._call("deleting leftovers", self.fs.rm, literal(path), recursive=True)

    def put_record(self, kind: str, name: str, record: dict[str, Any]) -> None:
        body = json.dumps(record, sort_keys=True).encode()
        self._call("writing a record", self.fs.pipe_file,
                   f"{self.root}/{record_path(kind, name)}", body)

    def records(self, kind: str) -> Iterator[dict[str, Any]]:
        prefix = f"{self.root}/.{kind}"
        self.fs.invalidate_cache(prefix)
        found = [p for p in self._call("listing records", self.fs.find, prefix)
                 if p.endswith(".json")]
        bodies = self._call("reading records", self.fs.cat, sorted(found)) if found else {}
        for path in sorted(bodies):
            try:
                yield json.loads(bodies[path])
            except ValueError:
                continue

    def filesystem(self) -> tuple[Any, str]:
        return self.fs, self.root
