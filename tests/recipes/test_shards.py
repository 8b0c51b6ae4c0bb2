"""byclass and recordio from the raw tars: im2rec's list, records and labels, checked."""

import io
import os
import random
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import BadInputError, Registry
from dataset_registry.formats.recordio import iter_records, unpack_image
from dataset_registry.members import read_member
from dataset_registry.sources import member_sets

from ..conftest import LABELS, make_train_tar, write_imagenet_manifest

WNIDS = (LABELS / "caffe_synsets.txt").read_text().split()
TRUTH = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())


def registry(root: Path, synth, recipe: str, params: str) -> Registry:
    write_imagenet_manifest(root, f"""
  - name: out
    recipe: {recipe}
    inputs: {{images: {"val" if "split: val" in params else "train"}, labels: labels}}
    params: {{{params}}}
""")
    reg = Registry.open(str(root))
    if "split: val" in params:
        reg.set_source("val", synth["imagenet-val"])
    else:
        reg.set_source("train", synth["imagenet-train"])
    return reg


def im2rec_list(names: list[str]) -> list[tuple[int, str, int]]:
    """What im2rec.py --list --recursive writes for class folders holding `names`."""
    folders = sorted({n.split("/")[0] for n in names})
    items = [(i, n, folders.index(n.split("/")[0])) for i, n in enumerate(sorted(names))]
    random.seed(100)
    random.shuffle(items)
    return items


def test_recordio_is_im2rec_identical_and_pass_through(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "recordio", "require_all_classes: false")
    ds = reg.resolve("out", jobs=2)
    train = member_sets(reg.resolver.source_info("train"))["train"]
    names = [n for n in train.names if n.lower().endswith((".jpeg", ".jpg", ".png"))]
    present = sorted({n.split("/")[0] for n in names})
    expected = im2rec_list(names)
    lst = (Path(ds.path) / "train.lst").read_text().splitlines()
    # labels: sorted0 over the 1000 WNIDs (im2rec's own folder numbering would differ only
    # if a class were missing, which is why the default refuses such a source)
    assert lst == [f"{i}\t{WNIDS.index(present[lab]):f}\t{n}" for i, n, lab in expected]
    with open(Path(ds.path) / "train.rec", "rb") as f:
        records = list(iter_records(f))
    idx = (Path(ds.path) / "train.idx").read_text().splitlines()
    assert len(records) == len(expected) == len(idx) and ds.marker["files"] == 3
    for (offset, payload), (i, name, _), line in zip(records, expected, idx, strict=True):
        header, _, image = unpack_image(payload)
        assert header.id == i and header.flag == 0 and header.id2 == 0
        assert header.label == WNIDS.index(name.split("/")[0])
        assert image == read_member(train.get(name))  # the original bytes
        assert line == f"{i}\t{offset}"
    rows = reg.sql("SELECT byte_offset, label, member FROM files WHERE key = ? AND "
                   "path = 'train.rec' AND record IS NOT NULL ORDER BY record", [ds.key]).rows
    assert [r[0] for r in rows] == [off for off, _ in records]
    assert [r[2] for r in rows] == [f"{n.split('/')[0]}.tar/{n.split('/')[1]}"
                                    for _, n, _ in expected]


def test_recordio_one_and_two_workers_same_bytes(tmp_path, synth_small):
    digests = {registry(tmp_path / str(j), synth_small, "recordio",
                        "require_all_classes: false").resolve("out", jobs=j).digest
               for j in (1, 2)}
    assert len(digests) == 1


def test_a_missing_class_is_refused(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "recordio", "")
    with pytest.raises(BadInputError, match=r"997 of the 1000 classes are missing or empty .*"
                                            r"im2rec would silently shift every later label"):
        reg.resolve("out")
    assert list(reg.store.committed()) == []


def test_an_empty_class_tar_is_refused(tmp_path):
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    classes = {w: {f"{w}_1.JPEG": jpeg.getvalue()} for w in WNIDS}
    classes[WNIDS[5]] = {}
    tar = make_train_tar(tmp_path / "train.tar", classes)
    reg = registry(tmp_path, {"imagenet-train": str(tar)}, "recordio", "")
    with pytest.raises(BadInputError, match=rf"1 of the 1000 classes are missing or empty "
                                            rf"\(first: {WNIDS[5]}\)"):
        reg.resolve("out")


def test_byclass_val_is_an_image_folder(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "byclass", "split: val, require_all_classes: false")
    ds = reg.resolve("out", jobs=2)
    files = sorted(p.relative_to(ds.path).as_posix() for p in Path(ds.path).glob("*/*"))
    assert len(files) == 600
    for rel in files:
        wnid, name = rel.split("/")
        assert WNIDS[int(TRUTH[name])] == wnid
    val = member_sets(reg.resolver.source_info("val"))["val"]
    sample = files[17].split("/")[1]
    assert (Path(ds.path) / files[17]).read_bytes() == read_member(val.get(sample))
    assert os.path.exists(Path(ds.path) / "_files.parquet")


def test_webdataset_shards_read_back_with_the_webdataset_package(tmp_path, synth_small):
    import webdataset as wds

    reg = registry(tmp_path, synth_small, "webdataset",
                   "split: val, require_all_classes: false, shard_count: 128")
    ds = reg.resolve("out", jobs=2)
    shards = sorted(Path(ds.path).glob("imagenet-val-*.tar"))
    assert [s.name for s in shards] == [f"imagenet-val-{i:06d}.tar" for i in range(5)]
    val = member_sets(reg.resolver.source_info("val"))["val"]
    seen = []
    for shard in shards:
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            name = sample["__key__"] + ".JPEG"
            assert int(sample["cls"]) == int(TRUTH[name])
            assert sample["jpg"] == read_member(val.get(name))
            seen.append(name)
    assert sorted(seen) == sorted(val.names) and len(seen) == 600
    rows = reg.sql("SELECT path, byte_offset, member FROM files WHERE key = ? AND member = "
                   "'ILSVRC2012_val_00000293.JPEG'", [ds.key]).rows
    assert len(rows) == 1 and rows[0][0].startswith("imagenet-val-")
    with open(Path(ds.path) / rows[0][0], "rb") as f:
        f.seek(rows[0][1])
        assert f.read(100).startswith(b"ILSVRC2012_val_00000293.cls")


def test_webdataset_byte_limit_and_determinism(tmp_path, synth_small):
    digests, counts = set(), set()
    for jobs in (1, 2):
        reg = registry(tmp_path / str(jobs), synth_small, "webdataset",
                       "split: val, require_all_classes: false, shard_bytes: 400000")
        ds = reg.resolve("out", jobs=jobs)
        shards = sorted(Path(ds.path).glob("*.tar"))
        for shard in shards:  # within the limit, or one sample larger than it by itself
            with tarfile.open(shard) as tf:
                samples = len(tf.getnames()) // 2
            assert shard.stat().st_size <= 400000 or samples == 1
        assert len(shards) > 2 and any(s.stat().st_size > 400000 for s in shards)
        digests.add(ds.digest)
        counts.add(len(shards))
    assert len(digests) == 1 and len(counts) == 1


def test_tfrecord_layout_labels_and_hazards(tmp_path):
    from tfrecord.reader import tfrecord_loader

    from dataset_registry.formats.tfrecord import iter_frames
    from dataset_registry.synth import CMYK_TRAIN, PNG_IMPOSTOR, SynthSpec, synthesize

    hazard_classes = sorted({n.split("_")[0] for n in [PNG_IMPOSTOR, *CMYK_TRAIN[:2]]})
    made = synthesize(str(tmp_path / "s"), SynthSpec(val_images=10, train_per_class=4,
                                                     width=32, height=24, kaggle=False,
                                                     wnids=tuple(hazard_classes)))
    reg = registry(tmp_path, made, "tfrecord", "require_all_classes: false, shards: 4")
    ds = reg.resolve("out", jobs=2)
    shards = sorted(Path(ds.path).glob("train-*"))
    assert [s.name for s in shards] == [f"train-{k:05d}-of-00004" for k in range(4)]
    total = 0
    for shard in shards:
        with open(shard, "rb") as f:
            total += len(list(iter_frames(f)))  # every length and data CRC checks
        for rec in tfrecord_loader(str(shard), None, description={
                "image/encoded": "byte", "image/class/label": "int",
                "image/class/synset": "byte", "image/filename": "byte", "image/width": "int"}):
            synset = bytes(rec["image/class/synset"]).decode()
            filename = bytes(rec["image/filename"]).decode()
            assert int(rec["image/class/label"][0]) == WNIDS.index(synset) + 1  # sorted1
            assert filename.startswith(synset + "_")
            im = Image.open(io.BytesIO(bytes(rec["image/encoded"])))
            assert im.format == "JPEG" and im.mode in ("RGB", "L")
            assert im.width == int(rec["image/width"][0])
    assert total == 3 * 4 + 3  # 4 per class, plus the PNG impostor and two CMYK images
