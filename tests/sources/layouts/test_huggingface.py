"""The layouts people bring from Hugging Face and Kaggle, read with the labels Hugging
Face's own `datasets` imagefolder loader gives (where it applies): a flat folder plus
`metadata.csv`, split folders each with their table, whole-number labels kept as they
are, class folders in torchvision's (sorted-name) order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataset_registry import Registry, SourceError
from dataset_registry.sources.index import member_sets

from ...conftest import make_tar, write_manifest
from ...realkit import digits, png

datasets = pytest.importorskip("datasets")


def open_source(root: Path, location: Path, layout: str = "image-folder",
                options: str = "") -> dict:
    write_manifest(root, f"""
sources:
  - name: mine
    layout: {layout}
    {options}
""")
    reg = Registry.open(str(root))
    reg.set_source("mine", str(location))
    return member_sets(reg.resolver.source_info("mine"))


def hf_labels(folder: Path, monkeypatch, tmp_path) -> dict[str, dict[str, object]]:
    """{split: {file name: label}} as `datasets.load_dataset("imagefolder")` reads them."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(folder))
    out: dict[str, dict[str, object]] = {}
    for split, ds in loaded.items():
        feature = ds.features["label"]
        names = getattr(feature, "names", None)
        files = [os.path.relpath(x["image"].filename, folder) for x in ds]
        out[split] = {f: (names[v] if names and v is not None else v)
                      for f, v in zip(files, ds["label"], strict=True)}
    return out


def write_images(folder: Path, names: list[str]) -> None:
    images, _ = digits()
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png(images[i]))


def test_a_flat_folder_with_metadata_csv_keeps_whole_number_labels(tmp_path, monkeypatch):
    folder = tmp_path / "flat"
    names = [f"{i:04d}.png" for i in range(8)]
    write_images(folder, names)
    labels = [2, 10, 2, 10, 3, 3, 10, 2]
    (folder / "metadata.csv").write_text("file_name,label\n" + "".join(
        f"{n},{v}\n" for n, v in zip(names, labels, strict=True)))
    sets = open_source(tmp_path, folder)
    ours = {r.name: r.label for r in sets["train"]}
    theirs = hf_labels(folder, monkeypatch, tmp_path)["train"]
    assert ours == {n: str(v) for n, v in theirs.items()}
    assert sorted(set(theirs.values())) == [2, 3, 10]  # integers, not classes 0..2
    # and a recipe numbers them by their value: webdataset's .cls holds 2, 3, 10
    write_manifest(tmp_path, """
datasets:
  - {name: shards, recipe: webdataset, inputs: {images: mine}}
""", name="more.yaml")
    import webdataset as wds

    built = Registry.open(str(tmp_path)).resolve("shards", jobs=1)
    got = {s["__key__"]: int(s["cls"]) for shard in Path(built.path).glob("*.tar")
           for s in wds.WebDataset(str(shard), shardshuffle=False)}
    assert got == {n.removesuffix(".png"): v for n, v in zip(names, labels, strict=True)}


def test_split_folders_each_with_a_metadata_table(tmp_path, monkeypatch):
    folder = tmp_path / "hf"
    write_images(folder, ["train/a.png", "train/b.png", "test/c.png"])
    (folder / "train" / "metadata.csv").write_text("file_name,label\na.png,cat\nb.png,dog\n")
    (folder / "test" / "metadata.csv").write_text("file_name,label\nc.png,dog\n")
    sets = open_source(tmp_path, folder)
    ours = {s: {f"{s}/{r.name}": r.label for r in sets[s]} for s in ("train", "test")}
    theirs = hf_labels(folder, monkeypatch, tmp_path)
    assert ours == theirs


def test_class_folders_keep_torchvisions_order_even_when_numbered(tmp_path, monkeypatch):
    """Folders `1`, `2`, `10`: ImageFolder numbers them as sorted strings (1, 10, 2), and so
    do we (only a table's whole numbers keep their value)."""
    folder = tmp_path / "cls"
    write_images(folder, ["1/a.png", "2/b.png", "10/c.png"])
    write_manifest(tmp_path, """
sources:
  - {name: mine, layout: image-folder}
datasets:
  - {name: shards, recipe: webdataset, inputs: {images: mine}}
""")
    import webdataset as wds

    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(folder))
    built = reg.resolve("shards", jobs=1)
    got = {s["__key__"]: int(s["cls"]) for shard in Path(built.path).glob("*.tar")
           for s in wds.WebDataset(str(shard), shardshuffle=False)}
    assert got == {"a": 0, "c": 1, "b": 2}
    theirs = hf_labels(folder, monkeypatch, tmp_path)["train"]
    assert theirs == {"1/a.png": "1", "10/c.png": "10", "2/b.png": "2"}  # ClassLabel names


def test_a_zip_like_kaggle_table_beside_the_archive_has_its_labels(tmp_path):
    """`files` over a tar with the labels table beside it: Kaggle's `train.zip` +
    `train_labels.csv` shape (the zip reader is tested in test_zip_sources)."""
    images, _ = digits()
    make_tar(tmp_path / "train.tar", {"a.png": png(images[0]), "b.png": png(images[1])})
    (tmp_path / "train_labels.csv").write_text("id,has_cactus\na.png,1\nb.png,0\n")
    sets = open_source(tmp_path, tmp_path / "train.tar", "files",
                       "options: {table: train_labels.csv, file_column: id, "
                       "label_column: has_cactus}")
    assert {r.name: r.label for r in sets["train"]} == {"a.png": "1", "b.png": "0"}
    # 0 and 1 number the images as their sorted text does: nothing to keep apart, so the
    # source reads (and keys) as it always did
    assert sets["train"].values is None


def test_a_metadata_row_naming_no_image_is_refused(tmp_path):
    folder = tmp_path / "flat"
    write_images(folder, ["a.png", "b.png"])
    (folder / "metadata.csv").write_text("file_name,label\na.png,cat\nb.png,dog\nc.png,dog\n")
    with pytest.raises(SourceError, match=r"metadata.csv:4: 'c.png' is not an image of the "
                                          r"source"):
        open_source(tmp_path, folder)


def test_a_flat_folder_without_a_table_is_one_unlabelled_split(tmp_path):
    folder = tmp_path / "flat"
    write_images(folder, ["a.png", "b.png"])
    sets = open_source(tmp_path, folder)
    assert [r.name for r in sets["train"]] == ["a.png", "b.png"]
    assert sets["train"].class_names() == []


def test_flat_images_beside_class_folders_without_rows_are_refused(tmp_path):
    folder = tmp_path / "mixed"
    write_images(folder, ["a.png", "cat/b.png"])
    with pytest.raises(SourceError, match=r"member 'a.png' is not <class>/<image> .*needs a "
                                          r"row in metadata.csv"):
        open_source(tmp_path, folder)


def test_a_table_at_the_top_over_folders_named_as_splits(tmp_path, monkeypatch):
    """`metadata.csv` at the top naming `train/...` and `test/...`: split folders, as
    Hugging Face tells them by their names."""
    folder = tmp_path / "hf"
    write_images(folder, ["train/a.png", "train/b.png", "test/c.png"])
    (folder / "metadata.csv").write_text(
        "file_name,label\ntrain/a.png,cat\ntrain/b.png,dog\ntest/c.png,dog\n")
    sets = open_source(tmp_path, folder)
    ours = {s: {f"{s}/{r.name}": r.label for r in sets[s]} for s in ("train", "test")}
    assert ours == {"train": {"train/a.png": "cat", "train/b.png": "dog"},
                    "test": {"test/c.png": "dog"}}
    # the same splits as Hugging Face's (whose labels here are not the table's: it
    # classes these images by their folders, train and test)
    theirs = hf_labels(folder, monkeypatch, tmp_path)
    assert {s: sorted(f) for s, f in theirs.items()} == {s: sorted(f) for s, f in ours.items()}


def test_whole_number_labels_keep_their_value_through_a_sample(tmp_path):
    """A sample's split of a table with labels 2 and 10, then WebDataset shards of that
    split: `.cls` still holds 2 and 10 (the sample's file table says its labels are the
    numbers), and `classes.txt` names every number up to the largest."""
    import webdataset as wds

    folder = tmp_path / "flat"
    names = [f"{i:04d}.png" for i in range(12)]
    write_images(folder, names)
    labels = [2, 10] * 6
    (folder / "metadata.csv").write_text("file_name,label\n" + "".join(
        f"{n},{v}\n" for n, v in zip(names, labels, strict=True)))
    write_manifest(tmp_path, """
sources:
  - {name: mine, layout: image-folder}
datasets:
  - {name: split, recipe: sample, inputs: {images: mine}, params: {splits: {a: 0.5, b: 0.5}}}
  - {name: shards, recipe: webdataset, inputs: {images: split}, params: {split: a}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(folder))
    built = reg.resolve("shards", jobs=1)
    got = {s["__key__"]: int(s["cls"]) for shard in Path(built.path).glob("*.tar")
           for s in wds.WebDataset(str(shard), shardshuffle=False)}
    assert len(got) == 6 and set(got.values()) == {2, 10}
    assert all(got[k] == labels[names.index(k + ".png")] for k in got)
    split = reg.resolve("split", jobs=1)
    assert (Path(split.path) / "classes.txt").read_text().split() == [str(i) for i in range(11)]


def test_a_subset_of_numbered_folders_is_numbered_as_it_always_was(tmp_path):
    """Folders 0..9 (names, not a table's numbers): a dataset holding only classes 0 and 3,
    then shards of it: `.cls` of class 3 is 1 (its sorted names 0, 3), as before; only a
    table's whole numbers, marked in the marker, number by value downstream."""
    import webdataset as wds

    folder = tmp_path / "digits"
    names = [f"{d}/{i}.png" for d in range(10) for i in range(2)]
    write_images(folder, names)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "pick.txt").write_text("0/0.png\n0/1.png\n3/0.png\n3/1.png\n")
    write_manifest(tmp_path, """
sources:
  - {name: mine, layout: image-folder}
datasets:
  - {name: some, recipe: select, inputs: {images: mine, list: pick.txt},
     params: {split: train, folders: true}}
  - {name: shards, recipe: webdataset, inputs: {images: some}, params: {split: "*"}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(folder))
    built = reg.resolve("shards", jobs=1)
    got = {s["__key__"]: int(s["cls"]) for shard in Path(built.path).glob("*.tar")
           for s in wds.WebDataset(str(shard), shardshuffle=False)}
    assert got == {"0/0": 0, "0/1": 0, "3/0": 1, "3/1": 1}
    assert not reg.built("some").marker.label_values
