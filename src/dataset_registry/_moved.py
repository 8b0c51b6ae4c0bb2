"""Old import paths of modules that moved into packages (issue 17's engine, sources,
artifact, core and jobs), kept importable for a release so outside code written against
them keeps working: `import dataset_registry.resolver` gives `dataset_registry.engine.build`
itself (the same module object, not a copy) with a DeprecationWarning naming the new path.

`dataset_registry.sources` and `dataset_registry.jobs` were modules and are packages now:
their packages forward the old names (see their `__init__`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from types import ModuleType
from typing import Any

MOVED = {f"dataset_registry.{old}": f"dataset_registry.{new}" for old, new in {
    "artifact_inputs": "engine.inputs", "classes": "sources.classes",
    "crdcheck": "jobs.crdcheck", "failures": "core.failures", "imaging": "recipes.imaging",
    "jobcheck": "jobs.check", "jobstage": "jobs.stage", "keycache": "engine.keycache",
    "keys": "core.keys", "layouts": "sources.layouts", "lists": "recipes.lists",
    "lockfile": "engine.lockfile", "marker": "artifact.marker", "members": "sources.members",
    "output": "artifact.output", "paths": "config", "processes": "core.processes",
    "protocols": "core.protocols", "remote": "core.remote", "resolver": "engine.build",
    "schemes": "recipes.schemes", "source_keys": "engine.keys", "sourcefs": "sources.location",
    "statsig": "core.statsig", "substituters": "engine.substituters",
    "tarindex": "sources.tarindex", "zipcheck": "sources.zipcheck",
    "zipindex": "sources.zipindex", "api.catalog_sync": "engine.catalog_sync",
    "api.gc": "engine.gc", "api.locking": "engine.locking", "api.transfers": "engine.transfers",
}.items()}


def new_name(name: str) -> str | None:
    """Where module `name` lives now (None: it did not move)."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


# The loader and finder are the protocols' methods alone, not subclasses of importlib.abc's
# classes: importing importlib.abc imports importlib.resources (~8 ms), on every command.
class _Alias:
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder: exec_module puts the real module in its place

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(f"{module.__name__} moved to {self.target}; import it from there",
                      DeprecationWarning, stacklevel=2)
        # the import system returns what sys.modules holds after exec_module
        sys.modules[module.__name__] = importlib.import_module(self.target)


class MovedFinder:
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        moved = new_name(fullname) if fullname.startswith("dataset_registry.") else None
        if moved is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(moved))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())


def forwarding(package: str, module: str) -> Callable[[str], Any]:
    """The `__getattr__` of `package`, once the module `package.module` it replaced: its
    submodules stay submodules (`from .jobs import render` is the module), any other name
    is looked up in `module`, with a DeprecationWarning naming where it lives now."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        warnings.warn(f"{package}.{name} moved to {package}.{module}.{name}; import it from "
                      "there", DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
