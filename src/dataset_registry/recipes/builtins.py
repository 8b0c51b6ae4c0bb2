"""Every built-in recipe class, imported: what the local pool's fork server preloads
(core/processes.py), so its workers start with the recipes, numpy and Pillow's helpers
warm. Nothing else imports this module: a key imports only the recipes it needs."""

from __future__ import annotations

import importlib

from .. import plugins
from .base import Recipe


def _import_built_in() -> tuple[type[Recipe], ...]:
    """The classes `plugins.BUILTIN["recipes"]` names, imported: that table is the one list
    of the package's recipes (ImageNet's `calibration` is a plugin's, an entry point)."""
    found = []
    for target in plugins.BUILTIN["recipes"].values():
        module, _, name = target.partition(":")
        found.append(getattr(importlib.import_module(module), name))
    return tuple(found)


BUILT_IN = _import_built_in()
