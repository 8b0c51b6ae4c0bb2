"""A stat-validated cache of dataset keys: `registry resolve` of a built dataset in ~50 ms.

Computing keys means parsing every manifest and validating params (pydantic,
YAML: ~0.25 s of imports alone). The keys depend only on files whose size and
mtime we can check far faster: the manifests, the shipped files they name, the
source locations and their settings, and the recipe code. While none of those
changed, the cached keys are the keys; any change falls back to the full path.
This module must stay import-light: json, os and nothing of ours that is heavy.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

FORMAT = 1
_HERE = os.path.dirname(os.path.abspath(__file__))


def _file_stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _tree_stat(root: str, suffixes: tuple[str, ...] = ()) -> list[Any]:
    """[relative path, size, mtime] of every file under root (or root itself if a file)."""
    if not os.path.isdir(root):
        return [["", *(_file_stat(root) or [-1, -1])]]
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if suffixes and not name.endswith(suffixes):
                continue
            full = os.path.join(dirpath, name)
            rows.append([os.path.relpath(full, root), *(_file_stat(full) or [-1, -1])])
    return rows


def _checks(manifests_dir: str, state_dir: str, file_paths: list[str],
            source_locations: list[tuple[str, str]]) -> list[Any]:
    from .statsig import stat_signature

    return [
        ["code", _tree_stat(_HERE, (".py",))],
        ["manifests", _tree_stat(manifests_dir, (".yaml", ".yml"))],
        ["settings", _file_stat(os.path.join(state_dir, "sources.json"))],
        *(["file", p, _tree_stat(p)] for p in sorted(file_paths)),
        *(["source", loc, stat_signature(loc)] for _, loc in sorted(source_locations)),
    ]


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "keys.json")


def lookup(state_dir: str, manifests_dir: str) -> dict[str, str] | None:
    """The cached {name: key} if nothing it depends on changed, else None."""
    try:
        with open(_path(state_dir), encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("format") != FORMAT:
            return None
        now = _checks(manifests_dir, state_dir, cached["files"], cached["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # JSON turns tuples into lists; compare in the same shape.
    return cached["keys"] if json.loads(json.dumps(now)) == cached["checks"] else None


def save(state_dir: str, manifests_dir: str, keys: dict[str, str], file_paths: list[str],
         source_locations: list[tuple[str, str]]) -> None:
    doc = {"format": FORMAT, "keys": keys, "files": sorted(file_paths),
           "sources": sorted(source_locations),
           "checks": _checks(manifests_dir, state_dir, file_paths, source_locations)}
    os.makedirs(state_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".keys-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, _path(state_dir))
