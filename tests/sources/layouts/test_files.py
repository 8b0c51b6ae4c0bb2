"""`files`: a tar plus a labels table, on the real UCI digits."""

from __future__ import annotations

import csv
import io
import json

import pytest

from dataset_registry import Registry, SourceError
from dataset_registry.sources.index import member_sets

from ...conftest import write_manifest
from ...realkit import digit_name, digits, png, write_digit_tar

SOURCE = """
sources:
  - name: digits
    layout: files
    {options}
"""


def open_source(tmp_path, location, options=""):
    write_manifest(tmp_path, SOURCE.format(options=options))
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(location))
    return member_sets(reg.resolver.source_info("digits"))


def test_a_tar_and_its_csv_give_labels_and_attributes(tmp_path):
    tar = write_digit_tar(tmp_path / "digits.tar")
    sets = open_source(tmp_path, tar)
    _, labels = digits()
    train = sets["train"]
    assert len(train) == 1797
    refs = {r.name: r for r in train}
    for i in (0, 1, 500, 1796):
        ref = refs[f"images/{digit_name(i)}"]
        assert ref.label == str(labels[i]) and json.loads(ref.attrs) == {"row": str(i)}
    assert train.class_names() == [str(d) for d in range(10)]
    assert [r.name for r in sets["meta"]] == ["metadata.csv"]


def table_folder(tmp_path, rows, name="labels.csv", extra_images=()):
    images, _ = digits()
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / digit_name(i)).write_bytes(png(images[i]))
    for name_ in extra_images:
        (data / name_).write_bytes(png(images[0]))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    (data / name).write_text(text.getvalue())
    return data


def test_a_split_column_makes_splits(tmp_path):
    rows = [["file_name", "label", "split"]] + [
        [digit_name(i), "odd" if i % 2 else "even", "test" if i < 2 else "train"]
        for i in range(6)]
    sets = open_source(tmp_path, table_folder(tmp_path, rows))
    assert len(sets["test"]) == 2 and len(sets["train"]) == 4
    assert sets["train"].class_names() == ["even", "odd"]


@pytest.mark.parametrize("rows, extra, message", [
    ([["file_name", "label"], ["nope.png", "1"]], (), r"labels.csv:2: 'nope.png' is not in the "
                                                     "source"),
    ([["file_name", "label"], [digit_name(0), "1"], [digit_name(0), "2"]], (),
     r"labels.csv:3: 'digit-0000.png' is listed twice"),
    ([["file_name", "label"], [digit_name(0), "1", "extra"]], (),
     r"labels.csv:2: a row with more fields than the header"),
    ([["name", "label"], [digit_name(0), "1"]], (), r"labels.csv:2: no file_name"),
    ([["file_name", "label"], [digit_name(0), "1"]], (),
     r"labels.csv does not list 5 image\(s\) of the source \(first: 'digit-0001.png'\)"),
])
def test_bad_tables_name_the_line(tmp_path, rows, extra, message):
    data = table_folder(tmp_path, rows, extra_images=extra)
    with pytest.raises(SourceError, match=message) as info:
        open_source(tmp_path, data)
    assert str(data) in str(info.value)


def test_no_table_is_a_clear_error(tmp_path):
    images, _ = digits()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.png").write_bytes(png(images[0]))
    with pytest.raises(SourceError, match=r"no labels table: expected labels\.csv or"):
        open_source(tmp_path, tmp_path / "data")


def test_unlisted_images_may_be_ignored_on_purpose(tmp_path):
    rows = [["file_name", "label"], [digit_name(0), "0"]]
    sets = open_source(tmp_path, table_folder(tmp_path, rows),
                       "options: {unlisted: ignore}")
    assert [r.name for r in sets["train"]] == [digit_name(0)]
