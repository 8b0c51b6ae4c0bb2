"""A tar of tars indexed on all cores: each nested tar (ImageNet's 1,000 class tars) read by
a pool worker, the results still in tar order, refusals as the serial reader's.

The top tar is read here; each nested tar it names goes to a worker as soon as it is
seen (at most a few per worker ahead, so memory stays flat), and comes back as columns,
not objects: its members (`scan_local`), or, where the layout places a member by its name
alone, its rows of the source's index already classified (`index_parallel`). The first
refusal in tar order is the one raised, whichever worker met it first, so a hostile tar
is refused with the same words on any number of cores.
"""

from __future__ import annotations

import os
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, BinaryIO

from ..core.processes import usable_cores as default_jobs
from ..errors import RegistryError, SourceError
from .folders import is_empty_folder
from .indextable import IndexTable, Rows, TableBuilder
from .tarindex import (
    MAX_NESTING,
    IndexedMember,
    NestedTar,
    asked_once,
    empty_tar,
    plain_reader,
    scan_level,
    scan_members,
    scan_tar,
)
from .ustar import NotPlain, read_plain

if TYPE_CHECKING:
    from .layouts import Layout

PARALLEL_BYTES = 64 << 20
"""Below this size a tar is read in this process: starting workers would cost more."""

AHEAD = 4  # nested tars in flight per worker

Progress = Callable[[int], None] | None


def scan_local(path: str, nested: Callable[[str], bool], progress: Progress = None,
               jobs: int | None = None) -> Iterator[IndexedMember]:
    """The members of the local tar at `path`, as `scan_tar` gives them: nested tars on
    `jobs` workers (default: every core this process may use) where that gains."""
    size = worth_a_pool(path, nested, jobs)
    if not size:
        return scan_tar(path, nested=nested, progress=progress)
    return or_serial(_expand(_in_order(path, size, nested, progress, jobs or default_jobs(),
                                       _scan_nested, nested), progress),
                     path, lambda: scan_tar(path, nested=nested, progress=progress))


def or_serial(members: Iterator[Any], path: str, serial: Callable[[], Iterator[Any]]
              ) -> Iterator[Any]:
    """`members` from a pool, or `serial()`'s where the pool broke before giving any
    (workers that cannot start: a __main__ they cannot import, say)."""
    given = False
    try:
        for m in members:
            given = True
            yield m
    except BrokenProcessPool:
        if given:
            # (a failure, not the user's input: exit 1)
            raise RegistryError(f"{path}: a worker reading it died (out of memory?)") from None
        yield from serial()


def by_name_alone(layout: Layout) -> bool:
    """Whether the layout places each member by its name alone (`classify`), so a worker
    can place a nested tar's members without seeing the rest of the source."""
    from .layouts import Layout

    return type(layout).entries is Layout.entries


def index_parallel(path: str, layout: Layout, progress: Progress,
                   beside: Sequence[IndexedMember] = (), jobs: int | None = None
                   ) -> tuple[IndexTable, list[str], str | None] | None:
    """The index rows of the local tar source at `path`, the paths its layout left out, as
    the serial reading gives them, nested tars classified by workers; and the rows'
    fingerprint where the workers' parts came in name order (each sorted by its worker,
    each after the one before: ImageNet's class tars), so the table is sorted already.
    None where a pool would not gain (a small tar, one core), or could not start, or a
    worker met a name no table can hold (the serial reading then says what is wrong)."""
    size = worth_a_pool(path, layout, jobs)
    if not size:
        return None
    parts = IndexParts()
    left_out: list[str] = []
    rows: list[tuple[str, Any, IndexedMember]] = []  # classified here since the last part

    def place(m: IndexedMember) -> None:
        entry = _classified(layout, m.path)
        if entry is None:
            left_out.append(m.path)
        else:
            rows.append((f"{entry.split}/{entry.name}", entry, m))

    try:
        for item in _in_order(path, size, layout.nested, progress, jobs or default_jobs(),
                              _index_nested, layout):
            if isinstance(item, IndexedMember):
                place(item)
                continue
            table, lines, left, scanned = item
            parts.add_rows(rows)
            parts.add(table, lines)
            left_out.extend(left)
            if progress:
                progress(scanned)
    except (NotInATable, BrokenProcessPool):  # (a worker that could not start, or died:
        return None  # the serial reading, in this process, reads it all the same)
    for m in beside:
        place(m)
    parts.add_rows(rows)
    return parts.table.build(), left_out, parts.fingerprint()


class IndexParts:
    """Parts of the index as they come, each sorted by name, hashed for the fingerprint
    while every part's names come after the last part's and no part holds a name twice:
    the table is then in strict name order (no row needs to move, no name is twice)."""

    def __init__(self) -> None:
        import xxhash

        self.table = TableBuilder()
        self.hasher: Any = xxhash.xxh3_128()
        self.last: str | None = None
        self.in_order = True

    def add(self, table: IndexTable, lines: bytes | None) -> None:
        """A part sorted by name, and its fingerprint lines (None: it holds a name twice)."""
        if len(table) == 0:
            return
        self.table.add(table)
        if self.in_order and lines is not None and (self.last is None or
                                                    table.logical[0] > self.last):
            self.hasher.update(lines)
            self.last = table.logical[len(table) - 1]
        else:
            self.in_order = False

    def add_rows(self, rows: list[tuple[str, Any, IndexedMember]]) -> None:
        if rows:
            table, lines = rows_table(rows)
            rows.clear()
            self.add(table, lines)

    def fingerprint(self) -> str | None:
        return self.hasher.hexdigest() if self.in_order else None


class NotInATable(Exception):
    """A logical name holds a line break, or a split name a "/": the serial reading
    refuses it in its own words."""


def rows_table(rows: list[tuple[str, Any, IndexedMember]]) -> tuple[IndexTable, bytes | None]:
    """`placed_table` of (logical name, entry, member) rows."""
    if any("/" in e.split for _, e, _ in rows):
        raise NotInATable
    made = Rows()
    for _, e, m in rows:
        made.add(e, m.path, m.offset, m.size, m.xxh3, m.packed)
    return placed_table(made)


def placed_table(rows: Rows) -> tuple[IndexTable, bytes | None]:
    """The rows' table, sorted by name (NotInATable where a name holds a line break), and
    its fingerprint lines: None where it holds a name twice (the coordinator then sorts
    and checks the whole table, and says which name)."""
    try:
        table = rows.table()
    except ValueError:
        raise NotInATable from None
    repeat, _ = table.sort_by_name()
    return table, table.lines() if repeat < 0 else None


def worth_a_pool(path: str, picklable: object, jobs: int | None,
                 least: int | None = None) -> int:
    """The archive's size where a pool gains (at least `least` bytes, PARALLEL_BYTES by
    default, several cores, and what workers need can reach them: a layout's method can,
    a lambda cannot); else 0."""
    import pickle

    try:
        size = os.path.getsize(path)
    except OSError:
        return 0  # (the serial reader says why it cannot be opened)
    if (jobs or default_jobs()) < 2 or size < (PARALLEL_BYTES if least is None else least):
        return 0
    try:
        pickle.dumps(picklable)
    except (pickle.PicklingError, AttributeError, TypeError):
        return 0
    return size


def _in_order(path: str, size: int, nested: Callable[[str], bool], progress: Progress,
              jobs: int, work: Callable[[str, NestedTar, Any], Any], arg: Any
              ) -> Iterator[Any]:
    """The top tar's members and, in their place, `work(path, nested_tar, arg)` of each
    nested tar, run on `jobs` workers; a refusal is raised where it stands in tar order."""
    from ..core.processes import shut_down, watch_coordinator, worker_context

    pool: ProcessPoolExecutor | None = None  # started at the first nested tar (a big tar
    # of big files has none: its members are hashed here, as they are read)
    queue: deque[Any] = deque()  # members, futures of nested tars, a refusal: tar order
    try:
        with open(path, "rb") as f:
            level = scan_level(f, path, 0, size, "", nested, progress)
            while True:
                try:
                    item = next(level)
                except StopIteration:
                    break
                except Exception as exc:  # raised in its place, after what came before it
                    queue.append(exc)
                    break
                if isinstance(item, NestedTar):
                    if pool is None:
                        pool = ProcessPoolExecutor(jobs, mp_context=worker_context(),
                                                   initializer=watch_coordinator,
                                                   initargs=(os.getpid(),))
                    queue.append(pool.submit(work, path, item, arg))
                else:
                    queue.append(item)
                while queue and (len(queue) > AHEAD * jobs or not isinstance(queue[0], Future)):
                    if isinstance(queue[0], Exception):
                        break
                    yield _result(queue.popleft())
        while queue:
            yield _result(queue.popleft())
    finally:
        if pool is not None:
            shut_down(pool)


def _result(item: Any) -> Any:
    if isinstance(item, Exception):
        raise item
    return item.result() if isinstance(item, Future) else item  # (a worker's refusal too)


def _expand(items: Iterator[Any], progress: Progress) -> Iterator[IndexedMember]:
    """Members, a nested tar's columns (from `_scan_nested`) turned back into members."""
    for item in items:
        if isinstance(item, IndexedMember):
            yield item
            continue
        names, offsets, sizes, digests, refusal = item
        for i, name in enumerate(names.split("\n") if names else ()):
            yield IndexedMember(name, offsets[i], sizes[i], digests[32 * i:32 * i + 32])
        if progress:
            progress(sum(sizes))
        if refusal is not None:  # (after the members the serial reader gave before it)
            raise refusal


def _scan_nested(path: str, tar: NestedTar, nested: Callable[[str], bool]
                 ) -> tuple[str, array, array, str, SourceError | None]:
    """A pool task: every file member of one nested tar (and of tars nested in it) as
    columns: names joined by newlines (a name never holds one), offsets, sizes, xxh3s;
    and the refusal that stopped it, if one did (the members before it still given)."""
    names: list[str] = []
    offsets, sizes = array("q"), array("q")
    digests: list[str] = []
    refusal = None
    with open(path, "rb") as f:
        try:
            for m in scan_members(f, path, tar.offset, tar.size, tar.prefix, nested, None,
                                  tar.depth):
                names.append(m.path)
                offsets.append(m.offset)
                sizes.append(m.size)
                digests.append(m.xxh3)
        except SourceError as exc:
            refusal = exc
    if not names and refusal is None:  # (as scan_members gives it)
        empty = empty_tar(tar)
        names.append(empty.path)
        offsets.append(empty.offset)
        sizes.append(empty.size)
        digests.append(empty.xxh3)
    return "\n".join(names), offsets, sizes, "".join(digests), refusal


def _classified(layout: Layout, path: str) -> Any:
    """The layout's entry for the member at `path`, None where it leaves it out; an empty
    folder is never its to place (`folders`)."""
    return None if is_empty_folder(path) else layout.classify(path, True)


def _index_nested(path: str, tar: NestedTar, layout: Layout
                  ) -> tuple[IndexTable, bytes | None, list[str], int]:
    """A pool task: one nested tar's rows of the index, as the layout classifies them (each
    member as it is read, so a refusal comes where the serial reading meets it), sorted by
    name, their fingerprint lines, the paths it left out, and the bytes read."""
    rows = Rows()
    left_out: list[str] = []
    scanned = held = 0
    with open(path, "rb") as f:
        for name, offset, size, digest in _nested_members(f, path, tar, layout.nested):
            scanned += size
            held += 1
            entry = _classified(layout, name)
            if entry is None:
                left_out.append(name)
                continue
            if "/" in entry.split:
                raise NotInATable
            rows.add(entry, name, offset, size, digest)
    if not held:  # (a tar holding nothing: an empty folder, as scan_members gives it)
        left_out.append(empty_tar(tar).path)
    table, lines = placed_table(rows)
    return table, lines, left_out, scanned


def _nested_members(f: BinaryIO, path: str, tar: NestedTar, nested: Callable[[str], bool]
                    ) -> Iterable[tuple[str, int, int, str]]:
    """(path, offset, size, xxh3) of each file member of the nested tar, in tar order, as
    `scan_members` gives them: straight from the fast reader where it vouches for the tar
    and it holds no tar of its own (the usual class tar), else from `scan_members`."""
    if tar.depth <= MAX_NESTING:
        try:
            found = read_plain(plain_reader(f, tar.size), tar.offset, tar.size, nested,
                               tar.prefix)
        except NotPlain as exc:
            asked = getattr(exc, "asked", {})
        else:
            if all(digest is not None for *_, digest in found):
                return found  # type: ignore[return-value]
            asked = {name: digest is None for name, _, _, digest in found}
        nested = asked_once(nested, asked)  # (a layout is asked once a path)
    return ((m.path, m.offset, m.size, m.xxh3) for m in
            scan_members(f, path, tar.offset, tar.size, tar.prefix, nested, None, tar.depth))
