"""Bad input to the select/calibration recipes: named clearly, nothing half-written."""

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import BadImageError, BadInputError, Registry

from ..conftest import LABELS, make_tar, write_manifest


def jpeg(color=(200, 30, 30), size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def setup(tmp_path: Path, members: dict[str, bytes], params: str = "", lst: str | None = None,
          recipe: str = "calibration") -> Registry:
    tar = make_tar(tmp_path / "val.tar", members)
    list_input = ", list: list.txt" if lst is not None else ""
    labels_input = ", labels: labels" if recipe == "calibration" else ""
    write_manifest(tmp_path, f"""
sources:
  - {{name: val, layout: imagenet-val}}
files:
  - {{name: labels, path: {LABELS}}}
datasets:
  - name: cal
    recipe: {recipe}
    inputs: {{images: val{labels_input}{list_input}}}
    params: {{{params}}}
""")
    if lst is not None:
        (tmp_path / "manifests" / "list.txt").write_text(lst)
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", str(tar))
    return reg


def name(i: int) -> str:
    return f"ILSVRC2012_val_{i:08d}.JPEG"


def assert_nothing_published(reg: Registry) -> None:
    assert list(reg.store.committed()) == []
    staging = os.path.join(reg.store_url, ".staging")
    assert not os.path.exists(staging) or os.listdir(staging) == []


def test_truncated_jpeg_fails_the_build_naming_the_member(tmp_path):
    good = jpeg()
    reg = setup(tmp_path, {name(1): good, name(2): good[: len(good) // 2], name(3): good})
    with pytest.raises(BadImageError, match=rf"{name(2)} \(source [0-9a-f]{{12}}\): corrupt or "
                                            r"truncated image"):
        reg.resolve("cal", jobs=1)
    assert_nothing_published(reg)


def test_on_error_skip_builds_and_records_the_skip(tmp_path):
    good = jpeg()
    reg = setup(tmp_path, {name(1): good, name(2): b"not an image at all", name(3): good},
                params="on_error: skip")
    ds = reg.resolve("cal", jobs=1)
    assert ds.marker.skipped == 1
    assert sorted(os.listdir(ds.path)) == sorted(
        [name(1), name(3), "val_map.txt", "_files.parquet", "_registry.json", "_skipped.parquet"])
    assert (Path(ds.path) / "val_map.txt").read_text() == f"{name(1)} 65\n{name(3)} 230\n"
    rows = reg.sql("SELECT member, reason FROM skipped").rows
    assert len(rows) == 1 and rows[0][0] == name(2) and "cannot identify image" in rows[0][1]


def test_grayscale_and_cmyk_jpegs_are_kept(tmp_path):
    buf = io.BytesIO()
    Image.new("CMYK", (40, 30), (10, 20, 30, 40)).save(buf, "JPEG")
    members = {name(1): jpeg(mode="L"), name(2): buf.getvalue()}
    ds = setup(tmp_path, members).resolve("cal", jobs=1)
    for n, data in members.items():
        assert (Path(ds.path) / n).read_bytes() == data


def test_decompression_bomb_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")  # 400 Mpixel, a few kB on disk
    reg = setup(tmp_path, {name(1): jpeg(), name(2): buf.getvalue()})
    with pytest.raises(BadImageError, match=rf"{name(2)} .*refused: .*decompression bomb"):
        reg.resolve("cal", jobs=1)
    assert_nothing_published(reg)


def test_list_naming_a_missing_image_names_the_line(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, lst=f"{name(1)}\n{name(7)}\n")
    with pytest.raises(BadInputError, match=rf"list.txt:2: {name(7)} is not in source val"):
        reg.resolve("cal", jobs=1)
    assert_nothing_published(reg)


def test_list_label_disagreeing_with_ground_truth(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, lst=f"{name(1)} 3\n")
    with pytest.raises(BadInputError, match=rf"list.txt:1: {name(1)} is labelled 3, but the "
                                            r"ground truth says 65"):
        reg.resolve("cal", jobs=1)


def test_check_labels_false_keeps_the_lists_label(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, lst=f"{name(1)} 3\n", params="check_labels: false")
    assert (Path(reg.resolve("cal").path) / "val_map.txt").read_text() == f"{name(1)} 3\n"


def test_sorted1_labels_are_shifted(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, params="labels: sorted1")
    assert (Path(reg.resolve("cal").path) / "val_map.txt").read_text() == f"{name(1)} 66\n"


def test_malformed_list_line(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, lst=f"{name(1)} cat dog\n")
    with pytest.raises(BadInputError, match=r"list.txt:1: expected '<file name> \[<label>\]'"):
        reg.resolve("cal")


def test_first_beyond_the_source(tmp_path):
    reg = setup(tmp_path, {name(1): jpeg()}, params="first: 5", recipe="select")
    with pytest.raises(BadInputError, match="first: 5 asked for, but it holds only 1 images"):
        reg.resolve("cal")


# -- any labelled source: the real UCI digits ------------------------------------------------

DIGITS = """
sources:
  - {name: digits, layout: image-folder}
  - {name: table, layout: files}
datasets:
  - {name: first, recipe: select, inputs: {images: digits},
     params: {split: train, first: 5, folders: true}}
  - {name: first-flat, recipe: select, inputs: {images: digits}, params: {split: train, first: 5}}
  - {name: listed, recipe: select, inputs: {images: digits, list: list.txt},
     params: {split: train, folders: true}}
  - {name: from-table, recipe: select, inputs: {images: table},
     params: {split: train, first: 3, folders: true}}
  - {name: listed-flat, recipe: select, inputs: {images: digits, list: list.txt},
     params: {split: train}}
  - {name: no-val, recipe: select, inputs: {images: digits}, params: {first: 5}}
"""


def digit_registry(tmp_path: Path, lst: str = "0/digit-0000.png\n") -> Registry:
    from ..realkit import write_digit_folders, write_digit_tar

    write_manifest(tmp_path, DIGITS)
    (tmp_path / "manifests" / "list.txt").write_text(lst)
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(write_digit_folders(tmp_path / "data")))
    reg.set_source("table", str(write_digit_tar(tmp_path / "digits.tar")))
    return reg


def test_first_of_a_class_folder_source_keeps_class_folders_and_classes(tmp_path):
    from ..realkit import digit_name, digits

    reg = digit_registry(tmp_path)
    ds = reg.resolve("first", jobs=1)
    _, labels = digits()
    names = sorted(f"{label}/{digit_name(i)}" for i, label in enumerate(labels))[:5]
    rows = ds.files().select("path, class, member").fetchall()
    assert rows == [(n, n.split("/")[0], n) for n in names]
    for n in names:
        assert (Path(ds.path) / n).read_bytes() == (tmp_path / "data" / n).read_bytes()


def test_without_folders_select_writes_one_flat_folder_as_version_1_did(tmp_path):
    from ..realkit import digit_name, digits

    reg = digit_registry(tmp_path)
    _, labels = digits()
    names = sorted(f"{label}/{digit_name(i)}" for i, label in enumerate(labels))[:5]
    rows = reg.resolve("first-flat", jobs=1).files().select("path, class").fetchall()
    assert rows == sorted((n.split("/")[1], n.split("/")[0]) for n in names)


def test_two_images_of_one_base_name_keep_their_whole_names(tmp_path):
    """A flat folder cannot hold `a/x.png` and `b/x.png`: both keep their whole names
    (recipes/naming.py), as `folders: true` writes them."""
    from ..realkit import digits, png

    images, _ = digits()
    for i, label in enumerate(("a", "b")):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "x.png").write_bytes(png(images[i]))
    write_manifest(tmp_path, DIGITS)
    (tmp_path / "manifests" / "list.txt").write_text("a/x.png\nb/x.png\n")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(tmp_path / "data"))
    ds = reg.resolve("listed-flat", jobs=1)
    assert sorted(ds.files().project("path, class").fetchall()) == [("a/x.png", "a"),
                                                                    ("b/x.png", "b")]
    assert (Path(ds.path) / "b" / "x.png").read_bytes() == png(images[1])


def test_a_list_of_relative_names_and_a_tables_attrs(tmp_path):
    from ..realkit import digit_name, digits

    _, labels = digits()
    wanted = [f"{labels[i]}/{digit_name(i)}" for i in (1796, 3, 500)]
    reg = digit_registry(tmp_path, "\n".join(wanted) + "\n")
    ds = reg.resolve("listed", jobs=1)
    assert sorted(p for p, in ds.files().select("path").fetchall()) == sorted(wanted)
    table = reg.resolve("from-table", jobs=1)
    rows = table.files().select("path, class, attrs").fetchall()
    assert rows == [(f"images/{digit_name(i)}", str(labels[i]), f'{{"row":"{i}"}}')
                    for i in range(3)]


def test_a_split_the_source_lacks_is_named_with_those_it_has(tmp_path):
    reg = digit_registry(tmp_path)
    with pytest.raises(BadInputError, match=r"test.yaml:\d+: no-val: input 'images' \(source "
                                            r"digits .*\) has no split 'val' \(it has: train\)"):
        reg.resolve("no-val")
    assert_nothing_published(reg)


def test_a_select_names_a_list_entry_missing_from_a_generic_split(tmp_path):
    reg = digit_registry(tmp_path, "3/digit-0003.png\nnope/x.png\n")
    with pytest.raises(BadInputError, match=r"list.txt:2: nope/x.png is not in source digits"):
        reg.resolve("listed")
    assert_nothing_published(reg)


def test_an_empty_split_says_it_is_empty():
    """A split declared with no images (an artifact built before empty splits were refused)
    is named as empty, not built from as nothing."""
    from dataset_registry.recipes.select import pick_split
    from dataset_registry.sources.members import MemberSet

    empty = MemberSet.from_refs("val", "dataset old (/store/ab/abc)", [], "/store/ab/abc/val")
    with pytest.raises(BadInputError, match=r"input 'images' \(dataset old \(/store/ab/abc\)\): "
                                            r"split 'val' is empty: it holds no images"):
        pick_split({"*": empty, "val": empty}, "val", "images")


def _whole_source_select(tmp_path: Path, params: dict) -> tuple:
    """A select of all of a 5,000-member image-folder tar (more than a batch of refs, 4,096):
    the node's params, its inputs and the set."""
    from dataset_registry.recipes.select import pick_split
    from dataset_registry.testing.sources import open_project, write_tar

    tar = write_tar(tmp_path / "images.tar",
                    {f"c{k % 7}/{k:05d}.jpg": b"x" for k in range(5000)})
    reg = open_project(tmp_path / "project", {"images": tar}, [
        {"name": "all", "recipe": "select", "inputs": {"images": "images"},
         "params": {"split": "train", "validate_images": False, **params}}])
    node = reg.manifests.get("all")
    inputs, _, _ = reg.resolver.inputs(node, {})
    return node.params, inputs, pick_split(inputs.images["images"], "train", "images")


@pytest.mark.parametrize("params", [{}, {"folders": True}, {"first": 4097}])
def test_a_whole_source_plans_each_image_as_its_lookup_by_name(tmp_path, params):
    """The refs made a batch at a time are those a lookup by name gives, past a batch's
    end, with the output path its base name (or whole name with folders: true)."""
    from dataset_registry.recipes.select import Select

    params, inputs, images = _whole_source_select(tmp_path, params)
    planned = [item for task in Select.plan(params, inputs) for item in task]
    names = images.names.tolist()[:params.first or None]
    assert [ref for ref, _, _ in planned] == [images.get(name) for name in names]
    assert [path for _, _, path in planned] == \
        (names if params.folders else [name.split("/")[1] for name in names])


def test_entries_of_a_subclass_own_are_planned_by_their_names(tmp_path):
    """A subclass whose entries are not the set's first names (its last two here): each is
    planned as itself, not as the set's member at its position."""
    from dataset_registry.recipes.select import Entry, Select

    class LastTwo(Select):
        @classmethod
        def entries(cls, params, inputs, images):
            return [Entry(name, None, "last two") for name in images.names.tolist()[-2:]]

    params, inputs, images = _whole_source_select(tmp_path, {})
    planned = [item for task in LastTwo.plan(params, inputs) for item in task]
    last = images.names.tolist()[-2:]
    assert [(ref, path) for ref, _, path in planned] == \
        [(images.get(name), name.split("/")[1]) for name in last]
    assert [ref.name for ref, _, _ in planned] == last
