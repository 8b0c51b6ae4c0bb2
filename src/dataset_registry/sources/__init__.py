"""Sources: the user's raw data read in place. `index` fingerprints a source through its
layout (`layouts/`) into split-agnostic member sets; `members` is those members as
recipes see them (a name, where its bytes lie, read and checked against their xxh3);
`classes` turns class names into labels; `location` reads a local path or an
object-storage URL through one interface; `tarindex`, `zipindex` (with `zipcheck`) index
archives without extracting them.

`dataset_registry.sources` was one module before it was a package: its names are still
found here (imported on first use) for code written against it.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if find_spec(f"{__name__}.{name}") is not None:  # a submodule: `from . import index`
        return import_module(f".{name}", __name__)
    value = getattr(import_module(".index", __name__), name)
    globals()[name] = value
    return value
