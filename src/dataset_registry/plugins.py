"""Plugins: one registration mechanism for recipes, layouts, stores, executors, label
schemes (a `labels` input's format, see schemes.py), `registry` commands and the
examples `registry init` writes (init.py).

Like fsspec's `known_implementations`, each kind maps a name to a target,
usually a `"pkg.module:Object"` string imported on first use, so listing what
is registered (or parsing a manifest) imports no implementation. Entries come
from three places, in this order:

1. the package's built-ins (`BUILTIN` below);
2. installed distributions' entry points, in the groups `dataset_registry.recipes`,
   `dataset_registry.layouts`, `dataset_registry.stores` (by URL scheme),
   `dataset_registry.executors`, `dataset_registry.schemes`, `dataset_registry.commands`
   (the word after `registry`; see `cli/command.py` for what a command is) and
   `dataset_registry.examples` (`registry init --example NAME`); this
   package's own domains, e.g. ImageNet, come in this way too;
3. a project's `registry.toml` (`plugins = ["my_recipes"]`): modules importable from
   the project root, imported by `load_project`, that call `register`.

A later source cannot silently replace an earlier entry: two different targets
for one name are an error naming both origins, unless `register(..., clobber=True)`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from .errors import PluginError

KINDS = ("recipes", "layouts", "stores", "executors", "schemes", "commands", "examples")
GROUP = "dataset_registry.{kind}"
CONFIG = "registry.toml"

BUILTIN: dict[str, dict[str, str]] = {
    "recipes": {
        "select": "dataset_registry.recipes.select:Select",
        "downscale": "dataset_registry.recipes.downscale:DownscaleRecipe",
        "byclass": "dataset_registry.recipes.shards:ByClass",
        "recordio": "dataset_registry.recipes.recordio:RecordIO",
        "webdataset": "dataset_registry.recipes.webdataset:WebDataset",
        "tfrecord": "dataset_registry.recipes.tfrecord:TFRecord",
        "sample": "dataset_registry.recipes.sample:Sample",
    },
    "layouts": {
        "image-folder": "dataset_registry.layouts.image_folder:ImageFolder",
        "files": "dataset_registry.layouts.files:Files",
        "webdataset": "dataset_registry.layouts.webdataset:WebDataset",
    },
    "stores": {
        "file": "dataset_registry.stores.local:LocalStore",
        # one object store over fsspec; what differs per protocol is in protocols.py
        "s3": "dataset_registry.stores.object:ObjectStore",
        "gs": "dataset_registry.stores.object:ObjectStore",
        "az": "dataset_registry.stores.object:ObjectStore",
        "abfs": "dataset_registry.stores.object:ObjectStore",
        "memory": "dataset_registry.stores.object:ObjectStore",
    },
    "examples": {"image-folder": "dataset_registry.init:IMAGE_FOLDER_EXAMPLE"},
    "executors": {
        "local": "dataset_registry.executors.local:LocalExecutor",
        "dask": "dataset_registry.executors.dask:DaskExecutor",
    },
}


@dataclass(frozen=True)
class Entry:
    target: Any  # "pkg.module:Object", or the object itself
    origin: str  # where the entry came from, for messages


class Plugins:
    """A table of named implementations per kind, imported lazily."""

    def __init__(self, builtin: dict[str, dict[str, str]] | None = None) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._objects: dict[tuple[str, str], Any] = {}
        self._entry_points_loaded = False
        self._projects: set[str] = set()
        for kind, table in (builtin or {}).items():
            for name, target in table.items():
                self.register(kind, name, target, origin="built in")

    def register(self, kind: str, name: str, target: Any, *, origin: str = "register()",
                 clobber: bool = False) -> None:
        """Make `target` (an object, or "pkg.module:Object") the `kind` called `name`."""
        table = self._table(kind)
        old = table.get(name)
        if old is not None and old.target == target:
            return  # registered twice (a module imported again): keep the first origin
        if old is not None and not clobber:
            raise PluginError(f"{kind[:-1]} {name!r} from {origin} clashes with the one from "
                              f"{old.origin}; rename one of them")
        table[name] = Entry(target, origin)
        self._objects.pop((kind, name), None)

    def get(self, kind: str, name: str) -> Any:
        """The registered object, imported on first use."""
        cached = self._objects.get((kind, name))
        if cached is not None:
            return cached
        entry = self._table(kind).get(name)
        if entry is None and not self._entry_points_loaded:
            self.load_entry_points()
            entry = self._table(kind).get(name)
        if entry is None:
            raise PluginError(f"unknown {kind[:-1]} {name!r} (registered: "
                              f"{', '.join(self.names(kind)) or 'none'})")
        value = _import(entry) if isinstance(entry.target, str) else entry.target
        self._objects[(kind, name)] = value
        return value

    def names(self, kind: str) -> list[str]:
        if not self._entry_points_loaded:
            self.load_entry_points()
        return sorted(self._table(kind))

    def origin(self, kind: str, name: str) -> str:
        """Where the entry came from (without importing it: its import may be what fails)."""
        if name not in self.names(kind):
            self.get(kind, name)  # raises the PluginError listing what is registered
        return self._table(kind)[name].origin

    def load_entry_points(self) -> None:
        """Register every installed distribution's entry points (once)."""
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        installed = entry_points()  # one pass over the distributions, not one per kind
        for kind in KINDS:
            for ep in installed.select(group=GROUP.format(kind=kind)):
                dist = getattr(ep, "dist", None)
                where = f"{dist.name} {dist.version}" if dist else "an installed package"
                self.register(kind, ep.name, ep.value,
                              origin=f"entry point {ep.group}:{ep.name} of {where}")

    def load_project(self, root: str) -> list[str]:
        """Import the plugin modules a project's `registry.toml` names (once per root);
        return their names. Modules are found from the project root first."""
        root = os.path.abspath(root)
        if root in self._projects:
            return []
        config = read_config(root)
        modules = config.get("plugins", [])
        where = os.path.join(root, CONFIG)
        if not (isinstance(modules, list) and all(isinstance(m, str) for m in modules)):
            raise PluginError(f"{where}: plugins must be a list of module names")
        if modules and root not in sys.path:
            sys.path.insert(0, root)
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise PluginError(f"{where}: plugin module {module!r} does not import "
                                  f"({exc})") from None
        self._projects.add(root)
        return list(modules)

    def _table(self, kind: str) -> dict[str, Entry]:
        try:
            return self._entries[kind]
        except KeyError:
            raise PluginError(f"unknown plugin kind {kind!r} (kinds: {', '.join(KINDS)})"
                              ) from None


def read_config(root: str) -> dict[str, Any]:
    """The project's `registry.toml` as a dict ({} when there is none)."""
    path = os.path.join(root, CONFIG)
    if not os.path.isfile(path):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PluginError(f"{path}: not valid TOML ({exc})") from None


def _import(entry: Entry) -> Any:
    module, _, attr = entry.target.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{entry.target!r} (from {entry.origin}) does not import: {exc}"
                          ) from None
    except Exception as exc:  # the plugin's module itself fails: a NameError, SyntaxError...
        raise PluginError(f"{entry.target!r} (from {entry.origin}) does not import: "
                          f"{type(exc).__name__}: {exc}") from None
    return value


PLUGINS = Plugins(BUILTIN)
"""The process-wide table: the CLI, the local pool's workers and Dask workers use it."""



def register(kind: str, name: str, target: Any, *, origin: str = "register()",
             clobber: bool = False) -> None:
    """Register in the process-wide table (what a project's plugin module calls)."""
    PLUGINS.register(kind, name, target, origin=origin, clobber=clobber)


def get(kind: str, name: str) -> Any:
    return PLUGINS.get(kind, name)


def names(kind: str) -> list[str]:
    return PLUGINS.names(kind)


def load_project(root: str) -> list[str]:
    return PLUGINS.load_project(root)
