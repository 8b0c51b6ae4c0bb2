"""`finish` receives `plan`'s context (`Plan`); a `finish` of the older signature still runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset_registry.recipes.base import Inputs, Plan, takes_context
from dataset_registry.testing.echo import Echo
from dataset_registry.testing.registration import registered
from dataset_registry.testing.sources import open_project, write_image_folder

PLANS: list[str] = []  # who planned, in this process (the coordinator)


class Counted(Echo):
    """Echo, whose `finish` writes what `plan` counted, taken from the plan's context."""

    name = "counted"

    @classmethod
    def plan(cls, params: Any, inputs: Inputs) -> Plan:
        PLANS.append(cls.name)
        tasks = super().plan(params, inputs)
        return Plan(tasks, context={"images": sum(len(t) for t in tasks)})

    @classmethod
    def finish(cls, params: Any, inputs: Inputs, results: list[Any], out: Any,
               context: Any = None) -> None:
        out.write("count.txt", f"{context['images']}\n".encode())


class OldFinish(Echo):
    """An outside recipe written before `context`: its `finish` has the old signature."""

    name = "old-finish"

    @classmethod
    def finish(cls, params: Any, inputs: Inputs, results: list[Any], out: Any) -> None:  # type: ignore[override]
        out.write("count.txt", f"{sum(results)}\n".encode())


def build(tmp_path: Path, recipe: type[Echo]) -> Any:
    source = write_image_folder(tmp_path / "data", 12, 3)
    entry = {"name": "out", "recipe": recipe.name, "inputs": {"images": "data"},
             "params": {"chunk": 5}}
    with registered("recipes", recipe.name, recipe):
        return open_project(tmp_path / "p", {"data": source}, [entry]).resolve("out", jobs=2)


def test_finish_receives_the_context_plan_made_and_plan_runs_once(tmp_path):
    PLANS.clear()
    ds = build(tmp_path, Counted)
    assert Path(ds.path, "count.txt").read_text() == "12\n"
    assert PLANS == ["counted"]  # finish did not plan again
    assert ds.marker.files == 13


def test_a_finish_without_context_is_called_as_before(tmp_path):
    assert not takes_context(OldFinish) and takes_context(Counted) and takes_context(Echo)
    ds = build(tmp_path, OldFinish)
    assert Path(ds.path, "count.txt").read_text() == "12\n"
    assert ds.marker.files == 13


def test_a_plan_is_the_list_of_its_tasks():
    plan = Plan([[1, 2], [3]], context="c")
    assert plan == [[1, 2], [3]] and len(plan) == 2 and plan.context == "c"
    assert Plan([[1]]).context is None
