"""Hostile images in every shard recipe and byclass: refused by name, or skipped with the
shards still consistent, read back with the independent readers."""

from __future__ import annotations

import io
import os
import random
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_registry import BadImageError, Registry

from ..conftest import make_tar, make_train_tar, run_cli
from .shardkit import TRUTH, WNIDS, registry
from .test_recordio import im2rec_list

SHARD_RECIPES = ("byclass", "recordio", "webdataset", "tfrecord")
CLASSES = WNIDS[:3]


def jpeg(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A 1-bit gray PNG whose header claims `width x height`: a bomb in a few bytes (the
    IDAT is far too short, so only a refusal before decoding is the right answer)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def png16() -> bytes:
    """A 16-bit gray PNG (mode I;16): high bytes 200 on the left, 50 on the right."""
    pixels = np.full((12, 16), 257 * 200, np.uint16)
    pixels[:, 8:] = 257 * 50
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "I;16"
    return buf.getvalue()


GOOD_JPEG = jpeg(0, (64, 48))
BAD = {
    "empty": (b"", r"corrupt or truncated image: an empty file \(0 bytes\)"),
    "random": (random.Random(1).randbytes(3000), "corrupt or truncated image: cannot identify "
                                                 "image file"),
    "truncated": (GOOD_JPEG[: len(GOOD_JPEG) // 2], "corrupt or truncated image"),
    "bomb": (png_header(30_000, 30_000), "refused: .*decompression bomb"),
    # past MAX_IMAGE_PIXELS, under twice it: Pillow only warns; one policy refuses it
    "bomb144": (png_header(12_000, 12_000), "refused: .*over the limit of 89478485"),
}


def train_source(tmp_path: Path, bad: dict[str, bytes]) -> tuple[dict[str, str], dict]:
    """3 classes x 3 good JPEGs plus a 16-bit PNG, and `bad` (kind -> bytes) spread over the
    classes: (synth-like source dict, {class-folder name: bytes})."""
    classes = {w: {f"{w}_{j}.JPEG": jpeg(10 * c + j) for j in range(3)}
               for c, w in enumerate(CLASSES)}
    classes[CLASSES[1]][f"{CLASSES[1]}_16bit.png"] = png16()
    for k, (kind, data) in enumerate(bad.items()):
        w = CLASSES[k % 3]
        classes[w][f"{w}_{kind}.JPEG"] = data
    tar = make_train_tar(tmp_path / "train.tar", classes)
    flat = {f"{w}/{n}": data for w, images in classes.items() for n, data in images.items()}
    return {"imagenet-train": str(tar)}, flat


def val_name(i: int) -> str:
    return f"ILSVRC2012_val_{i:08d}.JPEG"


def val_source(tmp_path: Path, bad: dict[str, bytes]) -> tuple[dict[str, str], dict]:
    """Val images 1..10 good, the 16-bit PNG as 11, then the bad ones: flat names."""
    members = {val_name(i): jpeg(100 + i) for i in range(1, 11)}
    members[val_name(11)] = png16()
    for k, data in enumerate(bad.values()):
        members[val_name(12 + k)] = data
    tar = make_tar(tmp_path / "val.tar", members)
    return {"imagenet-val": str(tar)}, members


def params(recipe: str, split: str, extra: str = "") -> str:
    p = f"split: {split}, require_all_classes: false"
    if recipe == "tfrecord":
        p += ", shards: 2"
    if recipe == "webdataset":
        p += ", shard_count: 4"
    return p + extra


def assert_nothing_published(reg: Registry) -> None:
    assert list(reg.store.committed()) == []
    staging = os.path.join(reg.store_url, ".staging")
    assert not os.path.exists(staging) or os.listdir(staging) == []


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("recipe", SHARD_RECIPES)
def test_a_bad_image_fails_the_build_naming_the_member(tmp_path, recipe, kind):
    data, what = BAD[kind]
    source, _ = train_source(tmp_path, {kind: data})
    reg = registry(tmp_path, source, recipe, params(recipe, "train"))
    wnid = CLASSES[0]
    with pytest.raises(BadImageError, match=rf"^{wnid}.tar/{wnid}_{kind}.JPEG \(source "
                                            rf"[0-9a-f]{{12}}\): {what}"):
        reg.resolve("out", jobs=1)
    assert_nothing_published(reg)


def test_through_the_cli_a_bad_image_exits_2_without_a_traceback(tmp_path):
    source, _ = val_source(tmp_path, {"truncated": BAD["truncated"][0]})
    registry(tmp_path, source, "webdataset", params("webdataset", "val"))
    out = run_cli("resolve", "out", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"{val_name(12)} (source " in out.stderr and "corrupt or truncated image" in out.stderr
    assert "Traceback" not in out.stderr
    assert_nothing_published(Registry.open(str(tmp_path)))


def test_resolve_says_how_many_images_it_skipped_and_how_to_list_them(tmp_path):
    """Nothing silent: a build with `on_error: skip` that left images out says so on
    stderr, with the query that lists them, which gives exactly those members."""
    source, _ = val_source(tmp_path, {"truncated": BAD["truncated"][0],
                                      "empty": BAD["empty"][0]})
    registry(tmp_path, source, "webdataset", params("webdataset", "val", ", on_error: skip"))
    out = run_cli("resolve", "out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("out: skipped 2 image(s) it could not use (on_error: skip); list "
                           "them with: registry sql ")
    query = line.split("registry sql ", 1)[1].strip('"')
    listed = run_cli("sql", query, cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 3  # + header


def test_validate_images_false_still_refuses_a_bomb_where_a_recipe_decodes(tmp_path):
    """tfrecord re-encodes a non-JPEG: the same bomb policy as validation (it used to
    re-encode a 144-megapixel PNG that select refuses)."""
    source, _ = train_source(tmp_path, {"bomb144": BAD["bomb144"][0]})
    reg = registry(tmp_path, source, "tfrecord",
                   params("tfrecord", "train", ", validate_images: false"))
    with pytest.raises(BadImageError, match=r"_bomb144.JPEG \(source .*refused: .*over the "
                                            r"limit"):
        reg.resolve("out", jobs=1)
    assert_nothing_published(reg)


def _read_back(recipe: str, root: Path, split: str) -> list[tuple[str, int, bytes]]:
    """(file name, label as stored, image bytes) of every image, with the independent
    readers (webdataset and tfrecord packages; recordio through the repo's reader,
    checked against .lst and .idx)."""
    got = []
    if recipe == "byclass":
        for path in sorted(root.glob("*/*")):
            got.append((path.name, WNIDS.index(path.parent.name), path.read_bytes()))
    elif recipe == "webdataset":
        import webdataset as wds

        for shard in sorted(root.glob("*.tar")):
            for sample in wds.WebDataset(str(shard), shardshuffle=False):
                got.append((sample["__key__"], int(sample["cls"]), sample["jpg"]))
    elif recipe == "tfrecord":
        from tfrecord.reader import tfrecord_loader

        for shard in sorted(root.glob("train-*" if split == "train" else "validation-*")):
            for rec in tfrecord_loader(str(shard), None, description={
                    "image/encoded": "byte", "image/class/label": "int",
                    "image/filename": "byte"}):
                got.append((bytes(rec["image/filename"]).decode(),
                            int(rec["image/class/label"][0]), bytes(rec["image/encoded"])))
    else:
        from dataset_registry.formats.recordio import iter_records, unpack_image

        with open(root / f"{split}.rec", "rb") as f:
            records = list(iter_records(f))
        lst = (root / f"{split}.lst").read_text().splitlines()
        idx = (root / f"{split}.idx").read_text().splitlines()
        assert len(records) == len(lst) == len(idx)
        for (offset, payload), line, entry in zip(records, lst, idx, strict=True):
            header, _, image = unpack_image(payload)
            key, label, path = line.split("\t")
            assert (header.id, header.label, entry) == (int(key), float(label), f"{key}\t{offset}")
            assert path.split("/")[0] == WNIDS[int(header.label)]  # <wnid>/<file>, both splits
            got.append((path.split("/")[1], int(header.label), image))
    return got


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("recipe", SHARD_RECIPES)
def test_on_error_skip_leaves_out_exactly_the_bad_images(tmp_path, recipe, split):
    bad = {kind: data for kind, (data, _) in BAD.items()}
    source, members = (train_source if split == "train" else val_source)(tmp_path, bad)
    reg = registry(tmp_path, source, recipe, params(recipe, split, ", on_error: skip"))
    ds = reg.resolve("out", jobs=2)
    bad_names = {n for n, d in members.items() if d in bad.values()}
    good = {os.path.basename(n): d for n, d in members.items() if n not in bad_names}
    assert ds.marker.skipped == len(BAD) == len(bad_names)
    origin = (lambda n: n.replace("/", ".tar/", 1)) if split == "train" else (lambda n: n)
    skipped = reg.sql("SELECT member, reason FROM skipped WHERE key = ? ORDER BY member",
                      [ds.key]).rows
    assert sorted(m for m, _ in skipped) == sorted(origin(n) for n in bad_names)
    assert all(" (source " in reason for _, reason in skipped)

    got = _read_back(recipe, Path(ds.path), split)
    shift = 1 if recipe == "tfrecord" else 0  # sorted1
    def truth(name: str) -> int:
        return WNIDS.index(name.split("_")[0]) if split == "train" else int(TRUTH[name])
    if recipe == "webdataset":  # keys are file names without their extension
        stems = {os.path.splitext(n)[0]: n for n in good}
        got = [(stems[key], label, data) for key, label, data in got]
    assert sorted(name for name, _, _ in got) == sorted(good)
    for name, label, data in got:
        assert label == truth(name) + shift, name
        if recipe == "tfrecord" and good[name].startswith(b"\x89PNG"):  # re-encoded
            pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.int16)
            assert abs(pixels[:, :6].mean() - 200) < 3 and abs(pixels[:, 10:].mean() - 50) < 3
        else:
            assert data == good[name], name  # the original bytes
    # the files table numbers each shard's records 0..n-1, one row a kept image
    rows = reg.sql("SELECT path, list(record ORDER BY record) FROM files WHERE key = ? AND "
                   "record IS NOT NULL GROUP BY path", [ds.key]).rows
    if recipe != "byclass":
        assert all(list(r) == list(range(len(r))) for _, r in rows)
        assert sum(len(r) for _, r in rows) == len(good)
    if recipe == "recordio":  # ids are im2rec's over the whole folder, gaps where skipped
        names = [f"{WNIDS[truth(os.path.basename(n))]}/{os.path.basename(n)}" for n in members]
        expected = [(i, n) for i, n, _ in im2rec_list(names) if n.split("/")[1] in good]
        lst = (Path(ds.path) / f"{split}.lst").read_text().splitlines()
        assert [(int(line.split("\t")[0]), line.split("\t")[2]) for line in lst] == expected
    if recipe == "webdataset":
        for shard in Path(ds.path).glob("*.tar"):
            with tarfile.open(shard) as tf:
                assert len(tf.getnames()) % 2 == 0


def test_a_16_bit_png_converts_where_recordio_resizes(tmp_path):
    source, _ = train_source(tmp_path, {})
    reg = registry(tmp_path, source, "recordio", params("recordio", "train", ", resize: 8"))
    ds = reg.resolve("out", jobs=1)
    from dataset_registry.formats.recordio import iter_records, unpack_image

    with open(Path(ds.path) / "train.rec", "rb") as f:
        images = [unpack_image(p)[2] for _, p in iter_records(f)]
    lst = (Path(ds.path) / "train.lst").read_text().splitlines()
    png = next(img for img, line in zip(images, lst, strict=True) if line.endswith(".png"))
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.int16)
    assert pixels.shape == (8, 11) and abs(pixels[:, :3].mean() - 200) < 8
