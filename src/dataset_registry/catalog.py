"""The catalog: a DuckDB index of manifests, sources, artifacts, files and runs.

The store is the truth; the catalog is derived and can be rebuilt from the
markers. DuckDB allows one writing process per file, so every write is a
short transaction under a file lock with retries, and nothing holds the
catalog across a build. `query` opens it read-only with file access and
configuration changes disabled, so `registry sql` can neither write nor read
files nor reach the network.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .errors import CatalogBusyError, QueryRefusedError

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
CREATE TABLE IF NOT EXISTS skipped (key VARCHAR, member VARCHAR, source VARCHAR, reason VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, job VARCHAR, flavor VARCHAR, action VARCHAR,
    created_at TIMESTAMP, spec_xxh3 VARCHAR, detail JSON);
CREATE TABLE IF NOT EXISTS run_inputs (run_id VARCHAR, role VARCHAR, key VARCHAR);
"""

_SANDBOX = {"enable_external_access": False, "lock_configuration": True,
            "autoload_known_extensions": False, "autoinstall_known_extensions": False}


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() or "Conflicting" in text


class Catalog:
    def __init__(self, path: str, *, timeout: float = 60.0) -> None:
        self.path = os.path.abspath(path)
        self.timeout = timeout

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One short write transaction, serialised across processes."""
        import duckdb
        from filelock import FileLock, Timeout

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            with FileLock(self.path + ".lock", timeout=self.timeout):
                con = self._connect(lambda: duckdb.connect(
                    self.path, config={"memory_limit": "256MB"}))
                try:
                    con.execute(SCHEMA)
                    con.execute("BEGIN")
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                finally:
                    con.close()
        except Timeout:
            raise CatalogBusyError(f"{self.path}: locked by another process for more than "
                                   f"{self.timeout:.0f}s") from None

    def _connect(self, opener: Any) -> Any:
        import duckdb

        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return opener()
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                    if _is_lock_conflict(exc):
                        raise CatalogBusyError(f"{self.path}: busy: {exc}") from None
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """A read-only query in a sandbox: no writes, no file or network access."""
        import duckdb

        if not os.path.exists(self.path):
            with self.write():
                pass
        con = self._connect(lambda: duckdb.connect(self.path, read_only=True, config=_SANDBOX))
        try:
            cur = con.execute(sql, params)
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, cur.fetchall()
        except (duckdb.PermissionException, duckdb.InvalidInputException) as exc:
            raise QueryRefusedError(f"query refused: the catalog is read-only and sandboxed "
                                    f"(no writes, files or network): {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise QueryRefusedError(f"query failed: {_first_line(exc)}") from None
        finally:
            con.close()

    # -- writers ---------------------------------------------------------------------------

    def record_sources(self, infos: list[Any]) -> None:
        with self.write() as con:
            for s in infos:
                con.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                            [s.fingerprint, s.name, s.layout, s.location, s.files, s.bytes,
                             s.synthetic])

    def sync_nodes(self, rows: list[dict[str, Any]], edges: list[tuple]) -> None:
        with self.write() as con:
            con.execute("DELETE FROM nodes")
            con.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[r["name"], r["kind"], r.get("recipe"), r.get("version"),
                              r.get("key"), r["manifest"], r["line"], list(r["tags"]),
                              r["description"], json.dumps(r.get("params"))] for r in rows])
            if edges:
                con.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)", edges)

    def record_artifact(self, marker: dict[str, Any], uri: str, store: str, tables: str) -> None:
        """Index an artifact: its marker, and the file tables in the local folder `tables`."""
        from .stores import FILES, SKIPPED

        key = marker["key"]
        files = os.path.join(tables, FILES).replace("'", "''")
        skipped = os.path.join(tables, SKIPPED).replace("'", "''")
        with self.write() as con:
            con.execute("DELETE FROM files WHERE key = ?", [key])
            con.execute("DELETE FROM skipped WHERE key = ?", [key])
            con.execute(f"INSERT INTO files SELECT ?, * FROM read_parquet('{files}')", [key])
            if marker.get("skipped"):
                con.execute(f"INSERT INTO skipped SELECT ?, * FROM read_parquet('{skipped}')",
                            [key])
            built = marker["built"]
            con.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "to_timestamp(?), ?, ?)",
                [key, marker["name"], marker["recipe"], marker["version"], store, uri,
                 marker["digest"], marker["files"], marker["bytes"], marker["skipped"],
                 marker.get("synthetic", False), built["at"], built["seconds"],
                 json.dumps(marker["params"])])
            for role, inp in marker["inputs"].items():
                con.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)",
                            [key, role, inp["key"], inp["kind"], inp["name"]])
            for src in marker.get("sources", []):
                con.execute("INSERT OR IGNORE INTO sources VALUES (?, ?, ?, NULL, ?, ?, ?, NULL)",
                            [src["fingerprint"], src["name"], src["layout"], src["files"],
                             src["bytes"], src["synthetic"]])

    def record_run(self, run_id: str, job: str, flavor: str, action: str, spec_xxh3: str,
                   detail: dict[str, Any], inputs: list[tuple[str, str]]) -> None:
        with self.write() as con:
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, now(), ?, ?)",
                        [run_id, job, flavor, action, spec_xxh3, json.dumps(detail)])
            con.executemany("INSERT INTO run_inputs VALUES (?, ?, ?)",
                            [[run_id, role, key] for role, key in inputs])

    def forget_artifact(self, key: str) -> None:
        with self.write() as con:
            for table in ("files", "skipped", "artifacts"):
                con.execute(f"DELETE FROM {table} WHERE key = ?", [key])

    def reset_artifacts(self) -> None:
        with self.write() as con:
            for table in ("files", "skipped", "artifacts"):
                con.execute(f"DELETE FROM {table}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
