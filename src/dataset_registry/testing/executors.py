"""The executor conformance suite: a backend's test module subclasses `ExecutorSuite` and
provides the `executor` fixture (fsspec's abstract-test style), e.g. for an outside one:

    from dataset_registry.testing.executors import ExecutorSuite

    class TestMyExecutor(ExecutorSuite):
        @pytest.fixture(scope="class")
        def executor(self):
            yield (ex := MyExecutor(jobs=2))
            ex.close()

An executor is right when every recipe built through it gives the bytes an inline
build gives (results in plan order, parts and ranges in place), when a failing task
fails the build with the task's own error and leaves no artifact (a recipe's bug, not
a RegistryError, as one RecipeError naming the dataset, the recipe and the member: run
tasks through `run_task`), and when it hands results over as tasks finish. Everything
runs over the generic synthetic source (`testing.sources`), so no ImageNet is needed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..errors import BadImageError, RecipeError
from ..executors import Executor
from ..stores.base import FolderDrop
from .echo import Echo, use_echo, use_faulty
from .sources import BROKEN_IMAGE, open_project, write_image_folder

IMAGES = {"images": "data"}
EVERY_RECIPE: list[dict[str, Any]] = [
    {"name": "echo", "recipe": "echo", "inputs": IMAGES, "params": {"chunk": 5}},
    {"name": "select", "recipe": "select",
     "inputs": IMAGES, "params": {"split": "train", "folders": True}},
    {"name": "sample", "recipe": "sample", "inputs": IMAGES,
     "params": {"seed": 3, "splits": {"train": 0.5, "val": 0.5}}},
    {"name": "echo-of-sample", "recipe": "echo", "inputs": {"images": "sample"},
     "params": {"split": "val", "chunk": 3}},  # one dataset read by another
    {"name": "downscale", "recipe": "downscale", "inputs": IMAGES,
     "params": {"width": 8, "height": 6}},
    {"name": "downscale-folders", "recipe": "downscale", "inputs": IMAGES,
     "params": {"width": 4, "height": 4, "color": "gray", "format": "folders"}},
    {"name": "byclass", "recipe": "byclass", "inputs": IMAGES},
    {"name": "recordio", "recipe": "recordio", "inputs": IMAGES},
    {"name": "webdataset", "recipe": "webdataset", "inputs": IMAGES,
     "params": {"shard_count": 5}},
    {"name": "tfrecord", "recipe": "tfrecord", "inputs": IMAGES, "params": {"shards": 3}},
]
"""One dataset per generic recipe over the synthetic source `data`."""


def every_recipe(root: Any, source: Any, **registry: Any) -> Any:
    """A registry at `root` with `EVERY_RECIPE` over the image folder `source` (`echo`
    must be registered: `with use_echo():`)."""
    return open_project(root, {"data": source}, EVERY_RECIPE, **registry)


def build_all(reg: Any, **resolve: Any) -> dict[str, str]:
    """name -> content digest of every dataset of `EVERY_RECIPE`."""
    return {d["name"]: reg.resolve(d["name"], **resolve).digest for d in EVERY_RECIPE}


@dataclass(frozen=True)
class GatedDrop(FolderDrop):
    """A local drop that lets the first task through and holds every later one until the
    coordinator's `on_result` has seen a result (the `gate` file): only an executor that
    hands results over as tasks finish, not after the last, gets past it."""

    gate: str = ""

    def folder(self) -> str:
        try:
            os.close(os.open(self.gate + ".first", os.O_CREAT | os.O_EXCL))
            return self.path
        except FileExistsError:
            pass
        deadline = time.monotonic() + 20
        while not os.path.exists(self.gate):
            if time.monotonic() > deadline:
                raise TimeoutError("on_result saw no result while later tasks waited")
            time.sleep(0.01)
        return self.path


class ExecutorSuite:
    """Every executor backend: subclass it and provide the `executor` fixture."""

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("each backend's test module provides `executor`")

    @pytest.fixture(scope="class")
    @classmethod
    def generic_source(cls, tmp_path_factory: pytest.TempPathFactory) -> str:
        return str(write_image_folder(tmp_path_factory.mktemp("generic") / "data"))

    @pytest.fixture(scope="class")
    @classmethod
    def generic_reference(cls, generic_source: str,
                          tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
        """Every recipe built inline (one worker, local store): what the executor must
        reproduce."""
        with use_echo():
            reg = every_recipe(tmp_path_factory.mktemp("inline"), generic_source)
            return build_all(reg, jobs=1)

    @pytest.fixture(autouse=True)
    def _echo(self) -> Iterator[None]:
        with use_echo():
            yield

    def test_every_recipe_gives_the_inline_bytes(self, executor, generic_source,
                                                 generic_reference, tmp_path) -> None:
        reg = every_recipe(tmp_path, generic_source)
        assert build_all(reg, executor=executor) == generic_reference
        assert reg.verify() == {k: [] for k in reg.store.committed()}

    def test_a_failing_task_fails_the_build_and_leaves_no_artifact(self, executor,
                                                                    tmp_path) -> None:
        broken = "class-1/img-0013.jpg"
        source = write_image_folder(tmp_path / "data", extra={broken: BROKEN_IMAGE})
        reg = every_recipe(tmp_path, source)
        with pytest.raises(BadImageError, match=broken.replace(".", r"\.")):
            reg.resolve("echo", executor=executor)
        assert reg.status("echo") == "missing"
        assert list(reg.store.committed()) == []

    def test_a_recipe_that_raises_fails_the_build_in_one_line(self, executor, generic_source,
                                                             tmp_path) -> None:
        """A plain exception from a recipe's `run` (its bug, say) comes back as one line
        naming the dataset, the recipe and the member, the traceback in `details`."""
        member = "class-1/img-0013.jpg"
        with use_faulty():
            reg = open_project(tmp_path, {"data": generic_source}, [
                {"name": "bug", "recipe": "faulty", "inputs": IMAGES,
                 "params": {"chunk": 5, "fail_on": member}}])
            with pytest.raises(RecipeError) as info:
                reg.resolve("bug", executor=executor)
            assert reg.status("bug") == "missing"
        where = reg.manifests.get("bug").where
        assert str(info.value) == (f"{where}: bug: recipe 'faulty' failed in run on member "
                                   f"{member!r}: ValueError: faulty by request")
        assert info.value.details.startswith("Traceback (most recent call last):")
        assert 'raise ValueError("faulty by request")' in info.value.details
        assert list(reg.store.committed()) == []

    def test_results_are_handed_over_as_tasks_finish(self, executor, generic_source,
                                                     tmp_path) -> None:
        reg = every_recipe(tmp_path, generic_source)
        node = reg.manifests.get("echo")
        inputs, _, _ = reg.resolver.inputs(node)
        tasks = Echo.plan(node.params, inputs)
        assert len(tasks) >= 3
        gate = str(tmp_path / "gate")
        seen: list[int] = []

        def on_result(index: int, result: int) -> None:
            seen.append(index)
            open(gate, "w").close()

        out = tmp_path / "out"
        out.mkdir()
        results = executor.map(Echo, node.params, tasks, GatedDrop(path=str(out), gate=gate),
                               on_result=on_result)
        assert results == [len(t) for t in tasks]  # in plan order, whatever the arrival
        assert sorted(seen) == list(range(len(tasks)))
