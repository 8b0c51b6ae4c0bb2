"""Substituters: copying a built artifact from one store to another (caches, pull, push).

As Nix's substituters: a key names the same bytes in every store, so an artifact a
teammate built can be copied instead of rebuilt. `transfer(source, dest, key)` copies
every file of the artifact, checks each file's xxh3 against the source's
`_files.parquet` (itself checked against the marker's digest), and writes the marker,
`_registry.json`, last: until then a reader of the destination sees nothing.

The bytes are checked where they pass through this machine: a file downloaded from a
remote source is hashed after the download, a local file before it is uploaded; what
lies at a remote destination is then checked by size in one listing (reading every
object back would double the transfer).

Resumable: a local destination is filled in one staging folder named for the key
(`.staging/<key>.transfer`, under the store's lock for the key) and renamed into place
by the store's own commit, sealed read-only; an object-store destination takes the
files at the artifact's place, unmarked. A stopped transfer leaves that folder or those
unmarked objects; the retry keeps the files already there whose size and xxh3 match,
and copies the rest. `registry gc` sweeps what no retry came back for.

Caches are read-only stores consulted in order: `--cache URL` (repeatable), else
DATASET_REGISTRY_CACHES (comma-separated), else `caches = [...]` in registry.toml.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from ..artifact.marker import FILES, MARKER, SKIPPED, Marker
from ..core.keys import digest_rows
from ..core.progress import Advance, ProgressFactory, bar
from ..errors import BadInputError, StorageError, VerifyError
from ..stores import LocalStore, Staging, Store, artifact_path

if TYPE_CHECKING:
    from ..manifest import DatasetNode

CACHES_ENV = "DATASET_REGISTRY_CACHES"
HASH_THREADS = 8  # xxh3 releases the GIL on large buffers: hashing overlaps reading
CHUNK = 1 << 22


@dataclass(frozen=True)
class Transferred:
    """What `transfer` did: the artifact's `files` and `bytes` (as its marker counts them);
    `copied` files (`copied_bytes`) moved now, `kept` files already at the destination (a
    resumed transfer); `present`: the whole artifact was there already."""

    key: str
    source: str
    dest: str
    files: int = 0
    bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    kept: int = 0
    present: bool = False


def cache_urls(root: str, given: list[str] | None = None) -> list[str]:
    """The caches, in the order they are consulted: `given` (--cache), else the
    environment's DATASET_REGISTRY_CACHES, else registry.toml's `caches`."""
    if given:
        return list(dict.fromkeys(given))
    env = [u.strip() for u in os.environ.get(CACHES_ENV, "").split(",") if u.strip()]
    if env:
        return list(dict.fromkeys(env))
    from ..plugins import CONFIG, read_config

    caches = read_config(root).get("caches", [])
    if not isinstance(caches, list) or not all(isinstance(u, str) and u for u in caches):
        raise BadInputError(f"{os.path.join(root, CONFIG)}: caches must be a list of store "
                            'URLs, e.g. caches = ["s3://team/registry"]')
    return list(dict.fromkeys(caches))


def holds(store: Store, key: str) -> bool:
    """Whether `store` has a committed artifact of `key` (a damaged one does not count)."""
    try:
        return store.marker(key) is not None
    except VerifyError:
        return False


def transfer(source: Store, dest: Store, key: str, *, locked: bool = False,
             progress: ProgressFactory | None = None, label: str | None = None) -> Transferred:
    """Copy artifact `key` from `source` to `dest`, verified, marker last (see the module
    docstring). `locked`: the caller holds `dest.lock(key)` already (the resolver does).
    `progress`: a bar named `label` (default: the key) counting the files copied.
    A BadInputError if `source` has no such artifact; VerifyError if what it holds does
    not match its own records (nothing is published); StorageError if a store fails."""
    marker = source.marker(key)
    if marker is None:
        raise BadInputError(f"{source.uri(key)}: not there (no {MARKER})")
    with nullcontext() if locked else dest.lock(key):
        if dest.marker(key) is not None:
            return Transferred(key, source.url, dest.url, marker.files, marker.bytes,
                               present=True)
        with _readable(source, key) as (src, fetch):
            rows = _checked_rows(src, fetch, marker, source.uri(key))
            copy = _Copy(source, dest, key, marker, rows, src, fetch)
            with bar(progress, label or key, copy.moves(), unit="files") as advance:
                return copy.run(advance)


@contextmanager
def _readable(source: Store, key: str) -> Iterator[tuple[str, Any]]:
    """(a local folder for the source's files, how to fetch missing ones into it): the
    artifact itself in a local store; a scratch folder filled on demand otherwise."""
    fs, root = source.filesystem()
    if isinstance(source, LocalStore):
        yield f"{root}/{artifact_path(key)}", None
        return
    prefix = f"{root}/{artifact_path(key)}"
    scratch = tempfile.mkdtemp(prefix="registry-transfer-")
    try:
        def fetch(rels: list[str], folder: str = scratch, advance: Advance | None = None
                  ) -> None:
            locals_ = [os.path.join(folder, *r.split("/")) for r in rels]
            for parent in {os.path.dirname(p) for p in locals_}:
                os.makedirs(parent, exist_ok=True)
            source.remote.call(f"downloading {len(rels)} files ({source.url})", fs.get,
                               [f"{prefix}/{r}" for r in rels], locals_,
                               callback=_counting(advance))

        yield scratch, fetch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _checked_rows(src: str, fetch: Any, marker: Marker, where: str
                  ) -> list[tuple[str, int, str]]:
    """(path, size, xxh3) of every file of the artifact, from its `_files.parquet`, once
    the table's rows give the marker's digest, counts and bytes."""
    from fsspec.implementations.local import LocalFileSystem

    from ..artifact.output import _file_rows

    if fetch is not None:
        try:
            fetch([FILES])
        except FileNotFoundError:
            raise VerifyError(f"{where}/{FILES}: missing; nothing was copied") from None
    rows = _file_rows(LocalFileSystem(), os.path.join(src, FILES))
    if (digest_rows(rows), len(rows), sum(s for _, s, _ in rows)) != \
            (marker.digest, marker.files, marker.bytes):
        raise VerifyError(f"{where}/{FILES}: its rows do not match {MARKER} (the file table "
                          "was changed); nothing was copied")
    return rows


def hash_file(path: str) -> str:
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


class _Copy:
    """One transfer of one artifact (what `transfer` does once the source is checked)."""

    def __init__(self, source: Store, dest: Store, key: str, marker: Marker,
                 rows: list[tuple[str, int, str]], src: str, fetch: Any) -> None:
        self.source, self.dest, self.key, self.marker = source, dest, key, marker
        self.rows, self.src, self.fetch = rows, src, fetch
        self.extra = [FILES] + ([SKIPPED] if self._has_skipped() else [])

    def _has_skipped(self) -> bool:
        if self.fetch is None:
            return os.path.isfile(os.path.join(self.src, SKIPPED))
        try:
            self.fetch([SKIPPED])
            return True
        except FileNotFoundError:
            return False

    def moves(self) -> int:
        """How many file copies the transfer makes at most (the progress bar's total): each
        file once, twice from one object store to another (down, then up)."""
        files = len(self.rows) + len(self.extra)
        return files * 2 if self.fetch is not None and \
            not isinstance(self.dest, LocalStore) else files

    def run(self, advance: Advance) -> Transferred:
        """The copy; `advance(n)` as n more files are copied (those kept count too)."""
        if isinstance(self.dest, LocalStore):
            copied, kept = self._into_local(advance)
        else:
            copied, kept = self._into_object(advance)
        size = sum(self.rows[i][1] for i in copied)
        return Transferred(self.key, self.source.url, self.dest.url, self.marker.files,
                           self.marker.bytes, copied=len(copied), copied_bytes=size, kept=kept)

    def _bad(self, rel: str, size: int, want: str, path: str) -> str | None:
        """Why the file at local `path` is not row (rel, size, want), or None."""
        try:
            have = os.path.getsize(path)
        except OSError:
            return "missing"
        if have != size:
            return f"size {have}, recorded {size}"
        if hash_file(path) != want:
            return "content differs (xxh3 differs from the record)"
        return None

    def _check_all(self, folder: str, todo: list[int]) -> list[str | None]:
        from concurrent.futures import ThreadPoolExecutor  # here: `show` reads cache_urls

        with ThreadPoolExecutor(HASH_THREADS) as pool:
            return list(pool.map(lambda i: self._bad(*self.rows[i], os.path.join(
                folder, *self.rows[i][0].split("/"))), todo))

    def _into_local(self, advance: Advance) -> tuple[list[int], int]:
        dest = self.dest
        assert isinstance(dest, LocalStore)
        folder = os.path.join(dest.root, ".staging", f"{self.key}.transfer")
        with dest._writing(folder):
            os.makedirs(folder, exist_ok=True)
        everything = range(len(self.rows))
        todo = [i for i, bad in zip(everything, self._check_all(folder, list(everything)),
                                    strict=True) if bad]
        kept = len(self.rows) - len(todo)
        advance(kept)
        rels = [self.rows[i][0] for i in todo]
        with dest._writing(folder):
            if self.fetch is not None:  # remote source: straight into the staging folder
                self.fetch(rels + self.extra, folder, advance)
            else:
                for rel in rels + self.extra:
                    target = os.path.join(folder, *rel.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copyfile(os.path.join(self.src, *rel.split("/")), target)
                    advance(1)
        self._raise_bad(folder, todo)
        dest.commit(Staging(self.key, folder, "transfer"), self.marker)
        return todo, kept

    def _into_object(self, advance: Advance) -> tuple[list[int], int]:
        fs, root = self.dest.filesystem()
        prefix = f"{root}/{artifact_path(self.key)}"
        call = self.dest.remote.call
        fs.invalidate_cache(prefix)
        try:
            there = {p[len(prefix):].lstrip("/"): int(info["size"]) for p, info in
                     call(f"listing ({self.dest.url})", fs.find, prefix, detail=True).items()}
        except FileNotFoundError:
            there = {}
        # a file already there is kept if its size matches and, read back, its xxh3 does
        maybe = [i for i, (rel, size, _) in enumerate(self.rows) if there.get(rel) == size]
        kept_ok = set()
        if maybe:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(HASH_THREADS) as pool:
                hashes = pool.map(lambda i: _remote_hash(fs, f"{prefix}/{self.rows[i][0]}"),
                                  maybe)
                kept_ok = {i for i, h in zip(maybe, hashes, strict=True) if h == self.rows[i][2]}
        todo = [i for i in range(len(self.rows)) if i not in kept_ok]
        advance(len(kept_ok) * (2 if self.fetch is not None else 1))
        rels = [self.rows[i][0] for i in todo]
        if self.fetch is not None:
            self.fetch(rels + self.extra, advance=advance)
        self._raise_bad(self.src, todo)
        local = [os.path.join(self.src, *r.split("/")) for r in rels + self.extra]
        if local:
            call(f"uploading {len(local)} files ({self.dest.url})", fs.put, local,
                 [f"{prefix}/{r}" for r in rels + self.extra], callback=_counting(advance))
        fs.invalidate_cache(prefix)
        there = {p[len(prefix):].lstrip("/"): int(info["size"]) for p, info in
                 call(f"listing ({self.dest.url})", fs.find, prefix, detail=True).items()}
        short = [rel for rel, size, _ in self.rows if there.get(rel) != size]
        if short:
            raise StorageError(f"{self.dest.uri(self.key)}/{short[0]}: not there in full "
                               f"after the upload ({len(short)} files); no marker written, "
                               "run the transfer again")
        call(f"writing the marker ({self.dest.url})", fs.pipe_file, f"{prefix}/{MARKER}",
             self.marker.to_json().encode())
        return todo, len(self.rows) - len(todo)

    def _raise_bad(self, folder: str, todo: list[int]) -> None:
        for i, bad in zip(todo, self._check_all(folder, todo), strict=True):
            if bad:
                raise VerifyError(f"{self.source.uri(self.key)}/{self.rows[i][0]}: {bad}; "
                                  "the copy is not published")


def _counting(advance: Advance | None) -> Any:
    """An fsspec callback calling `advance(1)` as each file of a bulk get/put is done."""
    from fsspec.callbacks import Callback

    class Counting(Callback):
        def relative_update(self, inc: int = 1) -> None:
            if advance is not None:
                advance(inc)

    return Counting()


def _remote_hash(fs: Any, path: str) -> str:
    hasher = xxhash.xxh3_128()
    with fs.open(path, "rb", block_size=CHUNK) as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()




def substitute(store: Store, caches: list[Store], key: str, *,
               progress: ProgressFactory | None = None, name: str | None = None
               ) -> Store | None:
    """Pull `key` (dataset `name`) into `store` from the first of `caches` that holds it
    (the caller holds `store.lock(key)`), with a bar from `progress`; the cache it came
    from, or None when none holds it. A cache
    that fails (unreachable, or what it holds does not verify) is a StorageError or
    VerifyError: a cache that cannot be trusted stops the resolve rather than be
    skipped silently into a rebuild."""
    for cache in caches:
        if holds(cache, key):
            transfer(cache, store, key, locked=True, progress=progress,
                     label=f"pulling {name or key} from {cache.url}")
            return cache
    return None


def pulled_from_cache(resolver: Any, node: DatasetNode, asked: str,
                      pulled: dict[str, str]) -> bool:
    """(`resolver`: the `Resolver` asking; typed loosely, as the resolver imports this.)
    Whether dataset `node`, missing from the resolver's store, is now pulled from one of
    its caches (then recorded in `pulled`, name: cache URL, and in the catalog). Asked
    top-down by `Resolver.resolve`, so a dataset found in a cache needs none of its
    inputs. `asked`: the dataset being resolved, for a damaged marker's message."""
    key = resolver.key(node.name)
    if resolver.marker(node.name, asked) is not None:
        return False
    with resolver.store.lock(key):
        if resolver.marker(node.name, asked) is not None:
            return False  # another process built or pulled it while we waited
        cache = substitute(resolver.store, resolver.caches(), key,
                           progress=resolver.progress, name=node.name)
    if cache is None:
        return False
    pulled[node.name] = cache.url
    marker = resolver.marker(node.name, asked)
    assert marker is not None
    resolver.record(marker)
    return True


__all__ = ["CACHES_ENV", "Transferred", "cache_urls", "holds", "pulled_from_cache",
           "substitute", "transfer"]
