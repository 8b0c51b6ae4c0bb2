"""The task every labelled recipe plans: a slice of members, one label each, and the
class names those labels index.

`byclass` plans these as they are; `tfrecord`, `webdataset`, `recordio` and
`downscale` add the few fields only they need in a subclass beside their recipe.
Tasks travel to pool and Dask workers, so they hold a compact `MemberSet` slice
(`MemberSet.take`: it pickles only its own members), never the whole input.
Every field is keyword-only: a subclass adds fields without defaults after these.
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
