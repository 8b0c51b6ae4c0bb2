"""`webdataset`: tar shards of `<key>.cls` + `<key>.<ext>` samples, byte-reproducible.

`<ext>` is the image's own extension, lower case, `.jpeg` written `.jpg` (so
ImageNet's `.JPEG` files stay `.jpg` samples and a PNG stays `.png`); `.cls`
holds the class scheme's label (ImageNet: sorted0; see `shards`). Shards are
`<prefix>-%06d.tar`: `prefix` defaults to the dataset's name, filled in when
the manifest loads (so the name a build writes is in its key); a `{split}` in
it is the split.

Shards are cut at plan time from the members' sizes (at most `shard_count`
samples and `shard_bytes` bytes each; a single sample larger than
`shard_bytes` gets a shard of its own), so their bytes never depend on the
number of workers. Samples are in class-folder order; WebDataset loaders
shuffle shards and samples themselves.
Where the tasks decode images for the checks, a shard of more than `PART`
samples is written by several tasks, each its planned region (`Output.write_at`;
the coordinator hashes the regions in order, recipes/regions.py): such a
1,000-sample shard is ~1.5 s of one worker, so 30 of them on 16 workers left two
idle for a whole shard. Otherwise each shard is one task, written as it streams
and hashed by its worker: unchecked, or its checks known, a shard is ~0.1 s, and
regions cost more than they even out (the coordinator hashes every byte again;
30,000 samples took 2.2x as long in one trace). The plan's last 4,096 samples go in
regions of 64 (`tasks.task_spans`). Where an image may be skipped (`on_error: skip`),
no region can be planned. An image skipped leaves its shard one sample shorter: the
shards and their names stay those planned.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from ..artifact.output import Output
from ..errors import BadInputError, BuildError
from ..formats.wds import (
    BLOCK,
    ShardWriter,
    closed_size,
    cls_bytes,
    entry_bytes,
    sample_bytes,
)
from ..sources.members import StrColumn, read_members
from .base import Inputs, Recipe
from .imagecheck import usable
from .naming import record_names, stem
from .regions import RegionHasher
from .shards import SHARD_INPUTS, Classified, ShardParams, classified
from .tasks import TAIL, LabelledTask, task_spans

_PREFIX = re.compile(r"[A-Za-z0-9._+{}-]+")
PART = 256  # samples a task writes of a shard whose sizes are planned (shards.CHUNK's)
DATASET = "{dataset}"  # the default prefix: the dataset's name, filled at manifest load


class WdsParams(ShardParams):
    # placeholders a manifest may leave in a param for the recipe to fill (see manifest/binding.py)
    own_placeholders: ClassVar[dict[str, frozenset[str]]] = {
        "prefix": frozenset({"split", "dataset"})}

    shard_count: int = Field(default=1000, gt=0)  # samples per shard at most
    shard_bytes: int | None = Field(default=None, gt=0)  # and bytes per shard at most
    # a file name, with "-000000.tar", within 255 bytes; ImageNet's manifests name theirs
    # (imagenet-{split}): the default was that before it became the dataset's name
    prefix: str = Field(default=DATASET, validate_default=True)

    @field_validator("prefix")
    @classmethod
    def _fill_dataset(cls, value: str, info: ValidationInfo) -> str:
        dataset = (info.context or {}).get("dataset")
        if dataset is not None:
            value = value.replace(DATASET, dataset)
        if not _PREFIX.fullmatch(value):
            raise ValueError(f"{value!r}: a shard name prefix holds only letters, digits and "
                             "'.', '_', '+', '-' (and {split})")
        if len(value) > 200:
            raise ValueError(f"{len(value)} characters: a shard name prefix is at most 200 "
                             "(name a shorter one in params.prefix)")
        return value


@dataclass(frozen=True)
class Region:
    """Where a task's samples lie in its shard: `start` bytes in, `first` its first
    sample's number there, `size` the bytes they take (with the closing blocks if `last`)."""

    part: int
    parts: int
    start: int
    first: int
    size: int

    @property
    def last(self) -> bool:
        return self.part == self.parts - 1


@dataclass(frozen=True, kw_only=True)
class WdsTask(LabelledTask):
    """One shard, or one region of it; with `whole` its sample keys are whole names
    (`cat/0001`)."""

    name: str  # the shard's file name
    ext: str | None  # every sample's extension, if the label scheme fixes one (ImageNet: jpg)
    # a task writing one region of its shard (None: the whole shard, as it streams)
    region: Region | None = None


class WebDataset(Recipe):
    """WebDataset tar shards (`.<ext>` + `.cls`), byte-reproducible."""

    name = "webdataset"
    version = 1
    Params = WdsParams
    inputs = SHARD_INPUTS
    missing = "the shards would not hold the whole ILSVRC2012 split"

    @classmethod
    def plan(cls, params: WdsParams, inputs: Inputs) -> list[WdsTask]:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing,
                       params.labels_scheme)
        if DATASET in params.prefix:
            raise BadInputError(f"prefix {params.prefix!r}: {DATASET} is the dataset's name, "
                                "filled when a manifest loads; these params came without one")
        prefix = params.prefix.replace("{split}", params.split)
        ext = c.scheme.image_ext if c.scheme else None
        whole = False
        names = c.members.names.take(c.positions)  # in plan order
        listed = None
        if c.scheme is None or not c.scheme.unique_base_names:
            # a generic source may number its files per class: whole keys (naming.py)
            listed = names.tolist()
            whole = record_names(listed, [sample_key(n) for n in listed],
                                 [whole_key(n) for n in listed], "sample key",
                                 c.members.where)[1]
        tasks: list[WdsTask] = []
        classes = tuple(c.classes)
        need = sample_sizes(c, names, whole, ext, listed)
        cuts = shard_cuts(need, params.shard_count, params.shard_bytes)
        part = PART if params.on_error == "fail" and decodes(params, c) else None
        total = np.concatenate([[0], np.cumsum(need)])
        for shard, (start, stop) in enumerate(itertools.pairwise(cuts)):
            name = f"{prefix}-{shard:06d}.tar"
            spans = task_spans(start, stop, part, len(need) - TAIL) \
                if part and stop - start > part else [(start, stop)]
            for i, (a, b) in enumerate(spans):
                region = None
                if len(spans) > 1:  # (bytes into the shard before sample a, and b)
                    at, end = int(total[a] - total[start]), int(total[b] - total[start])
                    if b == stop:  # tar's two zero blocks, padded to a whole record
                        end = closed_size(end)
                    region = Region(part=i, parts=len(spans), start=at, first=a - start,
                                    size=end - at)
                tasks.append(WdsTask(index=len(tasks), name=name,
                                     members=c.members.take(c.positions[a:b]),
                                     labels=c.labels[a:b].copy(), classes=classes,
                                     whole=whole, ext=ext, region=region))
        return tasks

    @classmethod
    def run(cls, params: WdsParams, task: WdsTask, out: Output) -> int | dict[str, Any]:
        region = task.region
        if region is None:
            with out.open(task.name) as f:
                writer = ShardWriter(f)
                count = cls._samples(params, task, out, writer, 0)
                size, digest = writer.close()
            out.added(task.name, size=size, xxh3=digest)
            return count
        pieces: list[bytes] = []
        writer = ShardWriter(_Pieces(pieces), region.start, hashed=False)  # (hashed whole)
        cls._samples(params, task, out, writer, region.first)
        if region.last:
            writer.close()
        if writer.offset - region.start != region.size:  # the plan's sizes are tar's
            raise BuildError(f"{task.name}: samples {region.first} to "
                             f"{region.first + len(task) - 1} took "
                             f"{writer.offset - region.start} bytes, planned {region.size}")
        out.write_at(task.name, pieces, region.start)
        return {"shard": task.name, "start": region.start, "size": region.size,
                "in_place": True}

    @staticmethod
    def _samples(params: WdsParams, task: WdsTask, out: Output, writer: ShardWriter,
                 record: int) -> int:
        """Write the task's usable samples, numbered from `record` in the shard, each
        with its row; how many."""
        import xxhash

        key_of = whole_key if task.whole else sample_key
        count = 0
        for i, ref, image in usable(read_members(task.members), out, params.on_error,
                                    validate=params.validate_images):
            label = int(task.labels[i])
            offset = writer.write(key_of(ref.name),
                                  {"cls": cls_bytes(label),
                                   image_extension(ref.name, ref.origin, task.ext): image})
            out.record(task.name, offset=offset, size=len(image),
                       xxh3=ref.xxh3 or xxhash.xxh3_128_hexdigest(image), label=label,
                       member=ref.origin, source=ref.source, record=record + count,
                       class_name=task.classes[label], attrs=ref.attrs or None)
            count += 1
        return count

    @classmethod
    def follow(cls, params: WdsParams, tasks: list[WdsTask],
               out: Output) -> Callable[[int, Any], None] | None:
        """The shards written in regions, hashed region by region as their tasks finish."""
        hashers = {task.name: RegionHasher(out, task.name, task.region.parts)
                   for task in tasks if task.region is not None}
        if not hashers:
            return None

        def follow(index: int, result: Any) -> None:
            region = tasks[index].region
            if region is not None:
                hashers[tasks[index].name](region.part, result)

        return follow

    @classmethod
    def finish(cls, params: WdsParams, inputs: Inputs, results: list[Any], out: Output,
               context: Any = None) -> None:
        """The shards written in regions, added (hashed from disk where no follower saw
        their tasks: a remote store's)."""
        for name in dict.fromkeys(r["shard"] for r in results if isinstance(r, dict)):
            out.added(name)


def decodes(params: WdsParams, c: Classified) -> bool:
    """Whether the tasks will decode images: the checks are on and some planned member's
    verdict is not known yet (engine/imagechecks.py)."""
    checks = c.members.checks
    return params.validate_images and (checks is None or bool((checks[c.positions] == 0).any()))


def sample_sizes(c: Classified, names: StrColumn, whole: bool, fixed: str | None,
                 listed: list[str] | None = None) -> np.ndarray:
    """The bytes each sample takes in a shard (`sample_bytes` of its `.cls` and its image),
    in plan order (`names`, and `listed`, the same as a list, if the caller has it): as
    arrays where no entry's name can pass tar's 100 bytes (then each entry is a header and
    its data padded to 512), else sample by sample. Every image's extension is checked
    (`image_extension`) either way."""
    sizes = c.members.sizes[c.positions]
    if fixed:
        exts = [fixed] * len(sizes)
    else:
        listed = names.tolist() if listed is None else listed
        exts = [image_extension(n, c.members.where) for n in listed]
    longest = int(names.byte_lengths().max(initial=0)) + 1 + max(map(len, {"cls", *exts}))
    if longest <= 100:  # (a key is never longer than its name)
        digits = np.array([len(str(k)) for k in range(int(c.labels.max(initial=0)) + 1)])
        return entry_bytes(digits[c.labels]) + entry_bytes(sizes.astype(np.int64))
    key_of = whole_key if whole else sample_key
    return np.array([
        sample_bytes(key_of(name), {"cls": len(str(label)), ext: size})
        for name, label, ext, size in zip(names.tolist() if listed is None else listed,
                                          c.labels.tolist(), exts, sizes.tolist(),
                                          strict=True)], dtype=np.int64)


class _Pieces:
    """A task's region as the buffers `Output.write_at` writes, from `ShardWriter`."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.write = pieces.append


def shard_cuts(need: np.ndarray, count: int, max_bytes: int | None) -> list[int]:
    """Where each shard starts, and the end: as filling shards in turn, taking the samples
    (of `need` bytes) while a shard holds fewer than `count` and, past its first, its tar
    stays within `max_bytes` on disk (tarfile pads a tar to whole 10240-byte records, after
    its two closing zero blocks)."""
    n = len(need)
    if max_bytes is None:
        return [*range(0, n, count), n]
    room = max_bytes // tarfile.RECORDSIZE * tarfile.RECORDSIZE - 2 * BLOCK
    total = np.concatenate([[0], np.cumsum(need)])
    cuts, start = [0], 0
    while start < n:  # a shard ends at the last sample whose running total still fits
        fits = int(np.searchsorted(total, total[start] + room, side="right")) - 1
        start = min(max(fits, start + 1), start + count, n)
        cuts.append(start)
    return cuts


def image_extension(name: str, where: Any, fixed: str | None = None) -> str:
    """The sample's image extension: the file's own, lower case, `jpeg` as `jpg` (what
    WebDataset's decoders use), unless the label scheme fixes one (every ImageNet sample
    is `jpg`, as it always was)."""
    if fixed:
        return fixed
    ext = os.path.splitext(os.path.basename(name))[1][1:].lower()
    if not re.fullmatch(r"[a-z0-9]+", ext):
        raise BadInputError(f"{where}: {name!r} has no usable file extension; a WebDataset "
                            "sample's extension names its decoder (e.g. .jpg, .png)")
    if ext == "cls":  # one entry per extension: the image would take the label's place
        raise BadInputError(f"{where}: {name!r} has the extension .cls, which its sample's "
                            "label entry takes; rename the image after its format (.jpg, .png)")
    return "jpg" if ext == "jpeg" else ext


def sample_key(name: str) -> str:
    """A sample key: the file name without its extension (no dots left in it)."""
    return stem(name).replace(".", "_")


def whole_key(name: str) -> str:
    """A sample key from the whole logical name: `cat/0001.jpg` -> `cat/0001` (WebDataset
    groups by what precedes the first dot after the last slash: folders may hold dots)."""
    folder = posixpath.dirname(name)
    return posixpath.join(folder, sample_key(name)) if folder else sample_key(name)
