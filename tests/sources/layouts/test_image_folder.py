"""`image-folder` on real data: the UCI digits as class folders, as a user brings them."""

from __future__ import annotations

from collections import Counter

import pytest

from dataset_registry import Registry, SourceError
from dataset_registry.sources.index import member_sets

from ...conftest import write_manifest
from ...realkit import digit_name, digits, png, write_digit_folders

SOURCE = """
sources:
  - name: digits
    layout: image-folder
    {options}
"""


def open_source(tmp_path, location, options=""):
    write_manifest(tmp_path, SOURCE.format(options=options))
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(location))
    return reg, member_sets(reg.resolver.source_info("digits"))


def test_class_folders_give_every_digit_its_label(tmp_path):
    folders = write_digit_folders(tmp_path / "data")
    _, sets = open_source(tmp_path, folders)
    assert list(sets) == ["train"]
    train = sets["train"]
    _, labels = digits()
    assert len(train) == 1797
    want = {f"{label}/{digit_name(i)}": str(label) for i, label in enumerate(labels)}
    got = {ref.name: ref.label for ref in train}
    assert got == want
    assert Counter(got.values()) == Counter(str(v) for v in labels)
    assert train.class_names() == [str(d) for d in range(10)]


def test_split_folders_and_litter(tmp_path):
    images, labels = digits()
    for i in range(40):
        split = "test" if i % 4 == 0 else "train"
        folder = tmp_path / "data" / split / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / digit_name(i)).write_bytes(png(images[i]))
    (tmp_path / "data" / "train" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "data" / "train" / str(labels[1]) / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "data" / "README.txt").write_text("not an image\n")
    _, sets = open_source(tmp_path, tmp_path / "data")
    assert sorted(sets) == ["test", "train"]
    assert len(sets["test"]) == 10 and len(sets["train"]) == 30
    assert {r.label for r in sets["test"]} == {str(labels[i]) for i in range(0, 40, 4)}


def test_metadata_jsonl_labels_and_attributes(tmp_path):
    images, labels = digits()
    data = tmp_path / "data" / "all"
    data.mkdir(parents=True)
    lines = []
    for i in range(12):
        (data / digit_name(i)).write_bytes(png(images[i]))
        lines.append(f'{{"file_name": "all/{digit_name(i)}", "label": {int(labels[i])}, '
                     f'"row": {i}}}')
    (tmp_path / "data" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    _, sets = open_source(tmp_path, tmp_path / "data")
    refs = list(sets["train"])
    assert [r.label for r in refs] == [str(labels[i]) for i in range(12)]
    assert refs[3].attrs == '{"row":3}'
    assert [r.name for r in sets["meta"]] == ["metadata.jsonl"]


def test_mixed_depths_are_refused_naming_a_member(tmp_path):
    images, _ = digits()
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "x.png").write_bytes(png(images[0]))
    (tmp_path / "data" / "train" / "b").mkdir(parents=True)
    (tmp_path / "data" / "train" / "b" / "y.png").write_bytes(png(images[1]))
    with pytest.raises(SourceError, match=r"member 'a/x.png' is not <split>/<class>/<image>|"
                                          r"member 'train/b/y.png' is not <class>/<image>"):
        open_source(tmp_path, tmp_path / "data")


def test_options_are_checked_at_the_manifest_line(tmp_path):
    from dataset_registry import ManifestError
    from dataset_registry.manifest import load_manifests

    write_manifest(tmp_path, SOURCE.format(options="options: {colour: red}"))
    with pytest.raises(ManifestError, match=r"test.yaml:\d+: sources\[0\]\.options\.colour: "
                                            "unknown field"):
        load_manifests(str(tmp_path / "manifests"))
    write_manifest(tmp_path, SOURCE.format(options="").replace("image-folder", "nope"))
    with pytest.raises(ManifestError, match=r"sources\[0\]\.layout: unknown layout 'nope' "
                                            r"\(registered: files, image-folder, imagenet"):
        load_manifests(str(tmp_path / "manifests"))


def test_the_layout_and_its_options_enter_the_fingerprint(tmp_path):
    folders = write_digit_folders(tmp_path / "data")
    reg, _ = open_source(tmp_path, folders)
    plain = reg.key("digits")
    reg2, _ = open_source(tmp_path / "other", folders, "options: {split: all}")
    assert reg2.key("digits") != plain
    assert list(member_sets(reg2.resolver.source_info("digits"))) == ["all"]


def test_an_image_name_is_the_extension_posixpath_splitext_gives():
    """is_image_name reads a million names a source: without splitext, the same answer."""
    import itertools
    import posixpath

    from dataset_registry.sources.layouts import IMAGE_EXTENSIONS, is_image_name

    parts = ["", ".", "..", "a", "a.", ".a", "cat", "x.JPG", "x.jpeg", "..jpg", ".jpg",
             "a..png", "b.tar.gz", "c.Tiff", "d.jpg.", "é.webp", "dir.jpg/", "jpg"]
    names = {"/".join(p) for p in itertools.product(parts, repeat=2)} | set(parts)
    for name in sorted(names):
        assert is_image_name(name) == \
            (posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS), name
    assert is_image_name("n01440764/x.JPEG") and not is_image_name("a/.jpg")


def test_a_kept_image_file_is_one_neither_ignored_nor_not_an_image():
    """kept_image_file asks both of a file's own name at once (a folder's known members):
    the same answer as the two rules, Unicode whose lower case is longer included."""
    import itertools

    from dataset_registry.sources.layouts import ignored_name, is_image_name, kept_image_file

    parts = ["", ".", "a", "x.JPG", ".jpg", "jpeg", ".PNG", "Thumbs.db", "DESKTOP.INI",
             "__MACOSX", "İ", "ﬁ", "ß.", "tiff", ".", "webp"]
    names = {"".join(p) for p in itertools.product(parts, repeat=3)}
    for name in sorted(n for n in names if n):
        assert kept_image_file(name) == (not ignored_name(name) and is_image_name(name)), name
    assert kept_image_file("n01440764_10026.JPEG") and not kept_image_file("._x.jpg")


def _survey_by_definition(paths):
    """ImageFolder.survey as the layout defines it, a name at a time."""
    from dataset_registry.sources.layouts import ignored_below, is_image_name
    from dataset_registry.sources.layouts.image_folder import METADATA

    found, folders = {}, {}
    for path in paths:
        if ignored_below(path, folders):
            continue
        folder, _, name = path.rpartition("/")
        if name in METADATA:
            found[folder] = True
        elif is_image_name(name):
            found.setdefault(folder, False)
    return found


def test_the_survey_of_a_folders_names_after_its_first_image_finds_what_each_name_would():
    """survey skips the names after a folder's first image but a table's: the same folders,
    the same tables, as looking at every name, over names of every kind in any order."""
    import random

    from dataset_registry.sources.layouts.image_folder import ImageFolder

    folders = ["", "a", "a/b", "a/bb", "ab", ".hidden", "a/.git", "__MACOSX/a", "train/cat",
               "train/cat/x", "x/metadata.csv"]
    names = ["0.jpg", "1.JPEG", "2.png", "notes.txt", "metadata.csv", "metadata.jsonl",
             ".metadata.csv", "Metadata.csv", "metadata.csv.bak", ".DS_Store", "Thumbs.db",
             ".jpg", "..jpg", "a.b.webp", "noext", "3.jpg/"]
    layout = ImageFolder()
    rng = random.Random(19)
    for trial in range(400):
        paths = [f"{f}/{n}" if f else n for f in rng.sample(folders, rng.randint(1, 5))
                 for n in rng.choices(names, k=rng.randint(1, 8))]
        if trial % 2:
            rng.shuffle(paths)  # (folders interleaved, not one after another)
        assert layout.survey(paths) == _survey_by_definition(paths), paths
