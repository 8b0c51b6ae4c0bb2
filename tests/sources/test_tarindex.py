"""Tars are read in place; hostile members are refused, never followed."""

import io
import os
import tarfile
from pathlib import Path

import pytest
import xxhash

from dataset_registry.errors import SourceError, UnsafeMemberError
from dataset_registry.sources.tarindex import scan_tar

from ..tarkit import gnu_extract, hostile_tars, is_tar


def _tar(path, entries):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_index_offsets_read_back_the_member_bytes(tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tf:
        for name, data in [("n01_1.JPEG", b"alpha" * 100), ("n01_2.JPEG", b"beta" * 333)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path = _tar(tmp_path / "t.tar", [_file("n01.tar", inner.getvalue()), _file("top", b"top")])
    found = list(scan_tar(path, nested=lambda n: n.endswith(".tar")))
    assert [m.path for m in found] == ["n01.tar/n01_1.JPEG", "n01.tar/n01_2.JPEG", "top"]
    with open(path, "rb") as f:
        for m, want in zip(found, [b"alpha" * 100, b"beta" * 333, b"top"], strict=True):
            assert os.pread(f.fileno(), m.size, m.offset) == want


@pytest.mark.parametrize("entry, why", [
    (_file("/etc/passwd"), "an absolute path"),
    (_file("a/../../evil.JPEG"), "a '..' path component"),
    (_link("link.JPEG", "/etc/shadow"), "a symbolic link to '/etc/shadow'"),
    (_link("hard.JPEG", "x.JPEG", tarfile.LNKTYPE), "a hard link to 'x.JPEG'"),
])
def test_hostile_members_are_refused(tmp_path, entry, why):
    path = _tar(tmp_path / "bad.tar", [_file("ok.JPEG"), entry])
    with pytest.raises(UnsafeMemberError, match=f"bad.tar: member .* is {why}; refusing"):
        list(scan_tar(path))


def test_devices_are_refused(tmp_path):
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    path = _tar(tmp_path / "dev.tar", [(info, None)])
    with pytest.raises(UnsafeMemberError, match="a device, fifo or other special file"):
        list(scan_tar(path))


def test_hostile_member_inside_a_nested_tar(tmp_path):
    inner = tmp_path / "inner.tar"
    _tar(inner, [_file("../escape.JPEG")])
    path = _tar(tmp_path / "outer.tar", [_file("n01.tar", inner.read_bytes())])
    with pytest.raises(UnsafeMemberError, match=r"outer.tar:n01.tar/: member '../escape.JPEG'"):
        list(scan_tar(path, nested=lambda n: n.endswith(".tar")))


def test_duplicate_members_are_refused(tmp_path):
    path = _tar(tmp_path / "dup.tar", [_file("a.JPEG", b"1"), _file("a.JPEG", b"2")])
    with pytest.raises(UnsafeMemberError, match="appears twice"):
        list(scan_tar(path))


def test_not_a_tar(tmp_path):
    path = tmp_path / "junk.tar"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(SourceError, match=r"junk\.tar: not a readable tar"):
        list(scan_tar(str(path)))


def test_truncated_tar(tmp_path):
    path = _tar(tmp_path / "t.tar", [_file("a.JPEG", b"z" * 5000)])
    with open(path, "r+b") as f:
        f.truncate(2000)
    with pytest.raises(SourceError, match=r"t\.tar"):
        list(scan_tar(path))


# -- the property: refused with a clear error, or exactly what GNU tar extracts ---------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_tars(tmp_path_factory.mktemp("hostile"))


def index_or_refusal(path: Path):
    try:
        return list(scan_tar(str(path), nested=is_tar)), None
    except SourceError as exc:
        return None, exc


def test_every_hostile_tar_is_refused_or_read_as_gnu_tar_extracts_it(hostile, tmp_path):
    outcome = {}
    for name, data in hostile.items():
        path = tmp_path / f"{name}.tar"
        path.write_bytes(data)
        found, refusal = index_or_refusal(path)
        if refusal is not None:
            assert str(refusal).startswith(str(path)), (name, str(refusal))
            outcome[name] = "refused"
            continue
        rc, extracted = gnu_extract(path, tmp_path / f"{name}-x", nested=is_tar)
        with open(path, "rb") as f:
            read = {m.path: os.pread(f.fileno(), m.size, m.offset) for m in found}
        assert rc == 0 and read == extracted, name
        assert all(xxhash.xxh3_128_hexdigest(read[m.path]) == m.xxh3 for m in found), name
        outcome[name] = "read"
    read_ok = {"plain", "only-zeros", "zero-size-only", "missing-end-blocks", "one-end-block",
               "record-padded", "dot-slash-names", "pax-long-name", "gnu-long-name",
               "folder-then-files", "nested"}
    assert {n for n, o in outcome.items() if o == "read" and
            not n.startswith("damaged-")} == read_ok, outcome
    assert sum(o == "refused" for n, o in outcome.items() if n.startswith("damaged-")) > 10


@pytest.mark.parametrize("name, message", [
    ("sparse-gnu", r"member 'hole.JPEG' is a sparse file \(GNU or PAX sparse format\)"),
    ("sparse-pax-0.0", "member 'hole.JPEG' is a sparse file"),
    ("sparse-pax-0.1", "member 'hole.JPEG' is a sparse file"),
    ("sparse-pax-1.0", "member 'hole.JPEG' is a sparse file"),
    ("sparse-gnu-fits", r"member 'small-hole.JPEG' is a sparse file \(GNU or PAX sparse "
                        r"format\)"),
    ("sparse-pax-0.0-fits", "member 'small-hole.JPEG' is a sparse file"),
    ("sparse-pax-0.1-fits", "member 'small-hole.JPEG' is a sparse file"),
    ("sparse-pax-1.0-fits", "member 'small-hole.JPEG' is a sparse file"),
    ("garbage-mid-archive", r"not a readable tar: byte 1,536 \(after member 'a.JPEG'\) is not "
                            r"a valid tar header \(invalid header\)"),
    ("bad-checksum", r"byte 1,536 \(after member 'a.JPEG'\) is not a valid tar header "
                     r"\(bad checksum\)"),
    ("truncated-in-header", r"byte 1,536 \(after member 'a.JPEG'\) is not a valid tar header "
                            r"\(truncated header\)"),
    ("truncated-in-data", r"byte 2,048 \(after member 'b.JPEG'\) is not a valid tar header "
                          r"\(truncated header\)"),
    ("negative-size", r"member 'neg.JPEG' is of negative size \(-1\)"),
    ("huge-size", r"member 'big.JPEG' is 8,589,934,591 bytes long, more than the 4,096 bytes"),
    ("pax-bad-length", r"member 'short' \(header at byte 1,024\): PAX header at byte 0: "
                       r"malformed PAX record at byte 0"),
    ("pax-no-newline", "malformed PAX record"),
    ("pax-size-not-a-number", r"PAX size b'12ab' is not a number"),
    ("pax-global-path", "a PAX global header sets path for every member"),
    ("pax-headers-in-a-row", "too many extended headers in a row|has two PAX headers"),
    ("two-gnu-long-names", "has two GNU long names"),
    ("long-name-and-pax-path", "both a GNU long name and a PAX path"),
    ("trailing-garbage", r"data after the end-of-archive marker at byte 4,608 \(after member "
                         r"'dir/c.JPEG'\)"),
    ("concatenated-tars", "data after the end-of-archive marker"),
    ("lone-zero-block", r"data after the end-of-archive marker at byte 2,048 \(after member "
                        r"'a.JPEG'\)"),
    ("duplicate-after-dot-slash", "member 'a.JPEG' appears twice"),
    ("duplicate-double-slash", "member 'd/a.JPEG' appears twice"),
    ("file-and-folder", "member 'a' is both a file and a folder"),
    ("nested-member-past-inner-end", r":n01.tar/: member 'x.JPEG' is 5,000 bytes long, more "
                                     r"than the 2,048 bytes left"),
    ("deep-nesting", r":t.tar/t.tar/t.tar/t.tar/t.tar: tars nested more than 4 deep"),
    ("non-utf8-name", "is a name that is not UTF-8"),
    ("folder-with-data", "member 'd' is a folder entry carrying 1,000 bytes of data"),
    ("volume-label", "member 'label' is of member type b'V', not a plain file or folder"),
    ("empty-file", "not a readable tar"),
])
def test_hostile_tar_message_names_the_tar_and_the_member(hostile, tmp_path, name, message):
    path = tmp_path / f"{name}.tar"
    path.write_bytes(hostile[name])
    with pytest.raises(SourceError, match=message) as info:
        list(scan_tar(str(path), nested=is_tar))
    assert str(info.value).startswith(f"{path}")
