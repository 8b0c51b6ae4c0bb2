"""`downscale`: ImageNet-tiny and Downsampled-ImageNet variants, or any labelled
source made small, split by split.

Replaces the Matlab + ImageMagick ImageNet-tiny generator. Each image is decoded
at reduced DCT scale (Pillow `draft`), fitted (squash / crop / pad), filtered
(box / lanczos) and converted (sRGB, or gray with a named luma).

Classes come from one scheme (see `shards`): with the `labels` input, the label
scheme `labels_scheme` names (default `imagenet`: the 1000 WNIDs, `sorted0`; train
classed by `<wnid>/` folder, val by the caffe ground truth); without it, each
image's class name numbered by the `classes` file or the sorted names over every
input split. `classes` (the param) picks the subset: `full`, the first N of the
scheme, or a list of names; subset labels follow the scheme's order.

Splits: input `train` gives its split `train`, `val` its split `val` (a built
dataset's images: the role's name), and `images` (without `labels`) every split
it holds, each to `<split>/` (a split named twice is refused).

Output, `format: packed` (default)::

    classes.txt               <class>\\t<scheme label>\\t<description> (ImageNet:
                              <wnid>\\t<sorted0 label>\\t<synset words>), or
                              <class>\\t<scheme label>\\t<class>; line i is subset label i
    <split>/images.npy        uint8 N x H x W x C (C = 3 for srgb, 1 for gray)
    <split>/labels.npy        int16 subset labels 0..K-1
    <split>/members.txt       the source member of each row
    val/ground_truth.txt      subset label per val image, one a line (evaluation file)
    val/files.txt             the val file names, in row order

`format: folders` writes `<split>/<class>/<stem>.png` instead of the three
arrays, plus the same classes and evaluation files. Rows are sorted by source
member name, so train rows are grouped by class. Every row is a record in
`_files.parquet`: its array, byte offset, label, class and source member.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from ..artifact.output import Output
from ..errors import BadInputError
from ..sources.members import MemberRef, MemberSet, read_members
from . import schemes
from .base import Inputs, InputSpec, Params, Plan, Recipe
from .downscale_files import (
    RowsHasher,
    assemble,
    finish_in_place,
    png,
    write_chunk,
    write_rows_in_place,
)
from .imagecheck import OnError, usable, where
from .imaging import Color, Downscale, Filter, Fit, Luma, downscale, quiet_bomb_warnings
from .naming import record_names, stem, whole_stem
from .select import pick_split
from .shards import class_labels, folder_safe, named, scheme_of
from .tasks import TAIL, LabelledTask, task_spans

_CHUNK = 256  # images a task (the plan's last TAIL, TAIL_CHUNK: tasks.task_spans)
MAX_CLASSES = 32767  # labels.npy holds int16 subset labels
SPLITS = ("train", "val")


class DownscaleParams(Params):
    # version 1 shipped before label schemes were plugins
    added_later: ClassVar[frozenset[str]] = frozenset({"labels_scheme"})

    # the scheme of the labels input; every shipped manifest predates the param and meant
    # ImageNet's (schemes.DEFAULT), so that default keeps their keys. Before `classes`,
    # whose check reads it.
    labels_scheme: str = schemes.DEFAULT
    width: int = Field(gt=0, le=1024)
    height: int = Field(gt=0, le=1024)
    fit: Fit = "squash"
    color: Color = "srgb"
    luma: Luma = "rec709"
    filter: Filter = "box"
    classes: Literal["full"] | int | list[str] = "full"
    format: Literal["packed", "folders"] = "packed"
    on_error: OnError = "fail"
    require_all_classes: bool = True

    _known_scheme = field_validator("labels_scheme")(schemes.check_name)

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: Any, info: ValidationInfo) -> Any:
        # the manifest says which inputs the dataset has: with a labels input the names
        # its scheme knows (if it knows them before reading the folder) bound the subset;
        # without one the classes are the source's, checked when the build plans
        known = None
        if "labels" in (info.context or {}).get("inputs", ("labels",)) and \
                "labels_scheme" in info.data:  # absent: its own check failed
            scheme = schemes.scheme_class(info.data["labels_scheme"])
            names = scheme.known_names()
            if names is not None:
                known = (scheme, frozenset(names), len(names))
        limit = known[2] if known else MAX_CLASSES
        if isinstance(value, int) and not 0 < value <= limit:
            raise ValueError(f"a number of classes must be between 1 and {limit}")
        if isinstance(value, list):
            for i, name in enumerate(value):
                if known and name not in known[1]:
                    raise ValueError(f"item {i}: {name!r} is not {known[0].class_noun}")
                if not name:
                    raise ValueError(f"item {i}: an empty class name")
            if not value:
                raise ValueError("an empty class list")
            return sorted(set(value))  # order and repeats do not change the subset (or its key)
        return value

    def shape(self) -> Downscale:
        return Downscale(self.width, self.height, self.fit, self.color, self.luma, self.filter)


@dataclass(frozen=True, kw_only=True)
class DownscaleTask(LabelledTask):
    """Rows of one split; labels are int16 subset labels, `classes` the subset's names (its
    folder paths); with `whole` folder paths are whole names."""

    split: str
    start: int  # row of the first member in the split's array (rows are known at plan time)


@dataclass(frozen=True)
class Selection:
    members: MemberSet
    rows: np.ndarray  # positions in `members` of the chosen images, in output order
    labels: np.ndarray  # their int16 subset labels
    whole: bool = False  # `folders` names `<class>/<whole name>.png` (naming.py)

    def png_name(self, name: str) -> str:
        """What `folders` calls the image `name` below its class folder."""
        return f"{whole_stem(name) if self.whole else stem(name)}.png"


class DownscaleRecipe(Recipe):
    name = "downscale"
    version = 1
    Params = DownscaleParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "train": InputSpec("images", required=False,
                           doc="its train split (ImageNet: <wnid>/<file> members)"),
        "val": InputSpec("images", required=False,
                         doc="its val split (ImageNet: labelled by caffe val.txt)"),
        "images": InputSpec("images", required=False,
                            doc="without labels: a source whose every split is downscaled"),
        "labels": InputSpec("file", required=False,
                            doc="a label folder in the scheme labels_scheme names (default "
                                "imagenet: caffe_val.txt, synsets and their names)"),
        "classes": InputSpec("file", required=False,
                             doc="a classes file, one name a line (default: sorted names)"),
    }

    @classmethod
    def splits(cls, inputs: Inputs) -> dict[str, MemberSet]:
        """Output split -> its images, in output order."""
        labelled = "labels" in inputs.files
        if labelled and "classes" in inputs.files:
            raise BadInputError("inputs labels and classes: give one (labels: a label folder "
                                "in a plugin's scheme; classes: a classes file)")
        if labelled and "images" in inputs.images:
            raise BadInputError("input images: with the labels input, give the train and val "
                                "inputs")
        out = {s: pick_split(inputs.images[s], s, s) for s in SPLITS if s in inputs.images}
        for split, members in inputs.images.get("images", {}).items():
            if split == "meta":
                continue
            if split == "*":
                raise BadInputError(f"input images: {members.where} is a built dataset (one "
                                    "set of images); give it as the train or val input")
            if split in out:
                raise BadInputError(f"split {split!r} comes from two inputs (images and "
                                    f"{split}); give it once")
            out[split] = members
        if not out:
            raise BadInputError("downscale needs a train, a val or an images input")
        return out

    @classmethod
    def labels(cls, params: DownscaleParams, inputs: Inputs,
               split: str | None = None) -> schemes.LabelScheme | None:
        """The labels input's scheme (None without one); `split`: one it must class."""
        if "labels" not in inputs.files:
            return None
        return schemes.build(params.labels_scheme, inputs.files["labels"], split)

    @classmethod
    def scheme(cls, params: DownscaleParams, inputs: Inputs) -> list[str]:
        """The class scheme in label order: the labels scheme's (ImageNet's WNIDs), or the
        source's classes."""
        labels = cls.labels(params, inputs)
        if labels is not None:
            return labels.classes()
        return scheme_of(inputs.files.get("classes"), list(cls.splits(inputs).values()))

    @classmethod
    def subset(cls, params: DownscaleParams, inputs: Inputs) -> list[str]:
        order = cls.scheme(params, inputs)
        if params.classes == "full":
            return list(order)
        if isinstance(params.classes, int):
            return list(order[:params.classes])
        known = set(order)
        unknown = [c for c in params.classes if c not in known]
        if unknown:
            raise BadInputError(f"params.classes: {', '.join(map(repr, unknown[:5]))} not in "
                                f"the class scheme (it has {len(order)}: "
                                f"{', '.join(order[:5])}...)")
        wanted = set(params.classes)
        return [c for c in order if c in wanted]  # subset labels in the scheme's order

    @classmethod
    def plan(cls, params: DownscaleParams, inputs: Inputs) -> Plan:
        splits = cls.splits(inputs)
        wnids = tuple(cls.subset(params, inputs))
        if len(wnids) > MAX_CLASSES:
            raise BadInputError(f"{len(wnids)} classes: labels.npy holds int16 labels, at most "
                                f"{MAX_CLASSES} classes; pick a subset (params.classes)")
        if params.format == "folders":
            folder_safe(list(wnids), "params.classes")
        tasks: list[DownscaleTask] = []
        # finish reads the selections again
        chosen = {split: cls.select(params, inputs, split) for split in splits}
        tails = _tails({split: len(sel.rows) for split, sel in chosen.items()})
        for split, sel in chosen.items():
            for start, stop in task_rows(len(sel.rows), tails[split]):
                tasks.append(DownscaleTask(
                    index=len(tasks), members=sel.members.take(sel.rows[start:stop]),
                    labels=sel.labels[start:stop].copy(), classes=wnids,
                    whole=sel.whole, split=split, start=start))
        return Plan(tasks, context={"subset": list(wnids), "selections": chosen})

    @classmethod
    def follow(cls, params: DownscaleParams, tasks: list[DownscaleTask],
               out: Output) -> RowsHasher | None:
        """Rows written in place: each split's images.npy allocated now, and hashed as its
        tasks finish (not read back whole after the last, while every worker waits)."""
        if params.format != "packed" or params.on_error != "fail" or not tasks:
            return None
        return RowsHasher(out, tasks, params.shape())

    @classmethod
    def select(cls, params: DownscaleParams, inputs: Inputs, split: str) -> Selection:
        """The split's images in the subset, by name, with subset labels; no per-image objects
        for a split classed by folder (ImageNet train), whose classes are contiguous runs of
        the sorted `<class>/` names."""
        members = cls.splits(inputs)[split]
        wanted = {w: k for k, w in enumerate(cls.subset(params, inputs))}
        runs: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        scheme = cls.labels(params, inputs, split)
        whole = False
        if scheme is None:
            runs, labels, whole = _by_class_name(params, inputs, members,
                                                 cls.scheme(params, inputs), wanted)
        elif split in scheme.folder_splits:
            missing = []
            for wnid, k in wanted.items():
                start, stop = members.prefix_range(wnid + "/")
                if stop == start:
                    missing.append(wnid)
                runs.append(np.arange(start, stop, dtype=np.int64))
                labels.append(np.full(stop - start, k, dtype=np.int16))
            if missing and params.require_all_classes:
                raise BadInputError(
                    f"{members.where}: {len(missing)} of the {len(wanted)} classes have no train "
                    f"images (first: {', '.join(missing[:5])}); set require_all_classes: false "
                    "to build without them")
        else:
            rows, ks = [], []
            wnids = scheme.class_of(members.names, split, members.where)
            for i, wnid in enumerate(wnids):
                k = wanted.get(wnid)
                if k is not None:
                    rows.append(i)
                    ks.append(k)
            runs.append(np.array(rows, dtype=np.int64))
            labels.append(np.array(ks, dtype=np.int16))
        sel = Selection(members, np.concatenate(runs), np.concatenate(labels), whole)
        if not len(sel.rows):
            raise BadInputError(f"{members.where}: no {split} images in the chosen classes")
        return sel

    @classmethod
    def run(cls, params: DownscaleParams, task: DownscaleTask, out: Output) -> dict[str, Any]:
        shape = params.shape()
        rows: list[tuple[MemberRef, int, bytes]] = []
        kept: set[int] = set()
        with quiet_bomb_warnings():
            for i, ref, row in usable(read_members(task.members), out, params.on_error,
                                      validate=False,  # downscale decodes and refuses itself
                                      convert=lambda ref, data: downscale(data, shape,
                                                                          where(ref))):
                label = int(task.labels[i])
                kept.add(i)
                if params.format == "folders":
                    name = whole_stem(ref.name) if task.whole else stem(ref.name)
                    out.write(f"{task.split}/{task.classes[label]}/{name}.png", png(row, shape),
                              label=label, member=ref.origin, source=ref.source,
                              class_name=task.classes[label])
                else:
                    rows.append((ref, label, row))
        skipped = [task.start + i for i in range(len(task)) if i not in kept]
        if params.format == "packed":
            if params.on_error == "fail":
                write_rows_in_place(out, task.split, task.start, shape, rows, task.classes)
            else:  # row numbers shift after a skip: finish assembles the chunks in order
                write_chunk(out, task.index, rows)
        return {"split": task.split, "index": task.index, "kept": len(task) - len(skipped),
                "skipped": skipped}

    @classmethod
    def finish(cls, params: DownscaleParams, inputs: Inputs, results: list[dict[str, Any]],
               out: Output, context: dict[str, Any] | None = None) -> None:
        context = context or {"subset": cls.subset(params, inputs), "selections": {}}
        subset, chosen = context["subset"], context["selections"]
        order = {w: i for i, w in enumerate(cls.scheme(params, inputs))}
        scheme = cls.labels(params, inputs)  # without one, a class's name is its description
        words = scheme.descriptions() if scheme else {w: w for w in subset}
        out.write("classes.txt", "".join(f"{w}\t{order[w]}\t{words.get(w, '')}\n"
                                         for w in subset).encode())
        written = []
        for split in cls.splits(inputs):
            parts = [r for r in results if r["split"] == split]
            if not parts:
                continue
            written.append(split)
            sel = chosen[split] if split in chosen else cls.select(params, inputs, split)
            skipped = [i for r in parts for i in r["skipped"]]
            keep = np.delete(np.arange(len(sel.rows)), skipped)  # positions in the selection
            kept = sel.members.take(sel.rows[keep])
            labels = sel.labels[keep]
            if params.format == "folders":
                if split == "val":
                    _write_val_files(out, kept, labels, [
                        f"val/{subset[k]}/{sel.png_name(n)}"
                        for n, k in zip(kept.names, labels, strict=True)])
                continue
            if params.on_error == "fail":
                finish_in_place(out, split, len(kept), params.shape())
            else:
                assemble(out, split, parts, params.shape(), subset)
            buf = io.BytesIO()
            np.save(buf, labels)
            out.write(f"{split}/labels.npy", buf.getvalue())
            out.write(f"{split}/members.txt", kept.origins.lines())
            if split == "val":
                # the file names, as the devkit's evaluation lists them (two images of
                # one file name are told apart by members.txt, as they always were)
                _write_val_files(out, kept, labels, [os.path.basename(n) for n in kept.names])
        if params.format == "folders":  # `<split>/<class>/...`: each split a folder of its own
            out.splits([split for split in written if split != "*"])


def _by_class_name(params: DownscaleParams, inputs: Inputs, members: MemberSet,
                   order: list[str], wanted: dict[str, int]
                   ) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """A generic split's rows (by member name) in the subset, with subset labels."""
    scheme = class_labels(members, order, inputs.files.get("classes"))
    to_subset = np.full(len(order), -1, dtype=np.int32)
    position = {name: i for i, name in enumerate(order)}
    for name, k in wanted.items():
        to_subset[position[name]] = k
    ks = to_subset[scheme]
    rows = np.flatnonzero(ks >= 0)
    if params.require_all_classes:
        present = np.bincount(ks[rows], minlength=len(wanted)) > 0
        expected = named(inputs, *SPLITS, "images")  # (a number no image has is no class)
        missing = [name for name, k in wanted.items()
                   if not present[k] and (expected is None or name in expected)]
        if missing:
            raise BadInputError(
                f"{members.where}: {len(missing)} of the {len(wanted)} classes have no "
                f"{members.split} images (first: {', '.join(missing[:5])}); set "
                "require_all_classes: false to build without them")
    whole = False
    if params.format == "folders":  # <split>/<class>/<stem>.png: whole names if two meet
        names = [members.names[i] for i in rows.tolist()]
        folders = [str(int(ks[i])) for i in rows.tolist()]
        pairs = list(zip(folders, names, strict=True))
        whole = record_names(names, [f"{k}/{stem(n)}.png" for k, n in pairs],
                             [f"{k}/{whole_stem(n)}.png" for k, n in pairs], "file",
                             members.where)[1]
    return [rows.astype(np.int64)], [ks[rows].astype(np.int16)], whole


def task_rows(rows: int, tail: int) -> list[tuple[int, int]]:
    """[start, stop) of each task of a split of `rows` rows: _CHUNK at a time, its last
    `tail` rows TAIL_CHUNK at a time."""
    return task_spans(0, rows, _CHUNK, rows - tail)


def _tails(rows: dict[str, int]) -> dict[str, int]:
    """How many of each split's last rows are in the plan's last TAIL (splits in plan
    order: the tail may reach back past a small last split)."""
    tails, left = {}, TAIL
    for split in reversed(list(rows)):
        tails[split] = min(rows[split], left)
        left -= tails[split]
    return tails


def _write_val_files(out: Output, kept: MemberSet, labels: np.ndarray, files: list[str]) -> None:
    """The evaluation files: ground truth (subset label a line) and the file list, in order."""
    out.write("val/ground_truth.txt", "".join(f"{int(k)}\n" for k in labels).encode())
    out.write("val/files.txt", "".join(f"{f}\n" for f in files).encode())
