"""The catalog where it cannot be written (a read-only mount, a full disk) and what a killed
`catalog rebuild` leaves: the store is the truth, so a resolve publishes and exits 0 with
one warning line, `sql` still reads, and nothing is left behind."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from . import test_catalog
from .conftest import run_cli
from .stores import test_write_faults
from .test_catalog import ALL, CAL, committed, indexed

built = test_catalog.built  # fixtures of those modules: CAL built in a registry folder ...
mount = test_write_faults.mount  # ... and a tmpfs of the given options


@pytest.fixture
def private_tmp(tmp_path_factory) -> Path:
    """TMPDIR for the commands: where `sql` puts its snapshot (checked empty after)."""
    return tmp_path_factory.mktemp("tmpdir")


def read_only_copy(built: Path, folder: Path):
    """The built catalog in `folder`, bind-mounted read-only onto itself."""
    folder.mkdir()
    shutil.copyfile(built / "catalog.duckdb", folder / "catalog.duckdb")
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip() or 'not root'})")
    subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
    return folder / "catalog.duckdb"


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_read_only_catalog_answers_sql_and_resolve_publishes_with_one_warning(
        built, tmp_path, private_tmp):
    folder = tmp_path / "ro"
    try:
        catalog = read_only_copy(built, folder)
        before = snapshot_of(folder)
        env = {"TMPDIR": str(private_tmp)}
        out = run_cli("--catalog", str(catalog), "sql", "SELECT name FROM artifacts ORDER BY 1",
                      "--format", "csv", cwd=built, env=env)
        assert (out.returncode, out.stderr) == (0, "")
        assert out.stdout.splitlines() == ["name", CAL, "imagenet2012-val-min"]
        out = run_cli("--catalog", str(catalog), "resolve", ALL, "-j", "1", cwd=built, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stderr == (f"warning: catalog {catalog} cannot be written (Read-only file "
                              f"system); the next command that writes indexes {ALL}\n")
        path = out.stdout.strip()
        assert ALL in committed(built) and Path(path, "val_map.txt").exists()
        served = run_cli("--catalog", str(catalog), "path", ALL, cwd=built, env=env)
        assert (served.returncode, served.stdout.strip()) == (0, path)
        assert snapshot_of(folder) == before
        assert list(private_tmp.iterdir()) == []  # sql's snapshot is gone
        assert os.listdir(built / "registry" / ".staging") == []
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_under_the_catalog_resolve_publishes_warns_once_and_nothing_is_lost(
        built, mount, private_tmp):
    size = os.path.getsize(built / "catalog.duckdb")
    folder = mount(f"size={(size // 4096 + 2) * 4096}")  # two pages to spare: not 500 rows
    catalog = folder / "catalog.duckdb"
    shutil.copyfile(built / "catalog.duckdb", catalog)
    env = {"TMPDIR": str(private_tmp)}
    out = run_cli("--catalog", str(catalog), "resolve", ALL, "-j", "1", cwd=built, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith(f"warning: catalog {catalog} cannot be written (No space "
                                 "left on device); the next command that writes indexes ")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    path = out.stdout.strip()
    served = run_cli("--catalog", str(catalog), "path", ALL, cwd=built, env=env)
    assert (served.returncode, served.stdout.strip()) == (0, path)
    out = run_cli("--catalog", str(catalog), "sql", "SELECT name FROM artifacts ORDER BY 1",
                  "--format", "csv", cwd=built, env=env)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == ["name", CAL, "imagenet2012-val-min"]
    assert {p.name for p in folder.iterdir()} <= {"catalog.duckdb", "catalog.duckdb.lock",
                                                  "catalog.duckdb.wal"}  # DuckDB's own log
    assert list(private_tmp.iterdir()) == []
    # room again: the next command that writes indexes what the store has, every file row
    subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
    out = run_cli("--catalog", str(catalog), "source", "check", "imagenet2012-val", cwd=built,
                  env=env)
    assert (out.returncode, out.stderr) == (0, "")
    rows = {r[0]: r for r in indexed_at(built, catalog)}
    assert rows[ALL][2] == rows[ALL][3] == 501
    assert {p.name for p in folder.iterdir()} == {"catalog.duckdb", "catalog.duckdb.lock"}


def indexed_at(root: Path, catalog: Path) -> list[tuple]:
    """`indexed` of a catalog given by --catalog."""
    import json

    out = run_cli("--catalog", str(catalog), "sql", "SELECT a.name, a.key, a.files, (SELECT "
                  "count(*) FROM files f WHERE f.key = a.key) FROM artifacts a ORDER BY a.name",
                  "--format", "json", cwd=root)
    assert out.returncode == 0, out.stderr
    return [tuple(r.values()) for r in json.loads(out.stdout)]


KILLED_REBUILD = """
import sys, time
from dataset_registry.catalog import Catalog

def fill(new):
    with new.write() as con:  # the new file exists now, as in a real rebuild's fill
        con.execute("INSERT INTO meta VALUES ('filling', 'yes')")
    print("filling", flush=True)
    time.sleep(600)

Catalog(sys.argv[1]).rebuild(fill, lambda new: None)
"""


def rebuilds(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("catalog.duckdb.rebuild-*"))


@pytest.mark.parametrize("command", [["catalog", "rebuild"],
                                     ["source", "check", "imagenet2012-val"]])
def test_a_killed_rebuilds_files_are_removed_by_the_next_writer_a_live_ones_kept(
        built, command):
    before = indexed(built)
    live = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_REBUILD),
                             str(built / "catalog.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "filling\n"
        left = rebuilds(built)
        assert len(left) == 2 and left[1] == left[0] + ".lock"  # the file (checkpointed) + lock
        out = run_cli("source", "check", "imagenet2012-val", cwd=built)
        assert (out.returncode, out.stderr) == (0, "")
        assert rebuilds(built) == left  # its rebuild is alive: its lock is held
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait(timeout=30)
    lone = built / "catalog.duckdb.rebuild-0123abcd.lock"  # killed before it made its file
    lone.touch()
    os.utime(lone, (time.time() - 120, time.time() - 120))
    fresh = built / "catalog.duckdb.rebuild-4567cdef.lock"  # a rebuild starting this instant
    fresh.touch()
    out = run_cli(*command, cwd=built)
    assert out.returncode == 0, out.stderr
    removed = sorted([*left, lone.name])
    assert out.stderr == ("warning: removed what a killed `registry catalog rebuild` left: " +
                          ", ".join(str(built / name) for name in removed) + "\n")
    assert rebuilds(built) == [fresh.name]
    assert indexed(built) == before
