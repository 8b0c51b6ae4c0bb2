"""Training jobs: manifests of GPU jobs rendered into Kubernetes specs (`render`), checked
against the generated Kubernetes models and published CRD schemas (`check`, `crdcheck`,
`schemas/`), with a copy step for object-storage cluster stores (`stage`).

`dataset_registry.jobs` was one module before it was a package: its names are still
found here (imported on first use) for code written against it.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if find_spec(f"{__name__}.{name}") is not None:  # a submodule: `from . import render`
        return import_module(f".{name}", __name__)
    value = getattr(import_module(".render", __name__), name)
    globals()[name] = value
    return value
