"""What every training-shard recipe shares, and `byclass`.

Every shard recipe sees a split's images in class-folder order (`classified`):
sorted by WNID, then by name, as a sorted walk of `<wnid>/` folders meets them,
with `sorted0` labels over the 1000 ILSVRC2012 WNIDs. im2rec numbers labels by
the folders it finds, so one missing class shifts every later label: a source
missing a class is refused unless `require_all_classes: false`.

`byclass` is `valprep.sh` (or an extracted train tar) without extraction: every
image copied byte-exact to `<wnid>/<file>`, a `torchvision.datasets.ImageFolder`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..errors import BadInputError
from ..labels import synsets, val_wnids
from ..members import MemberSet, read_member
from ..output import Output
from .base import Inputs, InputSpec, Params, Recipe
from .select import pick_split

CHUNK = 256  # records a task
IM2REC_EXTS = (".jpeg", ".jpg", ".png")

SHARD_INPUTS: Mapping[str, InputSpec] = {
    "images": InputSpec("images", doc="the val set, or train as a tar of class tars"),
    "labels": InputSpec("file", doc="folder with caffe_val.txt and caffe_synsets.txt"),
}


class ShardParams(Params):
    split: Literal["train", "val"] = "train"
    require_all_classes: bool = True


@dataclass(frozen=True)
class Classified:
    """A split's images in class-folder order."""

    members: MemberSet
    positions: np.ndarray  # into members, in class-folder order
    labels: np.ndarray  # sorted0, int16
    wnids: list[str]  # the 1000 WNIDs, label order
    names: list[str]  # every member's name (index by position)


def classified(inputs: Inputs, split: str, require_all: bool) -> Classified:
    members = pick_split(inputs.images["images"], split, "images")
    names = members.names.tolist()
    order = synsets(inputs.files["labels"])
    label_of = {w: i for i, w in enumerate(order)}
    if split == "train":
        wnid_of = [n.split("/", 1)[0] for n in names]
    else:
        wnid_of = val_wnids(names, inputs.files["labels"], members.where)
    unknown = sorted({w for w in wnid_of if w not in label_of})
    if unknown:
        raise BadInputError(f"{members.where}: class folder {unknown[0]!r} is not an ILSVRC2012 "
                            "WNID; im2rec would give it a label of its own")
    keep = [i for i, n in enumerate(names) if os.path.splitext(n)[1].lower() in IM2REC_EXTS]
    keep.sort(key=lambda i: (wnid_of[i], names[i]))
    present = {wnid_of[i] for i in keep}
    missing = [w for w in order if w not in present]
    if missing and require_all:
        raise BadInputError(
            f"{members.where}: {len(missing)} of the 1000 classes are missing or empty (first: "
            f"{', '.join(missing[:5])}); im2rec would silently shift every later label. Use the "
            "complete source, or set require_all_classes: false to keep sorted0 labels")
    positions = np.array(keep, dtype=np.int64)
    labels = np.array([label_of[wnid_of[i]] for i in keep], dtype=np.int16)
    return Classified(members, positions, labels, order, names)


@dataclass(frozen=True)
class ByClassTask:
    members: MemberSet
    labels: np.ndarray  # sorted0
    wnids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.members)


class ByClass(Recipe):
    """`valprep.sh` in place: `<wnid>/<file>` folders, byte-exact, for ImageFolder."""

    name = "byclass"
    version = 1
    Params = ShardParams
    inputs: ClassVar[Mapping[str, InputSpec]] = SHARD_INPUTS

    @classmethod
    def plan(cls, params: ShardParams, inputs: Inputs) -> list[ByClassTask]:
        c = classified(inputs, params.split, params.require_all_classes)
        return [ByClassTask(c.members.take(c.positions[s:s + CHUNK]),
                            c.labels[s:s + CHUNK].copy(), tuple(c.wnids))
                for s in range(0, len(c.positions), CHUNK)]

    @classmethod
    def run(cls, params: ShardParams, task: ByClassTask, out: Output) -> int:
        for i, ref in enumerate(task.members):
            label = int(task.labels[i])
            out.write(f"{task.wnids[label]}/{os.path.basename(ref.name)}", read_member(ref),
                      label=label, member=ref.origin, source=ref.source)
        return len(task)

