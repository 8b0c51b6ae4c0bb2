"""A store that cannot take the writes (full, read-only, missing bucket) or whose path holds
glob characters: through the CLI, one clear line, the right exit code, nothing half-written."""

import os
import subprocess
from pathlib import Path

import pytest

from ..conftest import run_cli, write_imagenet_manifest

DATASETS = """
  - {name: first, recipe: select, inputs: {images: val}, params: {first: 600}}
  - {name: cal, recipe: calibration, inputs: {images: first, labels: labels}}
"""


@pytest.fixture
def root(tmp_path, synth_small) -> Path:
    write_imagenet_manifest(tmp_path, DATASETS)
    assert run_cli("source", "set", "val", synth_small["imagenet-val"], cwd=tmp_path,
                   ).returncode == 0
    return tmp_path


@pytest.fixture
def mount(tmp_path):
    """mount(options) -> a fresh tmpfs folder; unmounted afterwards."""
    mounted = []

    def make(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def nothing_half_written(store: Path) -> None:
    staging = store / ".staging"
    assert not staging.exists() or os.listdir(staging) == []
    assert not [p for p in store.rglob("_registry.json*")]


def test_a_full_store_is_a_storage_error_naming_the_file(root, mount):
    store = mount("size=256k")
    done = run_cli("--store", str(store), "resolve", "first", "-j", "2", cwd=root)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"registry: error: {store}/.staging/")
    assert "cannot write (No space left on device)" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    nothing_half_written(store)


def test_no_room_for_the_file_table_is_a_storage_error_naming_it(root, mount):
    """Inodes run out exactly where `_files.parquet` is created: the most inodes a build
    fails with (found by bisection) are one short of its peak, which is that file (the
    data and the task parts all exist then; the commit comes after the parts are gone)."""
    store = mount("size=16m,nr_inodes=2000")

    def build(limit: int) -> subprocess.CompletedProcess:
        subprocess.run(["rm", "-rf", *[str(p) for p in store.iterdir()]], check=True)
        subprocess.run(["mount", "-o", f"remount,nr_inodes={limit}", str(store)], check=True)
        return run_cli("--store", str(store), "resolve", "first", "-j", "1", cwd=root)

    good, bad = 2000, 10  # a build succeeds with `good` inodes and fails with `bad`
    assert build(good).returncode == 0
    while good - bad > 1:
        middle = (good + bad) // 2
        if build(middle).returncode == 0:
            good = middle
        else:
            bad = middle
    done = build(bad)
    assert done.returncode == 1
    assert done.stderr.startswith(f"registry: error: {store}/.staging/")
    assert "_files.parquet: cannot write the file table" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    nothing_half_written(store)


def test_a_read_only_store_is_a_clear_error_naming_it(root, mount):
    """chmod 555 does not stop root (these tests run as root here), so as root the store is
    a read-only tmpfs: the same refusal (EROFS instead of EACCES)."""
    if os.geteuid() == 0:
        store = mount("ro,size=1m")
        reason = "Read-only file system"
    else:
        store = root / "store"
        store.mkdir()
        store.chmod(0o555)
        reason = "Permission denied"
    done = run_cli("--store", str(store), "resolve", "first", cwd=root)
    assert done.returncode == 1
    assert f"cannot write into the store {store} ({reason})" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert os.listdir(store) == []


def test_a_store_folder_with_glob_characters_builds_and_verifies(root):
    store = root / "store[1]*"
    decoy = root / "store1-other"  # what the pattern `store[1]*` would match
    decoy.mkdir()
    done = run_cli("--store", str(store), "resolve", "cal", cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{store}/")
    verified = run_cli("--store", str(store), "verify", "first", "cal", cwd=root)
    assert verified.returncode == 0, verified.stderr
    assert os.listdir(decoy) == []
    assert os.listdir(store / ".staging") == []


def test_an_s3_store_in_a_missing_bucket_is_a_user_error_naming_it(root, s3):
    """Exit 2: the bucket is part of what the user typed (--store), like a source folder
    that does not exist; creating buckets is not the registry's to do."""
    done = run_cli("--store", "s3://no-such-bucket-here/prefix", *s3.cli_options(),
                   "resolve", "first", cwd=root)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("registry: error: store s3://no-such-bucket-here/prefix: bucket "
                           "'no-such-bucket-here' does not exist (create it, or name another "
                           "with --store)\n")


def test_an_s3_prefix_with_glob_characters_builds_and_gc_spares_its_neighbour(root, s3):
    bucket = s3.bucket()
    bucket.fs().pipe(f"{bucket.name}/store1-other/keep", b"x")
    url = f"{bucket.url}/store[1]*"
    done = run_cli("--store", url, *s3.cli_options(), "resolve", "cal", cwd=root)
    assert done.returncode == 0, done.stderr
    listed = run_cli("--store", url, *s3.cli_options(), "verify", "first", "cal", cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert run_cli("--store", url, *s3.cli_options(), "gc", cwd=root).returncode == 0
    kept = bucket.keys()  # a list of object keys, not a dict
    assert "store1-other/keep" in kept
    assert [k for k in bucket.keys("store[1]*") if k.endswith("_registry.json")]
