"""What every training-shard recipe shares, and `byclass`.

Every shard recipe sees a split's images in class-folder order (`classified`):
sorted by WNID, then by name, as a sorted walk of `<wnid>/` folders meets them,
with `sorted0` labels over the 1000 ILSVRC2012 WNIDs. A source missing a class
is refused unless `require_all_classes: false`: each recipe says what would go
wrong (`missing`: im2rec and ImageFolder number labels by the folders they find,
so one missing class shifts every later label).

Every image is decoded before it goes in (`validate_images`), and one that
cannot be used fails the build or, with `on_error: skip`, is left out and
recorded (see `imagecheck`).

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
from ..members import MemberSet, read_members
from ..output import Output
from .base import Inputs, InputSpec, Params, Recipe
from .imagecheck import IMAGE_CHECKS, OnError, usable
from .select import pick_split

CHUNK = 256  # records a task
IM2REC_EXTS = (".jpeg", ".jpg", ".png")

SHARD_INPUTS: Mapping[str, InputSpec] = {
    "images": InputSpec("images", doc="the val set, or train as a tar of class tars"),
    "labels": InputSpec("file", doc="folder with caffe_val.txt and caffe_synsets.txt"),
}


class ShardParams(Params):
    # byclass and webdataset version 1 shipped before the image checks
    added_later: ClassVar[frozenset[str]] = IMAGE_CHECKS

    split: Literal["train", "val"] = "train"
    require_all_classes: bool = True
    validate_images: bool = True
    on_error: OnError = "fail"


@dataclass(frozen=True)
class Classified:
    """A split's images in class-folder order."""

    members: MemberSet
    positions: np.ndarray  # into members, in class-folder order
    labels: np.ndarray  # sorted0, int16
    wnids: list[str]  # the 1000 WNIDs, label order


_NOT_AN_IMAGE, _UNKNOWN = -1, -2


def _im2rec_image(name: str) -> bool:
    """`os.path.splitext(name)[1].lower() in IM2REC_EXTS` (im2rec's test), at a third of the
    cost: a plan asks it of every member."""
    dot, slash = name.rfind("."), name.rfind("/")
    return dot > slash and name[dot:].lower() in IM2REC_EXTS and \
        name[slash + 1:dot].strip(".") != ""


def classified(inputs: Inputs, split: str, require_all: bool, missing: str) -> Classified:
    """The split's images in class-folder order; `missing` says, in the refusal of a
    source missing a class, what building from it would get wrong."""
    members = pick_split(inputs.images["images"], split, "images")
    order = synsets(inputs.files["labels"])  # sorted WNIDs: label order is WNID order
    label_of = {w: i for i, w in enumerate(order)}
    codes = np.empty(len(members), dtype=np.int16)
    step = 65536  # names decoded a slice at a time: 1.28M at once would cost ~100 MB
    for start in range(0, len(members), step):
        names = members.names.slice(start, min(start + step, len(members))).tolist()
        if split == "train":
            wnid_of = [n.partition("/")[0] for n in names]
        else:
            wnid_of = val_wnids(names, inputs.files["labels"], members.where)
        codes[start:start + len(names)] = [
            label_of.get(w, _UNKNOWN) if _im2rec_image(n) else _NOT_AN_IMAGE
            for n, w in zip(names, wnid_of, strict=True)]
    unknown = np.flatnonzero(codes == _UNKNOWN)
    if len(unknown):
        name = members.names[int(unknown[0])]
        raise BadInputError(f"{members.where}: class folder {name.partition('/')[0]!r} is not "
                            "an ILSVRC2012 WNID")
    positions = np.flatnonzero(codes >= 0)
    # names are sorted, so (WNID, name) order is (label, position) order
    positions = positions[np.argsort(codes[positions], kind="stable")]
    labels = codes[positions]
    present = np.zeros(len(order), dtype=bool)
    present[labels] = True
    absent = [order[i] for i in np.flatnonzero(~present)]
    if absent and require_all:
        raise BadInputError(
            f"{members.where}: {len(absent)} of the 1000 classes are missing or empty (first: "
            f"{', '.join(absent[:5])}); {missing}. Use the complete source, or set "
            "require_all_classes: false to build without them (labels stay those of the 1000 "
            "classes)")
    return Classified(members, positions.astype(np.int64), labels, order)


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
    missing = "ImageFolder would silently shift every later label"

    @classmethod
    def plan(cls, params: ShardParams, inputs: Inputs) -> list[ByClassTask]:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing)
        return [ByClassTask(c.members.take(c.positions[s:s + CHUNK]),
                            c.labels[s:s + CHUNK].copy(), tuple(c.wnids))
                for s in range(0, len(c.positions), CHUNK)]

    @classmethod
    def run(cls, params: ShardParams, task: ByClassTask, out: Output) -> int:
        kept = 0
        for i, ref, image in usable(read_members(task.members), out, params.on_error,
                                    validate=params.validate_images):
            label = int(task.labels[i])
            out.write(f"{task.wnids[label]}/{os.path.basename(ref.name)}", image,
                      label=label, member=ref.origin, source=ref.source)
            kept += 1
        return kept

