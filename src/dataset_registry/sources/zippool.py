"""A big local zip's members read on all cores: CRC-32 and xxh3 are the cost of indexing a
zip of photos, and its central directory says where every member lies before one is read.

The directory is read and checked here (`zipdirectory`: the fast reader of plain ones,
else `zipindex`'s strict reader); the members, in file order, are cut into runs of about
equal bytes, and each run is read by a pool worker exactly as the serial reader reads it
(each member starting where the one before ended, its local header checked against the
directory, nothing between members unaccounted for; `ziplocal` reads a plain run in bulk).
`scan_zip_local` gives the members in central-directory order, as `scan_zip` gives them,
and raises a refusal after just the members the serial reader would have given before
it: the same words on any number of cores. `zipindexing` builds a source's index on the
same runs (`pooled_runs`), and where it cannot (its layout reads a table) hands the
directory it read to `scan_zip_local` (`Central`): a zip's directory is read once.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple, TypeVar

import numpy as np

from ..core.processes import Spawning
from ..errors import SourceError
from .nestedpool import PARALLEL_BYTES, default_jobs, or_serial
from .zipcheck import shown
from .zipdirectory import Directory, NotPlain, read_directory, read_plain
from .zipindex import (
    DirectoryOrder,
    ZipMember,
    _Entry,
    _find_directory,
    _read_member,
    _Reader,
    _unaccounted,
    empty_folder,
    scan_zip,
)
from .ziplocal import MemberColumns, read_plain_run

RUNS_PER_WORKER = 4  # runs per worker, so one slow run does not hold the rest up
RUN_MEMBERS = 2048  # members a run holds (twice as many to end at a folder's end): the
# rows in flight (results a worker sent that wait for the runs before them) stay a small
# part of the index
AHEAD = 2  # runs in flight per worker
RECORDS_FROM = 4  # workers from which each reads its run's records itself (`RecordsRun`):
# with fewer the workers, not the coordinator, are what a reading waits for (on 2 cores
# reading the records again made a 1.28M-member zip 2-6% slower)

Progress = Callable[[int], None] | None
_Read = tuple[MemberColumns | list[tuple[int, ZipMember | None]], SourceError | None]
_R = TypeVar("_R")


pools_started: Counter[str] = Counter()
"""Pools started on each zip (by path) in this process: what tests ask to see that a zip
was not read twice."""


_Started = tuple[ProcessPoolExecutor, Spawning]


class Central:
    """A zip's central directory, read and checked (`read_central`), handed on to the one
    that cuts it into runs (`pooled_runs`), who lets it go once every run is cut (150 MB
    at 1.28M entries): `take` gives it once. With it, the pool whose workers started while
    it was read, handed on the same way (`take_pool`); `close` shuts down one never taken
    (the members read in this process after all)."""

    def __init__(self, cd_offset: int, directory: Directory,
                 pool: _Started | None = None) -> None:
        self.cd_offset = cd_offset
        self._directory: Directory | None = directory
        self._pool = pool

    def take_pool(self) -> _Started | None:
        pool, self._pool = self._pool, None
        return pool

    def close(self) -> None:
        pool = self.take_pool()
        if pool is not None:
            _shut(pool)

    @property
    def directory(self) -> Directory:
        """The directory, to look at before it is taken."""
        if self._directory is None:
            raise RuntimeError("the central directory was handed on already")
        return self._directory

    def take(self) -> Directory:
        directory = self.directory
        self._directory = None
        return directory


def read_central(path: str, size: int, jobs: int = 0) -> Central:
    """The central directory of the local zip at `path` (`size` bytes), read as a pool
    reads it: the fork server starts first, and with `jobs` (2 or more) the pool's workers
    are spawned on a thread while the directory is read (a second at a million entries,
    on at most 4 cores: on 16, the workers' start took ~0.45 s after it); the reading's
    temporaries are given back (~100 MB at a million entries)."""
    from ..core.heap import keep_big_blocks_apart, trim
    from ..core.processes import start_early

    keep_big_blocks_apart()
    start_early()
    pool = _start_pool(path, jobs) if jobs > 1 else None
    try:
        with open(path, "rb") as f:
            cd_offset, cd_size, count = _find_directory(f, size, path)
            directory = read_directory(f, cd_offset, cd_size, count, path)
    except BaseException:
        if pool is not None:
            _shut(pool)
        raise
    trim()
    return Central(cd_offset, directory, pool)


def _start_pool(path: str, jobs: int) -> _Started:
    """A pool of `jobs` workers for the zip at `path`, spawned on a thread meanwhile."""
    from ..core.processes import nothing, watch_coordinator, worker_context
    from ..core.workerpool import WorkerPool

    pool = WorkerPool(jobs, mp_context=worker_context(), initializer=watch_coordinator,
                      initargs=(os.getpid(),))
    pools_started[path] += 1
    return pool, Spawning(pool, jobs, nothing)


def _shut(started: _Started) -> None:
    from ..core.processes import shut_down

    pool, spawning = started
    try:
        spawning.join()  # (a failed start: the pool's tasks have failed already, or never ran)
    finally:
        shut_down(pool)


def scan_zip_local(path: str, progress: Progress = None, jobs: int | None = None,
                   central: Central | None = None) -> Iterator[ZipMember]:
    """The members of the local zip at `path`, as `scan_zip` gives them: read on `jobs`
    workers (default: every core this process may use) where the zip is big enough, from
    its `central` directory where it was read already."""
    jobs = jobs or default_jobs()
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0  # (scan_zip says why it cannot be opened)
    if jobs < 2 or size < PARALLEL_BYTES:
        if central is not None:
            central.close()  # (its workers are not needed)
        return scan_zip(path, progress=progress)
    return or_serial(_scan_parallel(path, size, progress, jobs, central), path,
                     lambda: scan_zip(path, progress=progress))


def _scan_parallel(path: str, size: int, progress: Progress, jobs: int,
                   central: Central | None) -> Iterator[ZipMember]:
    in_order = DirectoryOrder()
    folders: list[tuple[int, str]] = []
    for (read, refusal), _ in pooled_runs(path, size, jobs, read_run, central=central,
                                          folders=folders):
        for index, member in read:  # in file order, as the serial reader reads them
            if progress and member is not None:
                progress(member.packed)
            yield from in_order.put(index, member)
        if refusal is not None:
            raise refusal
    for _, folder in folders:  # (as scan_zip gives them, last)
        yield empty_folder(folder)


def pooled_runs(path: str, size: int, jobs: int, work: Callable[..., _R],
                prepare: Callable[[ProcessPoolExecutor, Directory, int], tuple[Any, ...]]
                = lambda *_: (), central: Central | None = None,
                folders: list[tuple[int, str]] | None = None
                ) -> Iterator[tuple[_R, np.ndarray]]:
    """`work(path, run, cd_offset, size, *prepare(pool, directory, cd_offset))` of each run
    of the zip's members (file order), on `jobs` workers, with the entry numbers of each
    run; given in file order, a few runs per worker in flight. `prepare` may use the pool (a
    layout's survey of the names, say) before any run is read. The directory is read here
    unless `central` holds it already. `folders` gets its empty folders
    (`Directory.empty_folders`)."""
    central = central or read_central(path, size, jobs)
    cd_offset, directory = central.cd_offset, central.take()
    if folders is not None:
        folders += directory.empty_folders()
    queue: deque[tuple[Future[_R], np.ndarray]] = deque()
    started = central.take_pool() or _start_pool(path, jobs)
    pool = started[0]
    try:
        order = directory.file_order()
        offsets = directory.offset[order]
        if len(order) and offsets[0] != 0:
            _unaccounted(0, int(offsets[0]), None, path)
        args = prepare(pool, directory, cd_offset)
        runs = iter(_runs(offsets, cd_offset, jobs, _folder_ends(directory, order)))
        while True:
            while len(queue) < AHEAD * jobs:
                run = next(runs, None)
                if run is None:
                    directory = None  # (every run is cut: 150 MB at 1.28M entries)
                    break
                start, stop = run
                rows = order[start:stop]
                queue.append((pool.submit(work, path, _task(directory, rows, offsets, stop,
                                                            cd_offset, jobs),
                                          cd_offset, size, *args), rows))
            if not queue:
                break
            future, rows = queue.popleft()
            yield future.result(), rows
    finally:
        _shut(started)
    if not len(order) and cd_offset:  # (no member: only the directory may be in the file)
        _unaccounted(0, cd_offset, None, path)


def _folder_ends(directory: Directory, order: np.ndarray) -> Callable[[int, int], int]:
    """`end(k, limit)`: the first member from k on (file order `order`), before `limit`,
    that does not lie in member k - 1's folder (else `limit`). From the directory's folder
    hashes where the fast reader gave them (the folder starts found at once), else from the
    paths, a member at a time."""
    if directory.parent is not None:
        parent = directory.parent[order]
        starts = np.flatnonzero(parent[1:] != parent[:-1]) + 1  # (members starting a folder)

        def end(k: int, limit: int) -> int:
            i = int(np.searchsorted(starts, k))
            return min(limit, int(starts[i])) if i < len(starts) else limit
        return end
    paths, path_starts = directory.paths, directory.path_starts

    def folder(k: int) -> str:  # (of the k-th member in file order)
        i = order[k]
        return paths[path_starts[i]:paths.rfind("/", path_starts[i], path_starts[i + 1] - 1) + 1]

    def end_by_paths(k: int, limit: int) -> int:
        last = folder(k - 1)
        while k < limit and folder(k) == last:
            k += 1
        return k
    return end_by_paths


def _runs(offsets: np.ndarray, cd_offset: int, jobs: int,
          folder_end: Callable[[int, int], int] | None = None) -> Iterator[tuple[int, int]]:
    """Consecutive runs [start, stop) of the members in file order (at `offsets`), of about
    equal bytes: each member joins the run while the one before it ends (where the next
    thing starts) less than a run's share of the zip past the run's first, and the run
    holds at most RUN_MEMBERS. Where `folder_end` says where the folder of member k - 1 (in
    file order) ends (`_folder_ends`), a run goes on to the end of its last member's
    folder, up to twice its share and twice RUN_MEMBERS: a folder's members then lie in
    one run, and runs sorted by name follow each other in name order where the folders do
    (class folders written in order), so their rows need no sorting again."""
    follows = np.append(offsets[1:], cd_offset)
    target = max(1, cd_offset // (jobs * RUNS_PER_WORKER))
    start = 0
    while start < len(offsets):
        stop = int(np.searchsorted(follows, offsets[start] + target, side="left")) + 1
        stop = min(len(offsets), max(start + 1, stop), start + RUN_MEMBERS)
        if folder_end is not None and stop < len(offsets):
            limit = min(len(offsets), start + 2 * RUN_MEMBERS, int(np.searchsorted(
                follows, offsets[start] + 2 * target, side="left")) + 1)
            stop = max(stop, folder_end(stop, limit))
        yield start, stop
        start = stop


def _task(directory: Directory, rows: np.ndarray, offsets: np.ndarray, stop: int,
          cd_offset: int, jobs: int) -> Run | RecordsRun:
    """What one of `jobs` workers is sent of the run of `rows` (entry numbers, file order)
    ending before member `stop` in file order: where their records lie, where the fast
    reader read the directory, they follow each other in it (the usual zip, written in
    order) and the workers are RECORDS_FROM or more; else the run's columns."""
    first, count = int(rows[0]), len(rows)
    if jobs < RECORDS_FROM or directory.records is None or not _in_directory_order(rows):
        return Run.of(directory, rows, offsets, stop, cd_offset)
    return RecordsRun(Records.of(directory, first, first + count),
                      int(offsets[stop]) if stop < len(offsets) else cd_offset)


def _in_directory_order(rows: np.ndarray) -> bool:
    """Whether entry numbers `rows` follow each other (a run of the directory, in order)."""
    return int(rows[-1]) - int(rows[0]) + 1 == len(rows) and bool((np.diff(rows) == 1).all())


class Records(NamedTuple):
    """Entries [first, first + count) of a directory the fast reader read, as a worker
    reads them again (`read`): where their records lie in the central directory and their
    bytes, and a hash of what the directory says of their members (flags, method, CRC,
    sizes, offset), which the worker's reading must give again."""

    first: int
    count: int
    at: int
    length: int
    said: int

    @classmethod
    def of(cls, directory: Directory, first: int, stop: int) -> Records:
        records = directory.records
        assert records is not None
        return cls(first, stop - first, int(records[first]),
                   int(records[stop] - records[first]), _said(directory, first, stop))

    def read(self, f: BinaryIO, cd_offset: int, where: str) -> Directory:
        """The entries, read from `f` (the zip whose directory is at `cd_offset`); a
        SourceError where they no longer read so, or say other things of their members
        (the zip changed meanwhile)."""
        try:
            directory = read_plain(f, cd_offset + self.at, self.length, self.count, where)
        except NotPlain:
            directory = None
        if directory is None or len(directory) != self.count or \
                _said(directory, 0, self.count) != self.said:
            raise SourceError(f"{where}: its central directory changed while it was read; "
                              "read it again once nothing writes it")
        return directory


def _said(directory: Directory, first: int, stop: int) -> int:
    """xxh3 of entries [first, stop)'s flags, method, CRC, sizes and offset."""
    import xxhash

    rows = slice(first, stop)
    return xxhash.xxh3_64_intdigest(b"".join(
        np.ascontiguousarray(column[rows], np.int64).tobytes() for column in
        (directory.flags, directory.method, directory.crc, directory.packed, directory.size,
         directory.offset)))


@dataclass(frozen=True)
class RecordsRun:
    """A run of entries that follow each other in the central directory and in the file,
    as where their records lie: the worker reads them again itself (`read_plain`, ~0.5 us
    an entry), so the coordinator sends six numbers, not the run's columns (~150 bytes an
    entry to make, pickle and send a run at a time: at a million entries the coordinator's
    work, not the workers', was what a pool of 16 waited for)."""

    records: Records
    follows: int  # where the thing after the last member starts

    def read(self, f: BinaryIO, cd_offset: int, where: str) -> Run:
        """The run, read from `f` (`Records.read`)."""
        directory = self.records.read(f, cd_offset, where)
        rows = np.arange(len(directory))
        run = Run.of(directory, rows, np.append(directory.offset, self.follows), len(rows),
                     cd_offset)
        return dataclasses.replace(run, rows=rows + self.records.first)


@dataclass(frozen=True)
class Run:
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
           cd_offset: int) -> Run:
        start = stop - len(rows)
        follows = np.append(offsets[start + 1:stop + 1], cd_offset)[:len(rows)]
        columns = np.stack([directory.folder[rows].astype(np.int64), directory.flags[rows],
                            directory.method[rows], directory.crc[rows], directory.packed[rows],
                            directory.size[rows], directory.offset[rows], follows])
        first, last = int(rows[0]), int(rows[-1])
        in_order = _in_directory_order(rows)
        texts: list[bytes | str | np.ndarray] = []
        for blob, starts, end in ((directory.names, directory.name_starts, b""),
                                  (directory.paths, directory.path_starts, "\n")):
            if in_order:
                # (a run of entries in directory order: the usual zip, written in order)
                text = blob[starts[first]:starts[last + 1] - len(end)] + end
                texts += [text, starts[first:last + 2] - starts[first]]
            else:  # (only the run's rows: the whole directory each run would be quadratic)
                pieces = [blob[a:b - len(end)] + end for a, b in
                          zip(starts[rows].tolist(), starts[rows + 1].tolist(), strict=True)]
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


def read_run(path: str, run: Run | RecordsRun, cd_offset: int, size: int) -> _Read:
    """A pool task: the members of one run, read in file order as `zipindex` reads them (by
    the fast reader where it can vouch for the run); what was read before a refusal, and
    the refusal (None: none)."""
    read: list[tuple[int, ZipMember | None]] = []
    with open(path, "rb") as f:
        if isinstance(run, RecordsRun):
            run = run.read(f, cd_offset, path)
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
