"""An executor from outside dataset-registry: `serial://` runs a build's tasks in this
process, one after another, in plan order (registered by its entry point)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dataset_registry.executors import Executor, run_task
from dataset_registry.executors.base import OnResult, Progress, part_name, task_size


class Serial(Executor):
    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = 1  # whatever --jobs says: one task at a time

    def map(self, recipe: Any, params: Any, tasks: Sequence[Any], drop: Any,
            progress: Progress | None = None, on_result: OnResult | None = None) -> list[Any]:
        results = []
        for i, task in enumerate(tasks):
            results.append(run_task(recipe, params, task, drop, part_name(i)))
            if on_result:
                on_result(i, results[-1])
            if progress:
                progress(task_size(task))
        return results
