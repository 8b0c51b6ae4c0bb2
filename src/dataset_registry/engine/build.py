"""The builder: a build of exactly what is missing (stage, plan, run, finish, publish).

Resolving something already built reads the manifests, the sources' cached
fingerprints and one marker (the key side, `keys.Keys`): no recipe code runs and
nothing scales with the dataset's size.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..artifact.marker import InputRef, Marker, local_table_damage
from ..core.failures import guarded, recipe_code
from ..core.processes import import_meanwhile
from ..core.progress import ProgressFactory, bar
from ..core.remote import Remote
from ..errors import (
    BadInputError,
    CatalogBusyError,
    CatalogCorruptError,
    SourceError,
    StorageError,
    VerifyError,
)
from ..manifest import DatasetNode, FileNode, Manifests, Node, SourceNode
from ..recipes import RECIPES, Inputs
from ..recipes.base import finish
from ..stores import FILES, Staging, Store
from .keys import Keys
from .lockfile import LOCK, Lock

if TYPE_CHECKING:
    from threading import Thread

    from ..catalog import Catalog
    from ..executors import Executor
    from ..sources.members import MemberSet
    from .imagechecks import ImageChecks

# What only a build needs (executors, the member sets a build reads, the image checks,
# resume, cache pulls) is imported by the methods that build: reading keys, status and
# markers (`registry show`, `lineage`, `list`) imports none of it.


@dataclass
class Resolved:
    """A built dataset: its key, where it lives (`uri`), and its provenance records.

    `path` is a local folder with its files: the artifact itself in a local store,
    a cached copy (downloaded on first use) when the store is remote.
    """

    name: str
    key: str
    uri: str
    marker: Marker = field(repr=False)
    store: Store = field(repr=False, compare=False)
    built_now: bool = False
    repaired: dict[str, list[str]] = field(default_factory=dict)  # name: what was wrong
    pulled: dict[str, str] = field(default_factory=dict)  # name: the cache it came from
    recorded: bool = field(default=True, repr=False, compare=False)  # False: built now,
    # its catalog record left to the caller (`Resolver.resolve(record_target=False)`), who
    # calls `Resolver.record`, which also waits for its spent parts' removal

    @property
    def path(self) -> str:
        return self.store.local_path(self.key)

    @property
    def digest(self) -> str:
        return self.marker.digest

    def files(self) -> Any:
        """The file table (`_files.parquet`) as a DuckDB relation: `.fetchall()`, `.df()`.
        A table damaged since the artifact was resolved is a VerifyError naming it."""
        import duckdb

        table = os.path.join(self.store.tables(self.key), FILES)
        repair = f"repair it with: registry resolve --repair {self.name}"
        damage = local_table_damage(table)
        if damage:
            raise VerifyError(f"{table}: {damage}; {repair}")
        try:
            return duckdb.read_parquet(table)
        except duckdb.Error as exc:
            raise VerifyError(f"{table}: unreadable as a file table "
                              f"({str(exc).splitlines()[0]}); {repair}") from None


class Resolver(Keys):
    """The builder: `resolve` builds exactly what is missing for a name (after looking in
    the caches), through staging, and publishes it with its marker last."""

    def __init__(self, manifests: Manifests, store: Store, catalog: Catalog | None,
                 state_dir: str, *, progress: ProgressFactory | None = None,
                 remote: Remote | None = None,
                 caches: Callable[[], list[Store]] | None = None, lock: Lock | None = None,
                 lock_path: str = LOCK, update_lock: bool = False) -> None:
        super().__init__(manifests, store, state_dir, remote=remote, lock=lock,
                         lock_path=lock_path, update_lock=update_lock)
        # the read-only stores pulled from before building, opened when a build needs them
        self.caches = caches or list
        self.unreachable: set[str] = set()  # caches a status could not read: not asked again
        self.catalog = catalog
        self.progress = progress  # bars for builds, source indexing and cache pulls
        self._removing: list[Thread] = []  # spent parts, removed meanwhile

    def status(self, name: str) -> str:
        """As `Keys.status`, and for a dataset not in the store but in a cache: "in cache
        URL" (the first holding it: what `pull` or `resolve` copies from)."""
        status = super().status(name)
        if status.startswith("missing"):
            key = self.key(name)
            for cache in self.caches():
                from .substituters import holds  # only where a cache is asked

                if cache.url in self.unreachable:
                    continue
                try:
                    if holds(cache, key):
                        return f"in cache {cache.url}"
                except StorageError as exc:  # the status says what is known, and why not more
                    from ..catalog import warn_once

                    self.unreachable.add(cache.url)
                    warn_once(f"cache {cache.url} left out of the statuses: {exc}",
                              about=cache.url)
        return status

    # -- resolve ---------------------------------------------------------------------------

    def resolve(self, name: str, executor: Executor | None = None, *,
                repair: bool = False, record_target: bool = True) -> Resolved:
        """Build what is missing for `name`, each build recorded in the catalog as it ends
        (`name`'s own only with `record_target`). `repair`: first re-verify every built
        artifact it needs (itself and its inputs) and rebuild, in place, those damaged."""
        from ..executors import LocalExecutor
        from .substituters import pulled_from_cache

        built_now = unrecorded = False
        repaired: dict[str, list[str]] = {}
        executor = executor or LocalExecutor()
        prepared = False
        found: dict[str, Marker] = {}  # key: marker, each read once (builds read their inputs')
        pulled: dict[str, str] = {}
        stop = None if repair or not self.caches() else \
            (lambda node: pulled_from_cache(self, node, name, pulled))
        try:  # (a build's spent parts are removed meanwhile: joined by `record`, or below)
            for node in self.closure([name], stop):
                key = self.key(node.name)
                if not repair and (marker := self.marker(node.name, name)) is not None:
                    found[key] = marker
                    continue  # built: one marker read, no lock
                executor.check()  # (a refusal now, not a wait for a lock that never comes)
                with self.store.lock(key):
                    if repair:
                        damage = self._damage(key)
                        if damage == []:
                            continue  # verified: nothing to repair
                        publish = self.store.replace  # over whatever lies there, atomically
                    elif (marker := self.marker(node.name, name)) is not None:
                        found[key] = marker
                        continue  # built (perhaps by another process while we waited)
                    else:
                        damage, publish = None, self.store.commit
                    self._check_buildable(node, key)
                    if not prepared:
                        executor.prepare()  # workers start while the coordinator plans
                        prepared = True
                    found[key] = self._build(node, key, executor, publish, found)
                if damage:
                    repaired[node.name] = damage
                if record_target or node.name != name:
                    self.record(found[key])
                else:
                    unrecorded = True
                built_now = True
        except BaseException:
            self._spent_removed()
            raise
        if not unrecorded:
            self._spent_removed()
        key = self.key(name)
        marker = found.get(key) or self.marker(name)
        assert marker is not None
        return Resolved(name=name, key=key, uri=self.store.uri(key), marker=marker,
                        store=self.store, built_now=built_now, repaired=repaired,
                        pulled=pulled, recorded=not unrecorded)

    def built(self, name: str) -> Resolved:
        """The already-built dataset `name`; BadInputError if it is not built."""
        key = self.key(name)
        marker = self.marker(name)  # a damaged one: VerifyError saying how to repair
        if marker is None:
            unset = self.unset_sources(name)
            if unset:
                raise SourceError(f"{name} is not built in the store {self.store.url} (key "
                                  f"{key}), and source {', '.join(unset)} it is made from is "
                                  "not set on this machine; point it at a copy with: registry "
                                  f"source set {unset[0]} PATH, then: registry resolve {name}")
            raise BadInputError(f"{name} is not built (key {key}); run: registry resolve {name}")
        return Resolved(name, key, self.store.uri(key), marker, self.store)

    def _check_buildable(self, node: DatasetNode, key: str) -> None:
        """A SourceError if `node` must be built here but reads a source not set here (its
        key came from registry.lock): say so, not just that the source is unset."""
        unset = self.unset_sources(node.name, direct=True)
        if unset:
            raise SourceError(
                f"{node.name} (key {key}) is not built in the store {self.store.url}, and "
                f"building it reads source {', '.join(unset)}, which is not set on this "
                f"machine; point it at a copy with: registry source set {unset[0]} PATH")

    def _damage(self, key: str) -> list[str] | None:
        """None: not built; []: verified intact; else what is wrong with the artifact."""
        try:
            if self.store.marker(key) is None:
                return None
        except VerifyError as exc:
            return [str(exc)]
        return self.store.verify(key)

    def _build(self, node: DatasetNode, key: str, executor: Executor,
               publish: Callable[[Staging, Marker], Any],
               found: dict[str, Marker]) -> Marker:
        """Build `node` through staging and `publish` it (the caller holds its lock);
        its marker. `found`: the markers of its built inputs, by key."""
        from .imagechecks import ImageChecks, VerdictParts
        from .resume import FinishedTasks, run_resumable

        recipe = RECIPES[node.recipe]
        derivation = self.derivation(node.name)
        started = time.time()
        phases: dict[str, float] = {}
        clock = time.perf_counter()

        def phase(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            phases[name] = round(now - clock, 3)
            clock = now

        inputs, described, sources = self.inputs(node, found)
        checks = ImageChecks(self.state_dir) if getattr(node.params, "validate_images",
                                                        False) else None
        if checks is not None:
            with contextlib.suppress(OSError):  # only a cache: without it, images are decoded
                checks.mark(inputs.images)
        # a killed build's staging area of this key, with its finished tasks (we hold the
        # lock: no live build writes there), or a fresh one
        staging = self.store.resume(key) or self.store.begin(key)
        spent = f"{staging.path}.spent"  # its parts, put aside (gc's if a kill leaves it)
        keeping = None  # the verdicts' thread (`collect_meanwhile`)
        try:
            with recipe_code(node, recipe.name, "plan"):  # its errors name the dataset
                tasks = recipe.plan(node.params, inputs)
                total = sum(len(t) if hasattr(t, "__len__") else 1 for t in tasks)
            phase("plan")
            # for the file table and the catalog, after the tasks; a process's first DuckDB
            # connection took 21-25 ms to open, a later one 13-15 ms (2 cores): the first too
            import_meanwhile("duckdb", then=lambda duckdb: duckdb.connect().close())
            from ..artifact.finalize import finalize, remove_meanwhile
            from ..artifact.output import Output

            drop = self.store.drop(staging, self.remote)
            finished = FinishedTasks(staging.path, key, tasks) if self.store.resumable \
                else None
            done = finished.load() if finished else {}
            if checks is not None:  # (a task's identity leaves out its verdicts: resume.py)
                planned = tasks
                tasks = self._check_first(node, recipe, executor, inputs, tasks, done, checks,
                                          drop)
                if finished is not None and tasks is not planned:
                    # made again, the plan may differ (webdataset: whole shards where it
                    # planned regions): a killed build's task stands only where it is this
                    # plan's, at its index
                    finished = FinishedTasks(staging.path, key, tasks)
                    done = finished.load()
                phase("checks")
            out = Output(staging.path, "finish")
            verdicts = VerdictParts(staging.path) if checks is not None else None
            try:
                with recipe_code(node, recipe.name, "follow"):
                    follow = None if drop.ranged else recipe.follow(node.params, tasks, out)
                with bar(self.progress, node.name, total) as advance, \
                        recipe_code(node, recipe.name, "run"):
                    results = run_resumable(executor, recipe, node.params, tasks, drop,
                                            advance, guarded(follow, recipe.name),
                                            finished, done, verdicts)
                phase("tasks")
                self.store.gather(staging)
                if checks is not None:
                    with contextlib.suppress(OSError, ValueError):  # a cache, as above
                        keeping = checks.collect_meanwhile(staging.path, verdicts)
                with recipe_code(node, recipe.name, "finish"):
                    finish(recipe, node.params, inputs, results, out, tasks)
            finally:
                out.close()
            phase("finish")
            facts = finalize(staging.path, spent)
            self._removing.append(remove_meanwhile(spent))
            if keeping is not None:
                keeping.join()  # (the cache holds them before the build is published)
            phase("index")
            splits = facts.get("splits")
            marker = Marker(
                key=key, digest=facts["digest"], files=facts["files"], bytes=facts["bytes"],
                skipped=facts["skipped"], name=node.name, recipe=derivation.recipe,
                version=derivation.version, params=node.params.model_dump(mode="json"),
                inputs=described, sources=tuple(sources),
                card=node.card,  # as the manifest said at build time; never keyed
                synthetic=any(s["synthetic"] for s in sources) or any(
                    self._synthetic(i, found) for i in described.values()),
                label_values=any(m.values is not None for sets in inputs.images.values()
                                 for m in sets.values()),
                splits=None if splits is None else tuple(splits),
                built={"at": started, "seconds": round(time.time() - started, 3),
                       "phases": phases,
                       "executor": type(executor).__name__,
                       "jobs": executor.jobs,
                       "host": socket.gethostname(), "registry": __version__})
            if publish(staging, marker) is False:  # another builder committed first
                return self.store.marker(key) or marker  # theirs is the artifact's record
        except BaseException:
            from ..core.interrupts import HeldInterrupts

            # a second Ctrl-C waits for the cleanup (it stopped the removal halfway, and
            # left the staging area to gc), then is raised, unless one is on its way out
            with HeldInterrupts():
                self.store.abort(staging)
                shutil.rmtree(spent, ignore_errors=True)  # (put aside, remover not begun)
                if keeping is not None:
                    keeping.join()  # (a cache write: milliseconds; not left behind)
            raise
        return marker

    def _check_first(self, node: DatasetNode, recipe: Any, executor: Executor, inputs: Inputs,
                     tasks: list[Any], done: dict[int, Any], checks: ImageChecks, drop: Any
                     ) -> list[Any]:
        """`tasks`, or where those still to run (not `done` by a killed build) would leave
        workers idle, the same plan made again after their images were checked on every
        worker (engine/checkfirst.py)."""
        from .checkfirst import check_first, to_check_first

        chunks = to_check_first(executor, [t for i, t in enumerate(tasks) if i not in done])
        if not chunks:
            return tasks
        images = sum(len(chunk) for chunk in chunks)
        with bar(self.progress, f"{node.name}: image checks", images, "images") as advance, \
                recipe_code(node, recipe.name, "run"):  # what fails names the dataset
            verdicts = check_first(executor, chunks, drop, advance)
        with contextlib.suppress(OSError):  # only a cache: the verdicts are marked all the same
            checks.add(verdicts)
        with contextlib.suppress(OSError):  # unmarked, the tasks decode their images again
            checks.mark(inputs.images, also=verdicts)
        with recipe_code(node, recipe.name, "plan"):
            return recipe.plan(node.params, inputs)

    def _synthetic(self, ref: InputRef, found: dict[str, Marker]) -> bool:
        if ref.kind != "dataset":
            return False
        marker = found.get(ref.key) or self.store.marker(ref.key)
        return bool(marker and marker.synthetic)

    def record(self, marker: Marker) -> None:
        """Index a committed artifact in the catalog (a busy or corrupt one: a warning),
        then wait for the removal of the parts the builds before it put aside."""
        if self.catalog is not None:
            self._index(self.catalog, marker)
        self._spent_removed()

    def _index(self, catalog: Catalog, marker: Marker) -> None:
        from ..catalog import warn_once

        key = marker.key
        try:
            catalog.record_artifact(marker, self.store.uri(key), self.store.url,
                                    self.store.tables(key))
        except CatalogBusyError as exc:  # the store is the truth; the catalog catches up
            warn_once(f"{exc}; the next command that writes indexes {marker.name}",
                      about=str(exc))
        except CatalogCorruptError as exc:  # published all the same: a warning, not a failure
            warn_once(str(exc))

    def _spent_removed(self) -> None:
        """Wait for the removal of the parts `finalize` put aside (`remove_meanwhile`)."""
        while self._removing:
            self._removing.pop().join()

    def inputs(self, node: DatasetNode, found: dict[str, Marker] | None = None
               ) -> tuple[Inputs, dict[str, InputRef], list[dict[str, Any]]]:
        """What `node`'s recipe reads, how its marker records each input, and the sources
        it reads. `found`: markers already read, by key (each built input's is read once)."""
        from ..sources.index import member_sets

        recipe = RECIPES[node.recipe]
        images: dict[str, dict[str, MemberSet]] = {}
        files: dict[str, str] = {}
        described: dict[str, InputRef] = {}
        sources: list[dict[str, Any]] = []
        derivation = self.derivation(node.name)
        for role, target in node.inputs.items():
            dep: Node = self.manifests.get(target)
            described[role] = InputRef(dep.kind, target, derivation.inputs[role])
            if recipe.inputs[role].kind == "file":
                assert isinstance(dep, FileNode)
                files[role] = dep.path
            elif isinstance(dep, SourceNode):
                info = self.source_info(target)
                images[role] = member_sets(info)
                sources.append({"fingerprint": info.fingerprint, "name": info.name,
                                "layout": info.layout, "files": info.files, "bytes": info.bytes,
                                "synthetic": info.synthetic})
            else:
                images[role] = self._artifact_members(target, (found or {}).get(self.key(target)))
        return Inputs(images=images, files=files), described, sources

    def _artifact_members(self, name: str, marker: Marker | None = None
                          ) -> dict[str, MemberSet]:
        """The files of built dataset `name`, as the images another build reads (see
        `engine.inputs.artifact_members`)."""
        from .inputs import artifact_members

        key = self.key(name)
        return artifact_members(name, key, self.store.member_root(key),
                                os.path.join(self.store.tables(key), FILES),
                                marker or self.marker(name))

