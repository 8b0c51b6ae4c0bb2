"""`engine.inputs.artifact_members` reads a file table column-wise; its sets are the ones a
`MemberRef` per row and `MemberSet.from_refs` made (the way it read them before issue 19),
member for member, whatever order, splits, sources, labels or gaps the table has."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from dataset_registry.artifact.marker import Marker
from dataset_registry.engine.inputs import artifact_members
from dataset_registry.sources.members import MemberRef, MemberSet

H = [f"{i:032x}" for i in range(1, 20)]

# (path, size, xxh3, label, source, member, record, class, attrs), in the table's order:
# not sorted, a name twice, non-ASCII names (code-point order), a record and a row of no
# member (left out), one val row without xxh3, val made from the second of two sources
ROWS = [
    ("train/b/2.JPEG", 20, H[0], 1, "s2", "b/2.JPEG", None, "b", None),
    ("val/z.JPEG", 30, H[1], 0, "s2", "val/z.JPEG", None, "a", '{"box": [1, 2]}'),
    ("train/a/1.JPEG", 10, H[2], 0, "s1", "a/1.JPEG", None, "a", None),
    ("train/é/3.JPEG", 11, H[3], None, "s2", "é/3.JPEG", None, None, None),
    ("train/Z/4.JPEG", 12, H[4], 2, "s2", "Z/4.JPEG", None, "Z", None),
    ("val/a.JPEG", 31, None, 1, "s2", "val/a.JPEG", None, "b", None),
    ("train/a/1.JPEG", 13, H[5], 0, "s1", "a/1-again.JPEG", None, "a", None),
    ("shards/0.tar", 99, H[6], None, None, "x/9.JPEG", 0, None, None),
    ("classes.txt", 5, H[7], None, None, None, None, None, None),
    ("valley/x.JPEG", 14, H[8], 3, "s2", "x.JPEG", None, "c", None),
]


def write(path: Path, rows: list[tuple], *, sort: bool = False,
          columns: tuple[str, ...] = ("class", "attrs")) -> str:
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else repr(v) if isinstance(v, int)
                        else "'" + str(v).replace("'", "''") + "'" for v in row) + ")"
        for row in rows)
    extra = "".join(f', "{c}"' for c in columns)
    duckdb.sql(f"""COPY (SELECT path, size::BIGINT AS size, xxh3, label::INTEGER AS label,
            source, member, NULL::BIGINT AS byte_offset, record::BIGINT AS record{extra}
        FROM (VALUES {values}) t(path, size, xxh3, label, source, member, record, "class",
                                  attrs){' ORDER BY path' if sort else ''})
        TO '{path}' (FORMAT parquet)""")
    return str(path)


def before(name: str, key: str, root: str, table: str, marker: Marker) -> dict[str, MemberSet]:
    """The sets as artifact_members made them before it read columns: a MemberRef per
    row, `MemberSet.from_refs`, the refs under `<split>/` renamed, per declared split."""
    have = set(duckdb.sql(f"SELECT * FROM '{table}' LIMIT 0").columns)
    extra = ", ".join(f'"{c}"' if c in have else "NULL" for c in ("class", "attrs"))
    rows = duckdb.sql(f"SELECT path, size, member, source, {extra}, xxh3, label FROM "
                      f"'{table}' WHERE record IS NULL AND member IS NOT NULL").fetchall()
    changed = f"the artifact changed since it was built; run `registry resolve --repair {name}`"
    refs = [MemberRef(p, f"{root}/{p}", 0, size, member, source, cls or "", attrs or "",
                      xxh3 or "", changed)
            for p, size, member, source, cls, attrs, xxh3, _ in rows]
    values = None
    if marker.label_values:
        pairs = [(cls, label) for *_, cls, _, _, label in rows]
        if any(c for c, _ in pairs) and not any(
                c and (lab is None or str(lab) != c) for c, lab in pairs):
            values = np.array([lab if c else -1 for c, lab in pairs], dtype=np.int64)
    where = f"dataset {name} ({root})"
    sets = {"*": MemberSet.from_refs("*", where, refs, root, changed, values)}
    for split in marker.splits or ():
        chosen = [i for i, r in enumerate(refs) if r.name.startswith(f"{split}/")]
        inside = [dataclasses.replace(refs[i], name=refs[i].name[len(split) + 1:])
                  for i in chosen]
        sets[split] = MemberSet.from_refs(
            split, f"{where}, split {split}", inside, f"{root}/{split}", changed,
            values[np.array(chosen, dtype=np.int64)] if values is not None else None)
    return sets


def state(members: MemberSet) -> dict[str, Any]:
    """Everything a reader of the set sees."""
    return {"split": members.split, "where": members.where, "root": members.root,
            "path_from": members.path_from, "changed": members.changed,
            "sources": members.sources, "refs": list(members),
            "codes": members.source_codes.tolist(),
            "digests": None if members.digests is None else members.digests.tobytes(),
            "values": None if members.values is None else members.values.tolist(),
            "names": members.names.lines(), "class_names": members.class_names()}


def marker(splits: tuple[str, ...] | None, label_values: bool = False) -> Marker:
    return Marker(key="k", digest="", files=0, bytes=0, skipped=0, splits=splits,
                  label_values=label_values)


@pytest.mark.parametrize("sort", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("splits", [None, ("train", "val", "test")], ids=["none", "declared"])
def test_the_sets_are_the_ones_a_ref_per_row_made(tmp_path, sort, splits):
    table = write(tmp_path / "_files.parquet", ROWS, sort=sort)
    root = str(tmp_path / "files")
    got = artifact_members("d", "k", root, table, marker(splits))
    want = before("d", "k", root, table, marker(splits))
    assert list(got) == list(want) == ["*", *(splits or ())]
    for split in want:
        assert state(got[split]) == state(want[split]), split
    # what the table holds, as planted: code-point order, ties in their table order, the
    # record and classes.txt left out, val checked on read by none of its xxh3s (one has
    # none), each split its own sources
    assert len(got["*"]) == 8 and got["*"].digests is None
    if splits:
        assert got["train"].names.tolist() == ["Z/4.JPEG", "a/1.JPEG", "a/1.JPEG", "b/2.JPEG",
                                               "é/3.JPEG"]
        if not sort:  # (DuckDB's ORDER BY, writing the sorted table, keeps no tie order)
            assert [r.origin for r in got["train"]][1:3] == ["a/1.JPEG", "a/1-again.JPEG"]
        assert got["val"].digests is None and got["train"].digests is not None
        assert got["val"].sources == ["s2"] and got["train"].sources == ["s1", "s2"]
        assert len(got["test"]) == 0 and got["test"].digests is not None
        assert got["val"].get("z.JPEG").attrs == '{"box": [1, 2]}'


def test_whole_number_labels_keep_their_values_and_any_other_label_drops_them(tmp_path):
    rows = [("train/10/a.JPEG", 1, H[0], 10, "s", "a", None, "10", None),
            ("train/2/b.JPEG", 1, H[1], 2, "s", "b", None, "2", None),
            ("val/c.JPEG", 1, H[2], None, "s", "c", None, None, None)]
    table = write(tmp_path / "whole.parquet", rows)
    got = artifact_members("d", "k", "/r", table, marker(("train", "val"), True))
    assert got["*"].values.tolist() == [10, 2, -1]
    assert got["train"].values.tolist() == [10, 2] and got["val"].values.tolist() == [-1]
    for split, members in before("d", "k", "/r", table, marker(("train", "val"), True)).items():
        assert state(got[split]) == state(members)
    mixed = write(tmp_path / "mixed.parquet",
                  [*rows, ("val/d.JPEG", 1, H[3], 7, "s", "d", None, "n01", None)])
    assert artifact_members("d", "k", "/r", mixed, marker(("val",), True))["*"].values is None


def test_a_table_from_before_class_and_attrs_reads_as_unlabelled(tmp_path):
    table = write(tmp_path / "old.parquet", ROWS, columns=())
    got = artifact_members("d", "k", "/r", table, marker(("train",)))
    assert got["train"].labels.tolist() == [""] * 5
    for split, members in before("d", "k", "/r", table, marker(("train",))).items():
        assert state(got[split]) == state(members)


def test_an_artifact_of_no_images_is_empty_sets(tmp_path):
    table = write(tmp_path / "none.parquet", [r for r in ROWS if r[5] is None or r[6] is not None])
    got = artifact_members("d", "k", "/r", table, marker(("train",)))
    assert len(got["*"]) == len(got["train"]) == 0
    for split, members in before("d", "k", "/r", table, marker(("train",))).items():
        assert state(got[split]) == state(members)
