"""The DuckDB catalog: provenance in SQL, a sandboxed read-only `sql`, rebuild from markers."""

import os

import pytest

from dataset_registry import QueryRefusedError, Registry
from dataset_registry.catalog import Catalog

from .conftest import concurrently, copy_manifests


@pytest.fixture(scope="module")
def reg(tmp_path_factory, synth_small) -> Registry:
    root = tmp_path_factory.mktemp("catalog")
    copy_manifests(root)
    reg = Registry.open(str(root))
    reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
    for name in ("imagenet-min-calibration-all.500", "imagenet-min-calibration-first.5"):
        reg.resolve(name, jobs=1)
    return reg


def test_which_artifacts_contain_an_image(reg):
    rows = reg.sql("""SELECT a.name FROM files f JOIN artifacts a USING (key)
                      WHERE f.member = 'ILSVRC2012_val_00000293.JPEG' ORDER BY 1""").rows
    assert rows == [("imagenet-min-calibration-all.500",), ("imagenet2012-val-min",)]


def test_lineage_down_to_the_source_fingerprint(reg):
    rows = reg.sql("""
        WITH RECURSIVE up(key, depth) AS (
            SELECT key, 0 FROM nodes WHERE name = 'imagenet-min-calibration-first.5'
            UNION ALL
            SELECT e.input_key, up.depth + 1 FROM edges e JOIN up ON e.key = up.key)
        SELECT depth, n.name, n.kind FROM up JOIN nodes n USING (key) ORDER BY depth, n.name
    """).rows
    assert rows[0] == (0, "imagenet-min-calibration-first.5", "dataset")
    assert (1, "imagenet2012-val-min", "dataset") in rows
    assert (1, "imagenet-labels", "file") in rows
    assert rows[-1] == (2, "imagenet2012-val", "source")
    fp = reg.sql("SELECT fingerprint, synthetic FROM sources WHERE name = 'imagenet2012-val'").rows
    assert fp == [(reg.key("imagenet2012-val"), True)]


def test_everything_built_from_one_source(reg):
    rows = reg.sql("""SELECT DISTINCT a.name FROM files f JOIN artifacts a USING (key)
                      JOIN sources s ON f.source = s.fingerprint
                      WHERE s.name = 'imagenet2012-val' ORDER BY 1""").rows
    assert [r[0] for r in rows] == ["imagenet-min-calibration-all.500",
                                    "imagenet-min-calibration-first.5", "imagenet2012-val-min"]


@pytest.mark.parametrize("query", [
    "INSERT INTO runs (run_id) VALUES ('x')",
    "DELETE FROM artifacts",
    "CREATE TABLE evil AS SELECT 1",
    "COPY artifacts TO '/tmp/stolen.csv'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "ATTACH '/tmp/other.duckdb' AS o",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
])
def test_sql_refuses_writes_files_and_network(reg, query):
    before = reg.sql("SELECT count(*) FROM artifacts").rows
    with pytest.raises(QueryRefusedError, match=r"query (refused|failed)"):
        reg.sql(query)
    assert reg.sql("SELECT count(*) FROM artifacts").rows == before
    assert not os.path.exists("/tmp/stolen.csv")


def test_rebuild_from_markers_restores_everything(reg):
    before = reg.sql("SELECT key, name, digest, files FROM artifacts ORDER BY key").rows
    files = reg.sql("SELECT count(*) FROM files").rows
    os.remove(reg.catalog.path)
    assert reg.rebuild_catalog() == 3
    assert reg.sql("SELECT key, name, digest, files FROM artifacts ORDER BY key").rows == before
    assert reg.sql("SELECT count(*) FROM files").rows == files


def test_writes_wait_for_each_other(tmp_path):
    cat = Catalog(str(tmp_path / "c.duckdb"))

    def writer(i: int) -> None:
        with cat.write() as con:
            con.execute("INSERT INTO runs (run_id, job) VALUES (?, 'j')", [f"r{i}"])

    _, errors = concurrently(writer, 8)
    assert errors == []
    assert cat.query("SELECT count(*) FROM runs")[1] == [(8,)]
