import os
from pathlib import Path

import pytest

from dataset_registry import RecipeError
from dataset_registry.executors import LocalExecutor
from dataset_registry.testing.echo import use_faulty
from dataset_registry.testing.executors import ExecutorSuite
from dataset_registry.testing.sources import open_project, write_image_folder

from .imagenet import ImageNetReference


class TestLocalPool(ExecutorSuite, ImageNetReference):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        executor = LocalExecutor(2)
        yield executor
        executor.close()


def unpicklable_project(root, source):
    """A dataset whose tasks each carry a lock (`faulty`'s `unpicklable`): 5 tasks."""
    return open_project(root, {"data": source}, [
        {"name": "locked", "recipe": "faulty", "inputs": {"images": "data"},
         "params": {"chunk": 5, "unpicklable": True}}])


def test_tasks_that_do_not_pickle_are_one_line_on_the_pool_and_build_inline(tmp_path):
    """Tasks the pool cannot send to its workers fail the build in one line naming the
    dataset and what did not pickle; inline (jobs 1) nothing needs pickling: they build."""
    source = write_image_folder(tmp_path / "data")
    with use_faulty():
        reg = unpicklable_project(tmp_path / "pool", source)
        with pytest.raises(RecipeError) as info:
            reg.resolve("locked", jobs=2)
        assert reg.status("locked") == "missing" and list(reg.store.committed()) == []
        inline = unpicklable_project(tmp_path / "inline", source).resolve("locked", jobs=1)
    where = reg.manifests.get("locked").where
    assert str(info.value) == (
        f"{where}: locked: recipe 'faulty': its tasks could not be run: TypeError: cannot "
        "pickle '_thread.lock' object (a task, the params and the result must pickle to "
        "reach a worker process)")
    assert inline.marker.files == 24
    assert os.listdir(Path(reg.store.root, ".staging")) == []
