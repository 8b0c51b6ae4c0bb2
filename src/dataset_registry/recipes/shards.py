"""Training layouts read straight from the raw tars: `byclass` and `recordio`.

`byclass` is `valprep.sh` (or an extracted train tar) without extraction: every
image copied byte-exact to `<wnid>/<file>`, a `torchvision.datasets.ImageFolder`.

`recordio` is MXNet's `im2rec.py --list --recursive` then `--pass-through`:
the list walks class folders in sorted order (labels `sorted0`), is shuffled
with `random.seed(100)`, and is written as `<split>.lst` with MXNet 1.x `%f`
labels; records follow the list: IRHeader(0, label, index, 0) + the original
JPEG bytes, in `<split>.rec`, with `<split>.idx`. im2rec numbers labels by the
folders it finds, so one missing class shifts every later label: a source
missing a class is refused (or, with `require_all_classes: false`, labels stay
`sorted0` over the 1000 WNIDs, which im2rec would not do).
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..errors import BadImageError, BadInputError
from ..formats.recordio import IRHeader, RecordIOError, encode_record, idx_line, lst_line
from ..formats.recordio import pack_image as pack
from ..labels import synsets, val_wnids
from ..members import MemberSet, read_member
from ..output import Output
from .base import Inputs, InputSpec, Params, Recipe
from .select import pick_split

_CHUNK = 256
IM2REC_EXTS = (".jpeg", ".jpg", ".png")


class ShardParams(Params):
    split: Literal["train", "val"] = "train"
    require_all_classes: bool = True


class WdsParams(ShardParams):
    shard_count: int = Field(default=1000, gt=0)  # samples per shard at most
    shard_bytes: int | None = Field(default=None, gt=0)  # and bytes per shard at most
    prefix: str = Field(default="imagenet-{split}", pattern=r"^[A-Za-z0-9._{}-]+$")


class TFRecordParams(ShardParams):
    shards: int | None = Field(default=None, gt=0)  # default: 1024 train, 128 validation


class RecordIOParams(ShardParams):
    shuffle: bool = True
    resize: int = Field(default=0, ge=0)  # shorter side; 0 keeps the original bytes
    quality: int = Field(default=95, ge=1, le=100)


@dataclass(frozen=True)
class ShardTask:
    index: int
    members: MemberSet
    labels: np.ndarray  # sorted0
    ids: np.ndarray  # im2rec's first .lst column (index before the shuffle)
    wnids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.members)


def classified(inputs: Inputs, split: str, require_all: bool
               ) -> tuple[MemberSet, np.ndarray, np.ndarray, list[str]]:
    """The split's images in class-folder order (wnid, then name): positions and sorted0
    labels, as a sorted walk of `<wnid>/` folders meets them."""
    members = pick_split(inputs.images["images"], split, "images")
    order = synsets(inputs.files["labels"])
    label_of = {w: i for i, w in enumerate(order)}
    if split == "train":
        wnid_of = [n.split("/", 1)[0] for n in members.names]
    else:
        wnid_of = val_wnids(members.names, inputs.files["labels"], members.where)
    unknown = sorted({w for w in wnid_of if w not in label_of})
    if unknown:
        raise BadInputError(f"{members.where}: class folder {unknown[0]!r} is not an ILSVRC2012 "
                            "WNID; im2rec would give it a label of its own")
    keep = [i for i, n in enumerate(members.names)
            if os.path.splitext(n)[1].lower() in IM2REC_EXTS]
    keep.sort(key=lambda i: (wnid_of[i], members.names[i]))
    present = {wnid_of[i] for i in keep}
    missing = [w for w in order if w not in present]
    if missing and require_all:
        raise BadInputError(
            f"{members.where}: {len(missing)} of the 1000 classes are missing or empty (first: "
            f"{', '.join(missing[:5])}); im2rec would silently shift every later label. Use the "
            "complete source, or set require_all_classes: false to keep sorted0 labels")
    positions = np.array(keep, dtype=np.int64)
    labels = np.array([label_of[wnid_of[i]] for i in keep], dtype=np.int16)
    return members, positions, labels, order


class ByClass(Recipe):
    """`valprep.sh` in place: `<wnid>/<file>` folders, byte-exact, for ImageFolder."""

    name = "byclass"
    version = 1
    Params = ShardParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "images": InputSpec("images", doc="the val set, or train as a tar of class tars"),
        "labels": InputSpec("file", doc="folder with caffe_val.txt and caffe_synsets.txt"),
    }

    @classmethod
    def plan(cls, params: ShardParams, inputs: Inputs) -> list[ShardTask]:
        members, positions, labels, order = classified(inputs, params.split,
                                                       params.require_all_classes)
        return [ShardTask(i, members.take(positions[s:s + _CHUNK]), labels[s:s + _CHUNK].copy(),
                          positions[s:s + _CHUNK].copy(), tuple(order))
                for i, s in enumerate(range(0, len(positions), _CHUNK))]

    @classmethod
    def run(cls, params: ShardParams, task: ShardTask, out: Output) -> int:
        for i, ref in enumerate(task.members):
            label = int(task.labels[i])
            out.write(f"{task.wnids[label]}/{os.path.basename(ref.name)}", read_member(ref),
                      label=label, member=ref.origin, source=ref.source)
        return len(task)


class RecordIO(Recipe):
    """im2rec-identical `.lst`, `.rec` and `.idx`, read from the raw tars in place."""

    name = "recordio"
    version = 1
    Params = RecordIOParams
    inputs = ByClass.inputs

    @classmethod
    def listing(cls, params: RecordIOParams, inputs: Inputs
                ) -> tuple[MemberSet, list[tuple[int, int, int]]]:
        """im2rec's list: (index, position, label) in .lst order."""
        members, positions, labels, _ = classified(inputs, params.split,
                                                   params.require_all_classes)
        items = [(i, int(p), int(lab)) for i, (p, lab) in enumerate(zip(positions, labels,
                                                                        strict=True))]
        if params.shuffle:
            random.seed(100)  # exactly what im2rec.py does before random.shuffle
            random.shuffle(items)
        return members, items

    @classmethod
    def plan(cls, params: RecordIOParams, inputs: Inputs) -> list[ShardTask]:
        members, items = cls.listing(params, inputs)
        tasks = []
        for t, s in enumerate(range(0, len(items), _CHUNK)):
            chunk = items[s:s + _CHUNK]
            tasks.append(ShardTask(
                t, members.take(np.array([p for _, p, _ in chunk], dtype=np.int64)),
                np.array([lab for _, _, lab in chunk], dtype=np.int16),
                np.array([i for i, _, _ in chunk], dtype=np.int64), ()))
        return tasks

    @classmethod
    def run(cls, params: RecordIOParams, task: ShardTask, out: Output) -> int:
        import xxhash

        records, meta = [], []
        offset = 0
        for i, ref in enumerate(task.members):
            image = read_member(ref)
            if params.resize:
                image = _resize_jpeg(image, params.resize, params.quality, ref.origin)
            label, key = int(task.labels[i]), int(task.ids[i])
            try:
                record = encode_record(pack(IRHeader(0, float(label), key, 0), image))
            except RecordIOError as exc:
                raise BadInputError(f"{ref.origin} (source {ref.source[:12]}): {exc}") from None
            records.append(record)
            meta.append(f"{offset}\t{len(record)}\t{key}\t{label}\t{ref.origin}\t{ref.source}\t"
                        f"{xxhash.xxh3_128_hexdigest(record)}\n")
            offset += len(record)
        with out.open(f".chunks/{task.index:06d}.rec") as f:
            f.write(b"".join(records))
        with out.open(f".chunks/{task.index:06d}.tsv") as f:
            f.write("".join(meta).encode())
        return len(task)

    @classmethod
    def finish(cls, params: RecordIOParams, inputs: Inputs, results: list[Any],
               out: Output) -> None:
        members, items = cls.listing(params, inputs)
        split = params.split
        out.write(f"{split}.lst", "".join(lst_line(i, (float(lab),), members.names[p])
                                          for i, p, lab in items).encode())
        rec_path, idx = f"{split}.rec", []
        base = 0
        with out.open(rec_path) as dst:
            for t in range(len(results)):
                chunk = os.path.join(out.root, ".chunks", f"{t:06d}")
                with open(chunk + ".rec", "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    _copy(src, dst, size)
                with open(chunk + ".tsv", encoding="utf-8") as meta:
                    for line in meta:
                        offset, length, key, label, origin, source, digest = \
                            line.rstrip("\n").split("\t")
                        idx.append(idx_line(int(key), base + int(offset)))
                        out.record(rec_path, offset=base + int(offset), size=int(length),
                                   xxh3=digest, label=int(label), member=origin, source=source,
                                   record=len(idx) - 1)
                base += size
                os.remove(chunk + ".rec")
                os.remove(chunk + ".tsv")
        out.added(rec_path)
        out.write(f"{split}.idx", "".join(idx).encode())


def _copy(src: Any, dst: Any, size: int) -> None:
    """Append `size` bytes of src to dst, in the kernel where it can."""
    dst.flush()
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if n == 0:
                break
            copied += n
    except (AttributeError, OSError):
        pass
    if copied < size:
        src.seek(copied)
        dst.seek(0, os.SEEK_END)
        while chunk := src.read(1 << 22):
            dst.write(chunk)
    else:
        dst.seek(0, os.SEEK_END)


def _resize_jpeg(data: bytes, shorter: int, quality: int, name: str) -> bytes:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            scale = shorter / min(im.size)
            size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
            buf = io.BytesIO()
            im.resize(size, Image.Resampling.BILINEAR).save(buf, "JPEG", quality=quality)
            return buf.getvalue()
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image: {exc}") from None


@dataclass(frozen=True)
class WdsTask:
    index: int
    name: str  # the shard's file name
    members: MemberSet
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.members)


class WebDataset(Recipe):
    """WebDataset tar shards (`.jpg` + `.cls`, sorted0), byte-reproducible.

    Shards are cut at plan time from the members' sizes (at most `shard_count`
    samples and `shard_bytes` bytes each; a single sample larger than
    `shard_bytes` gets a shard of its own), so every shard is one task and its
    bytes never depend on the number of workers. Samples are in class-folder
    order; WebDataset loaders shuffle shards and samples themselves.
    """

    name = "webdataset"
    version = 1
    Params = WdsParams
    inputs = ByClass.inputs

    @classmethod
    def plan(cls, params: WdsParams, inputs: Inputs) -> list[WdsTask]:
        from ..formats.wds import sample_bytes

        members, positions, labels, _ = classified(inputs, params.split,
                                                   params.require_all_classes)
        prefix = params.prefix.replace("{split}", params.split)
        tasks: list[WdsTask] = []
        start, size = 0, 1024  # a tar ends with two zero blocks
        for i in range(len(positions) + 1):
            if i < len(positions):
                name = members.names[int(positions[i])]
                label_digits = len(str(int(labels[i])))
                need = sample_bytes(_key(name), [int(members.sizes[int(positions[i])]),
                                                 label_digits])
                full = i - start >= params.shard_count or (
                    params.shard_bytes is not None and i > start and
                    _tar_size(size + need) > params.shard_bytes)
            if i == len(positions) or full:
                if i > start:
                    tasks.append(WdsTask(len(tasks), f"{prefix}-{len(tasks):06d}.tar",
                                         members.take(positions[start:i]),
                                         labels[start:i].copy()))
                start, size = i, 1024
            if i < len(positions):
                size += need
        return tasks

    @classmethod
    def run(cls, params: WdsParams, task: WdsTask, out: Output) -> int:
        import xxhash

        from ..formats.wds import ShardWriter, cls_bytes

        with out.open(task.name) as f:
            writer = ShardWriter(f)
            for i, ref in enumerate(task.members):
                label = int(task.labels[i])
                image = read_member(ref)
                offset = writer.write(_key(ref.name), {"cls": cls_bytes(label), "jpg": image})
                out.record(task.name, offset=offset, size=len(image),
                           xxh3=xxhash.xxh3_128_hexdigest(image), label=label,
                           member=ref.origin, source=ref.source, record=i)
            writer.close()
        out.added(task.name)
        return len(task)


def _tar_size(content: int) -> int:
    """A tar's size on disk: tarfile pads the archive to whole 10240-byte records."""
    return -(-content // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _key(name: str) -> str:
    """A sample key: the file name without its extension (no dots left in it)."""
    return os.path.splitext(os.path.basename(name))[0].replace(".", "_")


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
    """The MLPerf TF reference's `imagenet_to_gcs.py` layout, without TensorFlow.

    `train-%05d-of-01024` / `validation-%05d-of-00128`: each shard holds the next
    ceil(N / shards) images; train is shuffled with `random.seed(0)` first (from
    sorted member order: the reference starts from a filesystem glob, whose order
    is not reproducible), validation stays sorted. Labels are `sorted1`. A PNG, or a
    JPEG that is not RGB or gray (CMYK, 4-channel), is re-encoded to an RGB JPEG
    at quality 100, as the reference does (with Pillow's encoder, so those bytes
    differ from TensorFlow's); every other image keeps its original bytes.
    """

    name = "tfrecord"
    version = 1
    Params = TFRecordParams
    inputs = ByClass.inputs

    @classmethod
    def plan(cls, params: TFRecordParams, inputs: Inputs) -> list[TFTask]:
        members, positions, labels, order = classified(inputs, params.split,
                                                       params.require_all_classes)
        if params.split == "train":
            order_idx = list(range(len(positions)))
            random.seed(0)  # as imagenet_to_gcs.py's make_shuffle_idx
            random.shuffle(order_idx)
        else:  # sorted by file name, as the reference's sorted glob
            order_idx = sorted(range(len(positions)),
                               key=lambda i: os.path.basename(members.names[int(positions[i])]))
        idx = np.array(order_idx, dtype=np.int64)
        positions, labels = positions[idx], labels[idx]
        prefix = "train" if params.split == "train" else "validation"
        count = params.shards or (1024 if params.split == "train" else 128)
        size = -(-len(positions) // count)
        return [TFTask(k, f"{prefix}-{k:05d}-of-{count:05d}",
                       members.take(positions[k * size:(k + 1) * size]),
                       (labels[k * size:(k + 1) * size] + 1).astype(np.int16), tuple(order))
                for k in range(count)]

    @classmethod
    def run(cls, params: TFRecordParams, task: TFTask, out: Output) -> int:
        import xxhash

        from ..formats.tfrecord import encode_example, frame

        offset = 0
        with out.open(task.name) as f:
            for i, ref in enumerate(task.members):
                image, width, height = _rgb_jpeg(read_member(ref), ref.origin)
                label = int(task.labels[i])
                record = frame(encode_example({
                    "image/height": height, "image/width": width, "image/colorspace": b"RGB",
                    "image/channels": 3, "image/class/label": label,
                    "image/class/synset": task.wnids[label - 1].encode(),
                    "image/format": b"JPEG",
                    "image/filename": os.path.basename(ref.name).encode(),
                    "image/encoded": image}))
                f.write(record)
                out.record(task.name, offset=offset, size=len(record),
                           xxh3=xxhash.xxh3_128_hexdigest(record), label=label,
                           member=ref.origin, source=ref.source, record=i)
                offset += len(record)
        out.added(task.name)
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
