"""Ctrl-C is the coordinator's alone (core/ctrl_c.py), and a pool's shutdown is not cut
short by a second one (processes.shut_down)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from dataset_registry.core import processes

from ..conftest import as_from_a_terminal


def test_ctrl_c_spares_the_fork_servers_preload_and_our_workers(tmp_path):
    """Ctrl-C reaches the whole process group: the fork server, interrupted while it
    imports its preload, printed a traceback and died; workers raised KeyboardInterrupt
    wherever they stood. Now the server's preload goes on, and its workers leave Ctrl-C to
    the coordinator (any pool's: the handler is the server's); a program a worker runs gets
    the system's default."""
    (tmp_path / "slow_preload.py").write_text(textwrap.dedent("""
        import time
        open("preloading", "w").close()
        time.sleep(1.5)  # (the test's Ctrl-C comes now)
    """))
    script = tmp_path / "coordinator.py"
    script.write_text(textwrap.dedent("""
        import os, signal, subprocess, sys, time
        from concurrent.futures import ProcessPoolExecutor

        def handler():
            return getattr(signal.getsignal(signal.SIGINT), "__name__", "?")

        def programs_handler():  # a program a task runs (exec)
            return subprocess.run([sys.executable, "-c", "import signal; print(signal."
                                   "getsignal(signal.SIGINT).__name__)"], text=True,
                                  capture_output=True, check=True).stdout.strip()

        if __name__ == "__main__":
            from dataset_registry.core import processes
            processes.PRELOAD.insert(2, "slow_preload")  # (after core/ctrl_c)
            processes.start_early()
            try:
                time.sleep(60)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            ours = ProcessPoolExecutor(1, mp_context=processes.worker_context(),
                                       initializer=processes.watch_coordinator,
                                       initargs=(os.getpid(),))
            print(ours.submit(handler).result(), ours.submit(programs_handler).result())
            processes.shut_down(ours)
            anyones = ProcessPoolExecutor(1, mp_context=processes.worker_context())
            print(anyones.submit(handler).result())
            processes.shut_down(anyones)
    """))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(as_from_a_terminal([sys.executable, str(script)]), cwd=tmp_path,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True,  # (its own group, as a terminal's job)
                            env={**os.environ, "PYTHONPATH": path})
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "preloading").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out == ("interrupted\n_ctrl_c_left_to_the_coordinator default_int_handler\n"
                   "_ctrl_c_left_to_the_coordinator\n"), out + err  # (the server went on)
    assert proc.returncode == 0


def test_ctrl_c_while_workers_start_breaks_no_pool(tmp_path):
    """A worker given its handler only by its pool's initializer could be killed by Ctrl-C
    as it started (unpickling, bootstrapping): its pool broken, a traceback printed. Each
    starts with the server's handler now."""
    script = tmp_path / "pools.py"
    script.write_text(textwrap.dedent("""
        import os, random, signal, threading, time
        from concurrent.futures import ProcessPoolExecutor

        if __name__ == "__main__":
            from dataset_registry.core import processes
            warm = ProcessPoolExecutor(1, mp_context=processes.worker_context())
            warm.submit(processes.nothing).result()  # (the server up, its preload imported)
            processes.shut_down(warm)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # (this coordinator lives on)
            broken = 0
            for _ in range(12):
                pool = ProcessPoolExecutor(4, mp_context=processes.worker_context(),
                                           initializer=processes.watch_coordinator,
                                           initargs=(os.getpid(),))
                threading.Timer(random.uniform(0, 0.08), os.killpg, (0, signal.SIGINT)).start()
                failed = processes.Spawning(pool, 4, processes.nothing).join()
                time.sleep(0.2)
                broken += pool._broken is not False or failed is not None
                processes.shut_down(pool, stop=True)
            print("broken", broken)
    """))
    out = subprocess.run(as_from_a_terminal([sys.executable, str(script)]), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, start_new_session=True)
    assert (out.returncode, out.stdout) == (0, "broken 0\n"), out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_second_ctrl_c_waits_for_the_shutdown_to_end(ctrl_c_raises):
    """Ctrl-C inside the shutdown's waits is acted on once the workers are gone: raised
    midway, it left them waiting for a stop that never came, and the exit hung on them."""
    pool = ProcessPoolExecutor(2, mp_context=processes.worker_context())
    running = pool.submit(_sleep, 1.0)
    time.sleep(0.3)  # (running now)
    workers = list(pool._processes.values())
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        processes.shut_down(pool)
    assert running.result() == 1.0  # not stopped: the task ended, then the shutdown
    assert not any(w.is_alive() for w in workers)


def test_shut_down_with_stop_ends_the_running_tasks():
    pool = ProcessPoolExecutor(2, mp_context=processes.worker_context())
    running = pool.submit(_sleep, 60)
    time.sleep(0.5)
    workers = list(pool._processes.values())
    started = time.monotonic()
    processes.shut_down(pool, stop=True)
    assert time.monotonic() - started < 15
    assert not any(w.is_alive() for w in workers)
    assert running.done()


def _bytes(size: int) -> bytes:
    return b"x" * size


def test_a_worker_stopped_while_it_sends_its_result_does_not_hang_the_shutdown():
    """Terminated halfway through sending a large result (header and body are separate
    writes), a worker left the pool's manager thread waiting for the rest for ever, and the
    shutdown with it: the coordinator's end of the pipe is closed, so that read ends."""
    import random

    for _ in range(6):
        pool = ProcessPoolExecutor(2, mp_context=processes.worker_context())
        for _ in range(200):
            pool.submit(_bytes, 8 << 20)
        time.sleep(random.uniform(0.1, 0.4))
        stopping = threading.Thread(target=processes.shut_down, args=(pool,),
                                    kwargs={"stop": True}, daemon=True)
        stopping.start()
        stopping.join(30)
        assert not stopping.is_alive(), "the shutdown hung"
