import os
from pathlib import Path

import pytest

from dataset_registry import RecipeError, Registry
from dataset_registry.executors import LocalExecutor
from dataset_registry.testing.echo import use_echo, use_faulty
from dataset_registry.testing.executors import ExecutorSuite
from dataset_registry.testing.sources import open_project, synthetic_images, write_image_folder

from .imagenet import ImageNetReference


class TestLocalPool(ExecutorSuite, ImageNetReference):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        executor = LocalExecutor(2)
        yield executor
        executor.close()


def unpicklable_project(root, source):
    """A dataset whose tasks each carry a lock (`faulty`'s `unpicklable`): 5 tasks."""
    return open_project(root, {"data": source}, [
        {"name": "locked", "recipe": "faulty", "inputs": {"images": "data"},
         "params": {"chunk": 5, "unpicklable": True}}])


def _slow_spawns(monkeypatch, seconds: float) -> list[float]:
    """Every worker of a pool takes `seconds` more to start (a fork server slow to reply):
    the times they were up, appended as they come."""
    import time
    from concurrent.futures import ProcessPoolExecutor

    spawned: list[float] = []
    spawn = ProcessPoolExecutor._spawn_process

    def slow_spawn(pool):
        time.sleep(seconds)
        spawn(pool)
        spawned.append(time.time())

    monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", slow_spawn)
    return spawned


def _ctrl_c_at_task(monkeypatch, n: int) -> list:
    """SIGINT to this process as the `n`th task of a build is handed to its pool (Ctrl-C,
    with `ctrl_c_raises`): the futures of the tasks handed out, appended as they go."""
    import signal
    from concurrent.futures import ProcessPoolExecutor

    from dataset_registry.executors.base import run_task

    submit, handed = ProcessPoolExecutor.submit, []

    def submit_then_ctrl_c(pool, fn, *args, **kwargs):
        future = submit(pool, fn, *args, **kwargs)
        if fn is run_task:
            handed.append(future)
            if len(handed) == n:
                os.kill(os.getpid(), signal.SIGINT)
        return future

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_then_ctrl_c)
    return handed


def _twelve_tasks(tmp_path, recipe: str = "echo", **params):
    """A project whose dataset `copied` is 12 one-image tasks of `recipe` (registered by
    the caller: use_echo, use_faulty)."""
    source = write_image_folder(tmp_path / "data", n=12)
    return open_project(tmp_path / "p", {"data": source}, [
        {"name": "copied", "recipe": recipe, "inputs": {"images": "data"},
         "params": {"chunk": 1, **params}}])


def _resolve_within(reg, name, seconds=60, **kwargs):
    """`reg.resolve(name)` on a thread: what it raised, or a failed test if it hangs."""
    import threading

    raised: list[BaseException] = []

    def run():
        try:
            reg.resolve(name, **kwargs)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"resolve {name} still running after {seconds} s"
    return raised[0] if raised else None


def test_the_first_tasks_run_while_the_last_workers_still_start(tmp_path, monkeypatch):
    """A build's tasks go to the workers already up while the others start (each spawn
    waits for the fork server; in 16-worker builds the first task came 0.07-0.58 s after
    the server was ready): here every spawn takes 0.3 s, and the first file is written
    before the last worker is up. Before, the tasks were submitted once all the workers had
    started."""
    spawned = _slow_spawns(monkeypatch, 0.3)
    with use_echo():
        built = _twelve_tasks(tmp_path).resolve("copied", jobs=4)
    written = [p.stat().st_mtime for p in Path(built.path, "train").rglob("*") if p.is_file()]
    assert len(written) == 12 and len(spawned) == 4
    assert min(written) < spawned[-1] - 0.2


def test_ctrl_c_while_the_workers_still_start_stops_without_starting_the_rest(
        tmp_path, monkeypatch, ctrl_c_raises):
    """Ctrl-C once the tasks are handed out but while the workers still start (0.4 s each
    here): the build stops after the worker starting, not after all of them, with its
    workers gone and nothing left in staging."""
    import threading

    spawned = _slow_spawns(monkeypatch, 0.4)
    handed = _ctrl_c_at_task(monkeypatch, 12)  # the last of them
    executor = LocalExecutor(6)
    with use_echo():
        reg = _twelve_tasks(tmp_path)
        with pytest.raises(KeyboardInterrupt):
            reg.resolve("copied", executor=executor)
    assert len(handed) == 12 and 1 <= len(spawned) < 6
    # closed only once the thread starting them had stopped: none starts into a closed pool
    assert not [t for t in threading.enumerate() if t.name == "registry-start-workers"]
    assert executor._pool is None
    assert os.listdir(Path(reg.store.root, ".staging")) == []
    assert reg.status("copied") == "missing"


@pytest.mark.parametrize("spawning", ["first", "late"])
def test_workers_that_cannot_start_fail_the_build_in_one_line(tmp_path, monkeypatch,
                                                              spawning):
    """The fork server cannot start a worker (here: too many open files), whether the
    spawning thread starts before the build's first submits or after them (a loaded
    machine): the build fails at once, in one line, nothing left in staging. Before, a
    task submitted first waited for ever for a worker that no submit would start."""
    import time
    from concurrent.futures import ProcessPoolExecutor

    from dataset_registry import BuildError
    from dataset_registry.core.processes import Spawning

    def no_spawn(pool):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", no_spawn)
    if spawning == "late":
        spawn = Spawning._spawn

        def late(self, *args):
            time.sleep(0.3)
            spawn(self, *args)

        monkeypatch.setattr(Spawning, "_spawn", late)
    with use_echo():
        reg = _twelve_tasks(tmp_path)
        raised = _resolve_within(reg, "copied", jobs=4)
    assert isinstance(raised, BuildError)
    assert str(raised).endswith("could not start the worker processes: [Errno 24] Too "
                                "many open files")
    assert os.listdir(Path(reg.store.root, ".staging")) == []


def test_a_worker_dying_while_the_rest_start_fails_the_build_as_a_death(tmp_path,
                                                                        monkeypatch):
    """A task ends its worker (as a SIGKILL would) while the other workers still start:
    the build says a worker died, not that the workers could not start, and leaves
    nothing in staging."""
    from dataset_registry import BuildError

    _slow_spawns(monkeypatch, 0.3)
    first = sorted(synthetic_images(12, 3))[0]  # (the folder's first file, as written)
    with use_faulty():
        reg = _twelve_tasks(tmp_path, "faulty", validate_images=False, die_on=first)
        raised = _resolve_within(reg, "copied", jobs=4)
    assert isinstance(raised, BuildError) and "a worker process died" in str(raised)
    assert os.listdir(Path(reg.store.root, ".staging")) == []


def test_tasks_that_do_not_pickle_are_one_line_on_the_pool_and_build_inline(tmp_path):
    """Tasks the pool cannot send to its workers fail the build in one line naming the
    dataset and what did not pickle; inline (jobs 1) nothing needs pickling: they build."""
    source = write_image_folder(tmp_path / "data")
    with use_faulty():
        reg = unpicklable_project(tmp_path / "pool", source)
        with pytest.raises(RecipeError) as info:
            reg.resolve("locked", jobs=2)
        assert reg.status("locked") == "missing" and list(reg.store.committed()) == []
        inline = unpicklable_project(tmp_path / "inline", source).resolve("locked", jobs=1)
    where = reg.manifests.get("locked").where
    assert str(info.value) == (
        f"{where}: locked: recipe 'faulty': its tasks could not be run: TypeError: cannot "
        "pickle '_thread.lock' object (a task, the params and the result must pickle to "
        "reach a worker process)")
    assert inline.marker.files == 24
    assert os.listdir(Path(reg.store.root, ".staging")) == []


def test_workers_let_go_exit_while_the_caller_goes_on_and_close_waits_for_them(tmp_path):
    """`let_go` returns before the workers are gone (a resolve records its build
    meanwhile); `close` returns after: none is left running. Let go twice, close still
    waits; a build after it starts workers of its own."""
    with use_echo():
        reg = _twelve_tasks(tmp_path)
        executor = LocalExecutor(2)
        try:
            reg.resolve("copied", executor=executor)
            pool = executor._pool
            workers = list(pool._processes.values())
            assert len(workers) == 2 and all(w.is_alive() for w in workers)
            executor.let_go()
            pool.let_go()  # (again: its manager thread is still the one waited for)
            assert pool._processes is None and executor._pool is None  # told, not waited for
            (tmp_path / "p" / "manifests").joinpath("more.yaml").write_text(
                "datasets:\n  - {name: again, recipe: echo, inputs: {images: data}, "
                "params: {chunk: 2}}\n")
            again = Registry.open(str(tmp_path / "p")).resolve("again", executor=executor)
            later = list(executor._pool._processes.values())
        finally:
            executor.close()
    assert again.marker.files == 12
    # none running (not their exit codes: the fork server, forking the new workers while
    # the old ones exit, may lose an old one's and report 255, CPython issue 140867)
    assert len(workers + later) == 4 and not any(w.is_alive() for w in workers + later)


def test_a_resolve_lets_its_workers_go_before_its_record_and_closes_after(tmp_path,
                                                                          monkeypatch):
    """The pool a resolve opens is let go once it built, and waited for once the build
    is recorded: none of its workers is left running."""
    from dataset_registry.core.workerpool import WorkerPool
    from dataset_registry.engine import resolving

    events, workers = [], []
    let_go, shutdown, keep = WorkerPool.let_go, WorkerPool.shutdown, \
        resolving.locking.keep_current

    def letting_go(pool):
        workers.extend(pool._processes.values())
        events.append("let_go")
        let_go(pool)

    monkeypatch.setattr(WorkerPool, "let_go", letting_go)
    monkeypatch.setattr(WorkerPool, "shutdown", lambda p, wait=True, **k: (
        events.append(f"shutdown wait={wait}"), shutdown(p, wait, **k))[1])
    with use_echo():
        reg = _twelve_tasks(tmp_path)  # (its lock kept current too)
        monkeypatch.setattr(resolving.locking, "keep_current",
                            lambda *a: (events.append("record"), keep(*a))[1])
        built = reg.resolve("copied", jobs=2)
    assert [e for e in events if e != "shutdown wait=False"] == \
        ["let_go", "record", "shutdown wait=True"]
    assert len(workers) == 2 and [w.exitcode for w in workers] == [0, 0]
    recorded = reg.sql("SELECT count(*) FROM files WHERE record IS NULL").rows
    assert recorded == [(built.marker.files,)] and built.marker.files == 12


def test_builds_interrupted_at_any_moment_stop_at_once_and_leave_nothing(tmp_path):
    """SIGINT at random moments of 30 builds of 1,500 small tasks (2 workers): each stops
    within seconds, with no staging left and no worker running. Before core/interrupts.py
    the interrupt could land anywhere: mid-submission (workers left writing into the
    staging being removed, which stayed: this test failed 3 runs of 5) or inside
    concurrent.futures.wait (futures' locks left taken: a build that never stopped)."""
    import subprocess
    import sys

    script = Path(__file__).with_name("interrupted_builds.py")
    try:
        run = subprocess.run([sys.executable, str(script), str(tmp_path), "30", "7"],
                             capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"an interrupted build did not stop; the rounds before:\n{exc.stdout}")
    assert run.returncode == 0, run.stderr
    rounds = run.stdout.splitlines()
    assert len(rounds) == 30
    stopped = [line for line in rounds if ": interrupted in " in line]
    assert len(stopped) >= 20, run.stdout  # most signals land while tasks run
    for line in stopped:
        assert line.endswith("staging [], workers [], status missing"), line
    assert max(float(line.split(" in ")[1].split()[0]) for line in stopped) < 5.0, run.stdout


def test_ctrl_c_while_tasks_are_handed_out_stops_the_workers_before_staging_goes(
        tmp_path, monkeypatch, ctrl_c_raises):
    """Ctrl-C as the 50th of 300 tasks is handed to the pool: the build stops its workers
    (the pool is closed), then removes its staging. Before, the interrupt left the
    submission outside any cleanup: the workers ran on, writing into a staging area being
    removed (the CI failure of test_sigterm_cleans_up_like_ctrl_c)."""
    source = write_image_folder(tmp_path / "data", n=600)
    executor = LocalExecutor(2)
    with use_echo():
        reg = open_project(tmp_path / "project", {"data": source}, [
            {"name": "many", "recipe": "echo", "inputs": {"images": "data"},
             "params": {"chunk": 2, "validate_images": False}}])
        handed = _ctrl_c_at_task(monkeypatch, 50)
        with pytest.raises(KeyboardInterrupt):
            reg.resolve("many", executor=executor)
    assert len(handed) == 300  # handed out in full, then stopped between two waits
    assert executor._pool is None  # closed, its workers stopped and joined
    assert os.listdir(Path(reg.store.root, ".staging")) == []
    assert reg.status("many") == "missing"


UNGUARDED = """
import sys
from dataset_registry import Registry
from dataset_registry.testing.echo import use_echo
with use_echo():  # no `if __name__ == '__main__':` around it
    Registry.open(sys.argv[1]).resolve("copied", jobs=2)
"""


def test_a_script_resolving_on_a_pool_without_the_main_guard_fails_naming_it(tmp_path):
    """Each worker imports the caller's script again (as multiprocessing does); one calling
    resolve() unguarded built again in there and waited for the build lock its coordinator
    held: a hang. Now the build fails at once, naming the guard, and leaves nothing."""
    import subprocess
    import sys

    with use_echo():
        reg = _twelve_tasks(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    ran = subprocess.run([sys.executable, str(script), str(reg.root)], capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert last == ("dataset_registry.errors.BuildError: a worker process died (killed, out "
                    "of memory, or it could not start: a script that calls resolve() with "
                    "jobs > 1 must do so under `if __name__ == '__main__':`, as "
                    "multiprocessing requires)"), ran.stderr[-3000:]
    with use_echo():
        assert Registry.open(str(reg.root)).status("copied") == "missing"


OWN_POOL = """
import multiprocessing, sys
from dataset_registry import Registry
from dataset_registry.testing.echo import use_echo
with use_echo():  # at the top level: built already, so only looked up, in every process
    FOUND = Registry.open(sys.argv[1]).resolve("copied").digest


def digest(_):
    return FOUND


if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[2]).Pool(2) as pool:
        print(sorted(set(pool.map(digest, range(4)))) == [FOUND])
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_script_looking_up_a_built_dataset_at_its_top_level_keeps_its_own_pool(tmp_path,
                                                                                  method):
    """Its workers import it again, resolve() and all: a dataset built already is only
    looked up there, never refused as an unguarded build (it was, from every worker: the
    pool started new ones without end)."""
    import subprocess
    import sys

    with use_echo():
        reg = _twelve_tasks(tmp_path)
        reg.resolve("copied", jobs=1)
    script = tmp_path / "own_pool.py"
    script.write_text(OWN_POOL)
    ran = subprocess.run([sys.executable, str(script), str(reg.root), method],
                         capture_output=True, text=True, timeout=120)
    assert (ran.returncode, ran.stdout) == (0, "True\n"), ran.stderr[-3000:]
