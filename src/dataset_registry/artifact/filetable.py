"""An artifact's two tables, defined once: `_files.parquet` (`FileRow`) and
`_skipped.parquet` (`SkipRow`).

Each row type's fields, in order, are its table's columns, each annotated with its DuckDB
type. `output` writes rows of these types and reads them back with `columns(...)` as the
types; the catalog's `files` and `skipped` tables are made of the same columns after its
own `key`. A column added here is added everywhere (an older catalog gets it on its next
write), and the order here is the parquet's, so it is part of every artifact's bytes:
append, never reorder.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple, get_type_hints

VARCHAR, INTEGER, BIGINT = "VARCHAR", "INTEGER", "BIGINT"


class FileRow(NamedTuple):
    """One file of an artifact, or one record inside a shard file (`byte_offset` and
    `record` set). `label` is the class index the file's format stores, `class_` (column
    `class`) its class name, `attrs` the source layout's free attributes (JSON). Only path,
    size and xxh3 enter the digest, so tables from before `class` and `attrs` keep theirs."""

    path: Annotated[str, VARCHAR]
    size: Annotated[int, BIGINT]
    xxh3: Annotated[str, VARCHAR]
    label: Annotated[int | None, INTEGER] = None
    source: Annotated[str | None, VARCHAR] = None  # the source's fingerprint
    member: Annotated[str | None, VARCHAR] = None  # the source member it was made from
    byte_offset: Annotated[int | None, BIGINT] = None  # where a record starts in its file
    record: Annotated[int | None, BIGINT] = None  # a record's index in its file
    class_: Annotated[str | None, VARCHAR] = None
    attrs: Annotated[str | None, VARCHAR] = None


class SkipRow(NamedTuple):
    """A source member a build skipped (an undecodable image), and why."""

    member: Annotated[str, VARCHAR]
    source: Annotated[str | None, VARCHAR]
    reason: Annotated[str, VARCHAR]


def columns(row: type) -> dict[str, str]:
    """Column name -> DuckDB type of the table `row` is a row of, in its order. A field
    named after a Python keyword has a trailing underscore the column does not (`class_`)."""
    hints = get_type_hints(row, include_extras=True)
    return {name.rstrip("_"): hints[name].__metadata__[0] for name in row._fields}


FILE_COLUMNS = columns(FileRow)
SKIP_COLUMNS = columns(SkipRow)

# Rows a row group holds, in `_files.parquet` and in the catalog's tables alike. The
# catalog copies a build's file rows from its `_files.parquet`: in one row group, they were
# decoded on one thread, and in groups of another size re-cut as they were appended; in
# groups of this size, 96,000 rows went in 0.057-0.064 s, against 0.087-0.110 s in one
# group and 0.085-0.099 s in groups of 24,576 (2 cores). The table is larger (779 KiB
# against 539 KiB there, 28% more on another build's rows); its rows, order and digest
# are the same.
ROW_GROUP_ROWS = 16_384
