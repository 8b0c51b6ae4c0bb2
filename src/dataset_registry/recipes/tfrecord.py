"""`tfrecord`: the MLPerf TF reference's `imagenet_to_gcs.py` layout, without TensorFlow.

`train-%05d-of-01024` / `validation-%05d-of-00128`: each shard holds the next
ceil(N / shards) images; train is shuffled with `random.seed(0)` first (from
sorted member order: the reference starts from a filesystem glob, whose order
is not reproducible), validation stays sorted. Labels are `sorted1`. A PNG, or a
JPEG that is not RGB or gray (CMYK, 4-channel), is re-encoded to an RGB JPEG
at quality 100, as the reference does (with Pillow's encoder, so those bytes
differ from TensorFlow's); every other image keeps its original bytes.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..errors import BadImageError, BadInputError
from ..members import MemberSet, read_members
from ..output import Output
from .base import Inputs, Recipe
from .shards import SHARD_INPUTS, ShardParams, classified


class TFRecordParams(ShardParams):
    # default: 1024 train, 128 validation; names hold 5 digits; at most one an image (plan)
    shards: int | None = Field(default=None, gt=0, le=99_999)


@dataclass(frozen=True)
class TFTask:
    index: int
    name: str
    members: MemberSet
    labels: np.ndarray  # sorted1
    wnids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.members)


class TFRecord(Recipe):
    """imagenet_to_gcs.py's shards: tf.train.Example records, masked CRC-32C framing."""

    name = "tfrecord"
    version = 1
    Params = TFRecordParams
    inputs = SHARD_INPUTS

    @classmethod
    def plan(cls, params: TFRecordParams, inputs: Inputs) -> list[TFTask]:
        c = classified(inputs, params.split, params.require_all_classes)
        if params.split == "train":
            order = list(range(len(c.positions)))
            random.seed(0)  # as imagenet_to_gcs.py's make_shuffle_idx
            random.shuffle(order)
        else:  # sorted by file name, as the reference's sorted glob
            base = [os.path.basename(c.members.names[p]) for p in c.positions.tolist()]
            order = sorted(range(len(base)), key=base.__getitem__)
        idx = np.array(order, dtype=np.int64)
        positions, labels = c.positions[idx], c.labels[idx]
        prefix = "train" if params.split == "train" else "validation"
        count = params.shards or (1024 if params.split == "train" else 128)
        if params.shards and params.shards > len(positions):
            raise BadInputError(f"shards: {params.shards} asked for, but {c.members.where} "
                                f"holds only {len(positions)} {params.split} images")
        size = -(-len(positions) // count)
        return [TFTask(k, f"{prefix}-{k:05d}-of-{count:05d}",
                       c.members.take(positions[k * size:(k + 1) * size]),
                       (labels[k * size:(k + 1) * size] + 1).astype(np.int16), tuple(c.wnids))
                for k in range(count)]

    @classmethod
    def run(cls, params: TFRecordParams, task: TFTask, out: Output) -> int:
        import xxhash

        from ..formats.tfrecord import encode_example, frame

        offset = 0
        whole = xxhash.xxh3_128()
        with out.open(task.name) as f:
            for i, (ref, data) in enumerate(read_members(task.members)):
                image, width, height = _rgb_jpeg(data, ref.origin)
                label = int(task.labels[i])
                record = frame(encode_example({
                    "image/height": height, "image/width": width, "image/colorspace": b"RGB",
                    "image/channels": 3, "image/class/label": label,
                    "image/class/synset": task.wnids[label - 1].encode(),
                    "image/format": b"JPEG",
                    "image/filename": os.path.basename(ref.name).encode(),
                    "image/encoded": image}))
                f.write(record)
                whole.update(record)
                out.record(task.name, offset=offset, size=len(record),
                           xxh3=xxhash.xxh3_128_hexdigest(record), label=label,
                           member=ref.origin, source=ref.source, record=i)
                offset += len(record)
        out.added(task.name, size=offset, xxh3=whole.hexdigest())
        return len(task)


def _rgb_jpeg(data: bytes, name: str) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height): the original unless it is a PNG or a non-RGB/gray JPEG."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                return data, im.width, im.height
            rgb = im.convert("RGB")
            buf = io.BytesIO()
            rgb.save(buf, "JPEG", quality=100)
            return buf.getvalue(), rgb.width, rgb.height
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image: {exc}") from None
