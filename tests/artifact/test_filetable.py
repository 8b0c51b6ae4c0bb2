"""The file table and the skipped table are defined once (artifact/filetable.py): the
parquet a build writes and the catalog's tables are made of exactly those columns, so a
column added in one place only fails here."""

import json
from pathlib import Path

import duckdb
import pytest
import xxhash

from dataset_registry.artifact.filetable import FILE_COLUMNS, SKIP_COLUMNS, FileRow, SkipRow
from dataset_registry.artifact.finalize import finalize
from dataset_registry.artifact.marker import Marker
from dataset_registry.artifact.output import Output
from dataset_registry.catalog import Catalog

KEY = "ab" + "0" * 30
ATTRS = json.dumps({"photographer": "x"})


def xxh3(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


@pytest.fixture
def built(tmp_path) -> tuple[Path, Marker]:
    """A finished build writing one row of each kind (a file, a shard, a record inside
    it) and one skip, and its marker."""
    staging = tmp_path / "staging"
    out = Output(str(staging), "000000")
    out.write("cat/a.png", b"png", label=1, member="train/cat/a.png", source="fp",
              class_name="cat", attrs=ATTRS)
    with out.open("shard.tar") as f:
        f.write(b"headdata")
    out.record("shard.tar", offset=4, size=4, xxh3=xxh3(b"data"), label=0,
               member="train/dog/b.png", source="fp", record=0, class_name="dog")
    out.added("shard.tar")
    out.skip("train/dog/c.png", "fp", "undecodable")
    out.close()
    facts = finalize(str(staging))
    return staging, Marker(key=KEY, digest=facts["digest"], files=facts["files"],
                           bytes=facts["bytes"], skipped=facts["skipped"], name="t",
                           built={"at": 0.0, "seconds": 0.0})


def described(con, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()]


def test_the_parquet_tables_have_exactly_the_row_types_columns(built):
    staging, _ = built
    files, skipped = staging / "_files.parquet", staging / "_skipped.parquet"
    con = duckdb.connect()
    assert described(con, f"'{files}'") == list(FILE_COLUMNS.items())
    assert described(con, f"'{skipped}'") == list(SKIP_COLUMNS.items())
    assert list(FILE_COLUMNS)[-2:] == ["class", "attrs"]  # `class_` names column `class`
    # each of Output's writers puts each value in its own column
    rows = [FileRow(*r) for r in con.execute(f"SELECT * FROM '{files}'").fetchall()]
    assert rows == [
        FileRow("cat/a.png", 3, xxh3(b"png"), label=1, source="fp", member="train/cat/a.png",
                class_="cat", attrs=ATTRS),
        FileRow("shard.tar", 8, xxh3(b"headdata")),
        FileRow("shard.tar", 4, xxh3(b"data"), label=0, source="fp",
                member="train/dog/b.png", byte_offset=4, record=0, class_="dog")]
    assert [SkipRow(*r) for r in con.execute(f"SELECT * FROM '{skipped}'").fetchall()] == \
        [SkipRow("train/dog/c.png", "fp", "undecodable")]


def test_the_catalog_tables_are_the_artifact_tables_after_key(built, tmp_path):
    staging, marker = built
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    catalog.record_artifact(marker, "uri", "store", str(staging))
    con = duckdb.connect(catalog.path, read_only=True)
    assert described(con, "files") == [("key", "VARCHAR"), *FILE_COLUMNS.items()]
    assert described(con, "skipped") == [("key", "VARCHAR"), *SKIP_COLUMNS.items()]
    indexed = con.execute("SELECT * EXCLUDE key FROM files WHERE key = ? "
                          "ORDER BY path, record NULLS FIRST", [KEY]).fetchall()
    table = con.execute(f"SELECT * FROM '{staging / '_files.parquet'}'").fetchall()
    assert indexed == table and len(indexed) == 3
    assert con.execute("SELECT * FROM skipped").fetchall() == \
        [(KEY, "train/dog/c.png", "fp", "undecodable")]


def test_an_older_catalog_gets_the_columns_added_since_on_its_next_write(built, tmp_path):
    """A catalog made before `class` and `attrs` were file-table columns (its DDL of then)
    has them added by its next write; the rows it held keep their values, empty there."""
    staging, marker = built
    path = tmp_path / "catalog.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE files (key VARCHAR, path VARCHAR, size BIGINT, xxh3 VARCHAR, "
                    "label INTEGER, source VARCHAR, member VARCHAR, byte_offset BIGINT, "
                    "record BIGINT)")
        con.execute("INSERT INTO files VALUES ('old', 'x.png', 1, 'h', 2, 'fp', 'm', NULL, "
                    "NULL)")
    Catalog(str(path)).record_artifact(marker, "uri", "store", str(staging))
    with duckdb.connect(str(path), read_only=True) as con:
        assert described(con, "files") == [("key", "VARCHAR"), *FILE_COLUMNS.items()]
        old = con.execute("SELECT * EXCLUDE key FROM files WHERE key = 'old'").fetchall()
        assert [FileRow(*r) for r in old] == [FileRow("x.png", 1, "h", label=2, source="fp",
                                                      member="m")]
        assert con.execute("SELECT count(*) FROM files WHERE key = ?", [KEY]).fetchone() == (3,)


# the first row's fields hold an LF: what DuckDB guessed the rows' end from
AWKWARD = ["a\nb", "plain", "c\r\nd", 'say "so", then', "e\rf", "", "\u00e9\u6f22"]


def parts_with_awkward_fields(staging: Path, tasks: int) -> list[tuple]:
    """Task parts of rows and skips whose text fields hold what CSV must quote (an LF, a
    CRLF, a comma, a quote), task t writing them t + 1 times (parts of several sizes); the
    rows written, in the file table's order."""
    rows = []
    for t in range(tasks):
        out = Output(str(staging), f"{t:06d}")
        for i, text in enumerate(AWKWARD * (t + 1)):
            path = f"{t:03d}/{i}.bin"
            out.write(path, text.encode(), label=i, member=f"m {text}", source="fp",
                      class_name=text or None, attrs=json.dumps({"note": text}))
            rows.append((path, len(text.encode()), xxh3(text.encode()), i, "fp", f"m {text}",
                         None, None, text or None, json.dumps({"note": text})))
            out.skip(f"{t}/{i}", "fp", f"refused: {text}")
        out.close()
    return sorted(rows)


@pytest.mark.parametrize("copied", ["none", "some", "all"])
def test_the_file_table_holds_every_part_row_as_written(tmp_path, monkeypatch, copied):
    """Whether the parts are read where they lie or copied into one file (`SMALL_PART`:
    none of them, the smaller ones, all), every row comes back as its task wrote it, fields
    holding an LF or a CRLF included (a refusal's message may: DuckDB, taking the first LF
    it met for the rows' end, read a later part's CRLF rows wrong)."""
    from dataset_registry.artifact import finalize as merging

    staging = tmp_path / "staging"
    expected = parts_with_awkward_fields(staging, tasks=5)
    sizes = sorted(p.stat().st_size for p in (staging / ".parts").glob("*.files.csv"))
    threshold = {"none": 0, "some": sizes[2] + 1, "all": sizes[-1] + 1}[copied]
    monkeypatch.setattr(merging, "SMALL_PART", threshold)
    facts = finalize(str(staging))
    con = duckdb.connect()
    got = con.execute(f"SELECT * FROM '{staging / '_files.parquet'}' ORDER BY path").fetchall()
    assert got == expected
    skips = con.execute(f"SELECT reason FROM '{staging / '_skipped.parquet'}'").fetchall()
    assert sorted(r for (r,) in skips) == sorted(f"refused: {text}" for t in range(5)
                                                 for text in AWKWARD * (t + 1))
    assert (facts["files"], facts["skipped"]) == (len(expected), len(expected))
    assert not (staging / ".parts").exists()


def test_duckdb_threads_for_the_merge_follow_the_parts_size():
    """One thread for a small table (DuckDB's thread a core cost more than it gave there),
    one per PART_BYTES_A_THREAD of parts past that, never more than the cores."""
    from dataset_registry.artifact import finalize as merging
    from dataset_registry.core.processes import usable_cores

    a_thread = merging.PART_BYTES_A_THREAD
    assert merging._threads(0) == merging._threads(a_thread - 1) == 1
    assert merging._threads(2 * a_thread) == min(2, usable_cores())
    assert merging._threads(10_000 * a_thread) == usable_cores()


def test_the_file_table_has_the_same_bytes_on_one_thread_or_several(tmp_path, monkeypatch):
    """Merged on one thread or on every core (`finalize._threads`), 300,000 records in four
    parts make the same `_files.parquet`, byte for byte: the threads follow the parts' size,
    and the table must not."""
    from dataset_registry.artifact import finalize as merging
    from dataset_registry.core.processes import usable_cores

    used, threads = [], merging._threads
    monkeypatch.setattr(merging, "_threads", lambda size: used.append(threads(size)) or used[-1])
    tables = []
    for a_thread in (1 << 40, 1 << 10):  # one thread; one a KiB (29 MB of parts: the cores)
        monkeypatch.setattr(merging, "PART_BYTES_A_THREAD", a_thread)
        staging = tmp_path / str(a_thread)
        for t in range(4):
            out = Output(str(staging), f"{t:06d}")
            for r in range(75_000):
                out.record(f"s-{t}.tar", offset=512 * r, size=1000 + r % 977,
                           xxh3=xxh3(b"%d" % r), label=r % 1000, member=f"train/{r}.JPEG",
                           source="fp", record=r, class_name=f"n{r % 1000:08d}")
            out.close()
        finalize(str(staging))
        tables.append((staging / "_files.parquet").read_bytes())
    assert used == [1, usable_cores()]  # (2 on CI's machine)
    assert tables[0] == tables[1]


def test_a_part_gone_since_it_was_found_fails_the_merge_with_the_file_tables_error(
        tmp_path, monkeypatch):
    """A part listed but gone before its size is read (nothing deletes one under a live
    build; said all the same) is the file table's StorageError, not a traceback, and no
    table is written."""
    from dataset_registry import StorageError
    from dataset_registry.artifact import finalize as merging

    staging = tmp_path / "staging"
    out = Output(str(staging), "000000")
    out.write("a.bin", b"a")
    out.close()
    listed = merging.glob.glob
    monkeypatch.setattr(merging.glob, "glob", lambda pattern: listed(pattern) + (
        [str(staging / ".parts" / "gone.files.csv")] if pattern.endswith("files.csv") else []))
    with pytest.raises(StorageError, match=r"_files\.parquet: cannot write the file table "
                                           r"\(No such file or directory\)$"):
        finalize(str(staging))
    assert not (staging / "_files.parquet").exists()
