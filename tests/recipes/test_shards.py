"""Class-folder order, the refusals every shard recipe shares, and byclass."""

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import BadInputError
from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_member

from ..conftest import make_train_tar
from .shardkit import TRUTH, WNIDS, registry


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




def test_the_image_extension_test_is_im2recs():
    import os
    import random

    from dataset_registry.recipes.shards import IM2REC_EXTS, _im2rec_image

    rnd = random.Random(7)
    names = ["a/b.JPEG", "a/.jpg", "a/..jpg", "a/x..jpg", "x.png", ".png", "a/b.jpeg.txt",
             "n1/IMG.JpG", "n1/noext", "n1/a.", "...jpg", "dir.jpg/file"]
    names += ["".join(rnd.choice("ab./JPGjpgnex") for _ in range(rnd.randint(0, 10)))
              for _ in range(5000)]
    for name in names:
        assert _im2rec_image(name) == (os.path.splitext(name)[1].lower() in IM2REC_EXTS), name


def test_string_columns_gather_like_slicing():
    import numpy as np

    from dataset_registry.sources.members import StrColumn

    words = ["val/a", "val/bé", "val/", "val/long name.JPEG", "val/x"]
    col = StrColumn.from_list(words)
    prefixed = StrColumn(col._blob, col._starts, 4)  # how a split strips "val/"
    picked = [3, 0, 2, 3]
    assert prefixed.take(np.array(picked)).tolist() == [words[i][4:] for i in picked]
    assert prefixed.lines().decode() == "".join(w[4:] + "\n" for w in words)
    assert prefixed.take(np.array([], dtype=np.int64)).tolist() == []


# (key, digest) of each shard recipe over one fixed synthetic source, computed before the
# image checks (validate_images, on_error) and recordio/tfrecord version 2.
SHIPPED = {
    "byclass-train": ("8b216a1e72cceb18f06f62509f6f0a0e", "e52431acaebada6742855dcd3fab95e1"),
    "byclass-val": ("de482b1574c529d325530b2a5bf0b4db", "c0299bad1baa5f1f221d56f0b53f13dd"),
    "webdataset-train": ("41a3ff90ff195d10bf2dcab28bca2d91", "2d9d870fbc6a953f1fb778f55cfbf8ae"),
    "webdataset-val": ("49b5672acd6ec0ee9aab63edad86912b", "a7285d7fe9257011ebe2daeb6d96ba36"),
    "recordio-train": ("142ea28b89344f3a79e7b521ec9b88a3", "eaaf0896c0816c33d2e62ae635f77e25"),
    "recordio-val": ("7d1709af8db7292052e9249d48709619", "dbe0f4fa4984d1a786528c8f379ded11"),
    "tfrecord-train": ("99b035283cf0b36f48bd926c917484a9", "20c6a97f1aa646cdceef97c1f08fae54"),
    "tfrecord-val": ("0d34b07d8635402a80f611229c115ca3", "f6f46603cc29cd9cd2ae8bfa478585b2"),
}
# version 2 (see each recipe's `version`): new keys, on purpose
VERSION_2 = {"recordio-train": "db46ab4979911e4b1425c7e8c0038970",
             "recordio-val": "6b5936c1baabc23b8062e36e5b7da387",
             "tfrecord-train": "41a15a2b4480b0d8524d36637e46c019",
             "tfrecord-val": "552347242ad96a5e06b1d6deccdc9abe"}


def test_shipped_keys_stay_and_version_2_changes_them_on_purpose(tmp_path):
    from dataset_registry import Registry
    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    from ..conftest import write_imagenet_manifest

    made = synthesize(str(tmp_path / "s"), SynthSpec(val_images=60, train_classes=3,
                                                     train_per_class=4, width=32, height=24,
                                                     kaggle=False))
    write_imagenet_manifest(tmp_path / "r", "".join(f"""
  - name: {name}
    recipe: {name.split("-")[0]}
    inputs: {{images: {name.split("-")[1]}, labels: labels}}
    params: {{split: {name.split("-")[1]}, require_all_classes: false{
        ", shards: 2" if name.startswith("tfrecord") else ""}{
        ', prefix: "imagenet-{split}"' if name.startswith("webdataset") else ""}}}
""" for name in SHIPPED))
    # webdataset's prefix defaults to the dataset's name now: the shipped manifests name
    # today's, as here
    reg = Registry.open(str(tmp_path / "r"))
    reg.set_source("train", made["imagenet-train"])
    reg.set_source("val", made["imagenet-val"])
    for name, (key, digest) in SHIPPED.items():
        ds = reg.resolve(name, jobs=1)
        assert ds.key == VERSION_2.get(name, key), name
        # the bytes: the same, except recordio's val.lst (im2rec's <wnid>/<file> paths)
        assert (ds.digest == digest) == (name != "recordio-val"), name


@pytest.mark.parametrize("recipe, says", [
    ("recordio", "im2rec would silently shift every later label"),
    ("byclass", "ImageFolder would silently shift every later label"),
    ("webdataset", "the shards would not hold the whole ILSVRC2012 split"),
    ("tfrecord", "the shards would not hold the whole ILSVRC2012 split")])
def test_each_missing_class_refusal_speaks_of_its_own_tool(tmp_path, synth_small, recipe, says):
    reg = registry(tmp_path, synth_small, recipe, "split: val")
    with pytest.raises(BadInputError, match=r"of the 1000 classes are missing or empty") as err:
        reg.resolve("out")
    assert says in str(err.value)
    assert ("im2rec" in str(err.value)) == (recipe == "recordio")
    assert list(reg.store.committed()) == []


@pytest.mark.parametrize("names", [
    ["a/1.JPEG", "a/2.jpg", "b/x.png"],
    ["a/1.JPEG", "a/notes.txt"],
    ["a/.jpg"], ["a/...JPEG"], [".png"], ["a/x.JPEG", "b.c/..png"],
    ["a.jpg/x"], ["x.jpegg"], ["x.jpg.bak"], ["x.Jpg", "y.pNg", "é/ü.jpeg"], [],
])
def test_all_im2rec_images_answers_as_each_name_would(names):
    from dataset_registry.recipes.shards import _im2rec_image, all_im2rec_images
    from dataset_registry.sources.members import StrColumn

    expected = all(_im2rec_image(n) for n in names)
    assert all_im2rec_images(StrColumn.from_list(names)) == expected
    whole = StrColumn.from_list(["val/" + n for n in names])  # a split's names: its prefix off
    assert all_im2rec_images(type(whole)(whole._blob, whole._starts, 4)) == expected


@pytest.mark.parametrize("names", [
    ["a/1.JPEG", "a/2.JPEG", "b/1.JPEG"],
    # "-" and "." sort before "/", "0" right after it: around a folder, not in it
    ["f-x/1.JPEG", "f.JPEG", "f.d/1.JPEG", "f/1.JPEG", "f/sub/2.JPEG", "f0/1.JPEG", "g.JPEG"],
    ["f/1.JPEG", "f/2.JPEG", "zz/1.JPEG"],  # zz: not a class of the scheme
    ["é/1.JPEG", "é/2.JPEG", "ü/1.JPEG", "ü0/1.JPEG"], ["x.JPEG"], [],
])
def test_a_folder_split_is_classed_as_name_by_name(names):
    """`_by_folder` (a folder's names at once, by binary search) gives each name the code
    the scheme's class of that name gives, as `_by_name` asks it name by name; the
    scheme is asked only where a folder starts."""
    import numpy as np

    from dataset_registry.recipes import schemes, shards
    from dataset_registry.sources.members import MemberSet, StrColumn

    asked = []

    class Folders(schemes.LabelScheme):
        name, folder_splits = "folders-test", ("train",)

        def classes(self) -> list[str]:
            return ["a", "b", "f", "f-x", "f.JPEG", "f.d", "f0", "g.JPEG", "é", "ü", "ü0"]

        def class_of(self, names, split, where):
            names = list(names)
            asked.extend(names)
            return [n.partition("/")[0] for n in names]

    names = sorted(names)
    count = len(names)
    members = MemberSet("train", "src", StrColumn.from_list(names), StrColumn.from_list(names),
                        np.zeros(count, np.int64), np.ones(count, np.int64), ["src"])
    scheme = Folders("unused")
    label_of = {w: i for i, w in enumerate(scheme.classes())}
    by_name, by_folder = (np.full(count, 99, np.int16) for _ in range(2))
    shards._by_name(members, scheme, "train", label_of, by_name, True)
    asked.clear()
    shards._by_folder(members, scheme, "train", label_of, by_folder)
    assert by_folder.tolist() == by_name.tolist()
    folders = [n.partition("/")[0] for n in names]
    assert asked == [n for i, n in enumerate(names) if i == 0 or folders[i] != folders[i - 1]]


@pytest.mark.parametrize(("names", "prefix"), [
    (["a", "f", "f/1", "f/\U0010ffff", "f/\U0010ffffz", "f0", "g"], "f/"),
    (["\U0010ffff", "\U0010ffff/a", "\U0010ffff\U0010ffff"], "\U0010ffff"),
    (["a", "b"], ""), (["a/x", "b/y"], "c/"),
])
def test_prefix_range_holds_exactly_the_names_starting_with_the_prefix(names, prefix):
    from dataset_registry.sources.members import StrColumn, prefix_range

    names = sorted(names)
    for column in (names, StrColumn.from_list(names)):
        start, stop = prefix_range(column, prefix)
        assert [column[i] for i in range(start, stop)] == \
            [n for n in names if n.startswith(prefix)]
        assert prefix_range(column, prefix, start) == (start, stop)
