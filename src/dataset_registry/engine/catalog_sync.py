"""Keeping the catalog in step: the manifests' nodes, keys and edges, the store's artifacts
and run records. The store is the truth; the catalog is an index rebuilt from it."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog, warn_once
from ..errors import BadInputError, CatalogBusyError, CatalogCorruptError, VerifyError
from ..manifest import DatasetNode, SourceNode

if TYPE_CHECKING:
    from .project import Project


def sync(reg: Project, catalog: Catalog, *, force: bool) -> dict[str, str]:
    """Index the nodes (when the manifests, settings or code changed, or `force`) and the
    committed artifacts `catalog` lacks; forget what the store no longer has. Returns the
    artifacts that could not be indexed: {key: why}."""
    from ..core.keys import hash_bytes
    from . import keycache

    # the key cache's stat checks of manifests, source settings and code, and the sources'
    # fingerprints as last computed or locked (cheap: no source is read, or even stat-ed)
    checks = keycache.global_checks(reg.manifests_dir, reg.state_dir)
    fingerprints = {}
    memo: dict[str, str | None] = {}
    for node in reg.manifests.nodes.values():
        if isinstance(node, SourceNode):
            fingerprints[node.name] = reg.resolver.indexed_key(node.name, memo)
    signature = hash_bytes(json.dumps([checks, fingerprints], sort_keys=True).encode())
    known, synced = catalog.state(reg.store.url)  # before listing the store: see below
    if force or synced != signature:
        catalog.sync_nodes(*node_rows(reg), signature)
    # An artifact in the catalog was committed before we read the catalog, so it is
    # in the listing unless it was deleted since: what the listing lacks is gone.
    committed = set(reg.store.committed())
    damaged: dict[str, str] = {}
    for key in sorted(committed - known):
        try:
            marker = reg.store.marker(key)
            if marker is not None:
                catalog.record_artifact(marker, reg.store.uri(key), reg.store.url,
                                        reg.store.tables(key))
        except BadInputError:
            continue  # deleted since the listing
        except VerifyError as exc:
            damaged[key] = str(exc)
        except (ValueError, KeyError, TypeError) as exc:
            damaged[key] = f"artifact {key}: its marker is damaged: {exc!r}"
    if known - committed:
        catalog.forget_artifacts(sorted(known - committed))
    return damaged


def sync_runs(reg: Project, catalog: Catalog) -> None:
    """Index the store's run records the catalog lacks."""
    have = catalog.run_ids()
    for record in reg.store.records("runs"):
        if record.get("run_id") not in have:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                catalog.record_run(record)


def node_rows(reg: Project) -> tuple[list[dict[str, Any]], list[tuple], list[Any]]:
    """The catalog's node rows, edges (from key, role, to key, kind, name) and source infos,
    from keys already computed and sources as last fingerprinted: refreshing the index
    after a manifest edit never reads a source (a touched 150 GB tar is not re-read)."""
    rows, edges, infos = [], [], []
    memo: dict[str, str | None] = {}
    for node in reg.manifests.nodes.values():
        key = reg.resolver.indexed_key(node.name, memo)
        row = {"name": node.name, "kind": node.kind, "manifest": node.file,
               "line": node.line, "tags": node.tags, "description": node.description,
               "key": key, "card": node.card}
        if isinstance(node, DatasetNode):
            from ..recipes import RECIPES

            row |= {"recipe": node.recipe, "version": RECIPES[node.recipe].version,
                    "params": node.params.model_dump(mode="json")}
            if key:
                for r, t in node.inputs.items():
                    t_key = reg.resolver.indexed_key(t, memo)
                    edges.append((key, r, t_key, reg.manifests.get(t).kind, t))
        elif isinstance(node, SourceNode) and key:
            info = reg.resolver.last_known_source(node.name)
            if info is not None:  # None: its key is registry.lock's (not set here)
                infos.append(info)
        rows.append(row)
    return rows, edges, infos


def upkeep_once(reg: Project, *, strict: bool, runs: bool = False) -> None:
    """`upkeep`, once per project object: from the commands that write."""
    if reg.catalog_checked:
        return
    reg.catalog_checked = True
    upkeep(reg, strict=strict, runs=runs)


def upkeep(reg: Project, *, strict: bool, runs: bool = False) -> None:
    """Sync and reconcile `reg`'s catalog (its commands that write call this once). A busy
    catalog is a warning (the next command catches up); a corrupt one fails the command
    unless `strict` is off (a resolve that published: it warns). What killed rebuilds left
    is removed first."""
    remove_dead_rebuilds(reg.catalog)
    try:
        damaged = sync(reg, reg.catalog, force=False)
        if runs:
            sync_runs(reg, reg.catalog)
    except CatalogBusyError as exc:  # said once, whichever writer met it first
        warn_once(f"{exc}; the next command that writes indexes what is missing",
                  about=str(exc))
        return
    except CatalogCorruptError as exc:
        if strict:
            raise
        warn_once(str(exc))
        return
    for why in damaged.values():
        warn_once(f"not in the catalog: {why} (see `registry verify`)")


def rebuild(reg: Project) -> int:
    """Re-index every committed artifact and run record into a new catalog file, renamed
    over the old one (a corrupt one is moved aside to `<catalog>.corrupt-<time>`).
    Returns how many artifacts it indexed; VerifyError names those it could not (the rest
    are indexed, and the new catalog is in place)."""
    damaged: dict[str, str] = {}
    count = 0

    def fill(new: Catalog) -> None:
        damaged.update(sync(reg, new, force=True))
        sync_runs(reg, new)

    def catch_up(new: Catalog) -> None:  # under the writers' lock: what they added
        nonlocal count
        damaged.clear()
        damaged.update(sync(reg, new, force=False))
        sync_runs(reg, new)
        count = len(new.state(reg.store.url)[0])

    remove_dead_rebuilds(reg.catalog)
    aside = reg.catalog.rebuild(fill, catch_up)
    reg.catalog_checked = True  # in step now: this project's writes need no upkeep
    if aside:
        warn_once(f"the corrupt catalog was moved aside to {aside}")
    if damaged:
        raise VerifyError(f"catalog rebuilt with {count} artifact(s) into "
                          f"{reg.catalog.path}; not indexed, damaged in the store:\n" +
                          "\n".join(damaged[k] for k in sorted(damaged)))
    return count


def remove_dead_rebuilds(catalog: Catalog) -> None:
    """Remove the files of killed `registry catalog rebuild`s, saying which."""
    removed = catalog.remove_dead_rebuilds()
    if removed:
        warn_once("removed what a killed `registry catalog rebuild` left: " +
                  ", ".join(removed))
