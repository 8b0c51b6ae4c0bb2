"""Resumable builds: a killed build's finished tasks are kept in its staging area and the
rerun of the same key runs only the tasks left, to the same bytes (engine/resume.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..pluginkit import done_records, plugin_project, published

# echo, logging each task it finished to ran.log (its first member); with a file
# `kill-after` holding N, the task after the N-th writes its files and its part, then
# kills the process running it (with --jobs 1: the build itself) before it returns.
# With a file `stale` holding a staging folder and a part name, the next task first runs
# as a task of the build that folder was made for would (its Drop, its part name): a
# task of a killed build still running on a Dask worker, writing while the rerun runs
LOGGED = '''
import json
import os
import signal
from pathlib import Path

from dataset_registry.executors.base import run_task
from dataset_registry.plugins import register
from dataset_registry.stores.base import FolderDrop
from dataset_registry.testing.echo import Echo

HERE = Path(__file__).parent


class Logged(Echo):
    name = "logged"

    @classmethod
    def run(cls, params, task, out):
        claimed = HERE / f"stale.{os.getpid()}"
        try:  # (one task claims it: with --jobs 2, two could see it and both read it)
            os.rename(HERE / "stale", claimed)
        except FileNotFoundError:
            pass
        else:
            folder, part = json.loads(claimed.read_text())
            claimed.unlink()
            run_task(Echo, params, task, FolderDrop(path=folder), part)
        count = super().run(params, task, out)
        log = HERE / "ran.log"
        ran = log.read_text().splitlines() if log.exists() else []
        flag = HERE / "kill-after"
        if flag.exists() and len(ran) == int(flag.read_text()):
            out.close()  # its files and its part on disk, whole: still not finished
            os.kill(os.getpid(), signal.SIGKILL)
        if (HERE / "fail").exists() and len(ran) == 2:
            raise ValueError("failing by request")
        with log.open("a") as f:
            f.write(task[0].origin + "\\n")
        return count


register("recipes", "logged", Logged)
'''

DATASETS = """\
  - {name: pairs, recipe: logged, inputs: {images: data}, params: {chunk: 2}}
  - {name: triples, recipe: logged, inputs: {images: data}, params: {chunk: 3}}
"""
TASKS = 6  # 12 images, 2 a task


def project(root: Path) -> Path:
    return plugin_project(root, {"logged_plugin": LOGGED}, DATASETS)


def ran(root: Path) -> list[str]:
    log = root / "ran.log"
    return log.read_text().splitlines() if log.exists() else []


def resolve(root: Path, name: str, jobs: str) -> dict:
    done = run_cli("resolve", name, "--jobs", jobs, cwd=root)
    assert done.returncode == 0, done.stderr
    shown = run_cli("show", name, cwd=root)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def killed_after(root: Path, name: str, finished: int) -> None:
    """A build of `name` killed (SIGKILL) while running the task after `finished` tasks."""
    (root / "kill-after").write_text(str(finished))
    done = run_cli("resolve", name, "--jobs", "1", cwd=root)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (root / "kill-after").unlink()
    assert len(ran(root)) == finished


def assert_unpublished(root: Path, name: str) -> None:
    """What a reader sees: not built, no artifact folder, only a staging area."""
    assert [p for p in published(root) if not p.startswith(".staging/")] == []
    missing = run_cli("path", name, cwd=root)
    assert missing.returncode == 2 and f"{name} is not built" in missing.stderr


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    """A build of `pairs` never interrupted: the digest every resumed one must give."""
    root = project(tmp_path_factory.mktemp("clean"))
    shown = resolve(root, "pairs", "1")
    assert len(ran(root)) == TASKS
    return shown


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_killed_build_resumes_running_only_the_tasks_left(tmp_path, clean, jobs):
    """Killed in the 5th of 6 tasks, whose files and part were written: the rerun's 2
    tasks are named 000000 and 000001 this time, so a stale part 000004 would be merged
    (a file written twice) if it were not removed."""
    root = project(tmp_path)
    killed_after(root, "pairs", 4)
    first = ran(root)
    assert_unpublished(root, "pairs")
    assert len(published(root)) == 1  # the killed build's staging area, kept
    shown = resolve(root, "pairs", jobs)
    again = ran(root)[len(first):]
    assert len(again) == TASKS - 4 and not set(again) & set(first)
    assert shown["key"] == clean["key"] and shown["digest"] == clean["digest"]
    assert published(root) == [shown["key"]]  # the staging area went with the commit
    verify = run_cli("verify", "pairs", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_changed_param_reuses_nothing_and_gc_removes_the_stale_tasks(tmp_path):
    root = project(tmp_path)
    killed_after(root, "pairs", 3)
    resolve(root, "triples", "1")  # another key: every one of its 4 tasks runs
    assert len(ran(root)) == 3 + 4
    stale = [p for p in published(root) if p.startswith(".staging/")]
    assert len(stale) == 1
    gc = run_cli("gc", cwd=root)
    assert gc.returncode == 0 and f"removed staging {root / 'registry' / stale[0]}" in gc.stdout
    assert [p for p in published(root) if p.startswith(".staging/")] == []
    resolve(root, "pairs", "1")  # its finished tasks went with the staging area
    assert len(ran(root)) == 3 + 4 + TASKS


def done_log(root: Path) -> Path:
    [log] = (root / "registry" / ".staging").glob("*/.parts/done.log")
    return log


def damage_garbage(line: bytes, log: Path) -> bytes:
    return b"\x00not a record"


def damage_other_task(line: bytes, log: Path) -> bytes:
    return json.dumps({**json.loads(line), "task": "0" * 32}).encode()


def damage_result(line: bytes, log: Path) -> bytes:
    data = json.loads(line)
    return json.dumps({**data, "result": data["result"][:-4] + "AAA="}).encode()


def damage_part(line: bytes, log: Path) -> bytes:
    for part in json.loads(line)["parts"]:
        (log.parent / part).unlink()
    return line


def damage_index(line: bytes, log: Path) -> bytes:  # (the task's identity names index 1)
    return json.dumps({**json.loads(line), "index": 2}).encode()


@pytest.mark.parametrize("damage", [damage_garbage, damage_other_task, damage_result,
                                    damage_part, damage_index])
def test_a_damaged_done_record_is_run_again_not_trusted(tmp_path, clean, damage):
    root = project(tmp_path)
    killed_after(root, "pairs", 3)
    assert [r["index"] for r in done_records(root / "registry" / ".staging")] == [0, 1, 2]
    log = done_log(root)
    lines = log.read_bytes().splitlines()
    lines[1] = damage(lines[1], log)
    log.write_bytes(b"\n".join(lines) + b"\n")
    shown = resolve(root, "pairs", "1")
    assert len(ran(root)) == 3 + TASKS - 2  # the damaged one and the 3 never finished
    assert ran(root)[3] == ran(root)[1]  # the damaged one, first of the rerun
    assert shown["digest"] == clean["digest"]


def test_a_record_cut_short_runs_again_and_the_next_records_stay_whole(tmp_path, clean):
    """Killed while appending its 3rd record: the rerun runs that task again, and what it
    appends starts lines of its own (killed again, its records read back whole)."""
    root = project(tmp_path)
    killed_after(root, "pairs", 3)
    log = done_log(root)
    data = log.read_bytes()
    log.write_bytes(data[:-40])  # the 3rd line, cut short
    killed_after_more = 2  # the rerun finishes the 3rd and the 4th, then is killed
    (root / "kill-after").write_text(str(3 + killed_after_more))
    done = run_cli("resolve", "pairs", "--jobs", "1", cwd=root)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (root / "kill-after").unlink()
    assert ran(root)[3] == ran(root)[2]  # the task whose record was cut, again
    assert [r["index"] for r in done_records(root / "registry" / ".staging")] == [0, 1, 2, 3]
    shown = resolve(root, "pairs", "1")
    assert len(ran(root)) == 3 + 2 + TASKS - 4
    assert shown["digest"] == clean["digest"]


def test_a_failed_build_keeps_nothing(tmp_path):
    """An error (or Ctrl-C) cleans up as always: only a killed build leaves tasks behind."""
    root = project(tmp_path)
    (root / "fail").write_text("")
    done = run_cli("resolve", "pairs", "--jobs", "1", cwd=root)
    assert done.returncode == 1 and "failing by request" in done.stderr
    assert published(root) == [] and len(ran(root)) == 2
    (root / "fail").unlink()
    resolve(root, "pairs", "1")
    assert len(ran(root)) == 2 + TASKS


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_task_of_the_killed_build_still_running_writes_nothing_the_rerun_uses(
        tmp_path, clean, jobs):
    """Killed in its 5th task (task 4, run as part 000004), as a Dask coordinator is while
    its worker goes on: that task writes its files and part 000004 by the killed build's
    path while the rerun runs task 4 itself (as its part 000000). Sharing the folder, the
    rerun would merge both parts (task 4's files twice: the build fails); it takes the
    folder over under a new name, so the stale writes land in a folder of their own."""
    root = project(tmp_path)
    killed_after(root, "pairs", 4)
    [killed] = (root / "registry" / ".staging").iterdir()
    (root / "stale").write_text(json.dumps([str(killed), "000004"]))
    shown = resolve(root, "pairs", jobs)
    assert not (root / "stale").exists()  # the stale task ran, during the rerun
    assert shown["key"] == clean["key"] and shown["digest"] == clean["digest"]
    assert shown["files"] == clean["files"]
    verify = run_cli("verify", "pairs", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # what it wrote lies where it wrote it, apart: no done record, nothing published
    assert sorted(published(root)) == sorted([shown["key"], f".staging/{killed.name}"])
    stale_part = killed / ".parts" / "000004.files.csv"
    assert len(stale_part.read_text().splitlines()) == 2  # task 4's two images
    assert not (killed / ".parts" / "done.log").exists()
    artifact = next((root / "registry").glob(f"??/{shown['key']}"))
    assert not (artifact / ".parts").exists()
    gc = run_cli("gc", cwd=root)
    assert gc.returncode == 0 and f"removed staging {killed}" in gc.stdout
    assert published(root) == [shown["key"]]
