"""The recipe table: name -> Recipe class, a view of the plugin table (plugins.py), so a
recipe from an entry point or a project's registry.toml is found like a built-in one.

Importing this package imports no recipe: each one, built-in or outside, is imported on
first use (`RECIPES[name]`), so computing a key imports only the recipes of the datasets
it covers (`registry show`'s first run after a change). `builtins` imports them all: the
local pool's fork server preloads it, so workers start warm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import plugins
from .base import Inputs, InputSpec, Params, Plan, Recipe


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


def __getattr__(name: str) -> Any:
    """`BUILT_IN`, the built-in recipe classes, imported on first use (see builtins.py)."""
    if name == "BUILT_IN":
        from .builtins import BUILT_IN

        return BUILT_IN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BUILT_IN", "RECIPES", "InputSpec", "Inputs", "Params", "Plan", "Recipe", "RecipeTable"]
