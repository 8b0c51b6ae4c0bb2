"""Tasks on a local process pool (forkserver workers), or inline with one worker."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import BuildError
from ..stores.base import Drop
from .base import Executor, OnResult, Progress, arrived, part_name, run_task, warm_up


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

    def map(self, recipe_name: str, params: Any, tasks: Sequence[Any], drop: Drop,
            progress: Progress | None = None, on_result: OnResult | None = None) -> list[Any]:
        if self.jobs == 1 or len(tasks) <= 1:
            results: list[Any] = [None] * len(tasks)
            for i, task in enumerate(tasks):
                arrived(results, i, run_task(recipe_name, params, task, drop, part_name(i)),
                        task, progress, on_result)
            return results
        from concurrent.futures import FIRST_EXCEPTION, wait
        from concurrent.futures.process import BrokenProcessPool

        self.prepare()
        pool = self._pool
        futures = {pool.submit(run_task, recipe_name, params, task, drop, part_name(i)): i
                   for i, task in enumerate(tasks)}
        results = [None] * len(tasks)
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
                arrived(results, i, fut.result(), tasks[i], progress, on_result)
        return results
