"""The DuckDB catalog: provenance in SQL, a sandboxed read-only `sql`, rebuild from markers."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_registry import QueryRefusedError, Registry
from dataset_registry.catalog import Catalog
from dataset_registry.stores import LocalStore

from .conftest import as_from_a_terminal, concurrently, copy_manifests, run_cli


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


ONLY_SELECT = r"query refused: only SELECT runs on the catalog \(read-only and sandboxed\), not "
SANDBOXED = (r"query refused: the catalog is read-only and sandboxed \(no writes, files or "
             r"network\): Permission Error: Cannot access file ")


@pytest.mark.parametrize("query, message", [
    # the statement filter: anything but SELECT and EXPLAIN is refused before it runs
    ("INSERT INTO runs (run_id) VALUES ('x')", ONLY_SELECT + "INSERT: INSERT INTO runs"),
    ("DELETE FROM artifacts", ONLY_SELECT + "DELETE: DELETE FROM artifacts"),
    ("UPDATE artifacts SET name = 'x'", ONLY_SELECT + "UPDATE: UPDATE artifacts"),
    ("DROP TABLE artifacts", ONLY_SELECT + "DROP: DROP TABLE artifacts"),
    ("CREATE TABLE evil AS SELECT 1", ONLY_SELECT + "CREATE: CREATE TABLE evil"),
    ("COPY artifacts TO '/tmp/stolen.csv'", ONLY_SELECT + "COPY: COPY artifacts TO"),
    ("EXPORT DATABASE '/tmp/stolen'", ONLY_SELECT + "EXPORT: EXPORT DATABASE"),
    ("ATTACH '/tmp/other.duckdb' AS o", ONLY_SELECT + "ATTACH: ATTACH"),
    ("SET enable_external_access = true", ONLY_SELECT + "SET: SET enable_external_access"),
    ("PRAGMA version", ONLY_SELECT + "PRAGMA: PRAGMA version"),
    ("INSTALL httpfs", ONLY_SELECT + "LOAD: INSTALL httpfs"),
    ("SELECT 1; DELETE FROM artifacts", ONLY_SELECT + "DELETE: DELETE FROM artifacts"),
    # the sandbox: a SELECT may not reach files or the network
    ("SELECT * FROM read_csv('/etc/passwd')", SANDBOXED + r'"/etc/passwd"'),
    ("SELECT * FROM read_text('/etc/hostname')", SANDBOXED + r'"/etc/hostname"'),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')",
     SANDBOXED + r'"https://example\.com/x\.parquet"'),
    # no statement, or more than one (DuckDB would answer the last alone)
    ("", r"query refused: it holds no statement \(empty, or only comments\)$"),
    ("  -- a comment", r"query refused: it holds no statement"),
    ("SELECT 1; SELECT 2", r"query refused: one statement at a time, and this holds 2: run "
                           r"each on its own$"),
])
def test_sql_refuses_writes_files_and_network(reg, query, message):
    """Each refusal says which guard refused it: the statement filter (only SELECT) or the
    sandbox (no files, no network); a different error, or a refusal by the read-only copy
    alone, fails here."""
    before = reg.sql("SELECT count(*) FROM artifacts").rows
    with pytest.raises(QueryRefusedError) as info:
        reg.sql(query)
    assert re.match(message, str(info.value)), str(info.value)
    assert reg.sql("SELECT count(*) FROM artifacts").rows == before
    assert not os.path.exists("/tmp/stolen.csv") and not os.path.exists("/tmp/stolen")


def test_rebuild_from_markers_restores_everything(reg):
    """The rows each build recorded are those a rebuild makes from the published tables,
    in the same order within an artifact."""
    def indexed():  # (params and card: JSON whose keys a marker read back has sorted)
        return {table: sorted(reg.sql(f"SELECT * {but} FROM {table}").rows, key=repr)
                for table, but in (("artifacts", "EXCLUDE (params, card)"), ("files", ""),
                                   ("skipped", ""), ("edges", ""))}

    def order():  # (rowid is each row's place in the table)
        return reg.sql("SELECT key, list(path ORDER BY rowid), list(record ORDER BY rowid) "
                       "FROM files GROUP BY key ORDER BY key").rows

    before, placed = indexed(), order()
    assert len(before["files"]) > 500 and len(placed) == 3
    os.remove(reg.catalog.path)
    assert reg.rebuild_catalog() == 3
    assert indexed() == before
    assert order() == placed


def test_writes_wait_for_each_other(tmp_path):
    cat = Catalog(str(tmp_path / "c.duckdb"))

    def writer(i: int) -> None:
        with cat.write() as con:
            con.execute("INSERT INTO runs (run_id, job) VALUES (?, 'j')", [f"r{i}"])

    _, errors = concurrently(writer, 8)
    assert errors == []
    assert cat.query("SELECT count(*) FROM runs")[1] == [(8,)]


OPENS = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.Error as exc:
    print(type(exc).__name__)
else:
    print("opened")
"""


def _another_process_opens(path: str) -> str:
    return subprocess.run([sys.executable, "-c", OPENS, path], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_writes_held_together_open_the_catalog_once(tmp_path, monkeypatch):
    """Inside `held()` a command's last writes share the connection the first opens (each
    committed on its own); the file is free again once held() ends, or let go of."""
    from dataset_registry import catalog

    path = str(tmp_path / "c.duckdb")
    cat = Catalog(path)
    opened = []
    real = catalog._open_for_writes
    monkeypatch.setattr(catalog, "_open_for_writes", lambda p: opened.append(p) or real(p))

    def insert(run_id: str) -> None:
        with cat.write() as con:
            con.execute("INSERT INTO runs (run_id, job) VALUES (?, 'j')", [run_id])

    def writers_lock_free() -> bool:
        from filelock import FileLock, Timeout

        other = FileLock(path + ".lock", timeout=0)  # (another holder: flock sees it)
        try:
            other.acquire()
        except Timeout:
            return False
        other.release()
        return True

    with cat.held():
        insert("a")
        insert("b")
        assert _another_process_opens(path) != "opened"  # (held: others wait meanwhile)
        assert not writers_lock_free()
        cat.let_go()
        assert _another_process_opens(path) == "opened" and writers_lock_free()
        insert("c")
    assert opened == [path, path]  # a, b on one connection; c on the next
    assert _another_process_opens(path) == "opened" and writers_lock_free()
    with pytest.raises(RuntimeError), cat.held(), cat.write() as con:  # (rolled back, let go)
        con.execute("INSERT INTO runs (run_id, job) VALUES ('d', 'j')")
        raise RuntimeError("the body failed")
    assert _another_process_opens(path) == "opened" and writers_lock_free()
    insert("e")
    assert cat.query("SELECT run_id FROM runs ORDER BY 1")[1] == [("a",), ("b",), ("c",),
                                                                ("e",)]


def test_a_large_append_goes_to_the_file_not_to_the_log(tmp_path):
    """A writer's rows that fill a row group are written to the file as they are appended
    (catalog.ROW_GROUP_ROWS), not into the log at the commit and again at the checkpoint."""
    from dataset_registry import catalog

    path = str(tmp_path / "c.duckdb")
    cat = Catalog(path)
    rows = 65_536  # (a build's file rows: fewer than DuckDB's default row group, 122,880)
    assert rows >= 4 * catalog.ROW_GROUP_ROWS
    with cat.held():
        with cat.write() as con:
            con.execute("INSERT INTO runs (run_id, job) SELECT 'run-' || i, 'a job name' "
                        "FROM range(?) t(i)", [rows])
        log = os.path.getsize(path + ".wal") if os.path.exists(path + ".wal") else 0
        assert log < 256 << 10, log  # (committed, not yet checkpointed)
    assert cat.query("SELECT count(*) FROM runs")[1] == [(rows,)]


def test_a_truncated_catalog_is_found_whichever_database_the_connection_lists_first(
        tmp_path):
    """The truncation check reads the catalog's own size, not the first database a
    connection lists: a writer's connection lists an in-memory one too, first on some
    DuckDB versions (here one more is attached, listed first on this one)."""
    import duckdb

    from dataset_registry.catalog import _open_for_writes
    from dataset_registry.catalog.schema import _probe

    path = str(tmp_path / "c.duckdb")
    cat = Catalog(path)
    with cat.write() as con:
        con.execute("INSERT INTO runs (run_id, job) SELECT 'run-' || i, 'a job name' "
                    "FROM range(200000) t(i)")
    data = (tmp_path / "c.duckdb").read_bytes()
    (tmp_path / "c.duckdb").write_bytes(data[:len(data) - 3 * 262144])
    con = _open_for_writes(path)
    try:
        con.execute("ATTACH ':memory:' AS aaa")
        assert con.execute("PRAGMA database_size").fetchone()[0] != "registry_catalog"
        with pytest.raises(duckdb.IOException, match="truncated"):
            _probe(con, path)
    finally:
        con.close()


# -- faults: the catalog never blocks, never loses, always rebuilds -------------------------

CAL = "imagenet-min-calibration-first.5"
ALL = "imagenet-min-calibration-all.500"


@pytest.fixture
def built(tmp_path, synth_small) -> Path:
    """A registry folder with CAL (and its input, imagenet2012-val-min) built."""
    copy_manifests(tmp_path)
    reg = Registry.open(str(tmp_path))
    reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
    reg.resolve(CAL, jobs=1)
    return tmp_path


def indexed(root: Path) -> list[tuple]:
    """(name, key, files, rows in `files`) of every artifact the catalog indexes."""
    out = run_cli("sql", "SELECT a.name, a.key, a.files, (SELECT count(*) FROM files f WHERE "
                  "f.key = a.key) FROM artifacts a ORDER BY a.name", "--format", "json",
                  cwd=root)
    assert out.returncode == 0, out.stderr
    return [tuple(r.values()) for r in json.loads(out.stdout)]


def committed(root: Path) -> dict[str, str]:
    store = LocalStore(str(root / "registry"))
    return {store.marker(k).name: k for k in store.committed()}


def test_a_query_failing_on_its_own_is_not_called_a_refusal(reg):
    """`error()` and bad JSON raise DuckDB's InvalidInputException, as the sandbox's
    read-only refusals do: the message says which it is."""
    for query, reason in (("SELECT error('boom')", "boom"),
                          ("SELECT json_extract('{', '$.a')", "Malformed JSON")):
        with pytest.raises(QueryRefusedError) as info:
            reg.sql(query)
        assert str(info.value).startswith(f"query failed: Invalid Input Error: {reason}"), \
            str(info.value)


def test_sql_only_reads_and_answers_on_a_read_only_catalog(built):
    catalog = built / "catalog.duckdb"
    before = catalog.read_bytes(), catalog.stat().st_mtime_ns, sorted(os.listdir(built))
    catalog.chmod(0o444)
    built.chmod(0o555)
    try:
        rows = indexed(built)
        assert [r[0] for r in rows] == [CAL, "imagenet2012-val-min"]
        assert rows[0][2] == rows[0][3] == 6  # every file row there
    finally:
        built.chmod(0o755)
        catalog.chmod(0o644)
    assert (catalog.read_bytes(), catalog.stat().st_mtime_ns,
            sorted(os.listdir(built))) == before


def _reads_a_copy(pid: int, tmp: Path) -> bool:
    """Whether process `pid` has a private copy of the catalog under `tmp` open."""
    copies = {str(p) for p in tmp.glob("registry-sql-*/catalog.duckdb")}
    fds = f"/proc/{pid}/fd"
    try:
        return any(os.path.realpath(os.path.join(fds, fd)) in copies
                   for fd in os.listdir(fds))
    except OSError:  # (gone, or a descriptor closed meanwhile)
        return False


def test_a_build_does_not_wait_for_a_long_query(built, tmp_path_factory):
    """The query reads the catalog itself until the build's first catalog write comes; then
    it lets go of the file and goes on on a private copy, still running after the build."""
    tmp = tmp_path_factory.mktemp("sql-tmp")
    query = subprocess.Popen(
        as_from_a_terminal([sys.executable, "-m", "dataset_registry.cli", "sql", "--timeout",
                            "300", "SELECT count(*) FROM range(1000000) a, range(1000000) b"]),
        cwd=built, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp)})
    try:
        deadline = time.monotonic() + 60
        while not any(tmp.glob("registry-sql-*")):  # its private folder: the query is next
            assert query.poll() is None and time.monotonic() < deadline, query.stderr.read()
            time.sleep(0.1)
        time.sleep(1)  # running now, on the catalog itself: no copy made
        assert not any(tmp.glob("registry-sql-*/catalog.duckdb"))
        started = time.monotonic()
        out = run_cli("resolve", ALL, cwd=built)
        took = time.monotonic() - started
        assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
        assert query.poll() is None  # the query still runs: it held nothing the build needed
        # on a copy now: made once the query gets the writers' lock the build let go of (a
        # poll of the lock later, which may come after the build's process has ended)
        deadline = time.monotonic() + 30
        while not _reads_a_copy(query.pid, tmp):
            assert query.poll() is None and time.monotonic() < deadline, query.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)  # (running there now: Ctrl-C stops the query itself)
    finally:
        query.send_signal(signal.SIGINT)
        query.communicate(timeout=30)
    assert took < 45  # the build itself (a writer used to wait 60 s, then skip the record)
    assert ALL in [r[0] for r in indexed(built)]
    assert list(tmp.iterdir()) == []  # the query's private folder is gone


def test_a_writer_waits_a_poll_for_a_long_query_not_its_end(built, tmp_path_factory):
    """A writer coming while a query reads the catalog itself gets in within a poll or two
    of the query's (which then goes on on a copy), well inside the writer's own 5 s."""
    tmp = tmp_path_factory.mktemp("sql-tmp")
    query = subprocess.Popen(
        as_from_a_terminal([sys.executable, "-m", "dataset_registry.cli", "sql", "--timeout",
                            "300", "SELECT count(*) FROM range(1000000) a, range(1000000) b"]),
        cwd=built, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp)})
    catalog = Catalog(str(built / "catalog.duckdb"))
    try:
        deadline = time.monotonic() + 60
        while not any(tmp.glob("registry-sql-*")):
            assert query.poll() is None and time.monotonic() < deadline, query.stderr.read()
            time.sleep(0.1)
        time.sleep(1)
        started = time.monotonic()
        with catalog.write() as con:
            con.execute("INSERT INTO runs (run_id, job) VALUES ('during-a-query', 'j')")
        took = time.monotonic() - started
        assert query.poll() is None
    finally:
        query.send_signal(signal.SIGINT)
        _, err = query.communicate(timeout=30)
    assert took < 2.5, took  # (a CatalogBusyError after 5 s when the query held on)
    assert (query.returncode, err) == (130, "registry: interrupted\n")
    assert catalog.query("SELECT run_id FROM runs")[1] == [("during-a-query",)]
    assert list(tmp.iterdir()) == []


def test_a_query_copies_the_catalog_only_while_a_writer_holds_it(built, monkeypatch):
    """No writer: the query reads the catalog itself, no copy, nothing written. A writer
    in the middle of its transaction (another process): the query waits for it, then
    reads a copy holding what it committed."""
    copied: list[str] = []
    copy = shutil.copyfile

    def counted(src: str, dst: str) -> str:
        copy(src, dst)
        copied.append(src)
        return dst

    monkeypatch.setattr(shutil, "copyfile", counted)
    catalog = Catalog(str(built / "catalog.duckdb"))
    before = os.stat(catalog.path).st_mtime_ns, sorted(os.listdir(built))
    assert catalog.query("SELECT count(*) FROM runs")[1] == [(0,)]
    assert copied == []
    assert (os.stat(catalog.path).st_mtime_ns, sorted(os.listdir(built))) == before
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from dataset_registry.catalog import Catalog\n"
         "with Catalog(sys.argv[1]).write() as con:\n"
         "    con.execute(\"INSERT INTO runs (run_id, job) VALUES ('w', 'j')\")\n"
         "    print('holding', flush=True)\n"
         "    time.sleep(1.5)\n", catalog.path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "holding\n"
        assert catalog.query("SELECT run_id FROM runs")[1] == [("w",)]
    finally:
        writer.communicate(timeout=30)
    assert writer.returncode == 0
    assert copied == [catalog.path]  # (no log: the writer's close checkpointed it)


def test_an_artifact_missing_from_the_catalog_is_recorded_by_the_next_command(built):
    before = indexed(built)
    key = committed(built)[CAL]
    Catalog(str(built / "catalog.duckdb")).forget_artifacts([key])  # killed before its record
    assert [r[0] for r in indexed(built)] == ["imagenet2012-val-min"]
    out = run_cli("source", "check", "imagenet2012-val", cwd=built)
    assert out.returncode == 0, out.stderr
    assert indexed(built) == before  # back, with every file row


def test_an_artifact_deleted_before_its_catalog_rows_is_forgotten(built):
    key = committed(built)[CAL]
    LocalStore(str(built / "registry")).delete(key)  # gc killed after deleting
    assert CAL in [r[0] for r in indexed(built)]
    out = run_cli("source", "check", "imagenet2012-val", cwd=built)
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in indexed(built)] == ["imagenet2012-val-min"]
    orphans = run_cli("sql", f"SELECT count(*) FROM files WHERE key = '{key}'", "--format",
                      "csv", cwd=built)
    assert orphans.stdout.splitlines() == ["count_star()", "0"]


def _garbage(data: bytes) -> bytes:
    return random.Random(0).randbytes(len(data))  # (a byte at a time took 19 s for 3 MB)


@pytest.mark.parametrize("damage", [_garbage, lambda data: data[:len(data) // 3],
                                    lambda data: b""], ids=["garbage", "truncated", "empty"])
def test_a_corrupt_catalog_is_named_and_rebuild_recovers_it(built, damage):
    before = indexed(built)
    catalog = built / "catalog.duckdb"
    damaged = damage(catalog.read_bytes())
    catalog.write_bytes(damaged)
    said = f"catalog {catalog} is corrupt; run `registry catalog rebuild`"
    for command in (["sql", "SELECT 1"], ["source", "check", "imagenet2012-val"]):
        out = run_cli(*command, cwd=built)
        assert out.returncode == 1 and said in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    out = run_cli("resolve", ALL, cwd=built)  # published all the same: a warning, exit 0
    assert out.returncode == 0 and said in out.stderr and "warning" in out.stderr, out.stderr
    assert ALL in committed(built)
    out = run_cli("catalog", "rebuild", cwd=built)
    assert out.returncode == 0, out.stderr
    assert "re-indexed 3 artifact(s)" in out.stdout and "moved aside" in out.stderr
    aside = list(built.glob("catalog.duckdb.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for a post-mortem
    after = indexed(built)
    assert sorted([*before, *[r for r in after if r[0] == ALL]]) == after


def test_rebuild_is_atomic_the_old_catalog_stays_if_it_fails(built):
    catalog = built / "catalog.duckdb"
    before = catalog.read_bytes()
    cal = built / "manifests" / "imagenet" / "calibration.yaml"
    cal.write_text(cal.read_text() + "\n  - {name: broken\n")  # fails midway: after artifacts
    out = run_cli("catalog", "rebuild", cwd=built)
    assert out.returncode == 2 and "calibration.yaml" in out.stderr, out.stderr
    assert catalog.read_bytes() == before
    assert sorted(p.name for p in built.glob("catalog.duckdb*")) == ["catalog.duckdb",
                                                                     "catalog.duckdb.lock"]


def test_rebuild_names_damaged_artifacts_and_indexes_the_rest(built):
    reg = Registry.open(str(built))
    reg.resolve(ALL, jobs=1)
    keys = committed(built)
    store = built / "registry"
    (store / keys[CAL][:2] / keys[CAL] / "_registry.json").write_text('{"key": ')
    (store / keys[ALL][:2] / keys[ALL] / "_files.parquet").write_bytes(b"PAR1 not really")
    out = run_cli("catalog", "rebuild", cwd=built)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "catalog rebuilt with 1 artifact(s)" in out.stderr
    assert f"{keys[CAL]}/_registry.json: the marker does not parse as JSON" in out.stderr
    # (a damaged table is caught where the marker is read: the store never serves it)
    assert f"{keys[ALL]}/_files.parquet: unreadable as a file table (truncated, or not a " \
        "Parquet file (no PAR1 at its end))" in out.stderr
    assert [r[0] for r in indexed(built)] == ["imagenet2012-val-min"]


def test_a_marker_without_its_build_record_is_named_not_a_traceback(built):
    """A marker whose top-level fields parse but whose `built` record lacks what the
    catalog indexes (its time) is a damaged artifact, named; the rest is indexed."""
    keys = committed(built)
    path = built / "registry" / keys[CAL][:2] / keys[CAL] / "_registry.json"
    doc = json.loads(path.read_text())
    path.chmod(0o644)
    path.write_text(json.dumps({**doc, "built": {}}))
    out = run_cli("catalog", "rebuild", cwd=built)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"artifact {keys[CAL]} ({CAL}): its marker's build record is damaged " \
           "(KeyError: 'at')" in out.stderr
    assert [r[0] for r in indexed(built)] == ["imagenet2012-val-min"]


def test_job_runs_survive_a_rebuild(tmp_path, synth_small):
    copy_manifests(tmp_path)
    reg = Registry.open(str(tmp_path))
    reg.set_source("imagenet2012-train", synth_small["imagenet-train"])
    reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
    rendered = reg.render_job("mlperf-resnet50", "t9k")
    assert (tmp_path / "registry" / ".runs" / f"{rendered.run_id}.json").exists()
    query = "SELECT r.run_id, r.action, i.role, i.key FROM runs r JOIN run_inputs i " \
            "USING (run_id) ORDER BY i.role"
    before = reg.sql(query).rows
    assert [r[:3] for r in before] == [(rendered.run_id, "render", "train"),
                                       (rendered.run_id, "render", "val")]
    os.remove(reg.catalog.path)
    Registry.open(str(tmp_path)).rebuild_catalog()
    assert reg.sql(query).rows == before


def test_the_sandbox_has_a_private_temp_folder(built):
    catalog = built / "catalog.duckdb"
    shared = Path(str(catalog) + ".tmp")  # DuckDB's default temp folder, next to the catalog
    shared.mkdir()
    (shared / "secret.csv").write_text("a\n1\n")
    reg = Registry.open(str(built))
    for query in [f"COPY files TO '{shared}/stolen.csv'",
                  f"SELECT * FROM read_csv('{shared}/secret.csv')",
                  "SELECT 1; COPY artifacts TO 'x.csv'",
                  "PRAGMA enable_profiling"]:
        with pytest.raises(QueryRefusedError, match=r"query refused"):
            reg.sql(query)
    assert os.listdir(shared) == ["secret.csv"]
    (spill,), = reg.sql("SELECT current_setting('temp_directory')").rows
    assert not spill.startswith(str(built)) and not os.path.exists(os.path.dirname(spill))
    limits = reg.sql("SELECT current_setting('memory_limit'), "
                     "current_setting('max_temp_directory_size')").rows
    assert limits == [("953.6 MiB", "3.7 GiB")]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_run_records_in_either_store(backend, tmp_path, request):
    from dataset_registry.core.remote import Remote
    from dataset_registry.stores.object import ObjectStore

    if backend == "s3":
        s3 = request.getfixturevalue("s3")
        store = ObjectStore(f"{s3.bucket().url}/store", Remote(s3.options()), str(tmp_path / "c"))
    else:
        store = LocalStore(str(tmp_path / "store"))
    store.put_record("runs", "b2", {"run_id": "b2", "n": 2})
    store.put_record("runs", "a1", {"run_id": "a1", "n": 1})
    store.put_record("runs", "a1", {"run_id": "a1", "n": 3})  # a rewrite replaces it whole
    assert list(store.records("runs")) == [{"run_id": "a1", "n": 3}, {"run_id": "b2", "n": 2}]
    assert list(store.records("other")) == []
    assert list(store.committed()) == [] and store.leftovers() == []  # not artifacts
    with pytest.raises(ValueError, match="not a plain name"):
        store.put_record("runs", "../escape", {})
