"""Remembered answers of `registry show`, `lineage` and `list`, replayed while provably
current: such a command in ~0.1 s instead of ~0.35 s.

What these commands print is a function of the manifests, the package's code, the source
settings, registry.toml, registry.lock, the sources and shipped files the names are made
from, outside recipe code (all of which the key cache stat-checks already: see
engine/keycache.py), the plugins installed, and, live, the store's markers of the datasets
shown. Opening a Registry to recompute it imports pydantic, the manifest models, the engine
and the recipes of what is shown (~0.2 s), so the full path remembers its answer in
`<state>/answers.json` with all of that: the key cache's global checks, the stat of the
folders distributions install into, of registry.lock and of every source and file under the
names, and the state of the marker of each dataset shown ("missing", "damaged", or a digest
of the parsed marker). A replay re-checks every one of them first; any difference and the
command takes the full path, which remembers the new answer. As with the key cache, a source
changed in the instant between the full path's fingerprint and its stat is the one window
left.

Not remembered (always the full path): a remote store (a marker read is a request),
remote sources, storage options, caches (a missing dataset's status names the cache
holding it, which only asking the cache can tell), an answer that wrote to stderr
(`list`'s damaged rows). Like keycache, this module stays import-light: json, os and
hashlib, plus the local store to read markers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

FORMAT = 1
ENTRIES = 64  # answers kept per project (each a few KB); the oldest go first
COMMANDS = ("show", "lineage", "list")
CACHES_ENV = "DATASET_REGISTRY_CACHES"  # as engine/substituters.py (not imported: heavy)
OPTIONS_ENV = "DATASET_REGISTRY_STORAGE_OPTIONS"  # as core/remote.py's env_options


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "answers.json")


def _where(args: argparse.Namespace) -> Any:
    from ..config import locations

    return locations(args.root, manifests=args.manifests, store=args.store,
                     catalog=args.catalog)


def entry_key(args: argparse.Namespace) -> str | None:
    """What names the answer: the command line that matters, the locations it reads and
    the caches asked for; None where the answer is never remembered (see the module)."""
    if args.command not in COMMANDS or getattr(args, "storage_option", None) or \
            os.environ.get(OPTIONS_ENV) or getattr(args, "cache", None) or \
            os.environ.get(CACHES_ENV, "").strip():
        return None
    where = _where(args)
    if "://" in where.store:
        return None
    return json.dumps([args.command, getattr(args, "name", None), getattr(args, "tags", None),
                       bool(args.json), where.root, where.manifests, where.store, where.state])


def marker_state(store: Any, key: str) -> str | None:
    """What the store holds of `key`, as a `show` or `list` of it would tell: "missing",
    "damaged", or a digest of the parsed marker; None: unreadable otherwise (no replay)."""
    from ..errors import RegistryError, VerifyError

    try:
        marker = store.marker(key)
    except VerifyError:
        return "damaged"
    except (RegistryError, OSError):
        return None
    if marker is None:
        return "missing"
    return "built " + hashlib.sha256(repr(marker).encode("utf-8")).hexdigest()


def _same(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == b  # JSON made tuples lists: compare in one shape


def _load(state_dir: str) -> dict[str, Any] | None:
    try:
        with open(_path(state_dir), encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("format") != FORMAT or not isinstance(doc.get("entries"), dict):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    return doc  # type: ignore[no-any-return]


def recall(args: argparse.Namespace) -> Any | None:
    """The remembered answer for this command line, if everything it was made from is as
    it was (the module docstring lists what is checked); else None."""
    from ..engine import keycache
    from ..errors import RegistryError
    from ..stores import LocalStore

    key = entry_key(args)
    if key is None:
        return None
    where = _where(args)
    doc = _load(where.state)
    entry = doc["entries"].get(key) if doc else None
    try:
        if entry is None or not _same(global_checks(where.manifests, where.state),
                                      doc["global"]):  # type: ignore[index]
            return None
        for dep, seen in entry["deps"]:
            kind, _, path = dep.partition(":")
            if not _same(keycache._dep_check(kind, path), seen):
                return None
        store = LocalStore(where.store)
        if any(marker_state(store, k) != state for k, state in entry["live"].items()):
            return None
        answer = entry["answer"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a damaged file: the full path rewrites it
    except (RegistryError, OSError):
        return None  # e.g. a source gone: the full path says what is wrong
    return answer if isinstance(answer, list if args.command == "list" else str) else None


def global_checks(manifests_dir: str, state_dir: str) -> list[Any]:
    """The key cache's checks (code, manifests, source settings, registry.toml) and the
    folders Python installs distributions into: a plugin installed or removed adds or
    takes away the recipes and layouts its entry points name."""
    from ..engine import keycache

    installed = sorted(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return [*keycache.global_checks(manifests_dir, state_dir),
            ["installed", [[p, keycache._file_stat(p)] for p in installed]]]


class _Watched:
    """A stream that notes whether anything was written to it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.wrote = False

    def write(self, text: str) -> int:
        self.wrote = True
        return self.stream.write(text)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def recording(reg: Any, args: argparse.Namespace) -> Iterator[Recorder | None]:
    """A full-path handler's recorder (None: this command line is never remembered). What
    it `keep`s is saved once the handler returns, unless it wrote to stderr (a replay
    could not say that again) or raised."""
    key = entry_key(args)
    if key is None:
        yield None
        return
    recorder = Recorder(key, reg)
    watched = _Watched(sys.stderr)
    with contextlib.redirect_stderr(watched):  # type: ignore[type-var]
        yield recorder
    if not watched.wrote:
        recorder.save()


class Recorder:
    """What the full path's answer depends on: the global checks when it starts (before
    the manifests are parsed), then, from `observe` (before it reads the markers), the
    stats and marker states of what it covers. What changed between then and `save`
    is not saved: the answer may predate it."""

    def __init__(self, key: str, reg: Any) -> None:
        self.key = key
        self.reg = reg
        self.checks = self._checks()
        self.deps: list[Any] | None = None
        self.live: dict[str, str | None] = {}
        self.answer: Any = None

    def _checks(self) -> list[Any]:
        return global_checks(self.reg.manifests_dir, self.reg.state_dir)

    def observe(self, names: list[str]) -> None:
        """Record what the answer about `names` depends on: each one's sources, shipped
        files and outside recipe code (as the key cache does), and its datasets' markers."""
        from ..engine import keycache
        from ..engine.substituters import cache_urls
        from ..errors import RegistryError

        reg = self.reg
        # registry.lock: an unset source's key and status come from it
        found: set[tuple[str, str]] = {("file", reg.lock_path)}
        try:
            if cache_urls(reg.root):  # registry.toml's (--cache and the variable: entry_key)
                return
            for name in names:
                found.update(keycache._leaf_inputs(reg, name))
                if reg.manifests.get(name).kind == "dataset":
                    found.update(keycache._plugin_code(reg, name))
            for node in reg.resolver.closure(names):  # lineage shows every one's status
                with contextlib.suppress(RegistryError):  # no key: its status is static
                    self.live[reg.key(node.name)] = None
            if any("://" in path for _, path in found):
                return  # a remote source: checking it is a request, never a replay
            self.deps = self._stats(found)
            self.live = self._live()
        except (RegistryError, OSError):
            self.deps = None
            return  # a source that cannot be read: the full path says so, every time

    def keep(self, answer: Any) -> None:
        self.answer = answer

    def _stats(self, deps: set[tuple[str, str]]) -> list[Any]:
        from ..engine import keycache

        return [[f"{kind}:{path}", keycache._dep_check(kind, path)] for kind, path in
                sorted(deps)]

    def _live(self) -> dict[str, str | None]:
        return {key: marker_state(self.reg.store, key) for key in self.live}

    def save(self) -> None:
        """Remember the answer kept if nothing it was made from changed meanwhile."""
        from ..errors import RegistryError

        if self.answer is None or self.deps is None or None in self.live.values():
            return
        try:
            self._save()
        except (RegistryError, OSError):
            return  # e.g. a source gone since: remembered next time, if it is back

    def _save(self) -> None:
        checks = self._checks()
        if not _same(checks, json.loads(json.dumps(self.checks))) or \
                self._live() != self.live or \
                self._stats({tuple(d.split(":", 1)) for d, _ in self.deps}) != self.deps:
            return
        state_dir = self.reg.state_dir
        doc = _load(state_dir)
        if doc is None or not _same(checks, doc.get("global")):
            doc = {"format": FORMAT, "global": checks, "entries": {}}
        entries = doc["entries"]
        entries.pop(self.key, None)
        entries[self.key] = {"answer": self.answer, "deps": self.deps, "live": self.live}
        for old in list(entries)[:-ENTRIES]:
            del entries[old]
        from ..core.atomic import write_atomic

        # (an OSError, e.g. a read-only state folder: no memory, the same answer printed)
        os.makedirs(state_dir, exist_ok=True)
        write_atomic(_path(state_dir), json.dumps(doc))
