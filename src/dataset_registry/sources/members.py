"""Image members as recipes see them: a name, and where its bytes lie.

Sources (tars, folders) and built datasets both present their images as a
`MemberSet`: sorted names, origins, offsets and sizes stored column-wise
(UTF-8 blobs and numpy arrays), so 1.28M members cost ~100 bytes each and no
Python object per member. `MemberRef`s are made on demand; a slice shares its
parent's columns and pickles only its own range, so tasks travel compactly.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from ..core.remote import Remote, is_remote
from ..errors import SourceChangedError, SourceError
from .zipindex import unpacked


@dataclass(frozen=True, slots=True)
class MemberRef:
    name: str  # logical name in its split: "ILSVRC2012_val_00000001.JPEG", "n01440764/x.JPEG"
    path: str  # the file holding the bytes (a tar, or the image itself): a path or URL
    offset: int  # where the bytes start in `path`
    size: int
    origin: str  # the member as the raw source names it, for provenance
    source: str  # fingerprint of the raw source it came from
    label: str = ""  # class name, "" if unlabelled
    attrs: str = ""  # the layout's free attributes, as canonical JSON ("" if none)
    xxh3: str = ""  # what its bytes hashed to when indexed ("" unknown: not checked on read)
    changed: str = ""  # what to say, and do, if they no longer do (see `MemberSet.changed`)
    packed: int = 0  # deflated bytes at `offset` (a zip member), 0: its bytes lie there
    # the image check's verdict on these bytes, known from an earlier build (imagecheck.py):
    # None not known, "" usable, else why it was refused
    checked: str | None = None


CHECKED_OK, REFUSED = 1, 2  # `MemberSet.checks`


class StrColumn(Sequence[str]):
    """Strings as one UTF-8 blob, each followed by a newline, and n+1 start offsets.

    `prefix` bytes are skipped on read (a split's "val/"). A contiguous range is
    then directly the bytes of a one-name-a-line text file.
    """

    __slots__ = ("_blob", "_prefix", "_starts")

    def __init__(self, blob: bytes | bytearray, starts: np.ndarray, prefix: int = 0) -> None:
        self._blob, self._starts, self._prefix = blob, starts, prefix

    @classmethod
    def from_list(cls, items: Sequence[str]) -> StrColumn:
        text = "\n".join(items)
        if text.count("\n") != max(0, len(items) - 1):
            raise ValueError("names must not contain newlines")
        blob = (text + "\n").encode() if len(items) else b""
        lengths = np.fromiter(map(len, items), np.int64, len(items))
        if len(blob) != int(lengths.sum()) + len(items):  # (not all ASCII: count bytes)
            lengths = np.fromiter((len(s.encode()) for s in items), np.int64, len(items))
        starts = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths + 1, out=starts[1:])
        return cls(blob, starts)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        if i < 0:
            i += len(self)
        return self._blob[int(self._starts[i]) + self._prefix:
                          int(self._starts[i + 1]) - 1].decode()

    def slice(self, start: int, stop: int) -> StrColumn:
        return StrColumn(self._blob, self._starts[start:stop + 1], self._prefix)

    def lines(self) -> bytes | bytearray:
        """All strings, one a line: a plain copy of the blob when there is no prefix (the
        blob itself when the column is all of it: read it, do not change it)."""
        if self._prefix == 0:
            first, last = int(self._starts[0]), int(self._starts[-1])
            if first == 0 and last == len(self._blob):
                return self._blob  # (the whole blob: no copy)
            return self._blob[first:last]
        return _gather(self._blob, self._starts[:-1] + self._prefix, self._starts[1:])[0]

    def find(self, text: str) -> int:
        """The index of the first string containing `text` (no newline), or -1: one bytes
        search over the blob, not a Python call per string."""
        at = self._blob.find(text.encode(), int(self._starts[0]), int(self._starts[-1]))
        while at >= 0:
            i = int(np.searchsorted(self._starts, at, side="right")) - 1
            if at >= self._starts[i] + self._prefix:  # not inside a skipped prefix
                return i
            at = self._blob.find(text.encode(), at + 1, int(self._starts[-1]))
        return -1

    def byte_lengths(self) -> np.ndarray:
        """Each string's length in UTF-8 bytes (its skipped prefix left out)."""
        return np.diff(self._starts) - 1 - self._prefix

    def tolist(self) -> list[str]:
        """All strings at once (one decode and split, not a Python call per item)."""
        return self.lines().decode().split("\n")[:-1] if len(self) else []

    def take(self, indices: Sequence[int]) -> StrColumn:
        """A compact copy of the strings at `indices` (gathered in numpy, no per-item
        Python: a plan takes every member once)."""
        at = np.asarray(indices, dtype=np.int64)
        return StrColumn(*_gather(self._blob, self._starts[at] + self._prefix,
                                  self._starts[at + 1]))

    def __getstate__(self) -> tuple[bytes | bytearray, np.ndarray, int]:
        a, b = int(self._starts[0]), int(self._starts[-1])
        return self._blob[a:b], self._starts - a, self._prefix

    def __setstate__(self, state: tuple[bytes | bytearray, np.ndarray, int]) -> None:
        self._blob, self._starts, self._prefix = state


def _gather(blob: bytes | bytearray, begins: np.ndarray, ends: np.ndarray
            ) -> tuple[bytes, np.ndarray]:
    """blob[begins[i]:ends[i]] for every i, back to back, and the n+1 start offsets."""
    lengths = np.asarray(ends, dtype=np.int64) - begins
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    total = int(starts[-1])
    if total == 0:
        return b"", starts
    # output byte k comes from begins[i] + (k - starts[i]), i the string holding k
    source = np.repeat(begins - starts[:-1], lengths) + np.arange(total, dtype=np.int64)
    return np.frombuffer(blob, dtype=np.uint8)[source].tobytes(), starts


class MemberSet:
    """The images of one split, sorted by logical name, column-wise.

    Bytes live in `container` (one tar) at `offsets`, or, for folders and built
    datasets, in files under `root`: `root/<origin>` or `root/<name>` (`path_from`).
    `digests` (raw 16-byte xxh3s, numpy `V16`) are what each member hashed to when it
    was indexed: every read is checked against them (`read_members`), so a member
    edited in place since can never be built under the key of its old content;
    `changed` is the sentence such a read fails with (which command re-indexes).
    """

    def __init__(self, split: str, where: str, names: StrColumn, origins: StrColumn,
                 offsets: np.ndarray, sizes: np.ndarray, sources: list[str],
                 source_codes: np.ndarray | None = None, *, container: str | None = None,
                 root: str | None = None, path_from: str = "origin",
                 labels: StrColumn | None = None, attrs: StrColumn | None = None,
                 digests: np.ndarray | None = None, changed: str = "",
                 values: np.ndarray | None = None, packed: np.ndarray | None = None,
                 checks: np.ndarray | None = None, refusals: StrColumn | None = None) -> None:
        self.split, self.where = split, where
        self.names, self.origins = names, origins
        self.offsets, self.sizes = offsets, sizes
        self.sources, self.source_codes = sources, source_codes
        self.container, self.root, self.path_from = container, root, path_from
        self.labels, self.attrs = labels, attrs  # class names and attributes, if known
        self.digests, self.changed = digests, changed
        # each label as a whole number (int64, -1: none), where a labels table gave whole
        # numbers: such labels keep their value (classes.default_classes); else None
        self.values = values
        self.packed = packed  # deflated sizes of a zip's members (0: stored), else None
        # the image checks already known by digest (engine/imagechecks.py), uint8: 0 not
        # known, CHECKED_OK, REFUSED (why: `refusals`); None: none known
        self.checks, self.refusals = checks, refusals

    def class_names(self) -> list[str]:
        """The distinct class names of the set, sorted (the default class scheme)."""
        if self.labels is None:
            return []
        return sorted(set(self.labels.tolist()) - {""})

    @classmethod
    def from_refs(cls, split: str, where: str, refs: list[MemberRef], root: str,
                  changed: str = "", values: np.ndarray | None = None) -> MemberSet:
        """A set over files under `root` (named by `name`), e.g. a built dataset's images;
        their `xxh3`s, when every ref has one, are checked on read."""
        order = sorted(range(len(refs)), key=lambda i: refs[i].name)
        refs = [refs[i] for i in order]
        values = values[np.array(order, dtype=np.int64)] if values is not None else None
        sources = sorted({r.source for r in refs})
        code = {s: i for i, s in enumerate(sources)}
        digests = hex_digests([r.xxh3 for r in refs]) if all(r.xxh3 for r in refs) else None
        return cls(split, where, StrColumn.from_list([r.name for r in refs]),
                   StrColumn.from_list([r.origin for r in refs]),
                   np.array([r.offset for r in refs], dtype=np.int64),
                   np.array([r.size for r in refs], dtype=np.int64), sources,
                   np.array([code[r.source] for r in refs], dtype=np.int32),
                   root=root, path_from="name",
                   labels=StrColumn.from_list([r.label for r in refs]),
                   attrs=StrColumn.from_list([r.attrs for r in refs]),
                   digests=digests, changed=changed, values=values)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> MemberRef:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"member {i} of {len(self)}")
        return self.slice(i, i + 1)._refs()[0]

    def __iter__(self) -> Iterator[MemberRef]:
        for start in range(0, len(self), _REFS_AT_ONCE):
            yield from self.slice(start, min(start + _REFS_AT_ONCE, len(self)))._refs()

    def _refs(self) -> list[MemberRef]:
        """Every member's ref, each column read as one list (a numpy scalar for each field
        of each member cost as much again as making the refs)."""
        n = len(self)
        names, origins = self.names.tolist(), self.origins.tolist()
        if self.container is not None:
            paths = [self.container] * n
        else:
            rels = origins if self.path_from == "origin" else names
            paths = [os.path.join(self.root or "", *rel.split("/")) for rel in rels]
        codes = self.source_codes.tolist() if self.source_codes is not None else [0] * n
        hexes = np.ascontiguousarray(self.digests).tobytes().hex() \
            if self.digests is not None else ""
        digests = [hexes[32 * k:32 * k + 32] for k in range(n)] if hexes else [""] * n
        return [MemberRef(name, path, offset, size, origin, self.sources[code], label, attrs,
                          digest, self.changed, packed, checked)
                for name, path, offset, size, origin, code, label, attrs, digest, packed,
                checked in zip(names, paths, self.offsets.tolist(), self.sizes.tolist(),
                               origins, codes, _column(self.labels, n), _column(self.attrs, n),
                               digests, self.packed.tolist() if self.packed is not None
                               else [0] * n, self._verdicts(), strict=True)]

    def _verdicts(self) -> list[str | None]:
        """Each member's known check verdict (`MemberRef.checked`)."""
        if self.checks is None:
            return [None] * len(self)
        refusals = self.refusals.tolist() if self.refusals is not None else None
        verdicts: list[str | None] = []
        for k, state in enumerate(self.checks.tolist()):
            if state == REFUSED:  # why, where known
                verdicts.append(refusals[k] if refusals is not None else None)
            else:
                verdicts.append("" if state == CHECKED_OK else None)
        return verdicts

    def index(self, name: str) -> int:
        """Position of `name` (binary search over the sorted names), or -1."""
        i = bisect.bisect_left(self.names, name)
        return i if i < len(self) and self.names[i] == name else -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.index(name) >= 0

    def get(self, name: str) -> MemberRef:
        i = self.index(name)
        if i < 0:
            raise SourceError(f"{self.where}: has no image {name!r} (it holds {len(self)} images)")
        return self[i]

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        """[start, stop) of the names starting with `prefix` (they are contiguous: sorted)."""
        return prefix_range(self.names, prefix)

    def take(self, indices: np.ndarray) -> MemberSet:
        """A compact subset (a slice when `indices` is one ascending contiguous run)."""
        # (its ends alone do not say so: class-folder order permutes a split whose names
        # do not start with the class, e.g. 0, 5, 2, ..., 199 spans 200 members too)
        if len(indices) and int(indices[-1]) - int(indices[0]) + 1 == len(indices) and \
                bool((np.diff(indices) == 1).all()):
            return self.slice(int(indices[0]), int(indices[-1]) + 1)
        codes = self.source_codes[indices] if self.source_codes is not None else None
        return MemberSet(self.split, self.where, self.names.take(indices),
                         self.origins.take(indices), self.offsets[indices], self.sizes[indices],
                         self.sources, codes, container=self.container, root=self.root,
                         path_from=self.path_from, labels=_take(self.labels, indices),
                         attrs=_take(self.attrs, indices),
                         digests=self.digests[indices] if self.digests is not None else None,
                         changed=self.changed,
                         values=self.values[indices] if self.values is not None else None,
                         packed=self.packed[indices] if self.packed is not None else None,
                         checks=self.checks[indices] if self.checks is not None else None,
                         refusals=_take(self.refusals, indices))

    def slice(self, start: int, stop: int) -> MemberSet:
        codes = self.source_codes[start:stop] if self.source_codes is not None else None
        return MemberSet(self.split, self.where, self.names.slice(start, stop),
                         self.origins.slice(start, stop), self.offsets[start:stop],
                         self.sizes[start:stop], self.sources, codes,
                         container=self.container, root=self.root, path_from=self.path_from,
                         labels=self.labels.slice(start, stop) if self.labels else None,
                         attrs=self.attrs.slice(start, stop) if self.attrs else None,
                         digests=self.digests[start:stop] if self.digests is not None else None,
                         changed=self.changed,
                         values=self.values[start:stop] if self.values is not None else None,
                         packed=self.packed[start:stop] if self.packed is not None else None,
                         checks=self.checks[start:stop] if self.checks is not None else None,
                         refusals=self.refusals.slice(start, stop) if self.refusals else None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # views would pickle their whole base
        for key in ("offsets", "sizes", "source_codes", "digests", "values", "packed",
                    "checks"):
            if state[key] is not None:
                state[key] = np.ascontiguousarray(state[key]).copy()
        return state


_REFS_AT_ONCE = 4096  # refs made a batch at a time: a whole 1.28M-member set would not be


def _column(strings: StrColumn | None, n: int) -> list[str]:
    return strings.tolist() if strings is not None else [""] * n


def labelled_values(values: np.ndarray) -> np.ndarray | None:
    """`values` if some member has one (>= 0), else None: most sets have none."""
    return values if len(values) and bool((values >= 0).any()) else None


def hex_digests(hexes: Sequence[str] | np.ndarray) -> np.ndarray:
    """xxh3-128 hex digests (str, or the index's `S32` bytes) as raw 16-byte `V16` values:
    one conversion for the whole column, half the memory of the hex."""
    raw = bytes.fromhex("".join(h.decode() if isinstance(h, bytes) else h for h in hexes)) \
        if not isinstance(hexes, np.ndarray) else bytes.fromhex(hexes.tobytes().decode())
    return np.frombuffer(raw, dtype="V16")


def _take(column: StrColumn | None, indices: np.ndarray) -> StrColumn | None:
    return column.take(indices) if column is not None else None


def prefix_range(names: Sequence[str], prefix: str, lo: int = 0) -> tuple[int, int]:
    """[start, stop) of the sorted `names` (from `lo` on) that start with `prefix`: up to
    the first name at or past the least string after all of theirs (`f/` -> `f0`)."""
    start = bisect.bisect_left(names, prefix, lo)
    head = prefix.rstrip("\U0010ffff")  # (a last character that has none after it)
    if not head:
        return start, len(names)
    return start, bisect.bisect_left(names, head[:-1] + chr(ord(head[-1]) + 1), start)


_thread = threading.local()  # open files per thread: a Dask worker may run tasks in threads
_remote = Remote()


def use_remote(remote: Remote) -> None:
    """How this process reaches members on object storage (set in each task)."""
    global _remote
    _remote = remote


def read_members(refs: Iterable[MemberRef]) -> Iterator[tuple[MemberRef, bytes]]:
    """(ref, bytes) in order. Members on object storage come in batches of concurrent
    range requests, neighbours in one tar merged into one request. The ref handed out
    last is `member_in_hand()` until the next (None once all are), so a task that fails
    while processing one can name it."""
    for ref, data in _read_members(refs):
        _thread.in_hand = ref
        yield ref, data
    _thread.in_hand = None


def member_in_hand() -> MemberRef | None:
    """The member this thread's recipe code is processing, as far as `read_members` knows."""
    return getattr(_thread, "in_hand", None)


def put_down() -> None:
    """Forget the member in hand (before a task starts)."""
    _thread.in_hand = None


def _read_members(refs: Iterable[MemberRef]) -> Iterator[tuple[MemberRef, bytes]]:
    batch: list[MemberRef] = []
    size = 0
    for ref in refs:
        if not is_remote(ref.path):
            yield from _fetch_remote(batch)
            batch, size = [], 0
            yield ref, read_member(ref)
            continue
        batch.append(ref)
        size += ref.size
        if len(batch) >= REMOTE_BATCH or size >= REMOTE_BATCH_BYTES:
            yield from _fetch_remote(batch)
            batch, size = [], 0
    yield from _fetch_remote(batch)


REMOTE_BATCH = 256  # members a round of requests
REMOTE_BATCH_BYTES = 32 << 20
_MERGE_GAP = 64 << 10  # neighbours closer than this are read in one request


def _fetch_remote(refs: list[MemberRef]) -> Iterator[tuple[MemberRef, bytes]]:
    if not refs:
        return
    spans: list[list[Any]] = []  # [path, start, end, [refs]]
    for ref in sorted(refs, key=lambda r: (r.path, r.offset)):
        last = spans[-1] if spans else None
        if last and last[0] == ref.path and 0 <= ref.offset - last[2] <= _MERGE_GAP:
            last[2] = max(last[2], ref.offset + (ref.packed or ref.size))
            last[3].append(ref)
        else:
            spans.append([ref.path, ref.offset, ref.offset + (ref.packed or ref.size), [ref]])
    fs = _remote.filesystem(refs[0].path)
    try:
        blobs = _remote.call(f"reading {len(refs)} members from {refs[0].path}",
                             fs.cat_ranges, [s[0] for s in spans], [s[1] for s in spans],
                             [s[2] for s in spans], on_error="raise")
    except FileNotFoundError as exc:
        raise SourceError(_remote.redact(f"{exc}: not found; has the source changed?")) \
            from None
    got: dict[tuple[str, int], bytes] = {}
    for (path, start, _, members), blob in zip(spans, blobs, strict=True):
        for ref in members:
            stored = ref.packed or ref.size
            data = blob[ref.offset - start:ref.offset - start + stored]
            if len(data) != stored:
                raise _truncated(ref, f"{path}: {ref.origin} is truncated ({len(data)} of "
                                 f"{stored} bytes)")
            got[(path, ref.offset)] = checked(ref, unpacked(data, ref.size, ref.packed,
                                                            f"{path}: {ref.origin}"))
    for ref in refs:
        yield ref, got[(ref.path, ref.offset)]


def read_member(ref: MemberRef) -> bytes:
    """The member's bytes; file descriptors are kept open per thread for speed."""
    if is_remote(ref.path):
        return next(_fetch_remote([ref]))[1]
    _open_files = _thread.__dict__.setdefault("files", {})
    fd = _open_files.get(ref.path)
    if fd is None:
        if len(_open_files) >= 64:
            for old in _open_files.values():
                os.close(old)
            _open_files.clear()
        try:
            fd = os.open(ref.path, os.O_RDONLY)
        except OSError as exc:
            raise _truncated(ref, f"{ref.path}: cannot read {ref.origin}: "
                             f"{exc.strerror}") from None
        _open_files[ref.path] = fd
    stored = ref.packed or ref.size
    data = os.pread(fd, stored, ref.offset)
    if len(data) != stored:
        raise _truncated(ref, f"{ref.path}: {ref.origin} is truncated "
                         f"({len(data)} of {stored} bytes)")
    return checked(ref, unpacked(data, ref.size, ref.packed, f"{ref.path}: {ref.origin}"))


def _truncated(ref: MemberRef, what: str) -> SourceError:
    """A member whose bytes are gone or short: as a changed one (`checked`) where its set
    says what to do then (an artifact: repair it), else a question about the source."""
    if ref.changed:
        return SourceChangedError(f"{what}: {ref.changed}")
    return SourceError(f"{what}; has the source changed?")


def checked(ref: MemberRef, data: bytes) -> bytes:
    """`data`, if it hashes to what `ref` was indexed with: a member edited in place since
    (same size and mtime: `cp -p`, `rsync -t`, a restore) is refused, never built under the
    key of its old content. xxh3 runs at memory speed, and a recipe that records the hash
    of the bytes it copies takes `ref.xxh3` instead of hashing them again."""
    if ref.xxh3:
        got = xxhash.xxh3_128_hexdigest(data)
        if got != ref.xxh3:
            raise SourceChangedError(
                f"{ref.path}: {ref.origin!r} changed since it was indexed (its bytes hash to "
                f"{got[:16]}, the index says {ref.xxh3[:16]}): "
                f"{ref.changed or 'the source changed since it was indexed'}")
    return data
