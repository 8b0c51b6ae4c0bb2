"""`registry audit NAME`: the leak audit (reports/audit.py) as a readable summary, or its
JSON; exit 1 when an image is in two splits, so CI can gate on it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .display import print_json

SHOW = 5  # entries of each finding a summary names


def audit(reg: Any, args: argparse.Namespace) -> int:
    options = {"jobs": args.jobs} | ({"threshold": args.threshold}
                                     if args.threshold is not None else {})
    report = reg.audit(args.name, near=args.near, **options)
    near = report["near"]
    if near["decoded"] and not near["checked"]:  # never silent: say what was not checked
        print(f"registry: warning: near copies not checked: {near['why_not']}",
              file=sys.stderr)
    if args.json:
        print_json(report)
    else:
        print("\n".join(summary(report)))
    return 1 if report["leak"] else 0


def summary(report: dict[str, Any]) -> list[str]:
    """The report in lines a person reads: splits, then each finding with its first few."""
    splits = report["splits"]
    what = "fingerprint" if report["kind"] == "source" else "key"
    lines = [f"{report['kind']} {report['name']} ({what} {report['key']}): "
             f"{report['members']} images in {len(splits)} split{_s(len(splits))}"]
    for split, s in splits.items():
        balance = s["balance"]
        classes = (f", {s['classes']} classes, {balance['min']}-{balance['max']} a class "
                   f"(smallest {balance['smallest']}, largest {balance['largest']}, ratio "
                   f"{balance['ratio']:g})") if balance else ", no classes"
        lines.append(f"  {split}: {s['members']} images{classes}")
    counts, near = report["counts"], report["near"]
    if counts["exact_across"]:
        lines.append(f"LEAK: {counts['exact_across']} image{_s(counts['exact_across'])} "
                     "in more than one split (exact copies), e.g.:")
        lines += [f"  {_copies(g)}" for g in report["exact_across"][:SHOW]]
    if counts["near_across"]:
        lines.append(f"LEAK: {counts['near_across']} near cop{_ies(counts['near_across'])} "
                     f"across splits (pHash within {near['threshold']} bits), e.g.:")
        lines += [f"  {_name(p['a'])} ~ {_name(p['b'])} (distance {p['distance']})"
                  for p in report["near_across"][:SHOW]]
    if counts["exact_within"]:
        lines.append(f"copies within a split: {counts['exact_within']} image"
                     f"{_s(counts['exact_within'])} held more than once, e.g.:")
        lines += [f"  {_copies(g)}" for g in report["exact_within"][:SHOW]]
    if counts["undecodable"]:
        lines.append(f"undecodable: {counts['undecodable']} image{_s(counts['undecodable'])}, "
                     "e.g.:")
        lines += [f"  {_name(u)}: {u['why']}" for u in report["undecodable"][:SHOW]]
    if near["too_small"]:
        lines.append(f"near copies: {near['too_small']} image{_s(near['too_small'])} with a "
                     "side under 32 pixels not compared (too few pixels for a perceptual hash)")
    if near.get("flat"):
        lines.append(f"near copies: {near['flat']} image{_s(near['flat'])} of one colour not "
                     "compared (a flat image's perceptual hash is noise)")
    if not near["decoded"]:
        lines.append("not checked (--no-near): near copies, undecodable images")
    if not report["leak"]:
        checked = "exact or near" if near["checked"] else "exact"
        lines.append(f"no leak: no image has an {checked} copy in another split")
    return lines


def _copies(group: dict[str, Any]) -> str:
    names = " = ".join(_name(m) for m in group["members"][:4])
    more = group["copies"] - min(4, len(group["members"]))
    return names + (f" (and {more} more)" if more else "")


def _name(member: dict[str, str]) -> str:
    return member["name"] if member["split"] == "*" else f"{member['split']}/{member['name']}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _ies(n: int) -> str:
    return "y" if n == 1 else "ies"
