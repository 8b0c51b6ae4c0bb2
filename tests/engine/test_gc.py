"""Safe gc (api/gc.py): roots from the manifests, registry.lock, pins, recent job runs and
the locks pushed to a shared store, with their inputs; gc names what it deletes, asks (or
needs --yes), and leaves live builds alone. Real local stores, and moto's S3 server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dataset_registry import Registry
from dataset_registry.engine.gc import project_id
from dataset_registry.engine.lockfile import LOCK

from ..conftest import run_cli, write_imagenet_manifest
from .test_lock import DATASETS  # the same three datasets, val-few apart from cal's chain

ONLY_VAL_FEW = """
  - name: val-few
    recipe: select
    inputs: {images: val}
    params: {first: 10}
"""


@pytest.fixture
def project(tmp_path: Path, synth_small: dict[str, str]) -> dict:
    """A project with val set, cal (and its input val-first) and val-few built."""
    root = tmp_path / "p"
    write_imagenet_manifest(root, DATASETS)
    reg = Registry.open(str(root))
    reg.set_source("val", synth_small["imagenet-val"])
    keys = {name: reg.resolve(name).key for name in ("cal", "val-few")}
    keys["val-first"] = reg.key("val-first")
    return {"root": root, "reg": reg, "keys": keys, "store": Path(reg.store.root)}


def artifacts(store: Path) -> list[str]:
    """Every committed key in a local store (its marker present)."""
    return sorted(p.parent.name for p in store.glob("??/*/_registry.json"))


def gc_cli(root: Path, *args: str, env: dict | None = None):
    return run_cli("gc", *args, cwd=root, env=env)


def other_copy(source: str, out: Path) -> str:
    """The same val tar less its last image: another fingerprint, so every key changes."""
    with tarfile.open(source) as src, tarfile.open(out, "w") as dst:
        members = [m for m in src.getmembers() if m.isfile()]
        for member in members[:-1]:
            dst.addfile(member, src.extractfile(member))
    return str(out)


def test_an_artifact_no_root_keeps_is_listed_by_name_key_and_size_and_needs_yes(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    write_imagenet_manifest(root, ONLY_VAL_FEW)  # cal and val-first: no manifest names them
    before = artifacts(store)

    dry = gc_cli(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert sorted(ln.split("  ")[:2] for ln in lines if ln.startswith("would remove")) == [
        ["would remove cal", f"key {keys['cal']}"],
        ["would remove val-first", f"key {keys['val-first']}"]]
    assert all(ln.endswith(("B", "KiB", "MiB")) for ln in lines if ln.startswith("would"))
    assert f"keep val-few  key {keys['val-few']}" in dry.stdout
    assert "manifest dataset val-few" in dry.stdout
    as_json = json.loads(gc_cli(root, "--dry-run", "--json").stdout)
    assert sorted(a["name"] for a in as_json["deleted"]) == ["cal", "val-first"]
    assert all(a["bytes"] > 0 for a in as_json["deleted"])

    refused = gc_cli(root)  # not a terminal: no one to ask
    assert refused.returncode == 2
    assert refused.stderr == ("registry: error: gc: would delete 2 artifact(s), "
                              f"{_size(as_json)}; not on a terminal to ask: pass --yes to "
                              "delete them (see them with: registry gc --dry-run); nothing "
                              "was deleted\n")
    assert artifacts(store) == before and refused.stdout == ""

    done = gc_cli(root, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"removed cal  key {keys['cal']}" in done.stdout
    assert f"removed val-first  key {keys['val-first']}" in done.stdout
    assert artifacts(store) == [keys["val-few"]]
    assert "nothing to remove (1 artifact(s) kept)" in gc_cli(root, "--yes").stdout


def _size(report: dict) -> str:
    from dataset_registry.cli.handlers import _size as size

    return size(sum(a["bytes"] for a in report["deleted"]))


def test_a_pin_keeps_an_artifact_and_its_inputs_until_unpinned(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    pinned = run_cli("pin", "cal", cwd=root)
    assert pinned.returncode == 0 and pinned.stdout == f"pinned cal (key {keys['cal']})\n"
    assert (store / ".pins" / f"{keys['cal']}.json").exists()  # in the store, for any clone
    write_imagenet_manifest(root, ONLY_VAL_FEW)

    report = Registry.open(str(root)).gc(dry_run=True)
    why = {a.name: a.why for a in report.kept}
    assert why["cal"] == ["pinned (cal)"] and why["val-first"] == ["input of cal"]
    assert report.deleted == []
    assert gc_cli(root, "--yes").returncode == 0
    assert artifacts(store) == sorted(keys.values())

    missing = run_cli("unpin", "val-first", cwd=root)
    assert missing.returncode == 2
    assert missing.stderr.startswith("registry: error: unpin: val-first is not pinned in ")
    unpinned = run_cli("unpin", "cal", cwd=root)
    assert unpinned.stdout == f"unpinned cal (key {keys['cal']})\n", unpinned.stderr
    assert gc_cli(root, "--yes").returncode == 0
    assert artifacts(store) == [keys["val-few"]]


def test_pin_of_an_unbuilt_dataset_is_refused_and_writes_nothing(project):
    root, store = project["root"], project["store"]
    write_imagenet_manifest(root, DATASETS + """
  - name: val-five
    recipe: select
    inputs: {images: val}
    params: {first: 5}
""")
    key = Registry.open(str(root)).key("val-five")
    proc = run_cli("pin", "cal", "val-five", cwd=root)
    assert proc.returncode == 2
    assert proc.stderr == (f"registry: error: pin: val-five (key {key}) is not built in "
                           f"{store}; nothing was pinned\n")
    assert not (store / ".pins").exists()


def test_the_keys_in_registry_lock_are_roots(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    project["reg"].write_lock()
    write_imagenet_manifest(root, DATASETS.replace("first: 10", "first: 12"))  # new key
    report = Registry.open(str(root)).gc(dry_run=True)
    assert report.deleted == []
    kept = {a.key: a.why for a in report.kept}
    assert kept[keys["val-few"]] == ["registry.lock (val-few)"]
    lock = (root / LOCK).read_text()
    lock = lock.replace(keys["val-few"], "0" * 32)  # the lock moves on: the old build goes
    (root / LOCK).write_text(lock)
    done = gc_cli(root, "--yes")
    assert f"removed val-few  key {keys['val-few']}" in done.stdout, done.stderr
    assert keys["val-few"] not in artifacts(store)


def test_inputs_of_job_runs_of_the_last_keep_days_are_roots(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    reg = project["reg"]
    now = time.time()
    # the shape api/runs.record_run writes
    reg.store.put_record("runs", "recent", {"run_id": "recent", "job": "train",
                                             "created_at": now - 2 * 86400,
                                             "inputs": [["val", keys["val-few"]]]})
    reg.store.put_record("runs", "old", {"run_id": "old", "job": "train",
                                          "created_at": now - 40 * 86400,
                                          "inputs": [["calib", keys["cal"]]]})
    write_imagenet_manifest(root, ONLY_VAL_FEW.replace("first: 10", "first: 12"))

    report = Registry.open(str(root)).gc(dry_run=True)  # --keep-days 30
    assert sorted(a.name for a in report.deleted) == ["cal", "val-first"]
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 2 * 86400))
    assert [a.why for a in report.kept] == [[f"read by run recent (train, {day})"]]
    longer = Registry.open(str(root)).gc(dry_run=True, keep_days=45)
    assert longer.deleted == []
    shorter = gc_cli(root, "--yes", "--keep-days", "1")
    assert shorter.returncode == 0, shorter.stderr
    assert artifacts(store) == []
    bad = gc_cli(root, "--keep-days", "-1")
    assert bad.returncode == 2 and "--keep-days -1: a number of days, 0 or more" in bad.stderr


def test_after_a_source_switch_pinned_and_locked_variants_survive(project, synth_small,
                                                                  tmp_path):
    root, old, store = project["root"], project["keys"], project["store"]
    reg = project["reg"]
    reg.write_lock()
    team = tmp_path / "team"
    reg.push(["cal", "val-few"], str(team))  # the team store records this project's lock
    assert run_cli("pin", "val-few", cwd=root).returncode == 0

    switched = Registry.open(str(root), update_lock=True)
    switched.set_source("val", other_copy(synth_small["imagenet-val"], tmp_path / "o.tar"))
    new = {name: switched.resolve(name).key for name in ("cal", "val-few")}
    assert not set(new.values()) & set(old.values())

    dry = gc_cli(root, "--dry-run")
    assert f"keep val-few  key {old['val-few']}" in dry.stdout and "pinned (val-few)" in dry.stdout
    assert f"keep cal  key {new['cal']}" in dry.stdout and "registry.lock (cal)" in dry.stdout
    done = gc_cli(root, "--yes")
    assert done.returncode == 0, done.stderr
    removed = sorted(ln for ln in done.stdout.splitlines() if ln.startswith("removed"))
    assert [ln.split("  ")[:2] for ln in removed] == [
        ["removed cal", f"key {old['cal']}"], ["removed val-first", f"key {old['val-first']}"]]
    assert old["val-few"] in artifacts(store) and new["cal"] in artifacts(store)

    # the team store's gc, from this switched project: the pushed lock keeps the old builds
    env = {"DATASET_REGISTRY_STORE": str(team)}
    shared = gc_cli(root, "--dry-run", env=env)
    assert shared.returncode == 0, shared.stderr
    assert "would remove" not in shared.stdout
    assert f"keep cal  key {old['cal']}" in shared.stdout
    assert "lock pushed by p-" in shared.stdout
    assert gc_cli(root, "--yes", env=env).returncode == 0
    assert artifacts(team) == sorted([old["cal"], old["val-few"]])  # what was pushed


def test_a_live_staging_area_and_a_young_unmarked_folder_are_not_deleted(project):
    root, store = project["root"], project["store"]
    reg = project["reg"]
    staging = reg.store.begin("f" * 32)
    spent = Path(staging.path + ".spent")  # parts a build put aside (engine/build.py)
    (spent / ".parts").mkdir(parents=True)
    young = store / "ee" / ("e" * 32)
    young.mkdir(parents=True)
    (young / "part").write_bytes(b"x")  # a copy arriving, marker not yet written
    with reg.store.lock("f" * 32):  # a build holds it
        done = gc_cli(root, "--yes")
        assert done.returncode == 0, done.stderr
        assert "nothing to remove" in done.stdout
        assert os.path.isdir(staging.path) and young.is_dir() and spent.is_dir()
    past = time.time() - reg.store.grace_seconds - 60
    os.utime(young / "part", (past, past))
    os.utime(young, (past, past))
    done = gc_cli(root, "--yes")
    assert f"removed staging {staging.path}" in done.stdout
    assert f"removed staging {spent}" in done.stdout
    assert f"removed unmarked folder {young}" in done.stdout
    assert not os.path.exists(staging.path) and not young.exists() and not spent.exists()


def test_a_shared_s3_store_keeps_what_another_projects_pushed_lock_names(project, s3,
                                                                          synth_small, tmp_path):
    bucket = s3.bucket()
    team = f"{bucket.url}/team"
    a = Registry.open(str(project["root"]), storage_options=s3.options())
    a.write_lock()
    a.push(["cal"], team)
    a_id = project_id(a)
    assert [k for k in bucket.keys("team/.roots/")] == [f"team/.roots/{a_id}.json"]

    b_root = tmp_path / "b"  # another project writing into the same bucket
    write_imagenet_manifest(b_root, ONLY_VAL_FEW + """
  - name: val-b
    recipe: select
    inputs: {images: val}
    params: {first: 7}
""")
    b = Registry.open(str(b_root), store=team, storage_options=s3.options())
    b.set_source("val", synth_small["imagenet-val"])
    b.resolve("val-few")  # A's locked key too (same recipe, params, source)
    own = b.resolve("val-b").key
    write_imagenet_manifest(b_root, ONLY_VAL_FEW.replace("first: 10", "first: 8"))
    b = Registry.open(str(b_root), store=team, storage_options=s3.options())

    report = b.gc()
    assert [(x.name, x.key) for x in report.deleted] == [("val-b", own)]
    keys = project["keys"]
    why = {x.key: x.why for x in report.kept}
    assert why[keys["val-few"]] == [f"lock pushed by {a_id} (val-few)"]
    assert why[keys["cal"]] == [f"lock pushed by {a_id} (cal)", f"pushed by {a_id} (cal)"]
    assert sorted(b.store.committed()) == sorted([keys["cal"], keys["val-few"]])


def test_gc_of_an_unmarked_old_folder_in_a_local_store_unit(tmp_path):
    """A marker-less artifact folder (a delete cut short) is swept once past the grace."""
    from dataset_registry.stores.local import LocalStore

    store = LocalStore(str(tmp_path / "s"))
    folder = tmp_path / "s" / "ab" / ("ab" + "0" * 30)
    folder.mkdir(parents=True)
    assert store.leftovers() == []
    store.grace_seconds = 0
    time.sleep(0.01)
    assert store.leftovers() == [str(folder)]
    shutil.rmtree(folder)


def _gc_on_a_terminal(root: Path, answer: bytes) -> subprocess.CompletedProcess[str]:
    """`registry gc` with a pseudo-terminal as stdin, typing `answer` at its prompt."""
    import pty

    master, slave = pty.openpty()
    try:
        os.write(master, answer)
        return subprocess.run([sys.executable, "-m", "dataset_registry.cli", "gc"], cwd=root,
                              stdin=slave, capture_output=True, text=True, timeout=120)
    finally:
        os.close(slave)
        os.close(master)


def test_on_a_terminal_gc_asks_and_deletes_only_on_yes(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    write_imagenet_manifest(root, ONLY_VAL_FEW)
    before = artifacts(store)
    declined = _gc_on_a_terminal(root, b"n\n")
    assert declined.returncode == 0, declined.stderr
    assert f"would remove cal  key {keys['cal']}" in declined.stdout
    assert "delete 2 artifact(s)" in declined.stdout and "[y/N]" in declined.stdout
    assert declined.stdout.endswith("nothing deleted\n") and artifacts(store) == before
    agreed = _gc_on_a_terminal(root, b"y\n")
    assert agreed.returncode == 0, agreed.stderr
    assert f"removed cal  key {keys['cal']}" in agreed.stdout
    assert artifacts(store) == [keys["val-few"]]


def test_an_artifact_whose_build_lock_is_held_is_left_alone(project):
    root, keys, store = project["root"], project["keys"], project["store"]
    write_imagenet_manifest(root, ONLY_VAL_FEW)
    with project["reg"].store.lock(keys["cal"]):  # a repair of cal runs on this machine
        done = gc_cli(root, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"kept {keys['cal']}: a build on this machine holds it" in done.stdout
    assert f"removed val-first  key {keys['val-first']}" in done.stdout
    assert artifacts(store) == sorted([keys["cal"], keys["val-few"]])
