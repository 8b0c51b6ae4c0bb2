"""A Dask cluster as SLURM or Kubernetes gives one, not a LocalCluster: `dask scheduler`
and two `dask worker` processes started from the command line, each in an empty folder
of its own, sharing nothing with the coordinator but moto's S3 (sources and store in the
bucket). The workers get no credentials and no path of the coordinator's: the storage
options travel with the pickled tasks, and an audit hook in each worker
(worker_guard.py) logs any file call on the coordinator's folders. The variants built
there are the local executor's, key for key and byte for byte, also when a worker is
SIGKILLed mid-build, and also with a recipe from the project's own plugin module, which
the executor ships to the cluster (executors/project_code.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataset_registry import Registry

from ..conftest import run_cli
from ..realkit import digits, png, write_digit_tar

DASK = Path(sys.executable).with_name("dask")  # the venv's CLI, as a batch job runs it
GUARD = Path(__file__).with_name("worker_guard.py")
TESTS = Path(__file__).parents[1]
VARIANTS = ("digits-16x16", "digits-shards")
MANIFEST = """
sources:
  - {name: digits, layout: files}
datasets:
  - name: digits-16x16
    recipe: downscale
    inputs: {images: digits}
    params: {width: 16, height: 16}
  - name: digits-shards
    recipe: webdataset
    inputs: {images: digits}
    params: {shard_count: 200}
"""


@dataclass
class Cluster:
    address: str  # HOST:PORT, as dask://HOST:PORT names it
    folders: list[Path]  # each worker's own, empty when it started
    processes: list[subprocess.Popen]  # the scheduler's and workers' (nannies')
    logs: list[Path]  # their output

    @property
    def executor(self) -> str:
        return f"dask://{self.address}"

    def guard_logs(self) -> list[str]:
        return [(folder / "guard.log").read_text() for folder in self.folders]

    def clear_guard_logs(self) -> None:
        for folder in self.folders:
            (folder / "guard.log").write_text("")


def started(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own (its children die with it at teardown)."""
    cwd.mkdir(parents=True)
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # the nanny closes its worker
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(what: str, ready, processes: list[subprocess.Popen], logs: list[Path],
             timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        died = [log for p, log in zip(processes, logs, strict=True) if p.poll() is not None]
        if died or time.monotonic() > deadline:
            tails = "\n".join(f"{log}:\n{log.read_text()[-2000:]}" for log in logs)
            pytest.fail(f"{what}: {'a process died' if died else 'timed out'}\n{tails}")
        time.sleep(0.1)


@contextmanager
def cli_cluster(forbidden: Path):
    """`dask scheduler` and two `dask worker --nworkers 1 --nthreads 1`, each in a fresh
    folder outside pytest's (so outside `forbidden`), with an environment holding no
    credential, no path of the coordinator's, nothing of the test's but the guard."""
    base = Path(tempfile.mkdtemp(prefix="registry-cluster-"))
    guard = Path(shutil.copy(GUARD, base))  # preloaded from here: nothing read from tests/
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []

    def env(home: Path) -> dict[str, str]:
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        return {"PATH": f"{DASK.parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home),
                "TMPDIR": str(home / "tmp"), "LANG": "C.UTF-8",
                "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups
                "REGISTRY_GUARD_FORBIDDEN": os.pathsep.join([str(forbidden), str(TESTS)]),
                "REGISTRY_GUARD_LOG": str(home / "guard.log"),
                "REGISTRY_TEST_ROLE": home.name.partition("-")[0]}  # scheduler, worker

    try:
        scheduler = base / "scheduler"
        logs.append(base / "scheduler.log")
        processes.append(started(
            # the timeouts end an orphan if this process is killed before its teardown
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--idle-timeout", "300s", "--scheduler-file", str(scheduler / "scheduler.json")],
            scheduler / "cwd", env(scheduler), logs[-1]))
        info = scheduler / "scheduler.json"
        wait_for("dask scheduler", info.exists, processes, logs)
        address = json.loads(info.read_text())["address"]
        folders = []
        for i in range(2):
            folder = base / f"worker-{i}"
            logs.append(base / f"worker-{i}.log")
            processes.append(started(
                [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--name", f"worker-{i}", "--host", "127.0.0.1", "--no-dashboard",
                 "--death-timeout", "60s",
                 "--local-directory", str(folder / "dask"), "--preload", str(guard)],
                folder / "cwd", env(folder), logs[-1]))
            folders.append(folder)
        import distributed

        with distributed.Client(address, timeout="30s") as monitor:
            wait_for("two dask workers", lambda: len(monitor.nthreads()) == 2, processes, logs)
        yield Cluster(address.removeprefix("tcp://"), folders, processes, logs)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cli_cluster(tmp_path_factory.getbasetemp()) as running:
        yield running


@pytest.fixture(scope="module")
def digits_tar(tmp_path_factory) -> Path:
    return write_digit_tar(tmp_path_factory.mktemp("digits") / "digits.tar")


@pytest.fixture(scope="module")
def local_builds(digits_tar, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """name -> (key, digest) of each variant built here by the local executor."""
    reg = project(tmp_path_factory.mktemp("local"))
    reg.set_source("digits", str(digits_tar))
    started_at = time.monotonic()
    built = {name: reg.resolve(name, jobs=1) for name in VARIANTS}
    print(f"\nlocal build, 1 process, local store: {time.monotonic() - started_at:.2f} s")
    return {name: (ds.key, ds.digest) for name, ds in built.items()}


def project(root: Path, **kwargs) -> Registry:
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "digits.yaml").write_text(MANIFEST)
    return Registry.open(str(root), **kwargs)


def on_s3(s3, digits_tar: Path, root: Path, **kwargs) -> Registry:
    """A coordinator in its own folder: the source and the store in a fresh bucket."""
    bucket = s3.bucket()
    bucket.fs().put(str(digits_tar), f"{bucket.name}/raw/digits.tar")
    reg = project(root, store=f"{bucket.url}/store", storage_options=s3.options(), **kwargs)
    reg.set_source("digits", f"{bucket.url}/raw/digits.tar")
    return reg


def test_cli_workers_build_the_local_bytes_from_s3(cluster, s3, digits_tar, local_builds,
                                                   tmp_path):
    reg = on_s3(s3, digits_tar, tmp_path / "coordinator")
    started_at = time.monotonic()
    built = {name: reg.resolve(name, executor=cluster.executor) for name in VARIANTS}
    print(f"\ncluster build, 2 CLI workers, S3: {time.monotonic() - started_at:.2f} s")
    assert {name: (ds.key, ds.digest) for name, ds in built.items()} == local_builds
    for ds in built.values():
        assert ds.built_now and ds.uri.startswith("s3://")
        assert ds.marker.built["executor"] == "DaskExecutor" and ds.marker.built["jobs"] == 2
    assert reg.verify(list(VARIANTS)) == {name: [] for name in VARIANTS}  # read back from S3
    assert cluster.guard_logs() == ["", ""]


def test_a_worker_killed_mid_build_leaves_the_same_bytes(cluster, s3, digits_tar, local_builds,
                                                         tmp_path):
    """On the first task's result, the worker running another task is SIGKILLed; its
    nanny starts a fresh one, the scheduler runs the lost tasks again, and the artifact
    is the local one."""
    import distributed

    monitor = distributed.Client(cluster.address, timeout="30s")
    pids = monitor.run(os.getpid)  # each worker process's (the nanny's child)
    killed: list[tuple[str, list[str]]] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            busy = {w: keys for w, keys in monitor.processing().items() if keys}
            if busy:
                worker = sorted(busy)[0]
                os.kill(pids[worker], signal.SIGKILL)
                killed.append((worker, [str(k) for k in busy[worker]]))
                return
            time.sleep(0.01)

    def times_run(keys, dask_scheduler=None) -> dict[str, int]:
        """On the scheduler (nested: pickled by value, the scheduler cannot import tests):
        how many times each key was sent to a worker to run."""
        return {key: sum(1 for entry in dask_scheduler.transition_log
                         if str(entry[0]) == key and entry[2] == "processing") for key in keys}

    @contextmanager
    def progress(label, total, unit="items"):
        def advance(n: int) -> None:
            if unit == "items" and not killed:
                kill_a_busy_worker()
        yield advance

    try:
        reg = on_s3(s3, digits_tar, tmp_path / "coordinator", progress=progress)
        started_at = time.monotonic()
        ds = reg.resolve("digits-16x16", executor=cluster.executor)
        print(f"\ncluster build, a worker killed: {time.monotonic() - started_at:.2f} s")
        assert killed, "no worker was busy when the first result came: nothing was tested"
        worker, in_flight = killed[0]
        removed = [msg for _, msg in monitor.get_events("all")
                   if msg.get("action") == "remove-worker" and msg.get("worker") == worker]
        assert removed and not removed[0]["expected"]  # died, not closed
        lost = {str(k) for k in removed[0]["processing-tasks"]} & set(in_flight)
        assert lost and all(runs == 2 for runs in monitor.run_on_scheduler(
            times_run, keys=lost).values())  # the killed worker's tasks ran again
        assert (ds.key, ds.digest) == local_builds["digits-16x16"]
        assert reg.verify(["digits-16x16"]) == {"digits-16x16": []}
        monitor.wait_for_workers(2, timeout=60)  # the nanny's fresh worker
    finally:
        monitor.close()
    assert cluster.guard_logs() == ["", ""]


def flat_photos_tar(path: Path, count: int = 300) -> Path:
    """Real digits named `<label>__NNNN.png` in one flat tar: the plugin example's layout."""
    import io
    import tarfile

    images, labels = digits()
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            data = png(images[i])
            info = tarfile.TarInfo(f"{labels[i]}__{i:04d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_projects_own_plugin_runs_on_the_cluster_as_edited(cluster, s3, tmp_path):
    """`registry init --example plugin`: the recipe is my_plugin.py in the coordinator's
    project folder, which the workers cannot read (nor import: "No module named
    'my_plugin'" before the executor shipped it). It runs there; edited, the same
    long-lived workers run the edited code: each time the local build's digest."""
    tar = flat_photos_tar(tmp_path / "photos.tar")
    bucket = s3.bucket()
    bucket.fs().put(str(tar), f"{bucket.name}/raw/photos.tar")
    remote = [*s3.cli_options(), "--store", f"{bucket.url}/store"]
    projects = {"local": (tmp_path / "local", str(tar), []),
                "cluster": (tmp_path / "cluster", f"{bucket.url}/raw/photos.tar", remote)}
    for project, source, options in projects.values():
        cli(tmp_path, "init", "--example", "plugin", str(project))
        cli(project, "source", "set", "my-photos", source, *options)

    def build() -> dict[str, str]:
        cli(projects["local"][0], "resolve", "my-photos-gray", "-j", "1")
        cli(projects["cluster"][0], "resolve", "my-photos-gray", *remote,
            "--executor", cluster.executor)
        return {where: json.loads(cli(project, "show", "my-photos-gray", "--json",
                                      *options))["digest"]
                for where, (project, _, options) in projects.items()}

    first = build()
    assert first["cluster"] == first["local"]
    for project, _, _ in projects.values():
        plugin = project / "my_plugin.py"
        code = plugin.read_text()
        assert '.convert("L")' in code
        plugin.write_text(code.replace('.convert("L")', '.convert("L").transpose(0)'))  # flip
    edited = build()
    assert edited["cluster"] == edited["local"] != first["local"]
    assert cluster.guard_logs() == ["", ""]
    import distributed

    def plugin_file() -> str:  # nested: pickled by value
        return sys.modules["my_plugin"].__file__

    with distributed.Client(cluster.address, timeout="30s") as monitor:
        doomed = sorted(monitor.nthreads())[0]
        os.kill(monitor.run(os.getpid, workers=[doomed])[doomed], signal.SIGKILL)
        wait_for("a fresh worker in the killed one's place",
                 lambda: doomed not in monitor.nthreads() and len(monitor.nthreads()) == 2,
                 cluster.processes, cluster.logs)
        loaded = monitor.run(plugin_file)  # the fresh one loaded the edited code as it started
    assert len(loaded) == 2 and all(
        "registry-project-code" in path and "transpose(0)" in Path(path).read_text()
        for path in loaded.values())


def test_a_plugin_that_does_not_load_on_the_workers_is_one_line(cluster, s3, tmp_path):
    """A plugin needing what only the coordinator and the scheduler have (a package the
    workers lack): exit 1, one line naming the module and its error, nothing built, and
    the failed code not left registered for workers that join later."""
    from dataset_registry.executors.project_code import NAME

    bucket = s3.bucket()
    bucket.fs().put(str(flat_photos_tar(tmp_path / "photos.tar", 20)),
                    f"{bucket.name}/raw/photos.tar")
    remote = [*s3.cli_options(), "--store", f"{bucket.url}/store"]
    project = tmp_path / "project"
    cli(tmp_path, "init", "--example", "plugin", str(project))
    plugin = project / "my_plugin.py"
    plugin.write_text(plugin.read_text().replace("\nfrom PIL import Image\n", """
import os

if os.environ.get("REGISTRY_TEST_ROLE") == "worker":
    raise ImportError("No module named 'site_licence'")
from PIL import Image
""", 1))
    cli(project, "source", "set", "my-photos", f"{bucket.url}/raw/photos.tar", *remote)
    before = cli(project, "show", "my-photos-gray", "--json", *remote)
    out = run_cli("resolve", "my-photos-gray", *remote, "--executor", cluster.executor,
                  cwd=project, timeout=300)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == ("registry: error: the project's plugin modules (my_plugin) do not "
                          "load on the Dask cluster: ImportError: No module named "
                          "'site_licence'\n")
    assert cli(project, "show", "my-photos-gray", "--json", *remote) == before
    assert json.loads(before)["status"] == "missing"
    assert not [k for k in bucket.keys("store") if k.endswith("_registry.json")]
    import distributed

    def worker_plugins(dask_scheduler=None) -> list[str]:  # nested: pickled by value
        return list(dask_scheduler.worker_plugins)

    with distributed.Client(cluster.address, timeout="30s") as monitor:
        assert NAME not in monitor.run_on_scheduler(worker_plugins)
        assert len(monitor.nthreads()) == 2


def cli(cwd: Path, *args: str) -> str:
    out = run_cli(*args, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_guard_sees_a_worker_touch_the_coordinators_folders(cluster, tmp_path):
    """What makes the empty logs above worth something: a worker that does open a file
    of the coordinator's is logged."""
    import distributed

    touched = tmp_path / "coordinator-file"
    touched.write_text("x")

    def read_it() -> str:
        with open(touched) as f:
            return f.read()

    with distributed.Client(cluster.address, timeout="30s") as monitor:
        monitor.wait_for_workers(2, timeout=60)
        assert list(monitor.run(read_it).values()) == ["x", "x"]
    assert all(f"open {touched}\n" in log for log in cluster.guard_logs())
    cluster.clear_guard_logs()
