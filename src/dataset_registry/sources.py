"""Sources: where the user's raw data lives, its layout, and its content fingerprint.

A source's identity is its content: xxh3 over its members' logical names,
sizes and hashes, so moving a tar, or extracting it into a folder, keeps the
fingerprint. Fingerprints and member indexes are cached by the location's
stat signature, so an unchanged source is never re-read.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import SourceError
from .keys import digest_rows, hash_bytes
from .layouts import Entry
from .members import MemberSet, StrColumn, prefix_range
from .remote import Remote
from .sourcefs import place
from .tarindex import IndexedMember

if TYPE_CHECKING:  # a source node is read, never made, here: no import of the manifest layer
    from .manifest import SourceNode

INDEX_FORMAT = 2  # the cached member index gained labels and attrs columns


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
        _write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True).encode())


def check_source(node: SourceNode, location: str, cache_dir: str, *, force: bool = False,
                 progress: Callable[[int], None] | None = None,
                 remote: Remote | None = None) -> SourceInfo:
    """Fingerprint and index a source (from cache when its stat signature is unchanged)."""
    from .keys import canonical_json
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
    signature = where_bytes.signature()
    identity = layout.identity()
    # where options change what a layout reads, they name another cache entry
    entry_name = hash_bytes(f"{node.layout}\0{location}".encode() + (
        b"\0" + canonical_json(identity).encode() if identity else b"")) + ".json"
    entry_path = os.path.join(cache_dir, entry_name)
    if not force:
        try:
            with open(entry_path, encoding="utf-8") as f:
                cached = SourceInfo(**json.load(f))
            if cached.stat == signature and cached.index.endswith(".npz") and \
                    cached.index_format == INDEX_FORMAT and os.path.exists(cached.index):
                cached.name = node.name
                return cached
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            pass
    where = f"source {node.name} ({location})"
    try:
        members = where_bytes.scan_tar(layout.nested) if is_tar else \
            where_bytes.scan_folder(progress)
        rows = [(f"{e.split}/{e.name}", e, m)
                for e, m in layout.entries(members, is_tar, where_bytes.read)]
    except SourceError as exc:
        raise SourceError(f"{where}: {exc}") from None
    if not any(e.split != "meta" for _, e, _ in rows):
        raise SourceError(f"{where}: holds no images; layout {node.layout} expects "
                          f"{layout.expects}")
    rows.sort(key=lambda r: r[0])
    for logical, e, _ in rows:
        if any(c in text for text in (logical, e.label) for c in "\n\r"):
            raise SourceError(f"{where}: member {logical!r} has a line break in its name or "
                              "label; refusing it")
    for (a, _, _), (b, _, _) in itertools.pairwise(rows):
        if a == b:
            raise SourceError(f"{where}: two members are both {a!r} in the dataset")
    synthetic = where_bytes.synthetic()
    fingerprint = digest_rows((logical, m.size, m.xxh3) for logical, _, m in rows)
    if identity:  # a layout that reads the names its own way says how, in the key
        fingerprint = hash_bytes(canonical_json({**identity, "members": fingerprint}).encode())
    os.makedirs(cache_dir, exist_ok=True)
    index_path = entry_path[:-5] + ".npz"
    _write_index(index_path, rows)
    images = sum(1 for _, e, _ in rows if e.split != "meta")
    info = SourceInfo(name=node.name, layout=node.layout, location=location,
                      fingerprint=fingerprint, files=images,
                      bytes=sum(m.size for _, _, m in rows), synthetic=synthetic,
                      stat=signature, index=index_path, container=is_tar)
    _write_atomic(entry_path, json.dumps(asdict(info), indent=1).encode())
    return info


def check_expectations(node: SourceNode, info: SourceInfo) -> None:
    """The declared file count must match (a synthetic stand-in is exempt and says so)."""
    want = node.expect.files
    if want is not None and info.files != want and not info.synthetic:
        raise SourceError(f"source {node.name} ({info.location}): expected {want} images "
                          f"({node.where}: expect.files), found {info.files}; is this the "
                          f"right {node.layout} copy?")


def _write_index(path: str, rows: list[tuple[str, Entry, IndexedMember]]) -> None:
    """The member index, column-wise: names, origins, labels and attributes (JSON) as UTF-8
    blobs, numbers as arrays."""
    columns = {"logical": [logical for logical, _, _ in rows],
               "origins": [m.path for _, _, m in rows],
               "labels": [e.label for _, e, _ in rows],
               "attrs": [e.attrs_json() for _, e, _ in rows]}
    arrays = {}
    for name, values in columns.items():
        column = StrColumn.from_list(values)
        arrays[name] = np.frombuffer(column._blob, np.uint8)
        arrays[f"{name.removesuffix('s')}_starts"] = column._starts
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays,
                 offsets=np.array([m.offset for _, _, m in rows], dtype=np.int64),
                 sizes=np.array([m.size for _, _, m in rows], dtype=np.int64),
                 xxh3=np.array([m.xxh3 for _, _, m in rows], dtype="S32"))
    os.replace(tmp, path)


def member_sets(info: SourceInfo) -> dict[str, MemberSet]:
    """The source's images by split, from its cached index (no per-member Python objects)."""
    with np.load(info.index) as z:
        logical = StrColumn(z["logical"].tobytes(), z["logical_starts"])
        blobs = {name: (z[name].tobytes(), z[f"{name.removesuffix('s')}_starts"])
                 for name in ("origins", "labels", "attrs")}
        offsets, sizes = z["offsets"], z["sizes"]
    tar = info.container
    where = f"source {info.name} ({info.location})"
    sets = {}
    for split in _splits(logical):
        start, stop = prefix_range(logical, f"{split}/")
        names = StrColumn(logical._blob, logical._starts[start:stop + 1], len(split) + 1)
        origins, labels, attrs = (StrColumn(blob, starts[start:stop + 1])
                                  for blob, starts in blobs.values())
        sets[split] = MemberSet(split, where, names, origins, offsets[start:stop],
                                sizes[start:stop], [info.fingerprint],
                                container=info.location if tar else None,
                                root=None if tar else info.location, labels=labels,
                                attrs=attrs)
    return sets


def _splits(logical: StrColumn) -> list[str]:
    """The split names of a sorted logical-name column, without a Python call per member:
    one bisection per split."""
    found, start = [], 0
    while start < len(logical):
        split = logical[start].split("/", 1)[0]
        found.append(split)
        start = prefix_range(logical, f"{split}/")[1]
    return found


def md5_of(location: str, remote: Remote | None = None) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with place(location, remote).open() as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
