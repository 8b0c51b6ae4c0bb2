"""Content hashing: canonical JSON, derivation keys and file fingerprints.

Every identity in the registry is an xxh3-128 hex digest. A derivation's key
covers what determines its bytes (recipe, version, params with defaults,
input keys) and nothing else: names, descriptions and file layout never enter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

Key = str
"""A 32-character lowercase hex xxh3-128 digest."""

_CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, and only JSON-native types."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def hash_bytes(data: bytes | memoryview) -> Key:
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str | os.PathLike[str]) -> Key:
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def derivation_key(recipe: str, version: int, params: Mapping[str, Any],
                   inputs: Mapping[str, Key], code: Key | None = None) -> Key:
    """The key of a dataset: what it is made from and how, never what it is called.
    `code`: the hash of a recipe's source, for recipes from outside this package (whose
    version alone is no promise); built-in recipes key their name and version only."""
    doc = {"recipe": recipe, "version": version, "params": dict(params), "inputs": dict(inputs)}
    if code is not None:
        doc["code"] = code
    return hash_bytes(canonical_json(doc).encode())


@dataclass(frozen=True)
class Derivation:
    """How a dataset is made: recipe name and version, its params as they enter the key
    (`Params.keyed()`), the key of its input in each role, and the hash of the recipe's
    code when it comes from outside this package. Its `key` is the dataset's key."""

    recipe: str
    version: int
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Key] = field(default_factory=dict)
    code: Key | None = None

    @property
    def key(self) -> Key:
        return derivation_key(self.recipe, self.version, self.params, self.inputs,
                              code=self.code)


def recipe_code_key(recipe: type) -> Key | None:
    """xxh3 of the source of the module defining `recipe`, unless it is part of this
    package (None: its version is the contract, pinned by tests/test_reference.py)."""
    import sys

    module = sys.modules.get(recipe.__module__)
    if recipe.__module__.split(".")[0] == __name__.split(".")[0]:
        return None
    path = getattr(module, "__file__", None)
    if not path:
        return hash_bytes(f"{recipe.__module__}.{recipe.__qualname__}".encode())
    return hash_file(path)


def digest_rows(rows: Iterable[tuple[str, int, str]]) -> Key:
    """The content digest of a set of files given as (path, size, xxh3) rows in path order."""
    hasher = xxhash.xxh3_128()
    for path, size, file_hash in rows:
        hasher.update(f"{path}\t{size}\t{file_hash}\n".encode())
    return hasher.hexdigest()


def tree_key(root: str | os.PathLike[str]) -> Key:
    """Key of a shipped folder or file: its relative paths and contents, not its location."""
    root = os.fspath(root)
    if os.path.isfile(root):
        return hash_file(root)
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            rows.append((rel, os.path.getsize(full), hash_file(full)))
    rows.sort()
    return digest_rows(rows)
