"""A built dataset as the images another build reads: its files, named by its file table.

All of an artifact's files are split `"*"`, and each split its marker declares
(`Output.splits`) is the files under `<split>/`, named without that prefix. Every row's
path must stay inside the artifact; every file is checked on read against its row's
xxh3 (`members.checked`), so a file changed since the artifact was built fails the build
that reads it, saying how to repair it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..artifact.marker import Marker
from ..errors import VerifyError
from ..sources.members import MemberRef, MemberSet
from ..stores.base import links_leaving, outside


def artifact_members(name: str, key: str, root: str, table: str,
                     marker: Marker | None) -> dict[str, MemberSet]:
    """The images of built dataset `name` (artifact `key`, its files under `root`, its file
    table at the local path `table`), by split."""
    import duckdb

    repair = f"{name} (key {key}) is damaged; repair it with: registry resolve --repair {name}"
    if not os.path.isfile(table):
        raise VerifyError(f"{table}: missing\n{repair}")
    quoted = table.replace("'", "''")
    try:
        have = set(duckdb.sql(f"SELECT * FROM read_parquet('{quoted}') LIMIT 0").columns)
        extra = ", ".join(f'"{c}"' if c in have else "NULL" for c in ("class", "attrs"))
        rows = duckdb.sql(f"SELECT path, size, member, source, {extra}, xxh3, label FROM "
                          f"read_parquet('{quoted}') WHERE record IS NULL AND member IS NOT "
                          "NULL").fetchall()
    except duckdb.Error as exc:
        raise VerifyError(f"{table}: unreadable as a file table "
                          f"({str(exc).splitlines()[0]})\n{repair}") from None
    leaving = links_leaving(root) if "://" not in root else set()
    for path, *_ in rows:
        why = outside(path, leaving)
        if why:
            raise VerifyError(f"{table}: row {path!r} {why}; refusing to read it\n{repair}")
    changed = f"the artifact changed since it was built; run `registry resolve --repair {name}`"
    refs = [MemberRef(path, f"{root}/{path}", 0, size, member, source, cls or "", attrs or "",
                      xxh3 or "", changed)
            for path, size, member, source, cls, attrs, xxh3, _ in rows]
    # labels numbered by value, where the artifact was (a whole-number labels table
    # upstream, whose source fingerprint says so): its readers number them the same way
    values = whole_number_labels([(cls, label) for *_, cls, _, _, label in rows]) \
        if marker is not None and marker.label_values else None
    where = f"dataset {name} ({root})"
    sets = {"*": MemberSet.from_refs("*", where, refs, root, changed, values)}
    for split in (marker.splits if marker else None) or ():  # checked by parse_marker
        prefix = f"{split}/"
        chosen = [i for i, r in enumerate(refs) if r.name.startswith(prefix)]
        inside = [dataclasses.replace(refs[i], name=refs[i].name[len(prefix):])
                  for i in chosen]
        sets[split] = MemberSet.from_refs(
            split, f"{where}, split {split}", inside, f"{root}/{split}", changed,
            values[np.array(chosen, dtype=np.int64)] if values is not None else None)
    return sets


def whole_number_labels(rows: list[tuple[str | None, int | None]]) -> np.ndarray | None:
    """An artifact's labels as whole-number values (for `classes.default_classes`), from its
    file table's (class, label) rows, if every labelled row's label is its class name's
    number ("10" labelled 10: a scheme that kept the numbers); else None (sorted names)."""
    if not any(cls for cls, _ in rows) or any(
            cls and (label is None or str(label) != cls) for cls, label in rows):
        return None
    return np.array([label if cls else -1 for cls, label in rows], dtype=np.int64)
