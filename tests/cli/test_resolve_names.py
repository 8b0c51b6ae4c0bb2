"""`registry resolve` of one name prints its location alone (`$(registry resolve NAME)`);
of several (or --tags) a line each: NAME, built now / found / pulled from CACHE, LOCATION."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from dataset_registry import cli

from .clikit import SHARDS, SPLIT, TINY, run


def lines(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines()]


def test_one_name_prints_its_location_alone_for_scripts(project):
    script = (f'{sys.executable} -m dataset_registry.cli resolve {SPLIT} > /dev/null; '
              f'folder="$({sys.executable} -m dataset_registry.cli resolve {SPLIT})"; '
              'cat "$folder/classes.txt"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=project,
                          timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n1\n2\n", "")


def test_several_names_say_which_location_is_which(project, capsys, monkeypatch):
    code, out, err = run(capsys, "resolve", SPLIT)
    assert (code, err) == (0, "")
    split_path = out.strip()
    code, out, err = run(capsys, "resolve", SPLIT, TINY)
    assert (code, err) == (0, "")
    (name1, status1, path1), (name2, status2, path2) = lines(out)
    assert (name1, status1, path1) == (SPLIT, "found", split_path)
    assert (name2, status2) == (TINY, "built now") and os.path.isdir(path2)
    with monkeypatch.context() as fast:  # both built: the key cache answers, alike
        fast.setattr(cli, "_dispatch", lambda *a: pytest.fail("not the fast path"))
        assert run(capsys, "resolve", TINY, SPLIT) == (
            0, f"{TINY}\tfound\t{path2}\n{SPLIT}\tfound\t{split_path}\n", "")
    code, out, err = run(capsys, "resolve", "--tags", "mine")  # the datasets tagged mine
    assert (code, err) == (0, "")
    assert [(n, s) for n, s, _ in lines(out)] == [(TINY, "found"), (SHARDS, "built now"),
                                                  (SPLIT, "found")]
    code, out, _ = run(capsys, "resolve", SPLIT, "--tags", "split")  # named once only
    assert (code, lines(out)) == (0, [[SPLIT, "found", split_path]])


def test_a_dataset_from_a_cache_says_which(project, capsys, tmp_path):
    code, out, _ = run(capsys, "resolve", SPLIT, TINY)
    assert code == 0
    built = {name: path for name, _, path in lines(out)}
    team = str(project / "registry")  # this store, as another clone's cache
    mine = tmp_path / "mine"
    code, out, err = run(capsys, "--store", str(mine), "--cache", team, "resolve", SPLIT, TINY)
    assert (code, err) == (0, "")
    assert lines(out) == [
        [SPLIT, f"pulled from {team}", built[SPLIT].replace(team, str(mine))],
        [TINY, f"pulled from {team}", built[TINY].replace(team, str(mine))]]
    code, out, err = run(capsys, "--store", str(mine), "--cache", team, "resolve", SPLIT)
    assert (code, out, err) == (0, built[SPLIT].replace(team, str(mine)) + "\n", "")


def test_a_failure_midway_keeps_the_lines_said_and_exits_with_its_code(project, capsys):
    code, out, err = run(capsys, "resolve", SPLIT, "my-images")  # a source: not buildable
    assert code == 2
    assert [(n, s) for n, s, _ in lines(out)] == [(SPLIT, "built now")]
    assert err == "registry: error: my-images is a source, not a dataset\n"


@pytest.mark.parametrize(("argv", "cores", "ahead"), [
    (["x"], 4, True), (["x", "--jobs", "2"], 4, True), (["x"], 2, False),
    (["x", "--jobs", "1"], 16, False), (["x", "--dry-run"], 16, False),
    (["x", "--executor", "local"], 16, True), (["x", "--executor", "dask://local"], 16, False),
])
def test_the_fork_server_starts_ahead_only_where_local_workers_have_cores_to_spare(
        argv, cores, ahead, monkeypatch):
    from dataset_registry.cli.parser import build_parser
    from dataset_registry.cli.resolving import spare_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert spare_cores(build_parser({}).parse_args(["resolve", *argv])) is ahead


CORES = """
import os, sys
os.sched_getaffinity = lambda pid: set(range(8))  # cores to spare, on any machine
import multiprocessing.forkserver as forkserver
_ensure_running = forkserver.ensure_running
def ensure_running():  # (what start_early calls; a pool's spawn calls the server's own)
    loaded = "good_recipes" in sys.modules
    print(f"fork server started {'after' if loaded else 'before'} the plugins loaded",
          file=sys.stderr)
    return _ensure_running()
forkserver.ensure_running = ensure_running
"""
RECIPE = """
from dataset_registry.plugins import register
from dataset_registry.testing import echo

class Good(echo.Echo):
    name = "good"
    Params = echo.EchoParams

register("recipes", "good", Good)
"""


def test_a_project_recipe_builds_on_workers_whose_fork_server_started_ahead(tmp_path):
    """Where cores are to spare, `resolve` starts the fork server before the registry opens,
    so before the project's plugins are on `sys.path`: its workers, which start when a
    build needs them and take `sys.path` as they do, still import the project's recipe.
    Run from outside the project (`--root`): its folder is not on `sys.path` otherwise."""
    from ..conftest import run_cli
    from ..pluginkit import plugin_project

    fake = tmp_path / "cores"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(CORES)
    root = plugin_project(tmp_path / "proj", {"good_recipes": RECIPE},
                          "  - {name: g, recipe: good, inputs: {images: data}, "
                          "params: {chunk: 2}}\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake), *sys.path])}
    for _ in range(3):  # (a pool started before the plugins were loaded failed some runs)
        shutil.rmtree(root / "registry", ignore_errors=True)
        done = run_cli("--root", str(root), "resolve", "--jobs", "2", "g", cwd=tmp_path,
                       env=env)
        assert (done.returncode, done.stderr) == (
            0, "fork server started before the plugins loaded\n")
        assert os.path.isdir(done.stdout.strip())
