"""The recipe table: name -> Recipe class, a view of the plugin table (plugins.py), so a
recipe from an entry point or a project's registry.toml is found like a built-in one.

Importing this package imports the built-in recipes (the local pool's fork server
preloads it, so workers start warm); an outside recipe is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .. import plugins
from .base import Inputs, InputSpec, Params, Plan, Recipe


def _import_built_in() -> tuple[type[Recipe], ...]:
    """The classes `plugins.BUILTIN["recipes"]` names, imported: that table is the one list
    of the package's recipes (ImageNet's `calibration` is a plugin's, an entry point)."""
    found = []
    for target in plugins.BUILTIN["recipes"].values():
        module, _, name = target.partition(":")
        found.append(getattr(importlib.import_module(module), name))
    return tuple(found)


BUILT_IN = _import_built_in()


class RecipeTable(Mapping[str, type[Recipe]]):
    """Registered recipes by name (a PluginError naming the registered ones if unknown)."""

    def __getitem__(self, name: str) -> type[Recipe]:
        return plugins.get("recipes", name)

    def get(self, name: str, default: type[Recipe] | None = None) -> type[Recipe] | None:
        # a registered recipe that fails to import raises: that is not "unknown"
        return self[name] if name in self else default  # noqa: SIM401

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in plugins.names("recipes")

    def __iter__(self) -> Iterator[str]:
        return iter(plugins.names("recipes"))

    def __len__(self) -> int:
        return len(plugins.names("recipes"))


RECIPES = RecipeTable()

__all__ = ["BUILT_IN", "RECIPES", "InputSpec", "Inputs", "Params", "Plan", "Recipe", "RecipeTable"]
