"""Executors: `open_executor(spec)` picks the backend; `base` defines what each does."""

from __future__ import annotations

from ..errors import BadInputError
from .base import Executor, Progress, run_task
from .local import LocalExecutor


def open_executor(spec: str | None, jobs: int | None) -> Executor:
    """`local` (default): a process pool of `jobs`; `dask://HOST:PORT`: a running Dask
    scheduler; `dask://local`: a Dask LocalCluster of `jobs` workers."""
    if spec in (None, "", "local"):
        return LocalExecutor(jobs)
    if spec.startswith("dask://") and spec.removeprefix("dask://").strip("/"):
        from .dask import DaskExecutor

        return DaskExecutor(spec.removeprefix("dask://").strip("/"), jobs)
    raise BadInputError(f"executor {spec!r}: expected 'local', 'dask://HOST:PORT' or "
                        "'dask://local'")


__all__ = ["Executor", "LocalExecutor", "Progress", "open_executor", "run_task"]
