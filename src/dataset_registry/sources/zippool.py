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

from ..errors import SourceError
from .nestedpool import PARALLEL_BYTES, default_jobs, or_serial
from .zipindex import (
    DirectoryOrder,
    ZipMember,
    _Entry,
    _find_directory,
    _read_directory,
    _read_member,
    _Reader,
    _unaccounted,
    scan_zip,
)

RUNS_PER_WORKER = 4  # runs per worker, so one slow run does not hold the rest up
AHEAD = 2  # runs in flight per worker

Progress = Callable[[int], None] | None
_Read = tuple[list[tuple[int, ZipMember | None]], SourceError | None]


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


def _scan_parallel(path: str, size: int, progress: Progress, jobs: int
                   ) -> Iterator[ZipMember]:
    from ..core.processes import watch_coordinator, worker_context

    with open(path, "rb") as f:
        cd_offset, cd_size, count = _find_directory(f, size, path)
        entries = _read_directory(f, cd_offset, cd_size, count, path)
    order = sorted(entries, key=lambda e: e.offset)
    if order and order[0].offset != 0:
        _unaccounted(0, order[0].offset, None, path)
    in_order = DirectoryOrder()
    queue: deque[Future[_Read]] = deque()
    pool = ProcessPoolExecutor(jobs, mp_context=worker_context(), initializer=watch_coordinator,
                               initargs=(os.getpid(),))
    try:
        runs = iter(_runs(order, cd_offset, jobs))
        while True:
            while len(queue) < AHEAD * jobs:
                run = next(runs, None)
                if run is None:
                    break
                queue.append(pool.submit(_read_run, path, *run, cd_offset, size))
            if not queue:
                break
            read, refusal = queue.popleft().result()
            for index, member in read:  # in file order, as the serial reader reads them
                if progress and member is not None:
                    progress(member.packed)
                yield from in_order.put(index, member)
            if refusal is not None:
                raise refusal
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not order and cd_offset:  # (no member: only the directory may be in the file)
        _unaccounted(0, cd_offset, None, path)


def _runs(order: list[_Entry], cd_offset: int, jobs: int
          ) -> Iterator[tuple[list[_Entry], list[int]]]:
    """Consecutive runs of members in file order, of about equal bytes, each with where the
    next thing after each member starts (the next member, or the central directory)."""
    follows = [e.offset for e in order[1:]] + [cd_offset]
    target = max(1, cd_offset // (jobs * RUNS_PER_WORKER))
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and follows[stop - 1] - order[start].offset < target:
            stop += 1
        yield order[start:stop], follows[start:stop]
        start = stop


def _read_run(path: str, run: list[_Entry], follows: list[int], cd_offset: int, size: int
              ) -> _Read:
    """A pool task: the members of one run, read in file order as `zipindex` reads them;
    what was read before a refusal, and the refusal (None: none)."""
    read: list[tuple[int, ZipMember | None]] = []
    with open(path, "rb") as f:
        reader = _Reader(f, run[0].offset)
        try:
            for entry, after in zip(run, follows, strict=True):
                # (each member ends where the next begins, or _read_member refuses it)
                read.append((entry.index, _read_member(reader, entry, after, cd_offset,
                                                       size, path)))
        except SourceError as exc:
            return read, exc
    return read, None
