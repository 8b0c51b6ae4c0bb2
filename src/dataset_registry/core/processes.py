"""The one multiprocessing context every process pool here uses.

Workers come from a fork server: a clean process that never holds the
coordinator's threads (progress bars) or DuckDB connection. There is one fork
server per coordinator process, and what it imports before forking is fixed
by whoever starts it first (the synthetic generator, say, before a build), so
every pool asks for it here, with the same preload: the caller's main module
(as multiprocessing's default does) and the modules tasks need. Without them
each new worker imports numpy, pydantic and the recipes itself: ~0.4 s on 2
cores; with 16 workers starting at once the first task began 1.2-1.4 s into a
build.

The coordinator's own late imports go the same way, ahead of need: `import_meanwhile`
loads what a build's end needs while its workers run.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# core/ctrl_c first (after the main module, which the server imports before the list):
# Ctrl-C spares the preload; core/forkserver last: its exit handler runs first. Pillow,
# executors/base (run_task, which the pool sends) and core/failures are what every task
# imports on its first call (recipes/imaging imports Pillow only where it decodes, for the
# coordinator's sake): left to the tasks, each worker imported them itself before its
# first image (~14 ms of its first task's ~35 ms of extra time, 2 cores), where warm-ups
# no longer run ahead of queued tasks (Spawning)
PRELOAD = ["__main__", "dataset_registry.core.ctrl_c", "dataset_registry.recipes.builtins",
           "dataset_registry.recipes.imaging", "PIL.Image", "dataset_registry.executors.base",
           "dataset_registry.core.failures", "dataset_registry.core.forkserver"]


def in_fork_server() -> bool:
    """Whether the caller runs in a fork server's preload (`forkserver.main` is on the
    stack: a module the preload imports, core/ctrl_c and core/forkserver), not in a
    coordinator or a worker."""
    from multiprocessing import forkserver

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity, where the system says), not those
    the machine has: what a pool's default size and `registry resolve`'s early start go by."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


def worker_context() -> Any:
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_early() -> None:
    """Start the fork server now: it imports its preload while the caller goes on (reading
    a zip's directory, say), so the first worker forks at once when a task comes."""
    from multiprocessing import forkserver

    worker_context()  # (its preload, as every pool asks for it)
    forkserver.ensure_running()


class Spawning:
    """`count` workers of a process pool spawned on a thread while the caller goes on (plans,
    submits its tasks), each then running `warm` once, unless tasks came first: spawning
    waits for the fork server a worker at a time (~10 ms each, more while it still imports
    its preload), and a pool's first tasks would otherwise wait for all of it. A
    `WorkerPool`'s (core/workerpool.py) go to the workers up while the rest start. `join()`
    waits, and gives what the spawning failed with (once; the pool's own submits fail the
    same way)."""

    POLL = 0.2  # seconds

    def __init__(self, pool: Any, count: int, warm: Any) -> None:
        self._error: BaseException | None = None
        self._stop = threading.Event()
        pool.spawning = True
        self._thread = threading.Thread(target=self._spawn, args=(pool, count, warm),
                                        name="registry-start-workers", daemon=True)
        self._thread.start()

    def _spawn(self, pool: Any, count: int, warm: Any) -> None:
        try:
            # A submit spawns a worker only where none is idle, and the first ones are idle
            # again at once: every worker is spawned first (private, as no public call of
            # Python < 3.14 does it; where it is missing, the submits spawn what they do).
            # The pool's lock is taken for each worker and let go of for a moment after
            # each: the caller's submits, which take it too, go in between.
            spawn = getattr(pool, "_spawn_process", None)
            processes = getattr(pool, "_processes", None)
            if spawn is not None and processes is not None:
                for _ in range(count):
                    with pool._shutdown_lock:
                        if pool._shutdown_thread or getattr(pool, "_broken", False) or \
                                len(processes) >= count or self._stop.is_set():
                            break
                        spawn()
                        if getattr(pool, "_broken", False):
                            # A worker died meanwhile, and Python 3.11 tears the pool down
                            # without this lock: its teardown may have missed this one.
                            for process in list(processes.values()):
                                process.terminate()
                            break
                    time.sleep(0.001)  # (a thread waiting for the lock wakes and takes it)
            pool.spawning = False  # (where none was spawned here, the warm-ups spawn them)
            queued = getattr(pool, "_pending_work_items", None)
            for _ in range(0 if self._stop.is_set() or queued else count):
                pool.submit(warm)
        except BaseException as exc:  # handed to join(), on the caller's thread
            self._error = exc
        finally:
            pool.spawning = False

    def join(self, poll: Callable[[], None] | None = None, *, stop: bool = False
             ) -> BaseException | None:
        """Wait for the spawning; `poll` is called every POLL seconds meanwhile (to act on
        an interrupt noted while it is held: core/interrupts.py). `stop`: spawn no more
        workers (the pool is about to be stopped): wait for the one starting, if any."""
        if stop:
            self._stop.set()
        while poll is not None and self._thread.is_alive():
            self._thread.join(self.POLL)
            poll()
        self._thread.join()
        error, self._error = self._error, None
        return error


def shut_down(pool: Any, *, stop: bool = False) -> None:
    """Shut a process pool down, the tasks not begun cancelled, Ctrl-C and SIGTERM held
    meanwhile (core/interrupts.py): a second Ctrl-C inside the shutdown's waits left the
    pool half shut down, and the exit then waited for ever on workers that were never told
    to stop (a `registry audit` hung so); what was noted is acted on once it is done. Our
    workers leave Ctrl-C to the coordinator (core/ctrl_c.py), so the running tasks end, and
    are waited for.

    `stop`: end the running tasks too (the workers terminated, each waited for up to
    STOP_WAIT s in all). A worker killed halfway through sending its result leaves the
    pool's manager thread waiting for the rest of the message, and the shutdown with it,
    for ever: the coordinator's end of the result pipe is closed first, so that read ends."""
    import time

    from .interrupts import HeldInterrupts

    with HeldInterrupts():
        # private, but the only handles: Python < 3.14 has no terminate_workers()
        workers = list((pool._processes or {}).values()) if stop else []
        for process in workers:
            process.terminate()
        deadline = time.monotonic() + STOP_WAIT
        for process in workers:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        if workers:
            with contextlib.suppress(AttributeError, OSError):
                pool._result_queue._writer.close()  # (the workers' ends died with them)
        pool.shutdown(wait=True, cancel_futures=True)


STOP_WAIT = 10.0  # s: for terminated workers to be gone, all of them


def _ctrl_c_left_to_the_coordinator(signum: int, frame: Any) -> None:
    """A worker's SIGINT handler: nothing. Ctrl-C reaches the terminal's whole process
    group; the coordinator stops its pools itself (`shut_down`). A worker raising
    KeyboardInterrupt wherever it stood printed a traceback, and one inside the pool's call
    queue could die holding its lock (the other workers then waited on it for ever). A
    Python function, not SIG_IGN: a program a task runs (exec) gets SIGINT at its default."""


def leave_ctrl_c_to_the_coordinator() -> None:
    import signal

    signal.signal(signal.SIGINT, _ctrl_c_left_to_the_coordinator)


def nothing() -> None:
    """A first task that only starts a worker (`Spawning`)."""


def watch_coordinator(pid: int) -> None:
    """Pool initializer: exit this worker as soon as process `pid` (the coordinator) is gone.

    A worker's parent is the fork server, not the coordinator, so PR_SET_PDEATHSIG
    cannot say the coordinator died; and a coordinator killed with SIGKILL runs no
    cleanup, so without this its workers finish (or hang in) their tasks for minutes,
    still uploading. A daemon thread waits on a pidfd of the coordinator (readable when
    it exits) and ends the worker with os._exit, mid-task if need be: its half-written
    files lie in staging, which `registry gc` or the next build sweeps. And Ctrl-C is the
    coordinator's to act on (`leave_ctrl_c_to_the_coordinator`: already so where our fork
    server forked the worker, core/ctrl_c.py; this covers one started without our preload).
    """
    import threading

    leave_ctrl_c_to_the_coordinator()
    threading.Thread(target=_exit_with, args=(pid,), name="registry-watch-coordinator",
                     daemon=True).start()


def _exit_with(pid: int, interval: float = 0.5) -> None:
    import os
    import select

    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or already gone
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable once the process has exited
    else:
        import time

        # The coordinator may already be gone (pidfd_open ESRCH); otherwise poll. The fork
        # server's pid is our parent and outlives us, so a parent check would not do.
        while _alive(pid):
            time.sleep(interval)
    os._exit(70)  # EX_SOFTWARE: what a worker whose coordinator vanished reports


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def import_meanwhile(module: str, then: Callable[[Any], Any] | None = None) -> None:
    """Import `module` on a thread, while the workers run, and call `then(module)` there:
    what a build's end needs (DuckDB: ~0.07 s) is loaded by then, not after the last task.
    A module imported already is left as it is, `then` not called (its first use is past).
    A failure is left to the import or call that needs it.

    Not a daemon: the interpreter waits for the import before it shuts down. A process that
    exited mid-import (a refusal soon after the thread started) aborted in DuckDB's native
    module ("Critical nanobind error", SIGABRT) instead of exiting with its code."""
    if module in sys.modules:
        return

    def load() -> None:
        with contextlib.suppress(Exception):
            loaded = importlib.import_module(module)
            if then is not None:
                then(loaded)

    threading.Thread(target=load, name=f"registry-import-{module}").start()
