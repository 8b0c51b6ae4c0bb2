"""`registry.lock`: the keys of a project's sources and datasets, committed beside its
registry.toml so that a clone without the raw data names every artifact by its key.

One TOML table per dataset (`[datasets."NAME"]`: key, recipe, version) and per source
(`[sources."NAME"]`: fingerprint, layout, files, bytes), sorted by section and name,
so the same content is the same bytes and a change is a small diff. A source's key is
its fingerprint: a dataset's key follows from its manifest and its sources' keys, so a
name whose source is not set on this machine resolves through the lock to the key the
machine that holds the data computed (the dataset entries are there to read and diff).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..core.atomic import write_atomic
from ..errors import BadInputError

LOCK = "registry.lock"
FORMAT = 1
_HEX32 = re.compile(r"[0-9a-f]{32}")
HEADER = (f"# {LOCK}: the content keys of this project's sources and datasets, written by\n"
          "# `registry lock`, `registry resolve` and `registry source set`. Commit it: with it\n"
          "# a clone that lacks the raw data names every dataset built in a shared store.\n")


@dataclass(frozen=True)
class LockedSource:
    fingerprint: str
    layout: str
    files: int
    bytes: int


@dataclass(frozen=True)
class LockedDataset:
    key: str
    recipe: str
    version: int


@dataclass
class Lock:
    sources: dict[str, LockedSource] = field(default_factory=dict)
    datasets: dict[str, LockedDataset] = field(default_factory=dict)

    def text(self) -> str:
        """The file's text: a function of the content alone (sorted, one form per value)."""
        out = [HEADER, f"format = {FORMAT}\n"]
        for name, d in sorted(self.datasets.items()):
            out.append(f"\n[datasets.{_quoted(name)}]\nkey = {_quoted(d.key)}\n"
                       f"recipe = {_quoted(d.recipe)}\nversion = {d.version}\n")
        for name, s in sorted(self.sources.items()):
            out.append(f"\n[sources.{_quoted(name)}]\nfingerprint = {_quoted(s.fingerprint)}\n"
                       f"layout = {_quoted(s.layout)}\nfiles = {s.files}\nbytes = {s.bytes}\n")
        return "".join(out)

    def merged(self, sources: Mapping[str, LockedSource],
               datasets: Mapping[str, LockedDataset]) -> Lock:
        """This lock with `sources` and `datasets` written over their names; others kept."""
        return Lock({**self.sources, **sources}, {**self.datasets, **datasets})


def _quoted(text: str) -> str:
    # a JSON string is a TOML basic string (the same escapes), and one form per text
    return json.dumps(text, ensure_ascii=False)


def load(path: str) -> Lock:
    """The lock at `path` (empty when there is none); a malformed one is a BadInputError
    naming the file and the line or table that is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return Lock()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read ({exc.strerror})") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path}: not valid TOML ({exc}); restore it from version "
                            "control or write it again with: registry lock") from None
    if doc.get("format", FORMAT) != FORMAT:
        raise BadInputError(f"{path}: format {doc.get('format')!r}, this registry reads "
                            f"format {FORMAT}")
    unknown = set(doc) - {"format", "sources", "datasets"}
    if unknown:
        raise BadInputError(f"{path}: unknown table or field {sorted(unknown)[0]!r} "
                            "(it holds [sources.NAME] and [datasets.NAME])")
    sources = {name: LockedSource(**_entry(path, "sources", name, entry, _SOURCE))
               for name, entry in _tables(path, doc, "sources").items()}
    datasets = {name: LockedDataset(**_entry(path, "datasets", name, entry, _DATASET))
                for name, entry in _tables(path, doc, "datasets").items()}
    return Lock(sources, datasets)


_SOURCE = {"fingerprint": str, "layout": str, "files": int, "bytes": int}
_DATASET = {"key": str, "recipe": str, "version": int}


def _tables(path: str, doc: dict, section: str) -> dict[str, dict]:
    tables = doc.get(section, {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise BadInputError(f"{path}: {section} must be tables ([{section}.\"NAME\"])")
    return tables


def _entry(path: str, section: str, name: str, entry: dict, fields: dict[str, type]) -> dict:
    where = f"{path}: [{section}.{_quoted(name)}]"
    if set(entry) != set(fields):
        missing, extra = sorted(set(fields) - set(entry)), sorted(set(entry) - set(fields))
        raise BadInputError(f"{where}: " + (f"lacks {missing[0]}" if missing else
                                            f"unknown field {extra[0]}"))
    for key, kind in fields.items():
        value = entry[key]
        if not isinstance(value, kind) or isinstance(value, bool) or \
                (kind is int and value < 0):
            raise BadInputError(f"{where}: {key} must be a "
                                f"{'whole number >= 0' if kind is int else 'string'}, "
                                f"not {value!r}")
    digest = entry.get("fingerprint", entry.get("key"))
    if not _HEX32.fullmatch(digest):
        raise BadInputError(f"{where}: {digest!r} is not a key (32 lowercase hex digits)")
    return entry


def save(path: str, lock: Lock) -> bool:
    """Write `lock` to `path` atomically (temp file, then rename), unless the file already
    holds exactly that text; True if it wrote."""
    text = lock.text()
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text)  # a plain file's mode: teammates on a shared disk read it too
    return True


def update(path: str, guard_dir: str, sources: Mapping[str, LockedSource],
           datasets: Mapping[str, LockedDataset]) -> bool:
    """Write `sources` and `datasets` over their entries in the lock at `path`, if there
    is one, keeping every other entry; read and written under a lock file in `guard_dir`
    (the state folder), so two commands updating at once lose neither's entries. True if
    it wrote. No lock, no write: a project takes one on with `registry lock`."""
    with guard(guard_dir):
        if not os.path.exists(path):
            return False
        return save(path, load(path).merged(sources, datasets))


@contextmanager
def guard(folder: str) -> Iterator[None]:
    import fcntl

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{LOCK}.guard"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
