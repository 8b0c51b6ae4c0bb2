"""`webdataset`: tar shards of `<key>.cls` + `<key>.jpg` samples, byte-reproducible.

Shards are cut at plan time from the members' sizes (at most `shard_count`
samples and `shard_bytes` bytes each; a single sample larger than
`shard_bytes` gets a shard of its own), so every shard is one task and its
bytes never depend on the number of workers. Samples are in class-folder order
(labels `sorted0`); WebDataset loaders shuffle shards and samples themselves.
An image skipped (`on_error: skip`) leaves its shard one sample shorter: the
shards and their names stay those planned.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..formats.wds import ShardWriter, cls_bytes, sample_bytes
from ..members import MemberSet, read_members
from ..output import Output
from .base import Inputs, Recipe
from .imagecheck import usable
from .shards import SHARD_INPUTS, ShardParams, classified


class WdsParams(ShardParams):
    shard_count: int = Field(default=1000, gt=0)  # samples per shard at most
    shard_bytes: int | None = Field(default=None, gt=0)  # and bytes per shard at most
    prefix: str = Field(default="imagenet-{split}", pattern=r"^[A-Za-z0-9._{}-]+$",
                        max_length=200)  # a file name, with "-000000.tar", within 255 bytes


@dataclass(frozen=True)
class WdsTask:
    index: int
    name: str  # the shard's file name
    members: MemberSet
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.members)


class WebDataset(Recipe):
    """WebDataset tar shards (`.jpg` + `.cls`, sorted0), byte-reproducible."""

    name = "webdataset"
    version = 1
    Params = WdsParams
    inputs = SHARD_INPUTS
    missing = "the shards would not hold the whole ILSVRC2012 split"

    @classmethod
    def plan(cls, params: WdsParams, inputs: Inputs) -> list[WdsTask]:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing)
        prefix = params.prefix.replace("{split}", params.split)
        sizes = c.members.sizes[c.positions].tolist()
        tasks: list[WdsTask] = []

        def cut(start: int, stop: int) -> None:
            tasks.append(WdsTask(len(tasks), f"{prefix}-{len(tasks):06d}.tar",
                                 c.members.take(c.positions[start:stop]),
                                 c.labels[start:stop].copy()))

        start, size = 0, 2 * tarfile.BLOCKSIZE  # a tar ends with two zero blocks
        for i, position in enumerate(c.positions.tolist()):
            need = sample_bytes(sample_key(c.members.names[position]),
                                {"cls": len(str(int(c.labels[i]))), "jpg": sizes[i]})
            if i - start >= params.shard_count or (
                    params.shard_bytes is not None and i > start and
                    _tar_size(size + need) > params.shard_bytes):
                cut(start, i)
                start, size = i, 2 * tarfile.BLOCKSIZE
            size += need
        if len(c.positions) > start:
            cut(start, len(c.positions))
        return tasks

    @classmethod
    def run(cls, params: WdsParams, task: WdsTask, out: Output) -> int:
        import xxhash

        record = 0
        with out.open(task.name) as f:
            writer = ShardWriter(f)
            for i, ref, image in usable(read_members(task.members), out, params.on_error,
                                        validate=params.validate_images):
                label = int(task.labels[i])
                offset = writer.write(sample_key(ref.name),
                                      {"cls": cls_bytes(label), "jpg": image})
                out.record(task.name, offset=offset, size=len(image),
                           xxh3=xxhash.xxh3_128_hexdigest(image), label=label,
                           member=ref.origin, source=ref.source, record=record)
                record += 1
            size, digest = writer.close()
        out.added(task.name, size=size, xxh3=digest)
        return record


def _tar_size(content: int) -> int:
    """A tar's size on disk: tarfile pads the archive to whole 10240-byte records."""
    return -(-content // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def sample_key(name: str) -> str:
    """A sample key: the file name without its extension (no dots left in it)."""
    return os.path.splitext(os.path.basename(name))[0].replace(".", "_")
