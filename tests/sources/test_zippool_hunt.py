"""Zips hunted for a difference between the index made on a pool (`zipindexing.index_zip`)
and the serial reading: odd shapes of image-folder, names out of directory order,
folder entries, refusals in different runs, other layouts. Each must give the same
index (fingerprint, rows, members left out, splits) or the same refusal, word for word."""

import random

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.sources import zipindexing, zippool

from ..zipkit import DEFLATED, STORED, Entry, build_zip, damaged_zips, hostile_zips, python_zip
from .indexkit import indexed, zip_on_a_pool

PHOTO = b"\xff\xd8" + bytes(range(256)) * 3
CLASSES = [f"{c}/{c}-{i}.jpg" for c in ("cat", "dog", "owl") for i in range(7)]


def _both(tmp_path, monkeypatch, data, layout="image-folder", run_members=None, **options):
    """The index on a pool of 3 and wholly serially (the zip read by `scan_zip` in this
    process), and whether the pool placed the members itself (not handing back to the
    serial reading)."""
    from dataset_registry.sources import indexing

    path = zip_on_a_pool(tmp_path, monkeypatch, data)
    if run_members:
        monkeypatch.setattr(zippool, "RUN_MEMBERS", run_members)
    placed = []

    def index_zip(*args):
        try:
            found = zipindexing.index_zip(*args)
        except SourceError:
            placed.append(True)  # (refused by the pool itself)
            raise
        placed.append(isinstance(found, tuple))
        return found

    monkeypatch.setattr(indexing, "index_zip", index_zip)
    pooled = indexed(path, tmp_path / "a", layout, options)
    monkeypatch.setattr(indexing, "index_zip", lambda *_: None)
    monkeypatch.setattr(zippool, "PARALLEL_BYTES", 1 << 62)  # (the serial reader, too)
    serial = indexed(path, tmp_path / "b", layout, options)
    return pooled, serial, placed == [True]


def _zip(names, **kwargs):
    return python_zip({n: (b"" if n.endswith("/") else PHOTO + n.encode()) for n in names},
                      **kwargs)


def _shuffled_directory(names, seed=1, damaged=None):
    """A zip of `names` whose central directory lists them in a shuffled order (members in
    file order as given); the data of member `damaged` (file order) changed."""
    order = list(range(len(names)))
    random.Random(seed).shuffle(order)
    return _directory_in(names, order, damaged)


def _directory_in(names, order, damaged=None):
    """A zip of `names` (in file order) whose central directory lists member `order[k]`
    k-th; the data of member `damaged` (file order) changed, so its CRC-32 fails."""
    entries = [Entry(n, b"" if n.endswith("/") else PHOTO + n.encode()) for n in names]
    if damaged is not None:
        entries[damaged].packed = bytes(len(PHOTO) + len(names[damaged]))  # (CRC fails)
        entries[damaged].method = STORED
    return build_zip(entries, cd_order=order)


TINY = [f"c{i:04d}/x.jpg" for i in range(1500)]  # thousands of tiny folders (one image each)
SHAPES = {
    "UTF-8 class and file names": [f"{c}/{c}-{i}.jpg" for c in ("chat-été", "狗", "Ωmega")
                                   for i in range(5)],
    "folder entries before their files": ["cat/", "dog/", "owl/", *CLASSES],
    "folder entries after their files": [*CLASSES, "cat/", "dog/", "owl/"],
    "empty folders beside classes": [*CLASSES, "empty/", "also/empty/"],
    "only empty folders": ["a/", "b/", "b/c/"],
    "a './' entry": ["./", *CLASSES],
    "one class": [f"cat/{i}.jpg" for i in range(12)],
    "one class in a folder": [f"pets/cat/{i}.jpg" for i in range(12)],
    "a folder around everything, with litter at the top": [
        *[f"pets/{n}" for n in CLASSES], "README.txt", ".DS_Store",
        "__MACOSX/pets/cat/._cat-0.jpg"],
    "a split word around class folders, in a folder": [f"data/val/{n}" for n in CLASSES],
    "a hidden folder among classes": [*CLASSES, ".cache/cat/x.jpg", "cat/.hidden/y.jpg"],
    "non-images only in one folder": [*CLASSES, "docs/a.txt", "docs/b.pdf"],
    "mixed-case extensions": [f"cat/{i}.JPG" for i in range(4)] + [f"dog/{i}.PnG"
                                                                  for i in range(4)],
    "names normalized (./ and //)": [f"./cat/{i}.jpg" for i in range(5)] +
                                    [f"dog//{i}.jpg" for i in range(5)],
    "flat images in split folders": [f"{s}/{i}.png" for s in ("train", "test")
                                     for i in range(6)],
    "flat and class folders in splits": ["train/a.png", "train/cat/b.png", "test/c.png"],
    "a split named meta": [f"{s}/{n}" for s in ("train", "meta") for n in CLASSES[::3]],
    "a blank class name, twice": [*CLASSES[:10], " /x.jpg", *CLASSES[10:], " /y.jpg",
                                  "  /z.jpg"],
    "a class named as a reserved split under splits=no": [*CLASSES, "*/x.jpg"],
    "thousands of tiny folders": TINY,
    "out of name order, interleaved folders": [CLASSES[(i * 8) % 21] for i in range(21)],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_odd_image_folder_zip_indexes_on_a_pool_as_serially(tmp_path, monkeypatch, shape):
    pooled, serial, placed = _both(tmp_path, monkeypatch, _zip(SHAPES[shape]),
                                   run_members=5 if shape.startswith("thousands") else None)
    assert pooled == serial, shape
    assert placed, shape
    if shape in OUTCOMES:
        assert OUTCOMES[shape] in serial[1], serial[1]
    else:
        assert serial[1] is None, serial[1]


OUTCOMES = {  # the shapes refused, by part of the refusal's words (the rest are read)
    "only empty folders": "holds no images",
    "flat and class folders in splits": "member 'train/cat/b.png' is not <class>/<image>",
    "a split named meta": "'meta' is not a split name",
    "a blank class name, twice": "an empty class name",
}


@pytest.mark.parametrize("splits", ["yes", "no", "auto"])
@pytest.mark.parametrize("shape", ["split folders in a folder", "class folders",
                                   "flat images in split folders", "a split named meta"])
def test_each_splits_option_places_odd_shapes_on_a_pool_as_serially(tmp_path, monkeypatch,
                                                                    shape, splits):
    names = SHAPES.get(shape) or {
        "split folders in a folder": [f"data/{s}/{n}" for s in ("train", "val")
                                      for n in CLASSES],
        "class folders": CLASSES}[shape]
    pooled, serial, placed = _both(tmp_path, monkeypatch, _zip(names), splits=splits,
                                   split="holdout")
    assert pooled == serial and placed, (shape, splits)


@pytest.mark.parametrize("how", ["stored", "descriptors", "zip64"])
def test_stored_streamed_and_zip64_members_index_on_a_pool_as_serially(tmp_path, monkeypatch,
                                                                      how):
    import zipfile

    kwargs = {"stored": {"method": zipfile.ZIP_STORED}, "descriptors": {"streamed": True},
              "zip64": {"force_zip64": True}}[how]
    pooled, serial, placed = _both(tmp_path, monkeypatch, _zip(CLASSES, **kwargs))
    assert pooled == serial and placed and serial[1] is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_directory_out_of_file_order_indexes_on_a_pool_as_serially(tmp_path, monkeypatch,
                                                                    seed):
    names = [*CLASSES, "empty/", "also/empty/", "README.txt", "owl/.x.jpg"]
    pooled, serial, placed = _both(tmp_path, monkeypatch, _shuffled_directory(names, seed),
                                   run_members=4)
    assert pooled == serial and placed and serial[1] is None


@pytest.mark.parametrize("damaged", [0, 9, 20])
def test_a_damaged_member_out_of_directory_order_is_said_first_as_serially(tmp_path,
                                                                          monkeypatch, damaged):
    """image-folder sees every name before placing any: a member the reader refuses is
    said before any image the layout cannot place, wherever each lies."""
    names = [*CLASSES[:6], " /x.jpg", *CLASSES[6:]]
    pooled, serial, _ = _both(tmp_path / str(damaged), monkeypatch,
                              _shuffled_directory(names, 4, damaged), run_members=3)
    assert pooled == serial and "CRC-32 mismatch" in serial[1]


VAL = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 19)]


def _moved(member: int, to: int) -> list[int]:
    """A directory order of the 18 members: file order, but `member` listed at `to`."""
    order = [i for i in range(18) if i != member]
    order.insert(to, member)
    return order


@pytest.mark.parametrize("bad, damaged, order, first", [
    (3, 12, list(range(18)), "not-a-val-image"),  # read and given before the damage
    (3, 12, _moved(15, 0), "CRC-32"),  # read first, but listed after a member never read
    (3, 12, _moved(3, 17), "CRC-32"),  # read first, listed last
    (14, 12, _moved(14, 0), "CRC-32"),  # listed first, but after the damage in the file
    (3, 12, _moved(12, 5), "not-a-val-image"),  # the damaged one listed after the bad one
    (3, 12, _moved(12, 2), "CRC-32"),  # ... and before it
])
def test_imagenet_val_refusals_out_of_directory_order_come_as_serially(
        tmp_path, monkeypatch, bad, damaged, order, first):
    """imagenet-val places each member as the serial reader gives it (directory order,
    once all before it are read in file order): which refusal comes first depends on
    both orders, not on which member the file holds first."""
    names = list(VAL)
    names[bad] = "not-a-val-image.JPEG"
    pooled, serial, placed = _both(tmp_path, monkeypatch,
                                   _directory_in(names, order, damaged), "imagenet-val",
                                   run_members=2)
    assert pooled == serial and placed
    assert first in serial[1], serial[1]


@pytest.mark.parametrize("layout, names", [
    ("imagenet-train", [f"n0144076{i}/n0144076{i}_{k}.JPEG" for i in range(3)
                        for k in range(4)]),
    ("imagenet-val", ["ILSVRC2012_val_00000001.JPEG", "sub/", "ILSVRC2012_val_00000002.JPEG"]),
    ("webdataset", [f"shard-{i}.tar" for i in range(3)]),
    ("files", CLASSES),
    ("kaggle-cls-loc", ["LOC_synset_mapping.txt"]),
])
def test_other_layouts_on_a_zip_index_on_a_pool_as_serially(tmp_path, monkeypatch, layout,
                                                            names):
    pooled, serial, _ = _both(tmp_path, monkeypatch, _zip(names), layout)
    assert pooled == serial, layout


def test_an_empty_zip_indexes_on_a_pool_as_serially(tmp_path, monkeypatch):
    pooled, serial, placed = _both(tmp_path, monkeypatch, build_zip([]))
    assert pooled == serial and placed and serial[1] is not None


def test_every_hostile_and_damaged_zip_indexes_under_imagenet_val_as_serially(tmp_path,
                                                                              monkeypatch):
    """Seeded damage to a zip whose directory is out of file order and which holds a
    member imagenet-val refuses: the refusals of reading and of placing race in every
    order, on the pool as serially."""
    names = list(VAL)
    names[7] = "not-a-val-image.JPEG"
    cases = dict(hostile_zips())
    cases.update(damaged_zips(_directory_in(names, _moved(7, 12)), 40, 5))
    outcomes = {"read": 0, "misplaced": 0, "other": 0}  # (hostile names refuse placing)
    for name, data in cases.items():
        pooled, serial, _ = _both(tmp_path / name, monkeypatch, data, "imagenet-val",
                                  run_members=3)
        assert pooled == serial, name
        outcomes["read" if serial[1] is None else "misplaced"
                 if "not-a-val-image" in serial[1] else "other"] += 1
    assert outcomes["misplaced"] > 5 and outcomes["other"] > 40, outcomes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layout", ["image-folder", "imagenet-val"])
def test_descriptors_and_mixed_methods_out_of_directory_order_index_as_serially(
        tmp_path, monkeypatch, layout, seed):
    """Runs the fast reader gives up (data descriptors), stored and deflated members, the
    directory shuffled, a damaged member in odd seeds: the workers' strict reading of rows
    out of directory order gives what the serial reading gives."""
    rng = random.Random(seed)
    names = list(CLASSES) if layout == "image-folder" else list(VAL)
    if layout == "imagenet-val":
        names[rng.randrange(len(names))] = "not-a-val-image.JPEG"
    entries = [Entry(n, PHOTO + n.encode(), descriptor=rng.random() < 0.5,
                     method=rng.choice([STORED, DEFLATED])) for n in names]
    if seed % 2:
        damaged = entries[rng.randrange(len(names))]
        damaged.packed, damaged.method = bytes(len(damaged.data)), STORED  # (CRC fails)
    order = rng.sample(range(len(names)), len(names))
    pooled, serial, placed = _both(tmp_path, monkeypatch, build_zip(entries, cd_order=order),
                                   layout, run_members=2)
    assert pooled == serial and placed
    assert (serial[1] is None) == (layout == "image-folder" and not seed % 2), serial[1]
