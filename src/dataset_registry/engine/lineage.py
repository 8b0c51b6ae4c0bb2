"""What a dataset is made from, as a tree down to its sources and shipped files: each
node's key (where it can be computed), status and a line of detail (`registry lineage`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SourceError
from ..manifest import DatasetNode, FileNode, SourceNode
from .lockfile import LOCK

if TYPE_CHECKING:
    from .project import Project


@dataclass
class LineageNode:
    role: str
    name: str
    kind: str
    key: str | None
    status: str
    detail: str
    children: list[LineageNode] = field(default_factory=list)


def lineage(project: Project, name: str, role: str = "") -> LineageNode:
    resolver = project.resolver
    node = project.manifests.get(name)
    try:
        key: str | None = resolver.key(name)
    except SourceError:
        key = None
    status = resolver.status(name)
    if isinstance(node, SourceNode):
        detail = f"source, layout {node.layout}"
        if key and not resolver.is_set(name):
            locked = resolver.lock.sources[name]
            detail += f", {locked.files} images (not set here; key from {LOCK})"
        elif key:
            info = resolver.source_info(name)
            detail += f", {info.files} images at {info.location}" + \
                (" (SYNTHETIC)" if info.synthetic else "")
    elif isinstance(node, FileNode):
        detail = f"file {os.path.relpath(node.path, project.root)}"
    else:
        assert isinstance(node, DatasetNode)
        detail = f"recipe {node.recipe}"
    out = LineageNode(role, name, node.kind, key, status, detail)
    if isinstance(node, DatasetNode):
        out.children = [lineage(project, target, r)
                        for r, target in sorted(node.inputs.items())]
    return out
