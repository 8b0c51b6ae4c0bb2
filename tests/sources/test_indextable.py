"""The index table's checks and its file: what `source check` computes after reading, each
against the plain definition it stands for."""

import random
import time
import zipfile

import numpy as np

from dataset_registry.sources.indextable import (
    IndexTable,
    Rows,
    first_rows,
    numbers_change_labels,
    split_counts,
    write_index,
)
from dataset_registry.sources.layouts import Entry
from dataset_registry.sources.members import StrColumn


def _table(rows):
    """A table of (logical name, label, whole-number value or None) rows, in their order."""
    made = Rows()
    for i, (logical, label, value) in enumerate(rows):
        split, name = logical.split("/", 1)
        entry = Entry.labelled(split, name, label if value is None else value,
                               {"k": i} if i % 3 else None)
        made.add(entry, f"origin/{logical}", 10 * i, i, f"{i:032x}", i % 2)
    return made.table()


def test_the_index_file_holds_the_bytes_np_savez_writes(tmp_path, monkeypatch):
    """write_index writes each array's bytes as they lie, not through np.savez: the file
    must be np.savez's, byte for byte (its zip's timestamps held still)."""
    now = time.localtime()
    monkeypatch.setattr(zipfile.time, "localtime", lambda *_: now)
    tables = {"empty": _table([]), "one": _table([("train/a.jpg", "cat", None)]),
              "some": _table([(f"{s}/{c}/é{i}.jpg", c, None if s == "train" else i % 4)
                              for s in ("train", "val") for c in ("cat", "dog")
                              for i in range(5)])}
    for name, table in tables.items():
        write_index(str(tmp_path / f"{name}.npz"), table)
        with open(tmp_path / f"{name}-numpy.npz", "wb") as f:
            np.savez(f, **_arrays(table))
        ours, numpys = (tmp_path / f"{name}.npz").read_bytes(), \
            (tmp_path / f"{name}-numpy.npz").read_bytes()
        assert ours == numpys, name
        with np.load(tmp_path / f"{name}.npz") as z:
            assert z["logical"].tobytes() == table.logical.lines()
            assert z["xxh3"].dtype == np.dtype("S32") and len(z["offsets"]) == len(table)


def _arrays(table: IndexTable) -> dict[str, np.ndarray]:
    """The arrays of the index file, as they were always written."""
    arrays = {}
    for name in ("logical", "origins", "labels", "attrs"):
        column = getattr(table, name)
        first, last = int(column._starts[0]), int(column._starts[-1])
        arrays[name] = np.frombuffer(column._blob, np.uint8)[first:last]
        arrays[f"{name.removesuffix('s')}_starts"] = column._starts - first
    return {**arrays, "offsets": table.offsets, "sizes": table.sizes, "xxh3": table.xxh3,
            "values": table.values, "packed": table.packed}


def test_first_rows_and_class_counts_are_those_of_every_row():
    """Labels in runs (class folders) and scattered (a table's), with empty ones: the first
    row of each distinct label, and the classes of each split, as a plain count gives."""
    rng = random.Random(7)
    for case in range(40):
        classes = [f"c{k}" for k in range(rng.randint(1, 6))] + [""]
        if case % 2:  # (runs of one label, as class folders give)
            labels = [c for c in rng.sample(classes, len(classes))
                      for _ in range(rng.randint(0, 5))]
        else:
            labels = [rng.choice(classes) for _ in range(rng.randint(0, 30))]
        seen: dict[str, int] = {}
        for i, label in enumerate(labels):
            seen.setdefault(label, i)
        assert first_rows(StrColumn.from_list(labels)) == \
            sorted(i for label, i in seen.items() if label), labels
        rows = [(f"{'train' if i < len(labels) // 2 else 'val'}/{i:04d}.jpg", label, None)
                for i, label in enumerate(labels)]
        expected = {}
        for split in ("train", "val"):
            mine = [label for logical, label, _ in rows if logical.startswith(split + "/")]
            if mine:
                expected[split] = [len(mine), len(set(mine) - {""})]
        assert split_counts(_table(rows)) == expected, labels


def test_whole_number_labels_keep_their_value_only_where_some_row_has_one():
    texts = _table([("train/a.jpg", "cat", None), ("train/b.jpg", "dog", None)])
    assert not numbers_change_labels(texts) and not numbers_change_labels(_table([]))
    numbered = _table([(f"train/{i:02d}.jpg", "", 10 * i) for i in range(3)])
    assert numbers_change_labels(numbered)  # (0, 10, 20: not 0..k)
    digits = _table([(f"train/{i:02d}.jpg", "", i) for i in range(10)])
    assert not numbers_change_labels(digits)  # (0..9 sort as text does)
