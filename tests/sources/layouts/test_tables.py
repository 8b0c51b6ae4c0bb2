"""Names, labels and tables: what a layout reads from a user's labels table or folder
names is refused at `registry source set`, naming the member or line and what is wrong
(exit 2), with the previous, working location kept; never late in a build, never a
traceback, never minutes of parsing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from dataset_registry import Registry
from dataset_registry.sources.index import member_sets

from ...conftest import make_tar, run_cli, write_manifest
from ...realkit import digits, png

IMAGES, _ = digits()


def project(root: Path, layout: str = "files", options: str = "") -> Path:
    write_manifest(root, f"""
sources:
  - name: mine
    layout: {layout}
    {options}
datasets:
  - {{name: shards, recipe: webdataset, inputs: {{images: mine}}}}
""")
    good = root / "good.tar"
    if layout == "webdataset":
        make_tar(good, {"s0.png": png(IMAGES[0]), "s0.cls": b"0"})
    else:
        folders = layout == "image-folder"
        make_tar(good, {"cat/a.png" if folders else "a.png": png(IMAGES[0]),
                        "dog/b.png" if folders else "b.png": png(IMAGES[1]),
                        "labels.csv": b"file_name,label\na.png,cat\nb.png,dog\n"})
    assert run_cli("source", "set", "mine", str(good), cwd=root).returncode == 0
    return good


def refused(root: Path, location: Path, *expected: str) -> str:
    """`source set` of `location` fails with exit 2 and one line holding `expected`; the
    working location stays set."""
    started = time.monotonic()
    out = run_cli("source", "set", "mine", str(location), cwd=root)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, \
        out.stderr
    for text in expected:
        assert text in out.stderr, out.stderr
    assert time.monotonic() - started < 30
    state = json.loads((root / ".registry-state" / "sources.json").read_text())
    assert state["mine"] == str(root / "good.tar")
    return out.stderr


def table_tar(root: Path, table: str, data: bytes, names=("a.png", "b.png")) -> Path:
    path = root / "bad.tar"
    make_tar(path, {**{n: png(IMAGES[i]) for i, n in enumerate(names)}, table: data})
    return path


@pytest.mark.parametrize(("name", "why"), [
    ("ca\tt", "class name 'ca\\tt' holds a tab"),
    ("do\ng", "line break"),
    ("x" * 300, "is 300 bytes, more than 255"),
])
def test_a_class_name_that_cannot_be_a_folder_or_a_field(tmp_path, name, why):
    project(tmp_path)
    csv = f'file_name,label\na.png,"{name}"\nb.png,dog\n'.encode()
    # (a quoted line break ends the row on line 3: the CSV reader counts where it ends)
    line = 3 if "\n" in name else 2
    refused(tmp_path, table_tar(tmp_path, "labels.csv", csv), f"labels.csv:{line}: label", why)


def test_a_class_folder_holding_a_tab_is_refused_naming_the_member(tmp_path):
    project(tmp_path, "image-folder")
    bad = tmp_path / "bad.tar"
    make_tar(bad, {"ca\tt/a.png": png(IMAGES[0]), "dog/b.png": png(IMAGES[1])})
    refused(tmp_path, bad, "member 'ca\\tt/a.png'", "holds a tab")


@pytest.mark.parametrize("split", ["..", "meta", ".hidden", "*", "a\tb"])
def test_a_split_column_value_that_is_not_a_split_name(tmp_path, split):
    project(tmp_path)
    csv = f'file_name,label,split\na.png,cat,"{split}"\nb.png,dog,train\n'.encode()
    refused(tmp_path, table_tar(tmp_path, "labels.csv", csv), "labels.csv:2: split")


@pytest.mark.parametrize(("value", "why"), [
    ('{"a": 1}', 'label is {"a": 1}: a label is a class name (text) or a whole number'),
    ("true", "label is true: a label is a class name"),
    ("2.5", "label is 2.5: a label is a class name"),
])
def test_a_label_that_is_neither_a_name_nor_a_whole_number(tmp_path, value, why):
    project(tmp_path)
    rows = f'{{"file_name": "a.png", "label": {value}}}\n{{"file_name": "b.png", "label": 1}}\n'
    refused(tmp_path, table_tar(tmp_path, "labels.jsonl", rows.encode()),
            "labels.jsonl:1: ", why)


def test_labels_mixing_numbers_and_names_are_refused(tmp_path):
    project(tmp_path)
    rows = b'{"file_name": "a.png", "label": 3}\n{"file_name": "b.png", "label": "dog"}\n'
    refused(tmp_path, table_tar(tmp_path, "labels.jsonl", rows), "labels.jsonl:2: label",
            "mixes whole numbers and class names")


@pytest.mark.parametrize(("table", "rows", "where"), [
    ("labels.csv", b"file_name,label\na.png,3\nb.png,2.5\n", "labels.csv:3: label: '2.5'"),
    ("labels.csv", b"file_name,label\na.png,-1\nb.png,0\n", "labels.csv:2: label: '-1'"),
    ("labels.csv", b"file_name,label\na.png,1e3\nb.png,7\n", "labels.csv:2: label: '1e3'"),
    ("labels.csv", b"file_name,label\na.png,3\nb.png,1000000\n",
     "labels.csv:3: label: '1000000'"),
    ("labels.jsonl", b'{"file_name": "a.png", "label": 0}\n'
                     b'{"file_name": "b.png", "label": -1}\n', "labels.jsonl:2: label: '-1'"),
])
def test_a_stray_number_among_class_indices_is_said(tmp_path, table, rows, where):
    """Such a column is class names, sorted as text, as it always was (its keys depend on
    it), which renumbers every class ('3' after '2.5', '0' after '-1'): said, naming the
    line, never silent."""
    project(tmp_path)
    out = run_cli("source", "set", "mine", str(table_tar(tmp_path, table, rows)),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"note: {where} is a number but not a class index (a whole number from 0 to " \
           "999,999) as other labels of the column are" in out.stderr, out.stderr
    assert out.stderr.count("note: ") == 1


@pytest.mark.parametrize("labels", [("07", "10"), ("n01", "n02"), ("3.0", "2.5"),
                                    ("1000000", "2000000")])
def test_number_like_class_names_are_not_said(tmp_path, labels):
    """Zero-padded codes, words, and numbers none of which is a class index are class
    names with nothing to say."""
    project(tmp_path)
    rows = "file_name,label\n" + "".join(f"{n},{v}\n" for n, v in
                                          zip(("a.png", "b.png"), labels, strict=True))
    tar = table_tar(tmp_path, "labels.csv", rows.encode())
    out = run_cli("source", "set", "mine", str(tar), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 classes" in out.stdout, out.stdout
    assert "note:" not in out.stderr  # (nothing to say: no class index beside a stray)


def test_a_quote_left_open_is_named_where_its_row_starts(tmp_path):
    project(tmp_path)
    rows = b'file_name,label,split\na.png,cat,train\nb.png,"dog,train\nc.png,cow,train\n'
    refused(tmp_path, table_tar(tmp_path, "labels.csv", rows),
            "labels.csv:3: a row with fewer fields than the header (it runs to the end, line "
            "4: a quote left open?)")
    # a row over two lines, not to the end: named where it starts, no guess at a quote
    rows = b'file_name,label,split\na.png,"ca\nt",train,x\nb.png,dog,train\n'
    message = refused(tmp_path, table_tar(tmp_path, "labels.csv", rows),
                      "labels.csv:2: a row with more fields than the header")
    assert "left open" not in message


def test_a_huge_table_is_refused_before_it_is_read(tmp_path):
    """A 300 MiB labels table (sparse on disk) is refused by its size, in well under a
    second of parsing and without reading it into memory."""
    project(tmp_path, "image-folder")
    folder = tmp_path / "bad"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(png(IMAGES[0]))
    with open(folder / "metadata.csv", "wb") as f:
        f.truncate(300 << 20)
    refused(tmp_path, folder, "metadata.csv: 314,572,800 bytes, more than the 268,435,456")


def test_a_one_line_table_with_a_huge_cell_is_refused(tmp_path):
    project(tmp_path)
    line = b"file_name,label\na.png," + b"x" * (2 << 20) + b"\n"
    refused(tmp_path, table_tar(tmp_path, "labels.csv", line),
            "labels.csv: not a readable CSV table (a cell longer than 65,536 bytes)")


@pytest.mark.parametrize("table", ["metadata.jsonl", "labels.jsonl"])
def test_deeply_nested_json_is_refused(tmp_path, table):
    layout = "image-folder" if table.startswith("metadata") else "files"
    project(tmp_path, layout)
    deep = "[" * 100_000 + "]" * 100_000
    rows = f'{{"file_name": "cat/a.png", "label": "cat", "x": {deep}}}\n'.encode()
    bad = tmp_path / "bad.tar"
    make_tar(bad, {"cat/a.png": png(IMAGES[0]), table: rows})
    refused(tmp_path, bad, f"{table}:1: JSON nested more than 32 deep")


def test_deeply_nested_json_in_a_webdataset_sample_is_refused(tmp_path):
    project(tmp_path, "webdataset")
    bad = tmp_path / "bad.tar"
    make_tar(bad, {"s1.png": png(IMAGES[0]), "s1.cls": b"0",
                   "s1.json": ("[" * 15_000 + "]" * 15_000).encode()})  # < 64 KiB
    refused(tmp_path, bad, "member 's1.json'", "JSON nested more than 32 deep")


def test_parquet_decimals_intervals_and_dates_become_exact_text_attributes(tmp_path):
    parquet = tmp_path / "labels.parquet"
    duckdb.sql(f"""COPY (SELECT * FROM (VALUES
        ('a.png', 'cat', 12.50::DECIMAL(10,2), INTERVAL 90 MINUTE, DATE '2024-02-29'),
        ('b.png', 'dog', 3.14159::DECIMAL(10,5), INTERVAL 1 DAY, DATE '2025-01-01'))
        t(file_name, label, price, took, day)) TO '{parquet}' (FORMAT parquet)""")
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: files}\n")
    source = tmp_path / "src.tar"
    make_tar(source, {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1]),
                      "labels.parquet": parquet.read_bytes()})
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(source))
    attrs = {r.name: json.loads(r.attrs) for r in member_sets(reg.resolver.source_info("mine"))
             ["train"]}
    # (one column, one type: DECIMAL(10,2) and (10,5) values meet as DECIMAL(13,5))
    assert attrs["a.png"] == {"price": "12.50000", "took": "01:30:00", "day": "2024-02-29"}
    assert attrs["b.png"] == {"price": "3.14159", "took": "1 day", "day": "2025-01-01"}


def test_a_binary_parquet_column_is_refused_naming_it(tmp_path):
    project(tmp_path)
    parquet = tmp_path / "t.parquet"
    duckdb.sql(f"COPY (SELECT * FROM (VALUES ('a.png', 'cat', '\\x00\\x01'::BLOB), "
               f"('b.png', 'dog', 'x'::BLOB)) t(file_name, label, image)) TO '{parquet}' "
               "(FORMAT parquet)")
    refused(tmp_path, table_tar(tmp_path, "labels.parquet", parquet.read_bytes()),
            "labels.parquet: row 1: image: binary data")


def test_a_table_beside_the_archive_is_part_of_the_fingerprint(tmp_path):
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: files, options: "
                             "{table: train_labels.csv}}\n")
    make_tar(tmp_path / "train.tar", {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1])})
    beside = tmp_path / "train_labels.csv"
    beside.write_text("file_name,label\na.png,cat\nb.png,dog\n")
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(tmp_path / "train.tar"))
    first = reg.key("mine")
    beside.write_text("file_name,label\na.png,dog\nb.png,cat\n")  # same size, new labels
    again = Registry.open(str(tmp_path))
    assert again.key("mine") != first
    labels = {r.name: r.label for r in member_sets(again.resolver.source_info("mine"))["train"]}
    assert labels == {"a.png": "dog", "b.png": "cat"}
    os.remove(beside)
    out = run_cli("source", "check", "mine", cwd=tmp_path)
    assert out.returncode == 2 and "no labels table: expected train_labels.csv" in out.stderr


@pytest.mark.parametrize("name", ["..", "x/y", "."])
def test_a_class_name_that_is_not_one_folder_is_refused_at_source_set(tmp_path, name):
    project(tmp_path)
    csv = f"file_name,label\na.png,{name}\nb.png,dog\n".encode()
    refused(tmp_path, table_tar(tmp_path, "labels.csv", csv), "labels.csv:2: label",
            "cannot be a folder name")


@pytest.mark.parametrize(("table", "data", "why"), [
    ("labels.csv", b"file_name,klass\na.png,cat\nb.png,dog\n",
     "labels.csv: no 'label' column (it has: file_name, klass); name the column"),
    ("labels.csv", b"file_name,label\na.png,cat\nb.png,\n", "labels.csv:3: no label (every "),
    ("labels.jsonl", b'{"file_name": "a.png", "label": "cat"}\n{"file_name": "b.png", '
                     b'"label": null}\n', "labels.jsonl:2: no label"),
    ("labels.csv", b"file_name,label,label\na.png,cat,x\nb.png,dog,y\n",
     "labels.csv:1: column 'label' appears twice"),
    ("labels.jsonl", b'{"file_name": "a.png", "label": "cat", "label": "dog"}\n',
     "labels.jsonl:1: key 'label' appears twice"),
], ids=["no-label-column", "empty-cell", "json-null", "csv-column-twice", "json-key-twice"])
def test_a_missing_empty_repeated_or_mistyped_label_is_refused(tmp_path, table, data, why):
    project(tmp_path)
    refused(tmp_path, table_tar(tmp_path, table, data), why)


def test_a_flat_image_whose_row_has_no_label_among_labelled_ones(tmp_path):
    project(tmp_path, "image-folder")
    bad = tmp_path / "bad.tar"
    make_tar(bad, {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1]),
                   "metadata.csv": b"file_name,label\na.png,cat\nb.png,\n"})
    refused(tmp_path, bad, "metadata.csv:3: no label for 'b.png'")


def test_parquet_intervals_keep_their_months_and_microseconds(tmp_path):
    parquet = tmp_path / "labels.parquet"
    duckdb.sql(f"""COPY (SELECT * FROM (VALUES
        ('a.png', 'cat', INTERVAL '1 month 3 days 1 second'),
        ('b.png', 'dog', INTERVAL '1.234567 seconds')) t(file_name, label, took))
        TO '{parquet}' (FORMAT parquet)""")
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: files}\n")
    make_tar(tmp_path / "src.tar", {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1]),
                                    "labels.parquet": parquet.read_bytes()})
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(tmp_path / "src.tar"))
    took = {r.name: json.loads(r.attrs)["took"]
            for r in member_sets(reg.resolver.source_info("mine"))["train"]}
    # (Parquet's INTERVAL holds milliseconds: what the file holds, exactly)
    assert took == {"a.png": "1 month 3 days 00:00:01", "b.png": "00:00:01.234"}


def test_a_bad_parquet_table_is_named_not_a_temporary_copy(tmp_path):
    project(tmp_path)
    err = refused(tmp_path, table_tar(tmp_path, "labels.parquet", b"PAR1 not parquet PAR1"),
                  "labels.parquet: not a readable Parquet table (")
    assert "registry-table-" not in err


def test_an_edit_of_the_table_beside_the_archive_keeping_size_and_mtime_rebuilds(tmp_path):
    """Through the CLI's key cache: the table beside the archive is one of the files the
    keys depend on, checked by size, mtime, ctime and inode."""
    write_manifest(tmp_path, """
sources:
  - {name: mine, layout: files, options: {table: train_labels.csv}}
datasets:
  - {name: shards, recipe: webdataset, inputs: {images: mine}}
""")
    make_tar(tmp_path / "train.tar", {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1])})
    beside = tmp_path / "train_labels.csv"
    beside.write_text("file_name,label\na.png,cat\nb.png,dog\n")
    assert run_cli("source", "set", "mine", "train.tar", cwd=tmp_path).returncode == 0
    first = run_cli("resolve", "shards", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    st = beside.stat()
    beside.write_text("file_name,label\na.png,dog\nb.png,cat\n")  # same size
    os.utime(beside, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = run_cli("resolve", "shards", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout != first.stdout  # a new key: the old build is not served


@pytest.mark.parametrize(("csv", "names", "values"), [
    (b"file_name,label\na.png,2\nb.png,10\n", ["10", "2"], [2, 10]),
    (b"file_name,label\na.png,07\nb.png,7\n", ["07", "7"], None),  # not merged
    (b"file_name,label\na.png,00\nb.png,01\n", ["00", "01"], None),
    (b"file_name,label\na.png,-1\nb.png,3\n", ["-1", "3"], None),
    (b"file_name,label\na.png,2000000\nb.png,3\n", ["2000000", "3"], None),
    (b"file_name,label\na.png,true\nb.png,false\n", ["false", "true"], None),
    (b"file_name,label\na.png,2\nb.png,2.5\n", ["2", "2.5"], None),
], ids=["numbers", "zero-padded", "padded-from-zero", "negative", "huge", "booleans",
        "fraction"])
def test_only_numbers_written_as_numbers_keep_their_value(tmp_path, csv, names, values):
    """A CSV column is whole numbers only when every cell is one written as a number is
    (`7`, not `07`), and fits a class list: anything else stays class names, read as
    they always were (sorted as text), so no earlier key reads otherwise."""
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: files}\n")
    make_tar(tmp_path / "src.tar", {"a.png": png(IMAGES[0]), "b.png": png(IMAGES[1]),
                                    "labels.csv": csv})
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(tmp_path / "src.tar"))
    train = member_sets(reg.resolver.source_info("mine"))["train"]
    assert train.class_names() == names
    got = None if train.values is None else \
        dict(zip([r.name for r in train], train.values.tolist(), strict=True))
    assert got == (None if values is None else {"a.png": values[0], "b.png": values[1]})
