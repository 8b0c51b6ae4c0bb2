"""The fast reader of plain central directories either reads a directory exactly as the
strict reader does, or gives it up (NotPlain) and the strict reader decides: never a third
outcome."""

import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.sources import zipdirectory
from dataset_registry.sources.zipdirectory import Directory, NotPlain, read_directory, read_plain
from dataset_registry.sources.zipindex import _find_directory, _read_directory, scan_zip

from ..zipkit import (
    STORED,
    UTF8_FLAG,
    Entry,
    build_zip,
    damaged_zips,
    deflate,
    extra,
    hostile_zips,
    python_zip,
    write_tree,
)

ZIP = shutil.which("zip")
needs_zip = pytest.mark.skipif(ZIP is None, reason="Info-ZIP zip is not installed")
A, B = bytes(range(256)) * 4, b"a line of text, deflate likes it\n" * 50
MEMBERS = {"a.JPEG": A, "empty.JPEG": b"", "d/": b"", "d/e/f/g.txt": B, "d/e/h.txt": A,
           "ünï/файл 😀.JPEG": A, "日本語/é.txt": B, "n01/x;y.JPEG": A}


def _directory(path: Path, read) -> tuple[list | None, str | None]:
    """(entries, None) or (None, refusal) of `read` on the zip's central directory; (None,
    None) where its end records are refused, before any directory is read."""
    with open(path, "rb") as f:
        try:
            where = _find_directory(f, path.stat().st_size, str(path))
        except SourceError:
            return None, None
        try:
            return read(f, *where, str(path)), None
        except SourceError as exc:
            return None, str(exc)


def _fast(f, cd_offset, cd_size, count, where):
    directory = read_directory(f, cd_offset, cd_size, count, where)
    return [directory.entry(i) for i in range(len(directory))]


def _vouched(path: Path) -> bool:
    """Whether the fast reader reads the directory itself (not giving it up)."""
    def read(*args):
        read_plain(*args)
        return []

    try:
        _directory(path, read)
    except NotPlain:
        return False
    return _directory(path, _read_directory) != (None, None)


def _same_as_strict(path: Path) -> bool:
    """Assert read_directory gives the strict reader's entries or refusal, word for word;
    return whether the fast reader vouched for the directory."""
    strict = _directory(path, _read_directory)
    assert _directory(path, _fast) == strict, path.name
    vouched = _vouched(path)
    assert not vouched or strict[0] is not None, path.name  # (only for directories read)
    return vouched


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.zip"
    path.write_bytes(data)
    return path


def test_every_hostile_zip_gets_the_strict_readers_directory(tmp_path):
    vouched = {name for name, data in hostile_zips().items()
               if _same_as_strict(_write(tmp_path, name, data))}
    # the fast reader really reads the plain ones (this test is not the strict one twice),
    # members the directory cannot show to be wrong included (the member reader refuses);
    # zipfile's ZIP64 zip of small members has ZIP64 fields only in its local headers
    assert {"plain", "stored", "descriptors", "descriptor-without-signature",
            "python-streamed", "python-zip64-streamed", "central-order-differs", "comment",
            "unicode-flagged", "unicode-unix-unflagged", "unicode-path-extra-same-name",
            "gap-between-members", "local-name-differs", "crc-mismatch",
            "deflate-corrupt", "zip64-extras", "zip64-end-records",
            "zip64-descriptors"} <= vouched
    # and gives up every directory with a missing ZIP64 value, an odd field or a refused
    # entry
    assert not vouched & {
        "dot-slash-and-double-slash", "entry-count-too-high", "entry-count-too-low",
        "member-on-another-disk", "no-zip64-extra-for-full-size", "malformed-extra",
        "encrypted", "aes-method", "bzip2", "lzma", "zstd", "needs-version-6.3", "needs-vms",
        "absolute-path", "drive-letter", "dot-dot", "backslash", "control-character",
        "not-utf8-flagged", "not-utf8", "non-ascii-from-dos", "unicode-path-extra",
        "trailing-dot", "vms-version", "long-component", "symlink", "fifo",
        "folder-mode-file-name", "folder-with-data", "duplicate-names",
        "duplicate-after-dot-slash", "file-and-folder", "file-then-folder-entry",
        "duplicate-folders", "empty-name", "dot-slash-folder", "stored-sizes-differ",
        "ratio-bomb"}


def _info_zip(tmp_path: Path, members: dict[str, bytes], *flags: str) -> bytes:
    src = tmp_path / "src"
    write_tree(src, members)  # (Info-ZIP stores these names unflagged, raw UTF-8)
    out = tmp_path / "info.zip"
    subprocess.run([ZIP, "-q", *flags, str(out), "."], cwd=src, check=True)
    data = out.read_bytes()
    shutil.rmtree(src)
    out.unlink()
    return data


def test_damaged_zips_get_the_strict_readers_directory(tmp_path):
    bases = [build_zip([Entry(n, d) for n, d in MEMBERS.items()]), python_zip(MEMBERS),
             build_zip([Entry(n, d, descriptor=True, method=STORED)
                        for n, d in MEMBERS.items()])]
    if ZIP is not None:  # (its timestamp and uid/gid extra fields, to be damaged too)
        bases.append(_info_zip(tmp_path, MEMBERS, "-r"))
    outcome = {True: 0, False: 0}
    for seed, base in enumerate(bases):
        assert _vouched(_write(tmp_path, "base", base)), seed
        for name, data in damaged_zips(base, 80, seed).items():
            outcome[_same_as_strict(_write(tmp_path, name, data))] += 1
    assert outcome[True] > 20 and outcome[False] > 100, outcome  # both paths exercised


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("streamed", [False, True], ids=["seekable", "data-descriptors"])
@pytest.mark.parametrize("force_zip64", [False, True], ids=["", "force-zip64"])
def test_zips_written_by_pythons_zipfile_are_read_fast(tmp_path, method, streamed,
                                                       force_zip64):
    path = _write(tmp_path, "py", python_zip(MEMBERS, method=method, streamed=streamed,
                                             force_zip64=force_zip64))
    assert _vouched(path)
    assert _same_as_strict(path)
    entries, _ = _directory(path, _fast)
    assert [e.path for e in entries] == [n.rstrip("/") for n in MEMBERS]
    assert [e.folder for e in entries] == [n.endswith("/") for n in MEMBERS]


@needs_zip
@pytest.mark.parametrize("flags", [["-r"], ["-r0"]])
def test_zips_written_by_info_zip_are_read_fast(tmp_path, flags):
    path = _write(tmp_path, "info", _info_zip(tmp_path, MEMBERS, *flags))
    assert _vouched(path)
    assert _same_as_strict(path)
    data = path.read_bytes()  # (the fast reader parsed its extra fields: UT and ux)
    first = data.find(b"PK\x01\x02")
    assert struct.unpack_from("<H", data, first + 30)[0] > 0
    entries, _ = _directory(path, _fast)
    assert {e.path for e in entries} == {n.rstrip("/") for n in MEMBERS} | {"n01", "ünï",
                                                                          "日本語", "d/e",
                                                                          "d/e/f"}


@pytest.mark.parametrize("names, plain, refusal", [
    (["d/", "d/a", "d/e/", "d/e/b"], True, None),
    (["x/a", "y/a", "a", "ab/c", "a.b", "a b/c"], True, None),
    (["d/a", "d/"], False, None),  # (a folder's entry after its files: unzip reads it)
    (["d/e/a", "d/"], False, None),
    (["d/", "d/a", "d/"], False, "member 'd/' extracts to 'd' like an earlier member"),
    (["a", "a/b"], False, "member 'a/b': 'a' is both a file and a folder"),
    (["a/b/c", "a/b"], False, "member 'a/b': 'a/b' is both a file and a folder"),
    (["a/", "a"], False, "member 'a': 'a' is both a file and a folder"),
    (["a/b", "c", "a/b"], False, "member 'a/b' extracts to 'a/b' like an earlier member"),
    (["n01/a;b.JPEG", "n01;2/c.JPEG"], True, None),
    (["n01/a.JPEG;"], False, "member 'n01/a.JPEG;' ends in ';' and digits"),
    (["a/./b"], False, None),
    (["a/../b"], False, "has a '..' path component"),
    ([".hidden", "..b", "c.", "d/.e/f"], True, None),
])
def test_the_names_rule_is_vouched_for_as_the_strict_reader_applies_it(
        tmp_path, names, plain, refusal):
    path = _write(tmp_path, "names", build_zip([Entry(n, b"" if n.endswith("/") else A)
                                                for n in names]))
    assert _vouched(path) == plain
    assert _same_as_strict(path) == plain
    _, why = _directory(path, _read_directory)
    assert (why is None) if refusal is None else refusal in why


@pytest.mark.parametrize("chunk", [1 << 16, 6, 7])  # records a thread checks: one, many
def test_names_are_checked_and_compared_across_batches(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(zipdirectory, "_BATCH", 3)
    monkeypatch.setattr(zipdirectory, "_CHUNK", chunk)
    monkeypatch.setattr(zipdirectory, "usable_cores", lambda: 4)  # threads, even on 1 core
    many = [f"c{i % 5}/m{i}.JPEG" for i in range(40)]
    for names, plain in [(many, True), ([*many, many[1]], False), ([*many, "c3/"], False),
                         (["c3/", *many], True), ([*many, "c2/m7.JPEG/x"], False),
                         (["é/ü.JPEG", *many, "日本/語.JPEG"], True),
                         ([*many[:4], "c9/", "c9/x.JPEG"], True),  # (entry 5, 2nd of its batch)
                         ([*many, "c9/", "c9/x.JPEG"], True),  # (entries 40, 41: a late chunk)
                         ([*many, "c9/x.JPEG", "c9/"], False),
                         ([*many[:7], "x/../y", *many[7:]], False),
                         ([*many[:7], "c9/d/x.JPEG", "c9/e/y.JPEG", "c9/z.JPEG", "c9/d/e/f.JPEG",
                           *many[7:]], True)]:  # (folders in folders)
        path = _write(tmp_path, "chunks", build_zip([Entry(n, b"" if n.endswith("/") else A)
                                                     for n in names]))
        assert _vouched(path) == plain, names[-1]
        assert _same_as_strict(path) == plain, names[-1]
        if plain:
            _assert_folder_hashes(path)


def _assert_folder_hashes(path: Path) -> None:
    """The fast reader's `parent` hashes: two entries share one exactly when they lie in
    one folder (0: at the top)."""
    with open(path, "rb") as f:
        directory = read_plain(f, *_find_directory(f, path.stat().st_size, str(path)),
                               str(path))
    folders = [directory.entry(i).path.rpartition("/")[0] for i in range(len(directory))]
    hashes = directory.parent.tolist()
    assert [h == 0 for h in hashes] == [not f for f in folders]
    assert all((hashes[i] == hashes[j]) == (folders[i] == folders[j])
               for i in range(len(folders)) for j in range(len(folders)))


def _with_central_extra(body: bytes, name: str = "a.JPEG") -> bytes:
    return build_zip([Entry(name, A, central={"extra": body}), Entry("b.txt", B)])


@pytest.mark.parametrize("case, body, plain", [
    ("timestamp and uid/gid", extra(0x5455, b"\x03" + b"\0" * 8) + extra(0x7875, b"\1" * 11),
     True),
    ("an empty field", extra(0xCAFE, b""), True),
    ("zero padding (zipalign)", b"\0\0\0\0", False),
    ("stray zero bytes at the end", extra(0x5455, b"\x01abcd") + b"\0\0", False),
    ("a field twice", extra(0x5455, b"\x01abcd") * 2, False),
    ("a ZIP64 field, no full value (ignored)", extra(0x0001, struct.pack("<Q", 7)), True),
    ("an empty ZIP64 field, no full value", extra(0x0001, b""), True),
    ("a ZIP64 field twice", extra(0x0001, b"") * 2, False),
    ("a Unicode Path field, same name", extra(0x7075, b"\x01abcd" + b"a.JPEG"), False),
    ("a signature inside a field", extra(0xCAFE, b"PK\x01\x02" + b"\0" * 42), False),
    ("more fields than a round allows",
     b"".join(extra(0xA000 + i, b"") for i in range(zipdirectory._MAX_FIELDS + 1)), False),
    ("a field running past the block", extra(0x5455, b"\x01abcd")[:-2], False),
])
def test_extra_fields_are_vouched_for_only_as_plain_writers_write_them(
        tmp_path, case, body, plain):
    path = _write(tmp_path, "extra", _with_central_extra(body))
    assert _vouched(path) == plain, case
    assert _same_as_strict(path) == plain, case


@pytest.mark.parametrize("case, central, plain", [
    ("deflate at 100 times", {"usize": 200 << 20, "csize": 2 << 20}, True),
    ("deflate past 100 times", {"usize": 200 << 20, "csize": (2 << 20) - 1}, False),
    ("small and past 100 times", {"usize": 1 << 20, "csize": 10}, True),
    ("version needed 4.6", {"version": 46}, True),
    ("version needed 4.7", {"version": 47}, False),
    ("strong encryption bit", {"flags": 1 << 6}, False),
    ("masked directory bit", {"flags": 1 << 13}, False),
    ("mode with no type", {"external": 0o644 << 16}, True),
    ("a folder's mode on a file", {"external": 0o40755 << 16}, False),
])
def test_entry_fields_are_vouched_for_only_where_check_entry_passes(tmp_path, case, central,
                                                                   plain):
    path = _write(tmp_path, "entry", build_zip([Entry("a.JPEG", A, central=central)]))
    assert _vouched(path) == plain, case
    assert _same_as_strict(path) == plain, case


def test_a_utf8_name_from_windows_is_given_up_and_ascii_ones_are_not(tmp_path):
    for name, plain in [("é.JPEG", False), ("e.JPEG", True)]:
        path = _write(tmp_path, "dos", build_zip([Entry(name, A, flags=UTF8_FLAG,
                                                        central={"made": 11 << 8 | 20})]))
        assert _vouched(path) == plain and _same_as_strict(path) == plain, name


def test_an_empty_directory_is_read_fast(tmp_path):
    path = _write(tmp_path, "empty", build_zip([]))
    assert _vouched(path) and _directory(path, _fast) == ([], None)


def test_from_entries_gives_back_each_entry(tmp_path):
    path = _write(tmp_path, "py", python_zip(MEMBERS))
    entries, _ = _directory(path, _read_directory)
    directory = Directory.from_entries(entries)
    assert len(directory) == len(MEMBERS)
    assert [directory.entry(i) for i in range(len(directory))] == entries
    assert directory.paths == "\n".join(e.path for e in entries)
    with open(path, "rb") as f:
        fast = read_plain(f, *_find_directory(f, path.stat().st_size, str(path)), str(path))
    assert fast.names == directory.names and fast.paths == directory.paths
    for column in ("name_starts", "path_starts", "folder", "flags", "method", "crc", "packed",
                   "size", "offset"):
        assert getattr(fast, column).tolist() == getattr(directory, column).tolist(), column


def _members(path: Path) -> tuple[list | None, str | None]:
    try:
        return list(scan_zip(str(path))), None
    except SourceError as exc:
        return None, str(exc)


def test_scan_zip_gives_the_same_members_and_refusals_either_way(tmp_path, monkeypatch):
    cases = dict(hostile_zips())
    cases.update(damaged_zips(python_zip(MEMBERS), 60, 11))
    cases["deflated-members"] = build_zip([Entry(f"d/m{i}.txt", B * i) for i in range(9)])
    cases["stored-members"] = build_zip([Entry(f"m{i}", deflate(A) * i, method=STORED)
                                         for i in range(9)], cd_order=[4, 2, 0, 1, 3, 5, 8,
                                                                       7, 6])
    fast_read = 0
    for name, data in cases.items():
        path = _write(tmp_path, name, data)
        fast = _members(path)
        with monkeypatch.context() as patch:
            def give_up(*args):
                raise NotPlain("strict only")
            patch.setattr(zipdirectory, "read_plain", give_up)
            assert _members(path) == fast, name
        fast_read += _vouched(path) and fast[0] is not None
    assert fast_read > 15  # (the fast reader read the directory, and members were read)


FULL, FULL_DISK = 0xFFFFFFFF, 0xFFFF


def _zip64(*values: int, disk: int | None = None) -> bytes:
    """A ZIP64 extra field of 8-byte values (and a 4-byte disk)."""
    return extra(1, struct.pack(f"<{len(values)}Q", *values) +
                 (struct.pack("<I", disk) if disk is not None else b""))


def _full_offsets(path: Path) -> int:
    """How many central entries hold 0xFFFFFFFF as their offset: the test reads ZIP64
    values, not the header's."""
    with open(path, "rb") as f:
        cd_offset, cd_size, count = _find_directory(f, path.stat().st_size, str(path))
        f.seek(cd_offset)
        cd = f.read(cd_size)
    at, full = 0, 0
    for _ in range(count):
        full += struct.unpack_from("<I", cd, at + 42)[0] == FULL
        at += 46 + sum(struct.unpack_from("<HHH", cd, at + 28))
    return full


def _members_both_ways(path: Path, monkeypatch) -> tuple[list | None, str | None]:
    """scan_zip's members or refusal, asserted the same with the fast reader given up."""
    fast = _members(path)
    with monkeypatch.context() as patch:
        def give_up(*args):
            raise NotPlain("strict only")
        patch.setattr(zipdirectory, "read_plain", give_up)
        assert _members(path) == fast, path.name
    return fast


@pytest.mark.parametrize("case, entries, zip64_end", [
    ("every entry", [Entry(n, d, zip64=True) for n, d in MEMBERS.items()], False),
    ("ZIP64 end records", [Entry(n, d, zip64=True) for n, d in MEMBERS.items()], True),
    ("stored", [Entry(n, d, zip64=True, method=STORED) for n, d in MEMBERS.items()], False),
    ("every other entry", [Entry(n, d, zip64=i % 2 == 0)
                           for i, (n, d) in enumerate(MEMBERS.items())], False),
    ("data descriptors", [Entry(n, d, zip64=True, descriptor=True)
                          for n, d in MEMBERS.items()], True),
])
def test_zip64_directories_are_read_fast(tmp_path, monkeypatch, case, entries, zip64_end):
    path = _write(tmp_path, "zip64", build_zip(entries, zip64_end=zip64_end))
    assert _full_offsets(path) == sum(e.zip64 for e in entries), case
    assert _vouched(path) and _same_as_strict(path), case
    found, _ = _directory(path, _fast)
    assert [(e.path, e.size) for e in found] == [(n.rstrip("/"), len(d))
                                                 for n, d in MEMBERS.items()], case
    members, why = _members_both_ways(path, monkeypatch)
    assert why is None and {m.path for m in members} == {n for n in MEMBERS if n[-1] != "/"}


def test_a_zip_whose_members_lie_past_4_gib_is_read_fast(tmp_path, monkeypatch):
    """zipfile puts each offset past 4 GiB in a ZIP64 field of the central entry (and
    writes ZIP64 end records): written after a 5 GiB hole, which costs no disk."""
    path = tmp_path / "past-4-gib.zip"
    with open(path, "wb") as f:
        f.seek(5 << 30)
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in MEMBERS.items():
                zf.mkdir(name) if name.endswith("/") else zf.writestr(name, data)
    assert path.stat().st_blocks * 512 < 1 << 20  # (sparse: the hole is not written)
    assert _full_offsets(path) == len(MEMBERS)
    assert _vouched(path) and _same_as_strict(path)
    found, _ = _directory(path, _fast)
    assert all(e.offset >= 5 << 30 for e in found)
    assert [e.offset for e in found] == sorted(e.offset for e in found)
    # the members are read, both ways, up to the 5 GiB hole no member accounts for
    _, why = _members_both_ways(path, monkeypatch)
    assert why is not None and f"{5 << 30:,} bytes in front of its first member" in why


_NOT_IN_ZIP64 = "has 0xffffffff in a header field and no ZIP64 value for it"
_A_PACKED = len(deflate(A))


@pytest.mark.parametrize("case, entry, plain, refusal", [
    ("only the offset (zipfile and Info-ZIP past 4 GiB)",
     Entry("a.JPEG", A, central={"offset": FULL, "extra": _zip64(0)}), True, None),
    ("the disk too", Entry("a.JPEG", A, central={
        "usize": FULL, "csize": FULL, "offset": FULL, "disk": FULL_DISK,
        "extra": _zip64(len(A), _A_PACKED, 0, disk=0)}), True, None),
    ("a field longer than its values (the rest unread)",
     Entry("a.JPEG", A, central={"offset": FULL, "extra": _zip64(0, 12345)}), True, None),
    ("a field, no full value (ignored)",
     Entry("a.JPEG", A, central={"extra": extra(1, b"\xff")}), True, None),
    ("0xFFFFFFFF as a ZIP64 value", Entry("a.bin", b"", method=STORED, central={
        "usize": FULL, "csize": FULL, "extra": _zip64(FULL, FULL)}), True, None),
    ("a field too short for the offset",
     Entry("a.JPEG", A, central={"offset": FULL, "extra": extra(1, b"\0" * 7)}), False,
     _NOT_IN_ZIP64),
    ("a field too short for the packed size", Entry("a.JPEG", A, central={
        "usize": FULL, "csize": FULL, "extra": _zip64(len(A))}), False, _NOT_IN_ZIP64),
    ("a full offset, no field", Entry("a.JPEG", A, central={"offset": FULL}), False,
     _NOT_IN_ZIP64),
    ("a full disk, no field", Entry("a.JPEG", A, central={"disk": FULL_DISK}), False,
     "has 0xffff in a header field and no ZIP64 value for it"),
    ("a full disk, the field too short", Entry("a.JPEG", A, central={
        "offset": FULL, "disk": FULL_DISK, "extra": extra(1, struct.pack("<QH", 0, 0))}),
     False, "has 0xffff in a header field and no ZIP64 value for it"),
    ("a ZIP64 disk of 1", Entry("a.JPEG", A, central={
        "disk": FULL_DISK, "extra": _zip64(disk=1)}), False, "is on disk 2"),
    ("stored, ZIP64 sizes differ", Entry("a.JPEG", A, method=STORED, central={
        "usize": FULL, "csize": FULL, "extra": _zip64(len(A), len(A) + 1)}), False,
     "is stored, but its packed size 1,025 is not its size 1,024"),
    ("a ZIP64 ratio past 100", Entry("a.JPEG", A, central={
        "usize": FULL, "csize": FULL, "extra": _zip64(200 << 20, 1 << 20)}), False,
     "more than 100 times"),
    ("a folder with a ZIP64 size", Entry("d/", b"", method=STORED, central={
        "usize": FULL, "csize": FULL, "extra": _zip64(5, 5)}), False,
     "is a folder carrying 5 bytes"),
    ("a ZIP64 offset past 2**56 (given up)",
     Entry("a.JPEG", A, central={"offset": FULL, "extra": _zip64(1 << 60)}), False, None),
    ("a ZIP64 offset past 2**63 - 1",
     Entry("a.JPEG", A, central={"offset": FULL, "extra": _zip64(1 << 63)}), False,
     "has a ZIP64 offset of 9,223,372,036,854,775,808 bytes, more than any file holds"),
    ("a ZIP64 size of 2**64 - 1", Entry("a.JPEG", A, method=STORED, central={
        "usize": FULL, "csize": FULL, "extra": _zip64((1 << 64) - 1, (1 << 64) - 1)}), False,
     f"has a ZIP64 size of {(1 << 64) - 1:,} bytes"),
])
def test_zip64_values_are_vouched_for_only_where_the_strict_reader_reads_them(
        tmp_path, case, entry, plain, refusal):
    path = _write(tmp_path, "zip64", build_zip([entry, Entry("b.txt", B, zip64=True)]))
    assert _vouched(path) == plain, case
    assert _same_as_strict(path) == plain, case
    _, why = _directory(path, _read_directory)
    assert (why is None) if refusal is None else refusal in why, (case, why)


@pytest.mark.parametrize("case, entries, refusal", [
    ("a ZIP64 size the local header does not have", [Entry("a.JPEG", A, zip64=True, central={
        "extra": _zip64(len(A) + 1, _A_PACKED, 0)})], "disagree on the CRC and sizes"),
    ("a ZIP64 offset into the local header", [Entry("a.JPEG", A, central={
        "offset": FULL, "extra": _zip64(7)})], "7 bytes in front of its first member"),
    ("a ZIP64 offset past the end", [Entry("a.JPEG", A, central={
        "offset": FULL, "extra": _zip64(5 << 30)})],
     "5,368,709,120 bytes in front of its first member"),
    ("a ZIP64 offset to the member before", [Entry("a.txt", B), Entry("b.JPEG", A, central={
        "offset": FULL, "extra": _zip64(0)})], "overlaps another member at byte 0"),
])
def test_zip64_values_the_local_headers_disagree_with_are_refused_either_way(
        tmp_path, monkeypatch, case, entries, refusal):
    path = _write(tmp_path, "zip64", build_zip(entries))
    assert _vouched(path), case  # (the directory alone cannot tell)
    _, why = _members_both_ways(path, monkeypatch)
    assert why is not None and refusal in why, (case, why)
