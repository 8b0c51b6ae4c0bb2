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


def test_the_fork_server_and_its_workers_ignore_ctrl_c(tmp_path):
    """Ctrl-C reaches the whole process group: the fork server, interrupted while it
    imports its preload, printed a traceback and died; its workers raised
    KeyboardInterrupt wherever they stood. Now the coordinator alone sees it."""
    (tmp_path / "slow_preload.py").write_text(textwrap.dedent("""
        import time
        open("preloading", "w").close()
        time.sleep(1.5)  # (the test's Ctrl-C comes now)
    """))
    script = tmp_path / "coordinator.py"
    script.write_text(textwrap.dedent("""
        import signal, time
        from concurrent.futures import ProcessPoolExecutor

        if __name__ == "__main__":
            from dataset_registry.core import processes
            processes.PRELOAD.insert(2, "slow_preload")  # (after core/ctrl_c)
            processes.start_early()
            try:
                time.sleep(60)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            pool = ProcessPoolExecutor(2, mp_context=processes.worker_context())
            print(pool.submit(signal.getsignal, signal.SIGINT).result() is signal.SIG_IGN)
            processes.shut_down(pool)
    """))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
    assert out == "interrupted\nTrue\n"  # the server went on; the worker ignores SIGINT
    assert proc.returncode == 0


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_second_ctrl_c_waits_for_the_shutdown_to_end():
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
