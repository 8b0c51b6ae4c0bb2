"""`tfrecord`: the MLPerf TF reference's `imagenet_to_gcs.py` layout, without TensorFlow.

`train-%05d-of-01024` / `validation-%05d-of-00128`: each shard holds the next
ceil(N / shards) images; train is shuffled with `random.seed(0)` first (from
sorted member order: the reference starts from a filesystem glob, whose order
is not reproducible), validation stays sorted. Labels are the class scheme's
(see `shards`) plus `label_offset` (default 1: ImageNet's `sorted1`, label 0 is
TF's background); `image/class/synset` holds the class name (ImageNet: the
WNID). Any other split name is written as `<split>-%05d-of-%05d`, sorted, 128
shards by default.

Like the reference, only the files on its own lists are re-encoded to an RGB
JPEG at quality 100 (with Pillow's encoder, so those bytes differ from
TensorFlow's): the names the label scheme lists (`LabelScheme.reencoded`;
ImageNet's: the PNG impostor and the 22 CMYK *train* names).
Every other JPEG keeps its original bytes, the 4-channel
`ILSVRC2012_val_00019877.JPEG` included, so validation shards match the
reference record for record. An image that is not a JPEG and not on the lists
(the reference's decode_jpeg would fail on it) is re-encoded the same way.
An image skipped (`on_error: skip`) leaves its shard one record shorter.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
from pydantic import Field

from ..artifact.output import Output
from ..errors import BadInputError
from ..sources.members import MemberRef, read_members
from .base import Inputs, Recipe
from .imagecheck import check, usable, where
from .imaging import ImageHeader, open_image, rgb_jpeg
from .shards import SHARD_INPUTS, ShardParams, classified
from .tasks import LabelledTask


class TFRecordParams(ShardParams):
    # version 2 keyed every field; label_offset came later (its default, 1, is sorted1)
    added_later: ClassVar[frozenset[str]] = frozenset({"label_offset", "labels_scheme"})

    label_offset: int = Field(default=1, ge=0, le=1)  # stored label = scheme label + offset
    # default: 1024 train, 128 validation; names hold 5 digits; at most one an image (plan)
    shards: int | None = Field(default=None, gt=0, le=99_999)


@dataclass(frozen=True, kw_only=True)
class TFTask(LabelledTask):
    """One shard; its labels are the scheme's + label_offset (ImageNet: sorted1)."""

    name: str  # the shard's file name
    reencoded: frozenset[str]  # file names re-encoded whatever they hold (the scheme's)


class TFRecord(Recipe):
    """imagenet_to_gcs.py's shards: tf.train.Example records, masked CRC-32C framing."""

    name = "tfrecord"
    # 2: the CMYK val image keeps its original bytes, as in the reference (1 re-encoded
    # every non-RGB/gray JPEG); images are checked (validate_images, on_error).
    version = 2
    Params = TFRecordParams
    inputs = SHARD_INPUTS
    missing = "the shards would not hold the whole ILSVRC2012 split"

    @classmethod
    def plan(cls, params: TFRecordParams, inputs: Inputs) -> list[TFTask]:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing,
                       params.labels_scheme)
        reencoded = c.scheme.reencoded if c.scheme else frozenset()
        if params.split == "train":
            order = list(range(len(c.positions)))
            # imagenet_to_gcs.py's make_shuffle_idx: random.seed(0), then random.shuffle;
            # the same stream from a private generator, the global RNG left alone
            random.Random(0).shuffle(order)
        else:  # sorted by file name, as the reference's sorted glob
            base = [os.path.basename(c.members.names[p]) for p in c.positions.tolist()]
            order = sorted(range(len(base)), key=base.__getitem__)
        idx = np.array(order, dtype=np.int64)
        positions, labels = c.positions[idx], c.labels[idx]

        prefix = {"train": "train", "val": "validation"}.get(params.split, params.split)
        count = params.shards or (1024 if params.split == "train" else 128)
        if params.shards and params.shards > len(positions):
            raise BadInputError(f"shards: {params.shards} asked for, but {c.members.where} "
                                f"holds only {len(positions)} {params.split} images")
        size = -(-len(positions) // count)
        return [TFTask(index=k, name=f"{prefix}-{k:05d}-of-{count:05d}",
                       members=c.members.take(positions[k * size:(k + 1) * size]),
                       labels=(labels[k * size:(k + 1) * size].astype(np.int32) +
                               params.label_offset),
                       classes=tuple(c.classes), reencoded=reencoded)
                for k in range(count)]

    @classmethod
    def run(cls, params: TFRecordParams, task: TFTask, out: Output) -> int:
        import xxhash

        from ..formats.tfrecord import example_pieces, framed_pieces

        offset, record = 0, 0
        whole = xxhash.xxh3_128()
        with out.open(task.name) as f:
            # the check runs inside _as_reference (first, as usable would run it), which
            # then takes the format and size from the header the check opened
            for i, ref, (image, width, height) in usable(
                    read_members(task.members), out, params.on_error, validate=False,
                    convert=partial(_as_reference, task.reencoded,
                                    out if params.validate_images else None)):
                label = int(task.labels[i])
                # in pieces, the image among them as read: written and hashed, never copied
                pieces = framed_pieces(example_pieces({
                    "image/height": height, "image/width": width, "image/colorspace": b"RGB",
                    "image/channels": 3, "image/class/label": label,
                    "image/class/synset":
                        task.classes[label - params.label_offset].encode(),
                    "image/format": b"JPEG",
                    "image/filename": os.path.basename(ref.name).encode(),
                    "image/encoded": image}))
                f.writelines(pieces)
                digest = xxhash.xxh3_128()
                for piece in pieces:
                    whole.update(piece)
                    digest.update(piece)
                size = sum(len(piece) for piece in pieces)
                out.record(task.name, offset=offset, size=size,
                           xxh3=digest.hexdigest(), label=label,
                           member=ref.origin, source=ref.source, record=record,
                           class_name=task.classes[label - params.label_offset],
                           attrs=ref.attrs or None)
                offset += size
                record += 1
        out.added(task.name, size=offset, xxh3=whole.hexdigest())
        return record


def _as_reference(reencoded: frozenset[str], checks: Output | None, ref: MemberRef,
                  data: bytes) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) as the reference stores them: re-encoded if on its lists
    (or not a JPEG at all), else the original bytes. With `checks` (validate_images), the
    image is checked first (`imagecheck.check`, its verdict into `checks`); a check that
    decoded it has read its header, so it is not opened a second time (~40 us of ~1 ms)."""
    name = where(ref)
    header = check(ref, data, checks) if checks is not None else None
    if os.path.basename(ref.name) not in reencoded:
        if header is None:  # not checked, or its verdict was known: nothing opened it yet
            with open_image(data, name) as im:
                header = ImageHeader(im.format, im.width, im.height)
        if header.format == "JPEG":
            return data, header.width, header.height
    return rgb_jpeg(data, name, quality=100)
