"""Sources on this machine: pointing one at a copy (`registry source set`) and checking
it (`registry source check`), each recorded in the catalog and the lock."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from ..core.remote import is_remote
from ..errors import BadInputError, CatalogBusyError, SourceError
from ..manifest import SourceNode
from . import catalog_sync, locking

if TYPE_CHECKING:
    from ..sources.index import SourceInfo
    from .project import Project


def set_source(project: Project, name: str, location: str) -> SourceInfo:
    """Point source `name` at `location` (checked before it is saved: a refused one leaves
    the previous location, and every dataset's status, as they were)."""
    node = project.manifests.get(name)
    if not isinstance(node, SourceNode):
        raise BadInputError(f"{name} is a {node.kind}, not a source")
    location = location if is_remote(location) else os.path.abspath(location)
    project.resolver.set_location(name, location)
    info = check_source(project, name)
    locking.keep_current(project, [name, *locking.downstream(project, name)])
    return info


def check_source(project: Project, name: str, *, md5: bool = False,
                 force: bool = False) -> SourceInfo:
    """Source `name` fingerprinted (again with `force`); `md5`: its archive's md5 too,
    checked against the manifest's `expect.md5`."""
    from ..sources.index import md5_of

    info = project.resolver.source_info(name, force=force)
    if md5:
        node = project.manifests.get(name)
        assert isinstance(node, SourceNode)
        if not info.container:
            raise BadInputError(f"source {name}: --md5 checks an archive; {info.location} "
                                "is a folder")
        got = md5_of(info.location, project.remote)
        if node.expect.md5 and got != node.expect.md5 and not info.synthetic:
            raise SourceError(f"source {name} ({info.location}): md5 {got}, expected "
                              f"{node.expect.md5} ({node.where}: expect.md5)")
        info.md5 = got  # type: ignore[attr-defined]
    with project.catalog.held():  # (one connection for both)
        with contextlib.suppress(CatalogBusyError):  # an index only: the check succeeded
            project.catalog.record_sources([info])
        catalog_sync.upkeep_once(project, strict=True)
    return info
