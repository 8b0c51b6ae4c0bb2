"""The Python API: `Registry.open(".")` and what the CLI calls.

    registry.py      the Registry: datasets, sources, maintenance
    catalog_sync.py  the catalog kept in step with the manifests and the store
    runs.py          training jobs rendered or submitted, and their run records
"""

from __future__ import annotations

from .registry import LineageNode, QueryResult, Registry, raise_on_problems

__all__ = ["LineageNode", "QueryResult", "Registry", "raise_on_problems"]
