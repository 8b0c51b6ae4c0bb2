"""Executors: run a recipe's tasks somewhere, results back in plan order.

A task sees only its recipe name, params, payload and the staging folder it
writes into; it never touches the catalog. Results come back in plan order,
so output is identical whatever the number of workers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BuildError
from .output import Output

Progress = Callable[[int], None]


def run_task(recipe_name: str, params: Any, task: Any, staging: str, part: str) -> Any:
    """Run one task in whatever process this is (a pool worker, a Dask worker, inline)."""
    from .recipes import RECIPES

    out = Output(staging, part)
    try:
        return RECIPES[recipe_name].run(params, task, out)
    finally:
        out.close()


def task_size(task: Any) -> int:
    return len(task) if hasattr(task, "__len__") else 1


def warm_up() -> None:
    """Import what tasks need, in a fresh worker, while the coordinator plans."""
    import PIL.Image  # noqa: F401
    import xxhash  # noqa: F401

    from . import imaging, output  # noqa: F401


class Executor(ABC):
    @abstractmethod
    def map(self, recipe_name: str, params: Any, tasks: Sequence[Any], staging: str,
            progress: Progress | None = None) -> list[Any]:
        """Run every task; raise the first task error after cancelling the rest."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Start workers ahead of the first `map` (called before planning); optional."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalExecutor(Executor):
    """Tasks on a local process pool (`jobs` workers); inline when jobs == 1."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self._pool: Any = None

    def prepare(self) -> None:
        if self.jobs == 1 or self._pool is not None:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver: workers start from a clean process, never from a parent holding
        # threads (progress bars) or a DuckDB connection.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["dataset_registry.recipes", "dataset_registry.imaging"])
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx)
        for _ in range(self.jobs):  # spawn and warm every worker now, not at the first task
            self._pool.submit(warm_up)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, recipe_name: str, params: Any, tasks: Sequence[Any], staging: str,
            progress: Progress | None = None) -> list[Any]:
        if self.jobs == 1 or len(tasks) <= 1:
            results = []
            for i, task in enumerate(tasks):
                results.append(run_task(recipe_name, params, task, staging, f"{i:06d}"))
                if progress:
                    progress(task_size(task))
            return results
        from concurrent.futures import FIRST_EXCEPTION, wait
        from concurrent.futures.process import BrokenProcessPool

        self.prepare()
        pool = self._pool
        futures = {pool.submit(run_task, recipe_name, params, task, staging, f"{i:06d}"): i
                   for i, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):
                    self.close()
                    raise BuildError(
                        "a worker process died (killed, out of memory, or it could not "
                        "start: a script that calls resolve() with jobs > 1 must do so "
                        "under `if __name__ == '__main__':`, as multiprocessing requires)"
                    ) from exc
                if exc is not None:
                    for other in pending:
                        other.cancel()
                    wait(pending)  # let running tasks end before staging is removed
                    raise exc
                i = futures[fut]
                results[i] = fut.result()
                if progress:
                    progress(task_size(tasks[i]))
        return results


def open_executor(spec: str | None, jobs: int | None) -> Executor:
    if spec in (None, "", "local"):
        return LocalExecutor(jobs)
    from .errors import BadInputError

    raise BadInputError(f"executor {spec!r}: only 'local' is available in this version")
