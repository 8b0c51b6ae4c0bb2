import os
import signal
import subprocess
import sys
import textwrap

from ..conftest import as_from_a_terminal


def test_pool_workers_start_with_the_recipes_already_imported(tmp_path):
    """Whoever starts the fork server first (the synthetic generator, a build), its workers
    inherit the recipes and numpy from it instead of importing them each; and Pillow,
    executors/base and core/failures, which every task imports on its first call (the
    recipes import Pillow only where they decode)."""
    script = tmp_path / "start_first.py"
    script.write_text(textwrap.dedent("""
        import sys
        from concurrent.futures import ProcessPoolExecutor

        def imported():
            return sorted(m for m in ("numpy", "dataset_registry.recipes", "PIL.Image",
                                      "dataset_registry.executors.base",
                                      "dataset_registry.core.failures") if m in sys.modules)

        if __name__ == "__main__":
            from dataset_registry.core.processes import worker_context
            assert not {"dataset_registry.recipes", "dataset_registry.executors.base",
                        "PIL"} & set(sys.modules)
            with ProcessPoolExecutor(1, mp_context=worker_context()) as pool:
                print(pool.submit(imported).result())
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == ("['PIL.Image', 'dataset_registry.core.failures', "
                                  "'dataset_registry.executors.base', "
                                  "'dataset_registry.recipes', 'numpy']")


def test_pools_leave_the_callers_ctrl_c_as_they_found_it(tmp_path):
    """The fork server ignores SIGINT and the resource tracker starts with it blocked, each
    in its own process: a script that starts pools (as a build does), then a child, keeps
    Ctrl-C for both (an ignored or blocked SIGINT is inherited across fork and exec)."""
    script = tmp_path / "pool_then_child.py"
    script.write_text(textwrap.dedent("""
        import os, signal, subprocess, sys
        from concurrent.futures import ProcessPoolExecutor
        from dataset_registry.core.processes import start_early, watch_coordinator, worker_context

        def ignored_by_the_kernel():  # what a C library's sigaction would change, too
            status = open("/proc/self/status").read()
            mask = int(status.split("SigIgn:")[1].split()[0], 16)
            return bool(mask & 1 << signal.SIGINT - 1)

        if __name__ == "__main__":
            start_early()
            for _ in range(2):
                with ProcessPoolExecutor(2, mp_context=worker_context(),
                                         initializer=watch_coordinator,
                                         initargs=(os.getpid(),)) as pool:
                    assert list(pool.map(abs, [-1, -2])) == [1, 2]
            print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                  ignored_by_the_kernel(),
                  signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
            child = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); "
                                      "time.sleep(60)"], stdout=subprocess.PIPE)
            child.stdout.readline()  # its SIGINT handler is in place
            child.send_signal(signal.SIGINT)
            print(child.wait(timeout=20))
    """))
    # started as a terminal starts it: what this test process holds (pytest run as a
    # background job ignores SIGINT) does not decide the outcome
    out = subprocess.run(as_from_a_terminal([sys.executable, str(script)]), capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert (out.returncode, out.stdout) == (0, f"True False False\n{-signal.SIGINT}\n"), \
        out.stdout + out.stderr


def test_import_meanwhile_loads_a_module_on_a_thread_and_leaves_a_failure_silent(
        tmp_path, monkeypatch, capfd):
    import sys
    import threading
    import types

    from dataset_registry.core.processes import import_meanwhile

    gate = types.ModuleType("late_gate")
    gate.GO = threading.Event()  # the import waits for it: the caller does not
    monkeypatch.setitem(sys.modules, "late_gate", gate)
    (tmp_path / "late_needed.py").write_text("import late_gate\nlate_gate.GO.wait(10)\n"
                                             "LOADED = True\n")
    (tmp_path / "late_broken.py").write_text("import late_gate\nlate_gate.GO.wait(10)\n"
                                             "raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("late_needed", "late_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        import_meanwhile(name)
    loading = [t for t in threading.enumerate() if t.name.startswith("registry-import-late_")]
    assert len(loading) == 2
    gate.GO.set()
    for thread in loading:
        thread.join(10)
    assert sys.modules["late_needed"].LOADED and "late_broken" not in sys.modules
    assert capfd.readouterr().err == ""  # the failure is left to the import that needs it
    import_meanwhile("late_needed")  # loaded already: no thread
    assert not [t for t in threading.enumerate() if t.name == "registry-import-late_needed"]


def test_import_meanwhile_then_runs_on_the_thread_after_the_import_it_did(tmp_path,
                                                                          monkeypatch):
    """`then(module)` is called on the importing thread once the module is loaded (a
    build's first DuckDB connection: engine/build.py); not for a module loaded already,
    nor after a failed import."""
    import sys
    import threading

    from dataset_registry.core.processes import import_meanwhile

    (tmp_path / "late_then.py").write_text("VALUE = 7\n")
    (tmp_path / "late_then_broken.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    called = []
    for name in ("late_then", "late_then_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        import_meanwhile(name, then=lambda module: called.append(
            (module.VALUE, threading.current_thread().name)))
    for thread in threading.enumerate():
        if thread.name.startswith("registry-import-late_then"):
            thread.join(10)
    assert called == [(7, "registry-import-late_then")]
    import_meanwhile("late_then", then=called.append)  # loaded already
    assert called == [(7, "registry-import-late_then")]


def test_a_process_exiting_mid_import_waits_for_it_and_keeps_its_exit_code(tmp_path):
    """A refusal just after `import_meanwhile` started: the process ends with its own code
    once the import is done, never while it runs (DuckDB's native module aborted the
    process when the interpreter shut down under it)."""
    (tmp_path / "slow_import.py").write_text(
        "import pathlib, time\ntime.sleep(0.5)\npathlib.Path('imported').write_text('done')\n")
    script = tmp_path / "refuse.py"
    script.write_text(textwrap.dedent("""\
        import sys
        from dataset_registry.core.processes import import_meanwhile
        import_meanwhile("slow_import")
        import_meanwhile("duckdb")
        sys.exit(2)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert (out.returncode, out.stderr) == (2, ""), out.stderr
    assert (tmp_path / "imported").read_text() == "done"
