"""`registry audit NAME`: what leaks between the splits of a source or a built dataset.

Exact copies come from the xxh3s the source index or the artifact's file table already
holds (grouped in numpy: no image is read); near copies from perceptual hashes
(`phash.py`), which need each distinct image decoded once, ever (cached by xxh3). The
result is plain JSON-able data, its shape documented in the README ("Leak audit") and
kept stable: the CLI prints it, the dataset card renders it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifact.marker import FILES
from ..engine.inputs import artifact_members
from ..errors import BadInputError
from ..manifest import DatasetNode, SourceNode
from ..sources.index import member_sets
from ..sources.members import MemberRef, MemberSet
from . import phash

if TYPE_CHECKING:
    from ..engine.project import Project

LIMIT = 1000  # entries each list holds at most (`counts` has the whole numbers)
GROUP_MEMBERS = 20  # members each group of copies names at most (`copies`: how many)


def audit(project: Project, name: str, *, near: bool = True,
          threshold: int = phash.THRESHOLD, jobs: int | None = None) -> dict[str, Any]:
    """The leak audit of source or built dataset `name`: per split its members and class
    balance; exact copies across splits and within one; with `near`, every distinct image
    decoded (once: cached by xxh3) for images it cannot decode and, if ImageHash is
    installed, near copies across splits (pHash within `threshold` bits). `leak` is true
    when any image has an exact or near copy in another split."""
    if not 0 <= threshold <= 64:
        raise BadInputError(f"audit: a threshold of {threshold} bits is not within 0..64")
    kind, key, sets = _members(project, name)
    table = Members(sets)
    copies = table.copies()
    report: dict[str, Any] = {
        "name": name, "kind": kind, "key": key, "members": len(table),
        "splits": {s: _split_summary(sets[s]) for s in table.splits},
        "exact_across": [table.group(copies, g) for g in copies.across[:LIMIT].tolist()],
        "exact_within": [table.group(copies, g) for g in copies.within[:LIMIT].tolist()],
    }
    counts = {"exact_across": len(copies.across), "exact_within": len(copies.within),
              "near_across": None, "undecodable": None}
    checked = {"decoded": near, "checked": near and phash.available(), "method": None,
               "threshold": threshold, "why_not": None, "too_small": None, "flat": None,
               "unhashable": None, "images_decoded": 0}
    report["near_across"] = report["undecodable"] = None
    if not near:
        checked["why_not"] = ("no image was decoded (not asked for: registry audit NAME, or "
                              "report --near, compares them)")
    else:
        if not checked["checked"]:
            checked["why_not"] = f"ImageHash is not installed; {phash.INSTALL}"
        else:
            checked["method"] = phash.method()
        found = phash.fingerprints(
            project.state_dir, table.digests[copies.first], lambda at: table.refs(
                copies.first[at]), hashing=bool(checked["checked"]), jobs=jobs,
            remote=project.remote, progress=project.resolver.progress)
        checked["images_decoded"] = found.decoded
        state = found.states[copies.content]  # each member's, by its content
        bad = np.nonzero(state == phash.UNDECODABLE)[0]
        counts["undecodable"] = len(bad)
        report["undecodable"] = [table.ref(g) | {"why": found.why[int(copies.content[g])]}
                                 for g in bad[:LIMIT].tolist()]
        if checked["checked"]:
            checked["too_small"] = int((state == phash.SMALL).sum())
            checked["flat"] = int((state == phash.FLAT).sum())
            checked["unhashable"] = int((state == phash.UNHASHABLE).sum())
            pairs, counts["near_across"] = _near(table, copies, found, state, threshold)
            report["near_across"] = pairs
    report["counts"] = counts
    report["near"] = checked
    report["limit"] = LIMIT
    report["leak"] = bool(counts["exact_across"] or counts["near_across"])
    return report


def _members(project: Project, name: str) -> tuple[str, str, dict[str, MemberSet]]:
    """(kind, key or fingerprint, its images by split) of source or built dataset `name`:
    a source's splits but its tables ("meta"); a dataset's declared splits, else all its
    image files as the one split "*"."""
    node = project.manifests.get(name)
    if isinstance(node, SourceNode):
        info = project.resolver.source_info(name)
        sets = {s: m for s, m in member_sets(info).items() if s != "meta"}
        return "source", info.fingerprint, sets
    if not isinstance(node, DatasetNode):
        raise BadInputError(f"audit: {name} is a {node.kind}; audit a source or a dataset")
    built = project.resolver.built(name)  # not built: says how to build it
    store = project.store
    every = artifact_members(name, built.key, store.member_root(built.key),
                             os.path.join(store.tables(built.key), FILES), built.marker)
    sets = {s: every[s] for s in built.marker.splits} if built.marker.splits else every
    if not len(every["*"]):
        raise BadInputError(f"audit: dataset {name} (key {built.key}) holds no image files "
                            "(its images are records inside shards or arrays); audit the "
                            "dataset or source it is made from: "
                            f"{', '.join(dict.fromkeys(node.inputs.values()))}")
    return "dataset", built.key, sets


def _split_summary(members: MemberSet) -> dict[str, Any]:
    """Members, classes, images per class and the balance (smallest and largest class)."""
    per_class = Counter(members.labels.tolist() if members.labels is not None else [])
    unlabelled = per_class.pop("", 0)
    summary: dict[str, Any] = {"members": len(members), "classes": len(per_class),
                               "unlabelled": unlabelled,
                               "per_class": dict(sorted(per_class.items())), "balance": None}
    if per_class:
        small = min(per_class.items(), key=lambda kv: (kv[1], kv[0]))
        large = min(per_class.items(), key=lambda kv: (-kv[1], kv[0]))
        summary["balance"] = {"smallest": small[0], "min": small[1], "largest": large[0],
                              "max": large[1], "ratio": round(large[1] / small[1], 3)}
    return summary


@dataclass
class Copies:
    """Members grouped by content: `content` (each member's group), `first` (each group's
    first member), `sizes`, the groups with copies in several splits (`across`) and with
    copies in one only (`within`), each in the order of their first member."""

    content: np.ndarray
    first: np.ndarray
    sizes: np.ndarray
    across: np.ndarray
    within: np.ndarray
    start: np.ndarray  # where each group begins in `order`
    order: np.ndarray  # members sorted by content (stably: by split, then name, in each)


class Members:
    """Every split's members as one numbered list: split by split (sorted), each in name
    order, with their raw xxh3s side by side (S16: numpy sorts and compares them)."""

    def __init__(self, sets: dict[str, MemberSet]) -> None:
        self.splits = sorted(sets)
        self.sets = [sets[s] for s in self.splits]
        sizes = [len(m) for m in self.sets]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.split_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        for members in self.sets:  # every index and file table has them; a plugin's?
            if members.digests is None:
                raise BadInputError(f"audit: {members.where}: some of its images have no "
                                    "recorded xxh3, so copies cannot be found")
        self.digests = np.concatenate(
            [m.digests.view("S16") for m in self.sets] or [np.empty(0, "S16")])

    def __len__(self) -> int:
        return len(self.digests)

    def copies(self) -> Copies:
        order = np.argsort(self.digests, kind="stable")
        ordered = self.digests[order]
        new = np.r_[True, ordered[1:] != ordered[:-1]] if len(order) else np.empty(0, bool)
        group = np.cumsum(new) - 1
        start = np.nonzero(new)[0]
        sizes = np.diff(np.r_[start, len(order)])
        content = np.empty(len(order), np.int64)
        content[order] = group
        # splits each group reaches: its distinct (group, split) pairs, counted per group.
        # In `order` they are already sorted (a group's members in member order, so by
        # split): distinct where they change, no np.unique (a hash pass over every member)
        pairs = group * len(self.splits) + self.split_of[order]
        distinct = np.r_[True, pairs[1:] != pairs[:-1]] if len(order) else new
        reach = np.bincount(group[distinct], minlength=len(start))
        first = order[start]
        by_first = np.argsort(first, kind="stable")
        across = by_first[reach[by_first] > 1]
        within = by_first[(reach[by_first] == 1) & (sizes[by_first] > 1)]
        return Copies(content, first, sizes, across, within, start, order)

    def where(self, g: int) -> tuple[int, int]:
        code = int(self.split_of[g])
        return code, g - int(self.starts[code])

    def ref(self, g: int) -> dict[str, str]:
        """Member `g` as a report names it: its split, name and class."""
        code, i = self.where(g)
        members = self.sets[code]
        return {"split": self.splits[code], "name": members.names[i],
                "class": members.labels[i] if members.labels is not None else ""}

    def refs(self, positions: np.ndarray) -> list[MemberRef]:
        return [self.sets[c][i] for c, i in map(self.where, positions.tolist())]

    def group(self, copies: Copies, g: int) -> dict[str, Any]:
        """Group `g` of `copies`: its xxh3, how many copies, in which splits, the first few."""
        members = copies.order[copies.start[g]:copies.start[g] + copies.sizes[g]]
        splits = Counter(self.splits[int(c)] for c in self.split_of[members])
        return {"xxh3": self.digests[members[0]:members[0] + 1].view("V16")[0].tobytes().hex(),
                "copies": int(copies.sizes[g]), "splits": dict(sorted(splits.items())),
                "members": [self.ref(int(m)) for m in members[:GROUP_MEMBERS]]}


def _near(table: Members, copies: Copies, found: phash.Fingerprinted, state: np.ndarray,
          threshold: int) -> tuple[list[dict[str, Any]], int]:
    """The pairs of members in different splits whose hashes are within `threshold` bits
    (exact copies left to `exact_across`), nearest first, and how many there are."""
    hashed = state == phash.HASHED
    chosen = [np.nonzero(hashed & (table.split_of == code))[0]
              for code in range(len(table.splits))]
    hashes = [found.hashes[copies.content[g]] for g in chosen]
    got: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    total = 0
    for a in range(len(chosen)):
        for b in range(a + 1, len(chosen)):
            i, j, d, n = phash.near_pairs(hashes[a], hashes[b], threshold,
                                          copies.content[chosen[a]], copies.content[chosen[b]])
            got.append((chosen[a][i], chosen[b][j], d))
            total += n
    if not total:
        return [], 0
    left, right, dist = (np.concatenate(c) for c in zip(*got, strict=True))
    order = np.lexsort((right, left, dist))[:LIMIT]
    return [{"a": table.ref(int(left[k])), "b": table.ref(int(right[k])),
             "distance": int(dist[k])} for k in order.tolist()], total
