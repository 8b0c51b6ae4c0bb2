"""Killed builds, concurrent builders, and corrupted artifacts, with real processes."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_registry import Registry

from .conftest import run_cli, write_manifest

WORKER = """
import json, sys
from dataset_registry import Registry
ds = Registry.open(sys.argv[1]).resolve(sys.argv[2], jobs=1)
print(json.dumps({"key": ds.key, "built": ds.built_now, "digest": ds.digest}))
"""


@pytest.fixture
def root(tmp_path, synth_full) -> Path:
    write_manifest(tmp_path, """
sources:
  - {name: val, layout: imagenet-val}
datasets:
  - {name: big, recipe: select, inputs: {images: val}, params: {first: 20000}}
  - {name: "small-{n}", recipe: select, inputs: {images: val}, params: {first: "{n}"},
     matrix: {n: [300, 400]}}
""")
    Registry.open(str(tmp_path)).set_source("val", synth_full["imagenet-val"])
    return tmp_path


def spawn(root: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_build_leaves_nothing_visible_and_a_rerun_completes(root):
    proc = spawn(root, "big")
    deadline = time.monotonic() + 60
    writing = False
    while time.monotonic() < deadline and not writing:
        writing = _writing(root)
        time.sleep(0.02)
    assert writing, "the build never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reg = Registry.open(str(root))
    assert list(reg.store.committed()) == []
    assert reg.status("big") == "missing"
    out = run_cli("path", "big", cwd=root)
    assert out.returncode == 2 and "big is not built" in out.stderr
    leftovers = reg.store.leftovers()
    assert len(leftovers) == 1
    gc = run_cli("gc", cwd=root)
    assert gc.returncode == 0 and "removed staging" in gc.stdout
    assert not os.path.exists(leftovers[0])
    ds = reg.resolve("big", jobs=2)
    assert ds.marker.files == 20000 and reg.verify(["big"]) == {"big": []}


def test_a_rerun_after_a_kill_needs_no_gc(root):
    proc = spawn(root, "big")
    while not glob.glob(str(root / "registry/.staging/*/.parts/*.csv")):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    ds = Registry.open(str(root)).resolve("big", jobs=2)
    assert ds.built_now and ds.marker.files == 20000


def test_four_processes_same_variant_one_build(root):
    procs = [spawn(root, "small-300") for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["built"] for r in results) == 1
    assert len({r["key"] for r in results}) == 1 and len({r["digest"] for r in results}) == 1
    assert len(list(Registry.open(str(root)).store.committed())) == 1


def test_two_processes_different_variants_both_succeed(root):
    procs = [spawn(root, "small-300"), spawn(root, "small-400")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    reg = Registry.open(str(root))
    assert reg.status("small-300") == reg.status("small-400") == "built"
    names = {r[0] for r in reg.sql("SELECT name FROM artifacts").rows}
    assert names == {"small-300", "small-400"}


def test_one_changed_byte_fails_verify_naming_the_file(root):
    reg = Registry.open(str(root))
    ds = reg.resolve("small-300", jobs=1)
    assert run_cli("verify", "small-300", cwd=root).returncode == 0
    target = Path(ds.path) / "ILSVRC2012_val_00000042.JPEG"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.chmod(0o644)  # a committed artifact is read-only
    target.write_bytes(bytes(data))
    out = run_cli("verify", "small-300", cwd=root)
    assert out.returncode == 1
    assert f"{target}: content changed" in out.stderr
    assert out.stderr.count("\n") == 3  # the header line, exactly one problem, the repair hint


def test_a_planted_file_fails_verify_naming_it(root):
    """A file in the artifact's folder that its file table does not list is reported, even
    when every listed file is intact."""
    reg = Registry.open(str(root))
    ds = reg.resolve("small-300", jobs=1)
    folder = Path(ds.path)
    mode = folder.stat().st_mode
    folder.chmod(mode | 0o200)  # a committed artifact is read-only
    planted = folder / "ILSVRC2012_val_99999999.JPEG"
    planted.write_bytes(b"not from the source")
    folder.chmod(mode)
    out = run_cli("verify", "small-300", cwd=root)
    assert out.returncode == 1
    assert f"{planted}: not part of the artifact" in out.stderr
    assert out.stderr.count("\n") == 3  # the header line, exactly one problem, the repair hint
    assert planted.read_bytes() == b"not from the source"  # verify reports, it does not delete


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                found += [int(entry), *_descendants(int(entry))]
    return found


def test_a_killed_worker_fails_the_build_cleanly(root):
    import threading

    from dataset_registry import BuildError

    killed = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if _writing(root):
                # the pool's workers are the grandchildren (children of the forkserver)
                workers = [g for c in _descendants(os.getpid()) for g in _descendants(c)]
                if workers:
                    os.kill(workers[0], signal.SIGKILL)
                    killed.append(workers[0])
            time.sleep(0.01)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    reg = Registry.open(str(root))
    with pytest.raises(BuildError, match="a worker process died"):
        reg.resolve("big", jobs=2)
    assert killed
    assert list(reg.store.committed()) == [] and reg.store.leftovers() == []
    assert Registry.open(str(root)).resolve("big", jobs=2).marker.files == 20000


def _writing(root: Path) -> bool:
    """Whether a task of the build under `root` has written part of its file table (a part
    may be renamed or removed between the listing and the look at its size: a task that
    ended, a staging folder moved: then not this one)."""
    for part in glob.glob(str(root / "registry/.staging/*/.parts/*.csv")):
        try:
            if os.path.getsize(part) > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def _start_cli_build(root: Path, name: str = "big") -> tuple[subprocess.Popen, list]:
    """`registry resolve NAME -j 2` in a subprocess, returned once its tasks are writing,
    with every process of its tree (pool workers, fork server) found before any signal."""
    import psutil

    # Output to files, not pipes: orphaned workers would hold a pipe open for ever.
    proc = subprocess.Popen([sys.executable, "-m", "dataset_registry.cli", "resolve", name,
                             "-j", "2"], cwd=root, stdout=(root / "out.txt").open("w"),
                            stderr=(root / "err.txt").open("w"), text=True)
    deadline = time.monotonic() + 60
    tree: list = []
    while time.monotonic() < deadline:
        writing = _writing(root)
        tree = psutil.Process(proc.pid).children(recursive=True)
        if writing and len(tree) >= 3:  # the fork server and both workers, at least
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the build never started writing")
    return proc, tree


def _alive_after(tree: list, seconds: float) -> list[int]:
    """Which of `tree` still run `seconds` after now (those are then killed, so that a
    failing test leaves nothing behind)."""
    import psutil

    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            for p in alive:
                p.kill()
            return [p.pid for p in alive]
        time.sleep(0.05)


def test_sigkill_of_the_coordinator_leaves_no_worker_running(root):
    """Pool workers (children of the fork server, not of the coordinator) notice the
    coordinator's death and exit mid-task; the fork server goes too."""
    for _ in range(5):
        proc, tree = _start_cli_build(root)
        proc.kill()
        proc.wait()
        assert _alive_after(tree, 3.0) == []
    reg = Registry.open(str(root))
    assert list(reg.store.committed()) == []
    assert reg.resolve("big", jobs=2).marker.files == 20000  # the leftovers do not matter


def test_sigterm_cleans_up_like_ctrl_c(root):
    proc, tree = _start_cli_build(root)
    proc.terminate()
    assert proc.wait(timeout=60) == 143
    assert (root / "err.txt").read_text() == "registry: terminated\n"
    assert (root / "out.txt").read_text() == ""
    assert _alive_after(tree, 3.0) == []
    assert os.listdir(root / "registry/.staging") == []
    reg = Registry.open(str(root))
    assert list(reg.store.committed()) == [] and reg.status("big") == "missing"


@pytest.mark.parametrize(("recipe", "inputs", "missing"), [
    ("webdataset", "{images: val, labels: nolabels}", "caffe_synsets.txt"),
    ("downscale", "{train: train, val: val, labels: nolabels}", "caffe_synsets.txt"),
    ("calibration", "{images: val, labels: nolabels}", "caffe_val.txt"),
])
def test_a_labels_folder_without_its_files_names_folder_and_file(tmp_path, synth_small, recipe,
                                                                   inputs, missing):
    empty = tmp_path / "labels-here"
    empty.mkdir()
    params = "{split: val, require_all_classes: false}" if recipe == "webdataset" else (
        "{width: 8, height: 6, require_all_classes: false}" if recipe == "downscale" else "{}")
    write_manifest(tmp_path, f"""
sources:
  - {{name: val, layout: imagenet-val}}
  - {{name: train, layout: imagenet-train}}
files:
  - {{name: nolabels, path: {empty}}}
datasets:
  - {{name: ds, recipe: {recipe}, inputs: {inputs}, params: {params}}}
""")
    for name, layout in (("val", "imagenet-val"), ("train", "imagenet-train")):
        assert run_cli("source", "set", name, synth_small[layout], cwd=tmp_path
                       ).returncode == 0
    done = run_cli("resolve", "ds", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"registry: error: manifests/test.yaml:8: ds: labels folder {empty}: "
                           f"no {missing} (it must "
                           "hold caffe_val.txt, caffe_synsets.txt and caffe_synset_words.txt)\n")
    staging = tmp_path / "registry" / ".staging"
    assert not staging.exists() or os.listdir(staging) == []
    assert not list((tmp_path / "registry").rglob("_registry.json"))
