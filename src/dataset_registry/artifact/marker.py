"""An artifact's layout names and its marker, `_registry.json`, as one typed value.

The marker is written last (no marker, no artifact) and read by everything that
serves, indexes or verifies an artifact: it is parsed here, once per read, into a
`Marker`, and readers use its attributes. The JSON document a build writes is
`Marker.as_dict()`; a marker read back keeps the document it was parsed from, so
fields this version does not know (a newer build's) survive and nothing is lost.

This module imports nothing of the stores or of `output`: both use it (it is what
keeps `output` and `stores.base` from importing each other).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import VerifyError

MARKER = "_registry.json"
FILES = "_files.parquet"
SKIPPED = "_skipped.parquet"
PARTS = ".parts"  # per-task provenance rows (CSV), merged by `finalize.finalize`
DONE_LOG = "done.log"  # under PARTS: a killed build's finished tasks (engine/resume.py)
SCRATCH = ".scratch"  # task files only `finish` reads; never published
RANGES = ".ranges"  # in-place writes a remote task could not make in place (see Output)
RESERVED = (MARKER, FILES, SKIPPED, PARTS, SCRATCH, RANGES)
UNPUBLISHED = (PARTS, SCRATCH, RANGES)

# What every reader of a marker relies on, and the JSON type each must have.
MARKER_FIELDS = {"key": str, "digest": str, "files": int, "bytes": int, "skipped": int}
# The build's record: absent in old markers (a default then), but of this type when there.
RECORD_FIELDS = {"name": str, "recipe": str, "version": int, "format": int, "params": dict,
                 "inputs": dict, "sources": list, "card": dict, "built": dict,
                 "synthetic": bool, "label_values": bool}
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list",
               bool: "true or false"}


@dataclass(frozen=True)
class InputRef:
    """One input of a build, as its marker records it."""

    kind: str  # "source", "file" or "dataset"
    name: str
    key: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "key": self.key}


@dataclass(frozen=True)
class Marker:
    """What `_registry.json` says of an artifact. `key`, `digest` and the counts are
    checked on every read; the rest is the build's record (recipe, params as dumped,
    inputs, sources, card, timings), as the build wrote it."""

    key: str
    digest: str
    files: int
    bytes: int
    skipped: int
    name: str = ""
    recipe: str = ""
    version: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, InputRef] = field(default_factory=dict)
    sources: tuple[Mapping[str, Any], ...] = ()
    card: Mapping[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    # built from labels a table gave as whole numbers, numbered by value (classes.py): a
    # build reading this artifact numbers its classes the same way
    label_values: bool = False
    splits: tuple[str, ...] | None = None  # declared by the recipe (`Output.splits`)
    built: Mapping[str, Any] = field(default_factory=dict)  # at, seconds, phases, executor...
    format: int = 1
    document: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """The JSON object this marker was parsed from (None: made by a build)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of this marker: what a store writes (`Store.commit`)."""
        if self.document is not None:
            return dict(self.document)
        doc: dict[str, Any] = {
            "format": self.format, "key": self.key, "name": self.name, "recipe": self.recipe,
            "version": self.version, "params": dict(self.params),
            "inputs": {role: ref.as_dict() for role, ref in self.inputs.items()},
            "sources": [dict(s) for s in self.sources], "card": dict(self.card),
            "synthetic": self.synthetic, "digest": self.digest, "files": self.files,
            "bytes": self.bytes, "skipped": self.skipped, "built": dict(self.built)}
        if self.splits is not None:
            doc["splits"] = list(self.splits)
        if self.label_values:  # (absent otherwise: every earlier marker keeps its bytes)
            doc["label_values"] = True
        return doc

    def to_json(self) -> str:
        """The marker's bytes as every store writes them (sorted keys, indent 1)."""
        return json.dumps(self.as_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str) -> Marker:
        """The marker of the JSON object `doc` read from `where`; VerifyError naming
        `where` and the field if a field readers use is missing or of the wrong type."""
        for name, kind in MARKER_FIELDS.items():
            value = doc.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise VerifyError(f"{where}: the marker lacks {name!r} (or it is not "
                                  f"{_TYPE_NAMES[kind]})")
        for name, kind in RECORD_FIELDS.items():
            value = doc.get(name)
            if value is not None and (not isinstance(value, kind) or
                                      (isinstance(value, bool) and kind is not bool)):
                raise VerifyError(f"{where}: the marker's {name!r} is {value!r:.40}, not "
                                  f"{_TYPE_NAMES[kind]}")
        splits = doc.get("splits")
        if splits is not None and not (isinstance(splits, list) and all(
                isinstance(s, str) and s and "/" not in s for s in splits)):
            raise VerifyError(f"{where}: the marker's splits {splits!r} are not a list of "
                              "split names")
        try:
            inputs = {role: InputRef(str(i["kind"]), str(i["name"]), str(i["key"]))
                      for role, i in (doc.get("inputs") or {}).items()}
            return cls(key=doc["key"], digest=doc["digest"], files=doc["files"],
                       bytes=doc["bytes"], skipped=doc["skipped"], name=doc.get("name", ""),
                       recipe=doc.get("recipe", ""), version=doc.get("version", 0),
                       params=doc.get("params") or {}, inputs=inputs,
                       sources=tuple(doc.get("sources") or ()), card=doc.get("card") or {},
                       synthetic=bool(doc.get("synthetic", False)),
                       label_values=bool(doc.get("label_values", False)),
                       splits=None if splits is None else tuple(splits),
                       built=doc.get("built") or {}, format=doc.get("format", 1),
                       document=doc)
        except (AttributeError, KeyError, TypeError) as exc:
            raise VerifyError(f"{where}: the marker's build record is damaged "
                              f"({type(exc).__name__}: {exc})") from None


def table_damage(size: int, tail: bytes, head: bytes | None = None) -> str | None:
    """Why a file table of `size` bytes ending in `tail` (its last 8) and starting with
    `head` (its first 4, if read) cannot be served, or None: a whole Parquet file starts
    and ends with `PAR1`, its footer length just before the end. Two small reads tell a
    missing, truncated or foreign table from a whole one (`verify` reads every row)."""
    why = None
    if size < 12:
        why = f"{size} bytes, too short for a Parquet file"
    elif head is not None and head != b"PAR1":
        why = "not a Parquet file (no PAR1 at its start)"
    elif tail[4:] != b"PAR1":
        why = "truncated, or not a Parquet file (no PAR1 at its end)"
    elif int.from_bytes(tail[:4], "little") + 12 > size:
        why = "truncated (its footer claims more bytes than the file has)"
    return f"unreadable as a file table ({why})" if why else None


def local_table_damage(path: str) -> str | None:
    """`table_damage` of the local file table at `path` ("missing" if it is not there)."""
    import os

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4)
            f.seek(max(0, size - 8))
            tail = f.read(8)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return table_damage(size, tail, head)


def parse_marker(data: bytes, where: str, key: str) -> Marker:
    """The marker `data` read from `where`, checked: it parses, has the fields readers use,
    and belongs to artifact `key` (a marker copied from another artifact does not)."""
    if not data.strip():
        raise VerifyError(f"{where}: the marker is empty")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerifyError(f"{where}: the marker does not parse as JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise VerifyError(f"{where}: the marker is not a JSON object")
    marker = Marker.from_dict(doc, where)
    if marker.key != key:
        raise VerifyError(f"{where}: the marker is artifact {marker.key}'s, not {key}'s "
                          "(copied from another artifact?)")
    return marker
