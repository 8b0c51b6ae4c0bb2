"""A recipe's own code failing (failures.py): what its `plan`, `run`, `follow` or `finish`
raises, a `sys.exit` in it, reaches the user as one line naming the dataset, the recipe
and the member where known, exit 1, with the traceback behind `--debug` or
DATASET_REGISTRY_DEBUG=1; a RegistryError raised on purpose keeps its message and exit
code. Through the CLI, on a project's own plugin, with 1 and 2 workers (the executor
suite checks the same of every executor, Dask included; tests/executors/ the tasks that
do not pickle)."""

from __future__ import annotations

import pytest

from ..conftest import run_cli
from ..pluginkit import plugin_project, published

BOOM = '''
import sys
from typing import ClassVar

from dataset_registry.errors import BadInputError
from dataset_registry.sources.members import read_members
from dataset_registry.plugins import register
from dataset_registry.recipes import InputSpec, Params, Recipe
from dataset_registry.recipes.select import pick_split


class BoomParams(Params):
    where: str


class Boom(Recipe):
    """Copies its images; fails where `where` says."""

    name = "boom"
    version = 1
    Params = BoomParams
    inputs: ClassVar = {"images": InputSpec("images")}

    @classmethod
    def plan(cls, params, inputs):
        if params.where == "plan":
            {}["no such key"]
        if params.where == "bad-input":
            raise BadInputError("boom wants other images")
        refs = list(pick_split(inputs.images["images"], "train", "images"))
        return [refs[i:i + 4] for i in range(0, len(refs), 4)]

    @classmethod
    def run(cls, params, task, out):
        for ref, data in read_members(task):
            if ref.origin == "class-1/img-0004.png" and params.where == "run":
                1 / 0
            if ref.origin == "class-1/img-0004.png" and params.where == "exit":
                sys.exit(3)
            out.write(ref.origin, data)
        return len(task)

    @classmethod
    def follow(cls, params, tasks, out):
        if params.where == "follow":
            return lambda index, result: {}["a result"]
        return None

    @classmethod
    def finish(cls, params, inputs, results, out, context=None):
        if params.where == "finish":
            raise RuntimeError("no index today")


register("recipes", "boom", Boom)
'''
DATASETS = """\
  - name: boom-{where}
    recipe: boom
    inputs: {images: data}
    matrix: {where: [plan, bad-input, run, exit, follow, finish, none]}
    params: {where: "{where}"}
"""
HINT = " (run with --debug for the traceback)"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return plugin_project(tmp_path_factory.mktemp("boom"), {"my_plugin": BOOM}, DATASETS)


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("where, failure", [
    ("plan", "recipe 'boom' failed in plan: KeyError: 'no such key'"),
    ("run", "recipe 'boom' failed in run on member 'class-1/img-0004.png': "
            "ZeroDivisionError: division by zero"),
    ("exit", "recipe 'boom' failed in run on member 'class-1/img-0004.png': SystemExit: 3"),
    ("follow", "recipe 'boom' failed in follow: KeyError: 'a result'"),
    ("finish", "recipe 'boom' failed in finish: RuntimeError: no index today"),
])
def test_recipe_code_that_raises_is_one_line_naming_the_dataset(project, where, failure, jobs):
    done = run_cli("resolve", f"boom-{where}", "--jobs", jobs, cwd=project)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"registry: error: manifests/test.yaml:4: boom-{where}: {failure}{HINT}\n"
    assert published(project) == []
    listed = run_cli("list", cwd=project)
    assert f"boom-{where}\tdataset\tboom\tmissing\t" in listed.stdout


def test_a_registry_error_raised_on_purpose_keeps_its_message_and_exit_code(project):
    done = run_cli("resolve", "boom-bad-input", cwd=project)
    assert done.returncode == 2
    assert done.stderr == ("registry: error: manifests/test.yaml:4: boom-bad-input: boom wants "
                           "other images\n")  # no traceback behind it: no hint
    assert published(project) == []


@pytest.mark.parametrize("how", [["--debug", "resolve", "boom-run"],
                                 ["resolve", "boom-run", "--debug", "--jobs", "2"], "env"])
def test_debug_prints_the_traceback_then_the_line(project, how):
    args, env = (["resolve", "boom-run", "--jobs", "2"], {"DATASET_REGISTRY_DEBUG": "1"}) \
        if how == "env" else (how, {})
    done = run_cli(*args, cwd=project, env=env)
    assert done.returncode == 1
    *trace, last = done.stderr.splitlines()
    assert last == ("registry: error: manifests/test.yaml:4: boom-run: recipe 'boom' failed "
                    "in run on member 'class-1/img-0004.png': ZeroDivisionError: division by "
                    "zero")
    assert trace[0] == "Traceback (most recent call last):"
    line = next(n for n, text in enumerate(BOOM.splitlines(), 1) if text.strip() == "1 / 0")
    assert f'  File "{project / "my_plugin.py"}", line {line}, in run' in trace
    assert trace[-1] == "ZeroDivisionError: division by zero"


def test_after_a_failure_the_same_project_builds(project):
    done = run_cli("resolve", "boom-none", "--jobs", "2", cwd=project)
    assert done.returncode == 0, done.stderr
    assert len(published(project)) == 1
