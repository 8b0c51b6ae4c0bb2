"""The Registry: a project's manifests, store, catalog and state, and what the CLI calls."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog
from ..config import locations
from ..core.remote import Remote, env_options
from ..engine import catalog_sync, keycache, lineage, locking, sources, verify
from ..engine import gc as gc_
from ..engine.build import ProgressFactory, Resolved, Resolver
from ..engine.lineage import LineageNode
from ..engine.lockfile import LOCK
from ..engine.verify import raise_on_problems  # noqa: F401 - importable from here, as before
from ..manifest import Manifests, load_manifests
from ..reports import diff as diff_
from ..stores import Store, open_store
from . import runs

if TYPE_CHECKING:
    from ..executors import Executor
    from ..jobs.spec import RenderedJob
    from ..sources.index import SourceInfo

# Building (engine.resolving: the executors), transfers and the audit and card reports
# (numpy, the sources' member sets, thumbnails) are imported by the methods that use them:
# `registry show`, `lineage` and `list` open a Registry for keys, status and markers alone.


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]

    def fetchall(self) -> list[tuple]:
        return self.rows


class Registry:
    """A registry rooted at a folder: `manifests/`, `registry/` (store), `catalog.duckdb`.

    Each location can be overridden by argument or by the environment variables
    DATASET_REGISTRY_MANIFESTS, DATASET_REGISTRY_STORE, DATASET_REGISTRY_CATALOG.
    `registry.lock` in the root gives the keys of sources not set here; `update_lock`:
    a set source whose fingerprint differs from the lock's is locked anew, not refused.
    `check_recipes=False`: each dataset is checked against its recipe when first used, not
    every one when the manifests load (what a reader of a few names wants: `registry show`
    imports only the recipes of what it shows; a misfit it uses is the same error).
    """

    def __init__(self, root: str = ".", *, manifests: str | None = None, store: str | None = None,
                 catalog: str | None = None, state: str | None = None,
                 storage_options: dict[str, Any] | None = None,
                 progress: ProgressFactory | None = None,
                 caches: list[str] | None = None, update_lock: bool = False,
                 check_recipes: bool = True) -> None:
        where = locations(root, manifests=manifests, store=store, catalog=catalog, state=state)
        self.root = where.root
        self.lock_path = os.path.join(where.root, LOCK)
        self.update_lock = update_lock
        self.check_recipes = check_recipes
        self.manifests_dir = where.manifests
        self.store_url = where.store
        self.catalog = Catalog(where.catalog)
        self.state_dir = where.state
        self.progress = progress
        # never stored anywhere but in memory (see remote.py)
        self.remote = Remote(env_options() | dict(storage_options or {}))
        self._manifests: Manifests | None = None
        self._store: Store | None = None
        self._resolver: Resolver | None = None
        self.catalog_checked = False
        self._cache_urls = caches  # None: DATASET_REGISTRY_CACHES, else registry.toml's
        self._caches: list[Store] | None = None

    @classmethod
    def open(cls, root: str = ".", **kwargs: Any) -> Registry:
        return cls(root, **kwargs)

    @property
    def manifests(self) -> Manifests:
        if self._manifests is None:
            from .. import plugins

            plugins.load_project(self.root)  # its registry.toml's plugins, before parsing
            # every dataset bound to its recipe before a command acts: a misfit anywhere
            # stops it before it writes (parsing alone would check each on first use)
            manifests = load_manifests(self.manifests_dir)
            self._manifests = manifests.check_recipes() if self.check_recipes else manifests
        return self._manifests

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store_url, self.remote,
                                     os.path.join(self.state_dir, "remote-store"))
        return self._store

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            from ..engine import lockfile

            self._resolver = Resolver(self.manifests, self.store, self.catalog, self.state_dir,
                                      progress=self.progress, remote=self.remote,
                                      caches=lambda: self.caches,
                                      lock=lockfile.load(self.lock_path),
                                      lock_path=self.lock_path, update_lock=self.update_lock)
        return self._resolver

    @property
    def caches(self) -> list[Store]:
        """The read-only stores `resolve` pulls from before building, in order (see
        substituters.cache_urls)."""
        if self._caches is None:
            from ..engine.substituters import cache_urls

            self._caches = [self.open_store(url) for url in cache_urls(self.root,
                                                                       self._cache_urls)]
        return self._caches

    def open_store(self, url: str) -> Store:
        """Another store (a cache, a push target), reached with this registry's options."""
        if url.rstrip("/") == self.store_url.rstrip("/"):
            return self.store
        return open_store(url, self.remote, os.path.join(self.state_dir, "other-stores"))

    def push(self, names: list[str], to: str) -> list[Any]:
        """Upload the built artifacts of `names` to the store at `to`, marker last,
        skipping those there already; a `substituters.Transferred` for each."""
        from ..engine import transfers

        return transfers.push(self, names, to)

    def pull(self, names: list[str], source: str | None = None) -> list[Any]:
        """Copy the artifacts of `names` into this store from `source` (None: the first
        of the caches holding each); never builds. A `substituters.Transferred` each."""
        from ..engine import transfers

        return transfers.pull(self, names, source)

    # -- datasets --------------------------------------------------------------------------

    def resolve(self, name: str, *, jobs: int | None = None, executor: str | Executor | None = None,
                repair: bool = False) -> Resolved:
        """Build what is missing for `name` and return where it lives. `repair`: re-verify
        `name`'s artifact and its inputs' first, and rebuild in place those damaged
        (`Resolved.repaired` says which, and what was wrong)."""
        from ..engine import resolving

        return resolving.resolve(self, name, jobs=jobs, executor=executor, repair=repair)

    def write_lock(self) -> tuple[bool, dict[str, str]]:
        """Write registry.lock: every source set here and every dataset whose key can be
        computed (sources not set here keep their locked entries). Returns (whether the
        file changed, {name: why it could not be locked})."""
        return locking.write(self)

    def key(self, name: str) -> str:
        return self.resolver.key(name)

    def save_key_cache(self, names: list[str] | None = None) -> None:
        """Remember the keys of `names` and every dataset they are made from (None: every
        computable key), for the CLI's fast path (see engine/keycache.py)."""
        keycache.save_keys(self, names)

    def status(self, name: str) -> str:
        return self.resolver.status(name)

    def names(self, tags: list[str] | None = None) -> list[str]:
        nodes = self.manifests.by_tags(tags) if tags else list(self.manifests.nodes.values())
        return sorted(n.name for n in nodes)

    def built(self, name: str) -> Resolved:
        """The already-built dataset `name`; BadInputError if it is not built."""
        return self.resolver.built(name)

    def lineage(self, name: str, role: str = "") -> LineageNode:
        """What `name` is made from, down to its sources and shipped files (`role`: the
        role the tree's root plays, shown on it)."""
        return lineage.lineage(self, name, role)

    def diff(self, a: str, b: str, *, limit: int = diff_.LIMIT) -> dict[str, Any]:
        """What differs between built datasets or artifact keys `a` and `b` (JSON-able: the
        README's "Comparing builds"); at most `limit` names listed per split and category."""
        return diff_.diff(self, a, b, limit=limit)

    def report(self, name: str, *, near: bool = False) -> str:
        """The dataset card of built dataset `name`: one static, self-contained HTML page,
        with its leak audit (`near`: near copies too, as `audit` finds them)."""
        from ..reports import card

        return card.report(self, name, near=near)

    # -- sources ---------------------------------------------------------------------------

    def set_source(self, name: str, location: str) -> SourceInfo:
        """Point source `name` at `location` on this machine (checked before it is saved)."""
        return sources.set_source(self, name, location)

    def check_source(self, name: str, *, md5: bool = False, force: bool = False
                     ) -> SourceInfo:
        return sources.check_source(self, name, md5=md5, force=force)

    # -- training jobs ---------------------------------------------------------------------

    def render_job(self, name: str, flavor: str | None = None, *,
                   cluster_store: str | None = None, check: bool = False) -> RenderedJob:
        """The job spec of training manifest `name` (a `runs` row with action 'render');
        `check` validates it against the Kubernetes / Kubeflow models first."""
        return runs.render_job(self, name, flavor, cluster_store=cluster_store, check=check)

    def submit_job(self, name: str, flavor: str | None = None, *,
                   cluster_store: str | None = None, kubectl: str | None = None
                   ) -> tuple[RenderedJob, str]:
        """Render and `kubectl apply` the job spec (a `runs` row with action 'submit')."""
        return runs.submit_job(self, name, flavor, cluster_store=cluster_store,
                               kubectl=kubectl)

    # -- catalog ---------------------------------------------------------------------------

    def sync_catalog(self, *, force: bool = False) -> dict[str, str]:
        """Bring the catalog up to date: the manifests' nodes, keys and edges (when the
        manifests, settings or code changed since the last sync, or `force`), and the
        store's artifacts (index what is committed but missing, forget what is gone).
        Returns the artifacts that could not be indexed: {key: why}."""
        return catalog_sync.sync(self, self.catalog, force=force)

    def sql(self, query: str, params: list[Any] | None = None, *, sync: bool = False,
            timeout: float | None = 60.0) -> QueryResult:
        """A read-only provenance query on the catalog (on a private copy once a writer
        comes: see Catalog.query), stopped after `timeout` seconds (QueryTimeoutError). It
        never writes: the commands that change things keep the catalog current (`sync`
        runs `sync_catalog` first, for the API)."""
        if sync:
            self.sync_catalog()
        return QueryResult(*self.catalog.query(query, params or [], timeout=timeout))

    def rebuild_catalog(self) -> int:
        """Re-index every committed artifact and run record into a new catalog file, renamed
        over the old one (a corrupt one is moved aside to `<catalog>.corrupt-<time>`).
        Returns how many artifacts it indexed; VerifyError names those it could not (the
        rest are indexed, and the new catalog is in place)."""
        return catalog_sync.rebuild(self)

    # -- reports ---------------------------------------------------------------------------

    def audit(self, name: str, *, near: bool = True, **options: Any) -> dict[str, Any]:
        """The leak audit of source or built dataset `name` (reports/audit.py: the JSON shape;
        `options`: threshold, jobs): exact and near copies across splits, class balance,
        undecodable images; `leak` says whether any image is in two splits."""
        from ..reports import audit

        return audit.audit(self, name, near=near, **options)

    # -- maintenance -----------------------------------------------------------------------

    def verify(self, names: list[str] | None = None) -> dict[str, list[str]]:
        """Check artifacts against their records: {name or key: problems}. A damaged one
        (even its marker or file table) is reported with the rest, never raised."""
        return verify.verify(self, names)

    def gc(self, *, dry_run: bool = False, keep_days: float = gc_.KEEP_DAYS,
           only: set[str] | None = None) -> gc_.GcReport:
        """Sweep crashed builds' staging areas and delete the artifacts no root keeps: the
        manifests' keys, registry.lock's, pins, the inputs of job runs of the last
        `keep_days`, the locks pushed to this store (see engine/gc.py), and all they are made
        from. `only`: delete nothing outside these keys (what the user agreed to)."""
        return gc_.collect(self, keep_days, dry_run=dry_run, only=only)

    def pin(self, names: list[str]) -> list[tuple[str, str]]:
        """Keep the built artifacts of `names` through gc, whatever the manifests say
        later (a store record, seen by gc from any clone). [(name, key)]."""
        return gc_.pin(self, names)

    def unpin(self, targets: list[str]) -> list[tuple[str, str]]:
        """Remove the pins of dataset names (every key pinned for each) or pinned keys."""
        return gc_.unpin(self, targets)

