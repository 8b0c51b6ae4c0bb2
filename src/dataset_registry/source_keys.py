"""The key side of sources: where each is set on this machine, its fingerprint (checked
against registry.lock), and the lock's fingerprint where it is not set here.

`SourceKeys` is the part of the `Resolver` that knows sources; it keeps the resolver
module about building.
"""

from __future__ import annotations

import os

from .errors import LockMismatchError, SourceError
from .lockfile import Lock
from .manifest import DatasetNode, Manifests, SourceNode
from .remote import Remote
from .sources import (
    SourceInfo,
    SourceLocations,
    check_expectations,
    check_source,
    expects,
    last_known,
)


class SourceKeys:
    """Sources' keys for the resolver: the attributes below are the resolver's."""

    manifests: Manifests
    remote: Remote
    state_dir: str
    locations: SourceLocations
    lock: Lock
    lock_path: str
    update_lock: bool
    _sources: dict[str, SourceInfo]
    _locs: dict[str, str] | None

    def source_info(self, name: str, *, force: bool = False) -> SourceInfo:
        if name in self._sources and not force:
            return self._sources[name]
        node = self.manifests.get(name)
        assert isinstance(node, SourceNode)
        location = self._location(name)
        if location is None:
            raise SourceError(f"source {name} is not set: it expects {expects(node.layout)} "
                              f"(layout {node.layout}); point it at your copy with: "
                              f"registry source set {name} PATH")
        info = check_source(node, location, os.path.join(self.state_dir, "cache"), force=force,
                            remote=self.remote)
        check_expectations(node, info)
        locked = self.lock.sources.get(name)
        if locked and locked.fingerprint != info.fingerprint and not self.update_lock:
            raise LockMismatchError(
                f"source {name} at {info.location} has fingerprint {info.fingerprint}, but "
                f"{self.lock_path} locks fingerprint {locked.fingerprint}: another copy than "
                "the project's keys were computed from; point the source at that copy, or "
                "lock this one (which changes the key of every dataset made from it) with "
                "--update-lock")
        self._sources[name] = info
        return info

    def _location(self, name: str) -> str | None:
        if self._locs is None:
            self._locs = self.locations.load()
        return self._locs.get(name)

    def is_set(self, name: str) -> bool:
        """Whether source `name` has a location on this machine (`registry source set`)."""
        return self._location(name) is not None

    def unset_sources(self, name: str, *, direct: bool = False) -> list[str]:
        """The sources `name` is made from that are not set on this machine (`direct`:
        only those it reads itself), sorted."""
        node = self.manifests.get(name)
        if isinstance(node, SourceNode):
            return [] if self.is_set(name) else [name]
        if not isinstance(node, DatasetNode):
            return []
        found: set[str] = set()
        for target in node.inputs.values():
            dep = self.manifests.get(target)
            if isinstance(dep, SourceNode) or not direct:
                found.update(self.unset_sources(target))
        return sorted(found)

    def _locked_fingerprint(self, node: SourceNode) -> str | None:
        """The fingerprint registry.lock records for unset source `node` (None: none); a
        lock entry of another layout than the manifest's is a SourceError."""
        locked = self.lock.sources.get(node.name)
        if locked is None:
            return None
        if locked.layout != node.layout:
            raise SourceError(f"source {node.name} is not set, and {self.lock_path} locks it "
                              f"with layout {locked.layout} where {node.where} declares "
                              f"{node.layout}; set it (registry source set {node.name} PATH) "
                              "and run: registry lock")
        return locked.fingerprint

    def last_known_source(self, name: str) -> SourceInfo | None:
        """Source `name`'s info as this process or the cache last fingerprinted it (None:
        never, or unset), without reading or even stat-ing the source."""
        if name in self._sources:
            return self._sources[name]
        location = self._location(name)
        node = self.manifests.get(name)
        assert isinstance(node, SourceNode)
        if location is None:
            return None
        return last_known(node, location, os.path.join(self.state_dir, "cache"))
