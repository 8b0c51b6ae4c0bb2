"""Keeping freed memory from staying counted in the process, where the C library keeps it.

glibc's malloc serves allocations under its mmap threshold from the heap, and raises
that threshold (up to 32 MiB) each time a larger block is freed, so the temporaries of
one big step (reading a zip's central directory of a million entries: ~200 MB of numpy
arrays) land in the heap, and stay counted in the process's memory after they are freed
when anything allocated later sits above them. `keep_big_blocks_apart()` fixes the
threshold (blocks of 1 MiB and more get pages of their own, given back whole when freed)
and `trim()` after such a step hands the heap's free pages back (`malloc_trim`). A
1.28M-member zip's index, on this project's 2-core machine: 490-510 MiB at its peak with
neither, 421-444 MiB with both (0.46-0.47 GiB on the 16-core device).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # (mallopt's parameter numbers, malloc.h)


def keep_big_blocks_apart(size: int = 1 << 20, keep: int = 8 << 20) -> None:
    """From now on, blocks of `size` bytes or more get pages of their own (mmap), given back
    whole when freed, and the threshold stays put: a step making and freeing many large
    arrays then leaves no holes in the heap behind (glibc; elsewhere, nothing). Up to
    `keep` bytes freed at the heap's top stay mapped: fixing the one threshold leaves the
    other at glibc's 128 KiB, and a pool's coordinator, which receives and frees a result
    of ~0.6 MB a run, would hand the top back after each and fault it in again (a
    1.28M-member zip's runs: 131-149k minor faults, 81k with 8 MiB kept, 0.08 s less CPU
    on this project's 2-core machine)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, size)
        libc.mallopt(_M_TRIM_THRESHOLD, keep)


def reuse_freed_pages(keep: int = 32 << 20) -> None:
    """For a worker that reads a task's members, writes them out and frees them, task after
    task: blocks under `keep` bytes come from the heap, and up to `keep` freed bytes at its
    top stay mapped, so the next task's reads land in pages already faulted in. By default
    glibc hands the top back after each task (its trim threshold follows its mmap
    threshold, raised only as far as the largest block freed), and every task faults its
    ~25 MB of members in again, zeroed: a checked webdataset build of 2,000 photos in one
    process took 35-38k minor faults, 9-10k with this. Both are set: setting one stops
    glibc adjusting the other, and an image over the default 128 KiB would then get pages
    of its own, faulted in each time. A task holding more than `keep` at once is handed
    back whole, as before; a worker keeps at most `keep` it does not use."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, keep)
        libc.mallopt(_M_TRIM_THRESHOLD, keep)


def trim() -> None:
    """Return the heap's free pages to the system (glibc); elsewhere, nothing."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (musl has none: then nothing to do)
    except (OSError, AttributeError):
        return None
    return libc
