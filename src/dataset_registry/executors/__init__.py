"""Executors: `open_executor(spec)` picks the backend; `base` defines what each does."""

from __future__ import annotations

from ..errors import BadInputError
from .base import Executor, Progress, run_task
from .local import LocalExecutor


def open_executor(spec: str | None, jobs: int | None) -> Executor:
    """The executor `spec` names: `local` (default: a process pool of `jobs`),
    `dask://HOST:PORT` (a running Dask scheduler), `dask://local` (a Dask LocalCluster of
    `jobs` workers), or `NAME://ADDRESS` / `NAME` of any executor registered as a plugin
    (`dataset_registry.executors`), built by its `from_spec(ADDRESS, jobs)`."""
    from .. import plugins

    name, _, address = (spec or "local").partition("://")
    if name not in plugins.names("executors"):
        raise BadInputError(f"executor {spec!r}: expected 'local', 'dask://HOST:PORT', "
                            "'dask://local' or a registered executor (registered: "
                            f"{', '.join(plugins.names('executors'))})"
                            f"{plugins.missing_note()}")
    return plugins.get("executors", name).from_spec(address.strip("/"), jobs)


__all__ = ["Executor", "LocalExecutor", "Progress", "open_executor", "run_task"]
