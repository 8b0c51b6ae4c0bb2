"""`registry resolve NAME`: a dataset built where missing (or pulled from a cache), then
the lock and the catalog brought in step with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BadInputError
from ..executors import Executor, open_executor
from ..manifest import DatasetNode
from . import catalog_sync, locking

if TYPE_CHECKING:
    from .build import Resolved
    from .project import Project


def resolve(project: Project, name: str, *, jobs: int | None = None,
            executor: str | Executor | None = None, repair: bool = False) -> Resolved:
    """Build what is missing for `name` on `executor` (an open one stays open for the
    caller's next build; a spec or None is opened with `jobs` workers and closed)."""
    node = project.manifests.get(name)
    if not isinstance(node, DatasetNode):
        raise BadInputError(f"{name} is a {node.kind}, not a dataset")

    def upkeep() -> None:  # while a build runs (its record follows: a fault only warns)
        catalog_sync.upkeep_once(project, strict=False, building=name)

    # a build runs the catalog's upkeep while its workers run (0.1-0.2 s, otherwise after
    # the last task); where nothing is built it runs after, as ever
    if isinstance(executor, Executor):
        resolved = project.resolver.resolve(name, executor, repair=repair, meanwhile=upkeep)
    else:
        opened = open_executor(executor, jobs)
        try:
            resolved = project.resolver.resolve(name, opened, repair=repair, meanwhile=upkeep)
        finally:
            opened.close()
    locking.keep_current(project, [name])
    catalog_sync.upkeep_once(project, strict=False)  # (nothing, if a build ran it)
    return resolved
