"""Finalizing an artifact: its tasks' CSV parts merged into `_files.parquet` (sorted) and
`_skipped.parquet`, its content digest computed, and the parts taken out of the folder
(`Output` writes them, one part per task: artifact/output.py).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import threading
from typing import Any

from ..core.keys import digest_rows
from ..errors import BuildError, StorageError
from .filetable import FILE_COLUMNS, ROW_GROUP_ROWS, SKIP_COLUMNS
from .marker import FILES, PARTS, SCRATCH, SKIPPED
from .output import SPLITS


def finalize(root: str, aside: str | None = None) -> dict[str, Any]:
    """Merge the parts into `_files.parquet` (+ `_skipped.parquet`); return digest and
    counts, and the declared `splits` if the recipe declared any (see `Output.splits`).

    The parts and the tasks' scratch files then leave `root`: removed, or, given `aside`
    (a new folder's path beside `root`), moved into it for the caller to remove while it
    goes on (`put_aside`, `remove_meanwhile`)."""
    import duckdb

    declared = os.path.join(root, PARTS, SPLITS)
    splits = None
    if os.path.isfile(declared):
        with open(declared, encoding="utf-8") as f:
            splits = json.load(f)

    # escaped: a store folder may hold glob characters (`store[1]*`)
    parts = sorted(glob.glob(os.path.join(glob.escape(root), PARTS, "*.files.csv")))
    skip_parts = sorted(glob.glob(os.path.join(glob.escape(root), PARTS, "*.skipped.csv")))
    try:
        sizes = {p: os.path.getsize(p) for p in (*parts, *skip_parts)}
    except OSError as exc:  # (a part gone since the glob: never, but not a traceback)
        raise _cannot_write(root, exc) from None
    # Bounded: a 1.28M-record table must not grow the coordinator; DuckDB spills past this.
    con = duckdb.connect(config={"memory_limit": "256MB",
                                 "temp_directory": os.path.join(root, PARTS, "spill"),
                                 "threads": _threads(sum(sizes.values()))})
    try:
        facts = _merge(con, root, parts, skip_parts, sizes)
    except (duckdb.IOException, OSError) as exc:  # a full disk, or an unwritable folder
        raise _cannot_write(root, exc) from None
    finally:
        con.close()
    put_aside(root, aside)
    return facts if splits is None else {**facts, "splits": splits}


def put_aside(root: str, aside: str | None) -> None:
    """Take PARTS and SCRATCH out of `root`: by two renames into the new folder `aside`,
    or, where none is given or it cannot be made, by removing them. A build's 96,000
    records leave ~900 part files, whose removal took 0.02-0.12 s (2 cores) after the
    last task; renamed aside, they are removed while the build is published and recorded
    (`remove_meanwhile`, engine/build.py). What a killed build leaves aside is gc's:
    `aside` is named as a staging folder of its key."""
    if aside is not None:
        try:
            os.mkdir(aside)
            for name in (PARTS, SCRATCH):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(os.path.join(root, name), os.path.join(aside, name))
            return
        except OSError:  # (an unwritable folder beside it): what is left, removed here
            pass
    if os.path.lexists(os.path.join(root, PARTS)):
        shutil.rmtree(os.path.join(root, PARTS))
    shutil.rmtree(os.path.join(root, SCRATCH), ignore_errors=True)


def _cannot_write(root: str, exc: Exception) -> StorageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
        str(exc).splitlines()[0]
    return StorageError(f"{os.path.join(root, FILES)}: cannot write the file table ({reason})")


def _merge(con: Any, root: str, parts: list[str], skip_parts: list[str],
           sizes: dict[str, int]) -> dict[str, Any]:
    files_out = os.path.join(root, FILES).replace("'", "''")
    table = f"read_parquet('{files_out}')"
    rows = _csv(_fewer_files(parts, os.path.join(root, PARTS, "all-files.csv"), sizes),
                FILE_COLUMNS)
    con.execute(f"COPY (SELECT * FROM {rows} ORDER BY path, "
                f"record NULLS FIRST) TO '{files_out}' "
                f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    dup = con.execute(f"SELECT path FROM {table} WHERE record IS NULL GROUP BY path "
                      "HAVING count(*) > 1 LIMIT 1").fetchone()
    if dup:
        raise BuildError(f"recipe wrote {dup[0]!r} twice")
    n_files, n_bytes = con.execute(f"SELECT count(*), coalesce(sum(size), 0) FROM {table} "
                                   "WHERE record IS NULL").fetchone()
    cur = con.execute(f"SELECT path, size, xxh3 FROM {table} WHERE record IS NULL "
                      "ORDER BY path")
    digest = digest_rows(_fetch(cur))
    skipped = 0
    if skip_parts:
        out = os.path.join(root, SKIPPED).replace("'", "''")
        skips = _csv(_fewer_files(skip_parts, os.path.join(root, PARTS, "all-skipped.csv"),
                                  sizes), SKIP_COLUMNS)
        con.execute(f"COPY (SELECT * FROM {skips} ORDER BY member) "
                    f"TO '{out}' (FORMAT parquet)")
        skipped = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return {"digest": digest, "files": n_files, "bytes": int(n_bytes), "skipped": skipped}


SMALL_PART = 1 << 20  # bytes: a part this large costs DuckDB far more than opening it
PART_BYTES_A_THREAD = 8 << 20  # of CSV rows: DuckDB's threads past one per this many cost more


def _threads(size: int) -> int:
    """DuckDB's threads for merging parts of `size` bytes: one per PART_BYTES_A_THREAD, up
    to the cores. Its default, a thread a core, cost more than it gave on a small table: 30,000
    rows (4 MB) took 46-54 ms to sort into parquet with 16 threads, 32-35 ms with one or two
    (16 cores); 1.29M rows (190 MB) took 1.65 s with one thread, 1.07 s with two (2 cores).
    The bytes are the same with any number."""
    from ..core.processes import usable_cores

    return max(1, min(usable_cores(), size // PART_BYTES_A_THREAD))


def _fewer_files(parts: list[str], merged: str, sizes: dict[str, int]) -> list[str]:
    """The CSV `parts` to read, in fewer files: DuckDB reads each file of a list at a cost
    of its own (~0.3 ms), and the 120,000 rows of 590 task parts took 0.23 s read as those
    files, 0.09 s copied into one and read (2 cores). So the parts under `SMALL_PART` bytes
    (a task's rows) are copied back to back into `merged`, each held whole at most; the
    larger ones (a `finish` writing every record's row) are read where they are, neither
    held nor copied. A part not ending its last row (never written so) gets it ended."""
    small = [p for p in parts if sizes[p] < SMALL_PART]
    if len(small) < 2:
        return parts
    with open(merged, "wb") as out:
        for part in small:
            with open(part, "rb") as f:
                rows = f.read()
            out.write(rows)
            if rows and not rows.endswith(b"\n"):
                out.write(b"\r\n")
    kept = set(small)
    return [p for p in parts if p not in kept] + [merged]


def _csv(paths: list[str], types: dict[str, str]) -> str:
    """read_csv of `paths` as `csv.writer` wrote them: rows end with CRLF, so a field's own
    LF (a refusal's message may hold one) is never taken for a row's end."""
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    columns = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
    return (f"read_csv([{quoted}], header=false, auto_detect=false, delim=',', "
            f"new_line='\\r\\n', quote='\"', escape='\"', columns={{{columns}}})")


def _fetch(cur: Any) -> Any:
    while rows := cur.fetchmany(10_000):
        yield from rows


def remove_meanwhile(folder: str) -> threading.Thread:
    """Remove `folder` (a build's spent parts, put aside by `finalize`) on a thread, while
    the build is published and recorded: its ~900 files at 96,000 records took 0.02-0.12 s
    to remove (2 cores), a wait after the last task. Not a daemon: the interpreter waits for
    it before it exits. What it cannot remove (a kill) is a staging leftover: gc's."""
    remover = threading.Thread(target=shutil.rmtree, args=(folder,),
                               kwargs={"ignore_errors": True}, name="registry-spent-parts")
    remover.start()
    return remover
