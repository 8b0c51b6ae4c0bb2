"""Sources: where the user's raw data lives, its layout, and its content fingerprint.

A source's identity is its content: xxh3 over its members' logical names,
sizes and hashes, so moving a tar, or extracting it into a folder, keeps the
fingerprint. Fingerprints and member indexes are cached by the location's
stat signature, so an unchanged source is never re-read.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..core.atomic import write_atomic
from ..core.keys import hash_bytes
from ..core.remote import Remote
from ..errors import SourceError
from .layouts import Layout
from .location import place

if TYPE_CHECKING:  # a source node is read, never made, here: no import of the manifest layer
    from ..core.progress import ProgressFactory
    from ..manifest import SourceNode
    from .members import MemberSet

INDEX_FORMAT = 3  # 2: the member index gained labels and attrs columns; 3: values, packed


def expects(layout: str) -> str:
    """What a location of `layout` must hold, for messages."""
    from .layouts import layout_class

    return layout_class(layout).expects


@dataclass
class SourceInfo:
    name: str
    layout: str
    location: str
    fingerprint: str
    files: int
    bytes: int
    synthetic: bool
    stat: str  # the location's stat signature when fingerprinted
    index: str  # path of the cached member index (.npz)
    container: bool  # a tar (members at offsets in it) rather than a folder
    index_format: int = INDEX_FORMAT
    beside: list[str] = field(default_factory=list)  # files read next to an archive
    # what `source set`/`check` say (nothing silent): images and classes per split, and
    # the members the layout left out (how many; the first few by name)
    splits: dict[str, list[int]] = field(default_factory=dict)  # split: [images, classes]
    left_out: int = 0
    left_out_first: list[str] = field(default_factory=list)
    # the source's folders holding nothing, hidden entries aside (how many; the first few:
    # `sources/folders.py`): a class folder without images makes no class, which `splits`
    # alone would not say
    empty_folders: int = 0
    empty_folders_first: list[str] = field(default_factory=list)
    # a folder source's empty folders inside its files (a shard's folder entry: not its
    # walk's, which every check finds again), as read
    empty_inside: list[str] = field(default_factory=list)
    # whole-number labels numbered by value (and the fingerprint saying so); False where
    # that numbers every image as sorted text does (0..9), or there are none
    label_values: bool = False


class SourceLocations:
    """The user's `registry source set` choices: source name -> location, in the state folder."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "sources.json")

    def load(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def set(self, name: str, location: str) -> None:
        data = self.load()
        data[name] = location
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True))


def check_source(node: SourceNode, location: str, cache_dir: str, *, force: bool = False,
                 progress: ProgressFactory | None = None,
                 remote: Remote | None = None) -> SourceInfo:
    """Fingerprint and index a source (from cache when its stat signature is unchanged);
    `progress`: a bar of the bytes hashed while it is read (none for a cache hit)."""
    from ..core.keys import canonical_json
    from .layouts import open_layout

    layout = open_layout(node.layout, node.options)
    where_bytes = place(location, remote)
    location = where_bytes.location
    if not where_bytes.exists():
        raise SourceError(f"source {node.name}: {location} does not exist; point it at your "
                          f"copy with: registry source set {node.name} PATH  "
                          f"({layout.expects})")
    is_tar = where_bytes.is_file()
    if (is_tar and not layout.tar) or (not is_tar and not layout.folder):
        kind, want = ("a file", "a folder") if is_tar else ("a folder", "a tar")
        raise SourceError(f"source {node.name}: {location} is {kind}, but layout {layout.name} "
                          f"expects {want}: {layout.expects}")
    beside = layout.beside() if is_tar else ()
    signature = where_bytes.signature() + "".join(
        f"|{name}:{where_bytes.beside_signature(name)}" for name in beside)
    entry_path = _entry_path(node, location, cache_dir, layout)
    cached = _read_entry(entry_path, node.name)
    if cached is not None and cached.stat == signature and not force:
        if not is_tar:  # (its empty folders change no file: as the signature's walk found them)
            _say_empty(cached, where_bytes.empty_folders + cached.empty_inside)
        return cached
    from ..core.processes import import_meanwhile
    from .indexing import read_index  # (the readers and numpy: only when a source is read)
    from .indextable import split_counts, write_index

    import_meanwhile("duckdb")  # the catalog records the source next: loaded while it is read
    table, left_out, fingerprint, label_values, empty = read_index(
        where_bytes, layout, is_tar, beside, f"source {node.name} ({location})", progress,
        node.name)
    synthetic = where_bytes.synthetic()
    identity = layout.identity()
    if label_values:
        # whole-number labels keep their value (classes.default_classes): where that reads
        # the table's bytes otherwise than earlier versions did (sorted as text), the source
        # gets a fingerprint of its own, so no key names both readings
        identity = {**(identity or {}), "labels": "whole numbers keep their value"}
    if identity:  # a layout that reads the names its own way says how, in the key
        fingerprint = hash_bytes(canonical_json({**identity, "members": fingerprint}).encode())
    os.makedirs(cache_dir, exist_ok=True)
    index_path = entry_path[:-5] + ".npz"
    write_index(index_path, table)
    counts = split_counts(table)
    info = SourceInfo(name=node.name, layout=node.layout, location=location,
                      fingerprint=fingerprint, files=sum(n for n, _ in counts.values()),
                      bytes=int(table.sizes.sum()), synthetic=synthetic,
                      stat=signature, index=index_path, container=is_tar,
                      beside=[where_bytes.beside(n) for n in beside],
                      splits=counts, left_out=len(left_out),
                      left_out_first=left_out[:5], label_values=label_values,
                      empty_inside=[] if is_tar else empty)
    _say_empty(info, empty if is_tar else where_bytes.empty_folders + empty)
    write_atomic(entry_path, json.dumps(asdict(info), indent=1))
    if cached is not None and cached.fingerprint != info.fingerprint:
        _say_changed(cached, info)
    return info


def _say_changed(before: SourceInfo, now: SourceInfo) -> None:
    """A source read again because its files changed, into other content: what is built from
    it now is another variant (new keys), which a user should hear of, not only see."""
    import sys

    def count(splits: dict[str, list[int]], split: str) -> str:
        images, classes = splits.get(split, [0, 0])
        return f"{images} images in {classes} classes"

    counts = "; ".join(f"split {split}: {count(before.splits, split)} before, "
                       f"{count(now.splits, split)} now"
                       for split in sorted({*before.splits, *now.splits})
                       if before.splits.get(split) != now.splits.get(split))
    print(f"note: source {now.name} ({now.location}) changed since it was last indexed "
          f"({counts or 'as many images and classes, other content'}; fingerprint "
          f"{before.fingerprint[:12]} -> {now.fingerprint[:12]}): the datasets made from it "
          "are new variants, with new keys", file=sys.stderr)


def _entry_path(node: SourceNode, location: str, cache_dir: str, layout: Layout) -> str:
    """Where the source's cached info lies: one entry per (layout, location, and the layout
    options that change what it reads)."""
    from ..core.keys import canonical_json

    identity = layout.identity()
    entry_name = hash_bytes(f"{node.layout}\0{location}".encode() + (
        b"\0" + canonical_json(identity).encode() if identity else b"")) + ".json"
    return os.path.join(cache_dir, entry_name)


def _say_empty(info: SourceInfo, empty: list[str]) -> None:
    info.empty_folders, info.empty_folders_first = len(empty), empty[:5]


def _read_entry(entry_path: str, name: str) -> SourceInfo | None:
    """The cached info at `entry_path`, if whole and of this format (its stat unchecked)."""
    try:
        with open(entry_path, encoding="utf-8") as f:
            cached = SourceInfo(**json.load(f))
    except (OSError, json.JSONDecodeError, TypeError):
        return None
    if not (cached.index.endswith(".npz") and cached.index_format == INDEX_FORMAT and
            os.path.exists(cached.index)):
        return None
    cached.name = name
    return cached


def last_known(node: SourceNode, location: str, cache_dir: str) -> SourceInfo | None:
    """The source's info as last fingerprinted at `location`, whatever changed since, or
    None: what indexes (the catalog's nodes) may show without reading a byte of it. Builds
    never use it (`check_source` compares the stat signature first)."""
    from .layouts import open_layout

    # as `place` names it
    location = location.rstrip("/") if "://" in location else os.path.abspath(location)
    try:
        layout = open_layout(node.layout, node.options)
    except SourceError:
        return None
    return _read_entry(_entry_path(node, location, cache_dir, layout), node.name)


def check_expectations(node: SourceNode, info: SourceInfo) -> None:
    """The declared file count must match (a synthetic stand-in is exempt and says so)."""
    want = node.expect.files
    if want is not None and info.files != want and not info.synthetic:
        raise SourceError(f"source {node.name} ({info.location}): expected {want} images "
                          f"({node.where}: expect.files), found {info.files}; is this the "
                          f"right {node.layout} copy?")


def member_sets(info: SourceInfo) -> dict[str, MemberSet]:
    """The source's images by split, from its cached index (no per-member Python objects)."""
    import numpy as np

    from .indextable import split_ranges
    from .members import MemberSet, StrColumn, hex_digests, labelled_values

    with np.load(info.index) as z:
        logical = StrColumn(z["logical"].tobytes(), z["logical_starts"])
        blobs = {name: (z[name].tobytes(), z[f"{name.removesuffix('s')}_starts"])
                 for name in ("origins", "labels", "attrs")}
        offsets, sizes = z["offsets"], z["sizes"]
        digests = hex_digests(z["xxh3"])
        values, packed = z["values"], z["packed"]
    tar = info.container
    where = f"source {info.name} ({info.location})"
    changed = (f"the source changed since it was indexed; run `registry source check "
               f"{info.name}`")
    sets = {}
    for split, (start, stop) in split_ranges(logical).items():
        names = StrColumn(logical._blob, logical._starts[start:stop + 1], len(split) + 1)
        origins, labels, attrs = (StrColumn(blob, starts[start:stop + 1])
                                  for blob, starts in blobs.values())
        sets[split] = MemberSet(split, where, names, origins, offsets[start:stop],
                                sizes[start:stop], [info.fingerprint],
                                container=info.location if tar else None,
                                root=None if tar else info.location, labels=labels,
                                attrs=attrs, digests=digests[start:stop], changed=changed,
                                values=labelled_values(values[start:stop])
                                if info.label_values else None,
                                packed=packed[start:stop] if packed.any() else None)
    return sets


def md5_of(location: str, remote: Remote | None = None) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with place(location, remote).open() as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
