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
    if isinstance(executor, Executor):
        resolved = project.resolver.resolve(name, executor, repair=repair, record_target=False)
        return _recorded(project, name, resolved)
    opened = open_executor(executor, jobs)
    try:
        resolved = project.resolver.resolve(name, opened, repair=repair, record_target=False)
        opened.let_go()  # its workers exit while the build is recorded
        return _recorded(project, name, resolved)
    finally:
        opened.close()


def _recorded(project: Project, name: str, resolved: Resolved) -> Resolved:
    """`resolved`, with the lock and the catalog brought in step with it."""
    locking.keep_current(project, [name])
    # the build's record and the catalog's upkeep after it on one connection (nothing long
    # between: while it is held, other processes wait for the catalog)
    with project.catalog.held():
        if not resolved.recorded:
            project.resolver.record(resolved.marker)
        catalog_sync.upkeep_once(project, strict=False)  # published: a catalog fault warns
    return resolved
