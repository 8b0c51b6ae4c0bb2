"""Registering a plugin for the length of a test, leaving the process-wide table as it
was: a suite's recipe must not show up in a later test's `plugins.names()`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def registered(kind: str, name: str, target: Any,
               origin: str = "dataset_registry.testing") -> Iterator[None]:
    """Within the block, `name` is the `kind` `target` (as `plugins.register` makes it);
    afterwards the table is the one before. Already registered the same: no change."""
    from .. import plugins

    saved = plugins.PLUGINS
    # a copy of the table, entries and all (the module's functions read PLUGINS each call)
    table = copy.copy(saved)
    table._entries = {kind_: dict(entries) for kind_, entries in saved._entries.items()}
    table._objects = dict(saved._objects)
    table._projects = set(saved._projects)
    table.broken = list(saved.broken)
    table.register(kind, name, target, origin=origin)
    plugins.PLUGINS = table
    try:
        yield
    finally:
        plugins.PLUGINS = saved
