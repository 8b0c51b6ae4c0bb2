"""The fast reader of plain tars either reads a tar exactly as the strict reader does, or
gives it up (NotPlain) and the strict reader decides: never a third outcome."""

import io
import subprocess
import tarfile

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.sources import tarindex
from dataset_registry.sources.ustar import NotPlain, read_plain

from ..tarkit import BLOCK, END, header, hostile_tars, is_tar, member, pad, tar_of

A, B = b"A" * 700, b"B" * 1300


def _outcome(path, strict: bool, monkeypatch):
    """(members, None) or (None, message) of scan_tar, with the fast reader or without."""
    with monkeypatch.context() as patch:
        if strict:
            def give_up(*args, **kwargs):
                raise NotPlain("strict only")
            patch.setattr(tarindex, "read_plain", give_up)
        try:
            return list(tarindex.scan_tar(str(path), nested=is_tar)), None
        except SourceError as exc:
            return None, str(exc)


def _vouched(data: bytes, start: int = 0, size: int | None = None, prefix: str = "",
             depth: int = 0) -> bool:
    """Whether the fast reader reads `data` itself, nested tars too (not giving it up);
    the nesting limit is scan_tar's, so past it nothing is vouched for."""
    if depth > tarindex.MAX_NESTING:
        return False
    try:
        found = read_plain(lambda pos, n: data[pos:pos + n], start,
                           len(data) if size is None else size, is_tar, prefix)
    except NotPlain:
        return False
    return all(_vouched(data, at, n, f"{path}/", depth + 1) for path, at, n, digest in found
               if digest is None)


def test_every_hostile_tar_gets_the_strict_readers_outcome(tmp_path, monkeypatch):
    vouched = set()
    for name, data in hostile_tars(tmp_path).items():
        path = tmp_path / f"{name}.tar"
        path.write_bytes(data)
        fast = _outcome(path, strict=False, monkeypatch=monkeypatch)
        assert fast == _outcome(path, strict=True, monkeypatch=monkeypatch), name
        if _vouched(data):
            vouched.add(name)
            assert fast[1] is None, name  # it vouches only for tars the strict reader reads
    # the fast reader really reads the plain ones (this test is not the strict one twice)
    assert {"plain", "zero-size-only", "missing-end-blocks", "one-end-block", "record-padded",
            "dot-slash-names", "folder-then-files", "nested"} <= vouched
    # and gives up every tar with an extended header, a bad field or a hostile member
    assert not vouched & {"pax-long-name", "gnu-long-name", "bad-checksum", "negative-size",
                          "huge-size", "size-past-the-end", "duplicate-names",
                          "duplicate-after-dot-slash", "file-and-folder", "non-utf8-name",
                          "folder-with-data", "fifo", "trailing-garbage", "concatenated-tars",
                          "lone-zero-block", "garbage-mid-archive", "truncated-in-data",
                          "truncated-in-header"}


def _with_field(data: bytes, at: int, value: bytes) -> bytes:
    """`data` with the first header's bytes at `at` replaced and its checksum redone."""
    out = bytearray(data)
    out[at:at + len(value)] = value
    out[148:156] = b" " * 8
    out[148:156] = b"%06o\0 " % sum(out[:BLOCK])
    return bytes(out)


@pytest.mark.parametrize("case, plain", [
    ("mode ending in a space", (100, b"0000644 ")),
    ("mode as digits, space, NUL", (100, b"000644 \0")),
    ("uid all NULs", (108, b"\0" * 8)),
    ("mtime in base-256", (136, b"\x80" + b"\0" * 10 + b"\x01")),
    ("mode with a leading space", (100, b" 000644\0")),
    ("mode with a non-octal digit", (100, b"0000694\0")),
    ("devmajor with letters", (329, b"abcdefg\0")),
])
def test_number_fields_are_vouched_for_only_as_plain_writers_write_them(
        tmp_path, monkeypatch, case, plain):
    at, value = plain
    data = _with_field(member("a.JPEG", A) + member("b.JPEG", B) + END, at, value)
    path = tmp_path / "t.tar"
    path.write_bytes(data)
    expect_plain = case.startswith(("mode ending", "mode as digits", "uid all"))
    assert _vouched(data) == expect_plain, case
    assert _outcome(path, False, monkeypatch) == _outcome(path, True, monkeypatch), case


def test_a_checksum_off_by_one_is_given_up_and_refused_by_the_strict_reader(tmp_path):
    data = bytearray(member("a.JPEG", A) + END)
    data[148:156] = b"%06o\0 " % (int(data[148:154], 8) + 1)
    assert not _vouched(bytes(data))
    (tmp_path / "t.tar").write_bytes(bytes(data))
    with pytest.raises(SourceError, match="not a readable tar"):
        list(tarindex.scan_tar(str(tmp_path / "t.tar")))


def test_old_style_folders_and_ustar_prefixes_read_as_tarfile_reads_them(tmp_path, monkeypatch):
    old_folder = header("d/", 0, b"\0") + member("d/a.JPEG", A)
    prefixed = bytearray(header("b.JPEG", len(B)))
    prefixed[345:345 + 6] = b"pre/fx"
    prefixed[148:156] = b" " * 8
    prefixed[148:156] = b"%06o\0 " % sum(prefixed)
    data = old_folder + bytes(prefixed) + pad(B) + END
    path = tmp_path / "t.tar"
    path.write_bytes(data)
    assert _vouched(data)
    found, _ = _outcome(path, False, monkeypatch)
    assert [m.path for m in found] == ["d/a.JPEG", "pre/fx/b.JPEG"]
    assert _outcome(path, True, monkeypatch) == (found, None)


def test_tars_written_by_gnu_tar_and_pythons_tarfile_are_read_fast(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "n01" / "deep").mkdir(parents=True)
    for i in range(40):
        (src / "n01" / f"img_{i}.JPEG").write_bytes(bytes([i]) * (100 * i + 1))
    (src / "n01" / "deep" / "big.bin").write_bytes(b"x" * (3 << 20))  # past one read
    (src / "n01" / "été.JPEG").write_bytes(b"accented name")
    gnu = tmp_path / "gnu.tar"
    subprocess.run(["tar", "-cf", str(gnu), "-C", str(src), "."], check=True)
    py = tmp_path / "py.tar"
    with tarfile.open(py, "w", format=tarfile.USTAR_FORMAT) as tf:
        tf.add(src / "n01", arcname="n01")
    for path in (gnu, py):
        assert _vouched(path.read_bytes()), path.name
        found, why = _outcome(path, False, monkeypatch)
        assert why is None and len(found) == 42
        assert _outcome(path, True, monkeypatch) == (found, None)


def test_a_tar_of_tars_is_read_fast_at_both_levels(tmp_path):
    inner = tar_of({"x.JPEG": A, "y.JPEG": B})
    outer = tar_of({"n01.tar": inner, "n02.tar": inner})
    found = read_plain(lambda pos, n: outer[pos:pos + n], 0, len(outer), is_tar)
    assert [(p, d) for p, _, _, d in found] == [("n01.tar", None), ("n02.tar", None)]
    _, offset, size, _ = found[1]
    inside = read_plain(lambda pos, n: outer[pos:pos + n], offset, size, is_tar, "n02.tar/")
    assert [p for p, *_ in inside] == ["n02.tar/x.JPEG", "n02.tar/y.JPEG"]
    assert outer[inside[1][1]:inside[1][1] + inside[1][2]] == B


def test_a_signed_or_spaced_size_is_given_up(tmp_path, monkeypatch):
    for field in (b"-0000002000\0", b"+0000002000\0", b"00000_02000\0", b"0000 002000\0"):
        data = header("a", 0, size_field=field) + pad(b"x" * 700) + END
        assert not _vouched(data), field
        path = tmp_path / "t.tar"
        path.write_bytes(data)
        assert _outcome(path, False, monkeypatch) == _outcome(path, True, monkeypatch), field


def test_nested_is_asked_once_a_path_when_the_fast_reader_gives_up(tmp_path):
    # a layout's `nested` may note what it is asked (webdataset lists the shards): the strict
    # reader, reading a tar the fast one gave up on, must not ask again
    inner = tar_of({"x.JPEG": A})
    long_name = "s" * 120 + ".tar"  # a GNU long name: the fast reader gives up there
    with tarfile.open(tmp_path / "t.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        for name in ("a.tar", "b.tar", long_name):
            info = tarfile.TarInfo(name)
            info.size = len(inner)
            tf.addfile(info, io.BytesIO(inner))
    asked = []

    def nested(path):
        asked.append(path)
        return path.endswith(".tar") and "/" not in path

    found = list(tarindex.scan_tar(str(tmp_path / "t.tar"), nested=nested))
    assert [m.path for m in found] == ["a.tar/x.JPEG", "b.tar/x.JPEG", f"{long_name}/x.JPEG"]
    assert sorted(asked) == sorted(set(asked)), asked


def test_progress_counts_each_member_once_when_the_fast_reader_gives_up(tmp_path):
    # the fast reader reports members as it hashes them; where it gives up late (a long
    # name at the end), the strict reader reads them again: the bar must not pass 100%
    members = {f"m{i}.JPEG": bytes([i]) * (300 + i) for i in range(5)}
    members["l" * 120 + ".JPEG"] = b"L" * 999  # (a GNU long name: the fast reader gives up)
    with tarfile.open(tmp_path / "t.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    counted = []
    found = list(tarindex.scan_tar(str(tmp_path / "t.tar"), nested=is_tar,
                                   progress=counted.append))
    assert len(found) == 6 and sum(counted) == sum(map(len, members.values()))
    assert len(counted) == 6  # (each member reported once: 5 by the fast reader, 1 after)
