"""Tars are read in place; hostile members are refused, never followed."""

import io
import os
import tarfile

import pytest

from dataset_registry.errors import SourceError, UnsafeMemberError
from dataset_registry.tarindex import scan_tar


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
