"""The one labelled task every labelled recipe plans (recipes/tasks.py): each member's
label, carried as planned to a worker in a small pickle."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest

from dataset_registry.recipes import RECIPES
from dataset_registry.recipes.tasks import LabelledTask
from dataset_registry.sources.members import MemberSet
from dataset_registry.testing.sources import open_project, write_image_folder

IMAGES = {"images": "data"}
N = 600  # more than one 256-image task of byclass, recordio and downscale
LABELLED = [
    {"name": "byclass", "recipe": "byclass", "inputs": IMAGES},
    {"name": "recordio", "recipe": "recordio", "inputs": IMAGES},
    {"name": "webdataset", "recipe": "webdataset", "inputs": IMAGES,
     "params": {"shard_count": 100}},
    {"name": "tfrecord", "recipe": "tfrecord", "inputs": IMAGES, "params": {"shards": 3}},
    {"name": "downscale", "recipe": "downscale", "inputs": IMAGES,
     "params": {"width": 8, "height": 6}},
]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Any], Any]]:
    """recipe name -> (its tasks over N synthetic images, the whole input's MemberSet)."""
    root = tmp_path_factory.mktemp("tasks")
    reg = open_project(root / "project", {"data": write_image_folder(root / "data", n=N)},
                       LABELLED)
    out = {}
    for entry in LABELLED:
        node = reg.manifests.get(entry["name"])
        inputs, _, _ = reg.resolver.inputs(node)
        out[entry["recipe"]] = (RECIPES[entry["recipe"]].plan(node.params, inputs),
                                inputs.images["images"]["train"])
    return out


@pytest.mark.parametrize("recipe", [e["recipe"] for e in LABELLED])
def test_each_member_carries_its_own_class(planned, recipe: str) -> None:
    """The label a task holds for its i-th member names that member's class (tfrecord's
    less its label_offset, 1), and the tasks cover every image once."""
    tasks, _ = planned[recipe]
    offset = 1 if recipe == "tfrecord" else 0
    assert len(tasks) > 1
    assert all(isinstance(t, LabelledTask) for t in tasks)
    assert sum(len(t) for t in tasks) == N  # what the engine counts for progress
    seen = []
    for task in tasks:
        assert len(task) == len(task.members) == len(task.labels)
        for ref, label in zip(task.members, task.labels.tolist(), strict=True):
            assert task.classes[label - offset] == ref.label, (recipe, ref.name)
            seen.append(ref.name)
    assert len(set(seen)) == N


@pytest.mark.parametrize("recipe", [e["recipe"] for e in LABELLED])
def test_a_task_pickles_whole_and_small(planned, recipe: str) -> None:
    """A task reaches a pool or Dask worker as planned, every field (its recipe's own
    too), and carries only its own members, not the whole input's."""
    tasks, whole = planned[recipe]
    task = max(tasks, key=len)
    again = pickle.loads(pickle.dumps(task))
    assert type(again) is type(task)
    for field in dataclasses.fields(task):
        mine, theirs = getattr(task, field.name), getattr(again, field.name)
        if isinstance(mine, MemberSet):
            assert list(theirs.names) == list(mine.names)
        elif isinstance(mine, np.ndarray):
            assert theirs.dtype == mine.dtype and np.array_equal(theirs, mine), field.name
        else:
            assert theirs == mine, field.name
    assert len(task) < N
    size, whole_size = len(pickle.dumps(task)), len(pickle.dumps(whole))
    assert size < (len(task) / N + 0.1) * whole_size, (size, whole_size)


def test_labels_that_do_not_match_the_members_are_refused(planned) -> None:
    """A plan that slices labels apart from members would label every later image wrong:
    the task refuses to be made, naming itself."""
    task = planned["byclass"][0][0]
    with pytest.raises(ValueError, match=r"^task 7: 256 members but 255 labels$"):
        LabelledTask(index=7, members=task.members, labels=task.labels[:-1],
                     classes=task.classes)


def test_fields_are_keyword_only(planned) -> None:
    """Fields are named where a task is made: a subclass adds its own after the shared
    ones, and none is filled by position into the wrong one."""
    task = planned["byclass"][0][0]
    with pytest.raises(TypeError, match="positional"):
        LabelledTask(0, task.members, task.labels, task.classes)  # type: ignore[misc]
