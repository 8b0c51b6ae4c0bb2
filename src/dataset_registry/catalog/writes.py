"""Writes: what each writer puts in the catalog, on a connection `Catalog.write()` opened
(one transaction, the writers' lock held)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import VerifyError
from .schema import _first_line

if TYPE_CHECKING:
    from ..artifact.marker import Marker


def replace_nodes(con: Any, rows: list[dict[str, Any]], edges: list[tuple], infos: list[Any],
                  signature: str) -> None:
    """The manifests' nodes, edges and sources, as of `signature` (see `Registry._sync`)."""
    con.execute("DELETE FROM nodes")
    con.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[r["name"], r["kind"], r.get("recipe"), r.get("version"),
                      r.get("key"), r["manifest"], r["line"], list(r["tags"]),
                      r["description"], json.dumps(r.get("params")),
                      json.dumps(r.get("card") or {})] for r in rows])
    if edges:
        con.executemany("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)", edges)
    insert_sources(con, infos)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('nodes', ?)", [signature])


def insert_artifact(con: Any, marker: Marker, uri: str, store: str, tables: str) -> None:
    """An artifact: its marker, and the file tables in the local folder `tables`.
    VerifyError if a table is unreadable or the marker's build record lacks what the
    catalog indexes (the store's copy is damaged), before anything is written."""
    import duckdb

    from ..artifact.marker import FILES, SKIPPED

    key = marker.key
    try:
        sources = [[s["fingerprint"], s["name"], s["layout"], s["files"], s["bytes"],
                    s["synthetic"]] for s in marker.sources]
        at, seconds = float(marker.built["at"]), float(marker.built["seconds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"artifact {key} ({marker.name}): its marker's build record is "
                          f"damaged ({type(exc).__name__}: {exc})") from None
    files = os.path.join(tables, FILES).replace("'", "''")
    skipped = os.path.join(tables, SKIPPED).replace("'", "''")
    con.execute("DELETE FROM files WHERE key = ?", [key])
    con.execute("DELETE FROM skipped WHERE key = ?", [key])
    try:
        # BY NAME: the catalog's tables are the artifact's (artifact/filetable.py) after
        # `key`, and file tables from before a column was added (`class`, `attrs`) fit too
        con.execute("INSERT INTO files BY NAME SELECT ? AS key, * FROM "
                    f"read_parquet('{files}')", [key])
        if marker.skipped:
            con.execute("INSERT INTO skipped BY NAME SELECT ? AS key, * FROM "
                        f"read_parquet('{skipped}')", [key])
    except duckdb.Error as exc:  # not the catalog's fault: the store's table
        raise VerifyError(f"artifact {key} ({marker.name}): its file table is "
                          f"damaged: {_first_line(exc)}") from None
    con.execute(
        "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "to_timestamp(?), ?, ?, ?)",
        [key, marker.name, marker.recipe, marker.version, store, uri,
         marker.digest, marker.files, marker.bytes, marker.skipped,
         marker.synthetic, at, seconds,
         json.dumps(marker.params), json.dumps(dict(marker.card))])
    for role, inp in marker.inputs.items():
        con.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?, ?)",
                    [key, role, inp.key, inp.kind, inp.name])
    for row in sources:
        con.execute("INSERT OR IGNORE INTO sources VALUES (?, ?, ?, NULL, ?, ?, ?, NULL)", row)


def insert_run(con: Any, record: dict[str, Any]) -> None:
    """A run record (as the store keeps it: see api.runs.record_run)."""
    con.execute("DELETE FROM run_inputs WHERE run_id = ?", [record["run_id"]])
    con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, to_timestamp(?), ?, ?)",
                [record["run_id"], record["job"], record["flavor"], record["action"],
                 record["created_at"], record["spec_xxh3"], json.dumps(record["detail"])])
    con.executemany("INSERT INTO run_inputs VALUES (?, ?, ?)",
                    [[record["run_id"], role, key] for role, key in record["inputs"]])


def insert_sources(con: Any, infos: list[Any]) -> None:
    for s in infos:
        con.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                    [s.fingerprint, s.name, s.layout, s.location, s.files, s.bytes, s.synthetic])
