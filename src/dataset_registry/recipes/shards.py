"""What every training-shard recipe shares, and `byclass`.

Every shard recipe sees a split's images in class-folder order (`classified`):
by label, then by name, as a sorted walk of `<class>/` folders meets them. One
place decides which classes and in which order (the class scheme):

- with the `labels` input: the label scheme its `labels_scheme` param names
  (schemes.py; default `imagenet`, the plugin's 1000 ILSVRC2012 WNIDs in
  `sorted0`, train classed by `<wnid>/` folder, val by the caffe ground truth);
  only im2rec's image names (`.jpeg .jpg .png`) count, as im2rec walks a folder;
- else each image's class is its `MemberRef.label` (the layout's class name, or
  an upstream dataset's file table), numbered by the `classes` file input (line
  *i* is label *i*) or, by default, the sorted class names over every split of
  the input (ImageFolder's and im2rec's numbering, the same for every split).

A split missing a class of the scheme is refused unless `require_all_classes:
false`: with a labels scheme each recipe says what would go wrong (`missing`:
im2rec and ImageFolder number labels by the folders they find, so one missing
class shifts every later label); for a generic scheme the labels stay the
scheme's, but the split would not hold every class the scheme names.

Every image is decoded before it goes in (`validate_images`), and one that
cannot be used fails the build or, with `on_error: skip`, is left out and
recorded (see `imagecheck`).

`byclass` is `valprep.sh` (or an extracted train tar) without extraction: every
image copied byte-exact to `<class>/<file>`, a `torchvision.datasets.ImageFolder`.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import field_validator

from ..artifact.output import Output
from ..errors import BadInputError
from ..sources.classes import default_classes, label_indices, present_classes, read_classes
from ..sources.members import MemberSet, StrColumn, prefix_range, read_members
from . import schemes
from .base import Inputs, InputSpec, Params, Recipe
from .imagecheck import IMAGE_CHECKS, OnError, usable
from .naming import record_names
from .select import pick_split
from .tasks import LabelledTask

CHUNK = 256  # records a task
IM2REC_EXTS = (".jpeg", ".jpg", ".png")
# where a generic source's classes come from, for the refusal of one that has none
LAYOUTS_WITH_CLASSES = ("image-folder (<class>/<image> folders), files (a labels table with a "
                        "label column), imagenet-train, kaggle-cls-loc train, or a dataset "
                        "built from one of those")

SHARD_INPUTS: Mapping[str, InputSpec] = {
    "images": InputSpec("images", doc="the images: a source or dataset whose images carry "
                        "classes (ImageNet: the val set, or train as a tar of class tars)"),
    "labels": InputSpec("file", required=False,
                        doc="a label folder in the scheme labels_scheme names (default "
                            "imagenet: caffe_val.txt and caffe_synsets.txt, WNID classes, "
                            "sorted0); without it classes come from the images"),
    "classes": InputSpec("file", required=False,
                         doc="a classes file, one name a line: line i is label i (default: "
                             "the input's class names, sorted)"),
}


class ShardParams(Params):
    # byclass and webdataset version 1 shipped before the image checks and label schemes
    added_later: ClassVar[frozenset[str]] = IMAGE_CHECKS | {"labels_scheme"}

    split: str = "train"  # any split of the input (ImageNet's label folder: train or val)
    require_all_classes: bool = True
    validate_images: bool = True
    on_error: OnError = "fail"
    # the scheme of the labels input; every shipped manifest predates the param and meant
    # ImageNet's (schemes.DEFAULT), so that default keeps their keys
    labels_scheme: str = schemes.DEFAULT

    _known_scheme = field_validator("labels_scheme")(schemes.check_name)


@dataclass(frozen=True)
class Classified:
    """A split's images in class-folder order."""

    members: MemberSet
    positions: np.ndarray  # into members, in class-folder order
    labels: np.ndarray  # the scheme's labels (ImageNet: sorted0)
    classes: list[str]  # the scheme: class names in label order (ImageNet: the 1000 WNIDs)
    scheme: schemes.LabelScheme | None  # the labels input's scheme that classed them, if any


_NOT_AN_IMAGE, _UNKNOWN = -1, -2


def _im2rec_image(name: str) -> bool:
    """`os.path.splitext(name)[1].lower() in IM2REC_EXTS` (im2rec's test), at a third of the
    cost: a plan asks it of every member."""
    dot, slash = name.rfind("."), name.rfind("/")
    return dot > slash and name[dot:].lower() in IM2REC_EXTS and \
        name[slash + 1:dot].strip(".") != ""


def all_im2rec_images(names: StrColumn) -> bool:
    """Whether `_im2rec_image` holds for every name, found in a few passes over the names'
    bytes (each ending in one of the extensions, no base name of dots alone before it),
    not a Python call per name."""
    text = names.lines().lower()
    ends = sum(text.count(ext.encode() + b"\n") for ext in IM2REC_EXTS)
    if ends != len(names):
        return False
    dotted = text.startswith(b".") or b"\n." in text or b"/." in text  # (the regex is slower)
    return not dotted or _DOTS_ONLY.search(text) is None


_DOTS_ONLY = re.compile(rb"(?:^|/)\.*(?:" + b"|".join(re.escape(e.encode()) for e in IM2REC_EXTS)
                        + rb")$", re.MULTILINE)


def classified(inputs: Inputs, split: str, require_all: bool, missing: str,
               labels_scheme: str = schemes.DEFAULT) -> Classified:
    """The split's images in class-folder order; `missing` says, in the refusal of a
    source missing a class of a labels scheme, what building from it would get wrong."""
    members = pick_split(inputs.images["images"], split, "images")
    if "labels" in inputs.files:
        if "classes" in inputs.files:
            raise BadInputError("inputs labels and classes: give one (labels: a label folder "
                                f"in scheme {labels_scheme!r}; classes: a classes file)")
        scheme_ = schemes.build(labels_scheme, inputs.files["labels"], split)
        return _by_scheme(members, scheme_, split, require_all, missing)
    classes = scheme(inputs, "images")
    labels = class_labels(members, classes, inputs.files.get("classes"))
    # names are sorted, so a stable sort by label is (label, name) order
    positions = np.argsort(labels, kind="stable").astype(np.int64)
    labels = labels[positions]
    check_every_class(members, split, classes, labels, require_all, named(inputs, "images"))
    return Classified(members, positions, labels, classes, None)


def scheme(inputs: Inputs, *roles: str) -> list[str]:
    """The generic class scheme: the `classes` file, or the sorted class names over every
    split of the image inputs `roles` (one numbering for all of a source's splits)."""
    return scheme_of(inputs.files.get("classes"),
                     [s for role in roles if role in inputs.images
                      for split, s in inputs.images[role].items() if split != "meta"])


def named(inputs: Inputs, *roles: str) -> set[str] | None:
    """The classes a split may be asked to hold: every class of a classes file (None), or
    those some image of the inputs has (a whole-number scheme names every number up to the
    largest; those no image has anywhere are not missing from a split)."""
    if "classes" in inputs.files:
        return None
    return present_classes(*(s for role in roles if role in inputs.images
                             for split, s in inputs.images[role].items() if split != "meta"))


def scheme_of(classes_file: str | None, sets: list[MemberSet]) -> list[str]:
    """The classes file's names, or the sorted class names of `sets` (a split without
    classes adds none; it is refused if a recipe reads it, see `class_labels`)."""
    if classes_file is not None:
        return read_classes(classes_file)
    found = default_classes(*sets)
    if not found:
        raise BadInputError(no_classes(sets[0].where if sets else "the images input"))
    return found


def no_classes(where: str) -> str:
    return (f"{where}: its images carry no class names (its layout gives none); the layouts "
            f"that give classes: {LAYOUTS_WITH_CLASSES}; or give a labels input (a label "
            "folder in a registered scheme, e.g. ImageNet's)")


def class_labels(members: MemberSet, classes: list[str], classes_file: str | None) -> np.ndarray:
    """Each member's label in the scheme, int32; an image without a class, or of a class
    the scheme lacks, is an error naming it (and the classes file)."""
    if not members.class_names():
        raise BadInputError(no_classes(f"{members.where} ({members.split})"
                                       if members.split != "*" else members.where))
    try:
        return label_indices(members, classes)
    except BadInputError as exc:
        if classes_file is None:
            raise
        raise BadInputError(f"{exc.message} (classes file {classes_file})") from None


def check_every_class(members: MemberSet, split: str, classes: list[str], labels: np.ndarray,
                      require_all: bool, expected: set[str] | None = None) -> None:
    """Every class of the scheme (of `expected`, if given) has images in the split, unless
    not required."""
    if not require_all:
        return
    present = np.bincount(labels, minlength=len(classes)) > 0
    absent = [classes[i] for i in np.flatnonzero(~present)
              if expected is None or classes[i] in expected]
    if absent:
        raise BadInputError(
            f"{members.where}: {len(absent)} of the {len(classes)} classes have no {split} "
            f"images (first: {', '.join(absent[:5])}); the split would not hold every class "
            "of the scheme. Add them, drop them from the classes file, or set "
            "require_all_classes: false to build without them (labels stay the scheme's)")


def folder_safe(classes: list[str], where: str) -> None:
    """Class names become folder names (`<class>/<file>`): one plain path component."""
    for name in classes:
        if name in (".", "..") or any(c in name for c in "/\\\0"):
            raise BadInputError(f"{where}: class {name!r} cannot be a folder name (no '/', "
                                "'\\', NUL, '.' or '..')")


def _by_scheme(members: MemberSet, scheme_: schemes.LabelScheme, split: str,
               require_all: bool, missing: str) -> Classified:
    """A labels scheme's classes (ImageNet: sorted0 over the 1000 WNIDs, val classed by
    the ground truth); members that are not im2rec image names are left out."""
    order = scheme_.classes()
    label_of = {w: i for i, w in enumerate(order)}
    codes = np.empty(len(members), dtype=np.int16 if len(order) < 32768 else np.int32)
    images = all_im2rec_images(members.names)  # (else asked name by name)
    if images and split in scheme_.folder_splits:
        _by_folder(members, scheme_, split, label_of, codes)
    else:
        _by_name(members, scheme_, split, label_of, codes, images)
    unknown = np.flatnonzero(codes == _UNKNOWN)
    if len(unknown):
        name = members.names[int(unknown[0])]
        what = (f"class folder {name.partition('/')[0]!r}" if split in scheme_.folder_splits
                else f"{name!r}'s class {scheme_.class_of([name], split, members.where)[0]!r}")
        raise BadInputError(f"{members.where}: {what} is not {scheme_.class_noun}")
    positions = np.flatnonzero(codes >= 0)
    # names are sorted, so (class, name) order is (label, position) order
    positions = positions[np.argsort(codes[positions], kind="stable")]
    labels = codes[positions]
    present = np.zeros(len(order), dtype=bool)
    present[labels] = True
    absent = [order[i] for i in np.flatnonzero(~present)]
    if absent and require_all:
        raise BadInputError(
            f"{members.where}: {len(absent)} of the {len(order)} classes are missing or empty "
            f"(first: {', '.join(absent[:5])}); {missing}. Use the complete source, or set "
            f"require_all_classes: false to build without them (labels stay those of the "
            f"{len(order)} classes)")
    return Classified(members, positions.astype(np.int64), labels, order, scheme_)


def _by_name(members: MemberSet, scheme_: schemes.LabelScheme, split: str,
             label_of: Mapping[str, int], codes: np.ndarray, images: bool) -> None:
    """Each member's label code (`_UNKNOWN`: not a class of the scheme; `_NOT_AN_IMAGE`:
    not an im2rec image name, asked of each only where not all are), into `codes`."""
    step = 65536  # names decoded a slice at a time: 1.28M at once would cost ~100 MB
    for start in range(0, len(members), step):
        names = members.names.slice(start, min(start + step, len(members))).tolist()
        class_of = scheme_.class_of(names, split, members.where)
        codes[start:start + len(names)] = \
            list(map(label_of.get, class_of, itertools.repeat(_UNKNOWN))) if images else [
                label_of.get(w, _UNKNOWN) if _im2rec_image(n) else _NOT_AN_IMAGE
                for n, w in zip(names, class_of, strict=True)]


def _by_folder(members: MemberSet, scheme_: schemes.LabelScheme, split: str,
               label_of: Mapping[str, int], codes: np.ndarray) -> None:
    """`_by_name` for a split the scheme classes by `<class>/` folder (all images), a
    folder at a time: the sorted names of one folder are contiguous (those starting
    `<folder>/` sort together), found by a binary search, and the scheme is asked the
    class of its first name alone, not a Python call a name (at 96,000 images, 0.05 s of
    the plan, which holds every task back). A name outside any folder is asked alone."""
    names, start, n = members.names, 0, len(members)
    while start < n:
        name = names[start]
        folder, slash, _ = name.partition("/")
        stop = prefix_range(names, folder + "/", start)[1] if slash else start + 1
        codes[start:stop] = label_of.get(
            scheme_.class_of([name], split, members.where)[0], _UNKNOWN)
        start = stop


class ByClass(Recipe):
    """`valprep.sh` in place: `<class>/<file>` folders, byte-exact, for ImageFolder."""

    name = "byclass"
    version = 1
    Params = ShardParams
    inputs: ClassVar[Mapping[str, InputSpec]] = SHARD_INPUTS
    missing = "ImageFolder would silently shift every later label"

    @classmethod
    def plan(cls, params: ShardParams, inputs: Inputs) -> list[LabelledTask]:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing,
                       params.labels_scheme)
        folder_safe(c.classes, c.members.where)
        whole = False
        if c.scheme is None or not c.scheme.unique_base_names:
            # one class's files may share a file name (a labels table over folders):
            # then each keeps its whole name under its class folder (naming.py)
            names = [c.members.names[p] for p in c.positions.tolist()]
            folders = [c.classes[k] for k in c.labels.tolist()]
            pairs = list(zip(folders, names, strict=True))
            whole = record_names(names, [f"{f}/{posixpath.basename(n)}" for f, n in pairs],
                                 [f"{f}/{n}" for f, n in pairs], "file", c.members.where)[1]
        return [LabelledTask(index=t, members=c.members.take(c.positions[s:s + CHUNK]),
                             labels=c.labels[s:s + CHUNK].copy(), classes=tuple(c.classes),
                             whole=whole)
                for t, s in enumerate(range(0, len(c.positions), CHUNK))]

    @classmethod
    def run(cls, params: ShardParams, task: LabelledTask, out: Output) -> int:
        kept = 0
        for i, ref, image in usable(read_members(task.members), out, params.on_error,
                                    validate=params.validate_images):
            label = int(task.labels[i])
            name = ref.name if task.whole else posixpath.basename(ref.name)
            out.write(f"{task.classes[label]}/{name}", image,
                      label=label, member=ref.origin, source=ref.source,
                      class_name=task.classes[label], attrs=ref.attrs or None, xxh3=ref.xxh3)
            kept += 1
        return kept
