"""`recordio`: MXNet's `im2rec.py --list --recursive`, then `--pass-through`.

The list walks class folders in class-folder order (labels from the class
scheme, see `shards`: ImageNet's `sorted0`, or a generic source's sorted class
names or classes file), is shuffled with `random.seed(100)`, and is written as
`<split>.lst` with MXNet 1.x `%f` labels and im2rec's path column,
`<class>/<file>` as im2rec writes it for class folders (ImageNet train: the
member's `<wnid>/<file>`; val: the folder `valprep.sh` moves the image to);
records follow the list: IRHeader(0, label,
index, 0) + the original JPEG bytes, in `<split>.rec`, with `<split>.idx`.
An image skipped (`on_error: skip`) leaves no line, record or index entry; the
others keep their ids (the list index before the shuffle), so `.lst`, `.rec`
and `.idx` still agree line for line.

Each record's size is known at plan time from its member's size, unless its
payload holds the RecordIO magic at an aligned position (then dmlc splits it
and it grows by 4 bytes a split) or it is re-encoded (`resize`). So the
coordinator reserves the planned size of `<split>.rec` (fallocate), and tasks
write their records straight into it at planned offsets; a task
whose bytes came out longer writes a chunk instead, and `finish` then lays the
file out again once, in order. Either way the bytes are im2rec's.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..artifact.output import Output
from ..core.atomic import atomic_path
from ..core.filewrites import PIECE
from ..errors import BadInputError
from ..formats.recordio import IRHeader, RecordIOError, idx_line, image_record, lst_line
from ..sources.members import MemberRef, MemberSet, read_members
from .base import Inputs, Plan, Recipe
from .imagecheck import usable, where
from .imaging import rgb_jpeg
from .regions import RegionHasher
from .shards import CHUNK, SHARD_INPUTS, ShardParams, classified
from .tasks import TAIL, LabelledTask, task_spans

_IRHEADER_BYTES = 24


class RecordIOParams(ShardParams):
    # version 2 keyed every field it had; labels_scheme came later (its default: imagenet)
    added_later: ClassVar[frozenset[str]] = frozenset({"labels_scheme"})

    shuffle: bool = True
    # shorter side; 0 keeps the original bytes; past 4096 (JPEG's 65,535 at 16:1) a typo
    resize: int = Field(default=0, ge=0, le=4096)
    quality: int = Field(default=95, ge=1, le=100)


@dataclass(frozen=True, kw_only=True)
class RecordTask(LabelledTask):
    """A run of records; labels are the scheme's (ImageNet: sorted0), `classes` name the
    .lst's `<class>/<file>` paths."""

    ids: np.ndarray  # im2rec's first .lst column (index before the shuffle)
    names_are_paths: bool  # a scheme's folder split (ImageNet train): the name is the path
    start: int | None  # planned offset in <split>.rec; None when sizes cannot be known
    planned: int  # planned bytes


def unsplit_size(image_bytes: np.ndarray) -> np.ndarray:
    """Bytes a pass-through record takes when dmlc does not split it."""
    payload = image_bytes + _IRHEADER_BYTES
    return 8 + payload + (-payload % 4)


class RecordIO(Recipe):
    """im2rec-identical `.lst`, `.rec` and `.idx`, read from the raw tars in place."""

    name = "recordio"
    # 2: val.lst's path column is im2rec's `<wnid>/<file>` (1 wrote the bare file name);
    # images are checked (validate_images, on_error).
    version = 2
    Params = RecordIOParams
    inputs = SHARD_INPUTS
    missing = "im2rec would silently shift every later label"

    @classmethod
    def plan(cls, params: RecordIOParams, inputs: Inputs) -> Plan:
        c = classified(inputs, params.split, params.require_all_classes, cls.missing,
                       params.labels_scheme)
        ids = np.arange(len(c.positions), dtype=np.int64)  # im2rec's (index, path, label)
        if params.shuffle:
            order = list(range(len(ids)))
            # im2rec.py seeds the global RNG with 100, then random.shuffle: the same
            # Mersenne Twister stream, without touching the process's global one
            random.Random(100).shuffle(order)
            ids = ids[np.array(order, dtype=np.int64)]
        positions, labels = c.positions[ids], c.labels[ids]
        _no_tabs(c.members, params.split)
        names_are_paths = c.scheme is not None and params.split in c.scheme.folder_splits
        sizes = unsplit_size(c.members.sizes[positions])
        tasks, start = [], 0
        for t, (a, b) in enumerate(task_spans(0, len(ids), CHUNK, len(ids) - TAIL)):
            planned = int(sizes[a:b].sum())
            tasks.append(RecordTask(index=t, members=c.members.take(positions[a:b]),
                                    labels=labels[a:b].copy(), classes=tuple(c.classes),
                                    ids=ids[a:b].copy(), names_are_paths=names_are_paths,
                                    start=None if params.resize else start, planned=planned))
            start += planned
        return Plan(tasks, context=RecordsContext(tuple(c.classes)))

    @classmethod
    def run(cls, params: RecordIOParams, task: RecordTask, out: Output) -> dict[str, Any]:
        import xxhash

        pieces: list[bytes] = []
        meta, lst = [], []
        offset = 0
        convert = partial(_resized, params) if params.resize else None
        for i, ref, image in usable(read_members(task.members), out, params.on_error,
                                    validate=params.validate_images, convert=convert):
            label, key = int(task.labels[i]), int(task.ids[i])
            try:
                record = image_record(IRHeader(0, float(label), key, 0), image)
            except RecordIOError as exc:
                raise BadInputError(f"{where(ref)}: {exc}") from None
            digest = xxhash.xxh3_128()
            for piece in record:
                digest.update(piece)
            length = sum(len(piece) for piece in record)
            pieces += record
            # the origin last: a source member's name may hold a tab (never a newline)
            meta.append(f"{offset}\t{length}\t{key}\t{label}\t{ref.source}\t"
                        f"{digest.hexdigest()}\t{ref.origin}\n")
            path = ref.name if task.names_are_paths else \
                f"{task.classes[label]}/{os.path.basename(ref.name)}"  # as valprep.sh puts it
            lst.append(lst_line(key, (float(label),), path))
            offset += length
        in_place = task.start is not None and offset == task.planned
        if in_place:
            out.write_at(f"{params.split}.rec", pieces, task.start)
        else:
            with open(out.scratch(f"{task.index:06d}.rec"), "wb") as f:
                f.writelines(pieces)
        with open(out.scratch(f"{task.index:06d}.tsv"), "wb") as f:
            f.write("".join(meta).encode())
        with open(out.scratch(f"{task.index:06d}.lst"), "wb") as f:
            f.write("".join(lst).encode())
        return {"size": offset, "in_place": in_place, "start": task.start}

    @classmethod
    def follow(cls, params: RecordIOParams, tasks: list[RecordTask],
               out: Output) -> Follower | None:
        """As tasks finish: their regions of the .rec hashed (where sizes were planned, the
        file allocated now), and, given the plan's context, their records written in plan
        order, so `finish` is left the tasks it has not seen (none, once all arrived)."""
        if not tasks:
            return None
        hasher = None
        if tasks[0].start is not None:
            out.reserve(f"{params.split}.rec", sum(task.planned for task in tasks))
            hasher = RegionHasher(out, f"{params.split}.rec", len(tasks))
        context, records = getattr(tasks, "context", None), None
        if isinstance(context, RecordsContext):  # (else finish could not know them written)
            records = context.records = Records(out, params.split, context.classes)
        return Follower(hasher, records) if hasher or records else None

    @classmethod
    def finish(cls, params: RecordIOParams, inputs: Inputs, results: list[dict[str, Any]],
               out: Output, context: RecordsContext | None = None) -> None:
        context = context or RecordsContext(tuple(classified(  # the plan's, if given
            inputs, params.split, params.require_all_classes, cls.missing,
            params.labels_scheme).classes))
        split = params.split
        rec_path = f"{split}.rec"
        rec = out.target(rec_path)
        if all(r["in_place"] for r in results):
            with open(rec, "ab") as f:  # no task may have written its last bytes yet
                f.truncate(sum(r["size"] for r in results))
        else:
            _lay_out_again(rec, out, results)
        records = context.records or Records(out, split, context.classes)
        for result in results[records.tasks:]:  # those no follower wrote
            records.add(result)
        records.close()
        for path in (f"{split}.lst", rec_path, f"{split}.idx"):
            out.added(path)


@dataclass
class RecordsContext:
    """The plan's context, for `finish`: the class names (each record's class), and the
    records the follower wrote as tasks finished."""

    classes: tuple[str, ...]
    records: Records | None = None


class Records:
    """`<split>.lst`, `<split>.idx` and the record rows of `<split>.rec`, task by task in plan
    order, from what each task left in scratch."""

    def __init__(self, out: Output, split: str, classes: tuple[str, ...]) -> None:
        self.out, self.rec_path, self.classes = out, f"{split}.rec", classes
        self.lst, self.idx = out.open(f"{split}.lst"), out.open(f"{split}.idx")
        self.tasks = self.base = self.record = 0  # tasks written; where the next starts

    def add(self, result: dict[str, Any]) -> None:
        """The next task's records (`result`: its own)."""
        chunk = self.out.scratch(f"{self.tasks:06d}")
        with open(chunk + ".lst", "rb") as src:
            self.lst.write(src.read())
        with open(chunk + ".tsv", encoding="utf-8") as meta:
            for line in meta:
                offset, length, key, label, source, digest, origin = \
                    line.rstrip("\n").split("\t", 6)
                self.idx.write(idx_line(int(key), self.base + int(offset)).encode())
                self.out.record(self.rec_path, offset=self.base + int(offset),
                                size=int(length), xxh3=digest, label=int(label),
                                member=origin, source=source, record=self.record,
                                class_name=self.classes[int(label)])
                self.record += 1
        self.base += result["size"]
        self.tasks += 1

    def close(self) -> None:
        self.lst.close()
        self.idx.close()


class Follower:
    """recordio's follower: each result to the region hasher (if any), and to the records
    (if any) in plan order."""

    def __init__(self, hasher: RegionHasher | None, records: Records | None) -> None:
        self.hasher, self.records = hasher, records
        self.waiting: dict[int, dict[str, Any]] = {}

    def __call__(self, index: int, result: dict[str, Any]) -> None:
        if self.hasher is not None:
            self.hasher(index, result)
        if self.records is None:
            return
        self.waiting[index] = result
        while self.records.tasks in self.waiting:
            self.records.add(self.waiting.pop(self.records.tasks))


def _lay_out_again(rec: str, out: Output, results: list[dict[str, Any]]) -> None:
    """Some task's records came out longer than planned: write the file once more, in
    task order, from the in-place regions and the chunks."""
    with atomic_path(rec) as tmp, open(tmp, "wb") as dst, open(rec, "a+b") as placed:
        for t, result in enumerate(results):
            if result["in_place"]:
                copy_range(placed, result["start"], dst, result["size"])
            else:
                with open(out.scratch(f"{t:06d}.rec"), "rb") as src:
                    copy_range(src, 0, dst, result["size"])


def copy_range(src: Any, offset: int, dst: Any, size: int) -> None:
    """Append `size` bytes of src from `offset` to dst, in the kernel where it can."""
    dst.flush()
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied, offset + copied)
            if n == 0:
                break
            copied += n
    except (AttributeError, OSError):
        pass
    dst.seek(0, os.SEEK_END)
    while copied < size:
        chunk = os.pread(src.fileno(), min(PIECE, size - copied), offset + copied)
        if not chunk:
            raise OSError(f"{src.name}: ended {size - copied} bytes early")
        dst.write(chunk)
        copied += len(chunk)


def _resized(params: RecordIOParams, ref: MemberRef, data: bytes) -> bytes:
    """`resize`: the shorter side scaled to `params.resize`, re-encoded at `quality`."""
    from PIL import Image

    def resize(im: Any) -> Any:
        scale = params.resize / min(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        return im.resize(size, Image.Resampling.BILINEAR)

    return rgb_jpeg(data, where(ref), params.quality, resize)[0]


def _no_tabs(members: MemberSet, split: str) -> None:
    """im2rec's .lst is tab-separated (index, label, path): a name holding a tab would be
    read back as another path, so it is refused, named."""
    i = members.names.find("\t")
    if i >= 0:
        raise BadInputError(f"{members.where}: {split} member {members.names[i]!r} has a tab "
                            "in its name, which im2rec's tab-separated .lst cannot hold; "
                            "rename it")
