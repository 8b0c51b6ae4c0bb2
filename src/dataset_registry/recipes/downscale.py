"""`downscale`: ImageNet-tiny and Downsampled-ImageNet variants, train and val.

Replaces the Matlab + ImageMagick ImageNet-tiny generator. Each image is decoded
at reduced DCT scale (Pillow `draft`), fitted (squash / crop / pad), filtered
(box / lanczos) and converted (sRGB, or gray with a named luma).

Output, `format: packed` (default)::

    classes.txt               <wnid>\\t<sorted0 label>\\t<name>; line i is subset label i
    <split>/images.npy        uint8 N x H x W x C (C = 3 for srgb, 1 for gray)
    <split>/labels.npy        int16 subset labels 0..K-1
    <split>/members.txt       the source member of each row
    val/ground_truth.txt      subset label per val image, one a line (evaluation file)
    val/files.txt             the val file names, in row order

`format: folders` writes `<split>/<wnid>/<stem>.png` instead of the three
arrays, plus the same classes and evaluation files. Rows are sorted by source
member name, so train rows are grouped by class. Every row is a record in
`_files.parquet`: its array, byte offset, label and source member.
"""

from __future__ import annotations

import io
import os
import shutil
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..errors import BadImageError, BadInputError
from ..imaging import Color, Downscale, Filter, Fit, Luma, downscale, quiet_bomb_warnings
from ..labels import ground_truth, known_wnids, select_classes, synset_words, synsets
from ..members import MemberRef, read_member
from ..output import Output
from .base import Inputs, InputSpec, Params, Recipe
from .select import pick_split

_CHUNK = 512
SPLITS = ("train", "val")


class DownscaleParams(Params):
    width: int = Field(gt=0, le=1024)
    height: int = Field(gt=0, le=1024)
    fit: Fit = "squash"
    color: Color = "srgb"
    luma: Luma = "rec709"
    filter: Filter = "box"
    classes: Literal["full"] | int | list[str] = "full"
    format: Literal["packed", "folders"] = "packed"
    on_error: Literal["fail", "skip"] = "fail"
    require_all_classes: bool = True

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: Any) -> Any:
        if isinstance(value, int) and not 0 < value <= 1000:
            raise ValueError("a number of classes must be between 1 and 1000")
        if isinstance(value, list):
            known = set(known_wnids())
            for i, wnid in enumerate(value):
                if wnid not in known:
                    raise ValueError(f"item {i}: {wnid!r} is not an ILSVRC2012 WNID")
            if not value:
                raise ValueError("an empty class list")
            return sorted(set(value))  # order and repeats do not change the subset (or its key)
        return value

    def shape(self) -> Downscale:
        return Downscale(self.width, self.height, self.fit, self.color, self.luma, self.filter)


@dataclass(frozen=True)
class Task:
    split: str
    index: int
    items: list[tuple[MemberRef, int, str]]  # member, subset label, wnid

    def __len__(self) -> int:
        return len(self.items)


class DownscaleRecipe(Recipe):
    name = "downscale"
    version = 1
    Params = DownscaleParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "train": InputSpec("images", required=False, doc="train images: <wnid>/<file> members"),
        "val": InputSpec("images", required=False, doc="val images, labelled by caffe val.txt"),
        "labels": InputSpec("file", doc="folder with caffe_val.txt, synsets and their names"),
    }

    @classmethod
    def subset(cls, params: DownscaleParams, inputs: Inputs) -> list[str]:
        return select_classes(params.classes, synsets(inputs.files["labels"]))

    @classmethod
    def plan(cls, params: DownscaleParams, inputs: Inputs) -> list[Task]:
        splits = [s for s in SPLITS if s in inputs.images]
        if not splits:
            raise BadInputError("downscale needs a train or a val input (or both)")
        tasks: list[Task] = []
        for split in splits:
            rows = cls.rows(params, inputs, split)
            tasks += [Task(split, len(tasks) + i, rows[j:j + _CHUNK])
                      for i, j in enumerate(range(0, len(rows), _CHUNK))]
        return tasks

    @classmethod
    def rows(cls, params: DownscaleParams, inputs: Inputs, split: str
             ) -> list[tuple[MemberRef, int, str]]:
        """(member, subset label, wnid) of the split's images in the subset, by name."""
        members = pick_split(inputs.images[split], split, split)
        wanted = {w: k for k, w in enumerate(cls.subset(params, inputs))}
        truth = ground_truth(inputs.files["labels"]) if split == "val" else {}
        order = synsets(inputs.files["labels"])
        rows, seen = [], set()
        for ref in members:
            if split == "train":
                wnid = ref.name.split("/", 1)[0]
            else:
                label = truth.get(os.path.basename(ref.name))
                if label is None:
                    raise BadInputError(f"{members.where}: {ref.name} has no label in the val "
                                        f"ground truth {inputs.files['labels']}")
                wnid = order[label]
            if wnid in wanted:
                rows.append((ref, wanted[wnid], wnid))
                seen.add(wnid)
        missing = [w for w in wanted if w not in seen]
        if split == "train" and missing and params.require_all_classes:
            raise BadInputError(f"{members.where}: {len(missing)} of the {len(wanted)} classes "
                                f"have no train images (first: {', '.join(missing[:5])}); "
                                "set require_all_classes: false to build without them")
        if not rows:
            raise BadInputError(f"{members.where}: no {split} images in the chosen classes")
        return rows

    @classmethod
    def run(cls, params: DownscaleParams, task: Task, out: Output) -> dict[str, Any]:
        import xxhash

        shape = params.shape()
        packed = params.format == "packed"
        skipped: list[str] = []
        kept = 0
        pixels: list[bytes] = []  # one task's rows: 512 x H x W x C bytes at most
        meta: list[str] = []
        hash_row = xxhash.xxh3_128_hexdigest
        with quiet_bomb_warnings():
            for ref, label, wnid in task.items:
                try:
                    row = downscale(read_member(ref), shape, ref.origin)
                except BadImageError as exc:
                    if params.on_error == "fail":
                        raise BadImageError(f"{exc} (source {ref.source[:12]})") from None
                    out.skip(ref.origin, ref.source, str(exc))
                    skipped.append(ref.name)
                    continue
                kept += 1
                if packed:
                    pixels.append(row)
                    meta.append(f"{ref.origin}\t{ref.source}\t{label}\t{hash_row(row)}\n")
                else:
                    stem = os.path.splitext(os.path.basename(ref.name))[0]
                    out.write(f"{task.split}/{wnid}/{stem}.png", _png(row, shape), label=label,
                              member=ref.origin, source=ref.source)
        if packed:
            with out.open(f".chunks/{task.index:06d}.u8") as f:
                f.write(b"".join(pixels))
            with out.open(f".chunks/{task.index:06d}.tsv") as f:
                f.write("".join(meta).encode())
        return {"split": task.split, "index": task.index, "kept": kept, "skipped": skipped}

    @classmethod
    def finish(cls, params: DownscaleParams, inputs: Inputs, results: list[dict[str, Any]],
               out: Output) -> None:
        labels_dir = inputs.files["labels"]
        subset, words, order = cls.subset(params, inputs), synset_words(labels_dir), \
            {w: i for i, w in enumerate(synsets(labels_dir))}
        out.write("classes.txt", "".join(f"{w}\t{order[w]}\t{words.get(w, '')}\n"
                                         for w in subset).encode())
        for split in SPLITS:
            parts = [r for r in results if r["split"] == split]
            if not parts:
                continue
            if params.format == "packed":
                _assemble(out, split, parts, params.shape())
            elif split == "val":
                skipped = {name for r in parts for name in r["skipped"]}
                rows = [r for r in cls.rows(params, inputs, "val") if r[0].name not in skipped]
                out.write("val/ground_truth.txt", "".join(f"{k}\n" for _, k, _ in rows).encode())
                out.write("val/files.txt", "".join(
                    f"val/{w}/{os.path.splitext(os.path.basename(r.name))[0]}.png\n"
                    for r, _, w in rows).encode())
        shutil.rmtree(os.path.join(out.root, ".chunks"), ignore_errors=True)


def _png(row: bytes, shape: Downscale) -> bytes:
    from PIL import Image

    mode = "RGB" if shape.channels == 3 else "L"
    buf = io.BytesIO()
    # compress_level fixed so the bytes never depend on Pillow's default.
    Image.frombytes(mode, (shape.width, shape.height), row).save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _assemble(out: Output, split: str, parts: list[dict[str, Any]], shape: Downscale) -> None:
    """Stream the tasks' chunks into one .npy (memory stays flat) and index every row."""
    import numpy as np

    n = sum(p["kept"] for p in parts)
    images = f"{split}/images.npy"
    labels = array("h")
    with out.open(images) as f, out.open(f"{split}/members.txt") as members:
        np.lib.format.write_array_header_1_0(f, {
            "descr": "|u1", "fortran_order": False,
            "shape": (n, shape.height, shape.width, shape.channels)})
        header = f.tell()
        record = 0
        for part in sorted(parts, key=lambda p: p["index"]):
            chunk = os.path.join(out.root, ".chunks", f"{part['index']:06d}")
            with open(chunk + ".u8", "rb") as src:
                shutil.copyfileobj(src, f, 1 << 22)
            with open(chunk + ".tsv", encoding="utf-8") as meta:
                for line in meta:
                    origin, source, label, digest = line.rstrip("\n").split("\t")
                    out.record(images, offset=header + record * shape.row_bytes,
                               size=shape.row_bytes, xxh3=digest, label=int(label),
                               member=origin, source=source, record=record)
                    labels.append(int(label))
                    members.write(f"{origin}\n".encode())
                    record += 1
            os.remove(chunk + ".u8")
            os.remove(chunk + ".tsv")
    out.added(images)
    out.added(f"{split}/members.txt")
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(labels.tobytes(), dtype=np.int16) if labels else
            np.zeros(0, np.int16))
    out.write(f"{split}/labels.npy", buf.getvalue())
    if split == "val":
        out.write("val/ground_truth.txt", "".join(f"{k}\n" for k in labels).encode())
        with open(os.path.join(out.root, split, "members.txt"), encoding="utf-8") as f:
            names = [os.path.basename(line.rstrip("\n")) for line in f]
        out.write("val/files.txt", "".join(f"{name}\n" for name in names).encode())
