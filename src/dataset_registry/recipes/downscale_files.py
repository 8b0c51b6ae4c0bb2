"""The files `downscale` writes its rows to: one `<split>/images.npy` that workers fill
in place (a fixed-size header, so every row's offset is known when planning), or,
when `on_error: skip` may drop rows, chunks in scratch assembled in plan order by
`finish`; and the PNGs of `format: folders`.
"""

from __future__ import annotations

import io
import os
import shutil
from typing import Any

import numpy as np

from ..artifact.output import Output
from ..core.filewrites import PIECE, pwrite_all
from ..errors import BuildError
from ..sources.members import MemberRef
from .imaging import Downscale


def png(row: bytes, shape: Downscale) -> bytes:
    from PIL import Image

    mode = "RGB" if shape.channels == 3 else "L"
    buf = io.BytesIO()
    # compress_level fixed so the bytes never depend on Pillow's default.
    Image.frombytes(mode, (shape.width, shape.height), row).save(buf, "PNG", compress_level=6)
    return buf.getvalue()


HEADER = 128  # bytes of .npy header: fixed, so workers know every row's offset up front


def npy_header(rows: int, shape: Downscale) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {
        "descr": "|u1", "fortran_order": False,
        "shape": (rows, shape.height, shape.width, shape.channels)})
    header = buf.getvalue()
    if len(header) != HEADER:
        raise BuildError(f"unexpected .npy header size {len(header)} for {rows} rows")
    return header


def write_rows_in_place(out: Output, split: str, start: int, shape: Downscale,
                        rows: list[tuple[MemberRef, int, bytes]],
                        classes: tuple[str, ...]) -> None:
    """pwrite a task's rows (the split's rows from `start` on) at their final offsets in
    <split>/images.npy, with their records (`classes`: subset label -> class name)."""
    import xxhash

    path = f"{split}/images.npy"
    out.write_at(path, [row for _, _, row in rows], HEADER + start * shape.row_bytes)
    for i, (ref, label, row) in enumerate(rows):
        record = start + i
        out.record(path, offset=HEADER + record * shape.row_bytes, size=shape.row_bytes,
                   xxh3=xxhash.xxh3_128_hexdigest(row), label=label, member=ref.origin,
                   source=ref.source, record=record, class_name=classes[label])


class RowsHasher:
    """`downscale`'s follower when tasks write rows in place: each split's images.npy is
    allocated (`Output.reserve`) and given its header before the first task, then hashed
    region by region as its tasks finish, in plan order (`regions.RegionHasher`), so
    `finish_in_place` reads nothing back (0.07 s of serial time at 100,000 32x32 images).
    Tasks of one split are consecutive in the plan; a task's region is its rows."""

    def __init__(self, out: Output, tasks: list[Any], shape: Downscale) -> None:
        from .regions import RegionHasher

        self.tasks, self.row_bytes = tasks, shape.row_bytes
        self.hashers: dict[str, tuple[RegionHasher, int]] = {}
        for split in dict.fromkeys(task.split for task in tasks):
            mine = [task for task in tasks if task.split == split]
            path = f"{split}/images.npy"
            rows = sum(len(task) for task in mine)
            out.reserve(path, HEADER + rows * shape.row_bytes)
            fd = os.open(out.target(path), os.O_WRONLY)
            try:
                os.pwrite(fd, npy_header(rows, shape), 0)  # finish_in_place writes it again
            finally:
                os.close(fd)
            hasher = RegionHasher(out, path, len(mine) + 1)  # the header is region 0
            hasher(0, {"in_place": True, "start": 0, "size": HEADER})
            self.hashers[split] = (hasher, mine[0].index)

    def __call__(self, index: int, result: dict[str, Any]) -> None:
        task = self.tasks[index]
        hasher, first = self.hashers[task.split]
        hasher(index - first + 1, {"in_place": True, "size": len(task) * self.row_bytes,
                                   "start": HEADER + task.start * self.row_bytes})


def finish_in_place(out: Output, split: str, rows: int, shape: Downscale) -> None:
    path = f"{split}/images.npy"
    fd = os.open(out.target(path), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, npy_header(rows, shape), 0)
        os.ftruncate(fd, HEADER + rows * shape.row_bytes)
    finally:
        os.close(fd)
    out.added(path)


def write_chunk(out: Output, index: int, rows: list[tuple[MemberRef, int, bytes]]) -> None:
    """Task `index`'s rows (after skips) and their records, into scratch for `assemble`."""
    import xxhash

    fd = os.open(out.scratch(f"{index:06d}.u8"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:  # the rows from their own buffers, a piece a call: not joined into one copy first
        pwrite_all(fd, [row for _, _, row in rows], 0)
    finally:
        os.close(fd)
    with open(out.scratch(f"{index:06d}.tsv"), "wb") as f:
        # the origin last: a source member's name may hold a tab (never a newline)
        f.write("".join(f"{ref.source}\t{label}\t{xxhash.xxh3_128_hexdigest(row)}\t"
                        f"{ref.origin}\n" for ref, label, row in rows).encode())


def assemble(out: Output, split: str, parts: list[dict[str, Any]], shape: Downscale,
             classes: list[str]) -> None:
    """After skips: stream the chunks into one .npy in plan order and index every row."""
    n = sum(p["kept"] for p in parts)
    images = f"{split}/images.npy"
    with out.open(images) as f:
        f.write(npy_header(n, shape))
        record = 0
        for part in sorted(parts, key=lambda p: p["index"]):
            chunk = out.scratch(f"{part['index']:06d}")
            with open(chunk + ".u8", "rb") as src:
                shutil.copyfileobj(src, f, PIECE)  # (see core.filewrites)
            with open(chunk + ".tsv", encoding="utf-8") as meta:
                for line in meta:
                    source, label, digest, origin = line.rstrip("\n").split("\t", 3)
                    out.record(images, offset=HEADER + record * shape.row_bytes,
                               size=shape.row_bytes, xxh3=digest, label=int(label),
                               member=origin, source=source, record=record,
                               class_name=classes[int(label)])
                    record += 1
    out.added(images)
