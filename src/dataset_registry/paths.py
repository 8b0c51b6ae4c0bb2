"""Where a registry keeps things: argument, then environment variable, then default."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Locations:
    root: str
    manifests: str  # DATASET_REGISTRY_MANIFESTS, default ROOT/manifests
    store: str  # DATASET_REGISTRY_STORE, default ROOT/registry
    catalog: str  # DATASET_REGISTRY_CATALOG, default ROOT/catalog.duckdb
    state: str  # DATASET_REGISTRY_STATE, default ROOT/.registry-state (source settings, caches)


def locations(root: str = ".", *, manifests: str | None = None, store: str | None = None,
              catalog: str | None = None, state: str | None = None) -> Locations:
    env = os.environ.get
    root = os.path.abspath(root)
    return Locations(
        root=root,
        manifests=manifests or env("DATASET_REGISTRY_MANIFESTS") or os.path.join(root, "manifests"),
        store=store or env("DATASET_REGISTRY_STORE") or os.path.join(root, "registry"),
        catalog=catalog or env("DATASET_REGISTRY_CATALOG") or os.path.join(root, "catalog.duckdb"),
        state=state or env("DATASET_REGISTRY_STATE") or os.path.join(root, ".registry-state"),
    )
