"""A tar of tars indexed on a pool gives what the serial reading gives: the same index, the
same fingerprint, the same members left out, and the same refusal, word for word."""

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.manifest import SourceNode
from dataset_registry.sources import nestedpool
from dataset_registry.sources.index import check_source, member_sets
from dataset_registry.sources.layouts import Entry, Layout
from dataset_registry.sources.members import read_member
from dataset_registry.sources.tarindex import IndexedMember, scan_tar

from ..tarkit import is_tar, tar_of
from .indexkit import indexed

END = bytes(1024)


def node(layout="imagenet-train"):
    return SourceNode(name="src", file="m.yaml", line=3, layout=layout)


def _class_tar(c: int, n: int = 7) -> bytes:
    # members out of name order, so the index must sort them
    return tar_of({f"n{c:08d}_{i}.JPEG": bytes([c, i]) * (50 + i) for i in reversed(range(n))})


@pytest.fixture
def pooled(monkeypatch):
    """Index with a pool of 3 workers however small the tar (returns a switch back)."""
    monkeypatch.setattr(nestedpool, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(nestedpool, "default_jobs", lambda: 3)

    def serial():
        monkeypatch.setattr(nestedpool, "PARALLEL_BYTES", 1 << 62)

    return serial


def _index(path, cache, layout="imagenet-train"):
    return indexed(path, cache, layout)


@pytest.mark.parametrize("classes", [
    [0, 1, 2, 3, 4, 5, 6, 7],  # in name order: the workers' parts are hashed as they come
    [3, 1, 2, 7, 5, 4, 6, 0],  # out of order: the table is sorted, then hashed
])
def test_a_tar_of_tars_on_a_pool_indexes_as_serially(tmp_path, pooled, classes):
    path = tmp_path / "train.tar"
    path.write_bytes(tar_of({f"n{c:08d}.tar": _class_tar(c) for c in classes}))
    fast = _index(path, tmp_path / "a")
    pooled()
    slow = _index(path, tmp_path / "b")
    assert fast[1] is None and fast[0] == slow[0]
    assert fast[0][1] == 56 and fast[0][2] == {"train": [56, 8]}
    info = check_source(node(), str(path), str(tmp_path / "a"))
    sets = member_sets(info)["train"]
    assert list(sets.names)[:2] == ["n00000000/n00000000_0.JPEG", "n00000000/n00000000_1.JPEG"]
    assert read_member(sets[0]) == bytes([0, 0]) * 50


@pytest.mark.parametrize("case, message", [
    ("a link in the fifth class tar", "is a symbolic link"),
    ("a member out of the layout in the third", "does not fit layout 'imagenet-train'"),
    ("a file at the top after the class tars", "does not fit layout 'imagenet-train'"),
    ("garbage after the end of the top tar", "data after the end-of-archive marker"),
])
def test_refusals_on_a_pool_are_the_serial_ones_word_for_word(tmp_path, pooled, case,
                                                              message):
    from ..tarkit import header

    inner = {c: _class_tar(c) for c in range(6)}
    top = {f"n{c:08d}.tar": data for c, data in inner.items()}
    if case.startswith("a link"):
        inner[4] = header("n00000004_x.JPEG", 0, b"2", linkname=b"/etc/passwd") + \
            inner[4][:-1024] + END
        top["n00000004.tar"] = inner[4]
    if case.startswith("a member out"):
        top["n00000002.tar"] = tar_of({"n00000002_1.JPEG": b"y", "sub/stray.JPEG": b"x"})
    data = tar_of(top)
    if case.startswith("a file at the top"):
        data = tar_of({**top, "README": b"hello"})
    if case.startswith("garbage"):
        data = data + b"trailing"
    path = tmp_path / "train.tar"
    path.write_bytes(data)
    fast = _index(path, tmp_path / "a")
    pooled()
    slow = _index(path, tmp_path / "b")
    assert fast[0] is None and message in fast[1], fast
    assert fast == slow


class ClassTars(Layout):
    """A layout of class tars that leaves out what is not a .png (as image folders do)."""

    name = "test-class-tars"
    expects = "class tars"

    def nested(self, path):
        return path.endswith(".tar") and "/" not in path

    def classify(self, origin, is_tar):
        top, _, name = origin.partition("/")
        return Entry("train", f"{top[:-4]}/{name}", label=top[:-4]) \
            if name.endswith(".png") else None


def test_members_left_out_are_named_in_order_on_a_pool(tmp_path, pooled):
    path = tmp_path / "photos.tar"
    path.write_bytes(tar_of({f"class{c}.tar": tar_of({f"img{i}.png": bytes([c, i]) * 9
                                                      for i in range(3)} | {"Thumbs.db": b"j"})
                             for c in range(5)} | {"notes.txt": b"top"}))
    table, left_out, fingerprint = nestedpool.index_parallel(str(path), ClassTars(), None)
    assert left_out == [*(f"class{c}.tar/Thumbs.db" for c in range(5)), "notes.txt"]
    assert len(table) == 15 and table.logical[14] == "train/class4/img2.png"
    assert table.labels[0] == "class0" and fingerprint == table.fingerprint()


def test_scanning_nested_tars_on_a_pool_gives_the_serial_members(tmp_path):
    path = tmp_path / "t.tar"
    path.write_bytes(tar_of({f"n{c}.tar": _class_tar(c) for c in range(6)} | {"top.JPEG": b"t"}))
    serial = list(scan_tar(str(path), nested=is_tar))
    nestedpool_members = list(nestedpool._expand(nestedpool._in_order(
        str(path), path.stat().st_size, is_tar, None, 3, nestedpool._scan_nested, is_tar), None))
    assert nestedpool_members == serial and len(serial) == 43


def test_a_big_zip_with_a_by_name_layout_is_read_as_a_zip(tmp_path, pooled):
    import zipfile

    path = tmp_path / "val.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(1, 5):
            z.writestr(f"ILSVRC2012_val_{i:08d}.JPEG", bytes([i]) * 1000)
    fast = _index(path, tmp_path / "a", "imagenet-val")
    pooled()
    assert fast[1] is None and fast[0][1] == 4
    assert fast == _index(path, tmp_path / "b", "imagenet-val")


def test_a_split_name_holding_a_slash_is_refused_on_a_pool_too(tmp_path, pooled):
    def shard(k):
        return tar_of({f"{k}0.jpg": b"\xff\xd8a", f"{k}0.cls": b"1", f"{k}1.jpg": b"\xff\xd8b",
                       f"{k}1.cls": b"2"})

    path = tmp_path / "shards.tar"
    path.write_bytes(tar_of({"train-000000.tar": shard("a"), "train-000001.tar": shard("b")}))
    node_ = SourceNode(name="src", file="m.yaml", line=3, layout="webdataset",
                       options={"split": "x/y"})
    with pytest.raises(SourceError, match=r"member 'x/y/a0\.jpg'.*split name 'x/y'"):
        check_source(node_, str(path), str(tmp_path / "c"), force=True)


def test_members_before_a_refusal_in_a_nested_tar_are_given_on_a_pool_too(tmp_path):
    from ..tarkit import header

    bad = header("n2_x.JPEG", 0, b"2", linkname=b"/etc/passwd") + END
    bad = tar_of({"n2_0.JPEG": b"a", "n2_1.JPEG": b"b"})[:-1024] + bad
    path = tmp_path / "t.tar"
    path.write_bytes(tar_of({"n1.tar": _class_tar(1), "n2.tar": bad, "n3.tar": _class_tar(3)}))

    def given(members):
        out = []
        try:
            for m in members:
                out.append(m.path)
        except SourceError as exc:
            return out, str(exc)
        return out, None

    pooled = given(nestedpool._expand(nestedpool._in_order(
        str(path), path.stat().st_size, is_tar, None, 3, nestedpool._scan_nested, is_tar), None))
    assert pooled == given(scan_tar(str(path), nested=is_tar))
    assert pooled[0][-2:] == ["n2.tar/n2_0.JPEG", "n2.tar/n2_1.JPEG"]
    assert "symbolic link" in pooled[1]


def test_a_part_holding_a_name_twice_leaves_the_table_to_be_sorted_and_checked():
    """A part's fingerprint lines vouch that its names are each once: parts in name order
    then make a table taken as sorted, no name twice, unchecked. A part with a name twice
    gives none, so the whole table is sorted and checked (and that name refused)."""
    from dataset_registry.sources.indextable import Rows

    def part(*names):
        rows = Rows()
        for name in names:
            rows.add(Entry("train", name), name, 0, 1, "0" * 32)
        return nestedpool.placed_table(rows)

    once, twice = part("b", "a"), part("d", "c", "d")
    assert once[1] == b"".join(f"train/{n}\t1\t{'0' * 32}\n".encode() for n in "ab")
    assert twice[1] is None and list(twice[0].logical) == ["train/c", "train/d", "train/d"]
    parts = nestedpool.IndexParts()
    parts.add(*once)
    assert parts.fingerprint() is not None
    parts.add(*twice)
    assert parts.fingerprint() is None


def test_a_tar_of_shards_whose_pool_broke_reads_serially_as_if_it_had_not(tmp_path, pooled,
                                                                          monkeypatch):
    """A pool that breaks before giving a member (workers that cannot start) leaves the
    tar to a serial reading, which asks the layout again which members are shards: the
    webdataset layout listed each twice and refused its own samples as held twice."""
    def shard(k):
        return tar_of({f"{k}0.jpg": b"\xff\xd8a", f"{k}0.cls": b"1"})

    path = tmp_path / "shards.tar"
    path.write_bytes(tar_of({"train-000000.tar": shard("a"), "train-000001.tar": shard("b")}))
    node_ = SourceNode(name="src", file="m.yaml", line=3, layout="webdataset", options={})
    before = check_source(node_, str(path), str(tmp_path / "a"), force=True).fingerprint
    in_order = nestedpool._in_order

    def broken(path_, size, nested, *args):  # asks of every shard, as the top tar's reading
        for item in in_order(path_, size, nested, *args):
            if not isinstance(item, IndexedMember):
                raise nestedpool.BrokenProcessPool("no workers")
            yield item

    monkeypatch.setattr(nestedpool, "_in_order", broken)
    assert check_source(node_, str(path), str(tmp_path / "b"), force=True).fingerprint == before


def test_an_empty_class_tar_is_named_as_an_empty_folder_serially_and_on_a_pool(tmp_path,
                                                                                pooled):
    """A class tar holding nothing makes no class: named as the empty folder it stands
    for (`n00000002.tar/`), as an empty class folder is, by either reading (it was named
    nowhere); the fingerprint is the one without it, as for an empty folder."""
    path = tmp_path / "train.tar"
    path.write_bytes(tar_of({"n00000000.tar": _class_tar(0), "n00000001.tar": _class_tar(1),
                             "n00000002.tar": END}))
    on_a_pool = _index(path, tmp_path / "a")
    pooled()
    serial = _index(path, tmp_path / "b")
    assert on_a_pool == serial and serial[1] is None
    fingerprint, files, splits, left_out, _, empty, first_empty, _ = serial[0]
    assert (files, splits, left_out) == (14, {"train": [14, 2]}, 0)
    assert (empty, first_empty) == (1, ["n00000002.tar"])
    without = tmp_path / "without.tar"
    without.write_bytes(tar_of({"n00000000.tar": _class_tar(0), "n00000001.tar": _class_tar(1)}))
    assert _index(without, tmp_path / "c")[0][0] == fingerprint


def test_scanning_an_empty_nested_tar_on_a_pool_gives_the_serial_members(tmp_path):
    path = tmp_path / "t.tar"
    path.write_bytes(tar_of({"n0.tar": _class_tar(0), "n1.tar": END, "top.JPEG": b"t"}))
    serial = list(scan_tar(str(path), nested=is_tar))
    assert [m.path for m in serial if m.path.endswith("/")] == ["n1.tar/"]
    assert list(nestedpool._expand(nestedpool._in_order(
        str(path), path.stat().st_size, is_tar, None, 3, nestedpool._scan_nested, is_tar),
        None)) == serial
