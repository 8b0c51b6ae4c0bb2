"""`Registry.diff` on the real UCI digits: two variants differing in a seed, and one dataset
built before and after its source changed (two keys). Every expectation is counted from
the artifacts' files on disk or from the edits made, never from the file tables diff reads."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from dataset_registry import BadInputError, Registry, VerifyError
from dataset_registry.artifact.marker import Marker
from dataset_registry.reports.diff import Side, compare_tables, flatten, record_changes

from ..conftest import write_manifest
from ..realkit import digit_name, digits, png, write_digit_folders

VARIANTS = """
sources:
  - {name: digits, layout: image-folder}
datasets:
  - {name: seed1, recipe: sample, inputs: {images: digits}, params: {seed: 1, n: 300}}
  - {name: seed2, recipe: sample, inputs: {images: digits}, params: {seed: 2, n: 300}}
  - {name: unbuilt, recipe: sample, inputs: {images: digits}, params: {seed: 3, n: 10}}
"""


def variants_project(root: Path) -> Path:
    """A project with seed1 and seed2 built (300 of the 1,797 digits each, drawn with
    seeds 1 and 2) and `unbuilt` not; the source's class folders under root/digits."""
    folders = write_digit_folders(root / "digits")
    project = root / "project"
    write_manifest(project, VARIANTS)
    reg = Registry.open(str(project))
    reg.set_source("digits", str(folders))
    for name in ("seed1", "seed2"):
        reg.resolve(name, jobs=1)
    return project


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> Registry:
    return Registry.open(str(variants_project(tmp_path_factory.mktemp("diff-variants"))))


def members_on_disk(folder: str) -> dict[str, set[str]]:
    """split -> the source members a sample artifact holds, from its files: the image
    `<split>/<class>/<file>` is the image-folder source's member `<class>/<file>`."""
    found: dict[str, set[str]] = {}
    for path in Path(folder).rglob("*.png"):
        split, klass, name = path.relative_to(folder).parts
        found.setdefault(split, set()).add(f"{klass}/{name}")
    return found


def test_two_seeds_differ_in_exactly_the_members_each_drew(variants):
    report = variants.diff("seed1", "seed2", limit=10_000)
    a = members_on_disk(variants.built("seed1").path)
    b = members_on_disk(variants.built("seed2").path)
    assert list(a) == list(b) == ["train"]
    added, removed, kept = b["train"] - a["train"], a["train"] - b["train"], a["train"] & b["train"]
    assert added and kept  # the seeds drew different, overlapping images
    outside, train = report["splits"]
    assert outside == {"split": "*", "rows": {"a": 1, "b": 1}, "added": 0, "removed": 0,
                       "bytes_changed": 0, "label_changed": 0, "unchanged": 1, "classes": [],
                       "listed": {"added": [], "removed": [], "bytes_changed": [],
                                  "label_changed": []}}  # classes.txt: all ten classes both
    assert (train["split"], train["rows"]) == ("train", {"a": 300, "b": 300})
    assert (train["added"], train["removed"], train["unchanged"]) == \
        (len(added), len(removed), len(kept))
    assert train["bytes_changed"] == train["label_changed"] == 0  # byte copies of one source
    assert train["listed"]["added"] == [{"name": n, "path": f"train/{n}"} for n in sorted(added)]
    assert train["listed"]["removed"] == [{"name": n, "path": f"train/{n}"}
                                          for n in sorted(removed)]
    count_a = Counter(n.split("/")[0] for n in a["train"])
    count_b = Counter(n.split("/")[0] for n in b["train"])
    assert train["classes"] == [{"class": c, "a": count_a[c], "b": count_b[c],
                                 "delta": count_b[c] - count_a[c]} for c in sorted(count_a)]
    assert any(c["delta"] for c in train["classes"])
    assert report["params"] == {"seed": {"a": 1, "b": 2}}
    assert (report["recipe"], report["version"], report["inputs"]) == (None, None, {})
    assert report["differ"] is True and report["same"] is False
    assert report["a"]["key"] == variants.key("seed1") != report["b"]["key"]
    assert json.loads(json.dumps(report)) == report  # plain JSON values only


def test_the_limit_bounds_the_names_listed_never_the_counts(variants):
    full = variants.diff("seed1", "seed2", limit=10_000)["splits"][1]
    for limit in (0, 3):
        train = variants.diff("seed1", "seed2", limit=limit)["splits"][1]
        assert {k: v for k, v in train.items() if k != "listed"} == \
            {k: v for k, v in full.items() if k != "listed"}
        for category, names in train["listed"].items():
            assert names == full["listed"][category][:limit]
        assert len(train["listed"]["added"]) == limit


def test_a_diff_of_one_artifact_with_itself_differs_in_nothing(variants):
    key = variants.key("seed1")
    report = variants.diff("seed1", key)
    assert report["same"] is True and report["differ"] is False
    assert report["a"]["key"] == report["b"]["key"] == key
    assert (report["a"]["given"], report["b"]["given"]) == ("seed1", key)
    assert report["splits"] == [] and report["params"] == {}


@pytest.mark.parametrize(("a", "b", "message"), [
    ("seed1", "seed3", "B: no dataset, source or file named 'seed3' in "),
    ("unbuilt", "seed1", "A: unbuilt is not built (key {unbuilt}); run: registry resolve "
                         "unbuilt"),
    ("seed1", "0" * 32, "B: no artifact with key " + "0" * 32 + " in the store "),
    ("digits", "seed1", "A: digits is a source, not a dataset; diff compares built "
                        "datasets"),
])
def test_what_cannot_be_compared_says_which_and_why(variants, a, b, message):
    with pytest.raises(BadInputError) as caught:
        variants.diff(a, b)
    assert message.format(unbuilt=variants.key("unbuilt")) in str(caught.value)
    assert variants.status("unbuilt") == "missing"  # nothing was built


def test_a_negative_limit_is_refused(variants):
    with pytest.raises(BadInputError, match=r"--limit -1: give how many names to list"):
        variants.diff("seed1", "seed2", limit=-1)


# -- one dataset, its source changed ---------------------------------------------------------

EVERYTHING = """
sources:
  - {name: digits, layout: files}
datasets:
  - name: all
    recipe: sample
    inputs: {images: digits}
    params: {per_class: 1000, short_classes: keep}
"""

RELABELLED, REDRAWN, DROPPED = (5, 6, 7), (10, 11), 12  # digit indexes the edit touches
EXTRA = "images/extra-0000.png"


def digit_tar(path: Path, *, edited: bool) -> Path:
    """The digits as `files` reads them (a tar of images/digit-NNNN.png and metadata.csv);
    `edited`: RELABELLED get the next digit's label, REDRAWN one pixel flipped (new
    bytes), DROPPED left out, EXTRA (digit 13's pixels, label 4) added."""
    images, labels = digits()
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file_name", "label"])
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            if edited and i == DROPPED:
                continue
            if edited and i in REDRAWN:
                pixels = pixels.copy()
                pixels[0, 0] = 255 - pixels[0, 0]
            if edited and i in RELABELLED:
                label = (label + 1) % 10
            add(f"images/{digit_name(i)}", png(pixels))
            writer.writerow([f"images/{digit_name(i)}", int(label)])
        if edited:
            add(EXTRA, png(images[13]))
            writer.writerow([EXTRA, 4])
        add("metadata.csv", rows.getvalue().encode())
    return path


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> tuple[Registry, str]:
    """`all` (every digit, copied) built from the tar, then again after the source was
    replaced by its edited copy: (the registry, the first build's key)."""
    root = tmp_path_factory.mktemp("diff-rebuilt")
    write_manifest(root, EVERYTHING)
    reg = Registry.open(str(root))
    reg.set_source("digits", str(digit_tar(root / "before.tar", edited=False)))
    before = reg.resolve("all", jobs=1).key
    reg = Registry.open(str(root))
    reg.set_source("digits", str(digit_tar(root / "after.tar", edited=True)))
    reg = Registry.open(str(root))
    reg.resolve("all", jobs=1)
    return reg, before


def test_a_source_edit_shows_as_exactly_the_members_it_touched(rebuilt):
    reg, before = rebuilt
    report = reg.diff(before, "all")
    assert report["a"]["key"] == before != report["b"]["key"] == reg.key("all")
    assert report["a"]["name"] == report["b"]["name"] == "all"
    _, labels = digits()
    outside, train = report["splits"]
    assert (outside["split"], outside["unchanged"], outside["rows"]) == ("*", 1, {"a": 1, "b": 1})
    assert train["rows"] == {"a": 1797, "b": 1797}
    assert (train["added"], train["removed"], train["bytes_changed"],
            train["label_changed"], train["unchanged"]) == (1, 1, 2, 3, 1797 - 1 - 2 - 3)
    listed = train["listed"]
    assert listed["added"] == [{"name": EXTRA, "path": "train/4/extra-0000.png"}]
    dropped = f"images/{digit_name(DROPPED)}"
    assert listed["removed"] == [{"name": dropped,
                                  "path": f"train/{labels[DROPPED]}/{digit_name(DROPPED)}"}]
    assert [e["name"] for e in listed["bytes_changed"]] == \
        [f"images/{digit_name(i)}" for i in REDRAWN]
    for entry in listed["bytes_changed"]:
        assert entry["a"]["xxh3"] != entry["b"]["xxh3"]
        assert entry["a"]["path"] == entry["b"]["path"]
    assert listed["label_changed"] == [
        {"name": f"images/{digit_name(i)}",
         "a": {"label": int(labels[i]), "class": str(labels[i])},
         "b": {"label": int((labels[i] + 1) % 10), "class": str((labels[i] + 1) % 10)}}
        for i in RELABELLED]
    # class counts: the edits' own arithmetic
    delta = Counter()
    for i in RELABELLED:
        delta[str(labels[i])] -= 1
        delta[str((labels[i] + 1) % 10)] += 1
    delta[str(labels[DROPPED])] -= 1
    delta["4"] += 1
    count = Counter(str(v) for v in labels)
    assert train["classes"] == [{"class": c, "a": count[c], "b": count[c] + delta[c],
                                 "delta": delta[c]} for c in sorted(count)]
    assert report["params"] == {} and report["recipe"] is None
    (role, refs), = report["inputs"].items()
    assert role == "images" and refs["a"]["name"] == refs["b"]["name"] == "digits"
    assert refs["a"]["kind"] == "source" and refs["a"]["key"] != refs["b"]["key"]


def test_swapping_a_and_b_swaps_added_and_removed(rebuilt):
    reg, before = rebuilt
    there, back = reg.diff(before, "all")["splits"][1], reg.diff("all", before)["splits"][1]
    assert (back["added"], back["removed"]) == (there["removed"], there["added"])
    assert back["listed"]["added"] == there["listed"]["removed"]
    assert [c["delta"] for c in back["classes"]] == [-c["delta"] for c in there["classes"]]


def test_a_damaged_file_table_is_named_with_its_repair(tmp_path):
    project = variants_project(tmp_path)
    reg = Registry.open(str(project))
    key = reg.key("seed2")
    table = Path(reg.built("seed2").path) / "_files.parquet"
    table.write_bytes(table.read_bytes()[:100])
    for given, repair in (("seed2", "seed2"), (key, f"NAME (the dataset built as key {key})")):
        with pytest.raises(VerifyError) as caught:
            reg.diff("seed1", given)
        message = str(caught.value)
        assert message.startswith(f"B: {table}: unreadable as a file table (truncated"), message
        assert message.endswith(f"repair it with: registry resolve --repair {repair}"), message


# -- the table comparison alone --------------------------------------------------------------

def _table(path: Path, rows: list[tuple], *, with_class: bool = True) -> Side:
    """A file table of (path, member, xxh3, label[, class]) rows, as a Side."""
    con = duckdb.connect()
    klass = ", class VARCHAR" if with_class else ""
    con.execute(f"CREATE TABLE t (path VARCHAR, member VARCHAR, xxh3 VARCHAR, label INTEGER"
                f"{klass}, size BIGINT, record BIGINT)")
    for row in rows:
        con.execute(f"INSERT INTO t VALUES (?, ?, ?, ?{', ?' if with_class else ''}, 1, NULL)",
                    list(row))
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    con.close()
    marker = Marker(key=path.stem, digest="", files=len(rows), bytes=len(rows), skipped=0,
                    splits=("train",))
    return Side(path.stem, path.stem, path.stem, marker, str(path))


def test_a_member_written_twice_pairs_copy_with_copy(tmp_path):
    a = _table(tmp_path / "a.parquet", [("train/x1", "x", "h1", 0, "c"),
                                        ("train/x2", "x", "h2", 0, "c")])
    b = _table(tmp_path / "b.parquet", [("train/x1", "x", "h1", 0, "c")])
    train, = compare_tables(a, b, 5)
    assert (train["removed"], train["unchanged"], train["rows"]) == (1, 1, {"a": 2, "b": 1})
    assert train["listed"]["removed"] == [{"name": "x", "path": "train/x2"}]


def test_tables_without_class_names_count_classes_by_label(tmp_path):
    a = _table(tmp_path / "a.parquet", [("train/1", "m1", "h", 3), ("train/2", "m2", "h", 3)],
               with_class=False)
    b = _table(tmp_path / "b.parquet", [("train/1", "m1", "h", 3), ("train/2", "m2", "h", 4)],
               with_class=False)
    train, = compare_tables(a, b, 5)
    assert train["label_changed"] == 1
    assert train["listed"]["label_changed"] == [
        {"name": "m2", "a": {"label": 3, "class": None}, "b": {"label": 4, "class": None}}]
    assert train["classes"] == [{"class": "3", "a": 2, "b": 1, "delta": -1},
                                {"class": "4", "a": 0, "b": 1, "delta": 1}]


def test_rows_outside_the_declared_splits_are_split_star(tmp_path):
    rows = [("train/a.png", "a", "h", 0, "c"), ("classes.txt", None, "h", None, None),
            ("other/b.png", "b", "h", 0, "c")]
    a = _table(tmp_path / "a.parquet", rows)
    splits = compare_tables(a, _table(tmp_path / "b.parquet", rows), 5)
    assert [(s["split"], s["rows"]["a"], s["unchanged"]) for s in splits] == \
        [("*", 2, 2), ("train", 1, 1)]


def test_params_are_compared_flattened_as_json_values():
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": {}}) == \
        {"a.b": 1, "a.c.d": [1], "e": {}}
    a = Marker(key="a", digest="", files=0, bytes=0, skipped=0,
               params={"n": 1, "x": True, "splits": None, "same": "s"})
    b = Marker(key="b", digest="", files=0, bytes=0, skipped=0,
               params={"n": 1.0, "x": 1, "splits": {"train": 1.0}, "same": "s"})
    assert record_changes(a, b)["params"] == {
        "n": {"a": 1, "b": 1.0}, "splits.train": {"a": None, "b": 1.0},
        "x": {"a": True, "b": 1}}

