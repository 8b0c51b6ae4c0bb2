"""The Python API: `Registry.open(".")` and what the CLI calls.

    registry.py      the Registry: opens a project's pieces and wires the engine to them
    runs.py          training jobs rendered or submitted, and their run records
"""

from __future__ import annotations

from .registry import LineageNode, QueryResult, Registry, raise_on_problems

__all__ = ["LineageNode", "QueryResult", "Registry", "raise_on_problems"]
