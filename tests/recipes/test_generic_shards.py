"""The shard recipes and downscale over a generic labelled source: the 1,797 real UCI
digits as image-folder class folders (and the real photos as classes), without the
ImageNet label folder. Classes come from the folders, numbered by sorted name (so the
label of digit d is d) or by a classes file."""

from __future__ import annotations

import io
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_registry import BadInputError, Registry

from ..conftest import run_cli, write_manifest
from ..realkit import PHOTOS, digits, write_digit_folders
from .test_recordio import im2rec_list_image

REVERSED = "".join(f"{d}\n" for d in range(9, -1, -1))


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_folders(tmp_path_factory.mktemp("digits") / "data")


def csv_label(name: str) -> int:
    """The digit CSV's label of `.../digit-NNNN.png`."""
    return int(LABELS[int(os.path.basename(name)[6:10])])


LABELS = digits()[1]


def registry(root: Path, location: Path, datasets: str, classes: str | None = None,
             layout: str = "image-folder") -> Registry:
    files = ""
    if classes is not None:
        (root / "lists").mkdir(parents=True, exist_ok=True)
        (root / "lists" / "classes.txt").write_text(classes)
        files = "files:\n  - {name: order, path: ../lists/classes.txt}\n"
    write_manifest(root, f"""
sources:
  - {{name: digits, layout: {layout}}}
{files}datasets:
{datasets.lstrip(chr(10))}""")
    reg = Registry.open(str(root))
    reg.set_source("digits", str(location))
    return reg


def one(recipe: str, params: str = "", inputs: str = "images: digits",
        name: str = "out") -> str:
    return f"""
  - name: {name}
    recipe: {recipe}
    inputs: {{{inputs}}}
    params: {{{params}}}
"""


def test_webdataset_of_the_digits_reads_back_with_the_webdataset_package(tmp_path,
                                                                          digit_folders):
    import webdataset as wds

    reg = registry(tmp_path, digit_folders, one("webdataset", "shard_count: 500",
                                                name="digits-wds"))
    ds = reg.resolve("digits-wds", jobs=2)
    shards = sorted(Path(ds.path).glob("*.tar"))
    # the prefix defaults to the dataset's name
    assert [s.name for s in shards] == [f"digits-wds-{i:06d}.tar" for i in range(4)]
    seen = []
    for shard in shards:
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            assert sorted(k for k in sample if not k.startswith("__")) == ["cls", "png"]
            name = sample["__key__"]
            assert name.startswith("digit-")
            label = int(sample["cls"])
            assert label == csv_label(name)  # sorted names 0..9: the label is the digit
            assert sample["png"] == (digit_folders / str(label) / f"{name}.png").read_bytes()
            seen.append(name)
    assert len(seen) == 1797 and len(set(seen)) == 1797
    # class-folder order: by label, then by name
    assert [csv_label(n) for n in seen] == sorted(csv_label(n) for n in seen)


def test_the_default_prefix_is_in_the_key(tmp_path, digit_folders):
    reg = registry(tmp_path, digit_folders, one("webdataset", name="a") + one(
        "webdataset", name="b") + one("webdataset", 'prefix: "a"', name="c"))
    keys = {n: reg.resolver.key(n) for n in "abc"}
    assert keys["a"] != keys["b"] and keys["a"] == keys["c"]
    assert reg.resolver.manifests.get("b").params.prefix == "b"


def im2rec_list(root: Path) -> list[str]:
    """im2rec.py --list --recursive (MXNet 1.x): its listing, then random.seed(100) and
    shuffle, as `.lst` lines."""
    items = im2rec_list_image(str(root))
    random.seed(100)
    random.shuffle(items)
    return [f"{i}\t{float(label):f}\t{rel}" for i, rel, label in items]


def test_recordio_of_the_digits_is_im2recs(tmp_path, digit_folders):
    from dataset_registry.formats.recordio import iter_records, unpack_image

    reg = registry(tmp_path, digit_folders, one("recordio"))
    ds = reg.resolve("out", jobs=2)
    lst = (Path(ds.path) / "train.lst").read_text().splitlines()
    assert lst == im2rec_list(digit_folders)
    with open(Path(ds.path) / "train.rec", "rb") as f:
        records = list(iter_records(f))
    assert len(records) == 1797
    for (_, payload), line in zip(records, lst, strict=True):
        header, _, image = unpack_image(payload)
        key, label, rel = line.split("\t")
        assert header.id == int(key) and header.label == float(label) == csv_label(rel)
        assert image == (digit_folders / rel).read_bytes()


def test_tfrecord_of_the_digits_reads_back_with_the_tfrecord_package(tmp_path, digit_folders):
    from tfrecord.reader import tfrecord_loader

    reg = registry(tmp_path, digit_folders, one("tfrecord", "shards: 4"))
    ds = reg.resolve("out", jobs=2)
    shards = sorted(Path(ds.path).glob("train-*"))
    assert [s.name for s in shards] == [f"train-{k:05d}-of-00004" for k in range(4)]
    count = 0
    for shard in shards:
        for rec in tfrecord_loader(str(shard), None, description={
                "image/encoded": "byte", "image/class/label": "int",
                "image/class/synset": "byte", "image/filename": "byte"}):
            filename = bytes(rec["image/filename"]).decode()
            digit = csv_label(filename)
            assert bytes(rec["image/class/synset"]).decode() == str(digit)
            assert int(rec["image/class/label"][0]) == digit + 1  # label_offset 1 (default)
            im = Image.open(io.BytesIO(bytes(rec["image/encoded"])))
            assert im.format == "JPEG" and im.size == (8, 8)  # a PNG is re-encoded
            count += 1
    assert count == 1797
    reg0 = registry(tmp_path / "zero", digit_folders, one("tfrecord", "shards: 1, "
                                                                       "label_offset: 0"))
    shard = Path(reg0.resolve("out").path) / "train-00000-of-00001"
    labels = [(int(r["image/class/label"][0]), bytes(r["image/filename"]).decode())
              for r in tfrecord_loader(str(shard), None, description={
                  "image/class/label": "int", "image/filename": "byte"})]
    assert all(label == csv_label(name) for label, name in labels)


def test_byclass_of_the_digits_is_the_class_folders(tmp_path, digit_folders):
    reg = registry(tmp_path, digit_folders, one("byclass"))
    ds = reg.resolve("out", jobs=2)
    got = {p.relative_to(ds.path).as_posix(): p.read_bytes()
           for p in Path(ds.path).glob("*/*")}
    want = {p.relative_to(digit_folders).as_posix(): p.read_bytes()
            for p in digit_folders.glob("*/*")}
    assert got == want and len(got) == 1797


def test_jobs_do_not_change_the_bytes(tmp_path, digit_folders):
    for recipe, params in (("webdataset", "shard_count: 300"), ("recordio", ""),
                           ("tfrecord", "shards: 3"), ("byclass", ""),
                           ("downscale", "width: 8, height: 8, color: gray")):
        digests = set()
        for jobs in (1, 2):
            reg = registry(tmp_path / f"{recipe}{jobs}", digit_folders, one(recipe, params))
            digests.add(reg.resolve("out", jobs=jobs).digest)
        assert len(digests) == 1, recipe


def test_downscale_of_the_digits_keeps_the_csv_labels(tmp_path, digit_folders):
    reg = registry(tmp_path, digit_folders, one(
        "downscale", "width: 8, height: 8, color: gray", inputs="train: digits"))
    ds = Path(reg.resolve("out", jobs=2).path)
    images = np.load(ds / "train" / "images.npy")
    labels = np.load(ds / "train" / "labels.npy")
    members = (ds / "train" / "members.txt").read_text().splitlines()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int16
    assert labels.tolist() == [csv_label(m) for m in members]
    assert (ds / "classes.txt").read_text() == "".join(f"{d}\t{d}\t{d}\n" for d in range(10))
    # 8x8 gray of an 8x8 gray PNG: the pixels themselves
    pixels = digits()[0]
    first = int(os.path.basename(members[0])[6:10])
    assert np.array_equal(images[0, :, :, 0], pixels[first])


def photo_classes(root: Path) -> Path:
    """The real photos as class folders: gray (camera.png), rgb (PNGs), jpeg (JPEGs)."""
    for cls, names in {"gray": ["camera.png"], "rgb": ["astronaut.png", "chelsea.png",
                                                       "coffee.png"],
                       "jpeg": ["retina.jpg", "rocket.jpg"]}.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            shutil.copyfile(PHOTOS / name, root / cls / name)
    return root


@pytest.mark.parametrize("color, channels", [("srgb", 3), ("gray", 1)])
def test_downscale_of_real_photos_as_class_folders(tmp_path, color, channels):
    photos = photo_classes(tmp_path / "photos")
    reg = registry(tmp_path, photos, one(
        "downscale", f"width: 32, height: 32, color: {color}", inputs="images: digits"))
    ds = Path(reg.resolve("out", jobs=2).path)
    images = np.load(ds / "train" / "images.npy")
    assert images.shape == (6, 32, 32, channels) and images.dtype == np.uint8
    members = (ds / "train" / "members.txt").read_text().splitlines()
    labels = np.load(ds / "train" / "labels.npy").tolist()
    classes = ["gray", "jpeg", "rgb"]  # sorted names
    assert [classes[k] for k in labels] == [m.split("/")[0] for m in members]
    assert images.std() > 10  # real pictures, not blank rows


def test_downscale_every_split_of_one_input(tmp_path):
    from ..realkit import png

    pixels, labels = digits()
    for i in range(60):
        split = "test" if i % 3 == 0 else "train"
        folder = tmp_path / "data" / split / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"digit-{i:04d}.png").write_bytes(png(pixels[i]))
    reg = registry(tmp_path, tmp_path / "data", one(
        "downscale", "width: 4, height: 4, require_all_classes: false",
        inputs="images: digits"))
    ds = Path(reg.resolve("out").path)
    for split, count in (("test", 20), ("train", 40)):
        got = np.load(ds / split / "labels.npy").tolist()
        members = (ds / split / "members.txt").read_text().splitlines()
        assert len(got) == count and got == [csv_label(m) for m in members]


def test_a_classes_file_that_reorders_changes_the_labels(tmp_path, digit_folders):
    import webdataset as wds

    reg = registry(tmp_path, digit_folders, one(
        "webdataset", "", "images: digits, classes: order") + one(
        "downscale", "width: 8, height: 8, color: gray", "train: digits, classes: order",
        name="small"), classes=REVERSED)
    ds = reg.resolve("out")
    for shard in Path(ds.path).glob("*.tar"):
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            assert int(sample["cls"]) == 9 - csv_label(sample["__key__"])
    small = Path(reg.resolve("small").path)
    members = (small / "train" / "members.txt").read_text().splitlines()
    assert np.load(small / "train" / "labels.npy").tolist() == \
        [9 - csv_label(m) for m in members]
    assert (small / "classes.txt").read_text().splitlines()[0] == "9\t0\t9"


def test_a_class_the_classes_file_lacks_names_the_member(tmp_path, digit_folders):
    reg = registry(tmp_path, digit_folders, one("recordio", "", "images: digits, "
                                                "classes: order"),
                   classes="".join(f"{d}\n" for d in range(7)))
    with pytest.raises(BadInputError, match=r"'7/digit-\d{4}\.png' is of class '7', which the "
                                            r"scheme lacks .*lists/classes\.txt"):
        reg.resolve("out")
    assert list(reg.store.committed()) == []


def test_a_classes_file_naming_a_class_without_images(tmp_path, digit_folders):
    reg = registry(tmp_path, digit_folders, one("byclass", "", "images: digits, "
                                                "classes: order") + one(
        "byclass", "require_all_classes: false", "images: digits, classes: order",
        name="lax"), classes=REVERSED + "ten\n")
    with pytest.raises(BadInputError, match=r"1 of the 11 classes have no train images "
                                            r"\(first: ten\)"):
        reg.resolve("out")
    assert len(list(Path(reg.resolve("lax").path).glob("*/*"))) == 1797


def test_a_source_without_classes_exits_2_naming_it(tmp_path):
    """imagenet-val gives no classes: without the labels input nothing numbers them."""
    from ..realkit import png

    folder = tmp_path / "val"
    folder.mkdir()
    for i in range(3):
        (folder / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(png(digits()[0][i]))
    registry(tmp_path, folder, one("webdataset", "split: val"), layout="imagenet-val")
    out = run_cli("resolve", "out", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"source digits ({folder})" in out.stderr
    assert "carry no class names" in out.stderr and "image-folder" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(Registry.open(str(tmp_path)).store.committed()) == []


@pytest.mark.parametrize("recipe", ["recordio", "tfrecord"])
def test_the_reference_shuffles_leave_the_global_rng_alone(tmp_path, digit_folders, recipe):
    """im2rec's and imagenet_to_gcs's seeded shuffles come from a private generator: a
    build neither reseeds nor advances the process's `random` (a caller's own stream)."""
    import random

    reg = registry(tmp_path, digit_folders, one(recipe, "validate_images: false"))
    random.seed(12345)
    expected = random.Random(12345).random()
    reg.resolve("out", jobs=1)
    assert random.random() == expected


@pytest.mark.parametrize("recipe, params", [
    ("recordio", "validate_images: false"), ("webdataset", "validate_images: false"),
    ("tfrecord", "validate_images: false, shards: 2"), ("downscale", "width: 4, height: 4"),
    ("downscale", "width: 4, height: 4, format: folders"),
    ("downscale", "width: 4, height: 4, on_error: skip"),
])
def test_every_record_names_its_class_in_the_file_table(tmp_path, digit_folders, recipe,
                                                        params):
    """`_files.parquet`'s class column: each record's class name, the one its member's
    class folder names (the label column alone would need the scheme to read)."""
    import duckdb

    reg = registry(tmp_path, digit_folders, one(recipe, params))
    ds = reg.resolve("out", jobs=2)
    rows = duckdb.sql(f"SELECT member, class FROM '{ds.path}/_files.parquet' "
                      "WHERE member IS NOT NULL").fetchall()
    assert len(rows) == 1797
    assert all(cls == member.split("/")[0] for member, cls in rows), rows[:3]


def test_a_tab_in_a_member_name(tmp_path):
    """A file name may hold a tab: recordio refuses it by name (im2rec's .lst is
    tab-separated), every other recipe keeps it in its records (scratch tables put the
    member last), downscale after skips included."""
    import duckdb

    data = tmp_path / "data"
    for cls, color in (("cat", "red"), ("dog", "blue")):
        (data / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), color).save(data / cls / "a\tb.png")
    reg = registry(tmp_path / "p", data, one("recordio", name="rec") + one(
        "downscale", "width: 4, height: 4, on_error: skip", name="tiny"))
    out = run_cli("resolve", "rec", cwd=tmp_path / "p")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "train member 'cat/a\\tb.png' has a tab in its name, which im2rec's " \
           "tab-separated .lst cannot hold" in out.stderr
    tiny = reg.resolve("tiny")
    rows = duckdb.sql(f"SELECT member, class FROM '{tiny.path}/_files.parquet' "
                      "WHERE member IS NOT NULL ORDER BY member").fetchall()
    assert rows == [("cat/a\tb.png", "cat"), ("dog/a\tb.png", "dog")]
