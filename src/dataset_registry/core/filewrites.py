"""Big buffers written to files a piece of at most `PIECE` bytes a call.

Linux (6.18 here, on ext4) gives a buffered write page-cache folios as large as the call
allows, up to 2 MiB: one 6 MiB `pwritev` of a task's region asks the page allocator for
2 MiB blocks of free memory, where 256 KiB calls take smaller ones. On a virtual machine
that hands large free blocks back to its host (free page reporting: Firecracker, QEMU
with virtio-balloon), every large block taken is a fault on the host. Measured on this
project's 2-core CI machine (`benchmarks/bench_writes.py`, seconds after the memory was
freed): calls of 2 MiB and more cost 7-11 ms of CPU a MB written, 1 MiB calls 0.2-5.8 ms
from run to run, calls of 512 KiB and less 0.2-0.3 ms; a checked WebDataset build of
2,000 photos spent 1.2-1.6 s of its workers' time in one call a task against 0.05 s in
pieces. Elsewhere the pieces cost one system call per 256 KiB: nothing measurable. The
bytes written are the same either way.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

PIECE = 256 << 10  # bytes a write call at most
_BUFFERS = 512  # buffers a pwritev call at most: well under IOV_MAX (1024 on Linux)


def pieces(buffers: Iterable[bytes | bytearray | memoryview], size: int = PIECE
           ) -> Iterator[tuple[list[bytes | bytearray | memoryview], int]]:
    """`buffers`, back to back, as groups to write a call each, with their byte counts:
    at most `size` bytes and `_BUFFERS` buffers a group; a buffer crossing a group's end
    is split there (its parts are views: nothing is copied)."""
    if size <= 0:
        raise ValueError(f"a piece of {size} bytes")
    group: list[bytes | bytearray | memoryview] = []
    filled = 0
    for buf in buffers:
        n = len(buf) if type(buf) is bytes else memoryview(buf).nbytes
        if n < size - filled:  # (most buffers: it fits, with room left)
            group.append(buf)
            filled += n
            if len(group) == _BUFFERS:
                yield group, filled
                group, filled = [], 0
            continue
        view, start = _bytes_view(buf), 0
        while n - start >= size - filled:  # the rest of this buffer fills the group
            take = size - filled
            group.append(buf if start == 0 and take == n else view[start:start + take])
            start += take
            yield group, size
            group, filled = [], 0
        if start < n:  # (the loop ran: this is the rest of a buffer it split)
            group.append(view[start:])
            filled += n - start
            if len(group) == _BUFFERS:
                yield group, filled
                group, filled = [], 0
    if group:
        yield group, filled


def pwrite_all(fd: int, buffers: Iterable[bytes | bytearray | memoryview], offset: int) -> int:
    """Write `buffers` back to back at `offset` of the open file `fd`, a piece at a time
    (`pieces`); the offset after them."""
    for group, want in pieces(buffers):
        done = os.pwritev(fd, group, offset)
        if done < want:  # a short write (a signal, a full disk): the rest the plain way
            rest = memoryview(b"".join(group))[done:]
            while rest:
                n = os.pwrite(fd, rest, offset + done)
                if n == 0:
                    raise OSError(errno.EIO, "the file took no more bytes")
                rest, done = rest[n:], done + n
        offset += want
    return offset


def write_all(f: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """`f.write(data)`, a piece at a time: a buffered file hands a write larger than its
    buffer straight to the system, whole."""
    if memoryview(data).nbytes <= PIECE:
        f.write(data)
        return
    view = _bytes_view(data)
    for start in range(0, len(view), PIECE):
        f.write(view[start:start + PIECE])


def _bytes_view(buf: bytes | bytearray | memoryview) -> memoryview:
    """A flat view of `buf`'s bytes (a numpy array's too), so lengths count bytes (only for
    buffers with bytes in them: an empty one of several dimensions cannot be cast)."""
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")
