"""registry.lock: a second clone (manifests + lock, no source set) names, shows and finds
what the first clone built in a shared store, by the same keys; what nobody built fails
clearly until its source is set; a set source that is not the locked copy is refused."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import tomllib

from dataset_registry import Registry
from dataset_registry.engine.lockfile import LOCK, Lock, LockedDataset, LockedSource, load

from ..conftest import run_cli, write_imagenet_manifest

DATASETS = """
  - name: val-first
    recipe: select
    inputs: {images: val}
    params: {first: 40}
  - name: cal
    recipe: calibration
    inputs: {images: val-first, labels: labels}
  - name: val-few
    recipe: select
    inputs: {images: val}
    params: {first: 10}
"""


@pytest.fixture
def team(tmp_path: Path, synth_small: dict[str, str]) -> dict[str, object]:
    """Root A (val set) built cal and val-first into a store it shares with root B, which
    holds only A's manifests and registry.lock."""
    store = tmp_path / "store"
    a, b = tmp_path / "a", tmp_path / "b"
    write_imagenet_manifest(a, DATASETS)
    reg_a = Registry.open(str(a), store=str(store))
    reg_a.set_source("val", synth_small["imagenet-val"])
    built = reg_a.resolve("cal")
    reg_a.write_lock()
    b.mkdir()
    shutil.copytree(a / "manifests", b / "manifests")
    shutil.copy(a / LOCK, b / LOCK)
    return {"a": a, "b": b, "store": str(store), "reg_a": reg_a, "built": built,
            "env": {"DATASET_REGISTRY_STORE": str(store)}}


def cli(team: dict, root: str, *args: str):
    return run_cli(*args, cwd=team[root], env=team["env"])


def committed(store: str) -> list[str]:
    return sorted(os.listdir(store))


def test_b_lists_shows_finds_and_traces_a_build_by_the_locked_key(team):
    reg_a, built = team["reg_a"], team["built"]
    assert not (team["b"] / ".registry-state" / "sources.json").exists()

    path = cli(team, "b", "path", "cal")
    assert path.returncode == 0, path.stderr
    assert path.stdout.strip() == built.path
    again = cli(team, "b", "path", "cal")  # the key cache's fast path, keyed by the lock
    assert again.stdout == path.stdout and again.returncode == 0

    show = cli(team, "b", "show", "cal")
    assert show.returncode == 0, show.stderr
    info = json.loads(show.stdout)
    assert info["key"] == reg_a.key("cal") and info["status"] == "built"
    assert info["digest"] == built.digest
    source = json.loads(cli(team, "b", "show", "val").stdout)
    assert source["key"] == reg_a.key("val") and source["status"] == "source unset"
    assert source["images"] == reg_a.resolver.source_info("val").files

    listed = cli(team, "b", "list")
    assert listed.returncode == 0, listed.stderr
    status = {line.split("\t")[0]: line.split("\t")[3] for line in listed.stdout.splitlines()[1:]}
    assert status == {"cal": "built", "val-first": "built", "val-few": "missing (source unset)",
                      "val": "source unset", "train": "source unset", "labels": "ready"}

    lineage = cli(team, "b", "lineage", "cal")
    assert lineage.returncode == 0, lineage.stderr
    for name in ("cal", "val-first", "val"):
        assert f"key {reg_a.key(name)[:16]}" in lineage.stdout
    assert "not set here; key from registry.lock" in lineage.stdout

    resolve = cli(team, "b", "resolve", "cal")
    assert resolve.returncode == 0, resolve.stderr
    assert resolve.stdout.strip() == built.uri

    reg_b = Registry.open(str(team["b"]), store=team["store"])
    assert {n: reg_b.key(n) for n in ("val", "val-first", "cal", "val-few")} == \
        {n: reg_a.key(n) for n in ("val", "val-first", "cal", "val-few")}
    resolved = reg_b.resolve("cal")
    assert resolved.path == built.path and not resolved.built_now
    # the catalog's node sync keys them from the lock too (resolve's upkeep ran it)
    rows = reg_b.sql("SELECT name, key FROM nodes WHERE kind != 'file' ORDER BY name").rows
    assert rows == sorted([(n, reg_a.key(n)) for n in ("val", "val-first", "cal", "val-few")]
                          + [("train", None)])  # train: set nowhere, locked by nobody
    edges = reg_b.sql("SELECT input_name FROM edges WHERE key = ?", [reg_a.key("cal")]).rows
    assert sorted(edges) == [("labels",), ("val-first",)]
    assert not (team["b"] / ".registry-state" / "sources.json").exists()


def test_a_variant_nobody_built_fails_clearly_and_builds_once_the_source_is_set(
        team, synth_small):
    before, lock_before = committed(team["store"]), (team["b"] / LOCK).read_bytes()
    for args in (("resolve", "val-few"), ("path", "val-few")):
        proc = cli(team, "b", *args)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.splitlines()
        assert "val-few" in line and f"not built in the store {team['store']}" in line
        assert "source val" in line and "not set on this machine" in line
        assert "registry source set val PATH" in line
    assert committed(team["store"]) == before  # nothing built, nothing left staged
    assert (team["b"] / LOCK).read_bytes() == lock_before

    assert cli(team, "b", "source", "set", "val", synth_small["imagenet-val"]).returncode == 0
    proc = cli(team, "b", "resolve", "val-few")
    assert proc.returncode == 0, proc.stderr
    key = team["reg_a"].key("val-few")
    assert proc.stdout.strip().endswith(key)
    assert load(str(team["b"] / LOCK)).datasets["val-few"].key == key


def _other_copy(source: str, out: Path) -> str:
    """The same val tar less its last image: another fingerprint."""
    with tarfile.open(source) as src, tarfile.open(out, "w") as dst:
        members = [m for m in src.getmembers() if m.isfile()]
        for member in members[:-1]:
            dst.addfile(member, src.extractfile(member))
    return str(out)


def test_a_set_source_that_is_not_the_locked_copy_is_refused_naming_both(
        team, synth_small, tmp_path):
    other = _other_copy(synth_small["imagenet-val"], tmp_path / "other-val.tar")
    locked = team["reg_a"].key("val")
    lock_before = (team["b"] / LOCK).read_bytes()

    proc = cli(team, "b", "source", "set", "val", other)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert f"locks fingerprint {locked}" in line and "--update-lock" in line
    fingerprint = line.split("has fingerprint ")[1].split(",")[0]
    assert fingerprint != locked and len(fingerprint) == 32
    assert not (team["b"] / ".registry-state" / "sources.json").exists()  # not set
    assert (team["b"] / LOCK).read_bytes() == lock_before

    proc = cli(team, "b", "source", "set", "val", other, "--update-lock")
    assert proc.returncode == 0, proc.stderr
    relocked = load(str(team["b"] / LOCK))
    assert relocked.sources["val"].fingerprint == fingerprint
    reg_b = Registry.open(str(team["b"]), store=team["store"])
    assert relocked.datasets["cal"].key == reg_b.key("cal") != team["reg_a"].key("cal")
    assert reg_b.status("cal") == "missing"

    # A, its source the original, given B's lock: a resolve is refused the same way...
    shutil.copy(team["b"] / LOCK, team["a"] / LOCK)
    proc = cli(team, "a", "resolve", "val-first")
    assert proc.returncode == 2
    assert f"has fingerprint {locked}" in proc.stderr
    assert f"locks fingerprint {fingerprint}" in proc.stderr
    assert cli(team, "a", "list").stdout.count("lock mismatch") == 4  # val and 3 datasets
    # ... unless it locks its own copy again
    proc = cli(team, "a", "resolve", "val-first", "--update-lock")
    assert proc.returncode == 0, proc.stderr
    assert load(str(team["a"] / LOCK)).sources["val"].fingerprint == locked


def test_registry_lock_writes_sorted_stable_text_and_says_what_it_left_out(team):
    stat = os.stat(team["a"] / LOCK)
    first = cli(team, "a", "lock")
    assert first.returncode == 0, first.stderr
    assert "unchanged:" in first.stdout  # the fixture wrote the same content already
    assert "not locked: train: not set on this machine and not in the lock" in first.stderr
    after = os.stat(team["a"] / LOCK)
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # untouched
    text = (team["a"] / LOCK).read_bytes()
    os.remove(team["a"] / LOCK)
    assert "wrote" in cli(team, "a", "lock").stdout
    assert (team["a"] / LOCK).read_bytes() == text  # two writes, the same bytes

    doc = tomllib.loads(text.decode())
    assert list(doc["datasets"]) == ["cal", "val-few", "val-first"]
    assert list(doc["sources"]) == ["val"]
    assert doc["datasets"]["cal"]["key"] == team["reg_a"].key("cal")
    assert set(doc["sources"]["val"]) == {"fingerprint", "layout", "files", "bytes"}

    # the text is a function of the content: insertion order does not show
    lock = load(str(team["a"] / LOCK))
    shuffled = Lock(dict(reversed(lock.sources.items())), dict(reversed(lock.datasets.items())))
    assert shuffled.text().encode() == text


def test_resolve_keeps_other_entries(team, synth_small):
    lock_path = str(team["a"] / LOCK)
    extra = Lock({"elsewhere": LockedSource("0" * 32, "image-folder", 1, 2)},
                 {"gone": LockedDataset("1" * 32, "select", 1)})
    from dataset_registry.engine.lockfile import save

    save(lock_path, load(lock_path).merged(extra.sources, extra.datasets))
    Registry.open(str(team["a"]), store=team["store"]).resolve("val-few")
    after = load(lock_path)
    assert after.datasets["gone"] == extra.datasets["gone"]  # never dropped by a resolve
    assert after.sources["elsewhere"] == extra.sources["elsewhere"]
    assert after.datasets["val-few"].key == team["reg_a"].key("val-few")


@pytest.mark.parametrize("text, says", [
    ("[sources.val\n", "not valid TOML"),
    ('[sources."val"]\nfingerprint = "xyz"\nlayout = "imagenet-val"\nfiles = 1\nbytes = 1\n',
     "[sources.\"val\"]: 'xyz' is not a key"),
    ('[datasets."cal"]\nkey = "' + "a" * 32 + '"\nrecipe = "calibration"\n',
     "[datasets.\"cal\"]: lacks version"),
])
def test_a_malformed_lock_is_one_line_naming_it(team, text, says):
    (team["b"] / LOCK).write_text(text)
    proc = cli(team, "b", "list")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"registry: error: {team['b'] / LOCK}: ") and says in line
    assert (team["b"] / LOCK).read_text() == text


def test_without_a_lock_resolve_writes_none_and_pins_nothing(tmp_path, synth_small):
    write_imagenet_manifest(tmp_path, DATASETS)
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    reg.resolve("val-few")
    assert not (tmp_path / LOCK).exists()  # a project takes one on with `registry lock`
    other = _other_copy(synth_small["imagenet-val"], tmp_path / "other-val.tar")
    reg.set_source("val", other)  # no lock: another copy is simply other keys
    assert reg.status("val-few") == "missing"
    assert not (tmp_path / LOCK).exists()


def _select(name: str, first: int) -> str:
    return f"""
  - name: {name}
    recipe: select
    inputs: {{images: val}}
    params: {{first: {first}}}
"""


def test_gc_in_b_keeps_what_a_locked_and_everything_while_a_key_is_unknown(team, synth_small,
                                                                          tmp_path):
    """B's keys come from the lock; A's lock, recorded in the store it writes into, keeps
    A's later builds; a build no lock names goes, unless B has a dataset it cannot key."""
    write_imagenet_manifest(team["a"], DATASETS + _select("val-seven", 7))
    seven = Registry.open(str(team["a"]), store=team["store"]).resolve("val-seven").key
    c = tmp_path / "c"  # a third project, no lock: nothing records its builds as roots
    write_imagenet_manifest(c, _select("val-nine", 9))
    reg_c = Registry.open(str(c), store=team["store"])
    reg_c.set_source("val", synth_small["imagenet-val"])
    nine = reg_c.resolve("val-nine").key

    dry = cli(team, "b", "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"keep val-seven  key {seven}" in dry.stdout and "lock of a-" in dry.stdout
    assert f"keep cal  key {team['reg_a'].key('cal')}" in dry.stdout
    assert [ln.split("  ")[:2] for ln in dry.stdout.splitlines()
            if ln.startswith("would remove")] == [["would remove val-nine", f"key {nine}"]]

    # train is neither set in B nor in the lock: what B's train-few is cannot be known
    write_imagenet_manifest(team["b"], DATASETS + _select("train-few", 8).replace("val}", "train}"))
    before = committed(team["store"])
    proc = cli(team, "b", "gc", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert ("kept every artifact: keys unknown (sources unset, not in registry.lock) for "
            "train-few") in proc.stdout
    assert committed(team["store"]) == before and reg_c.status("val-nine") == "built"
