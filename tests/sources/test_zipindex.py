"""Zips are read in place, exactly as Info-ZIP unzip extracts them, or refused."""

import os
import shutil
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import fsspec
import pytest
import xxhash

from dataset_registry.errors import SourceError, UnsafeMemberError
from dataset_registry.sources.folders import EMPTY_FOLDER
from dataset_registry.sources.zipindex import ZipMember, is_zip, read_zip_member, scan_zip

from ..conftest import tar_bytes
from ..zipkit import (
    EMPTY,
    STORED,
    UNZIP,
    Entry,
    build_zip,
    damaged_zips,
    deflate,
    hostile_zips,
    python_zip,
    unzip_extract,
    write_tree,
)

needs_unzip = pytest.mark.skipif(not Path(UNZIP).exists(),
                                 reason=f"{UNZIP} (Info-ZIP) is the referee and is not installed")
ZIP = shutil.which("zip")

A = os.urandom(1000)
B = b"a line of text, deflate likes it\n" * 50
MEMBERS = {"a.JPEG": A, "empty.JPEG": b"", "d/": b"", "d/e/f/g.txt": B, "d/e/h.txt": A,
           "ünï/файл 😀.JPEG": A, "日本語/é.txt": B}


def index_or_refusal(path: Path) -> tuple[list[ZipMember] | None, SourceError | None]:
    try:
        return list(scan_zip(str(path))), None
    except SourceError as exc:
        return None, exc


def read_back(path: Path, found: list[ZipMember]) -> dict[str, bytes]:
    """Each member as a reader gets it: one pread of its packed bytes, inflated; an empty
    folder (`sources.folders`) as unzip_extract shows one."""
    with open(path, "rb") as f:
        return {m.path: EMPTY if m.xxh3 == EMPTY_FOLDER else
                read_zip_member(os.pread(f.fileno(), m.packed, m.offset), m,
                                f"{path}:{m.path}") for m in found}


def assert_read_as_unzip_extracts(path: Path, found: list[ZipMember], workdir: Path) -> None:
    rc, extracted, said = unzip_extract(path, workdir / f"{path.name}-unzipped")
    empty = rc == 1 and not found and "zipfile is empty" in said  # (unzip's warning)
    assert rc == 0 or empty, (path.name, rc, said)
    read = read_back(path, found)
    assert read == extracted, path.name
    assert len(read) == len(found)  # (no path twice)
    assert all(xxhash.xxh3_128_hexdigest(read[m.path]) == m.xxh3 for m in found
               if m.xxh3 != EMPTY_FOLDER), path.name


def test_is_zip():
    assert is_zip(build_zip([Entry("a", A)])[:4]) and is_zip(build_zip([]))
    assert not is_zip(tar_bytes({"a": A})) and not is_zip(b"") and not is_zip(b"PK\x07\x08")


@needs_unzip
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("force_zip64", [False, True])
@pytest.mark.parametrize("streamed", [False, True], ids=["seekable", "data-descriptors"])
def test_python_zips_index_as_unzip_extracts(tmp_path, method, force_zip64, streamed):
    path = tmp_path / "py.zip"
    path.write_bytes(python_zip(MEMBERS, method=method, force_zip64=force_zip64,
                                streamed=streamed))
    found = list(scan_zip(str(path)))
    assert [m.path for m in found] == [n for n in MEMBERS if not n.endswith("/")]
    assert {m.method for m in found} == {method}
    assert all(m.packed == m.size for m in found if m.method == STORED)
    assert_read_as_unzip_extracts(path, found, tmp_path)


@needs_unzip
@pytest.mark.skipif(ZIP is None, reason="Info-ZIP zip is not installed")
@pytest.mark.parametrize("flags", [["-r"], ["-r0"], ["-r", "-fz"], ["-r", "-fd"], ["stream"]])
def test_info_zip_zips_index_as_unzip_extracts(tmp_path, flags):
    src = tmp_path / "src"
    write_tree(src, MEMBERS)  # (Info-ZIP stores these names unflagged, raw UTF-8)
    path = tmp_path / "info.zip"
    if flags == ["stream"]:  # to a pipe: data descriptors
        with open(path, "wb") as out:
            subprocess.run([ZIP, "-qr", "-", "."], cwd=src, stdout=out, check=True)
    else:
        subprocess.run([ZIP, "-q", *flags, str(path), "."], cwd=src, check=True)
    found = list(scan_zip(str(path)))
    assert {m.path for m in found} == {n for n in MEMBERS if not n.endswith("/")}
    assert_read_as_unzip_extracts(path, found, tmp_path)


@needs_unzip
def test_large_members_stream_with_flat_memory(tmp_path):
    """24 MiB inflated and 8 MiB stored go through in 1 MiB pieces: memory stays flat."""
    text = b"".join(b"%08d some text that compresses well\n" % i for i in range(600_000))
    path = tmp_path / "large.zip"
    path.write_bytes(python_zip({"text.txt": text[:24 << 20]}))
    stored = tmp_path / "stored.zip"
    stored.write_bytes(python_zip({"random.bin": os.urandom(8 << 20)},
                                  method=zipfile.ZIP_STORED))
    del text
    for zip_path in (path, stored):
        seen: list[int] = []
        tracemalloc.start()
        found = list(scan_zip(str(zip_path), progress=seen.append))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 6 << 20, f"{zip_path.name}: {peak:,} bytes at the peak"
        assert seen == [m.packed for m in found] and found[0].size >= 8 << 20
        assert_read_as_unzip_extracts(zip_path, found, tmp_path)


def test_read_zip_member_round_trips_and_refuses_changed_bytes(tmp_path):
    path = tmp_path / "both.zip"
    path.write_bytes(build_zip([Entry("s.txt", B, method=STORED), Entry("d.txt", B),
                                Entry("e.txt", b"")]))
    found = list(scan_zip(str(path)))
    assert [m.method for m in found] == [0, 8, 8]
    assert read_back(path, found) == {"s.txt": B, "d.txt": B, "e.txt": b""}
    data = path.read_bytes()
    stored, deflated = found[0], found[1]
    packed = data[deflated.offset:deflated.offset + deflated.packed]
    for bad in (packed[:-3], packed + b"xyz", deflate(B + b"more"), b"\xff" * len(packed)):
        with pytest.raises(SourceError, match=r"^both.zip:d.txt: .*did the zip change"):
            read_zip_member(bad, deflated, "both.zip:d.txt")
    with pytest.raises(SourceError, match=r"^both.zip:s.txt: 1,649 packed bytes give 1,649 "
                                          r"bytes, not the 1,650 indexed"):
        read_zip_member(B[:-1], stored, "both.zip:s.txt")
    with pytest.raises(SourceError, match=r"method 12 \(bzip2\) is not supported"):
        read_zip_member(B, ZipMember("x", 0, len(B), len(B), 12, ""), "z.zip:x")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_changed_member_bytes_are_caught_at_scan(tmp_path, method):
    path = tmp_path / "changed.zip"
    path.write_bytes(python_zip({"a.txt": B, "b.txt": B}, method=method))
    second = list(scan_zip(str(path)))[1]
    data = bytearray(path.read_bytes())
    data[second.offset + second.packed // 2] ^= 0x20  # same length, other bytes
    path.write_bytes(data)
    with pytest.raises(SourceError, match=r"^\S*changed.zip: member 'b.txt': "
                                          r"(CRC-32 mismatch|corrupt deflate data)") as info:
        list(scan_zip(str(path)))
    assert info.value.exit_code == 2


def test_opener_reads_through_fsspec(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe("/zips/m.zip", python_zip(MEMBERS))
    found = list(scan_zip("memory://zips/m.zip", opener=lambda p: fs.open(p, "rb")))
    local = tmp_path / "m.zip"
    local.write_bytes(fs.cat("/zips/m.zip"))
    assert found == list(scan_zip(str(local)))
    fs.pipe("/zips/bad.zip", build_zip([Entry("../up.JPEG", A)]))
    with pytest.raises(UnsafeMemberError, match=r"^memory://zips/bad.zip: member '../up.JPEG'"):
        list(scan_zip("memory://zips/bad.zip", opener=lambda p: fs.open(p, "rb")))
    fs.rm("/zips", recursive=True)


def test_a_missing_zip_is_named(tmp_path):
    with pytest.raises(SourceError, match=r"gone.zip: cannot open: No such file"):
        list(scan_zip(str(tmp_path / "gone.zip")))


# -- the property: refused with a clear error, or exactly what unzip extracts ----------------

@pytest.fixture(scope="module")
def hostile():
    return hostile_zips()


READ_OK = {"plain", "stored", "zip64-extras", "zip64-end-records", "descriptors",
           "zip64-descriptors", "descriptor-without-signature", "python-streamed",
           "python-zip64-streamed", "central-order-differs", "comment", "empty-zip",
           "dot-slash-and-double-slash", "unicode-flagged", "unicode-unix-unflagged",
           "unicode-path-extra-same-name", "dot-slash-folder", "folder-entry-after-its-files"}


def _refused_or_as_unzip(name: str, data: bytes, workdir: Path) -> str:
    path = workdir / f"{name}.zip"
    path.write_bytes(data)
    found, refusal = index_or_refusal(path)
    if refusal is not None:
        assert str(refusal).startswith(f"{path}: "), (name, str(refusal))
        assert "\n" not in str(refusal) and refusal.exit_code == 2, name
        assert path.read_bytes() == data
        return "refused"
    assert_read_as_unzip_extracts(path, found, workdir)
    return "read"


@needs_unzip
def test_every_hostile_zip_is_refused_or_read_as_unzip_extracts(hostile, tmp_path):
    outcome = {name: _refused_or_as_unzip(name, data, tmp_path)
               for name, data in hostile.items()}
    assert {n for n, o in outcome.items() if o == "read"} == READ_OK


@needs_unzip
def test_central_directory_order_is_kept(hostile, tmp_path):
    path = tmp_path / "order.zip"
    path.write_bytes(hostile["central-order-differs"])
    found = list(scan_zip(str(path)))
    assert [m.path for m in found] == ["c.txt", "a.JPEG", "b.txt"]
    c, a, b = found
    assert a.offset < b.offset < c.offset  # (the file holds them as a, b, c)


@needs_unzip
def test_damaged_zips_are_refused_or_read_as_unzip_extracts(hostile, tmp_path):
    bases = [hostile["plain"], hostile["descriptors"], hostile["zip64-end-records"],
             python_zip(MEMBERS)]
    if ZIP is not None:  # (Info-ZIP's own extra fields, timestamps and uid/gid, in the way)
        (tmp_path / "src" / "d").mkdir(parents=True)
        (tmp_path / "src" / "d" / "b.txt").write_bytes(B)
        (tmp_path / "src" / "a.JPEG").write_bytes(A)
        subprocess.run([ZIP, "-qr", "../info.zip", "."], cwd=tmp_path / "src", check=True)
        bases.append((tmp_path / "info.zip").read_bytes())
    outcome = {}
    for seed, base in enumerate(bases):
        for name, data in damaged_zips(base, 120, seed).items():
            outcome[name] = _refused_or_as_unzip(name, data, tmp_path)
    counts = {o: sum(v == o for v in outcome.values()) for o in ("read", "refused")}
    assert counts["read"] > 20 and counts["refused"] > 300, counts  # both paths exercised


@pytest.mark.parametrize("name, message", [
    ("empty-file", r"not a zip \(no end-of-central-directory record; it starts with b''\)"),
    ("not-a-zip", "not a zip"),
    ("truncated-in-central-directory", "truncated or damaged zip: no end-of-central-directory "
                                       "record in its last 1,272 bytes"),
    ("truncated-in-data", "truncated or damaged zip"),
    ("data-appended", r"14 bytes follow the zip's end record \(at byte 1,429\): data appended"),
    ("zip-appended", "its offsets point 1,451 bytes before its records: bytes in front of the "
                     "zip"),
    ("stub-prepended", r"its offsets point 26 bytes before its records: bytes in front of the "
                       r"zip \(a self-extractor stub"),
    ("stub-prepended-offsets-adjusted", r"26 bytes in front of its first member or central "
                                        r"directory \(a self-extractor stub"),
    ("comment-length-too-long", "truncated zip: its end record at byte 1,093 announces a "
                                "9-byte comment"),
    ("multi-disk", r"a multi-disk \(split or spanned\) zip"),
    ("member-on-another-disk", "member 'a.JPEG' is on disk 2 of a multi-disk"),
    ("zip64-multi-disk", "a multi-disk .* zip of 2 disks"),
    ("zip64-locator-points-elsewhere", "its ZIP64 locator points to byte 7, not to its ZIP64 "
                                       "end record at byte 1,093"),
    ("zip64-end-records-disagree", r"disagree on the entry count \(1 and 2\)"),
    ("entry-count-too-high", "damaged central directory: no entry 2 of 2 at byte 1,093"),
    ("entry-count-too-low", "damaged central directory: 51 bytes after its 1 entries"),
    ("gap-between-members", "6 bytes at byte 1,041, after member 'a.JPEG', that no member "
                            "accounts for"),
    ("overlapping-members", r"member 'a.JPEG': its data \(bytes 36 to 1,041\) overlaps another "
                            "member at byte 0"),
    ("quoted-overlap", r"member 'a.JPEG': its data \(bytes 36 to 1,072\) overlaps another "
                       "member at byte 36"),
    ("data-overlaps-central-directory", r"its data \(bytes 36 to 1,076\) overlaps the central "
                                        "directory at byte 1,036"),
    ("size-past-the-end", "member 'a.JPEG': its 99,999 bytes of data run past the end of the "
                          "file"),
    ("no-zip64-extra-for-full-size", "member 'a.JPEG' has 0xffffffff in a header field and no "
                                     "ZIP64 value for it"),
    ("malformed-extra", r"member 'a.JPEG' has a malformed extra field block \(field 0x5455"),
    ("encrypted", "member 'a.JPEG' is encrypted; refusing to read this zip"),
    ("aes-method", r"member 'a.JPEG' is encrypted \(AES, method 99\)"),
    ("bzip2", r"member 'a.JPEG' uses compression method 12 \(bzip2\): only stored and deflate"),
    ("lzma", r"uses compression method 14 \(lzma\)"),
    ("zstd", r"uses compression method 93 \(zstd\)"),
    ("needs-version-6.3", "member 'a.JPEG' needs zip version 6.3 to extract"),
    ("needs-vms", r"member 'a.JPEG' needs host system 2 to extract \('version needed' 0x0214\)"),
    ("absolute-path", "member '/etc/passwd' has an absolute path; refusing to read this zip"),
    ("drive-letter", "member 'C:/x.JPEG' starts with a drive letter"),
    ("dot-dot", "member 'a/../../x.jpg' has a '..' path component; refusing to read this zip"),
    ("backslash", r"member 'a\\\\b.JPEG' has a backslash in its name"),
    ("control-character", r"member 'a\\x01b.JPEG' has control characters in its name"),
    ("not-utf8-flagged", r"member b'\\xff\\xfe.JPEG' has a name that is not UTF-8 though its "
                         "UTF-8 flag is set"),
    ("not-utf8", r"member b'\\xe9t\\xe9.JPEG' has a name that is not UTF-8; refusing"),
    ("non-ascii-from-dos", "member 'é.JPEG' has a non-ASCII name from MS-DOS, which unzip "
                           "converts through a DOS code page"),
    ("unicode-path-extra", "member 'a.txt' has a second name 'ü.txt' in a Unicode Path extra "
                           "field"),
    ("trailing-dot", r"member 'd/.' ends in '.' \(unzip writes it as '_'\)"),
    ("vms-version", "member 'a.JPEG;1' ends in ';' and digits"),
    ("long-component", r"member 'd/x{98}'...\(302 bytes\) has a name too long"),
    ("symlink", "member 'link.JPEG' is a symbolic link; refusing to read this zip"),
    ("fifo", r"member 'fifo' is a device, fifo or other special file \(mode 0o10644\)"),
    ("folder-mode-file-name", "member 'd' is a folder by its mode but a file by its name"),
    ("folder-with-data", "member 'd/' is a folder carrying 1,000 bytes of data"),
    ("duplicate-names", "member 'a.JPEG' extracts to 'a.JPEG' like an earlier member"),
    ("duplicate-after-dot-slash", "member './a.JPEG' extracts to 'a.JPEG' like an earlier "
                                  "member"),
    ("duplicate-folders", "member 'd/' extracts to 'd' like an earlier member"),
    ("file-and-folder", "member 'a/b.JPEG': 'a' is both a file and a folder"),
    ("file-then-folder-entry", "member 'a/': 'a' is both a file and a folder"),
    ("empty-name", "member '' has an empty name"),
    ("local-name-differs", r"member 'a.JPEG': its local header \(at byte 0\) and central "
                           "directory entry disagree on the name 'b.JPEG'"),
    ("local-method-differs", r"disagree on the compression method \(0 \(stored\), not 8 "
                             r"\(deflate\)\)"),
    ("local-size-differs", "disagree on the CRC and sizes"),
    ("local-descriptor-flag-differs", r"disagree on the flags \(0x0000, not 0x0008\)"),
    ("stored-sizes-differ", "member 'a.JPEG' is stored, but its packed size 1,003 is not its "
                            "size 1,000"),
    ("ratio-bomb", "member 'zeros.bin' inflates 2,049 bytes to 2,097,152, more than 100 times"),
    ("crc-mismatch", r"member 'a.JPEG': CRC-32 mismatch \(0x[0-9a-f]{8}, its header says "
                     r"0x00000001\)"),
    ("stored-bytes-changed", "member 'a.JPEG': CRC-32 mismatch"),
    ("inflates-past-size", "member 'b.txt': inflates past its size of 10 bytes"),
    ("inflates-short-of-size", "member 'b.txt': holds 1,650 bytes, not the 2,000 its header "
                               "says"),
    ("deflate-cut-short", "member 'b.txt': its deflate stream is cut short"),
    ("deflate-ends-early", "member 'b.txt': its deflate stream ends 3 bytes before its data "
                           "does"),
    ("deflate-corrupt", r"member 'b.txt': corrupt deflate data \(Error -3"),
    ("descriptor-disagrees", r"member 'a.JPEG': its data descriptor \(16 bytes after its "
                             r"data\) does not hold the CRC and sizes"),
])
def test_hostile_zip_message_names_the_zip_and_the_member(hostile, tmp_path, name, message):
    path = tmp_path / f"{name}.zip"
    path.write_bytes(hostile[name])
    with pytest.raises(SourceError, match=message) as info:
        list(scan_zip(str(path)))
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    unsafe = {"absolute-path", "drive-letter", "dot-dot", "backslash", "control-character",
              "symlink", "fifo", "duplicate-names", "file-and-folder", "trailing-dot"}
    assert isinstance(info.value, UnsafeMemberError) or name not in unsafe
