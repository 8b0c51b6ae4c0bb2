"""Sources: where the user's raw data lives, its layout, and its content fingerprint.

A source's identity is its content: xxh3 over its members' logical names,
sizes and hashes, so moving a tar, or extracting it into a folder, keeps the
fingerprint. Fingerprints and member indexes are cached by the location's
stat signature, so an unchanged source is never re-read.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .errors import SourceError
from .keys import digest_rows, hash_bytes
from .manifest import SourceNode
from .members import MemberSet, StrColumn, prefix_range
from .remote import Remote
from .sourcefs import place
from .tarindex import IndexedMember

_VAL = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
_WNID = re.compile(r"^n\d{8}$")
_KAGGLE = "ILSVRC/Data/CLS-LOC/"
_KAGGLE_META = ("LOC_synset_mapping.txt", "LOC_val_solution.csv")

LAYOUT_HELP = {
    "imagenet-val": "flat ILSVRC2012_val_%08d.JPEG files, as ILSVRC2012_img_val.tar or a folder",
    "imagenet-train": "per-class <wnid>.tar members inside ILSVRC2012_img_train.tar, "
                      "or a folder of <wnid>/ folders",
    "kaggle-cls-loc": "a folder holding ILSVRC/Data/CLS-LOC/{train,val}/, LOC_synset_mapping.txt "
                      "and LOC_val_solution.csv",
}


def classify(layout: str, origin: str, is_tar: bool) -> tuple[str, str] | None:
    """(split, logical name) of a member, None to ignore it; raise if it breaks the layout."""
    parts = origin.split("/")
    if layout == "imagenet-val":
        if len(parts) == 1 and _VAL.match(origin):
            return "val", origin
    elif layout == "imagenet-train":
        if len(parts) == 2 and _WNID.match(parts[0].removesuffix(".tar" if is_tar else "")) and \
                (parts[0].endswith(".tar") == is_tar) and parts[1]:
            return "train", f"{parts[0].removesuffix('.tar')}/{parts[1]}"
    elif layout == "kaggle-cls-loc":
        if origin in _KAGGLE_META:
            return "meta", origin
        if origin.startswith(_KAGGLE + "train/") and len(parts) == 6 and _WNID.match(parts[4]):
            return "train", f"{parts[4]}/{parts[5]}"
        if origin.startswith(_KAGGLE + "val/") and len(parts) == 5:
            return "val", parts[4]
        return None  # test/, Annotations/, ImageSets/ and other CSVs are not indexed
    raise SourceError(f"member {origin!r} does not fit layout {layout!r}: expected "
                      f"{LAYOUT_HELP[layout]}")


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
    where_bytes = place(location, remote)
    location = where_bytes.location
    if not where_bytes.exists():
        raise SourceError(f"source {node.name}: {location} does not exist; point it at your "
                          f"copy with: registry source set {node.name} PATH  "
                          f"({LAYOUT_HELP[node.layout]})")
    is_tar = where_bytes.is_file()
    if is_tar and node.layout == "kaggle-cls-loc":
        raise SourceError(f"source {node.name}: {location} is a file, but layout kaggle-cls-loc "
                          f"expects {LAYOUT_HELP[node.layout]} (unzip the Kaggle download first)")
    signature = where_bytes.signature()
    entry_name = hash_bytes(f"{node.layout}\0{location}".encode()) + ".json"
    entry_path = os.path.join(cache_dir, entry_name)
    if not force:
        try:
            with open(entry_path, encoding="utf-8") as f:
                cached = SourceInfo(**json.load(f))
            if cached.stat == signature and cached.index.endswith(".npz") and \
                    os.path.exists(cached.index):
                cached.name = node.name
                return cached
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            pass
    where = f"source {node.name} ({location})"
    try:
        # only the per-class tars at the top are opened: a .tar inside one is an image file
        nested = (lambda name: name.endswith(".tar") and "/" not in name) \
            if node.layout == "imagenet-train" else (lambda name: False)
        members = where_bytes.scan_tar(nested) if is_tar else where_bytes.scan_folder(progress)
        rows = []
        for m in members:
            split_name = classify(node.layout, m.path, is_tar)
            if split_name is not None:
                rows.append((f"{split_name[0]}/{split_name[1]}", m))
    except SourceError as exc:
        raise SourceError(f"{where}: {exc}") from None
    if not rows:
        raise SourceError(f"{where}: holds no images; layout {node.layout} expects "
                          f"{LAYOUT_HELP[node.layout]}")
    rows.sort(key=lambda r: r[0])
    if any("\n" in logical or "\r" in logical for logical, _ in rows):
        raise SourceError(f"{where}: a member name holds a line break; refusing it")
    synthetic = where_bytes.synthetic()
    fingerprint = digest_rows((logical, m.size, m.xxh3) for logical, m in rows)
    os.makedirs(cache_dir, exist_ok=True)
    index_path = entry_path[:-5] + ".npz"
    _write_index(index_path, rows)
    images = sum(1 for logical, _ in rows if not logical.startswith("meta/"))
    info = SourceInfo(name=node.name, layout=node.layout, location=location,
                      fingerprint=fingerprint, files=images,
                      bytes=sum(m.size for _, m in rows), synthetic=synthetic,
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


def _write_index(path: str, rows: list[tuple[str, IndexedMember]]) -> None:
    """The member index, column-wise: names and origins as UTF-8 blobs, numbers as arrays."""
    logical = StrColumn.from_list([logical for logical, _ in rows])
    origins = StrColumn.from_list([m.path for _, m in rows])
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, logical=np.frombuffer(logical._blob, np.uint8),
                 logical_starts=logical._starts,
                 origins=np.frombuffer(origins._blob, np.uint8), origin_starts=origins._starts,
                 offsets=np.array([m.offset for _, m in rows], dtype=np.int64),
                 sizes=np.array([m.size for _, m in rows], dtype=np.int64),
                 xxh3=np.array([m.xxh3 for _, m in rows], dtype="S32"))
    os.replace(tmp, path)


def member_sets(info: SourceInfo) -> dict[str, MemberSet]:
    """The source's images by split, from its cached index (no per-member Python objects)."""
    with np.load(info.index) as z:
        logical = StrColumn(z["logical"].tobytes(), z["logical_starts"])
        origin_blob, origin_starts = z["origins"].tobytes(), z["origin_starts"]
        offsets, sizes = z["offsets"], z["sizes"]
    tar = info.container
    where = f"source {info.name} ({info.location})"
    sets = {}
    for split in ("train", "val", "meta"):
        start, stop = prefix_range(logical, f"{split}/")
        if stop == start:
            continue
        names = StrColumn(logical._blob, logical._starts[start:stop + 1], len(split) + 1)
        origins = StrColumn(origin_blob, origin_starts[start:stop + 1])
        sets[split] = MemberSet(split, where, names, origins, offsets[start:stop],
                                sizes[start:stop], [info.fingerprint],
                                container=info.location if tar else None,
                                root=None if tar else info.location)
    return sets


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
