"""The catalog: a DuckDB index of manifests, sources, artifacts, files and runs.

The store is the truth; the catalog is derived and rebuilt from the markers
and run records (`rebuild`: a new file next to the old, renamed over it).
DuckDB lets one process hold a file for writing, and even a read-only
connection in another process locks writers out, so:

- writers take a file lock and hold the catalog for one short transaction,
  retrying a few seconds at most; a writer that still cannot get in gives up
  (CatalogBusyError) and the next writing command catches up from the store;
- readers (`query`) never write and never make a writer wait long: a query opens
  the catalog itself read-only (many readers may) unless a writer holds or waits for
  it, and asks every 50 ms whether one has come (a shared probe of the writers' lock,
  which a writer takes before it opens the file); when one has, the query stops,
  lets go of the file and goes on on a copy (taken under the writers' lock, once that
  writer is done) in its private folder. So a query costs no copy unless it meets a
  writer, a long one delays a writer by a poll, and a read-only catalog still answers;
- a catalog that cannot be written (read-only, full) is a CatalogBusyError too,
  raised at once by every later write of the same Catalog;
- a rebuild holds its new file's lock from before the file exists until it is
  renamed or removed, so what a killed one leaves is told from a live one's files
  (`remove_dead_rebuilds`).

A query runs sandboxed: SELECT/EXPLAIN only, read-only, no file or network
access, configuration locked, DuckDB's spill folder private to it and removed
after, memory and spill capped, stopped after `timeout` seconds or on Ctrl-C.

The package: `schema` (the tables, what DuckDB's errors mean), `writes` (what each
writer inserts), `sandbox` (which statements a query may hold, running it, whether a
writer waits for the file meanwhile).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..artifact.filetable import ROW_GROUP_ROWS
from ..errors import CatalogBusyError, CatalogCorruptError, QueryRefusedError
from .sandbox import (  # noqa: F401 - importable from here, as before the split
    _READ_STATEMENTS,
    _SANDBOX,
    MEMORY_LIMIT,
    SPILL_LIMIT,
    Yielded,
    _refuse_statements,
    _run,
    _sandbox_refused,
    _writer_waits,
)
from .schema import (  # noqa: F401 - importable from here, as before the split
    _HEADERS,
    SCHEMA,
    _first_line,
    _is_corruption,
    _is_lock_conflict,
    _probe,
    _unwritable,
    _warned,
    warn_once,
)
from .writes import insert_artifact, insert_run, insert_sources, replace_nodes

if TYPE_CHECKING:
    from ..artifact.marker import Marker


class Catalog:
    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = os.path.abspath(path)
        self.timeout = timeout  # how long a writer waits for another before it defers
        self._lock: Any = None  # the writers' lock (one per Catalog: it is reentrant)
        # Set once a write found the file or its folder unwritable (read-only, full): the
        # later writes of this command fail at once, with the same error, not again
        # through DuckDB (a full disk may take part of a write before it fails).
        self._cannot_write: Exception | None = None
        self._holding = False  # inside held(): writes keep the connection they open
        self._kept: tuple[Any, bool] | None = None  # that connection, and whether the
        # writers' lock is held with it (not where its file cannot be made)

    # -- opening -----------------------------------------------------------------------------

    def corrupt(self, exc: Exception) -> CatalogCorruptError:
        return CatalogCorruptError(f"catalog {self.path} is corrupt; run `registry catalog "
                                   f"rebuild` (DuckDB: {_first_line(exc)})")

    def _fail(self, exc: Exception) -> Exception:
        """What an error DuckDB raised on our catalog means to the user."""
        if _is_lock_conflict(exc):
            return CatalogBusyError(f"catalog {self.path}: held by another process for more "
                                    f"than {self.timeout:.0f}s")
        if why := _unwritable(exc):
            return CatalogBusyError(f"catalog {self.path} cannot be written ({why})")
        if _is_corruption(exc):
            return self.corrupt(exc)
        return exc

    def _failed_write(self, exc: Exception) -> Exception:
        """`_fail`, remembering an unwritable catalog for the writes that follow."""
        failure = self._fail(exc)
        if _unwritable(exc):
            self._cannot_write = failure
        return failure

    def _connect(self, opener: Callable[[], Any]) -> Any:
        import duckdb

        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return opener()
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                    raise self._failed_write(exc) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' lock (reentrant); a folder where the lock file cannot be made
        (read-only, full) has no writers to wait for."""
        from filelock import FileLock, Timeout

        if self._lock is None:
            self._lock = FileLock(self.path + ".lock", timeout=self.timeout)
        try:
            self._lock.acquire()
        except Timeout:
            raise CatalogBusyError(f"catalog {self.path}: locked by another process for more "
                                   f"than {self.timeout:.0f}s") from None
        except OSError as exc:
            if not _unwritable(exc):
                raise
            yield  # nobody can be writing through this lock
            return
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The writes inside share the connection the first of them opens (and the writers'
        lock with it), each still its own transaction: a command's last few writes (a
        build's record, then the catalog's upkeep) open and close the file once, not
        once each (~40 ms a time on a 16-core machine). Hold it only around those: while
        it is held, other processes wait to open the catalog."""
        if self._holding:
            yield
            return
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            self.let_go()

    def let_go(self) -> None:
        """Close the connection held() kept, if any (held() does as it ends)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            con, locked = kept
            try:
                con.close()
            finally:
                if locked:
                    self._lock.release()

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One short write transaction, serialised across processes."""
        import duckdb

        if self._cannot_write is not None:
            raise self._cannot_write
        if self._kept is not None:
            yield from self._transaction(self._kept[0])
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            if not _unwritable(exc):
                raise
            raise self._failed_write(exc) from None
        with self._locked():
            con = self._connect(lambda: _open_for_writes(self.path))
            kept = False
            try:
                try:
                    _probe(con, self.path)
                    con.execute(SCHEMA)
                except duckdb.Error as exc:
                    raise self._failed_write(exc) from None
                yield from self._transaction(con)
                if self._holding:  # kept, with the writers' lock, until held() ends
                    locked = self._lock is not None and self._lock.is_locked
                    if locked:
                        self._lock.acquire()  # (reentrant: still held as _locked() ends)
                    self._kept, kept = (con, locked), True
            finally:
                if not kept:
                    con.close()

    def _transaction(self, con: Any) -> Iterator[Any]:
        """`con` in one transaction, committed unless what runs in it raises."""
        import duckdb

        try:
            con.execute("BEGIN")
            yield con
            con.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise self._failed_write(exc) from None
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise

    def check(self) -> None:
        """Raise CatalogCorruptError if the file exists and DuckDB cannot read it."""
        import duckdb

        if not os.path.exists(self.path):
            return
        try:
            con = duckdb.connect(self.path, read_only=True)
            try:
                _probe(con, self.path)
            finally:
                con.close()
        except duckdb.Error as exc:
            if _is_lock_conflict(exc) or _unwritable(exc):
                raise self._fail(exc) from None
            raise self.corrupt(exc) from None

    # -- reading -----------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = 60.0
              ) -> tuple[list[str], list[tuple]]:
        """A read-only query in a sandbox, stopped after `timeout` s: on the catalog itself
        while no writer wants it, else on a private copy (see the module's doc)."""
        started = time.monotonic()
        folder = tempfile.mkdtemp(prefix="registry-sql-")  # mode 0700: ours alone
        try:
            lock = self.path + ".lock"
            if os.path.exists(self.path) and not _writer_waits(lock):
                try:
                    return self._query_file(self.path, folder, sql, params, timeout,
                                            yield_to=lambda: _writer_waits(lock))
                except Yielded:
                    pass  # a writer wants the file: the query goes on on a copy
            copy = self._copy_into(folder)
            return self._query_file(copy, folder, sql, params, timeout,
                                    spent=time.monotonic() - started)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _copy_into(self, folder: str) -> str:
        """`folder`/catalog.duckdb: a copy of the catalog as of now, taken under the
        writers' lock (no catalog yet: empty tables, nothing written beside it)."""
        import duckdb

        copy = os.path.join(folder, "catalog.duckdb")
        if os.path.exists(self.path):  # (no catalog yet: no lock file made either)
            with self._locked():
                for suffix in ("", ".wal"):
                    with contextlib.suppress(FileNotFoundError):
                        shutil.copyfile(self.path + suffix, copy + suffix)
        if not os.path.exists(copy):
            duckdb.connect(copy).execute(SCHEMA).close()
        return copy

    def _query_file(self, path: str, folder: str, sql: str, params: Sequence[Any],
                    timeout: float | None, *, spent: float = 0.0,
                    yield_to: Callable[[], bool] | None = None) -> tuple[list[str], list[tuple]]:
        """The query on the DuckDB file `path` (the catalog, or a copy of it in `folder`),
        spilling into `folder`; `yield_to` (on the catalog itself): see sandbox._run. A
        catalog a writer holds, or that this process has open otherwise, raises Yielded."""
        import duckdb

        config = _SANDBOX | {"temp_directory": os.path.join(folder, "spill")}
        try:
            con = duckdb.connect(path, read_only=True, config=config)
        except duckdb.Error as exc:
            if yield_to is not None and (_is_lock_conflict(exc) or
                                         isinstance(exc, duckdb.ConnectionException)):
                raise Yielded() from None
            raise self._fail(exc) from None
        try:
            _refuse_statements(con, sql)  # before anything runs
            _probe(con, path)
            return _run(con, sql, params, timeout, spent=spent, yield_to=yield_to)
        except duckdb.Error as exc:
            if _is_corruption(exc):
                raise self.corrupt(exc) from None
            if _sandbox_refused(exc):
                raise QueryRefusedError(
                    "query refused: the catalog is read-only and sandboxed (no writes, "
                    f"files or network): {_first_line(exc)}") from None
            raise QueryRefusedError(f"query failed: {_first_line(exc)}") from None
        finally:
            con.close()

    def state(self, store: str) -> tuple[set[str], str | None]:
        """(keys of the artifacts of `store` it indexes, the nodes' sync signature)."""
        with self.write() as con:
            keys = {k for (k,) in con.execute("SELECT key FROM artifacts WHERE store = ?",
                                              [store]).fetchall()}
            row = con.execute("SELECT value FROM meta WHERE name = 'nodes'").fetchone()
        return keys, row[0] if row else None

    def run_ids(self) -> set[str]:
        with self.write() as con:
            return {r for (r,) in con.execute("SELECT run_id FROM runs").fetchall()}

    # -- writers -----------------------------------------------------------------------------

    def record_sources(self, infos: list[Any]) -> None:
        with self.write() as con:
            insert_sources(con, infos)

    def sync_nodes(self, rows: list[dict[str, Any]], edges: list[tuple], infos: list[Any],
                   signature: str) -> None:
        with self.write() as con:
            replace_nodes(con, rows, edges, infos, signature)

    def record_artifact(self, marker: Marker, uri: str, store: str, tables: str) -> None:
        """Index an artifact: its marker, and the file tables in the local folder `tables`.

        VerifyError if a table is unreadable (the store's copy is damaged)."""
        with self.write() as con:
            insert_artifact(con, marker, uri, store, tables)

    def record_run(self, record: dict[str, Any]) -> None:
        """Index a run record (as the store keeps it: see Registry._record_run)."""
        with self.write() as con:
            insert_run(con, record)

    def forget_artifacts(self, keys: list[str]) -> None:
        with self.write() as con:
            for table in ("files", "skipped", "artifacts"):
                con.executemany(f"DELETE FROM {table} WHERE key = ?", [[k] for k in keys])

    # -- rebuild -----------------------------------------------------------------------------

    def rebuild(self, fill: Callable[[Catalog], None], catch_up: Callable[[Catalog], None]
                ) -> str | None:
        """Fill a new catalog next to this one, then rename it over this one.

        `fill` runs without the writers' lock (it may take long); `catch_up` then runs on
        the new file under the writers' lock, to index what writers added meanwhile, and
        the rename happens under that lock too. A corrupt old file is moved aside first
        (returned); on any failure the old file stays as it was. The new file's own lock
        is held from before it exists until it is gone: what a killed rebuild leaves has
        no live holder, and `remove_dead_rebuilds` removes it.
        """
        new = Catalog(f"{self.path}{_REBUILD}{uuid.uuid4().hex[:8]}", timeout=self.timeout)
        with new._locked():
            try:
                fill(new)
                with self._locked():
                    catch_up(new)
                    aside = None
                    try:
                        self.check()
                    except CatalogCorruptError:
                        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
                        os.replace(self.path, aside)
                    os.replace(new.path, self.path)
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path + ".wal")  # the old file's log, not the new one's
                    return aside
            finally:
                # the lock file first, while still held: killed after it, the files left
                # have no lock file, and the next sweep makes one, takes it and removes them
                for leftover in (new.path + ".lock", new.path, new.path + ".wal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(leftover)

    def remove_dead_rebuilds(self) -> list[str]:
        """Remove what killed rebuilds left next to the catalog (`<catalog>.rebuild-*`):
        the files of each one whose lock no live process holds. Returns the paths removed.

        A lock file alone is what a rebuild killed before it made its database leaves, or
        that of one starting this instant (between making its lock file and taking it,
        where this sweep must not take it first): removed only once older than a minute."""
        from filelock import FileLock, Timeout

        found = glob.glob(glob.escape(self.path + _REBUILD) + "*")
        removed: list[str] = []
        for base in sorted({p.removesuffix(".wal").removesuffix(".lock") for p in found}):
            data = [p for p in (base, base + ".wal") if os.path.lexists(p)]
            lock_path = base + ".lock"
            had_lock = os.path.lexists(lock_path)
            if not data and not (had_lock and _older_than(lock_path, 60)):
                continue
            lock = FileLock(lock_path, timeout=0)
            try:
                lock.acquire()
            except (Timeout, OSError):
                continue  # a live rebuild holds it, or nothing here can be removed
            try:
                for path in [*data, lock_path]:  # the lock file last (as rebuild does)
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                        if path != lock_path or had_lock:  # not the one we just made
                            removed.append(path)
            except OSError:
                pass  # e.g. a read-only folder: what is left stays for a later sweep
            finally:
                lock.release()
        return removed


_REBUILD = ".rebuild-"  # <catalog>.rebuild-<8 hex>: a rebuild's new file, until renamed


def _older_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime > seconds
    except FileNotFoundError:
        return False


def _open_for_writes(path: str) -> Any:
    """A writer's connection to the catalog at `path`, attached with row groups of
    ROW_GROUP_ROWS. DuckDB writes an append straight to the file once it fills a row group
    (its optimistic write); what fills none goes into the log at the commit and is copied
    into the file again by the checkpoint as the connection closes. At its default size
    (122,880 rows) a build's file rows did not fill one: recording 96,000 of them took
    0.15-0.18 s, 0.10 s at this size (2 cores), and the log 19 MB, 8 KB. The file's own
    temporary folder is kept (an in-memory connection would spill into the working one)."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "256MB", "temp_directory": path + ".tmp"})
    try:
        quoted = path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS registry_catalog (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        con.execute("USE registry_catalog")
    except BaseException:
        con.close()
        raise
    return con
