"""The task every labelled recipe plans: a slice of members, one label each, and the
class names those labels index.

`byclass` plans these as they are; `tfrecord`, `webdataset`, `recordio` and
`downscale` add the few fields only they need in a subclass beside their recipe.
Tasks travel to pool and Dask workers, so they hold a compact `MemberSet` slice
(`MemberSet.take`: it pickles only its own members), never the whole input.
Every field is keyword-only: a subclass adds fields without defaults after these.
`task_spans` cuts a plan's rows into tasks, small ones at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ..sources.members import MemberSet


@dataclass(frozen=True, kw_only=True)
class LabelledTask:
    index: int  # the task's place in the plan (names its scratch files and shards)
    members: MemberSet  # a compact slice: pickles only its own members
    # one per member, in member order; the label a recipe writes (tfrecord's carries its
    # label_offset, so it indexes `classes` less that offset)
    labels: np.ndarray
    classes: tuple[str, ...]  # the class scheme's names, in label order
    whole: bool = False  # records named by whole member names, not file names (naming.py)

    def __post_init__(self) -> None:
        # a plan that slices members and labels apart would label every later image wrong
        if len(self.labels) != len(self.members):
            raise ValueError(f"task {self.index}: {len(self.members)} members but "
                             f"{len(self.labels)} labels")

    def __len__(self) -> int:
        """Its images: the engine counts these for progress."""
        return len(self.members)


# A plan's last TAIL rows go in tasks of TAIL_CHUNK: at the end of a build, workers with
# nothing left wait for the last tasks, so those are small (at 16 workers a last wave of
# 256-image downscale tasks left them idle for ~1.5% of the build; 64 tasks of 64 cost
# ~20 ms; the last recordio and checked webdataset tasks ended 0.3 s apart)
TAIL, TAIL_CHUNK = 4096, 64


def task_spans(start: int, stop: int, chunk: int, tail_from: int) -> list[tuple[int, int]]:
    """[a, b) of each task over rows [start, stop): `chunk` rows at a time, and from row
    `tail_from` on (the plan's tail), TAIL_CHUNK at a time."""
    body = min(max(tail_from, start), stop)
    return [(a, min(a + chunk, body)) for a in range(start, body, chunk)] + \
        [(a, min(a + TAIL_CHUNK, stop)) for a in range(body, stop, TAIL_CHUNK)]
