import subprocess
import sys
import textwrap


def test_pool_workers_start_with_the_recipes_already_imported(tmp_path):
    """Whoever starts the fork server first (the synthetic generator, a build), its workers
    inherit the recipes and numpy from it instead of importing them each."""
    script = tmp_path / "start_first.py"
    script.write_text(textwrap.dedent("""
        import sys
        from concurrent.futures import ProcessPoolExecutor

        def imported():
            return sorted(m for m in ("numpy", "dataset_registry.recipes") if m in sys.modules)

        if __name__ == "__main__":
            from dataset_registry.core.processes import worker_context
            assert "dataset_registry.recipes" not in sys.modules
            with ProcessPoolExecutor(1, mp_context=worker_context()) as pool:
                print(pool.submit(imported).result())
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "['dataset_registry.recipes', 'numpy']"
