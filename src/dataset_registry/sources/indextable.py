"""A source's member index as columns: what `source set` checks, fingerprints and saves.

One row per member the layout kept: its logical name ("split/name"), origin in the
source, class name, attributes (JSON), label value, offset, size, packed size and xxh3.
Strings are UTF-8 blobs (`StrColumn`), numbers numpy arrays, so a million-member source
(or the parts pool workers send back, one per nested tar) costs no Python object per
member, and sorting, checking and saving it are array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import xxhash

from ..core.filewrites import write_all
from .members import StrColumn

if TYPE_CHECKING:
    from .layouts import Entry
    from .tarindex import IndexedMember

_WIDE = 512  # bytes: a fixed-width name array no wider unless most names are that long
_GATHER_ROWS = 1 << 16  # rows gathered at once when reordering (bounded scratch memory)


@dataclass
class IndexTable:
    logical: StrColumn
    origins: StrColumn
    labels: StrColumn
    attrs: StrColumn
    offsets: np.ndarray  # int64
    sizes: np.ndarray  # int64
    xxh3: np.ndarray  # S32: hex digests
    values: np.ndarray  # int64: a table's whole-number label, -1 for none
    packed: np.ndarray  # int64: deflated bytes at offset (a zip's), else 0

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, Entry, IndexedMember]]) -> IndexTable:
        """The table of (logical name, entry, member) rows, in their order."""
        made = Rows()
        for _, e, m in rows:
            made.add(e, m.path, m.offset, m.size, m.xxh3, m.packed)
        return made.table()

    def __len__(self) -> int:
        return len(self.offsets)

    def sort_by_name(self) -> tuple[int, bool]:
        """Put the rows in logical name order (code point order, as Python sorts strings:
        UTF-8 bytes sort alike), stably; a column at a time, each old one dropped as its
        sorted copy is made, and nothing copied where they are in that order already.
        Returns the first row whose name is the one before it's (-1: none; any two rows
        of one name are then neighbours), and whether any row moved."""
        keys = _fixed(self.logical)
        if keys is None:  # (names of very unequal lengths: sorted as Python strings)
            names = self.logical.tolist()
            order = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
            moved = bool((order != np.arange(len(order))).any())
            names = [names[i] for i in order]
            same = [i for i in range(1, len(names)) if names[i] == names[i - 1]]
            repeat = same[0] if same else -1
        else:
            moved = len(keys) > 1 and not bool((keys[1:] >= keys[:-1]).all())
            if moved:
                order = np.argsort(keys, kind="stable")
                keys = keys[order]
            found = np.flatnonzero(keys[1:] == keys[:-1])
            repeat = int(found[0]) + 1 if len(found) else -1
        if moved:
            for name in _STRINGS:
                setattr(self, name, _take(getattr(self, name), order))
            for name in _NUMBERS:
                setattr(self, name, getattr(self, name)[order])
        return repeat, moved

    def lines(self, start: int = 0, stop: int | None = None) -> bytes:
        """The fingerprint's lines of rows [start, stop): f"{logical}\\t{size}\\t{xxh3}\\n"
        a row (what `core.keys.digest_rows` hashes)."""
        stop = len(self) if stop is None else stop
        return "".join(
            f"{name}\t{size}\t{digest}\n" for name, size, digest in
            zip(self.logical.slice(start, stop).tolist(), self.sizes[start:stop].tolist(),
                self.xxh3[start:stop].astype(str).tolist(), strict=True)).encode()

    def fingerprint(self) -> str:
        """xxh3 of the lines of every row in row order, made a slice of rows at a time."""
        hasher = xxhash.xxh3_128()
        for a in range(0, len(self), _GATHER_ROWS):
            hasher.update(self.lines(a, min(a + _GATHER_ROWS, len(self))))
        return hasher.hexdigest()


class Rows:
    """A table's columns made a row at a time, as a layout places members (no object kept
    per row): `table()` gives the table, ValueError where a logical name holds a line
    break (no table holds it)."""

    def __init__(self) -> None:
        self.logical: list[str] = []
        self.origins: list[str] = []
        self.labels: list[str] = []
        self.attrs: list[str] = []
        self.numbers: list[tuple[int, int, str, int, int]] = []  # offset, size, xxh3,
        # value, packed

    def add(self, entry: Entry, origin: str, offset: int, size: int, xxh3: str,
            packed: int = 0) -> None:
        self.logical.append(f"{entry.split}/{entry.name}")
        self.origins.append(origin)
        self.labels.append(entry.label)
        self.attrs.append(entry.attrs_json())
        self.numbers.append((offset, size, xxh3, -1 if entry.value is None else entry.value,
                             packed))

    def extend(self, entries: list[Entry], origins: list[str], offsets: list[int],
               sizes: list[int], digests: list[str], packed: list[int]) -> None:
        """`add` of each entry and its member, a column at a time (a run's members)."""
        self.logical += [f"{e.split}/{e.name}" for e in entries]
        self.origins += origins
        self.labels += [e.label for e in entries]
        self.attrs += [e.attrs_json() for e in entries]
        self.numbers += zip(offsets, sizes, digests,
                            [-1 if e.value is None else e.value for e in entries], packed,
                            strict=True)

    def table(self) -> IndexTable:
        offsets, sizes, digests, values, packed = zip(*self.numbers, strict=True) \
            if self.numbers else ((),) * 5
        return IndexTable(*map(StrColumn.from_list, (self.logical, self.origins, self.labels,
                                                     self.attrs)),
                          np.array(offsets, np.int64), np.array(sizes, np.int64),
                          np.array(digests, "S32"), np.array(values, np.int64),
                          np.array(packed, np.int64))


class TableBuilder:
    """A table made of parts as they come (a pool's results), each part's columns appended
    and the part let go at once: the rows are held about once, in a few large buffers,
    never as thousands of parts and their concatenation side by side."""

    def __init__(self) -> None:
        self._blobs = {name: bytearray() for name in _STRINGS}
        self._lengths: dict[str, list[np.ndarray]] = {name: [] for name in _STRINGS}
        self._numbers: dict[str, list[np.ndarray]] = {name: [] for name in _NUMBERS}

    def add(self, part: IndexTable) -> None:
        for name in _STRINGS:
            column = getattr(part, name)
            self._blobs[name] += column.lines()
            self._lengths[name].append(np.diff(column._starts).astype(np.int32))
        for name in _NUMBERS:
            self._numbers[name].append(getattr(part, name))

    def build(self) -> IndexTable:
        columns: dict[str, StrColumn | np.ndarray] = {}
        for name in _STRINGS:
            lengths = self._lengths.pop(name)
            starts = np.zeros(sum(map(len, lengths)) + 1, dtype=np.int64)
            if lengths:
                np.cumsum(np.concatenate(lengths), out=starts[1:])
            del lengths
            # the buffer itself, not a copy of it (~100 MB at a million rows): nothing
            # else holds it, and the column only reads it
            columns[name] = StrColumn(self._blobs.pop(name), starts)
        for name in _NUMBERS:
            arrays = self._numbers.pop(name)
            columns[name] = np.concatenate(arrays) if arrays else \
                np.zeros(0, dtype="S32" if name == "xxh3" else np.int64)
        return IndexTable(**columns)  # type: ignore[arg-type]


_STRINGS = ("logical", "origins", "labels", "attrs")
_NUMBERS = ("offsets", "sizes", "xxh3", "values", "packed")


def _fixed(column: StrColumn) -> np.ndarray | None:
    """The strings as a fixed-width bytes array (numpy compares them as Python compares the
    strings: no string holds a NUL), filled a slice of rows at a time, no object per row;
    None where one string is far longer than the rest (every row as wide as the longest
    would take gigabytes: the caller compares them as Python strings)."""
    starts = column._starts  # (a table's columns skip no prefix)
    lengths = np.diff(starts) - 1
    width = max(1, int(lengths.max())) if len(lengths) else 1
    if width > _WIDE and width > 4 * float(lengths.mean()):
        return None
    out = np.zeros((len(lengths), width), np.uint8)
    blob = np.frombuffer(column._blob, np.uint8)
    columns = np.arange(width)
    for a in range(0, len(lengths), _GATHER_ROWS):
        b = min(a + _GATHER_ROWS, len(lengths))
        chunk = blob[int(starts[a]):int(starts[b])]
        keep = np.ones(len(chunk), bool)  # all but each string's newline
        keep[starts[a + 1:b + 1] - starts[a] - 1] = False
        out[a:b][columns < lengths[a:b, None]] = chunk[keep]
    return out.view(f"S{width}").ravel()


def _take(column: StrColumn, order: np.ndarray) -> StrColumn:
    """The strings at `order`, gathered a slice of rows at a time (the scratch index arrays
    of one gather over a million names would take gigabytes)."""
    if len(order) <= _GATHER_ROWS:
        return column.take(order)
    parts = [column.take(order[i:i + _GATHER_ROWS]) for i in range(0, len(order), _GATHER_ROWS)]
    starts = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(np.concatenate([np.diff(p._starts) for p in parts]), out=starts[1:])
    return StrColumn(b"".join(p.lines() for p in parts), starts)


# -- what `source set` checks of the table, each naming the first offending row in name order


def bad_name(logical: str) -> str | None:
    """Why a member's logical name cannot be where recipes put it (file paths, lines of
    tab-separated files), or None."""
    if any(c in logical for c in "\n\r\0"):
        return f"member {logical!r} has a line break in its name; refusing it"
    if len(logical.encode()) > 255 and max(len(p.encode()) for p in logical.split("/")) > 255:
        return (f"member {logical[:60]!r}... has a name component longer than 255 bytes, "
                "which no file system can hold")
    return None


def first_bad_name(table: IndexTable) -> str | None:
    """`bad_name` of the first row (in row order) it refuses: rows found by searching the
    name blob, so a clean million-row table costs no Python call per row."""
    blob, starts = table.logical._blob, table.logical._starts
    suspects: set[int] = set()
    for char in (b"\r", b"\0"):
        at = blob.find(char)
        while at >= 0:
            suspects.add(int(np.searchsorted(starts, at, side="right")) - 1)
            at = blob.find(char, at + 1)
    lengths = np.diff(starts) - 1
    suspects.update(np.flatnonzero(lengths > 255).tolist())
    for i in sorted(suspects):
        why = bad_name(table.logical[i])
        if why:
            return why
    return None


def first_rows(column: StrColumn) -> list[int]:
    """The first row of each distinct non-empty string, in row order."""
    keys = _fixed(column)
    if keys is None:
        seen: dict[str, int] = {}
        for i, text in enumerate(column.tolist()):
            seen.setdefault(text, i)
        return sorted(i for text, i in seen.items() if text)
    starts = _run_starts(keys)
    _, first = np.unique(keys[starts], return_index=True)
    return [int(i) for i in np.sort(starts[first]) if keys[i] != b""]


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """The rows whose key differs from the row before's (and row 0): a string's first row
    is one of them, and a sorted table's labels come in runs (a class folder's images), so
    sorting just these finds the distinct strings (np.unique of every row sorts them all:
    most of `source check`'s checks after reading, at a million members)."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))


def split_ranges(logical: StrColumn) -> dict[str, tuple[int, int]]:
    """[start, stop) of each split's rows in a table sorted by logical name: one bisection
    per split, no Python call per row."""
    from .members import prefix_range

    found: dict[str, tuple[int, int]] = {}
    start = 0
    while start < len(logical):
        split = logical[start].split("/", 1)[0]
        found[split] = prefix_range(logical, f"{split}/")
        start = found[split][1]
    return found


def split_counts(table: IndexTable) -> dict[str, list[int]]:
    """[images, classes] per split of a sorted table (the tables in "meta" are not images)."""
    counts = {}
    for split, (start, stop) in sorted(split_ranges(table.logical).items()):
        if split != "meta":
            labels = table.labels.slice(start, stop)
            keys = _fixed(labels)
            classes = len(set(labels.tolist()) - {""}) if keys is None else \
                len(np.setdiff1d(np.unique(keys[_run_starts(keys)]), [b""]))
            counts[split] = [stop - start, classes]
    return counts


def numbers_change_labels(table: IndexTable) -> bool:
    """Whether keeping whole-number labels' values numbers some image otherwise than
    sorting them as text, in some split or over all: not for 0..k with k <= 9 (the UCI
    digits' 0..9 keep the fingerprint, keys and bytes they always had)."""
    if not len(table) or table.values.max() < 0:  # (-1: no whole-number label at all)
        return False
    ranges = split_ranges(table.logical)
    by_split = []
    for start, stop in ranges.values():
        found = np.unique(table.values[start:stop])
        found = found[found >= 0]  # (-1: no whole-number label)
        if len(found):
            by_split.append(found)
    if not by_split:
        return False
    every = np.unique(np.concatenate(by_split))
    return any(len(found) > 10 or not np.array_equal(found, np.arange(len(found)))
               for found in [*by_split, every])


def write_index(path: str, table: IndexTable) -> None:
    """The member index, column-wise: names, origins, labels and attributes (JSON) as UTF-8
    blobs, numbers as arrays."""
    from ..core.atomic import atomic_path

    arrays = {}
    for name in _STRINGS:  # (the npz names: logical, origins, labels, attrs)
        column = getattr(table, name)
        first, last = int(column._starts[0]), int(column._starts[-1])
        arrays[name] = np.frombuffer(column._blob, np.uint8)[first:last]  # (a view: no copy)
        arrays[f"{name.removesuffix('s')}_starts"] = column._starts - first
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _savez(f, {**arrays, "offsets": table.offsets, "sizes": table.sizes,
                   "xxh3": table.xxh3, "values": table.values, "packed": table.packed})


def _savez(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez(f, **arrays)`, the same bytes (a stored zip of one .npy per array, each
    forced ZIP64, as numpy writes it), each array's bytes written as they lie: np.savez
    copies them twice on the way (numpy's buffered iterator, then `tobytes`), 60% of its
    time at a million members."""
    import zipfile

    from numpy.lib import format as npy

    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                npy.write_array_header_1_0(member, npy.header_data_from_array_1_0(array))
                write_all(member, array.reshape(-1).view(np.uint8))
