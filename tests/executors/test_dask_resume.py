"""A build on Dask killed while a task runs on a worker: the worker goes on with it after
the coordinator died, and the rerun resumes the staging area while that task still writes.
Real processes throughout: `dask scheduler` and `dask worker`, `registry resolve` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..pluginkit import done_records, plugin_project, published
from .test_dask_cluster import started, stop

# echo, each task skipping its first member; with a file `hold`, the 6th task to start
# (one worker: the last) says so (`held`) and waits for `gate`, then does its work and
# says so (`ended`), whatever happened; a task run while `held` lies there (the rerun's)
# opens `gate` and waits for `ended`. The folder is written in: the module is shipped to
# the cluster, so its own path there says nothing.
GATED = '''
import time
from pathlib import Path

from dataset_registry.plugins import register
from dataset_registry.testing.echo import Echo

HERE = Path({root!r})


def wait_for(name):
    deadline = time.monotonic() + 60
    while not (HERE / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        time.sleep(0.05)


class Gated(Echo):
    name = "gated"

    @classmethod
    def run(cls, params, task, out):
        if (HERE / "held").exists():  # the rerun: the held task goes on now
            (HERE / "gate").touch()
            wait_for("ended")
        elif (HERE / "hold").exists():
            with (HERE / "started.log").open("a") as f:
                f.write(task[0].origin + "\\n")
            if len((HERE / "started.log").read_text().splitlines()) == 6:
                (HERE / "held").touch()
                wait_for("gate")
                try:
                    return cls.work(params, task, out)
                finally:
                    out.close()  # its parts on disk, whole (as a task returning leaves them)
                    (HERE / "ended").touch()
        return cls.work(params, task, out)

    @classmethod
    def work(cls, params, task, out):
        out.skip(task[0].origin, task[0].source, "skipped by request")
        return super().run(params, task[1:], out)


register("recipes", "gated", Gated)
'''

DATASETS = "  - {name: pairs, recipe: gated, inputs: {images: data}, params: {chunk: 2}}\n"


def project(root: Path) -> Path:
    return plugin_project(root, {"gated_plugin": GATED.format(root=str(root))}, DATASETS)


def shown(root: Path) -> dict:
    show = run_cli("show", "pairs", cwd=root)
    assert show.returncode == 0, show.stderr
    return json.loads(show.stdout)


def wait_for(what: str, ready, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"{what}: {'the build ended' if process.returncode else 'timed out'}"
                        f"\n{out}\n{err}")
        time.sleep(0.05)


@contextmanager
def cli_cluster(base: Path) -> Iterator[str]:
    """`dask scheduler` and one `dask worker --nworkers 1 --nthreads 1`; its dask:// address."""
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    info = base / "scheduler" / "scheduler.json"
    processes = [started([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                          "--no-dashboard", "--scheduler-file", str(info)],
                         base / "scheduler", env, base / "scheduler.log")]
    try:
        deadline = time.monotonic() + 90
        while not info.exists():
            assert time.monotonic() < deadline and processes[0].poll() is None, \
                (base / "scheduler.log").read_text()[-2000:]
            time.sleep(0.1)
        processes.append(started([dask, "worker", "--scheduler-file", str(info), "--nworkers",
                                  "1", "--nthreads", "1", "--no-dashboard"], base / "worker",
                                 env, base / "worker.log"))
        address = json.loads(info.read_text())["address"]
        import distributed

        with distributed.Client(address, timeout=90) as client:
            client.wait_for_workers(1, timeout=90)
        yield "dask://" + address.removeprefix("tcp://")
    finally:
        for process in reversed(processes):
            stop(process)


def test_a_task_outliving_its_killed_coordinator_writes_nothing_the_rerun_publishes(
        tmp_path):
    """The 6th task of a build on a one-worker cluster holds; its 5 others finish and are
    recorded; the coordinator is SIGKILLed. The rerun (local executor) resumes and runs
    that task itself, while the worker's copy goes on: it skips its first member, in a
    part (`<its place>.skipped.csv`) it opens only now. In a staging area shared with the rerun
    that part would be merged: the member skipped twice, silently (the digest covers the
    files only). Taken over under a new name, the rerun's artifact is a clean build's,
    skipped rows included."""
    clean = project(tmp_path / "clean")
    done = run_cli("resolve", "pairs", "--jobs", "1", cwd=clean)
    assert done.returncode == 0, done.stderr
    want = shown(clean)
    assert want["skipped"] == 6

    root = project(tmp_path / "killed")
    (root / "hold").touch()
    staging = root / "registry" / ".staging"
    # the scheduler and worker in processes of their own: a LocalCluster's scheduler runs in
    # this process, where the shipped project code would stay imported (and registered)
    with cli_cluster(tmp_path / "cluster") as address:
        first = subprocess.Popen(
            [sys.executable, "-m", "dataset_registry.cli", "resolve", "pairs", "--executor",
             address], cwd=root, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        wait_for("the 6th task held, the 5 others recorded", lambda: (root / "held").exists()
                 and len(done_records(staging)) == 5, first)
        first.send_signal(signal.SIGKILL)
        first.wait()
        [killed] = staging.iterdir()
        again = run_cli("resolve", "pairs", "--jobs", "1", cwd=root)
        assert again.returncode == 0, again.stderr
        assert (root / "ended").exists()  # the worker's copy ran on, during the rerun
    got = shown(root)
    # (not the key: the plugin's code, which names its project's folder, is keyed)
    assert (got["digest"], got["files"], got["skipped"]) == \
        (want["digest"], want["files"], want["skipped"])
    verify = run_cli("verify", "pairs", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # the worker's copy wrote by the old name, where its first open (its skipped part,
    # under a `.parts` no longer there) failed, unheard: it left nothing anywhere
    assert not killed.exists()
    assert published(root) == [got["key"]]
