"""core/heap: glibc's malloc told to keep what a worker's tasks free, and to give back
what a big step left behind."""

import os
import resource
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from dataset_registry.core.processes import worker_context
from dataset_registry.executors.local import start_worker

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


def tasks_of_members(tasks: int = 8, members: int = 256, size: int = 90_000) -> int:
    """Minor page faults of `tasks` rounds of reading `members` buffers of `size` bytes (a
    task's photos), holding them all, then freeing them: what a shard task does."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(tasks):
        held = [os.urandom(16) * (size // 16) for _ in range(members)]
        del held
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_build_worker_reuses_the_pages_its_last_task_freed():
    """Each task's ~23 MB is faulted in (and zeroed) anew in a worker of a plain pool; a
    build's workers (`start_worker`) keep the freed pages and fault them in once."""
    with ProcessPoolExecutor(1, mp_context=worker_context()) as plain:
        default = plain.submit(tasks_of_members).result()
    with ProcessPoolExecutor(1, mp_context=worker_context(), initializer=start_worker,
                             initargs=(os.getpid(),)) as build:
        kept = build.submit(tasks_of_members).result()
    pages = 8 * 256 * 90_000 // 4096  # every task's buffers, faulted in anew
    assert default > pages * 0.6, (default, kept)
    assert kept < default / 3, (default, kept)


FRESH = """
import os, resource, sys
if sys.argv[1] == "kept":
    from dataset_registry.core.heap import reuse_freed_pages
    reuse_freed_pages()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):  # as tasks_of_members(8, 120, 200_000), nothing else imported
    held = [os.urandom(16) * (200_000 // 16) for _ in range(120)]
    del held
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_members_over_the_default_mmap_threshold_are_kept_too():
    """In a fresh process (glibc's thresholds at their defaults: a fork server's workers
    inherit whatever its imports left), members of 200 KB, over the default 128 KiB mmap
    threshold, would each get pages of their own were only the trim threshold set."""
    faults = {how: int(subprocess.run([sys.executable, "-c", FRESH, how], check=True,
                                      capture_output=True, text=True).stdout)
              for how in ("default", "kept")}
    assert faults["kept"] < min(faults["default"], 8 * 120 * 200_000 // 4096) / 3, faults


RESULTS = """
import resource, sys
from dataset_registry.core import heap
if sys.argv[1] == "kept":
    heap.keep_big_blocks_apart()
else:  # (the mmap threshold alone fixed, the trim threshold left at glibc's 128 KiB)
    heap._libc().mallopt(heap._M_MMAP_THRESHOLD, 1 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # a pool's results as its coordinator receives and frees them
    result = b"r" * 600_000
    del result
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_coordinator_keeps_the_top_of_its_heap_between_results():
    """Blocks of ~0.6 MB made and freed in turn (a zip pool's results) are faulted in once
    where big blocks are kept apart, not once each: the freed top of the heap stays."""
    faults = {how: int(subprocess.run([sys.executable, "-c", RESULTS, how], check=True,
                                      capture_output=True, text=True).stdout)
              for how in ("alone", "kept")}
    assert faults["alone"] > 200 * 600_000 // 4096 * 0.6, faults
    assert faults["kept"] < faults["alone"] / 10, faults
