"""Safe gc: what a store keeps (its roots and everything they are made from) and what it
may delete, named.

Roots, each with the reason gc gives for keeping it:

- every manifest dataset whose key can be computed now (a source set here, or its key in
  registry.lock); one that cannot be computed keeps everything: what it names is unknown;
- every dataset key in registry.lock;
- pins (`registry pin NAME`), kept as store records `.pins/<key>.json`: in the store, not
  this clone's state, so gc of the store run from any clone sharing it sees them;
- the inputs of job runs (store records `.runs/`) recorded in the last `keep_days`;
- the locks that projects pushed to this store (store records `.roots/<project>.json`,
  written by `registry push`): gc of a shared store keeps what any teammate's lock names.

The inputs of a kept artifact (its marker's dataset inputs) are kept too, at any depth.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog import warn_once
from ..errors import BadInputError, CatalogBusyError, LockMismatchError, SourceError, VerifyError
from ..manifest import DatasetNode
from . import catalog_sync

if TYPE_CHECKING:
    from ..stores import Store
    from .project import Project

DAY = 86400.0
KEEP_DAYS = 30.0  # the default of `registry gc --keep-days`


@dataclass
class Artifact:
    """A committed artifact as gc sees it: `name` from its marker ("" if unreadable)."""

    key: str
    name: str
    bytes: int
    why: list[str] = field(default_factory=list)  # why it is kept (empty: deleted)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "bytes": self.bytes, "why": self.why}


@dataclass
class GcReport:
    """What gc removed (or, with `dry_run`, would remove) and what it kept and why.
    `unknown`: datasets whose keys cannot be computed here; while there are any, no
    artifact is deleted. `busy`: artifacts a build on this machine held, left alone."""

    dry_run: bool
    staging: list[str] = field(default_factory=list)
    deleted: list[Artifact] = field(default_factory=list)
    kept: list[Artifact] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "staging": self.staging,
                "deleted": [a.as_dict() for a in self.deleted],
                "kept": [a.as_dict() for a in self.kept], "unknown": self.unknown,
                "busy": self.busy}


def roots(reg: Project, keep_days: float) -> tuple[dict[str, list[str]], list[str]]:
    """({key: why it is a root}, the datasets whose keys cannot be computed here)."""
    found: dict[str, list[str]] = {}

    def add(key: Any, why: str) -> None:
        if isinstance(key, str) and key:
            found.setdefault(key, []).append(why)

    unknown = []
    for node in reg.manifests.datasets():
        try:
            add(reg.key(node.name), f"manifest dataset {node.name}")
        except LockMismatchError:
            raise  # a set source that is not the locked copy: say so, delete nothing
        except SourceError:
            unknown.append(node.name)
    if os.path.exists(reg.lock_path):
        for name, locked in sorted(reg.resolver.lock.datasets.items()):
            add(locked.key, f"registry.lock ({name})")
    store = reg.store
    for pin in store.records("pins"):
        add(pin.get("key"), f"pinned ({pin.get('name') or 'by key'})")
    cutoff = time.time() - keep_days * DAY
    for run in store.records("runs"):
        at = run.get("created_at")
        if not isinstance(at, (int, float)) or at < cutoff:
            continue
        for entry in run.get("inputs") or []:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                add(entry[1], f"read by run {run.get('run_id')} ({run.get('job')}, "
                    f"{time.strftime('%Y-%m-%d', time.gmtime(at))})")
    for root in store.records("roots"):
        project = root.get("project", "?")
        if project == project_id(reg) and root.get("via") == "lock":
            continue  # this project's own lock, recorded: the lock file itself is newer
        verb = "lock pushed by" if root.get("via") == "push" else "lock of"
        for name, key in sorted((root.get("datasets") or {}).items()):
            add(key, f"{verb} {project} ({name})")
        for name, key in sorted((root.get("pushed") or {}).items()):
            add(key, f"pushed by {project} ({name})")
    return found, unknown


def plan(reg: Project, keep_days: float) -> GcReport:
    """What gc would do now (nothing is changed)."""
    report = GcReport(dry_run=True, staging=list(reg.store.leftovers()))
    why, report.unknown = roots(reg, keep_days)
    artifacts: dict[str, Artifact] = {}
    inputs: dict[str, list[str]] = {}
    for key in reg.store.committed():
        try:
            marker = reg.store.marker(key)
        except VerifyError as exc:  # unreadable: what it is made from is unknown, keep it
            artifacts[key] = Artifact(key, "", 0, [f"damaged, not judged ({exc}); "
                                                   "see: registry verify"])
            continue
        if marker is None:  # deleted since listed
            continue
        artifacts[key] = Artifact(key, marker.name, marker.bytes)
        inputs[key] = [ref.key for ref in marker.inputs.values() if ref.kind == "dataset"]
    todo = [k for k in why if k in artifacts]
    for key in todo:
        artifacts[key].why.extend(why[key])
    while todo:  # the closure: what a kept artifact is made from is kept
        key = todo.pop()
        for child in inputs.get(key, []):
            if child in artifacts:
                fresh = not artifacts[child].why
                artifacts[child].why.append(f"input of {artifacts[key].name or key}")
                if fresh:
                    todo.append(child)
    for artifact in artifacts.values():
        if artifact.why or report.unknown:
            if not artifact.why:
                artifact.why.append("kept while keys are unknown: "
                                    + ", ".join(report.unknown[:5]))
            report.kept.append(artifact)
        else:
            report.deleted.append(artifact)
    return report


def collect(reg: Project, keep_days: float, *, dry_run: bool,
            only: set[str] | None = None) -> GcReport:
    """Plan, then (unless `dry_run`) sweep the staging leftovers and delete what no root
    keeps. `only`: delete no key outside it (what the user was shown and agreed to)."""
    report = plan(reg, keep_days)
    if only is not None:
        report.deleted = [a for a in report.deleted if a.key in only]
    if dry_run:
        return report
    report.dry_run = False
    for path in report.staging:
        reg.store.remove_leftover(path)
    if not report.deleted:
        return report
    catalog_sync.upkeep_once(reg, strict=True)  # a corrupt catalog stops gc before it deletes
    done = []
    for artifact in report.deleted:
        if not _delete_unless_building(reg.store, artifact.key):
            report.busy.append(artifact.key)
            continue
        done.append(artifact)
    report.deleted = done
    if done:
        try:  # killed or busy before this: the next writing command forgets them
            reg.catalog.forget_artifacts([a.key for a in done])
        except CatalogBusyError as exc:
            warn_once(f"{exc}; the next command that writes forgets the deleted artifacts",
                      about=str(exc))
    return report


def _delete_unless_building(store: Store, key: str) -> bool:
    """Delete `key` under its build lock; False if a build on this machine holds it (a
    repair, say): that build's artifact is left alone."""
    from filelock import Timeout

    try:
        with store.lock(key, timeout=0):
            if store.marker(key) is not None:
                store.delete(key)
    except Timeout:
        return False
    return True


# -- pins --------------------------------------------------------------------------------

def pin(reg: Project, names: list[str]) -> list[tuple[str, str]]:
    """Pin the built artifacts of `names`: gc keeps them whatever the manifests say.
    Every name is checked built before any pin is written. [(name, key)]."""
    if not names:
        raise BadInputError("pin: name at least one dataset")
    keys = {}
    for name in dict.fromkeys(names):
        node = reg.manifests.get(name)
        if not isinstance(node, DatasetNode):
            raise BadInputError(f"pin: {name} is a {node.kind}, not a dataset")
        keys[name] = reg.key(name)
        if reg.resolver.marker(name) is None:
            raise BadInputError(f"pin: {name} (key {keys[name]}) is not built in "
                                f"{reg.store.url}; nothing was pinned")
    for name, key in keys.items():
        reg.store.put_record("pins", key, {"key": key, "name": name, "pinned_at": time.time(),
                                           "project": project_id(reg)})
    return list(keys.items())


def unpin(reg: Project, targets: list[str]) -> list[tuple[str, str]]:
    """Remove the pins of `targets`: a dataset name (every pin recorded for it, whatever
    key: a pin made before a source switch too) or a pinned key. [(name, key)] removed;
    a target with no pin is an error naming it, and nothing is removed."""
    if not targets:
        raise BadInputError("unpin: name at least one dataset or pinned key")
    pins = list(reg.store.records("pins"))
    doomed: dict[str, str] = {}
    for target in dict.fromkeys(targets):
        hits = {p["key"]: p.get("name", "") for p in pins
                if target in (p.get("name"), p.get("key")) and isinstance(p.get("key"), str)}
        if not hits:
            raise BadInputError(f"unpin: {target} is not pinned in {reg.store.url} (see: "
                                "registry gc --dry-run); nothing was unpinned")
        doomed.update(hits)
    for key in doomed:
        reg.store.delete_record("pins", key)
    return [(name, key) for key, name in doomed.items()]


# -- shared-store roots -------------------------------------------------------------------

def project_id(reg: Project) -> str:
    """This clone, as a record name: its folder's name and a hash of host and path."""
    import re

    where = f"{socket.gethostname()}:{reg.root}"
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", os.path.basename(reg.root.rstrip(os.sep)))[:40]
    return f"{slug or 'project'}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def record_roots(reg: Project, target: Store, pushed: dict[str, str], via: str) -> None:
    """This project's lock (its dataset keys; without a lock, every key computable here)
    and what it pushed, as `.roots/<project>.json` in `target`, replacing its previous
    one: gc of `target`, from any other project, keeps all of it. `via`: "push" (after
    `registry push`) or "lock" (the lock was written: its own store, which other projects
    may write into too)."""
    if os.path.exists(reg.lock_path):
        datasets = {n: d.key for n, d in reg.resolver.lock.datasets.items()}
    else:
        datasets = {}
        for node in reg.manifests.datasets():
            try:
                datasets[node.name] = reg.key(node.name)
            except SourceError:
                continue
    target.put_record("roots", project_id(reg), {
        "project": project_id(reg), "root": reg.root, "host": socket.gethostname(),
        "via": via, "at": time.time(), "datasets": dict(sorted(datasets.items())),
        "pushed": dict(sorted(pushed.items()))})
