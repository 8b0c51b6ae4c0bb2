"""A big local zip's members read on all cores: CRC-32 and xxh3 are the cost of indexing a
zip of photos, and its central directory says where every member lies before one is read.

The directory is read and checked here (`zipindex`); the members, in file order, are cut
into runs of about equal bytes, and each run is read by a pool worker exactly as the
serial reader reads it (each member starting where the one before ended, its local header
checked against the directory, nothing between members unaccounted for). Members are
given in central-directory order, as `scan_zip` gives them, and a refusal is raised
after just the members the serial reader would have given before it: the same words on
any number of cores.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import SourceError
from .indextable import IndexTable, Rows
from .nestedpool import (
    PARALLEL_BYTES,
    IndexParts,
    NotInATable,
    default_jobs,
    or_serial,
    placed_table,
    worth_a_pool,
)
from .zipcheck import DEFLATED, shown
from .zipdirectory import Directory, NotPlain, read_directory
from .zipindex import (
    DirectoryOrder,
    ZipMember,
    _Entry,
    _find_directory,
    _read_member,
    _Reader,
    _unaccounted,
    scan_zip,
)
from .ziplocal import read_plain_run

if TYPE_CHECKING:
    from .layouts import Layout

RUNS_PER_WORKER = 4  # runs per worker, so one slow run does not hold the rest up
RUN_MEMBERS = 2048  # members a run holds at most: the rows in flight (results a worker
# sent that wait for the runs before them) stay a small part of the index
AHEAD = 2  # runs in flight per worker

Progress = Callable[[int], None] | None
_Read = tuple[list[tuple[int, ZipMember | None]], SourceError | None]
_R = TypeVar("_R")


def scan_zip_local(path: str, progress: Progress = None, jobs: int | None = None
                   ) -> Iterator[ZipMember]:
    """The members of the local zip at `path`, as `scan_zip` gives them: read on `jobs`
    workers (default: every core this process may use) where the zip is big enough."""
    jobs = jobs or default_jobs()
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0  # (scan_zip says why it cannot be opened)
    if jobs < 2 or size < PARALLEL_BYTES:
        return scan_zip(path, progress=progress)
    return or_serial(_scan_parallel(path, size, progress, jobs), path,
                     lambda: scan_zip(path, progress=progress))


def index_zip(path: str, layout: Layout, progress: Progress, jobs: int | None = None
              ) -> tuple[IndexTable, list[str], str | None] | None:
    """The index rows of the local zip source at `path` and the paths its layout left out,
    as the serial reading gives them, each member read and placed (`Layout.by_name`) on a
    worker; and the rows' fingerprint where the runs' rows came in name order. None where a
    pool would not gain (a small zip, one core) or could not start, where the layout cannot
    place members by name (it reads a table), or where a name fits no table (the serial
    reading then says what is wrong)."""
    jobs = jobs or default_jobs()
    size = worth_a_pool(path, layout, jobs, PARALLEL_BYTES)
    if not size:
        return None
    parts = IndexParts()
    left: list[tuple[int, str]] = []
    misplaced: tuple[int, SourceError] | None = None  # the first member placing refused
    state: dict[str, Any] = {}

    def prepare(pool: ProcessPoolExecutor, directory: Directory) -> Layout:
        files = np.cumsum(~directory.folder)  # (file members up to each entry: the order
        # of the members the layout sees, which are files)
        chunks = [(directory.paths[directory.path_starts[a]:directory.path_starts[b] - 1],
                   directory.folder[a:b], int(files[a - 1]) if a else 0)
                  for a, b in _cuts(len(directory), jobs)]
        placer = layout.by_name(list(pool.map(_survey, *zip(*chunks, strict=True),
                                              [layout] * len(chunks))))
        if placer is None:
            raise _ReadsTables
        # a layout that places by name alone refuses a member as it comes (the serial
        # reading raises that before reading on); one that saw every name first, after
        state.update(read=np.zeros(len(directory), bool), streaming=placer is layout)
        return placer

    try:
        for (table, lines, left_here, scanned, done, refusal, wrong), rows in \
                _pooled_runs(path, size, jobs, _index_run, prepare):
            state["read"][rows[:done]] = True
            parts.add(table, lines)
            left.extend(left_here)
            if progress:
                progress(scanned)
            if wrong is not None and (misplaced is None or wrong[0] < misplaced[0]):
                misplaced = wrong
            if refusal is not None:
                unread = np.flatnonzero(~state["read"])  # (the serial reader gives members
                # up to the first one the refusal leaves unread, then raises)
                if misplaced is not None and state["streaming"] and \
                        misplaced[0] < (unread[0] if len(unread) else len(state["read"])):
                    raise misplaced[1]
                raise refusal
    except (_ReadsTables, NotInATable, BrokenProcessPool):  # (the serial reading, in this
        return None  # process, reads it all the same)
    if misplaced is not None:
        raise misplaced[1]
    left.sort()
    return parts.table.build(), [name for _, name in left], parts.fingerprint()


class _ReadsTables(Exception):
    """The layout cannot place the zip's members by name alone."""


def _cuts(count: int, jobs: int) -> list[tuple[int, int]]:
    """[start, stop) of `jobs` about equal shares of `count` entries (none empty)."""
    bounds = sorted({count * k // jobs for k in range(jobs + 1)})
    return [(a, b) for a, b in pairwise(bounds) if b > a]


def _survey(text: str, folder: np.ndarray, start: int, layout: Layout) -> Any:
    """A pool task: `layout.survey` of the file members among one share of the entries."""
    paths = [p for p, f in zip(text.split("\n"), folder.tolist(), strict=True) if not f]
    return layout.survey(paths, start)


def _scan_parallel(path: str, size: int, progress: Progress, jobs: int
                   ) -> Iterator[ZipMember]:
    in_order = DirectoryOrder()
    for (read, refusal), _ in _pooled_runs(path, size, jobs, _read_run, lambda *_: None):
        for index, member in read:  # in file order, as the serial reader reads them
            if progress and member is not None:
                progress(member.packed)
            yield from in_order.put(index, member)
        if refusal is not None:
            raise refusal


def _pooled_runs(path: str, size: int, jobs: int, work: Callable[..., _R],
                 prepare: Callable[[ProcessPoolExecutor, Directory], Any]
                 ) -> Iterator[tuple[_R, np.ndarray]]:
    """`work(path, run, cd_offset, size, prepare(pool, directory))` of each run of the
    zip's members (file order), run on `jobs` workers, with the entry numbers of each
    run; given in file order, a few runs per worker in flight."""
    from ..core.heap import keep_big_blocks_apart, trim
    from ..core.processes import start_early, watch_coordinator, worker_context

    keep_big_blocks_apart()
    start_early()  # (workers import what tasks need while the directory is read: a second
    # at a million entries)
    queue: deque[tuple[Future[_R], np.ndarray]] = deque()
    pool = ProcessPoolExecutor(jobs, mp_context=worker_context(), initializer=watch_coordinator,
                               initargs=(os.getpid(),))
    try:
        with open(path, "rb") as f:
            cd_offset, cd_size, count = _find_directory(f, size, path)
            directory = read_directory(f, cd_offset, cd_size, count, path)
        trim()  # (the reading's temporaries, freed: ~100 MB at a million entries)
        order = directory.file_order()
        offsets = directory.offset[order]
        if len(order) and offsets[0] != 0:
            _unaccounted(0, int(offsets[0]), None, path)
        arg = prepare(pool, directory)
        paths, starts = directory.paths, directory.path_starts

        def folder(k: int) -> str:  # (of the k-th member in file order)
            i = order[k]
            return paths[starts[i]:paths.rfind("/", starts[i], starts[i + 1] - 1) + 1]

        runs = iter(_runs(offsets, cd_offset, jobs, folder))
        while True:
            while len(queue) < AHEAD * jobs:
                run = next(runs, None)
                if run is None:
                    directory = paths = None  # (every run is cut: 150 MB at 1.28M entries)
                    break
                start, stop = run
                rows = order[start:stop]
                queue.append((pool.submit(work, path, _Run.of(directory, rows, offsets, stop,
                                                              cd_offset),
                                          cd_offset, size, arg), rows))
            if not queue:
                break
            future, rows = queue.popleft()
            yield future.result(), rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not len(order) and cd_offset:  # (no member: only the directory may be in the file)
        _unaccounted(0, cd_offset, None, path)


def _runs(offsets: np.ndarray, cd_offset: int, jobs: int,
          folder: Callable[[int], str] | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive runs [start, stop) of the members in file order (at `offsets`), of about
    equal bytes: each member joins the run while the one before it ends (where the next
    thing starts) less than a run's share of the zip past the run's first, and the run
    holds fewer than RUN_MEMBERS. Where `folder` says which folder member k (in file order)
    lies in, a run goes on to the end of its last member's folder, up to twice its share
    (and RUN_MEMBERS): a folder's members then lie in one run,
    and runs sorted by name follow each other in name order where the folders do (class
    folders written in order), so their rows need no sorting again."""
    follows = np.append(offsets[1:], cd_offset)
    target = max(1, cd_offset // (jobs * RUNS_PER_WORKER))
    start = 0
    while start < len(offsets):
        stop = int(np.searchsorted(follows, offsets[start] + target, side="left")) + 1
        stop = min(len(offsets), max(start + 1, stop), start + RUN_MEMBERS)
        if folder is not None and stop < len(offsets):
            limit = min(len(offsets), start + 2 * RUN_MEMBERS, int(np.searchsorted(
                follows, offsets[start] + 2 * target, side="left")))
            last = folder(stop - 1)
            while stop < limit and folder(stop) == last:
                stop += 1
        yield start, stop
        start = stop


@dataclass(frozen=True)
class _Run:
    """The directory entries of one run, in file order, as a worker needs them (columns,
    not an object per entry: the coordinator makes none), with where the next thing after
    each member starts (the next member, or the central directory)."""

    rows: np.ndarray  # entry numbers
    names: bytes  # their names as stored, and where each starts
    name_starts: np.ndarray
    paths: str  # their paths, each followed by a line break, and where each starts
    path_starts: np.ndarray
    columns: np.ndarray  # folder, flags, method, crc, packed, size, offset, follows

    @classmethod
    def of(cls, directory: Directory, rows: np.ndarray, offsets: np.ndarray, stop: int,
           cd_offset: int) -> _Run:
        start = stop - len(rows)
        follows = np.append(offsets[start + 1:stop + 1], cd_offset)[:len(rows)]
        columns = np.stack([directory.folder[rows].astype(np.int64), directory.flags[rows],
                            directory.method[rows], directory.crc[rows], directory.packed[rows],
                            directory.size[rows], directory.offset[rows], follows])
        first, last = int(rows[0]), int(rows[-1])
        texts: list[bytes | str | np.ndarray] = []
        for blob, starts, end in ((directory.names, directory.name_starts, b""),
                                  (directory.paths, directory.path_starts, "\n")):
            if last - first + 1 == len(rows) and (np.diff(rows) == 1).all():
                # (a run of entries in directory order: the usual zip, written in order)
                text = blob[starts[first]:starts[last + 1] - len(end)] + end
                texts += [text, starts[first:last + 2] - starts[first]]
            else:
                at = starts.tolist()
                pieces = [blob[at[i]:at[i + 1] - len(end)] + end for i in rows.tolist()]
                texts += [blob[:0].join(pieces),
                          np.cumsum([0] + [len(p) for p in pieces], dtype=np.int64)]
        return cls(rows, *texts, columns)

    def entries(self) -> Iterator[tuple[_Entry, int]]:
        """Each entry, and where the next thing after its member starts."""
        names, paths = self.name_starts.tolist(), self.path_starts.tolist()
        for k, row in enumerate(zip(*self.columns.tolist(), strict=True)):
            folder, flags, method, crc, packed, size, offset, follows = row
            raw = self.names[names[k]:names[k + 1]]
            yield _Entry(int(self.rows[k]), raw, shown(raw),
                         self.paths[paths[k]:paths[k + 1] - 1], bool(folder), flags, method,
                         crc, packed, size, offset), follows


def _read_run(path: str, run: _Run, cd_offset: int, size: int, _: object = None) -> _Read:
    """A pool task: the members of one run, read in file order as `zipindex` reads them (by
    the fast reader where it can vouch for the run); what was read before a refusal, and
    the refusal (None: none)."""
    read: list[tuple[int, ZipMember | None]] = []
    with open(path, "rb") as f:
        try:
            return read_plain_run(f, run, size), None
        except NotPlain:
            pass
        reader = _Reader(f, int(run.columns[6][0]))
        try:
            for entry, after in run.entries():
                # (each member ends where the next begins, or _read_member refuses it)
                read.append((entry.index, _read_member(reader, entry, after, cd_offset,
                                                       size, path)))
        except SourceError as exc:
            return read, exc
    return read, None


def _index_run(path: str, run: _Run, cd_offset: int, size: int, placer: Layout
               ) -> tuple[IndexTable, bytes, list[tuple[int, str]], int, int,
                          SourceError | None, tuple[int, SourceError] | None]:
    """A pool task: the index rows of one run's members (read as `_read_run` reads them,
    each placed by `placer`), sorted by name, their fingerprint lines, the (entry number,
    path) of those left out, the bytes read, how many entries were read, the refusal that
    stopped the reading, and the first (by entry number) member placing refused."""
    read, refusal = _read_run(path, run, cd_offset, size)
    rows = Rows()
    left: list[tuple[int, str]] = []
    scanned = 0
    wrong = None
    for index, member in read:
        if member is None:
            continue
        scanned += member.packed
        try:
            placed = placer.classify(member.path, True)
        except SourceError as exc:
            if wrong is None or index < wrong[0]:
                wrong = (index, exc)
            continue
        if placed is None:
            left.append((index, member.path))
            continue
        if "/" in placed.split:
            raise NotInATable  # (the serial reading refuses it in its own words)
        rows.add(placed, member.path, member.offset, member.size, member.xxh3,
                 member.packed if member.method == DEFLATED else 0)
    table = placed_table(rows)
    return table, table.lines(), left, scanned, len(read), refusal, wrong
