"""`files`: a tar, zip or folder of files plus a labels table naming each one.

The table (CSV, JSON Lines or Parquet) is a member of the source: `options.table`, or
the first of `labels.csv`, `labels.jsonl`, `labels.parquet`, `metadata.csv`,
`metadata.jsonl`, `metadata.parquet` at the top. For an archive, `options.table` may
also name a file beside it (Kaggle's `train.zip` + `train_labels.csv`), read when the
archive holds no member of that name; its bytes are part of the source's fingerprint.
Its columns: the file's path in the source (`file_name`), its class (`label`: text, or
whole numbers that keep their value), optionally its split (`split`, default
`options.split`), and any others, kept as the file's attributes. Every listed file
must exist; an image the table does not list is an error unless `unlisted: ignore`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import field_validator

from ...errors import SourceError
from ..tarindex import IndexedMember
from . import BESIDE, Entry, Layout, Options, Reader, check_split, ignored, is_image_name
from .tables import TABLE_EXTENSIONS, labels, read_table

DEFAULT_TABLES = tuple(f"{stem}{ext}" for stem in ("labels", "metadata")
                       for ext in TABLE_EXTENSIONS)


class FilesOptions(Options):
    table: str | None = None  # a member, or for an archive a file beside it

    @field_validator("table")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith(("/", "\\")) or
                                  ".." in value.replace("\\", "/").split("/")):
            raise ValueError(f"{value!r}: a path relative to the source (or the archive's "
                             "folder), without '..'")
        return value
    file_column: str = "file_name"
    label_column: str = "label"
    split_column: str = "split"
    split: str = "train"
    unlisted: Literal["error", "ignore"] = "error"


class Files(Layout):
    name = "files"
    expects = ("a tar or folder of files plus a labels table (labels.csv / .jsonl / .parquet: "
               "file_name, label, optional split and other columns)")
    Options = FilesOptions

    def entries(self, members: Iterable[IndexedMember], is_tar: bool,
                read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        opts: Any = self.options
        # member paths arrive as `tar -x` writes them (tarindex normalises "./" away)
        by_path = {m.path: m for m in members
                   if m.path.startswith(BESIDE) or not ignored(m.path)}
        names = [opts.table, BESIDE + opts.table] if opts.table else list(DEFAULT_TABLES)
        table_name = next((n for n in names if n in by_path), None)
        tops = {p.split("/", 1)[0] for p in by_path if not p.startswith(BESIDE)}
        if table_name is None and is_tar and len(tops) == 1:  # `tar cf data.tar data`:
            root = f"{tops.pop()}/"  # read as if extracted, its one folder the source
            inner = {(p[len(root):] if p.startswith(root) else p): m for p, m in by_path.items()}
            if any(n in inner for n in names):
                by_path = inner
                table_name = next(n for n in names if n in by_path)
        if table_name is None:
            hint = "" if opts.table or not is_tar else \
                " (or name a table beside the archive: options.table: NAME)"
            raise SourceError(f"no labels table: expected {' or '.join(names[:6])} at the "
                              f"top{' or beside the archive' if opts.table and is_tar else ''}"
                              f"{hint}")
        table = by_path.pop(table_name)
        listed: set[str] = set()
        out = [(Entry("meta", table_name), table)]
        rows = read_table(table, read, table_name)
        if rows and not any(opts.label_column in row for _, row in rows):
            raise SourceError(f"{table_name}: no {opts.label_column!r} column (it has: "
                              f"{', '.join(rows[0][1])}); name the column holding each file's "
                              "class with options.label_column")
        for (line, row), label in zip(rows, labels(rows, opts.label_column, table_name),
                                      strict=True):
            if label is None:
                raise SourceError(f"{table_name}:{line}: no {opts.label_column} (every file "
                                  "the table lists needs its class)")
            where = f"{table_name}:{line}"
            name = row.get(opts.file_column)
            if not isinstance(name, str) or not name:
                raise SourceError(f"{where}: no {opts.file_column}")
            path = posixpath.normpath(name)
            if path in listed:
                raise SourceError(f"{where}: {name!r} is listed twice")
            member = by_path.get(path)
            if member is None:
                raise SourceError(f"{where}: {name!r} is not in the source")
            listed.add(path)
            split = check_split(row.get(opts.split_column) or opts.split,
                                f"{where}: {opts.split_column}")
            attrs = {k: v for k, v in row.items()
                     if k not in (opts.file_column, opts.label_column, opts.split_column)}
            out.append((Entry.labelled(split, path, label, attrs), member))
        if opts.unlisted == "error":
            stray = sorted(p for p in by_path if p not in listed and is_image_name(p))
            if stray:
                raise SourceError(f"{table_name} does not list {len(stray)} image(s) of the "
                                  f"source (first: {stray[0]!r}); add them, or set "
                                  "options.unlisted: ignore")
        yield from out

    def beside(self) -> tuple[str, ...]:
        table = getattr(self.options, "table", None)
        return (table,) if table else ()
