"""The key side of the engine: every node's key, without building anything.

A source's key is its fingerprint (checked against registry.lock) where it is set on
this machine, the lock's where it is not; a shipped file's is its tree hash; a dataset's
is its derivation's. `status` and `marker` say what the store holds for a name; `closure`
orders what a build needs. Reading keys runs no recipe code.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..artifact.marker import Marker
from ..core.keys import Derivation, recipe_code_key, tree_key
from ..core.progress import ProgressFactory
from ..core.remote import Remote
from ..errors import LockMismatchError, SourceError, VerifyError
from ..manifest import DatasetNode, FileNode, Manifests, SourceNode
from ..recipes import RECIPES
from ..sources.index import (
    SourceInfo,
    SourceLocations,
    check_expectations,
    check_source,
    expects,
    last_known,
)
from ..stores import Store
from .lockfile import LOCK, Lock


class Keys:
    """Names to keys for one project: its manifests, the sources set on this machine
    (`locations`), registry.lock, and the store (for `status` and `marker`)."""

    progress: ProgressFactory | None = None  # a bar while a source is read (the Resolver's)

    def __init__(self, manifests: Manifests, store: Store, state_dir: str, *,
                 remote: Remote | None = None, lock: Lock | None = None,
                 lock_path: str = LOCK, update_lock: bool = False) -> None:
        self.manifests = manifests
        self.store = store
        # registry.lock: the keys of sources not set here; a set source must match it
        # unless `update_lock` (then the commands that write the lock record the new one)
        self.lock = lock or Lock()
        self.lock_path = lock_path
        self.update_lock = update_lock
        self.remote = remote or Remote()
        self.state_dir = state_dir
        self.locations = SourceLocations(state_dir)
        self._keys: dict[str, str] = {}
        self._derivations: dict[str, Derivation] = {}  # forgotten with the keys
        self._sources: dict[str, SourceInfo] = {}
        self._locs: dict[str, str] | None = None

    def key(self, name: str) -> str:
        if name in self._keys:
            return self._keys[name]
        node = self.manifests.get(name)
        if isinstance(node, SourceNode):
            # not set here: the key the machine that holds the data locked
            locked = None if self.is_set(name) else self._locked_fingerprint(node)
            key = locked or self.source_info(name).fingerprint
        elif isinstance(node, FileNode):
            key = tree_key(node.path)
        else:
            key = self.derivation(name).key
        self._keys[name] = key
        return key

    def derivation(self, name: str) -> Derivation:
        """How dataset `name` is made, its inputs by key: what its key is the hash of.
        Made once (an outside recipe's code is hashed once: a file edited mid-build
        cannot make the recorded derivation disagree with the key), forgotten with the
        keys (`forget_keys`)."""
        cached = self._derivations.get(name)
        if cached is not None:
            return cached
        node = self.manifests.get(name)
        assert isinstance(node, DatasetNode)
        recipe = RECIPES[node.recipe]
        derivation = Derivation(recipe.name, recipe.version, node.params.keyed(),
                                {role: self.key(target) for role, target in node.inputs.items()},
                                code=recipe_code_key(recipe))
        self._derivations[name] = derivation
        return derivation

    def indexed_key(self, name: str, memo: dict[str, str | None] | None = None) -> str | None:
        """The key of `name` from keys already computed and sources as last fingerprinted
        (None: a source it reads never was): what an index shows without reading a
        source. A build never uses it: `key` checks each source's stat first."""
        if name in self._keys:
            return self._keys[name]
        memo = {} if memo is None else memo
        if name not in memo:
            node = self.manifests.get(name)
            if isinstance(node, SourceNode):
                info = self.last_known_source(name)
                if info is None and not self.is_set(name):
                    try:
                        memo[name] = self._locked_fingerprint(node)
                    except SourceError:
                        memo[name] = None
                else:
                    memo[name] = info.fingerprint if info else None
            elif isinstance(node, FileNode):
                memo[name] = self.key(name)
            else:
                inputs = {role: self.indexed_key(t, memo) for role, t in node.inputs.items()}
                recipe = RECIPES[node.recipe]
                memo[name] = None if None in inputs.values() else Derivation(
                    recipe.name, recipe.version, node.params.keyed(), inputs,
                    code=recipe_code_key(recipe)).key
        return memo[name]

    def forget_keys(self) -> None:
        """Recompute every key and derivation on next use (a source was moved, say)."""
        self._keys.clear()
        self._derivations.clear()

    def status(self, name: str) -> str:
        try:
            key = self.key(name)
        except LockMismatchError:
            return "lock mismatch"
        except SourceError:
            return "source unset"
        node = self.manifests.get(name)
        if isinstance(node, SourceNode) and not self.is_set(name):
            return "source unset"  # its key is the lock's
        if not isinstance(node, DatasetNode):
            return "ready"
        try:
            if self.store.marker(key):
                return "built"
        except VerifyError:
            return "damaged"
        return "missing (source unset)" if self.unset_sources(name) else "missing"

    def marker(self, name: str, asked: str | None = None) -> Marker | None:
        """The marker of dataset `name`'s artifact (None: not built). One that does not
        parse or is another artifact's is a VerifyError saying how to repair `asked`."""
        key = self.key(name)
        try:
            return self.store.marker(key)
        except VerifyError as exc:
            raise VerifyError(f"{exc}\n{name} (key {key}) is damaged; repair it with: "
                              f"registry resolve --repair {asked or name}") from None

    def closure(self, names: list[str], stop: Callable[[DatasetNode], bool] | None = None
                ) -> list[DatasetNode]:
        """Datasets needed for `names`, inputs before the datasets that read them.
        `stop(node)` true: `node` is needed, its inputs are not (it came from a cache)."""
        order: list[DatasetNode] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            node = self.manifests.get(name)
            if isinstance(node, DatasetNode):
                if not (stop and stop(node)):
                    for target in node.inputs.values():
                        visit(target)
                order.append(node)

        for name in names:
            visit(name)
        return order

    def missing(self, names: list[str]) -> list[DatasetNode]:
        return [n for n in self.closure(names) if self.marker(n.name) is None]

    # -- sources ---------------------------------------------------------------------------

    def set_location(self, name: str, location: str) -> SourceInfo:
        """Point source `name` at `location` on this machine: fingerprinted (and checked
        against the lock) first, saved only if that succeeds, so a refused location
        leaves the previous one, and every key, as they were."""
        previous = self._locs
        self._locs = {**self.locations.load(), name: location}
        self._sources.pop(name, None)
        self.forget_keys()
        try:
            info = self.source_info(name)
        except BaseException:
            self._locs = previous
            self._sources.pop(name, None)
            self.forget_keys()
            raise
        self.locations.set(name, location)
        return info

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
                            remote=self.remote, progress=self.progress)
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


SourceKeys = Keys  # its name in engine/source_keys.py (old path `dataset_registry.source_keys`)
