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
from typing import TYPE_CHECKING, Any

from ..core.atomic import write_atomic

if TYPE_CHECKING:
    from .project import Project

FORMAT = 3  # 3: a file's stat holds its ctime and inode too
# the package's code, all of it: an edit anywhere may change a key
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _file_stat(path: str) -> list[int] | None:
    """Size, mtime, ctime and inode (as statsig.py and git's index): a file rewritten in
    place with its old size and mtime put back still misses."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _tree_stat(root: str, suffixes: tuple[str, ...] = ()) -> list[Any]:
    """[relative path, size, mtime] of every file under root (or root itself if a file)."""
    if not os.path.isdir(root):
        return [["", *(_file_stat(root) or [-1])]]
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if suffixes and not name.endswith(suffixes):
                continue
            full = os.path.join(dirpath, name)
            rows.append([os.path.relpath(full, root), *(_file_stat(full) or [-1])])
    return rows


def global_checks(manifests_dir: str, state_dir: str) -> list[Any]:
    return [
        ["code", _tree_stat(_PACKAGE, (".py",))],
        ["manifests", _tree_stat(manifests_dir, (".yaml", ".yml"))],
        ["settings", _file_stat(os.path.join(state_dir, "sources.json"))],
        # the project's plugin list (registry.toml, beside the manifests folder)
        ["plugins", _file_stat(os.path.join(os.path.dirname(os.path.abspath(manifests_dir)),
                                            "registry.toml"))],
    ]


def _dep_check(kind: str, path: str) -> Any:
    from ..core.statsig import stat_signature

    if "://" in path:
        return None  # checking a remote source costs a request: never a fast-path hit
    return stat_signature(path) if kind == "source" else _tree_stat(path)


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "keys.json")


def _same(a: Any, b: Any) -> bool:
    # JSON turns tuples into lists; compare in the same shape.
    return json.loads(json.dumps(a)) == b


def _load(state_dir: str) -> dict[str, Any] | None:
    """The cached document, if it is this format and whole; else None."""
    try:
        with open(_path(state_dir), encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("format") != FORMAT:
            return None
        whole = "global" in cached and all(f"{kind}:{path}" in cached["stats"]
                                           for name in cached["keys"]
                                           for kind, path in cached["deps"][name])
        if not whole:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return cached


def lookup(state_dir: str, manifests_dir: str, names: list[str]) -> dict[str, str] | None:
    """Cached keys of `names` if nothing they depend on changed, else None.

    Only the requested datasets' own sources and files are stat-checked, so an
    unrelated 50,000-file folder source costs nothing here.
    """
    try:
        with open(_path(state_dir), encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("format") != FORMAT or not all(n in cached["keys"] for n in names):
            return None
        if not _same(global_checks(manifests_dir, state_dir), cached["global"]):
            return None
        deps = {tuple(d) for n in names for d in cached["deps"][n]}
        for kind, path in deps:
            if "://" in path:
                return None
            if not _same(_dep_check(kind, path), cached["stats"][f"{kind}:{path}"]):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {n: cached["keys"][n] for n in names}


def save(state_dir: str, manifests_dir: str, keys: dict[str, str],
         deps: dict[str, list[tuple[str, str]]]) -> None:
    """Store keys with, per dataset, the (kind, path) of every source and file it reads.

    Only `keys`' own dependencies are stat-checked (a resolve saves the datasets it
    resolved, so an unrelated source is never read). The entries already cached for
    other datasets stay while they still hold: same global checks, and no dependency
    they share with `keys` seen changed since they were saved."""
    every = {d for ds in deps.values() for d in ds}
    checks = global_checks(manifests_dir, state_dir)
    stats = {f"{kind}:{path}": _dep_check(kind, path) for kind, path in sorted(every)}
    doc: dict[str, Any] = {"format": FORMAT, "keys": {}, "deps": {}, "global": checks,
                           "stats": {}}
    old = _load(state_dir)
    if old is not None and _same(checks, old["global"]):
        for name, key in old["keys"].items():
            if name in keys:
                continue
            mine = [f"{kind}:{path}" for kind, path in old["deps"][name]]
            if all(dep not in stats or _same(stats[dep], old["stats"][dep]) for dep in mine):
                doc["keys"][name] = key
                doc["deps"][name] = old["deps"][name]
                doc["stats"].update({dep: old["stats"][dep] for dep in mine})
    doc["keys"].update(keys)
    doc["deps"].update({n: sorted(d) for n, d in deps.items()})
    doc["stats"].update(stats)
    os.makedirs(state_dir, exist_ok=True)
    write_atomic(_path(state_dir), json.dumps(doc))


def save_keys(project: Project, names: list[str] | None = None) -> None:
    """Remember the keys of `names` and every dataset they are made from (None: every
    computable key), for the CLI's fast path. Only their own sources are fingerprinted:
    saving never reads a source outside their closure."""
    from ..errors import SourceError

    resolver = project.resolver
    keys, deps = {}, {}
    nodes = project.manifests.datasets() if names is None else resolver.closure(names)
    for node in nodes:
        try:
            keys[node.name] = resolver.key(node.name)
        except SourceError:
            continue
        deps[node.name] = _leaf_inputs(project, node.name) + _plugin_code(project, node.name)
    save(project.state_dir, project.manifests_dir, keys, deps)


def _plugin_code(project: Project, name: str) -> list[tuple[str, str]]:
    """("file", path) of every outside recipe module under `name`: its code is in the
    key, so an edit must miss the key cache too."""
    import sys

    from ..core.keys import recipe_code_key
    from ..recipes import RECIPES

    found = set()
    for node in project.resolver.closure([name]):
        recipe = RECIPES[node.recipe]
        path = getattr(sys.modules.get(recipe.__module__), "__file__", None)
        if path and recipe_code_key(recipe) is not None:
            found.add(("file", path))
    return sorted(found)


def _leaf_inputs(project: Project, name: str) -> list[tuple[str, str]]:
    """(kind, path) of every source location and shipped file under `name`."""
    from ..manifest import DatasetNode, FileNode, SourceNode

    node = project.manifests.get(name)
    if isinstance(node, SourceNode):  # its key may be the lock's, or checked against it
        if not project.resolver.is_set(name):
            return [("file", project.lock_path)]
        info = project.resolver.source_info(name)
        return [("source", info.location), ("file", project.lock_path)] + \
            [("file", path) for path in info.beside]
    if isinstance(node, FileNode):
        return [("file", node.path)]
    assert isinstance(node, DatasetNode)
    return sorted({d for t in node.inputs.values() for d in _leaf_inputs(project, t)})
