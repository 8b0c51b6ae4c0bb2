"""A built dataset as the images another build reads: its files, named by its file table.

All of an artifact's files are split `"*"`, and each split its marker declares
(`Output.splits`) is the files under `<split>/`, named without that prefix. Every row's
path must stay inside the artifact; every file is checked on read against its row's
xxh3 (`members.checked`), so a file changed since the artifact was built fails the build
that reads it, saying how to repair it.

The table is read column by column, straight into UTF-8 blobs and numpy arrays (the
columns `MemberSet` keeps): a 1.28M-row train artifact makes no Python object per row,
and each declared split is a prefix range of the sorted names, not a copy.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from ..artifact.marker import Marker
from ..errors import VerifyError
from ..sources.members import MemberSet, StrColumn, prefix_range
from ..stores.base import links_leaving, outside

# why a row cannot be read (`_Refused`)
OUTSIDE, NO_SIZE, BAD_XXH3, LINE_BREAK = 1, 2, 3, 4
_PROBLEMS = {NO_SIZE: "has no size", BAD_XXH3: "has an xxh3 that is not 32 hex digits",
             LINE_BREAK: "has a line break in its path, member, class or attributes"}
_NO_DIGEST = "0" * 32  # stands in for a row without xxh3 (`_Columns.unhashed` says which)


def artifact_members(name: str, key: str, root: str, table: str,
                     marker: Marker | None) -> dict[str, MemberSet]:
    """The images of built dataset `name` (artifact `key`, its files under `root`, its file
    table at the local path `table`), by split."""
    import duckdb

    repair = f"{name} (key {key}) is damaged; repair it with: registry resolve --repair {name}"
    if not os.path.isfile(table):
        raise VerifyError(f"{table}: missing\n{repair}")
    leaving = links_leaving(root) if "://" not in root else set()
    try:
        # each column is its own query, matched row by row through file_row_number
        with duckdb.connect(config={"preserve_insertion_order": True}) as con:
            columns = _read(con, table, leaving)
    except duckdb.Error as exc:
        raise VerifyError(f"{table}: unreadable as a file table "
                          f"({str(exc).splitlines()[0]})\n{repair}") from None
    except _Refused as row:
        why = outside(row.path, leaving) if row.problem == OUTSIDE else _PROBLEMS[row.problem]
        raise VerifyError(f"{table}: row {row.path!r} {why}; refusing to read it\n{repair}") \
            from None
    changed = f"the artifact changed since it was built; run `registry resolve --repair {name}`"
    # labels numbered by value, where the artifact was (a whole-number labels table
    # upstream, whose source fingerprint says so): its readers number them the same way
    values = columns.whole_number_labels() \
        if marker is not None and marker.label_values else None
    where = f"dataset {name} ({root})"
    sets = {"*": columns.member_set("*", where, 0, len(columns.sizes), "", root, changed,
                                    values)}
    for split in (marker.splits if marker else None) or ():  # checked by parse_marker
        start, stop = prefix_range(columns.names, f"{split}/")
        sets[split] = columns.member_set(split, f"{where}, split {split}", start, stop,
                                         f"{split}/", f"{root}/{split}", changed, values)
    return sets


class _Refused(Exception):
    """A file table row that cannot be read: its path and why (OUTSIDE, ...)."""

    def __init__(self, path: str | None, problem: int) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem


class _Columns(NamedTuple):
    """A file table's image rows (`member` set, `record` not), sorted by path."""

    names: StrColumn  # path
    origins: StrColumn  # member
    labels: StrColumn  # class ("" none)
    attrs: StrColumn  # attrs ("" none)
    sizes: np.ndarray
    digests: np.ndarray  # V16, zero where `unhashed`
    unhashed: np.ndarray  # bool: the row has no xxh3
    sources: list[Any]  # distinct, sorted (None, a row without one, last)
    source_codes: np.ndarray  # int32 into `sources`
    classed: np.ndarray  # bool: the row has a class name
    whole: np.ndarray  # bool: ... and its label is that name's number ("10" labelled 10)
    labels_as_numbers: np.ndarray  # int64: the label, -1 where no class

    def whole_number_labels(self) -> np.ndarray | None:
        """The labels as whole-number values (for `classes.default_classes`), if every
        labelled row's label is its class name's number; else None (sorted names)."""
        if not self.classed.any() or not self.whole[self.classed].all():
            return None
        return self.labels_as_numbers

    def member_set(self, split: str, where: str, start: int, stop: int, prefix: str,
                   root: str, changed: str, values: np.ndarray | None) -> MemberSet:
        """Rows [start, stop) (one prefix range of the sorted paths), named without
        `prefix`, as `MemberSet.from_refs` made them: their xxh3s checked on read if every
        one has one, their own sources only."""
        names = StrColumn(self.names._blob, self.names._starts[start:stop + 1],
                          len(prefix.encode()))
        origins, labels, attrs = (c.slice(start, stop)
                                  for c in (self.origins, self.labels, self.attrs))
        codes = self.source_codes[start:stop]
        used = np.flatnonzero(np.bincount(codes, minlength=len(self.sources)))
        sources = [self.sources[int(i)] for i in used]
        if len(used) != len(self.sources):
            codes = np.searchsorted(used, codes).astype(np.int32)
        digests = self.digests[start:stop] if not self.unhashed[start:stop].any() else None
        return MemberSet(split, where, names, origins, np.zeros(stop - start, np.int64),
                         self.sizes[start:stop], sources, codes, root=root, path_from="name",
                         labels=labels, attrs=attrs, digests=digests, changed=changed,
                         values=values[start:stop] if values is not None else None)


def _read(con: Any, table: str, leaving: set[str]) -> _Columns:
    """The image rows of file table `table`; `_Refused` names the first row (in the
    table's order) that cannot be read, one leading out of the artifact (`leaving`: its
    links) before any other."""
    con.execute("SET enable_progress_bar = false")  # a build's or report's terminal is ours
    quoted = table.replace("'", "''")
    have = set(con.sql(f"SELECT * FROM read_parquet('{quoted}') LIMIT 0").columns)
    extra = ", ".join(f'"{c}"' if c in have else f'NULL::VARCHAR AS "{c}"'
                      for c in ("class", "attrs"))
    rows = (f"(SELECT path, size, member, source, {extra}, xxh3, label, file_row_number "
            f"FROM read_parquet('{quoted}', file_row_number = true) "
            "WHERE record IS NULL AND member IS NOT NULL)")
    found = [s for (s,) in con.execute(f"SELECT DISTINCT source FROM {rows}").fetchall()]
    named = sorted(s for s in found if s is not None)
    sources = named + [None] * (None in found)  # as from_refs sorts them; no source last
    # a link's own path, or anything under it (outside() names the link)
    through = "".join(" OR path = ? OR starts_with(path, ? || '/')" for _ in leaving)
    numbers = _fetch(con, rows, f"""size, coalesce(xxh3, '') = '' AS unhashed,
            coalesce(list_position(?::VARCHAR[], source), {len(sources)}) - 1 AS code,
            coalesce("class", '') <> '' AS classed,
            coalesce(CAST(label AS VARCHAR) = "class", false) AS whole,
            CASE WHEN coalesce("class", '') <> '' THEN coalesce(label, -1) ELSE -1 END
                AS value,
            CASE WHEN path IS NULL OR path = '' OR left(path, 1) IN ('/', '\\')
                      OR contains('/' || path || '/', '/../'){through} THEN {OUTSIDE}
                 WHEN size IS NULL THEN {NO_SIZE}
                 WHEN coalesce(xxh3, '') <> '' AND strlen(xxh3) <> 32 THEN {BAD_XXH3}
                 ELSE 0 END AS problem""",
                     [named, *[p for link in sorted(leaving) for p in (link, link)]])
    problem = numbers["problem"]
    if problem.any():
        first = int(np.argmax(problem == OUTSIDE)) if (problem == OUTSIDE).any() \
            else int(np.argmax(problem != 0))
        (path,), = con.execute(f"SELECT path FROM {rows} WHERE file_row_number = ?",
                               [int(numbers["file_row_number"][first])]).fetchall()
        raise _Refused(path, int(problem[first]))
    paths = _strings(con, "path", rows)
    order = None  # a table as `output` writes it is sorted; from_refs sorts any other stably
    if len(paths) > 1 and bool((paths[1:] < paths[:-1]).any()):
        order = np.argsort(paths, kind="stable")
        paths = paths[order]
    names = _column(con, rows, "path", paths.tolist())
    del paths
    origins, labels, attrs = (_column(con, rows, c, _strings(con, c, rows, order).tolist())
                              for c in ("member", '"class"', "attrs"))
    hexes = _strings(con, f"CASE WHEN coalesce(xxh3, '') = '' THEN '{_NO_DIGEST}' ELSE xxh3 "
                     "END", rows, order)
    try:  # 32 characters each (checked above): 16 bytes each, unless one is not hex
        raw = bytes.fromhex("".join(hexes.tolist()))
    except ValueError:
        raw = b""
    if len(raw) != 16 * len(hexes):
        raise _Refused(_first_path(con, rows, "coalesce(xxh3, '') <> '' AND NOT "
                                   "regexp_full_match(xxh3, '[0-9a-fA-F]{32}')"), BAD_XXH3)
    del hexes

    def ordered(column: str, dtype: Any) -> np.ndarray:
        values = numbers[column] if order is None else numbers[column][order]
        return values.astype(dtype, copy=False)

    return _Columns(names, origins, labels, attrs, ordered("size", np.int64),
                    np.frombuffer(raw, dtype="V16"), ordered("unhashed", bool), sources,
                    ordered("code", np.int32), ordered("classed", bool),
                    ordered("whole", bool), ordered("value", np.int64))


def _first_path(con: Any, rows: str, condition: str) -> str:
    """The path of the first row of `rows` (in the table's order) meeting `condition`."""
    (path,), = con.execute(f"SELECT path FROM {rows} WHERE {condition} "
                           "ORDER BY file_row_number LIMIT 1").fetchall()
    return path


def _fetch(con: Any, rows: str, columns: str, parameters: list[Any] | None = None
           ) -> dict[str, np.ndarray]:
    """`columns` of `rows`, and their `file_row_number`, in the table's order: each column
    is read by a query of its own, so each is put in that order, whatever DuckDB's."""
    found = con.execute(f"SELECT {columns}, file_row_number FROM {rows}",
                        parameters or []).fetchnumpy()
    at = found["file_row_number"]
    if len(at) > 1 and bool((at[1:] < at[:-1]).any()):
        order = np.argsort(at, kind="stable")
        found = {name: column[order] for name, column in found.items()}
    return found


def _strings(con: Any, expression: str, rows: str, order: np.ndarray | None = None
             ) -> np.ndarray:
    """One string column of `rows` in the table's order (NULL as ""), then in `order`."""
    strings = _fetch(con, rows, f"coalesce({expression}, '') AS strings")["strings"]
    return strings[order] if order is not None else strings


def _column(con: Any, rows: str, expression: str, strings: list[str]) -> StrColumn:
    """`strings` (column `expression` of `rows`) as one blob: one join and one encode, its
    starts where the line breaks fall; `_Refused` names a row whose value holds one."""
    if not strings:
        return StrColumn(b"", np.zeros(1, np.int64))
    blob = ("\n".join(strings) + "\n").encode()
    ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == ord("\n"))
    if len(ends) != len(strings):
        raise _Refused(_first_path(con, rows, f"contains({expression}, chr(10))"), LINE_BREAK)
    starts = np.zeros(len(strings) + 1, np.int64)
    starts[1:] = ends + 1
    return StrColumn(blob, starts)
