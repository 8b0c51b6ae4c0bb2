"""MemberSet's column-wise subsets."""

from __future__ import annotations

import numpy as np

from dataset_registry.sources.members import MemberSet, StrColumn


def members(n: int) -> MemberSet:
    names = [f"m{i:03d}" for i in range(n)]
    return MemberSet("train", "test", StrColumn.from_list(names), StrColumn.from_list(names),
                     np.arange(n, dtype=np.int64) * 10, np.full(n, 10, dtype=np.int64), ["s"],
                     root="/r", labels=StrColumn.from_list([str(i % 3) for i in range(n)]))


def test_take_of_a_permutation_spanning_the_set_keeps_its_order():
    """Class-folder order of a source whose names do not start with the class: the
    positions run from the first member to the last but are not a slice."""
    s = members(6)
    order = np.array([0, 3, 1, 4, 2, 5])
    taken = s.take(order)
    assert [r.name for r in taken] == ["m000", "m003", "m001", "m004", "m002", "m005"]
    assert [r.offset for r in taken] == [0, 30, 10, 40, 20, 50]
    assert taken.labels.tolist() == ["0", "0", "1", "1", "2", "2"]


def test_take_of_a_contiguous_run_is_a_slice():
    s = members(6)
    taken = s.take(np.array([2, 3, 4]))
    assert [r.name for r in taken] == ["m002", "m003", "m004"]
    assert taken.names._blob is s.names._blob  # shares the parent's columns


def test_find_is_the_first_string_holding_the_text_past_any_prefix():
    names = StrColumn.from_list(["val/a.png", "val/b\tc.png", "val/d\t.png"])
    assert names.find("\t") == 1
    assert names.find("zzz") == -1
    assert names.slice(2, 3).find("\t") == 0  # a slice searches its own strings only
    assert names.slice(0, 1).find("\t") == -1
    prefixed = StrColumn(names._blob, names._starts, prefix=4)  # as a split reads "val/..."
    assert [prefixed[i] for i in range(3)] == ["a.png", "b\tc.png", "d\t.png"]
    assert prefixed.find("val") == -1  # the skipped prefix is not searched


def test_tolist_of_a_prefixed_column_is_each_string_past_its_prefix():
    """tolist cuts the prefix (the same bytes before every string: a split's "ünï/") from
    each decoded string: the strings one by one, non-ASCII names and prefix included,
    over any slice."""
    names = ["ünï/a.png", "ünï/ß/b.jpg", "ünï/c d.png", "ünï/日本.jpg", "ünï/e.png"]
    column = StrColumn.from_list(names)
    prefixed = StrColumn(column._blob, column._starts, prefix=len("ünï/".encode()))
    assert prefixed.tolist() == ["a.png", "ß/b.jpg", "c d.png", "日本.jpg", "e.png"]
    for start, stop in ((0, 5), (1, 4), (3, 5), (2, 2)):
        part = prefixed.slice(start, stop)
        assert part.tolist() == [part[i] for i in range(len(part))]
        assert part.lines() == "".join(s + "\n" for s in part.tolist()).encode()
    assert column.tolist() == names
