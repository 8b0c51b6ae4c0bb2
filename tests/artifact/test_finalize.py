"""Finalizing: the parts merged into the tables, then taken out of the folder."""

import os

import pytest

from dataset_registry.artifact.finalize import finalize
from dataset_registry.artifact.marker import FILES, PARTS, SCRATCH


def staged(root) -> None:
    """A staging folder's leavings: one task's row, and a scratch file."""
    (root / PARTS).mkdir(parents=True)
    (root / PARTS / "t000000.files.csv").write_bytes(
        b"a.bin,3," + b"0" * 32 + b",,,,,,,\r\n")
    (root / SCRATCH).mkdir()
    (root / SCRATCH / "lines").write_bytes(b"x")


def test_finalize_puts_the_parts_aside_into_a_new_folder(tmp_path):
    root, aside = tmp_path / "key.token", tmp_path / "key.token.spent"
    staged(root)
    facts = finalize(str(root), str(aside))
    assert facts["files"] == 1 and sorted(os.listdir(root)) == [FILES]
    assert sorted(os.listdir(aside)) == [PARTS, SCRATCH]
    assert os.listdir(aside / PARTS) == ["t000000.files.csv"]


@pytest.mark.parametrize("aside", [None, "missing/key.token.spent", "taken"])
def test_finalize_removes_the_parts_where_none_can_be_put_aside(tmp_path, aside):
    root = tmp_path / "key.token"
    staged(root)
    (tmp_path / "taken").write_bytes(b"")  # a name already in use
    facts = finalize(str(root), aside and str(tmp_path / aside))
    assert facts["files"] == 1 and sorted(os.listdir(root)) == [FILES]
    assert sorted(os.listdir(tmp_path)) == ["key.token", "taken"]


def test_the_file_table_is_cut_into_row_groups_of_the_catalogs_size(tmp_path):
    """Its rows are decoded on as many threads as it has groups, and the catalog appends
    each group whole (artifact/filetable.py, ROW_GROUP_ROWS)."""
    import duckdb

    from dataset_registry.artifact.filetable import ROW_GROUP_ROWS

    root = tmp_path / "key.token"
    (root / PARTS).mkdir(parents=True)
    n = 2 * ROW_GROUP_ROWS + 5
    rows = "".join(f"s.tar,{n},{'0' * 32},,,m{i:06d},{512 * i},{i},,\r\n" for i in range(n))
    (root / PARTS / "t000000.files.csv").write_text(
        f"s.tar,{n},{'1' * 32},,,,,,,\r\n" + rows, newline="")
    finalize(str(root))
    table = str(root / FILES)
    groups = duckdb.sql(f"SELECT row_group_id, any_value(row_group_num_rows) FROM "
                        f"parquet_metadata('{table}') GROUP BY ALL ORDER BY 1").fetchall()
    assert [r for _, r in groups] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, n + 1 - 2 * ROW_GROUP_ROWS]
    got = duckdb.sql(f"SELECT record FROM '{table}'").fetchall()
    assert got == [(None,), *((i,) for i in range(n))]  # the file, then its records in order
