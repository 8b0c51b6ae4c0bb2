"""A build's catalog record begun while its file table is written (catalog/pending.py):
the same rows, in the same order, as the record made afterwards from the published
tables; nothing of it where the build fails; a busy catalog said, not waited past."""

import duckdb
import pytest
from filelock import FileLock

from dataset_registry import CatalogBusyError
from dataset_registry.artifact.finalize import finalize, part_rows
from dataset_registry.artifact.marker import Marker
from dataset_registry.artifact.output import Output
from dataset_registry.catalog import Catalog
from dataset_registry.catalog.pending import begin_record

KEY = "cd" + "0" * 30


@pytest.fixture
def staged(tmp_path):
    """A build's staging folder after its tasks: parts of two tasks (their rows out of
    order), one with a skip, and a `finish` part."""
    staging = tmp_path / "staging"
    for part, names in (("000001", ["b/2.png", "a/9.png"]), ("000000", ["a/1.png"])):
        out = Output(str(staging), part)
        for n, name in enumerate(names):
            out.write(name, name.encode(), label=n, member=f"train/{name}", source="fp")
        if part == "000001":
            out.skip("train/c/3.png", "fp", "undecodable")
        out.close()
    out = Output(str(staging), "finish")
    with out.open("index.txt") as f:
        f.write(b"a/1.png\n")
    out.added("index.txt")
    out.close()
    return staging


def marker_of(facts) -> Marker:
    return Marker(key=KEY, digest=facts["digest"], files=facts["files"], bytes=facts["bytes"],
                  skipped=facts["skipped"], name="t", built={"at": 1.0, "seconds": 2.0})


def rows(path, table: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def test_the_rows_are_those_the_record_makes_from_the_tables(staged, tmp_path):
    catalog = Catalog(str(tmp_path / "meanwhile.duckdb"))
    found = part_rows(str(staged))
    pending = begin_record(catalog, KEY, found.files_sorted(), found.skipped_sorted())
    facts = finalize(str(staged), str(tmp_path / "spent"), found, pending.rows_read)
    marker = marker_of(facts)
    assert pending.commit(marker, "uri", "store") is None

    after = Catalog(str(tmp_path / "after.duckdb"))
    after.record_artifact(marker, "uri", "store", str(staged))
    for table in ("files", "skipped", "artifacts"):
        assert rows(catalog.path, table) == rows(after.path, table)
    assert [r[1] for r in rows(catalog.path, "files")] == \
        ["a/1.png", "a/9.png", "b/2.png", "index.txt"]  # sorted, as the table
    assert len(rows(catalog.path, "skipped")) == 1


def test_an_abandoned_record_leaves_nothing(staged, tmp_path):
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    found = part_rows(str(staged))
    pending = begin_record(catalog, KEY, found.files_sorted(), found.skipped_sorted())
    pending.rows_read()
    pending.abandon()
    for table in ("files", "skipped", "artifacts"):
        assert rows(catalog.path, table) == []
    # and the writers' lock is free: the next write goes in at once
    catalog.record_artifact(marker_of(finalize(str(staged))), "uri", "store", str(staged))
    assert len(rows(catalog.path, "files")) == 4


def test_a_catalog_held_by_another_writer_is_busy_not_a_hang(staged, tmp_path):
    catalog = Catalog(str(tmp_path / "catalog.duckdb"), timeout=0.2)
    found = part_rows(str(staged))
    with FileLock(catalog.path + ".lock"):  # (thread-local: the record's thread waits)
        pending = begin_record(catalog, KEY, found.files_sorted(), found.skipped_sorted())
        facts = finalize(str(staged), None, found, pending.rows_read)
        error = pending.commit(marker_of(facts), "uri", "store")
    assert isinstance(error, CatalogBusyError) and "locked by another process" in str(error)


def test_no_record_is_begun_where_a_held_connection_is_this_threads(staged, tmp_path):
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    found = part_rows(str(staged))
    with catalog.held():
        catalog.forget_artifacts(["x"])  # (opens the connection held() keeps)
        assert begin_record(catalog, KEY, found.files_sorted(), None) is None
    assert begin_record(None, KEY, found.files_sorted(), None) is None


def test_a_copy_that_fails_says_so_and_holds_nothing(staged, tmp_path):
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    pending = begin_record(catalog, KEY, "read_csv('/nonexistent/rows.csv')", None)
    pending.rows_read()
    error = pending.commit(Marker(key=KEY, digest="d", files=0, bytes=0, skipped=0, name="t",
                                  built={"at": 1.0, "seconds": 2.0}), "uri", "store")
    assert isinstance(error, duckdb.Error) and "rows.csv" in str(error)
    assert rows(catalog.path, "artifacts") == []
