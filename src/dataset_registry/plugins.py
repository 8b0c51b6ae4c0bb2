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

Plugins are Python code run with the user's rights; one that fails breaks only what
needs it. A registry.toml module that raises as it imports (a SyntaxError, a bug, a
`sys.exit`) is recorded (`Broken`: the module, its registry.toml line, the error), with
a warning, and what it had registered is taken back: a lookup of a name it would have
registered names it as the likely cause, and everything else works. A recipe is
checked when registered as an object, or on its first lookup (`recipe_problems`): one
missing `version`, say, is a PluginError naming it, not a traceback mid-build.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from .errors import PluginError, did_you_mean

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
        "image-folder": "dataset_registry.sources.layouts.image_folder:ImageFolder",
        "files": "dataset_registry.sources.layouts.files:Files",
        "webdataset": "dataset_registry.sources.layouts.webdataset:WebDataset",
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
    "examples": {"image-folder": "dataset_registry.init:IMAGE_FOLDER_EXAMPLE",
                 "plugin": "dataset_registry.examples.plugin:EXAMPLE"},
    "executors": {
        "local": "dataset_registry.executors.local:LocalExecutor",
        "dask": "dataset_registry.executors.dask:DaskExecutor",
    },
}


@dataclass(frozen=True)
class Entry:
    target: Any  # "pkg.module:Object", or the object itself
    origin: str | EntryPointOrigin  # where the entry came from, for messages (str() it)


class EntryPointOrigin:
    """"entry point GROUP:NAME of DIST VERSION", its distribution's METADATA parsed when a
    message first says it (~2 ms a distribution, on every command that looks a plugin up
    if read as the entry points load; few commands ever say where an entry came from)."""

    def __init__(self, ep: Any, described: dict[int, str]) -> None:
        self.ep = ep
        self.described = described  # "name version" by id(dist), shared: one parse each

    def __str__(self) -> str:
        dist = getattr(self.ep, "dist", None)
        if dist is not None and id(dist) not in self.described:
            meta = dist.metadata  # `dist.name`, `dist.version`: a parse each
            self.described[id(dist)] = f"{meta['Name']} {meta['Version']}" \
                if meta is not None and meta["Name"] else "an installed package"
        where = self.described[id(dist)] if dist is not None else "an installed package"
        return f"entry point {self.ep.group}:{self.ep.name} of {where}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


@dataclass(frozen=True)
class Broken:
    """A registry.toml plugin module that failed as it imported: nothing it registers is."""

    module: str
    where: str  # "/project/registry.toml:LINE"
    error: str  # "Type: message", one line
    details: str  # the traceback, for --debug

    def __str__(self) -> str:
        return f"{self.where}: plugin {self.module!r} failed to import: {self.error}"


class Plugins:
    """A table of named implementations per kind, imported lazily."""

    def __init__(self, builtin: dict[str, dict[str, str]] | None = None) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._objects: dict[tuple[str, str], Any] = {}
        self._entry_points_loaded = False
        self._projects: set[str] = set()
        self._plugin_roots: set[str] = set()  # projects whose registry.toml lists plugins
        self._importing: str | None = None  # the registry.toml module being imported
        self.broken: list[Broken] = []
        for kind, table in (builtin or {}).items():
            for name, target in table.items():
                self.register(kind, name, target, origin="built in")

    def register(self, kind: str, name: str, target: Any, *,
                 origin: str | EntryPointOrigin = "register()",
                 clobber: bool = False) -> None:
        """Make `target` (an object, or "pkg.module:Object") the `kind` called `name`.
        An object is checked now (a recipe must be a complete one: `_check`), a string on
        its first `get`."""
        table = self._table(kind)
        if origin == "register()" and self._importing:
            origin = self._importing  # say which registry.toml plugin registered it
        old = table.get(name)
        if old is not None and old.target == target:
            return  # registered twice (a module imported again): keep the first origin
        if old is not None and _same_definition(old.target, target):
            # the module run again (reloaded, or a new version shipped to a Dask worker,
            # see executors/project_code.py): its new object replaces the old one
            table[name] = Entry(target, old.origin)
            self._objects.pop((kind, name), None)
            return
        if old is not None and not clobber:
            raise PluginError(f"{kind[:-1]} {name!r} from {origin} clashes with the one from "
                              f"{old.origin}; rename one of them")
        if not isinstance(target, str):
            _check(kind, name, Entry(target, origin), target)
        table[name] = Entry(target, origin)
        self._objects.pop((kind, name), None)

    def get(self, kind: str, name: str) -> Any:
        """The registered object, imported (and checked) on first use."""
        cached = self._objects.get((kind, name))
        if cached is not None:
            return cached
        entry = self._table(kind).get(name)
        if entry is None and not self._entry_points_loaded:
            self.load_entry_points()
            entry = self._table(kind).get(name)
        if entry is None:
            raise PluginError(f"unknown {kind[:-1]} {name!r} (registered: "
                              f"{', '.join(self.names(kind)) or 'none'})"
                              f"{did_you_mean(name, self.names(kind))}{self.missing_note()}")
        value = _import(entry) if isinstance(entry.target, str) else entry.target
        _check(kind, name, entry, value)
        self._objects[(kind, name)] = value
        return value

    def missing_note(self) -> str:
        """What to add to "unknown NAME": the registry.toml plugins that failed to import,
        the likely reason a name is missing ("" when none did)."""
        return "".join(f"; {b}" for b in self.broken)

    def names(self, kind: str) -> list[str]:
        if not self._entry_points_loaded:
            self.load_entry_points()
        return sorted(self._table(kind))

    def origin(self, kind: str, name: str) -> str:
        """Where the entry came from (without importing it: its import may be what fails)."""
        if name not in self.names(kind):
            self.get(kind, name)  # raises the PluginError listing what is registered
        return str(self._table(kind)[name].origin)

    def load_entry_points(self) -> None:
        """Register every installed distribution's entry points (once)."""
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        installed = entry_points()  # one pass over the distributions, not one per kind
        described: dict[int, str] = {}  # each distribution's "name version", read once
        for kind in KINDS:
            for ep in installed.select(group=GROUP.format(kind=kind)):
                self.register(kind, ep.name, ep.value,
                              origin=EntryPointOrigin(ep, described))

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
        if modules:
            self._plugin_roots.add(root)
        self._projects.add(root)
        return [m for m in modules if self._import_plugin(m, f"{where}:{_line_of(where, m)}")]

    def project_modules(self) -> dict[str, str]:
        """The modules this process imported from a project folder (its registry.toml
        plugins and what they import from beside them), by top-level name: the module's
        file, or its package's folder. Processes started elsewhere (a Dask cluster's)
        cannot import them; the Dask executor ships them."""
        roots = self._plugin_roots | {os.path.realpath(r) for r in self._plugin_roots}
        found = {}
        for name, module in list(sys.modules.items()):
            path = "." not in name and name != "__main__" and _project_file(module, roots)
            if path:
                found[name] = path
        return found

    def _import_plugin(self, module: str, where: str) -> bool:
        """Import one registry.toml plugin module; False (recorded in `broken`, said on
        stderr) if it raised, whatever it raised, its registrations taken back."""
        from .core.failures import DEBUG_HINT, Raised, debugging, summary, traceback_text

        saved = {kind: dict(table) for kind, table in self._entries.items()}
        saved_objects = dict(self._objects)
        self._importing = f"plugin {module} ({where})"
        try:
            importlib.import_module(module)
            return True
        except Raised as exc:  # SystemExit too: a plugin must not end the command silently
            self._entries, self._objects = saved, saved_objects
            broken = Broken(module, where, summary(exc), traceback_text(exc))
            self.broken.append(broken)
            print(f"warning: {broken}; what it registers is unavailable"
                  + (f"\n{broken.details}" if debugging() else f" {DEBUG_HINT}"),
                  file=sys.stderr)
            return False
        finally:
            self._importing = None

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


def _line_of(config: str, module: str) -> int:
    """The line of `config` (registry.toml) that names `module` (1 if none is found)."""
    quoted = re.compile(rf"""["']{re.escape(module)}["']""")
    with open(config, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.lstrip().startswith("#") and quoted.search(line):
                return number
    return 1


def _same_definition(old: Any, new: Any) -> bool:
    """Two objects defined at the same place of one module: the module was run again."""
    if isinstance(old, str) or isinstance(new, str):
        return False
    where = [(getattr(x, "__module__", None), getattr(x, "__qualname__", None))
             for x in (old, new)]
    return where[0] == where[1] and None not in where[0]


def _project_file(module: Any, roots: set[str]) -> str | None:
    """`module`'s file (a package: its folder) if it lies directly in one of `roots`
    (as sys.path found it: the root's path, not resolved)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return None
    if os.path.basename(path) == "__init__.py":
        path = os.path.dirname(path)
    return path if os.path.dirname(path) in roots else None


def _import(entry: Entry) -> Any:
    from .core.failures import Raised, summary, traceback_text

    module, _, attr = entry.target.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{entry.target!r} (from {entry.origin}) does not import: {exc}",
                          traceback_text(exc)) from None
    except Raised as exc:  # the plugin's module itself fails: a NameError, sys.exit()...
        raise PluginError(f"{entry.target!r} (from {entry.origin}) does not import: "
                          f"{summary(exc)}", traceback_text(exc)) from None
    return value


def _check(kind: str, name: str, entry: Entry, value: Any) -> None:
    """A PluginError if `value`, registered as the recipe `name`, is not a complete one
    (other kinds are checked where they are used: commands by cli.command, examples by
    init)."""
    if kind != "recipes":
        return
    from .recipes.base import recipe_problems

    problems = recipe_problems(value)
    if problems:
        target = entry.target if isinstance(entry.target, str) else \
            getattr(value, "__qualname__", repr(value))
        raise PluginError(f"recipe {name!r} ({target}, from {entry.origin}) is not a "
                          f"complete recipe: {'; '.join(problems)}")


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


def missing_note() -> str:
    return PLUGINS.missing_note()


def project_modules() -> dict[str, str]:
    return PLUGINS.project_modules()
