"""The catalog: a DuckDB index of manifests, sources, artifacts, files and runs.

The store is the truth; the catalog is derived and rebuilt from the markers
and run records (`rebuild`: a new file next to the old, renamed over it).
DuckDB lets one process hold a file for writing, and even a read-only
connection in another process locks writers out, so:

- writers take a file lock and hold the catalog for one short transaction,
  retrying a few seconds at most; a writer that still cannot get in gives up
  (CatalogBusyError) and the next writing command catches up from the store;
- readers (`query`) never open the catalog itself: they copy it (under the
  writers' lock, a brief file copy) into a fresh private folder and query the
  copy, so a long query blocks nobody and a read-only catalog still answers.

A query runs sandboxed: SELECT/EXPLAIN only, read-only, no file or network
access, configuration locked, DuckDB's spill folder private to it and removed
after, memory and spill capped, stopped after `timeout` seconds or on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import (
    CatalogBusyError,
    CatalogCorruptError,
    QueryRefusedError,
    QueryTimeoutError,
    VerifyError,
)

if TYPE_CHECKING:
    from .marker import Marker

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    fingerprint VARCHAR PRIMARY KEY, name VARCHAR, layout VARCHAR, location VARCHAR,
    files BIGINT, bytes BIGINT, synthetic BOOLEAN, checked_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS nodes (
    name VARCHAR PRIMARY KEY, kind VARCHAR, recipe VARCHAR, version INTEGER, key VARCHAR,
    manifest VARCHAR, line INTEGER, tags VARCHAR[], description VARCHAR, params JSON);
CREATE TABLE IF NOT EXISTS edges (
    key VARCHAR, role VARCHAR, input_key VARCHAR, input_kind VARCHAR, input_name VARCHAR,
    PRIMARY KEY (key, role));
CREATE TABLE IF NOT EXISTS artifacts (
    key VARCHAR PRIMARY KEY, name VARCHAR, recipe VARCHAR, version INTEGER, store VARCHAR,
    uri VARCHAR, digest VARCHAR, files BIGINT, bytes BIGINT, skipped BIGINT,
    synthetic BOOLEAN, built_at TIMESTAMP, build_seconds DOUBLE, params JSON);
CREATE TABLE IF NOT EXISTS files (
    key VARCHAR, path VARCHAR, size BIGINT, xxh3 VARCHAR, label INTEGER, source VARCHAR,
    member VARCHAR, byte_offset BIGINT, record BIGINT);
ALTER TABLE files ADD COLUMN IF NOT EXISTS "class" VARCHAR;
ALTER TABLE files ADD COLUMN IF NOT EXISTS attrs VARCHAR;
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS card JSON;
ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS card JSON;
CREATE TABLE IF NOT EXISTS skipped (key VARCHAR, member VARCHAR, source VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, job VARCHAR, flavor VARCHAR, action VARCHAR,
    created_at TIMESTAMP, spec_xxh3 VARCHAR, detail JSON);
CREATE TABLE IF NOT EXISTS run_inputs (run_id VARCHAR, role VARCHAR, key VARCHAR);
CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR);
"""

MEMORY_LIMIT = "1GB"  # what one query may hold in memory ...
SPILL_LIMIT = "4GB"  # ... and spill to its private temp folder
_SANDBOX = {"enable_external_access": False, "lock_configuration": True,
            "autoload_known_extensions": False, "autoinstall_known_extensions": False,
            "memory_limit": MEMORY_LIMIT, "max_temp_directory_size": SPILL_LIMIT}
_READ_STATEMENTS = ("SELECT", "EXPLAIN")  # COPY, PRAGMA, SET, ATTACH, ... never run

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """A catalog warning on stderr, once per process however many writers hit it."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def _is_denied(exc: Exception) -> bool:
    text = str(exc)
    return "Permission denied" in text or "Read-only file system" in text


def _is_corruption(exc: Exception) -> bool:
    import duckdb

    if isinstance(exc, duckdb.InternalException | duckdb.FatalException |
                  duckdb.SerializationException):
        return True
    text = str(exc)
    return any(s in text for s in ("not a valid DuckDB database", "Could not read enough bytes",
                                   "checksum", "Corrupt", "corrupt"))


_HEADERS = 3 * 4096  # a DuckDB file: three header blocks, then its storage blocks


def _probe(con: Any, path: str) -> None:
    """Fail on a truncated file now, not on the first query that reads a missing block."""
    import duckdb

    # each used block has a slot of its own (free ones at the end may be cut off)
    _, _, block_size, _, used_blocks, *_ = con.execute("PRAGMA database_size").fetchone()
    expected = _HEADERS + int(block_size) * int(used_blocks)
    size = os.path.getsize(path)
    if size < expected:
        raise duckdb.IOException(f"Could not read enough bytes: the file holds {size} bytes "
                                 f"of the {expected} its blocks take (truncated)")


class Catalog:
    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = os.path.abspath(path)
        self.timeout = timeout  # how long a writer waits for another before it defers

    # -- opening -----------------------------------------------------------------------------

    def corrupt(self, exc: Exception) -> CatalogCorruptError:
        return CatalogCorruptError(f"catalog {self.path} is corrupt; run `registry catalog "
                                   f"rebuild` (DuckDB: {_first_line(exc)})")

    def _fail(self, exc: Exception) -> Exception:
        """What an error DuckDB raised on our catalog means to the user."""
        if _is_lock_conflict(exc):
            return CatalogBusyError(f"catalog {self.path}: held by another process for more "
                                    f"than {self.timeout:.0f}s")
        if _is_denied(exc):
            return CatalogBusyError(f"catalog {self.path} is not writable: {_first_line(exc)}")
        if _is_corruption(exc):
            return self.corrupt(exc)
        return exc

    def _connect(self, opener: Callable[[], Any]) -> Any:
        import duckdb

        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return opener()
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                    raise self._fail(exc) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' lock; a folder we may not write in has no writers to wait for."""
        from filelock import FileLock, Timeout

        try:
            lock = FileLock(self.path + ".lock", timeout=self.timeout)
            lock.acquire()
        except Timeout:
            raise CatalogBusyError(f"catalog {self.path}: locked by another process for more "
                                   f"than {self.timeout:.0f}s") from None
        except PermissionError:
            yield  # read-only: nobody can be writing through this lock
            return
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One short write transaction, serialised across processes."""
        import duckdb

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._locked():
            con = self._connect(lambda: duckdb.connect(self.path, config={"memory_limit": "256MB"}))
            try:
                _probe(con, self.path)
                con.execute(SCHEMA)
                con.execute("BEGIN")
                yield con
                con.execute("COMMIT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise self._fail(exc) from None
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()

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
            if _is_lock_conflict(exc) or _is_denied(exc):
                raise self._fail(exc) from None
            raise self.corrupt(exc) from None

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[str]:
        """A private folder holding `catalog.duckdb`, a copy of the catalog as of now."""
        import duckdb

        folder = tempfile.mkdtemp(prefix="registry-sql-")  # mode 0700: ours alone
        try:
            copy = os.path.join(folder, "catalog.duckdb")
            if os.path.exists(self.path):  # (no catalog yet: no lock file made either)
                with self._locked():
                    for suffix in ("", ".wal"):
                        with contextlib.suppress(FileNotFoundError):
                            shutil.copyfile(self.path + suffix, copy + suffix)
            if not os.path.exists(copy):  # no catalog yet: empty tables, nothing written here
                duckdb.connect(copy).execute(SCHEMA).close()
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def query(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = 60.0
              ) -> tuple[list[str], list[tuple]]:
        """A read-only query in a sandbox on a private copy; stopped after `timeout` s."""
        import duckdb

        _refuse_statements(sql)
        with self.snapshot() as folder:
            config = _SANDBOX | {"temp_directory": os.path.join(folder, "spill")}
            try:
                con = duckdb.connect(os.path.join(folder, "catalog.duckdb"), read_only=True,
                                     config=config)
            except duckdb.Error as exc:
                raise self._fail(exc) from None
            try:
                _probe(con, os.path.join(folder, "catalog.duckdb"))
                return _run(con, sql, params, timeout)
            except duckdb.Error as exc:
                if _is_corruption(exc):
                    raise self.corrupt(exc) from None
                if isinstance(exc, duckdb.PermissionException | duckdb.InvalidInputException):
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
            _insert_sources(con, infos)

    def sync_nodes(self, rows: list[dict[str, Any]], edges: list[tuple], infos: list[Any],
                   signature: str) -> None:
        with self.write() as con:
            con.execute("DELETE FROM nodes")
            con.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[r["name"], r["kind"], r.get("recipe"), r.get("version"),
                              r.get("key"), r["manifest"], r["line"], list(r["tags"]),
                              r["description"], json.dumps(r.get("params")),
                              json.dumps(r.get("card") or {})] for r in rows])
            if edges:
                con.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)", edges)
            _insert_sources(con, infos)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('nodes', ?)", [signature])

    def record_artifact(self, marker: Marker, uri: str, store: str, tables: str) -> None:
        """Index an artifact: its marker, and the file tables in the local folder `tables`.

        VerifyError if a table is unreadable (the store's copy is damaged)."""
        import duckdb

        from .stores import FILES, SKIPPED

        key = marker.key
        files = os.path.join(tables, FILES).replace("'", "''")
        skipped = os.path.join(tables, SKIPPED).replace("'", "''")
        with self.write() as con:
            con.execute("DELETE FROM files WHERE key = ?", [key])
            con.execute("DELETE FROM skipped WHERE key = ?", [key])
            try:
                # BY NAME: file tables from before `class` and `attrs` fit too
                con.execute("INSERT INTO files BY NAME SELECT ? AS key, * FROM "
                            f"read_parquet('{files}')", [key])
                if marker.skipped:
                    con.execute(f"INSERT INTO skipped SELECT ?, * FROM read_parquet('{skipped}')",
                                [key])
            except duckdb.Error as exc:  # not the catalog's fault: the store's table
                raise VerifyError(f"artifact {key} ({marker.name}): its file table is "
                                  f"damaged: {_first_line(exc)}") from None
            built = marker.built
            con.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "to_timestamp(?), ?, ?, ?)",
                [key, marker.name, marker.recipe, marker.version, store, uri,
                 marker.digest, marker.files, marker.bytes, marker.skipped,
                 marker.synthetic, built["at"], built["seconds"],
                 json.dumps(marker.params), json.dumps(dict(marker.card))])
            for role, inp in marker.inputs.items():
                con.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)",
                            [key, role, inp.key, inp.kind, inp.name])
            for src in marker.sources:
                con.execute("INSERT OR IGNORE INTO sources VALUES (?, ?, ?, NULL, ?, ?, ?, NULL)",
                            [src["fingerprint"], src["name"], src["layout"], src["files"],
                             src["bytes"], src["synthetic"]])

    def record_run(self, record: dict[str, Any]) -> None:
        """Index a run record (as the store keeps it: see Registry._record_run)."""
        with self.write() as con:
            con.execute("DELETE FROM run_inputs WHERE run_id = ?", [record["run_id"]])
            con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, to_timestamp(?), ?, ?)",
                        [record["run_id"], record["job"], record["flavor"], record["action"],
                         record["created_at"], record["spec_xxh3"],
                         json.dumps(record["detail"])])
            con.executemany("INSERT INTO run_inputs VALUES (?, ?, ?)",
                            [[record["run_id"], role, key] for role, key in record["inputs"]])

    def forget_artifacts(self, keys: list[str]) -> None:
        with self.write() as con:
            for table in ("files", "skipped", "artifacts"):
                con.executemany(f"DELETE FROM {table} WHERE key = ?", [[k] for k in keys])

    # -- rebuild -----------------------------------------------------------------------------

    def rebuild(self, fill: Callable[[Catalog], None], catch_up: Callable[[Catalog], None]
                ) -> str | None:
        """Fill a new catalog next to this one, then rename it over this one.

        `fill` runs without any lock (it may take long); `catch_up` then runs on the new
        file under the writers' lock, to index what writers added meanwhile, and the
        rename happens under that lock too. A corrupt old file is moved aside first
        (returned); on any failure the old file stays as it was.
        """
        new = Catalog(f"{self.path}.rebuild-{uuid.uuid4().hex[:8]}", timeout=self.timeout)
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
            for leftover in (new.path, new.path + ".wal", new.path + ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)


def _insert_sources(con: Any, infos: list[Any]) -> None:
    for s in infos:
        con.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                    [s.fingerprint, s.name, s.layout, s.location, s.files, s.bytes, s.synthetic])


def _refuse_statements(sql: str) -> None:
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"query failed: {_first_line(exc)}") from None
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind not in _READ_STATEMENTS:
            raise QueryRefusedError(f"query refused: only SELECT runs on the catalog "
                                    f"(read-only and sandboxed), not {kind}: "
                                    f"{statement.query.strip()[:60]}")


def _run(con: Any, sql: str, params: Sequence[Any], timeout: float | None
         ) -> tuple[list[str], list[tuple]]:
    """Run on a worker thread, so Ctrl-C and the timeout reach us here and interrupt it."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            cur = con.execute(sql, params)
            columns = [d[0] for d in cur.description] if cur.description else []
            outcome["result"] = (columns, cur.fetchall())
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    def stop() -> None:  # until it has stopped: an interrupt before it started is lost
        while not done.wait(0.2):
            con.interrupt()

    threading.Thread(target=work, daemon=True).start()
    try:
        finished = done.wait(timeout if timeout and timeout > 0 else None)
    except KeyboardInterrupt:
        stop()
        raise
    if not finished:
        stop()
        if "result" not in outcome:
            raise QueryTimeoutError(f"query stopped after {timeout:g}s (the --timeout); "
                                    "narrow it, or give it more time with --timeout S")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
