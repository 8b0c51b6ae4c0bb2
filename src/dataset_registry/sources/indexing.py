"""Reading a source into its member index: every member as the layout places it, hashed,
checked and sorted by name, as a table (`IndexTable`) with its fingerprint. A big local
tar of tars, or zip, is read on every core (`nestedpool`, `zipindexing`).

`index.check_source` calls it where no cached index holds (numpy and the readers are
imported then, not by every command that reads a cached fingerprint).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from ..core.progress import Counted, ProgressFactory, bar
from ..errors import SourceError
from .folders import is_empty_folder, split_left_out
from .indextable import (
    IndexTable,
    bad_name,
    first_bad_name,
    first_rows,
    numbers_change_labels,
    split_ranges,
)
from .layouts import Entry, Layout, check_split
from .layouts.tables import check_name
from .location import LocalPlace, RemotePlace, archive_kind, scan_archive
from .nestedpool import by_name_alone, index_parallel
from .tarindex import IndexedMember
from .zipindexing import index_zip
from .zippool import Central


class Indexed(NamedTuple):
    table: IndexTable  # sorted by name and checked
    left_out: list[str]  # the paths its layout left out
    fingerprint: str  # of its members
    label_values: bool  # whether its whole-number labels keep their value
    empty_folders: list[str]  # an archive's folders holding nothing (`folders`), no "/"


def read_index(where_bytes: LocalPlace | RemotePlace, layout: Layout, is_tar: bool,
               beside: tuple[str, ...], where: str, progress: ProgressFactory | None,
               name: str) -> Indexed:
    """The source's index table, what it left out and its fingerprint (`Indexed`); whether
    its whole-number labels keep their value is `numbers_change_labels`'s. Refusals name
    the source (`where`)."""
    empty: list[str] = []
    try:
        # a folder's size is unknown until it is walked: a bar without a total
        with bar(progress, f"indexing source {name}",
                 where_bytes.size() if is_tar else None, unit="bytes") as advance:
            table, left_out, hashed = _read(where_bytes, layout, is_tar, beside, advance,
                                            empty)
    except SourceError as exc:
        raise SourceError(f"{where}: {exc}") from None
    if all(logical.startswith("meta/") for logical in table.logical):  # (stops at an image)
        raise SourceError(f"{where}: holds no images; layout {layout.name} expects "
                          f"{layout.expects}")
    # (hashed on the way: the pool's parts came in strict name order, no name twice)
    repeat, moved = table.sort_by_name() if hashed is None else (-1, False)
    _check_names(table, where)
    if repeat >= 0:
        raise SourceError(f"{where}: two members are both {table.logical[repeat]!r} in the "
                          "dataset")
    fingerprint = hashed if hashed and not moved else table.fingerprint()
    return Indexed(table, left_out, fingerprint, numbers_change_labels(table), empty)


def _refuse_split(rows: list[tuple[str, Entry, IndexedMember]]) -> None:
    """Refuse a split name holding "/" as `_check_names` refuses every other bad split: after
    any bad member name, the first such split in name order, naming its first member."""
    ordered = sorted(rows, key=lambda row: row[0])
    for logical, _, _ in ordered:
        why = bad_name(logical)
        if why:
            raise SourceError(why)
    first: dict[str, str] = {}
    for logical, e, _ in ordered:
        first.setdefault(e.split, logical)
    for split, logical in first.items():
        if split != "meta":
            check_split(split, f"member {logical!r}")


def _left_out(scanned: list[IndexedMember], rows: list[tuple[str, Entry, IndexedMember]]
              ) -> list[str]:
    """The scanned members no row came from: by path, or, where a row's member is the
    shard a member lies in (a layout storing its shards' members so: webdataset), by that
    shard and the member's offset in the source. A shard whose members rows came from is
    not left out."""
    if len(scanned) == len(rows):  # every member made a row (the usual case: no set built)
        return []
    used: set[str] = set()
    read: set[tuple[str, int]] = set()  # (a shard, where a member of it lies)
    for _, _, m in rows:
        used.add(m.path)
        used.update(_shards_of(m.path))
        read.add((m.path, m.offset))
    return [m.path for m in scanned if m.path not in used and not any(
        (shard, m.offset) in read for shard in _shards_of(m.path))]


def _shards_of(path: str) -> Iterator[str]:
    """The nested tars `path` lies in ("a.tar/b.tar/c.jpg": a.tar, a.tar/b.tar)."""
    at = path.find(".tar/")
    while at >= 0:
        yield path[:at + 4]
        at = path.find(".tar/", at + 5)


def _kept(members: Iterable[IndexedMember], into: list[IndexedMember], empty: list[str]
          ) -> Iterator[IndexedMember]:
    """`members`, each also kept in `into` (to say what the layout left out); an archive's
    empty folders go into `empty` instead (no layout sees them: `folders`)."""
    for m in members:
        if is_empty_folder(m.path):
            empty.append(m.path[:-1])
            continue
        into.append(m)
        yield m


def _check_names(table: IndexTable, where: str) -> None:
    """What any layout gives must fit where recipes put it: split and class names become
    folder names and fields of tab-separated files, member names file paths. Refused here,
    at `source set`, naming the member (the first in name order), never late in a build."""
    why = first_bad_name(table)
    if why:
        raise SourceError(f"{where}: {why}")
    for split, (start, _) in split_ranges(table.logical).items():
        if split != "meta":
            check_split(split, f"{where}: member {table.logical[start]!r}")
    for i in first_rows(table.labels):
        check_name(table.labels[i], f"{where}: member {table.logical[i]!r}", "class name")


def _read(where: LocalPlace | RemotePlace, layout: Layout, is_tar: bool,
          beside: tuple[str, ...], advance: Callable[[int], None] | None, empty: list[str]
          ) -> tuple[IndexTable, list[str], str | None]:
    """The source's members as the layout sees them (unsorted), the paths of those it left
    out, and the table's fingerprint where it was hashed on the way, its rows then in
    strict name order (None: not); a big local tar of tars on every core (`nestedpool`),
    where the layout reads each member by its name alone. An archive's empty folders go
    into `empty` (`folders`; a folder's are its signature's: `LocalPlace.empty_folders`)."""
    found = [m for m in map(where.beside_member, beside) if m is not None]
    counted = Counted(advance)
    parallel = None
    central = None  # a big zip's central directory, read already
    if is_tar and isinstance(where, LocalPlace) and by_name_alone(layout) and \
            archive_kind(where.location) == "tar":
        parallel = index_parallel(where.location, layout, counted, found)
    elif is_tar and isinstance(where, LocalPlace) and not found and \
            archive_kind(where.location) == "zip":
        parallel = index_zip(where.location, layout, counted)
        if isinstance(parallel, Central):  # (its layout reads a table among its members)
            central, parallel = parallel, None
    if parallel is not None:  # (its empty folders among what it left out)
        table, left_out, hashed = parallel
        left_out, folders = split_left_out(left_out)
        empty += folders
        return table, left_out, hashed
    advance = counted.again()  # (what a pool read before handing back is not read twice)
    if central is not None:
        members = scan_archive(where.location, layout.nested, None, advance, central)
    else:
        members = where.scan_tar(layout.nested, advance) if is_tar else \
            where.scan_folder(advance)
    scanned: list[IndexedMember] = []
    try:
        rows = [(f"{e.split}/{e.name}", e, m) for e, m in
                layout.entries(_kept(itertools.chain(members, found), scanned, empty),
                               is_tar, where.read)]
    finally:
        if central is not None:
            central.close()  # (its workers, if the reading never took them)
    if any("/" in e.split for _, e, _ in rows):  # (a table's splits are first components)
        _refuse_split(rows)
    if any("\n" in logical for logical, _, _ in rows):  # (no table holds such a name)
        if all(logical.startswith("meta/") for logical, _, _ in rows):
            return IndexTable.from_rows([]), [], None  # ("holds no images" is said first)
        first = min(logical for logical, _, _ in rows if bad_name(logical))
        raise SourceError(str(bad_name(first)))
    inside, folders = split_left_out(layout.left_inside())
    empty += folders  # (a folder's own are its walk's: these only a reading finds)
    return IndexTable.from_rows(rows), _left_out(scanned, rows) + inside, None
