"""A big local zip source's index made on all cores: each pool worker reads a run of the
zip's members (`zippool`), places each by the layout, and sends its rows back sorted by
name, as columns, with their fingerprint lines.

The layout must place a member by its name alone (`Layout.by_name`): one that does so
already (imagenet-val on a zip), or image-folder once the workers surveyed every name
(how deep the images lie, whether one folder holds them all). A table among the members
(`Layout.table_names`: image-folder's metadata.csv) is read in one process: the serial
reading does it all, told so from the directory's names before any worker starts, and
reads the members from the directory read here (`zippool.Central`). The index, the
members left out and the refusal are the serial reading's (`indexing._read`): a member
the reader refuses is said before one the layout refuses exactly when the serial
reading says it first.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import SourceError
from . import zippool
from .indextable import IndexTable, Rows
from .nestedpool import (
    IndexParts,
    NotInATable,
    by_name_alone,
    placed_table,
    worth_a_pool,
)
from .zipcheck import DEFLATED
from .ziplocal import MemberColumns
from .zippool import (
    Central,
    Progress,
    Records,
    RecordsRun,
    Run,
    pooled_runs,
    read_central,
    read_run,
)

if TYPE_CHECKING:
    from .layouts import Entry, Layout
    from .zipdirectory import Directory


def index_zip(path: str, layout: Layout, progress: Progress, jobs: int | None = None
              ) -> tuple[IndexTable, list[str], str | None] | Central | None:
    """The index rows of the local zip source at `path` and the paths its layout left out,
    as the serial reading gives them; and the rows' fingerprint where the runs' rows came
    in name order. The zip's central directory, read, where a table lies among its
    members (`Layout.table_names`): the serial reading reads the members from it. None
    where a pool would not gain (a small zip, one core) or could not start, where the
    layout cannot place members by name (it reads every member itself), or where a name
    fits no table (the serial reading then says what is wrong)."""
    from .layouts import Layout

    jobs = jobs or zippool.default_jobs()
    surveys = type(layout).survey is not Layout.survey
    if not (by_name_alone(layout) or surveys):
        return None  # (it reads every member itself: the serial reading)
    size = worth_a_pool(path, layout, jobs, zippool.PARALLEL_BYTES)  # (zippool's, as the
    # reading of zips on the pool sees it)
    if not size:
        return None
    central = read_central(path, size, jobs)
    try:
        holds_a_table = _holds_a_table(layout, central.directory)
    except BaseException:
        central.close()
        raise
    if holds_a_table:
        return central  # (the serial reading reads it, from here, on its workers)
    parts = IndexParts()
    left: list[tuple[int, str]] = []
    refusals = _Refusals()

    def prepare(pool: ProcessPoolExecutor, directory: Directory, cd_offset: int
                ) -> tuple[Layout]:
        placer = layout.by_name(list(pool.map(*_survey_tasks(path, directory, cd_offset,
                                                             jobs, layout)))
                                if surveys else [])
        if placer is None:
            raise _ReadsTables
        refusals.start(len(directory), placer is layout)
        return (placer,)

    try:
        for run, rows in pooled_runs(path, size, jobs, _index_run, prepare, central, left):
            parts.add(run.table, run.lines)
            left.extend(run.left)
            if progress:
                progress(run.scanned)
            refusals.note(rows, run)
    except (_ReadsTables, NotInATable, BrokenProcessPool):  # (the serial reading, in this
        return None  # process, reads it all the same)
    refusals.raise_any()
    left.sort()
    return parts.table.build(), [name for _, name in left], parts.fingerprint()


class _ReadsTables(Exception):
    """The layout cannot place the zip's members by name alone."""


def _holds_a_table(layout: Layout, directory: Directory) -> bool:
    """Whether a table the layout reads lies among the zip's files, as the workers'
    surveys of every name would find it: the paths are searched for the layout's table
    names (no string made per entry), and its survey of just the files so named says
    (a hidden one, or 'metadata.csv.bak', is no table)."""
    paths, starts = directory.paths, directory.path_starts
    named: set[int] = set()  # entries whose path holds a table's name
    for name in layout.table_names:
        at = paths.find(name)
        while at >= 0:
            named.add(int(np.searchsorted(starts, at, side="right")) - 1)
            at = paths.find(name, at + 1)
    files = [paths[starts[i]:starts[i + 1] - 1] for i in sorted(named) if not directory.folder[i]]
    return bool(files) and layout.by_name([layout.survey(files)]) is None


class _RunRows(NamedTuple):
    """What a worker makes of one run."""

    table: IndexTable  # the rows of the members the layout kept, sorted by name
    lines: bytes | None  # their fingerprint lines (None: a name twice among them)
    left: list[tuple[int, str]]  # (entry number, path) of the members it left out
    scanned: int  # bytes read
    read: int  # entries read (those before the refusal, if one stopped the reading)
    refusal: SourceError | None  # the reader's, of the member it stopped at
    misplaced: tuple[int, SourceError] | None  # the layout's, of its first member refused


class _Refusals:
    """Which refusal the serial reading says first. It reads the members in file order and
    gives them to the layout in directory order as soon as all before them are read. A
    layout placing each member as it comes (`streaming`) refuses a member when it is
    given; one that sees every name first (image-folder) only after the reading ends."""

    def start(self, count: int, streaming: bool) -> None:
        self.read = np.zeros(count, bool)  # the entries read so far, by entry number
        self.streaming = streaming
        self.misplaced: tuple[int, SourceError] | None = None

    def note(self, rows: np.ndarray, run: _RunRows) -> None:
        """The run whose entries are `rows` (file order) was read: raise the refusal the
        serial reading would say now."""
        self.read[rows[:run.read]] = True
        if run.misplaced is not None and (self.misplaced is None or
                                          run.misplaced[0] < self.misplaced[0]):
            self.misplaced = run.misplaced
        if run.refusal is None:
            return
        unread = np.flatnonzero(~self.read)  # (the layout was given every member before
        # the first one the refusal leaves unread)
        given = unread[0] if len(unread) else len(self.read)
        if self.misplaced is not None and self.streaming and self.misplaced[0] < given:
            raise self.misplaced[1]
        raise run.refusal

    def raise_any(self) -> None:
        """Every member was read: the layout's first refusal, if it refused any."""
        if self.misplaced is not None:
            raise self.misplaced[1]


def _shares(count: int, jobs: int) -> list[tuple[int, int]]:
    """[start, stop) of `jobs` about equal shares of `count` entries (none empty)."""
    bounds = sorted({count * k // jobs for k in range(jobs + 1)})
    return [(a, b) for a, b in pairwise(bounds) if b > a]


def _survey_tasks(path: str, directory: Directory, cd_offset: int, jobs: int,
                  layout: Layout) -> tuple[Any, ...]:
    """`layout.survey` of `jobs` about equal shares of the entries, as pool tasks
    (function, then each argument's list): each share as where its records lie, the
    worker reading their paths itself, where the fast reader read the directory and the
    workers are many (`zippool.RECORDS_FROM`: the coordinator would send each ~5 MB of
    paths at a million entries), else as its paths."""
    shares = _shares(len(directory), jobs)
    layouts = [layout] * len(shares)
    if directory.records is not None and jobs >= zippool.RECORDS_FROM:
        return (_survey_records, [path] * len(shares), [cd_offset] * len(shares),
                [Records.of(directory, a, b) for a, b in shares], layouts)
    return (_survey, [directory.paths[directory.path_starts[a]:directory.path_starts[b] - 1]
                      for a, b in shares], [directory.folder[a:b] for a, b in shares], layouts)


def _survey(text: str, folder: np.ndarray, layout: Layout) -> Any:
    """A pool task: `layout.survey` of the file members among one share of the entries."""
    return layout.survey([p for p, f in zip(text.split("\n"), folder.tolist(), strict=True)
                          if not f])


def _survey_records(path: str, cd_offset: int, share: Records, layout: Layout) -> Any:
    """A pool task: `_survey` of a share of the entries, read here (`Records.read`)."""
    with open(path, "rb") as f:
        entries = share.read(f, cd_offset, path)
    return _survey(entries.paths, entries.folder, layout)


def _index_run(path: str, run: Run | RecordsRun, cd_offset: int, size: int, placer: Layout
               ) -> _RunRows:
    """A pool task: one run's members, read as `read_run` reads them, each placed by
    `placer` (a copy of it per run: what it learns of folders stays in this task); the rows
    of those kept added a column at a time."""
    read, refusal = read_run(path, run, cd_offset, size)
    if not isinstance(read, MemberColumns):  # (the strict reader's: as the fast one's)
        read = MemberColumns.of(read)
    kept: list[int] = []
    entries: list[Entry] = []
    left: list[tuple[int, str]] = []
    misplaced = None
    classify = placer.classify
    for k, (index, origin, folder) in enumerate(zip(read.rows, read.paths, read.folder,
                                                    strict=True)):
        if folder:
            continue
        try:
            placed = classify(origin, True)
        except SourceError as exc:
            if misplaced is None or index < misplaced[0]:
                misplaced = (index, exc)
            continue
        if placed is None:
            left.append((index, origin))
            continue
        if "/" in placed.split:
            raise NotInATable  # (the serial reading refuses it in its own words)
        kept.append(k)
        entries.append(placed)
    rows = Rows()
    packed = read.packed
    rows.extend(entries, [read.paths[k] for k in kept], [read.offsets[k] for k in kept],
                [read.sizes[k] for k in kept], [read.digests[k] for k in kept],
                [packed[k] if read.methods[k] == DEFLATED else 0 for k in kept])
    scanned = sum(n for n, folder in zip(packed, read.folder, strict=True) if not folder)
    table, lines = placed_table(rows)
    return _RunRows(table, lines, left, scanned, len(read), refusal, misplaced)
