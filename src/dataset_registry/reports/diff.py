"""`diff`: what differs between two built artifacts (two variants, or two builds of one).

A and B are dataset names (each its current key) or artifact keys. Their build records
(the markers) are compared field by field: recipe, version, params flattened to dotted
names, and the keys of their inputs. Their file tables are compared row by row in one
DuckDB query over both `_files.parquet`, never a Python loop over rows (ImageNet's train
table has 1.28M): a row is matched by (split, name), where the split is the top folder
of its path when the artifact declares that split (`Output.splits`), else `*`, and the
name is its source member (the logical name it was made from) or, for a row made from
no member (`classes.txt`, a shard, an array), its path. A member therefore keeps its
identity when a variant writes it elsewhere or in another format. Counts are complete;
only the names listed per category are bounded (`limit`).

The result is one JSON-able dict (its schema is in the README, "Comparing builds").
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..artifact.marker import FILES, Marker, local_table_damage
from ..errors import BadInputError, RegistryError, VerifyError

if TYPE_CHECKING:
    from ..engine.project import Project

LIMIT = 20  # names listed per split and category, unless told otherwise
KEY = re.compile(r"[0-9a-f]{32}")
CATEGORIES = ("added", "removed", "bytes_changed", "label_changed")
OUTSIDE = "*"  # the split of rows outside any split the artifact declares


@dataclass(frozen=True)
class Side:
    """A or B: what was given, the artifact it names, and its local file table."""

    given: str
    name: str
    key: str
    marker: Marker
    table: str

    def summary(self) -> dict[str, Any]:
        m = self.marker
        return {"given": self.given, "name": self.name, "key": self.key, "digest": m.digest,
                "recipe": m.recipe, "version": m.version, "files": m.files, "bytes": m.bytes}


def diff(project: Project, a: str, b: str, *, limit: int = LIMIT) -> dict[str, Any]:
    """What differs between built artifacts `a` and `b` (names or keys), as one JSON-able
    dict; at most `limit` names listed per split and category. BadInputError (naming A
    or B, and how to build it) if either is unknown or not built."""
    if limit < 0:
        raise BadInputError(f"diff: --limit {limit}: give how many names to list, 0 or more")
    left, right = side(project, a, "A"), side(project, b, "B")
    report: dict[str, Any] = {"a": left.summary(), "b": right.summary(),
                              "same": left.key == right.key, "differ": False, "limit": limit}
    if report["same"]:  # one artifact: nothing to read
        return report | {"recipe": None, "version": None, "params": {}, "inputs": {},
                         "splits": []}
    changes = record_changes(left.marker, right.marker)
    splits = compare_tables(left, right, limit)
    # (a class count can only move with a row added, removed or relabelled)
    report["differ"] = bool(changes["recipe"] or changes["version"] or changes["params"] or
                            changes["inputs"] or any(s[c] for s in splits for c in CATEGORIES))
    return report | changes | {"splits": splits}


# -- A and B -------------------------------------------------------------------------------

def side(project: Project, given: str, which: str) -> Side:
    """The built artifact `given` names: an artifact key (32 hex digits) in the store, or
    a dataset name (its current key). Errors say which of A and B they are about."""
    try:
        if KEY.fullmatch(given):
            try:
                marker = project.store.marker(given)
            except VerifyError as exc:  # damaged; its marker may be what cannot be read
                raise VerifyError(f"{exc.message}; repair it with: registry resolve --repair "
                                  f"NAME (the dataset built as key {given})") from None
            if marker is None:
                raise BadInputError(
                    f"no artifact with key {given} in the store {project.store.url} (a key "
                    "names one build; `registry show NAME` prints a dataset's current key)")
            name, key = marker.name, given
        else:
            node = project.manifests.get(given)
            if node.kind != "dataset":
                raise BadInputError(f"{given} is a {node.kind}, not a dataset; diff compares "
                                    "built datasets")
            built = project.resolver.built(given)  # says how to build it if it is not
            name, key, marker = given, built.key, built.marker
        table = os.path.join(project.store.tables(key), FILES)
    except RegistryError as exc:
        raise type(exc)(f"{which}: {exc.message}", exc.details) from None
    damage = local_table_damage(table)
    if damage:
        raise VerifyError(f"{which}: {table}: {damage}; repair it with: registry resolve "
                          f"--repair {name or 'NAME'}")
    return Side(given, name, key, marker, table)


# -- build records -------------------------------------------------------------------------

def record_changes(a: Marker, b: Marker) -> dict[str, Any]:
    """recipe and version ({"a", "b"} where they differ, else None), the params that
    differ (flattened: {"splits.val": {"a": 0.2, "b": 0.3}}; absent is null, so a param
    null on one side and an object on the other shows as the object's dotted names) and
    the inputs whose keys differ ({role: {"a": ref or null, "b": ref or null}})."""
    def pair(x: Any, y: Any) -> dict[str, Any] | None:
        return None if x == y else {"a": x, "b": y}

    pa, pb = flatten(a.params), flatten(b.params)
    params = {k: {"a": pa.get(k), "b": pb.get(k)} for k in sorted(pa.keys() | pb.keys())
              if _json(pa.get(k)) != _json(pb.get(k))}
    inputs = {}
    for role in sorted(a.inputs.keys() | b.inputs.keys()):
        ra, rb = a.inputs.get(role), b.inputs.get(role)
        if (ra and ra.key) != (rb and rb.key):
            inputs[role] = {"a": ra and ra.as_dict(), "b": rb and rb.as_dict()}
    return {"recipe": pair(a.recipe, b.recipe), "version": pair(a.version, b.version),
            "params": params, "inputs": inputs}


def _json(value: Any) -> str:
    """A value as JSON writes it: 1, 1.0 and true are three values (Python equates them)."""
    return json.dumps(value, sort_keys=True)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted names (`splits.train`); lists and empty objects are
    values, as are scalars."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


# -- file tables ---------------------------------------------------------------------------

def compare_tables(a: Side, b: Side, limit: int) -> list[dict[str, Any]]:
    """Per split (sorted by name): row counts, how many rows were added, removed, changed
    bytes or label, and kept, the class counts of both sides, and up to `limit` names per
    category (sorted)."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="registry-diff-") as spill:
        # bounded, as finalize is: two 1.28M-row tables spill to disk past this
        con = duckdb.connect(config={"memory_limit": "512MB", "temp_directory": spill})
        try:
            _pair_rows(con, a, b)
            splits = _counts(con)
            for row in _classes(con):
                splits[row[0]]["classes"].append(
                    {"class": row[1], "a": int(row[2]), "b": int(row[3]),
                     "delta": int(row[3]) - int(row[2])})
            for split, category, entry in _listed(con, limit):
                splits[split]["listed"][category].append(entry)
        except duckdb.Error as exc:  # a table verify would call damaged
            raise VerifyError(f"{a.table} or {b.table}: unreadable as a file table "
                              f"({str(exc).splitlines()[0]}); check them with: registry "
                              "verify") from None
        finally:
            con.close()
    return [splits[s] for s in sorted(splits)]


def _rows(con: Any, side: Side) -> str:
    """The SELECT of `side`'s rows as (split, name, nth, path, size, xxh3, label, class):
    `nth` numbers the rows sharing a (split, name), so a name written twice pairs with
    its counterpart in order instead of with every copy. Numbering is a sort; a table
    whose names are unique (the usual case, checked by a cheaper count) skips it."""
    quoted = side.table.replace("'", "''")
    table = f"read_parquet('{quoted}')"
    have = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}
    klass = '"class"' if "class" in have else "NULL"  # tables older than the column
    declared = ", ".join("'" + s.replace("'", "''") + "'" for s in side.marker.splits or ())
    top = "split_part(path, '/', 1)"
    split = (f"CASE WHEN contains(path, '/') AND {top} IN ({declared}) THEN {top} "
             f"ELSE '{OUTSIDE}' END") if declared else f"'{OUTSIDE}'"
    rows = (f"SELECT {split} AS split, coalesce(member, path) AS name, path, size, xxh3, "
            f"label, {klass} AS class, record FROM {table}")
    twice = con.execute(f"SELECT 1 FROM ({rows}) GROUP BY split, name HAVING count(*) > 1 "
                        "LIMIT 1").fetchone()
    nth = ("row_number() OVER (PARTITION BY split, name ORDER BY path, record NULLS FIRST)"
           if twice else "1")
    return f"SELECT split, name, {nth} AS nth, path, size, xxh3, label, class FROM ({rows})"


def _pair_rows(con: Any, a: Side, b: Side) -> None:
    """`pairs`: both tables joined on (split, name, nth), one row per row of either, with
    the category flags each pair earns."""
    con.execute(f"""
        CREATE TEMP TABLE pairs AS
        WITH a AS ({_rows(con, a)}), b AS ({_rows(con, b)})
        SELECT coalesce(a.split, b.split) AS split, coalesce(a.name, b.name) AS name,
               coalesce(a.nth, b.nth) AS nth,
               a.nth IS NOT NULL AS in_a, b.nth IS NOT NULL AS in_b,
               a.path AS a_path, a.size AS a_size, a.xxh3 AS a_xxh3, a.label AS a_label,
               a.class AS a_class,
               b.path AS b_path, b.size AS b_size, b.xxh3 AS b_xxh3, b.label AS b_label,
               b.class AS b_class,
               a.nth IS NULL AS added, b.nth IS NULL AS removed,
               a.nth IS NOT NULL AND b.nth IS NOT NULL AND a.xxh3 IS DISTINCT FROM b.xxh3
                   AS bytes_changed,
               a.nth IS NOT NULL AND b.nth IS NOT NULL AND (a.label IS DISTINCT FROM b.label
                   OR a.class IS DISTINCT FROM b.class) AS label_changed
        FROM a FULL OUTER JOIN b ON a.split = b.split AND a.name = b.name AND a.nth = b.nth""")


def _counts(con: Any) -> dict[str, dict[str, Any]]:
    rows = con.execute("""
        SELECT split, count(*) FILTER (in_a), count(*) FILTER (in_b),
               count(*) FILTER (added), count(*) FILTER (removed),
               count(*) FILTER (bytes_changed), count(*) FILTER (label_changed),
               count(*) FILTER (in_a AND in_b AND NOT bytes_changed AND NOT label_changed)
        FROM pairs GROUP BY split""").fetchall()
    return {split: {"split": split, "rows": {"a": in_a, "b": in_b}, "added": added,
                    "removed": removed, "bytes_changed": changed, "label_changed": relabelled,
                    "unchanged": kept, "classes": [],
                    "listed": {c: [] for c in CATEGORIES}}
            for split, in_a, in_b, added, removed, changed, relabelled, kept in rows}


def _classes(con: Any) -> list[tuple[str, str, int, int]]:
    """(split, class, rows in A, rows in B) of every class either side holds in a split;
    a row's class is its class name, else its label (tables without class names)."""
    return con.execute("""
        SELECT split, class, sum(in_a), sum(in_b) FROM (
            SELECT split, coalesce(a_class, CAST(a_label AS VARCHAR)) AS class, 1 AS in_a,
                   0 AS in_b FROM pairs WHERE in_a
            UNION ALL
            SELECT split, coalesce(b_class, CAST(b_label AS VARCHAR)), 0, 1 FROM pairs
            WHERE in_b)
        WHERE class IS NOT NULL GROUP BY split, class ORDER BY split, class""").fetchall()


def _listed(con: Any, limit: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The first `limit` names (by name) of each split and category, as JSON entries."""
    if limit == 0:
        return []
    chosen = " UNION ALL ".join(f"SELECT '{c}' AS category, * FROM pairs WHERE {c}"
                                for c in CATEGORIES)
    rows = con.execute(f"""
        SELECT * EXCLUDE (place) FROM (
            SELECT *, row_number() OVER (PARTITION BY split, category ORDER BY name, nth)
                AS place FROM ({chosen}))
        WHERE place <= {int(limit)} ORDER BY split, category, name, nth""")
    columns = [d[0] for d in rows.description]
    out = []
    for values in rows.fetchall():
        r = dict(zip(columns, values, strict=True))
        out.append((r["split"], r["category"], _entry(r)))
    return out


def _entry(r: dict[str, Any]) -> dict[str, Any]:
    category, name = r["category"], r["name"]
    if category == "added":
        return {"name": name, "path": r["b_path"]}
    if category == "removed":
        return {"name": name, "path": r["a_path"]}
    if category == "bytes_changed":
        return {"name": name, **{s: {"path": r[f"{s}_path"], "size": r[f"{s}_size"],
                                     "xxh3": r[f"{s}_xxh3"]} for s in "ab"}}
    return {"name": name, **{s: {"label": r[f"{s}_label"], "class": r[f"{s}_class"]}
                             for s in "ab"}}
