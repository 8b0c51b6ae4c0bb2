"""The catalog's tables (DDL), and what DuckDB's errors on the catalog file mean."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..artifact.filetable import FILE_COLUMNS, SKIP_COLUMNS


def _table(name: str, own: str, columns: dict[str, str]) -> str:
    """The catalog's table `name` of an artifact table's `columns` (artifact/filetable.py),
    after the catalog's own columns `own`; a catalog made before a column was added to
    the artifact table gets it (empty for the rows it holds) on its next write."""
    listed = ", ".join(f'"{c}" {t}' for c, t in columns.items())
    added = "".join(f'ALTER TABLE {name} ADD COLUMN IF NOT EXISTS "{c}" {t};\n'
                    for c, t in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {name} ({own}, {listed});\n{added}"


SCHEMA = f"""
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
{_table("files", "key VARCHAR", FILE_COLUMNS)}
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS card JSON;
ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS card JSON;
{_table("skipped", "key VARCHAR", SKIP_COLUMNS)}
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, job VARCHAR, flavor VARCHAR, action VARCHAR,
    created_at TIMESTAMP, spec_xxh3 VARCHAR, detail JSON);
CREATE TABLE IF NOT EXISTS run_inputs (run_id VARCHAR, role VARCHAR, key VARCHAR);
CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR);
"""


_warned: set[str] = set()


def warn_once(message: str, *, about: str | None = None) -> None:
    """A catalog warning on stderr, once per process however many writers hit it: once
    per `about` (the problem, e.g. the catalog error, whichever writer met it first), or
    per message when it is not given."""
    topic = message if about is None else about
    if topic not in _warned:
        _warned.add(topic)
        print(f"warning: {message}", file=sys.stderr)


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


# What the OS says when a file cannot be written at all, whoever asks (DuckDB's messages
# carry strerror): not a lock to wait for, not damage to rebuild.
_UNWRITABLE = ("Read-only file system", "Permission denied", "No space left on device",
               "Disk quota exceeded")


def _unwritable(exc: BaseException) -> str | None:
    """Why the catalog's folder or file cannot be written (strerror), if that is the
    error; None for any other."""
    text = str(exc)
    return next((why for why in _UNWRITABLE if why in text), None)


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

    # each used block has a slot of its own (free ones at the end may be cut off); the
    # catalog's own row: a writer's connection also lists its in-memory database, first
    # on some DuckDB versions (catalog._open_for_writes)
    block_size, used_blocks = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()").fetchone()
    expected = _HEADERS + int(block_size) * int(used_blocks)
    size = os.path.getsize(path)
    if size < expected:
        raise duckdb.IOException(f"Could not read enough bytes: the file holds {size} bytes "
                                 f"of the {expected} its blocks take (truncated)")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
