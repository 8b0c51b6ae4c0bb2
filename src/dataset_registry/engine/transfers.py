"""`registry push` and `registry pull`: artifacts copied between this registry's store and
others, by key (substituters.py does the copying). Neither ever builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BadInputError
from ..manifest import DatasetNode
from .gc import record_roots
from .substituters import Transferred, holds, transfer

if TYPE_CHECKING:
    from .project import Project


def _keys(reg: Project, names: list[str], command: str) -> dict[str, str]:
    if not names:
        raise BadInputError(f"{command}: name at least one dataset")
    for name in names:
        node = reg.manifests.get(name)
        if not isinstance(node, DatasetNode):
            raise BadInputError(f"{command}: {name} is a {node.kind}, not a dataset")
    return {name: reg.key(name) for name in dict.fromkeys(names)}


def push(reg: Project, names: list[str], to: str) -> list[Transferred]:
    """Every name is checked built here before anything is uploaded; then this project's
    lock is recorded under `to`'s roots (see gc.record_roots)."""
    keys = _keys(reg, names, "push")
    target = reg.open_store(to)
    if target is reg.store:
        raise BadInputError(f"push: {to} is this registry's own store")
    unbuilt = [f"{n} (key {k})" for n, k in keys.items() if reg.resolver.marker(n) is None]
    if unbuilt:
        raise BadInputError(f"push: not built in {reg.store.url}: {', '.join(unbuilt)}; build "
                            "with: registry resolve NAME (nothing was pushed)")
    done = [transfer(reg.store, target, key, progress=reg.resolver.progress,
                     label=f"pushing {name}") for name, key in keys.items()]
    record_roots(reg, target, keys, "push")  # gc of `target` keeps this project's lock
    return done


def pull(reg: Project, names: list[str], source: str | None) -> list[Transferred]:
    """Each name from `source`, or from the first cache holding it. Where each comes from
    is settled before anything is copied: one missing everywhere fails the whole pull,
    naming what is missing and where it was looked for, and nothing changes."""
    keys = _keys(reg, names, "pull")
    stores = [reg.open_store(source)] if source else reg.caches
    if not stores:
        raise BadInputError("pull: no cache to pull from: name one with --from URL or "
                            "--cache URL, DATASET_REGISTRY_CACHES, or caches = [...] in "
                            "registry.toml")
    plan = {}
    missing = []
    for name, key in keys.items():
        if reg.resolver.marker(name) is not None:
            plan[name] = None  # here already
            continue
        found = next((s for s in stores if holds(s, key)), None)
        if found is None:
            missing.append(f"{name} (key {key})")
        plan[name] = found
    if missing:
        where = ", ".join(s.url for s in stores)
        raise BadInputError(f"pull: not in {where}: {', '.join(missing)}; pull never builds "
                            "(build with: registry resolve NAME; nothing was pulled)")
    done = []
    for name, key in keys.items():
        cache = plan[name]
        if cache is None:
            done.append(Transferred(key, reg.store.url, reg.store.url, present=True))
            continue
        done.append(transfer(cache, reg.store, key, progress=reg.resolver.progress,
                             label=f"pulling {name} from {cache.url}"))
        marker = reg.store.marker(key)
        if marker is not None:
            reg.resolver.record(marker)  # the catalog knows it as if built here
    return done
