"""Files numbered per class (`cat/0001.png`, `dog/0001.png`: what most datasets do) build
with every recipe that names records, each record named by its whole logical name where
file names clash, and read back with the formats' own readers; sources whose file names
are unique keep the names (and bytes) they always had (see recipes/naming.py)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from dataset_registry import BadInputError, Registry

from ..conftest import make_tar, write_manifest
from ..realkit import digits, png

PER_CLASS = 4


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<digit>/<NNNN>.png`: real digits, numbered from 1 within each class."""
    root = tmp_path_factory.mktemp("numbered") / "pets"
    images, labels = digits()
    for d in range(3):
        (root / str(d)).mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(labels == d)[:PER_CLASS], 1):
            (root / str(d) / f"{n:04d}.png").write_bytes(png(images[i]))
    return root


def project(root: Path, location: Path, recipe: str, params: str = "",
            layout: str = "image-folder") -> Registry:
    write_manifest(root, f"""
sources:
  - {{name: pets, layout: {layout}}}
datasets:
  - {{name: out, recipe: {recipe}, inputs: {{images: pets}}, params: {{{params}}}}}
""")
    reg = Registry.open(str(root))
    reg.set_source("pets", str(location))
    return reg


def expected_names() -> list[str]:
    return [f"{d}/{n:04d}" for d in range(3) for n in range(1, PER_CLASS + 1)]


def test_webdataset_keys_are_whole_names_read_back_by_webdataset(tmp_path, numbered):
    import webdataset as wds

    ds = project(tmp_path, numbered, "webdataset").resolve("out", jobs=2)
    samples = [s for shard in sorted(Path(ds.path).glob("*.tar"))
               for s in wds.WebDataset(str(shard), shardshuffle=False)]
    assert sorted(s["__key__"] for s in samples) == expected_names()
    for s in samples:  # the class webdataset reads is the folder's
        assert int(s["cls"]) == int(s["__key__"].split("/")[0])
        assert s["png"] == (numbered / f"{s['__key__']}.png").read_bytes()


def test_unique_file_names_keep_their_short_keys(tmp_path, numbered):
    """One image a class: no clash, so keys stay the file stems (the bytes any earlier
    build of such a source has, under the same key)."""
    import webdataset as wds

    flat = tmp_path / "src"
    for d in range(3):
        (flat / str(d)).mkdir(parents=True)
        (flat / str(d) / f"img-{d}.png").write_bytes((numbered / str(d) / "0001.png")
                                                      .read_bytes())
    ds = project(tmp_path, flat, "webdataset").resolve("out", jobs=1)
    keys = [s["__key__"] for shard in sorted(Path(ds.path).glob("*.tar"))
            for s in wds.WebDataset(str(shard), shardshuffle=False)]
    assert sorted(keys) == ["img-0", "img-1", "img-2"]


def test_select_writes_whole_names_when_file_names_clash(tmp_path, numbered):
    ds = project(tmp_path, numbered, "select", "split: train").resolve("out", jobs=1)
    paths = sorted(p for p, in ds.files().project("path").fetchall())
    assert paths == [f"{n}.png" for n in expected_names()]


def test_sample_keeps_whole_names_below_the_class_folder(tmp_path, numbered):
    """A labels table classes `x/1.png` and `y/1.png` alike: one class folder, two
    files; sample writes `<split>/<class>/<whole name>`."""
    images, _ = digits()
    table = "file_name,label\nx/1.png,cat\ny/1.png,cat\nx/2.png,dog\ny/2.png,dog\n"
    make_tar(tmp_path / "pets.tar", {"x/1.png": png(images[0]), "y/1.png": png(images[1]),
                                     "x/2.png": png(images[2]), "y/2.png": png(images[3]),
                                     "labels.csv": table.encode()})
    reg = project(tmp_path, tmp_path / "pets.tar", "sample", "per_class: 2", layout="files")
    ds = reg.resolve("out", jobs=1)
    rows = sorted(ds.files().project("path, class").fetchall())
    assert rows == [("classes.txt", None), ("train/cat/x/1.png", "cat"),
                    ("train/cat/y/1.png", "cat"), ("train/dog/x/2.png", "dog"),
                    ("train/dog/y/2.png", "dog")]
    assert (Path(ds.path) / "train/cat/y/1.png").read_bytes() == png(images[1])
    # byclass names them the same way; recordio's .lst and tfrecord's image/filename,
    # which never had to tell records apart, keep the file names they always wrote
    for recipe in ("byclass", "recordio", "tfrecord"):
        write_manifest(tmp_path, f"""
sources:
  - {{name: pets, layout: files}}
datasets:
  - {{name: out-{recipe}, recipe: {recipe}, inputs: {{images: pets}}, params: {{split: train
      {", shards: 1" if recipe == "tfrecord" else ""}}}}}
""")
        built = Registry.open(str(tmp_path)).resolve(f"out-{recipe}", jobs=1)
        if recipe == "byclass":
            assert sorted(p for p, in built.files().project("path").fetchall()) == [
                "cat/x/1.png", "cat/y/1.png", "dog/x/2.png", "dog/y/2.png"]
        elif recipe == "recordio":
            lst = (Path(built.path) / "train.lst").read_text().splitlines()
            assert sorted(line.split("\t")[2] for line in lst) == [
                "cat/1.png", "cat/1.png", "dog/2.png", "dog/2.png"]
        else:
            from tfrecord.reader import tfrecord_loader

            shard = next(Path(built.path).glob("train-*"))
            names = sorted(bytes(r["image/filename"]).decode()
                           for r in tfrecord_loader(str(shard), None))
            assert names == ["1.png", "1.png", "2.png", "2.png"]


def test_downscale_folders_name_pngs_after_whole_names_only_on_a_clash(tmp_path, numbered):
    ds = project(tmp_path, numbered, "downscale",
                 "width: 8, height: 8, format: folders").resolve("out", jobs=1)
    pngs = sorted(p.relative_to(ds.path).as_posix() for p in Path(ds.path).rglob("*.png"))
    # class folders already tell `0/0001` from `1/0001`: the file names stay
    assert pngs == [f"train/{n}.png" for n in expected_names()]
    images, _ = digits()
    make_tar(tmp_path / "pets.tar", {"x/1.png": png(images[0]), "y/1.png": png(images[1]),
                                     "labels.csv": b"file_name,label\nx/1.png,cat\ny/1.png,cat\n"})
    ds = project(tmp_path, tmp_path / "pets.tar", "downscale",
                 "width: 8, height: 8, format: folders", layout="files").resolve("out", jobs=1)
    pngs = sorted(p.relative_to(ds.path).as_posix() for p in Path(ds.path).rglob("*.png"))
    assert pngs == ["train/cat/x/1.png", "train/cat/y/1.png"]


def test_two_images_named_alike_even_whole_are_refused_naming_both(tmp_path):
    images, _ = digits()
    make_tar(tmp_path / "pets.tar", {"cat/1.png": png(images[0]), "cat/1.jpg": png(images[1]),
                                     "dog/2.png": png(images[2])})
    reg = project(tmp_path, tmp_path / "pets.tar", "webdataset")
    (tmp_path / "pets.tar").stat()
    with pytest.raises(BadInputError, match=r"'cat/1.jpg' and 'cat/1.png' would both be "
                                            r"sample key 'cat/1'; rename one of them"):
        reg.resolve("out", jobs=1)
    assert list(reg.store.committed()) == []


def test_a_webdataset_of_whole_keys_round_trips_as_a_source(tmp_path, numbered):
    """Registry shards with `/` in their keys read back through the webdataset layout with
    every class kept."""
    ds = project(tmp_path, numbered, "webdataset").resolve("out", jobs=1)
    shards = tmp_path / "shards"
    shards.mkdir()
    for shard in Path(ds.path).glob("*.tar"):
        (shards / shard.name).write_bytes(shard.read_bytes())
    write_manifest(tmp_path, """
sources:
  - {name: wds, layout: webdataset}
datasets:
  - {name: back, recipe: byclass, inputs: {images: wds}, params: {split: train}}
""", name="back.yaml")
    reg = Registry.open(str(tmp_path))
    reg.set_source("wds", str(shards))
    back = reg.resolve("back", jobs=1)
    with tarfile.open(next(shards.glob("*.tar"))) as tf:
        assert any("/" in m.name for m in tf.getmembers())
    classes = sorted({c for c, in back.files().project("class").fetchall() if c})
    assert classes == ["0", "1", "2"]
    assert len(back.files().fetchall()) == 3 * PER_CLASS


def test_downscale_val_files_keep_file_names_and_members_tell_them_apart(tmp_path):
    """val/files.txt lists file names as it always did (a repeated one included: it
    describes the rows); members.txt names each row's source member."""
    images, _ = digits()
    make_tar(tmp_path / "pets.tar", {
        "val/a/1.png": png(images[0]), "val/b/1.png": png(images[1]),
        "labels.csv": b"file_name,label,split\nval/a/1.png,cat,val\nval/b/1.png,dog,val\n"})
    ds = project(tmp_path, tmp_path / "pets.tar", "downscale", "width: 8, height: 8",
                 layout="files").resolve("out", jobs=1)
    assert (Path(ds.path) / "val" / "files.txt").read_text().split() == ["1.png", "1.png"]
    assert (Path(ds.path) / "val" / "members.txt").read_text().split() == ["val/a/1.png",
                                                                           "val/b/1.png"]
