"""`registry diff` at ImageNet scale: two train-shaped file tables compared.

    python benchmarks/bench_diff.py [--rows 1281167] [--smoke]

Two `_files.parquet` of `--rows` rows each (1,000 classes, ImageNet-like member names,
one declared split) are written by a child process; B has planted edits: every 1,000th
row removed, every 100th new bytes, every 200th relabelled, 777 rows added. The parent
then runs the comparison `registry diff` runs (`reports.diff.compare_tables`), and prints
its time, its peak memory (the parent's, which only compares) and whether every count is
the planted one.

--smoke compares 2,000 rows (a second): it checks that the script works.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time

ADDED = 777


def write_tables(folder: str, rows: int) -> None:
    import duckdb

    a, b = os.path.join(folder, "a.parquet"), os.path.join(folder, "b.parquet")
    duckdb.sql(f"""COPY (SELECT 'train/' || lpad(CAST(i % 1000 AS VARCHAR), 4, '0') || '/'
            || CAST(i AS VARCHAR) || '.JPEG' AS path, 100000 + i % 50000 AS size,
            md5(CAST(i AS VARCHAR)) AS xxh3, CAST(i % 1000 AS INTEGER) AS label,
            'fingerprint' AS source,
            'n' || lpad(CAST(i % 1000 AS VARCHAR), 8, '0') || '/n_' || CAST(i AS VARCHAR)
            || '.JPEG' AS member, NULL::BIGINT AS byte_offset, NULL::BIGINT AS record,
            CAST(i % 1000 AS VARCHAR) AS class, NULL::VARCHAR AS attrs,
            i  -- the row's number, for B's edits (diff reads only the table's own columns)
        FROM range({rows}) t(i)) TO '{a}' (FORMAT parquet)""")
    duckdb.sql(f"""COPY (
        SELECT path, size, CASE WHEN i % 100 = 7 THEN md5('new' || xxh3) ELSE xxh3 END AS xxh3,
               CASE WHEN i % 200 = 3 THEN (label + 1) % 1000 ELSE label END AS label, source,
               member, byte_offset, record,
               CASE WHEN i % 200 = 3 THEN CAST((label + 1) % 1000 AS VARCHAR) ELSE class END
                   AS class, attrs, i
        FROM read_parquet('{a}') WHERE i % 1000 <> 500
        UNION ALL
        SELECT 'train/new/' || CAST(j AS VARCHAR) || '.JPEG', 1000, md5('added' || j), 1,
               'fingerprint', 'new/' || CAST(j AS VARCHAR) || '.JPEG', NULL, NULL, '1', NULL,
               NULL
        FROM range({ADDED}) t(j)) TO '{b}' (FORMAT parquet)""")


def planted(rows: int) -> dict[str, int]:
    removed, changed = len(range(500, rows, 1000)), len(range(7, rows, 100))
    relabelled = len(range(3, rows, 200))  # disjoint from the others: see the residues
    return {"added": ADDED, "removed": removed, "bytes_changed": changed,
            "label_changed": relabelled, "unchanged": rows - removed - changed - relabelled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_281_167)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rows = 2000 if args.smoke else args.rows

    from dataset_registry.artifact.marker import Marker
    from dataset_registry.reports.diff import Side, compare_tables

    with tempfile.TemporaryDirectory(prefix="bench-diff-") as folder:
        child = multiprocessing.get_context("spawn").Process(target=write_tables,
                                                             args=(folder, rows))
        child.start()
        child.join()
        assert child.exitcode == 0, "writing the tables failed"
        marker = Marker(key="k", digest="", files=rows, bytes=0, skipped=0, splits=("train",))
        sides = [Side(n, n, n, marker, os.path.join(folder, f"{n}.parquet")) for n in "ab"]
        started = time.perf_counter()
        train, = compare_tables(*sides, limit=20)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    got = {k: train[k] for k in planted(rows)}
    print(f"2 file tables of {rows:,} rows (ImageNet train-shaped), 1 split, "
          f"{len(train['classes']):,} classes, {os.cpu_count()} cores")
    print(f"{'what':<32}{'seconds':>10}{'peak RSS MB':>14}")
    print(f"{'compare (registry diff)':<32}{seconds:>10.2f}{peak:>14.0f}")
    print(f"counts as planted: {got == planted(rows)}")


if __name__ == "__main__":
    main()
