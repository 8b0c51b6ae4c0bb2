"""`registry show`, `lineage` and `list`: each an answer (JSON-able) and its rendering.

The handlers compute the answer from the Registry and remember it (cli/answers.py);
`replay` prints a remembered one, proven current, with the same rendering, so the two
paths print the same bytes. `show` and `lineage` answer their text (it does not depend on
the terminal); `list` answers its rows, which `table` lays out for the terminal it meets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from ..errors import RegistryError, SourceError
from . import answers
from .display import print_json, table


def replay(args: argparse.Namespace) -> bool:
    """Print the remembered answer of this `show`/`lineage`/`list`, if it is current."""
    answer = answers.recall(args)
    if answer is None:
        return False
    if args.command == "list":
        _print_list(answer, args.json)
    else:
        sys.stdout.write(answer)
    return True


def list_(reg: Any, args: argparse.Namespace) -> int:
    with answers.recording(reg, args) as recorder:
        names = reg.names(args.tags.split(",") if args.tags else None)
        if recorder:
            recorder.observe(names)
        rows = []
        for name in names:
            node = reg.manifests.get(name)
            what = node.recipe if node.kind == "dataset" else getattr(node, "layout", "file")
            rows.append((name, node.kind, what, reg.status(name), ",".join(node.tags)))
        _print_list(rows, args.json)
        if recorder:
            recorder.keep([list(row) for row in rows])
        # (a damaged row's lines on stderr: never remembered, as nothing written there)
        for name, *_ in (r for r in rows if r[3] == "damaged"):
            try:
                reg.resolver.marker(name)
            except RegistryError as exc:
                print(f"registry: {exc}", file=sys.stderr)
    return 0


def _print_list(rows: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([{"name": name, "kind": kind, "recipe": what if kind == "dataset" else None,
                     "layout": what if kind == "source" else None, "status": status,
                     "tags": tags.split(",") if tags else []}
                    for name, kind, what, status, tags in rows])
    else:
        table(["name", "kind", "recipe/layout", "status", "tags"], [tuple(r) for r in rows])


def show(reg: Any, args: argparse.Namespace) -> int:
    with answers.recording(reg, args) as recorder:
        return _show(reg, args, recorder)


def _show(reg: Any, args: argparse.Namespace, recorder: answers.Recorder | None) -> int:
    node = reg.manifests.get(args.name)
    if recorder:
        recorder.observe([node.name])
    info: dict[str, Any] = {"name": node.name, "kind": node.kind, "defined": node.where,
                            "description": node.description, "tags": list(node.tags),
                            "status": reg.status(node.name)}
    info |= _card_info(reg.manifests, node)
    with contextlib.suppress(SourceError):  # registry.lock's where a source is not set here
        info["key"] = reg.key(node.name)
    if node.kind == "dataset":
        info |= {"recipe": node.recipe, "params": node.params.model_dump(mode="json"),
                 "inputs": node.inputs}
        if info["status"] == "built":
            built = reg.built(node.name)
            info |= {"uri": built.uri, "digest": built.digest, "files": built.marker.files,
                     "bytes": built.marker.bytes, "skipped": built.marker.skipped,
                     "synthetic": built.marker.synthetic}
    elif node.kind == "source":
        info["layout"] = node.layout
        if reg.resolver.is_set(node.name) and "key" in info:
            src = reg.resolver.source_info(node.name)
            info |= {"location": src.location, "images": src.files, "synthetic": src.synthetic}
        elif "key" in info:
            locked = reg.resolver.lock.sources[node.name]
            info |= {"location": None, "images": locked.files, "bytes": locked.bytes,
                     "locked": reg.lock_path}
    # JSON with or without --json: the fields as they are (print_json's text)
    return _answer(recorder, json.dumps(info, indent=2, default=str) + "\n")


def _answer(recorder: answers.Recorder | None, text: str) -> int:
    sys.stdout.write(text)
    if recorder:
        recorder.keep(text)
    return 0


def _card_info(manifests: Any, node: Any) -> dict[str, Any]:
    """A node's card and, for a dataset, the cards of the sources it is made from (their
    terms bind it too)."""
    info: dict[str, Any] = {"card": dict(node.card)}
    if node.kind == "dataset":
        upstream: dict[str, Any] = {}
        todo = list(node.inputs.values())
        while todo:
            dep = manifests.get(todo.pop())
            if dep.kind == "dataset":
                todo += dep.inputs.values()
            elif dep.card and dep.name not in upstream:
                upstream[dep.name] = dict(dep.card)
        if upstream:
            info["source_cards"] = dict(sorted(upstream.items()))
    return info


def lineage(reg: Any, args: argparse.Namespace) -> int:
    with answers.recording(reg, args) as recorder:
        return _lineage(reg, args, recorder)


def _lineage(reg: Any, args: argparse.Namespace, recorder: answers.Recorder | None) -> int:
    lines: list[str] = []

    def walk(node: Any, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        role = f"{node.role}: " if node.role else ""
        key = node.key[:16] if node.key else "-"
        lines.append(f"{prefix}{branch}{role}{node.name}  [{node.kind}, {node.status}]  "
                     f"key {key}  {node.detail}")
        child_prefix = prefix + ("" if top else ("    " if last else "│   "))
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    if recorder:  # a name that is not in the manifests: reg.lineage says so
        recorder.observe([args.name])
    tree = reg.lineage(args.name)
    if args.json:
        return _answer(recorder, json.dumps(_lineage_json(tree), indent=2, default=str) + "\n")
    walk(tree, "", True, True)
    return _answer(recorder, "".join(line + "\n" for line in lines))


def _lineage_json(node: Any) -> dict[str, Any]:
    return {"name": node.name, "kind": node.kind, "role": node.role or None, "key": node.key,
            "status": node.status, "detail": node.detail,
            "inputs": [_lineage_json(child) for child in node.children]}
