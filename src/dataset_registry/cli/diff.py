"""`registry diff A B`: the report of `reports.diff` as text, or as one JSON document."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .display import print_json, table

_WHAT = {"added": "added", "removed": "removed", "bytes_changed": "bytes changed",
         "label_changed": "label changed"}


def diff(reg: Any, args: argparse.Namespace) -> int:
    report = reg.diff(args.a, args.b, limit=args.limit)
    if args.json:
        print_json(report)
    else:
        for line in _heading(report):
            print(line)
        if not report["same"]:
            _body(report)
    # as git diff: 0 whether or not they differ, unless --exit-code asks
    return 1 if args.exit_code and report["differ"] else 0


def _heading(report: dict[str, Any]) -> list[str]:
    a, b = report["a"], report["b"]
    if report["same"]:
        return [f"A ({a['given']}) and B ({b['given']}) are the same artifact (key {a['key']}): "
                "they differ in nothing"]
    lines = [f"{w}: {s['name'] or '(unnamed)'}  key {s['key']}  ({s['recipe']} v{s['version']}, "
             f"{s['files']:,} files, {s['bytes']:,} bytes)" for w, s in (("A", a), ("B", b))]
    for field in ("recipe", "version"):
        if report[field]:
            lines.append(f"{field}: {report[field]['a']} -> {report[field]['b']}")
    for name, values in report["params"].items():
        lines.append(f"param {name}: {json.dumps(values['a'])} -> {json.dumps(values['b'])}")
    for role, refs in report["inputs"].items():
        lines.append(f"input {role}: {_ref(refs['a'])} -> {_ref(refs['b'])}")
    if not (report["recipe"] or report["version"] or report["params"] or report["inputs"]):
        lines.append("recipe, params and inputs: the same")
    return lines


def _ref(ref: dict[str, str] | None) -> str:
    return "(none)" if ref is None else f"{ref['kind']} {ref['name']} {ref['key']}"


def _body(report: dict[str, Any]) -> None:
    splits = report["splits"]
    table(["split", "rows A", "rows B", "added", "removed", "bytes changed", "label changed",
           "unchanged"],
          [(s["split"], s["rows"]["a"], s["rows"]["b"], s["added"], s["removed"],
            s["bytes_changed"], s["label_changed"], s["unchanged"]) for s in splits])
    limit = report["limit"]
    for s in splits:
        for category, what in _WHAT.items():
            for entry in s["listed"][category]:
                print(f"{s['split']}  {what}  {entry['name']}{_detail(category, entry)}")
            more = s[category] - len(s["listed"][category])
            if more > 0:
                print(f"{s['split']}  {what}  ... {more:,} more (--limit N lists more than "
                      f"{limit}, --json all counts)")
    _class_deltas(splits, limit)
    print("A and B differ" if report["differ"] else "A and B differ in nothing")


def _detail(category: str, entry: dict[str, Any]) -> str:
    if category in ("added", "removed"):
        return f"  ({entry['path']})" if entry["path"] != entry["name"] else ""
    a, b = entry["a"], entry["b"]
    if category == "bytes_changed":
        return f"  ({a['size']:,} -> {b['size']:,} bytes)"
    return f"  (label {_label(a)} -> {_label(b)})"


def _label(side: dict[str, Any]) -> str:
    label, klass = side["label"], side["class"]
    if klass is not None and str(klass) != str(label):
        return f"{label} {klass}"
    return str(label)


def _class_deltas(splits: list[dict[str, Any]], limit: int) -> None:
    """The classes whose count changed, the largest changes first, `limit` a split."""
    rows, more = [], []
    for s in splits:
        moved = sorted((c for c in s["classes"] if c["delta"]),
                       key=lambda c: (-abs(c["delta"]), c["class"]))
        rows += [(s["split"], c["class"], c["a"], c["b"], f"{c['delta']:+d}")
                 for c in moved[:limit]]
        if len(moved) > limit:
            more.append(f"{s['split']}  ... {len(moved) - limit:,} more classes changed count")
    if rows or more:
        print("class counts that changed:")
    if rows:
        table(["split", "class", "A", "B", "delta"], rows)
    for line in more:
        print(line)
