"""`webdataset`: shards written by the `webdataset` package itself (its TarWriter) from
the real UCI digits, and the registry's own webdataset shards, as a source."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from dataset_registry import Registry
from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_members
from dataset_registry.testing.layouts import LayoutSuite

from ...conftest import run_cli, tar_bytes, write_manifest
from ...realkit import digits, png

IMAGES, LABELS = digits()
N = 300  # digits in the shards: a few hundred real images


def key(i: int) -> str:
    return f"digit-{i:04d}"


def sample(i: int, label: int | None = None) -> dict:
    return {"__key__": key(i), "png": png(IMAGES[i]),
            "cls": int(LABELS[i] if label is None else label), "json": {"row": i}}


def write_shards(folder: Path, shards: dict[str, range], label=None) -> Path:
    """Shards by the webdataset package: `shards` maps a shard's path to its digits;
    `label(i)` overrides the digit's class."""
    import webdataset as wds

    for name, indices in shards.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with wds.TarWriter(str(path)) as writer:
            for i in indices:
                writer.write(sample(i, None if label is None else label(i)))
    return folder


TRAIN_VAL = {"train-000000.tar": range(0, 100), "train-000001.tar": range(100, 200),
             "val-000000.tar": range(200, N)}

SOURCE = """
sources:
  - name: shards
    layout: webdataset
    {options}
datasets:
{datasets}
"""


def project(root: Path, location: Path, datasets: str = "  []", options: str = "") -> Registry:
    write_manifest(root, SOURCE.format(options=options, datasets=datasets))
    reg = Registry.open(str(root))
    reg.set_source("shards", str(location))
    return reg


def test_package_shards_give_the_labels_and_class_counts_written(tmp_path):
    shards = write_shards(tmp_path / "shards", TRAIN_VAL)
    sets = member_sets(project(tmp_path, shards).resolver.source_info("shards"))
    assert sorted(sets) == ["meta", "train", "val"]  # splits from the shard names
    # the .cls and .json members the labels and attributes came from: in the fingerprint
    assert [r.name for r in sets["meta"]][:3] == [f"train/{key(0)}.cls", f"train/{key(0)}.json",
                                                  f"train/{key(1)}.cls"]
    assert len(sets["meta"]) == 2 * N
    for split, indices in (("train", range(0, 200)), ("val", range(200, N))):
        refs = {r.name: r for r in sets[split]}
        assert sorted(refs) == [f"{key(i)}.png" for i in indices]
        assert Counter(r.label for r in refs.values()) == \
            Counter(str(LABELS[i]) for i in indices)
        for i in indices:
            ref = refs[f"{key(i)}.png"]
            assert ref.label == str(LABELS[i]) and json.loads(ref.attrs) == {"json": {"row": i}}
    # the bytes read back are the image the package wrote, from the shard in place
    for ref, data in read_members(list(sets["val"])):
        assert data == png(IMAGES[int(ref.name[6:10])])
        assert ref.origin == "val-000000.tar" and ref.path == str(shards / "val-000000.tar")


def test_labels_past_nine_are_zero_padded_so_sorting_keeps_their_order(tmp_path):
    shards = write_shards(tmp_path / "shards", {"train-000000.tar": range(0, 60)},
                          label=lambda i: i % 12)
    train = member_sets(project(tmp_path, shards).resolver.source_info("shards"))["train"]
    assert train.class_names() == [f"{c:02d}" for c in range(12)]
    assert all(int(r.label) == int(r.name[6:10]) % 12 for r in train)


def test_a_classes_file_beside_the_shards_names_the_labels(tmp_path):
    shards = write_shards(tmp_path / "shards", {"train-000000.tar": range(0, 50)})
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (shards / "classes.txt").write_text("\n".join(names) + "\n")
    sets = member_sets(project(tmp_path, shards).resolver.source_info("shards"))
    assert sets["meta"][0].name == "classes.txt"
    assert all(r.label == names[LABELS[int(r.name[6:10])]] for r in sets["train"])


def test_an_edited_cls_changes_the_key_and_resharding_does_not(tmp_path):
    three = write_shards(tmp_path / "three", {f"train-{s:06d}.tar": range(s * 20, s * 20 + 20)
                                              for s in range(3)})
    one = write_shards(tmp_path / "one", {"train-000000.tar": range(0, 60)})
    edited = write_shards(tmp_path / "edited", {"train-000000.tar": range(0, 60)},
                          label=lambda i: 9 - LABELS[i] if i == 7 else LABELS[i])
    keys = {name: project(tmp_path / f"project-{name}", folder).key("shards")
            for name, folder in (("three", three), ("one", one), ("edited", edited))}
    assert keys["three"] == keys["one"] != keys["edited"]


def test_split_folders_a_tar_of_shards_and_one_shard(tmp_path):
    folders = write_shards(tmp_path / "folders", {"train/a-000000.tar": range(0, 40),
                                                  "holdout/a-000000.tar": range(40, 60)})
    as_folder = member_sets(project(tmp_path / "f", folders).resolver.source_info("shards"))
    assert {s: len(m) for s, m in as_folder.items()} == {"train": 40, "holdout": 20,
                                                          "meta": 120}
    tar = tmp_path / "shards.tar"
    with tarfile.open(tar, "w") as tf:
        for name in ("train/a-000000.tar", "holdout/a-000000.tar"):
            tf.add(folders / name, name)
    as_tar = member_sets(project(tmp_path / "t", tar).resolver.source_info("shards"))
    assert [r.name for r in as_tar["holdout"]] == [r.name for r in as_folder["holdout"]]
    assert [d for _, d in read_members(list(as_tar["train"]))] == \
        [d for _, d in read_members(list(as_folder["train"]))]
    one = member_sets(project(tmp_path / "o", folders / "holdout" / "a-000000.tar",
                              options="options: {split: test}").resolver.source_info("shards"))
    assert sorted(one) == ["meta", "test"] and len(one["test"]) == 20
    assert [d for _, d in read_members(list(one["test"]))] == [png(IMAGES[i])
                                                               for i in range(40, 60)]


def test_byclass_and_select_from_package_shards_give_the_images_back(tmp_path):
    shards = write_shards(tmp_path / "shards", TRAIN_VAL)
    reg = project(tmp_path, shards, datasets="""
  - {name: folders, recipe: byclass, inputs: {images: shards}, params: {split: train}}
  - {name: picked, recipe: select, inputs: {images: shards}, params: {split: val, first: 50}}
""")
    folders = Path(reg.resolve("folders", jobs=1).path)
    got = {p.relative_to(folders).as_posix(): p.read_bytes() for p in folders.glob("*/*")}
    assert got == {f"{LABELS[i]}/{key(i)}.png": png(IMAGES[i]) for i in range(0, 200)}
    picked = Path(reg.resolve("picked", jobs=1).path)
    files = sorted(p for p in picked.rglob("*.png"))
    assert len(files) == 50
    assert {p.name: p.read_bytes() for p in files} == \
        {f"{key(i)}.png": png(IMAGES[i]) for i in range(200, 250)}


def test_a_registry_webdataset_round_trips_through_the_layout(tmp_path):
    """image-folder digits -> registry webdataset -> this layout -> webdataset again: the
    class names and every sample's .cls come back."""
    import webdataset as wds

    digits_dir = tmp_path / "digits"
    for i in range(N):
        (digits_dir / str(LABELS[i])).mkdir(parents=True, exist_ok=True)
        (digits_dir / str(LABELS[i]) / f"{key(i)}.png").write_bytes(png(IMAGES[i]))
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: image-folder}
  - {name: back, layout: webdataset}
datasets:
  - {name: wds, recipe: webdataset, inputs: {images: digits}, params: {shard_count: 64}}
  - {name: again, recipe: webdataset, inputs: {images: back}, params: {shard_count: 64}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(digits_dir))
    first = Path(reg.resolve("wds", jobs=1).path)
    reg.set_source("back", str(first))  # the built dataset's folder, records and all
    back = member_sets(reg.resolver.source_info("back"))["train"]
    assert {r.name: r.label for r in back} == {f"{key(i)}.png": str(LABELS[i])
                                               for i in range(N)}
    second = Path(reg.resolve("again", jobs=1).path)

    def cls(folder: Path) -> dict[str, int]:
        return {s["__key__"]: int(s["cls"]) for shard in sorted(folder.glob("*.tar"))
                for s in wds.WebDataset(str(shard), shardshuffle=False)}

    assert cls(second) == cls(first) == {key(i): int(LABELS[i]) for i in range(N)}


def test_shards_on_s3_index_and_build_as_locally(tmp_path, s3):
    shards = write_shards(tmp_path / "shards", {"train-000000.tar": range(0, 40)})
    bucket = s3.bucket()
    bucket.fs().put(str(shards / "train-000000.tar"), f"{bucket.name}/wds/train-000000.tar")
    local = project(tmp_path / "local", shards)
    write_manifest(tmp_path / "remote", SOURCE.format(options="", datasets="""
  - {name: folders, recipe: byclass, inputs: {images: shards}}
"""))
    reg = Registry.open(str(tmp_path / "remote"), storage_options=s3.options())
    want = local.resolver.source_info("shards").fingerprint
    # a tar of the shards on S3 too: its .cls members read by range, in runs
    tar = tmp_path / "shards.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(shards / "train-000000.tar", "train-000000.tar")
    bucket.fs().put(str(tar), f"{bucket.name}/shards.tar")
    reg.set_source("shards", f"{bucket.url}/shards.tar")
    assert reg.resolver.source_info("shards").fingerprint == want
    reg.set_source("shards", f"{bucket.url}/wds")
    assert reg.resolver.source_info("shards").fingerprint == want
    out = Path(reg.resolve("folders", jobs=1).path)
    assert {p.name: p.read_bytes() for p in out.glob("*/*")} == \
        {f"{key(i)}.png": png(IMAGES[i]) for i in range(0, 40)}


# -- the layout suite -----------------------------------------------------------------------

class TestWebDatasetShards(LayoutSuite):
    layout = "webdataset"

    def write_source(self, folder):
        write_shards(folder, {"train-000000.tar": range(0, 20), "val-000000.tar": range(20, 30)})


class TestWebDatasetSplitFoldersAndClasses(LayoutSuite):
    layout = "webdataset"

    def write_source(self, folder):
        write_shards(folder, {"train/s-000000.tar": range(0, 12), "test/s-000000.tar":
                              range(12, 18)})
        (folder / "classes.txt").write_text("".join(f"c{d}\n" for d in range(10)))


# -- bad shards, through `registry source set` ----------------------------------------------

GOOD = {"digit-0001.png": png(IMAGES[1]), "digit-0001.cls": b"1"}
PNG0 = png(IMAGES[0])
BAD = {
    "no image": ({"train-000001.tar": tar_bytes({"digit-0000.cls": b"0", **GOOD})},
                 "shard 'train-000001.tar': sample 'digit-0000': no image among its members "
                 "('digit-0000.cls')"),
    "two images": ({"train-000001.tar": tar_bytes({"digit-0000.png": PNG0, "digit-0000.jpg":
                                                   PNG0})},
                   "shard 'train-000001.tar': sample 'digit-0000': two images (.jpg, .png); "
                   "name the one to use in options.image"),
    "cls not an integer": ({"train-000001.tar": tar_bytes({"digit-0000.png": PNG0,
                                                           "digit-0000.cls": b"seven"})},
                           "shard 'train-000001.tar': member 'digit-0000.cls': b'seven' is not "
                           "a class label"),
    "negative cls": ({"train-000001.tar": tar_bytes({"digit-0000.png": PNG0,
                                                     "digit-0000.cls": b"-1"})},
                     "member 'digit-0000.cls': b'-1' is not a class label"),
    "bad json": ({"train-000001.tar": tar_bytes({"digit-0000.png": PNG0,
                                                 "digit-0000.json": b"{nope"})},
                 "shard 'train-000001.tar': member 'digit-0000.json': not JSON"),
    "a key in two shards": ({"train-000001.tar": tar_bytes({"digit-0010.png": PNG0})},
                            "shards 'train-000000.tar' and 'train-000001.tar' both hold sample "
                            "'digit-0010' (split train)"),
    "an empty shard": ({"train-000001.tar": tar_bytes({})},
                       "shard 'train-000001.tar': holds no WebDataset samples"),
    "a file that is not a tar": ({"README.md": b"# my shards\n"},
                                 "'README.md' is not a shard (a .tar)"),
    "a compressed shard": ({"train-000001.tar.gz": b"\x1f\x8b"},
                           "'train-000001.tar.gz' is a compressed shard: it cannot be read in "
                           "place"),
    "a .tar that is not a tar": ({"train-000001.tar": b"not a tar at all" * 64},
                                 "train-000001.tar: not a readable tar"),
    "a .cls past the classes file": ({"classes.txt": b"a\nb\n"},
                                     "shard 'train-000000.tar': member 'digit-0002.cls': class 2, "
                                     "but classes.txt names 2 (0..1)"),
    "an empty classes file": ({"classes.txt": b"\n\n"}, "classes.txt: no class names"),
    "a class named twice": ({"classes.txt": b"a\nb\na\n"},
                            "classes.txt:3: class 'a' again (first on line 1)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_shards_exit_2_naming_the_shard_and_member(tmp_path, case):
    extra, message = BAD[case]
    shards = write_shards(tmp_path / "shards", {"train-000000.tar": range(0, 20)})
    write_manifest(tmp_path, SOURCE.format(options="", datasets="  []"))
    assert run_cli("source", "set", "shards", str(shards), cwd=tmp_path).returncode == 0
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    for name, data in extra.items():
        (bad / name).write_bytes(data)
    out = run_cli("source", "set", "shards", str(bad), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"source shards ({bad}): " in out.stderr and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    # the refused location is not recorded: the source still reads the good shards
    reg = Registry.open(str(tmp_path))
    assert reg.resolver.locations.load() == {"shards": str(shards)}
    assert len(member_sets(reg.resolver.source_info("shards"))["train"]) == 20


def test_an_empty_shard_inside_a_tar_of_shards_is_named(tmp_path):
    tar = tmp_path / "shards.tar"
    tar.write_bytes(tar_bytes({"train-000000.tar": tar_bytes(GOOD),
                               "train-000001.tar": tar_bytes({})}))
    write_manifest(tmp_path, SOURCE.format(options="", datasets="  []"))
    out = run_cli("source", "set", "shards", str(tar), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "shard 'train-000001.tar': holds no WebDataset samples" in out.stderr, out.stderr


def test_options_image_picks_one_image_of_several(tmp_path):
    tar = tmp_path / "seg.tar"
    tar.write_bytes(tar_bytes({"a.jpg": PNG0, "a.seg.png": b"mask", "a.cls": b"3"}))
    sets = member_sets(project(tmp_path, tar, options="options: {image: seg.png}")
                       .resolver.source_info("shards"))
    [(ref, data)] = list(read_members(list(sets["train"])))
    assert (ref.name, ref.label, data) == ("a.seg.png", "3", b"mask")


def _shard_with_litter() -> bytes:
    """A shard of two samples (image, .cls, .json), with a member no sample takes (an
    .npy) and an empty folder."""
    from ...tarkit import END, member

    return b"".join(member(name, data) for name, data in {
        "digit-0001.png": png(IMAGES[1]), "digit-0001.cls": b"1",
        "digit-0001.json": b'{"row": 1}', "digit-0001.npy": b"\x93NUMPY",
        "digit-0002.png": png(IMAGES[2]), "digit-0002.cls": b"2"}.items()) + \
        member("scratch/", b"", b"5") + END


@pytest.mark.parametrize("shape", ["a tar of shards", "a folder of shards"])
def test_what_a_shard_holds_beside_its_samples_is_named_and_nothing_it_read(tmp_path, shape):
    """The .npy no sample takes and the empty folder are named, each once and alike in
    both shapes, by `source set` and by a `source check` reading its cache; the images,
    .cls and .json members the samples were read from are not (a tar of shards named every
    member of its shards as left out, a folder of shards none of them)."""
    shard = _shard_with_litter()
    if shape == "a tar of shards":
        location = tmp_path / "shards.tar"
        location.write_bytes(tar_bytes({"train-000000.tar": shard}))
    else:
        location = tmp_path / "shards"
        location.mkdir()
        (location / "train-000000.tar").write_bytes(shard)
    write_manifest(tmp_path, SOURCE.format(options="", datasets="  []"))
    out = run_cli("source", "set", "shards", str(location), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    said = [
        "  split train: 2 images, 2 classes",
        "  left out by layout webdataset: 1 file(s) that are not its images (hidden, OS "
        "litter, not an image, or unlisted): train-000000.tar/digit-0001.npy",
        "  left out: 1 empty folder(s) (no file in them, hidden ones aside): "
        "train-000000.tar/scratch/"]
    assert out.stdout.splitlines()[1:4] == said
    again = run_cli("source", "check", "shards", cwd=tmp_path)  # (from the cache)
    assert again.returncode == 0 and again.stdout.splitlines()[1:4] == said, again.stderr


def test_macos_litter_beside_the_shards_of_a_tar_is_left_out_and_named(tmp_path):
    """`._train-000000.tar` (an AppleDouble file a Mac leaves beside a copied shard) is
    no shard: named as left out, as in a folder it is skipped (it was read as a shard and
    refused: "not a readable tar")."""
    tar = tmp_path / "shards.tar"
    tar.write_bytes(tar_bytes({"train-000000.tar": tar_bytes(GOOD),
                               "._train-000000.tar": b"\0\x05\x16\x07Mac OS X" + b"\0" * 60}))
    write_manifest(tmp_path, SOURCE.format(options="", datasets="  []"))
    out = run_cli("source", "set", "shards", str(tar), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:3] == [
        "  split train: 1 images, 1 classes",
        "  left out by layout webdataset: 1 file(s) that are not its images (hidden, OS "
        "litter, not an image, or unlisted): ._train-000000.tar"]


def test_a_deflated_zip_of_samples_gives_their_text_attributes(tmp_path):
    """A `.txt` deflated in a zip is read inflated (it was read as its stored bytes and
    refused: "not UTF-8 text"), giving what the same zip stored plain gives."""
    import zipfile

    got = {}
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        location = tmp_path / f"samples-{method}.zip"
        with zipfile.ZipFile(location, "w", method) as z:
            z.writestr("digit-0001.png", png(IMAGES[1]))
            z.writestr("digit-0001.cls", "1")
            z.writestr("digit-0001.txt", "a caption " * 40)
        reg = project(tmp_path / f"p{method}", location, options="options: {split: train}")
        [member] = member_sets(reg.resolver.source_info("shards"))["train"]
        got[method] = json.loads(member.attrs)
    assert got[zipfile.ZIP_DEFLATED] == got[zipfile.ZIP_STORED] == {"txt": "a caption " * 40}
