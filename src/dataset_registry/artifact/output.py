"""Writing an artifact: files into staging, one provenance row per file.

Each task appends its rows to its own CSV part (so a worker's memory stays
flat and no rows travel back to the coordinator); `finalize` turns the parts
into `_files.parquet`, sorted, and computes the artifact's content digest.
Files only `finish` needs go under `scratch()`; neither they nor the parts
are ever published.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import xxhash

from ..core.filewrites import pwrite_all, write_all
from ..core.keys import digest_rows
from ..errors import BuildError, StorageError, VerifyError
from .filetable import FILE_COLUMNS, FileRow, SkipRow
from .marker import FILES, MARKER, PARTS, RANGES, RESERVED, SCRATCH, Marker

COLUMNS = tuple(FILE_COLUMNS)  # the file table's column names, as this module named them

SPLITS = "splits.json"  # under PARTS: the splits `Output.splits` declared
CHECKS = "checked.csv"  # under PARTS, after the part's name: `Output.image_checked`'s


class Output:
    """What a recipe task writes through. Paths are relative, '/'-separated."""

    def __init__(self, root: str, part: str, *, ranged: bool = False) -> None:
        self.root = root
        self.ranged = ranged  # keep in-place writes as ranges (the store assembles them)
        parts = os.path.join(root, PARTS)
        rows_path = os.path.join(parts, f"{part}.files.csv")
        try:
            os.makedirs(parts, exist_ok=True)
            self._rows = open(rows_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise write_error(rows_path, exc) from None
        self._writer = csv.writer(self._rows)
        self._skips_path = os.path.join(parts, f"{part}.skipped.csv")
        self._skips: Any = None
        self._checks_path = os.path.join(parts, f"{part}.{CHECKS}")
        self._checks: Any = None
        self._checks_writer: Any = None  # (made once: one a call cost ~1 us an image)
        self._dirs: set[str] = set()
        self._hashed: dict[str, tuple[int, str]] = {}

    def write(self, path: str, data: bytes, *, label: int | None = None,
              member: str | None = None, source: str | None = None,
              class_name: str | None = None, attrs: str | None = None,
              xxh3: str | None = None) -> None:
        """Write a file and its row. `xxh3`: the hash of `data` when the caller already
        knows it (a member's bytes copied unchanged, checked against it on read)."""
        full = self.target(path)
        try:
            with open(full, "wb") as f:
                write_all(f, data)
                self._writer.writerow(FileRow(
                    path, len(data), xxh3 or xxhash.xxh3_128_hexdigest(data), label=label,
                    source=source, member=member, class_=class_name or None,
                    attrs=attrs or None))
        except OSError as exc:
            raise write_error(full, exc) from None

    def write_at(self, path: str, pieces: list[bytes], offset: int) -> None:
        """Write `pieces` back to back at `offset` of `path` (created if need be), straight
        from their buffers: for in-place writers whose tasks each fill a planned range.
        The file is recorded by whoever knows it is complete (`added`)."""
        if self.ranged:
            piece = self._local(RANGES, *self._checked(path), f"{offset:020d}")
            try:
                with open(piece, "wb") as f:
                    f.writelines(pieces)
            except OSError as exc:
                raise write_error(piece, exc) from None
            return
        try:
            self._write_at(self.target(path), pieces, offset)
        except OSError as exc:
            raise write_error(self.target(path), exc) from None

    @staticmethod
    def _write_at(full: str, pieces: list[bytes], offset: int) -> None:
        fd = os.open(full, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            pwrite_all(fd, pieces, offset)  # (a piece of 256 KiB a call: see core.filewrites)
        finally:
            os.close(fd)

    def reserve(self, path: str, size: int) -> None:
        """Before tasks `write_at` into `path`: give it its `size` bytes of disk now. One
        file written by many processes takes their writes one at a time; into allocated
        blocks they go about 1.4x faster (benchmarks/bench_one_file.py), and a disk too
        small fails here, not hours in. Skipped where the filesystem cannot allocate
        without writing zeros."""
        fd = os.open(self.target(path), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            allocate(fd, size)
        except OSError as exc:
            raise BuildError(f"{self.target(path)}: cannot reserve {size:,} bytes "
                             f"({os.strerror(exc.errno or 0)})") from None
        finally:
            os.close(fd)

    def scratch(self, name: str) -> str:
        """A local path for a file only this build's `finish` reads (its folder created)."""
        return self._local(SCRATCH, *name.split("/"))

    def open(self, path: str) -> Any:
        """A binary file to stream into; call `added` when it is complete."""
        full = self.target(path)
        try:
            return open(full, "wb")
        except OSError as exc:
            raise write_error(full, exc) from None

    def hashed(self, path: str, size: int, xxh3: str) -> None:
        """Someone hashed the first `size` bytes of `path` on the way: `added` trusts it
        if the file then has exactly that size."""
        self._hashed[path] = (size, xxh3)

    def added(self, path: str, *, label: int | None = None, member: str | None = None,
              source: str | None = None, size: int | None = None,
              xxh3: str | None = None, class_name: str | None = None,
              attrs: str | None = None) -> None:
        """Record a file written through `open`: hashed from disk unless the writer
        hashed it on the way (`size` and `xxh3`, or an earlier `hashed`)."""
        from ..core.keys import hash_file

        if xxh3 is None or size is None:
            full = os.path.join(self.root, path)
            size = os.path.getsize(full)
            known = self._hashed.get(path)
            xxh3 = known[1] if known and known[0] == size else hash_file(full)
        self._writer.writerow(FileRow(path, size, xxh3, label=label, source=source,
                                      member=member, class_=class_name or None,
                                      attrs=attrs or None))

    def record(self, path: str, *, offset: int, size: int, xxh3: str, label: int | None,
               member: str | None, source: str | None, record: int,
               class_name: str | None = None, attrs: str | None = None) -> None:
        """A record inside a shard file (for per-record provenance)."""
        self._writer.writerow(FileRow(path, size, xxh3, label=label, source=source,
                                      member=member, byte_offset=offset, record=record,
                                      class_=class_name or None, attrs=attrs or None))

    def splits(self, names: list[str]) -> None:
        """Declare the splits this artifact wrote, each as the top folder `<split>/` of
        its files (e.g. a `sample`'s train and val): the marker records them as `"splits"`
        and a build reading this artifact sees each as an input split of its own. Called
        once, from `finish`."""
        for name in names:
            if not name or "/" in name or name in RESERVED or name == "*":
                raise BuildError(f"recipe declared an invalid split name {name!r}")
        with open(self._local(PARTS, SPLITS), "w", encoding="utf-8") as f:
            json.dump(list(names), f)

    def skip(self, member: str, source: str | None, reason: str) -> None:
        if self._skips is None:
            self._skips = open(self._skips_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        csv.writer(self._skips).writerow(SkipRow(member, source, reason))

    def image_checked(self, xxh3: str, why: str) -> None:
        """The image check's verdict on the content `xxh3` ("" usable, else why refused),
        for the coordinator to keep (engine/imagechecks.py); never published."""
        if self._checks is None:
            self._checks = open(self._checks_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._checks_writer = csv.writer(self._checks)
        self._checks_writer.writerow((xxh3, why))

    def close(self) -> None:
        for f in (self._rows, self._skips, self._checks):
            if f is not None:
                try:
                    f.close()  # flushes: where a full disk shows
                except OSError as exc:
                    raise write_error(f.name, exc) from None

    def target(self, path: str) -> str:
        """The local file `path` is written to (its folder created), for in-place writers."""
        return self._local(*self._checked(path))

    @staticmethod
    def _checked(path: str) -> list[str]:
        parts = path.split("/")
        if not path or path.startswith("/") or ".." in parts or "" in parts or \
                parts[0] in RESERVED:
            raise BuildError(f"recipe tried to write an invalid output path {path!r}")
        return parts

    def _local(self, *parts: str) -> str:
        full = os.path.join(self.root, *parts)
        parent = os.path.dirname(full)
        if parent not in self._dirs:
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise write_error(parent, exc) from None
            self._dirs.add(parent)
        return full


def write_error(path: str, exc: OSError) -> StorageError:
    """A failed write (full disk, read-only or unwritable folder) as one line naming it."""
    return StorageError(f"{path}: cannot write ({exc.strerror or exc})")


def allocate(fd: int, size: int) -> bool:
    """fallocate(2) `size` bytes from offset 0, if this system and filesystem can; False
    where they cannot. Not os.posix_fallocate: where the filesystem cannot, glibc's
    emulation writes a byte into every block, far slower than not allocating at all."""
    import ctypes
    import errno

    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError):  # not Linux
        return False
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if size <= 0 or fallocate(fd, 0, 0, size) == 0:
        return size > 0
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def verify_artifact(fs: Any, root: str, marker: Marker) -> list[str]:
    """Problems found checking the artifact under `root` (in fsspec filesystem `fs`):
    its `_files.parquet` against the `marker`'s digest and counts (the digest is
    recomputed from the rows as `finalize` computed it), then every file against its row."""
    table = f"{root}/{FILES}"
    try:
        rows = _file_rows(fs, table)
    except VerifyError as exc:
        return [str(exc)]
    problems = []
    n_bytes = sum(size or 0 for _, size, _ in rows)
    digest = digest_rows(rows)
    if (digest, len(rows), n_bytes) != (marker.digest, marker.files, marker.bytes):
        problems.append(f"{table}: its rows ({len(rows)} files, {n_bytes} bytes, digest "
                        f"{digest}) do not match {MARKER} ({marker.files} files, "
                        f"{marker.bytes} bytes, digest {marker.digest}): the file "
                        "table was changed")
    fs.invalidate_cache(root)
    present = {path[len(root):].lstrip("/"): info["size"]
               for path, info in fs.find(root, detail=True).items()}
    listed = set()
    for rel, size, want in rows:
        listed.add(rel)
        full = f"{root}/{rel}"
        if rel not in present:
            problems.append(f"{full}: missing")
        elif present[rel] != size:
            problems.append(f"{full}: size {present[rel]}, recorded {size}")
        elif _hash_stream(fs, full) != want:
            problems.append(f"{full}: content changed (xxh3 differs from the record)")
    for rel in sorted(present):
        if rel not in listed and rel not in RESERVED:
            problems.append(f"{root}/{rel}: not part of the artifact")
    return problems


def _file_rows(fs: Any, table: str) -> list[tuple[str, int, str]]:
    """(path, size, xxh3) of every file row of the `_files.parquet` at `table`, in the
    order `finalize` digested them; VerifyError naming the table if it cannot be read."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory(prefix="registry-verify-") as tmp:
        local = table
        if "file" not in fs.protocol:  # a remote table: read a copy, never a cached one
            local = os.path.join(tmp, FILES)
            try:
                fs.get_file(table, local)
            except FileNotFoundError:
                raise VerifyError(f"{table}: missing") from None
        elif not os.path.isfile(local):
            raise VerifyError(f"{table}: missing")
        con = duckdb.connect(config={"memory_limit": "256MB"})
        try:
            quoted = local.replace("'", "''")
            # every column of every row decoded once (a damaged page of the provenance
            # columns, which the digest does not cover, breaks the builds that read them)
            every = con.execute(f"SELECT * FROM read_parquet('{quoted}')")
            while every.fetchmany(65536):
                pass
            return con.execute(f"SELECT path, size, xxh3 FROM read_parquet('{quoted}') "
                               "WHERE record IS NULL ORDER BY path").fetchall()
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0]
            raise VerifyError(f"{table}: unreadable as a file table ({reason})") from None
        finally:
            con.close()


def _hash_stream(fs: Any, path: str) -> str:
    hasher = xxhash.xxh3_128()
    with fs.open(path, "rb", block_size=1 << 22) as f:
        while chunk := f.read(1 << 22):
            hasher.update(chunk)
    return hasher.hexdigest()
