"""Writing registry.lock for a project: every key `registry lock` can compute, and the
entries a resolve or a `source set` computed (the others kept)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..catalog import warn_once
from ..errors import LockMismatchError, SourceError
from ..manifest import DatasetNode, SourceNode
from . import lockfile
from .lockfile import Lock, LockedDataset, LockedSource

if TYPE_CHECKING:
    from .project import Project


def write(reg: Project) -> tuple[bool, dict[str, str]]:
    """Write the whole lock: each source set here (fingerprinted), each source not set but
    locked (kept), each dataset whose key can be computed; entries for names no manifest
    declares are dropped. (wrote?, {name: why it is not locked})."""
    resolver = reg.resolver
    sources: dict[str, LockedSource] = {}
    datasets: dict[str, LockedDataset] = {}
    left_out: dict[str, str] = {}
    for node in reg.manifests.nodes.values():
        if isinstance(node, SourceNode):
            if resolver.is_set(node.name):
                sources[node.name] = _source_entry(reg, node.name)
            elif node.name in resolver.lock.sources:
                resolver.key(node.name)  # its locked layout must still be the manifest's
                sources[node.name] = resolver.lock.sources[node.name]
            else:
                left_out[node.name] = "not set on this machine and not in the lock"
    for node in reg.manifests.datasets():
        try:
            datasets[node.name] = _dataset_entry(reg, node)
        except LockMismatchError:
            raise
        except SourceError:
            unset = resolver.unset_sources(node.name)
            if not unset:
                raise
            left_out[node.name] = (f"source {', '.join(unset)} is not set on this machine "
                                   "and not in the lock")
    lock = Lock(sources, datasets)
    with lockfile.guard(reg.state_dir):
        wrote = lockfile.save(reg.lock_path, lock)
    resolver.lock = lock
    share(reg)
    return wrote, left_out


def keep_current(reg: Project, names: list[str]) -> None:
    """Write the entries of `names` and everything they are made from whose keys this
    process computed (sources set here, datasets) into the project's lock, if it has one
    (`registry lock` starts it; until then nothing pins a source's content); a failure to
    write is a warning: what the command did (a build, a source set) stands."""
    resolver = reg.resolver
    if not os.path.exists(reg.lock_path):
        return
    sources, datasets = {}, {}
    for name in names:
        for node in resolver.closure([name]):
            datasets[node.name] = _dataset_entry(reg, node)
            for target in node.inputs.values():
                if isinstance(reg.manifests.get(target), SourceNode) and \
                        resolver.is_set(target):
                    sources[target] = _source_entry(reg, target)
        if isinstance(reg.manifests.get(name), SourceNode):
            sources[name] = _source_entry(reg, name)
    try:
        lockfile.update(reg.lock_path, reg.state_dir, sources, datasets)
    except OSError as exc:
        warn_once(f"{reg.lock_path} not updated: {exc.strerror or exc}")
        return
    resolver.lock = resolver.lock.merged(sources, datasets)
    share(reg)


def share(reg: Project) -> None:
    """The lock as this project's roots in its own store (gc.record_roots): a store that
    other projects write into too keeps what this lock names through their gc. A failure
    is a warning: the lock itself is written."""
    from ..errors import StorageError
    from .gc import record_roots

    try:
        record_roots(reg, reg.store, {}, "lock")
    except (OSError, StorageError) as exc:
        warn_once(f"{reg.store.url}: this project's roots not recorded for gc: {exc}")


def downstream(reg: Project, source: str) -> list[str]:
    """The datasets made (at any depth) from `source` whose keys can be computed here."""
    found = []
    for node in reg.manifests.datasets():
        if source in _sources_under(reg, node.name):
            try:
                reg.key(node.name)
            except SourceError:
                continue
            found.append(node.name)
    return found


def _sources_under(reg: Project, name: str) -> set[str]:
    node = reg.manifests.get(name)
    if isinstance(node, SourceNode):
        return {name}
    if not isinstance(node, DatasetNode):
        return set()
    return set().union(*(_sources_under(reg, t) for t in node.inputs.values()))


def _source_entry(reg: Project, name: str) -> LockedSource:
    info = reg.resolver.source_info(name)
    return LockedSource(info.fingerprint, info.layout, info.files, info.bytes)


def _dataset_entry(reg: Project, node: DatasetNode) -> LockedDataset:
    derivation = reg.resolver.derivation(node.name)
    return LockedDataset(derivation.key, derivation.recipe, derivation.version)
