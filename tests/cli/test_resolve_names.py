"""`registry resolve` of one name prints its location alone (`$(registry resolve NAME)`);
of several (or --tags) a line each: NAME, built now / found / pulled from CACHE, LOCATION."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def digest(folder: str) -> str:
    return json.loads(Path(folder, "_registry.json").read_text())["digest"]


def test_with_cores_to_spare_one_pool_started_ahead_builds_every_name(
        project, capsys, monkeypatch, tmp_path):
    """Where cores are to spare, `resolve` starts its local workers before the registry
    opens and builds every name on that one pool (the builds open no executor of their
    own), with the bytes a build without it makes."""
    from dataset_registry.engine import resolving as engine_resolving
    from dataset_registry.executors import LocalExecutor

    prepared: list[LocalExecutor] = []
    prepare = LocalExecutor.prepare
    monkeypatch.setattr(LocalExecutor, "prepare",
                        lambda self: (prepared.append(self), prepare(self))[1])
    with monkeypatch.context() as spare:
        spare.setattr(os, "cpu_count", lambda: 4)
        spare.setattr(engine_resolving, "open_executor",
                      lambda *a: pytest.fail("a build opened its own executor"))
        code, out, err = run(capsys, "resolve", "--jobs", "2", SPLIT, TINY)
    assert (code, err) == (0, "")
    assert [(n, s) for n, s, _ in lines(out)] == [(SPLIT, "built now"), (TINY, "built now")]
    assert len({id(pool) for pool in prepared}) == 1 and prepared[0].jobs == 2
    assert prepared[0]._pool is None  # closed
    ahead = {name: path for name, _, path in lines(out)}
    other = tmp_path / "other-store"
    code, out, err = run(capsys, "--store", str(other), "resolve", "--jobs", "1", SPLIT, TINY)
    assert (code, err) == (0, "")
    for name, _, path in lines(out):  # same keys (the folder's name), same bytes
        assert os.path.basename(path) == os.path.basename(ahead[name])
        assert digest(path) == digest(ahead[name])


@pytest.mark.parametrize(("argv", "cores", "ahead"), [
    (["x"], 4, True), (["x", "--jobs", "2"], 4, True), (["x"], 2, False),
    (["x", "--jobs", "1"], 16, False), (["x", "--dry-run"], 16, False),
    (["x", "--executor", "local"], 16, True), (["x", "--executor", "dask://local"], 16, False),
])
def test_workers_start_ahead_only_where_a_local_pool_has_cores_to_spare(argv, cores, ahead,
                                                                      monkeypatch):
    from dataset_registry.cli.parser import build_parser
    from dataset_registry.cli.resolving import spare_cores

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert spare_cores(build_parser({}).parse_args(["resolve", *argv])) is ahead
