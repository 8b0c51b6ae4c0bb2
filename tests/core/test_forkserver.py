"""core/forkserver.py: the fork server leaves at once, and nothing else does."""

import os
import subprocess
import sys
import textwrap


def test_the_fork_server_exits_without_the_teardown_its_callers_output_waits_for(tmp_path):
    """The fork server holds the coordinator's stdout: a caller reading it to its end
    (`$(registry resolve NAME)`) waits for the server's exit too, so the server leaves
    at once, before its other exit handlers (here, one a module it preloaded registered)
    and the freeing of what it imported."""
    (tmp_path / "teardown_mark.py").write_text(textwrap.dedent("""
        import atexit
        open("imported", "w").close()  # (a preload that fails to import is skipped)
        atexit.register(lambda: open("torn-down", "w").close())
    """))
    script = tmp_path / "server_exit.py"
    script.write_text(textwrap.dedent("""
        import os
        from concurrent.futures import ProcessPoolExecutor

        if __name__ == "__main__":
            from dataset_registry.core import processes
            processes.PRELOAD.insert(1, "teardown_mark")  # (a preload before the last)
            with ProcessPoolExecutor(2, mp_context=processes.worker_context()) as pool:
                print(pool.submit(os.getppid).result() != os.getpid())
    """))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})
    # (run returns at the output's end)
    assert out.stdout.strip() == "True"  # (a worker's parent: the fork server)
    assert (tmp_path / "imported").exists()  # (its handler was registered there)
    assert not (tmp_path / "torn-down").exists()


def test_the_fork_servers_exit_is_left_alone_anywhere_else():
    import atexit
    import importlib

    from dataset_registry.core import forkserver, processes

    assert not processes.in_fork_server()
    before = atexit._ncallbacks()
    importlib.reload(forkserver)
    assert atexit._ncallbacks() == before
