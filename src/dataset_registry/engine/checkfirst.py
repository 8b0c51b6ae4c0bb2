"""Image checks first, on every worker, where a build's own tasks would leave some idle.

A checked build decodes each image in the task that writes it, which keeps the decode
and the writing in one pass. But a task is what the recipe plans: a shard, say, of 1,000
samples. A plan of few or uneven tasks leaves workers idle while the last ones decode:
5,020 photos make six WebDataset shards, so on 16 workers ten wait, and on 2 one decodes
3,000 images while the other does 2,020. Where the plan's tasks, taken in plan order by
the first free worker, would keep the workers busy less than `BALANCE` of the time, the
images are checked first, in even chunks on every worker (`CheckImages`); their verdicts
go to the cache and onto the inputs, and the plan is made again: the same tasks, now
carrying the verdicts, so they decode nothing (recipes/imagecheck.py); or, where a
recipe plans by them, other tasks (webdataset: a shard it planned in regions is one task
now), against which the build matches a killed run's finished tasks again.

The bytes are the same either way: a verdict is what the task's own decode would reach,
and a refusal reads as it would (a refusal the cache cannot keep is left to the task).
Each content is checked once, however many members hold it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..executors.base import task_size

if TYPE_CHECKING:
    from ..executors.base import Executor
    from ..sources.members import MemberSet
    from ..stores.base import Drop

BALANCE = 0.9  # below this share of the workers' time busy, the checks go first
CHUNK = 256  # members a check task decodes: small enough to even out on any pool


def busy(sizes: Sequence[int], workers: int) -> float:
    """The share of `workers`' time spent on tasks of these `sizes` (work in proportion to
    size), each taken in plan order by the first worker free, as a pool takes them."""
    total = sum(sizes)
    if workers <= 1 or total == 0:
        return 1.0
    ends = [0] * min(workers, len(sizes))
    for size in sizes:
        heapq.heappush(ends, heapq.heappop(ends) + size)
    return total / (workers * max(ends))


def unchecked_chunks(tasks: Sequence[Any]) -> list[MemberSet]:
    """The members of `tasks` whose content has no verdict yet, each content once, in
    chunks of at most CHUNK. Only members whose xxh3 is known: a verdict is kept by it."""
    from ..sources.members import MemberSet

    sets = [t.members for t in tasks if isinstance(getattr(t, "members", None), MemberSet)
            and t.members.digests is not None and len(t.members)]
    if not sets:
        return []
    left = [np.flatnonzero(s.checks == 0) if s.checks is not None
            else np.arange(len(s)) for s in sets]
    digests = np.concatenate([np.ascontiguousarray(s.digests[at]).view("S16").ravel()
                              for s, at in zip(sets, left, strict=True)])
    _, first = np.unique(digests, return_index=True)  # each content at its first member
    keep = np.zeros(len(digests), dtype=bool)
    keep[first] = True
    chunks, start = [], 0
    for members, at in zip(sets, left, strict=True):
        mine = at[keep[start:start + len(at)]]
        start += len(at)
        chunks += [members.take(mine[i:i + CHUNK]) for i in range(0, len(mine), CHUNK)]
    return chunks


def to_check_first(executor: Executor, tasks: Sequence[Any]) -> list[MemberSet]:
    """The chunks of members to check before the tasks run; none where the tasks keep the
    workers busy enough to check their own images."""
    if busy([task_size(t) for t in tasks], executor.jobs or 1) >= BALANCE:
        return []
    return unchecked_chunks(tasks)


def check_first(executor: Executor, chunks: Sequence[MemberSet], drop: Drop,
                advance: Callable[[int], None] | None = None) -> list[tuple[str, str]]:
    """The verdicts `(xxh3, why)` of the images in `chunks`, reached on every worker."""
    from ..recipes.imagecheck import CheckImages

    results = executor.map(CheckImages, None, chunks, drop, advance)  # type: ignore[arg-type]
    return [verdict for verdicts in results for verdict in verdicts]
