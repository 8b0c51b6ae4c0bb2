"""Zips byte by byte: every header field written by hand (so a test controls each one,
including the ones `zipfile` would never write), and what Info-ZIP `unzip` makes of them.

`build_zip` lays out local headers, data, data descriptors, the central directory and
the end records from `Entry`s; `unzip_extract` is the referee, run in a UTF-8 locale.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

UNZIP = "/usr/bin/unzip"
STORED, DEFLATED = 0, 8
UTF8_FLAG, DESCRIPTOR_FLAG = 1 << 11, 1 << 3
UNIX = 3


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def extra(header_id: int, body: bytes) -> bytes:
    return struct.pack("<HH", header_id, len(body)) + body


@dataclass
class Entry:
    """One member. `local` / `central` override fields of that header only (keys: name,
    flags, method, crc, csize, usize, version, made, external, extra, disk, offset)."""

    name: str | bytes
    data: bytes = b""
    method: int = DEFLATED
    flags: int = 0
    mode: int = 0o100644
    zip64: bool = False  # sizes (and offset) in ZIP64 extra fields, 0xFFFFFFFF in the headers
    descriptor: bool = False  # sizes and CRC after the data (flag bit 3), zeros in the header
    descriptor_signature: bool = True  # (optional: some writers leave it out)
    packed: bytes | None = None  # the bytes stored for the data, if not the data compressed
    local: dict = field(default_factory=dict)
    central: dict = field(default_factory=dict)

    def raw_name(self) -> bytes:
        return self.name.encode() if isinstance(self.name, str) else self.name


def write_tree(folder: Path, members: dict[str, bytes]) -> None:
    """`members` as files under `folder` (names ending in '/' as folders), for Info-ZIP's
    `zip` to pack."""
    for name, data in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if not name.endswith("/"):
            (folder / name).write_bytes(data)


def build_zip(entries: list[Entry], *, comment: bytes = b"", zip64_end: bool = False,
              between: bytes = b"", eocd: dict | None = None, locator: dict | None = None,
              cd_order: list[int] | None = None) -> bytes:
    """A zip of `entries`; `between` goes after each member's data (junk in the gaps),
    `zip64_end` writes the ZIP64 end record and locator (`locator` overrides its disk,
    offset and disks), `eocd` overrides end fields (disk, cd_disk, entries_disk, entries,
    cd_size, cd_offset, comment_length), `cd_order` lists the central directory's entries
    in another order than the members'."""
    out = bytearray()
    centrals = []
    for e in entries:
        name = e.raw_name()
        packed = e.packed if e.packed is not None else \
            (deflate(e.data) if e.method == DEFLATED else e.data)
        crc = zlib.crc32(e.data)
        flags = e.flags | (DESCRIPTOR_FLAG if e.descriptor else 0)
        version = 45 if e.zip64 else 20
        offset = len(out)
        big = 0xFFFFFFFF
        lfields = {"name": name, "flags": flags, "method": e.method, "crc": crc,
                   "csize": len(packed), "usize": len(e.data), "version": version,
                   "extra": b""}
        if e.zip64:
            lfields.update(csize=big, usize=big,
                           extra=extra(1, struct.pack("<QQ", len(e.data), len(packed))))
        if e.descriptor:
            lfields.update(crc=0, csize=0 if not e.zip64 else big,
                           usize=0 if not e.zip64 else big)
        lfields.update(e.local)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", lfields["version"],
                           lfields["flags"], lfields["method"], 0, 0x21, lfields["crc"],
                           lfields["csize"], lfields["usize"], len(lfields["name"]),
                           len(lfields["extra"]))
        out += lfields["name"] + lfields["extra"] + packed
        if e.descriptor:
            sizes = "QQ" if e.zip64 else "II"
            out += b"PK\x07\x08" if e.descriptor_signature else b""
            out += struct.pack("<I" + sizes, crc, len(packed), len(e.data))
        out += between
        cfields = {"name": name, "flags": flags, "method": e.method, "crc": crc,
                   "csize": len(packed), "usize": len(e.data), "version": version,
                   "made": (UNIX << 8) | 30, "external": e.mode << 16, "extra": b"",
                   "disk": 0, "offset": offset}
        if e.zip64:
            cfields.update(csize=big, usize=big, offset=big, extra=extra(
                1, struct.pack("<QQQ", len(e.data), len(packed), offset)))
        cfields.update(e.central)
        centrals.append(struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", cfields["made"], cfields["version"],
            cfields["flags"], cfields["method"], 0, 0x21, cfields["crc"], cfields["csize"],
            cfields["usize"], len(cfields["name"]), len(cfields["extra"]), 0,
            cfields["disk"], 0, cfields["external"], cfields["offset"]) +
            cfields["name"] + cfields["extra"])
    cd_offset = len(out)
    cd = b"".join(centrals[i] for i in (cd_order or range(len(centrals))))
    out += cd
    end = {"disk": 0, "cd_disk": 0, "entries_disk": len(entries), "entries": len(entries),
           "cd_size": len(cd), "cd_offset": cd_offset, "comment_length": len(comment)}
    if zip64_end:
        record_at = len(out)
        out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(entries),
                           len(entries), len(cd), cd_offset)
        where = {"disk": 0, "offset": record_at, "disks": 1, **(locator or {})}
        out += struct.pack("<4sIQI", b"PK\x06\x07", where["disk"], where["offset"],
                           where["disks"])
        end.update(entries_disk=0xFFFF, entries=0xFFFF, cd_size=0xFFFFFFFF,
                   cd_offset=0xFFFFFFFF)
    end.update(eocd or {})
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", end["disk"], end["cd_disk"],
                       end["entries_disk"], end["entries"], end["cd_size"], end["cd_offset"],
                       end["comment_length"])
    return bytes(out + comment)


EMPTY = b"<an empty folder>"


def unzip_extract(path: Path, dest: Path) -> tuple[int, dict[str, bytes], str]:
    """Info-ZIP unzip's exit status, the regular files it wrote (anything else shows as
    '<not a regular file>'; an empty folder as `EMPTY`, its path ending in '/') and what it
    printed, run in a UTF-8 locale (its names are then written as the zip's UTF-8 bytes)."""
    dest.mkdir(parents=True)
    done = subprocess.run([UNZIP, "-q", str(path), "-d", str(dest)], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(dest):
        if not dirs and not names and Path(root) != dest:
            files[Path(root).relative_to(dest).as_posix() + "/"] = EMPTY
        for name in names + [d for d in dirs if (Path(root) / d).is_symlink()]:
            path_ = Path(root) / name
            rel = path_.relative_to(dest).as_posix()
            if path_.is_symlink() or not path_.is_file():
                files[rel] = b"<not a regular file>"
            else:
                files[rel] = path_.read_bytes()
    shutil.rmtree(dest)
    return done.returncode, files, (done.stdout + done.stderr).decode(errors="replace")


class _Unseekable(io.RawIOBase):
    """A write-only stream without tell or seek: zipfile then writes data descriptors."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        return self.buf.write(data)


def python_zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED,
               force_zip64: bool = False, streamed: bool = False) -> bytes:
    """A zip written by Python's zipfile: `streamed` writes to an unseekable stream (data
    descriptors), `force_zip64` puts ZIP64 extra fields on every member; names ending
    in '/' are folders."""
    out = _Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zf:  # type: ignore[arg-type]
        for name, data in members.items():
            if name.endswith("/"):
                zf.mkdir(name) if hasattr(zf, "mkdir") else zf.writestr(name, b"")
                continue
            info = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=force_zip64) as member:
                member.write(data)
    return (out.buf if isinstance(out, _Unseekable) else out).getvalue()


def _data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


A, B = _data(1000, 1), b"a line of text, deflate likes it\n" * 50
STUB = b"MZ\x90\0 a self-extractor stub"
GOOD = {"a.JPEG": A, "empty.JPEG": b"", "dir/": b"", "dir/sub/b.txt": B}


def _shift(data: bytes, by: int) -> bytes:
    out = bytearray(data)
    end = out.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", out, end + 16)[0]
    struct.pack_into("<I", out, end + 16, cd_offset + by)
    at = cd_offset + by
    while out[at:at + 4] == b"PK\x01\x02":
        offset = struct.unpack_from("<I", out, at + 42)[0]
        struct.pack_into("<I", out, at + 42, offset + by)
        at += 46 + sum(struct.unpack_from("<HHH", out, at + 28))
    return bytes(out)


def _quoted_overlap() -> bytes:
    """Member 'b's local header and data sit inside member 'a's stored data."""
    inner = build_zip([Entry("b.JPEG", A, method=STORED)])
    inner = inner[:inner.find(b"PK\x01\x02")]
    outer = [Entry("a.JPEG", inner, method=STORED), Entry("b.JPEG", A, method=STORED)]
    data = build_zip(outer)
    end = data.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", data, end + 16)[0]
    second = data.find(b"PK\x01\x02", cd_offset + 4)
    fixed = bytearray(data)
    struct.pack_into("<I", fixed, second + 42, 30 + len("a.JPEG"))  # b inside a's data
    return bytes(fixed)


def hostile_zips() -> dict[str, bytes]:
    """name -> zip bytes: every case the zip index must refuse or read as unzip does."""
    big_zeros = b"\0" * (2 << 20)
    up = extra(0x7075, struct.pack("<BI", 1, zlib.crc32(b"a.txt")) + "ü.txt".encode())
    plain = build_zip([Entry(n, d) for n, d in GOOD.items()])
    cases = {
        "plain": plain,
        "stored": build_zip([Entry(n, d, method=STORED) for n, d in GOOD.items()]),
        "zip64-extras": build_zip([Entry(n, d, zip64=True) for n, d in GOOD.items()]),
        "zip64-end-records": build_zip([Entry(n, d, zip64=True) for n, d in GOOD.items()],
                                       zip64_end=True),
        "descriptors": build_zip([Entry(n, d, descriptor=True) for n, d in GOOD.items()]),
        "zip64-descriptors": build_zip([Entry(n, d, descriptor=True, zip64=True)
                                        for n, d in GOOD.items()]),
        "descriptor-without-signature": build_zip([Entry("a.JPEG", A, descriptor=True,
                                                         descriptor_signature=False)]),
        "python-streamed": python_zip({"a.JPEG": A, "b.txt": B}, streamed=True),
        "python-zip64-streamed": python_zip({"a.JPEG": A}, streamed=True, force_zip64=True),
        "central-order-differs": build_zip([Entry("a.JPEG", A), Entry("b.txt", B),
                                            Entry("c.txt", b"c")], cd_order=[2, 0, 1]),
        "folder-entry-after-its-files": build_zip([Entry("d/e/a.JPEG", A), Entry("d/e/", b""),
                                                   Entry("d/", b"")]),  # (find -depth | zip -@)
        "comment": build_zip([Entry("a.JPEG", A)], comment=b"a zip comment"),
        "empty-zip": build_zip([]),
        "dot-slash-and-double-slash": build_zip([Entry("./a.JPEG", A), Entry("d//b.txt", B),
                                                 Entry("d/./c.txt", b"c")]),
        "unicode-flagged": build_zip([Entry("ünï/файл 😀.JPEG", A, flags=UTF8_FLAG)]),
        "unicode-unix-unflagged": build_zip([Entry("日本語.txt", B)]),
        "unicode-path-extra-same-name": build_zip([Entry("a.txt", A, local={"extra": extra(
            0x7075, struct.pack("<BI", 1, zlib.crc32(b"a.txt")) + b"a.txt")})]),
        # -- structure
        "empty-file": b"",
        "not-a-zip": _data(3000, 5),
        "truncated-in-central-directory": plain[:plain.find(b"PK\x01\x02") + 60],
        "truncated-in-data": plain[:200],
        "data-appended": plain + b"appended bytes",
        "zip-appended": plain + build_zip([Entry("late.JPEG", A)]),
        "stub-prepended": STUB + plain,
        "stub-prepended-offsets-adjusted": _shift(STUB + plain, len(STUB)),
        "comment-length-too-long": build_zip([Entry("a.JPEG", A)], eocd={"comment_length": 9}),
        "multi-disk": build_zip([Entry("a.JPEG", A)], eocd={"disk": 1, "cd_disk": 1}),
        "member-on-another-disk": build_zip([Entry("a.JPEG", A, central={"disk": 1})]),
        "zip64-multi-disk": build_zip([Entry("a.JPEG", A)], zip64_end=True,
                                      locator={"disks": 2}),
        "zip64-locator-points-elsewhere": build_zip([Entry("a.JPEG", A)], zip64_end=True,
                                                    locator={"offset": 7}),
        "zip64-end-records-disagree": build_zip([Entry("a.JPEG", A), Entry("b.txt", B)],
                                                zip64_end=True, eocd={"entries": 1}),
        "entry-count-too-high": build_zip([Entry("a.JPEG", A)], eocd={"entries": 2,
                                                                      "entries_disk": 2}),
        "entry-count-too-low": build_zip([Entry("a.JPEG", A), Entry("b.txt", B)],
                                         eocd={"entries": 1, "entries_disk": 1}),
        "gap-between-members": build_zip([Entry("a.JPEG", A), Entry("b.txt", B)],
                                         between=b"hidden"),
        "overlapping-members": build_zip([Entry("a.JPEG", A), Entry("b.JPEG", A,
                                                                    central={"offset": 0})]),
        "quoted-overlap": _quoted_overlap(),
        "data-overlaps-central-directory": build_zip([Entry(
            "a.JPEG", A, method=STORED, local={"csize": 1040, "usize": 1040},
            central={"csize": 1040, "usize": 1040})]),
        "size-past-the-end": build_zip([Entry(
            "a.JPEG", A, method=STORED, local={"csize": 99_999, "usize": 99_999},
            central={"csize": 99_999, "usize": 99_999})]),
        "no-zip64-extra-for-full-size": build_zip([Entry("a.JPEG", A,
                                                         central={"usize": 0xFFFFFFFF})]),
        "malformed-extra": build_zip([Entry("a.JPEG", A, central={"extra": b"UT\x09\0abc"})]),
        # -- members
        "encrypted": build_zip([Entry("a.JPEG", A, flags=1)]),
        "aes-method": build_zip([Entry("a.JPEG", A, method=99, packed=A)]),
        "bzip2": python_zip({"a.JPEG": A}, method=zipfile.ZIP_BZIP2),
        "lzma": python_zip({"a.JPEG": A}, method=zipfile.ZIP_LZMA),
        "zstd": build_zip([Entry("a.JPEG", A, method=93, packed=A)]),
        "needs-version-6.3": build_zip([Entry("a.JPEG", A, central={"version": 63})]),
        "needs-vms": build_zip([Entry("a.JPEG", A, central={"version": 2 << 8 | 20})]),
        "absolute-path": build_zip([Entry("/etc/passwd", A)]),
        "drive-letter": build_zip([Entry("C:/x.JPEG", A)]),
        "dot-dot": build_zip([Entry("a/../../x.jpg", A)]),
        "backslash": build_zip([Entry("a\\b.JPEG", A)]),
        "control-character": build_zip([Entry("a\x01b.JPEG", A)]),
        "not-utf8-flagged": build_zip([Entry(b"\xff\xfe.JPEG", A, flags=UTF8_FLAG)]),
        "not-utf8": build_zip([Entry(b"\xe9t\xe9.JPEG", A)]),
        "non-ascii-from-dos": build_zip([Entry("é.JPEG", A, flags=UTF8_FLAG,
                                               central={"made": 20})]),
        "unicode-path-extra": build_zip([Entry("a.txt", A, local={"extra": up},
                                               central={"extra": up})]),
        "trailing-dot": build_zip([Entry("d/.", A)]),
        "vms-version": build_zip([Entry("a.JPEG;1", A)]),
        "long-component": build_zip([Entry("d/" + "x" * 300, A)]),
        "symlink": build_zip([Entry("link.JPEG", b"/etc/shadow", mode=0o120777)]),
        "fifo": build_zip([Entry("fifo", b"", mode=0o010644)]),
        "folder-mode-file-name": build_zip([Entry("d", b"", mode=0o040755)]),
        "folder-with-data": build_zip([Entry("d/", A)]),
        "duplicate-names": build_zip([Entry("a.JPEG", A), Entry("a.JPEG", B)]),
        "duplicate-after-dot-slash": build_zip([Entry("a.JPEG", A), Entry("./a.JPEG", B)]),
        "file-and-folder": build_zip([Entry("a", A), Entry("a/b.JPEG", B)]),
        "file-then-folder-entry": build_zip([Entry("a", A), Entry("a/", b"")]),
        "duplicate-folders": build_zip([Entry("d/", b""), Entry("d/", b"")]),
        "empty-name": build_zip([Entry("", A)]),
        "dot-slash-folder": build_zip([Entry("./", b""), Entry("a.JPEG", A)]),
        "local-name-differs": build_zip([Entry("a.JPEG", A, local={"name": b"b.JPEG"})]),
        "local-method-differs": build_zip([Entry("a.JPEG", A, local={"method": STORED})]),
        "local-size-differs": build_zip([Entry("a.JPEG", A, local={"usize": 5})]),
        "local-descriptor-flag-differs": build_zip([Entry("a.JPEG", A, central={
            "flags": DESCRIPTOR_FLAG})]),
        "stored-sizes-differ": build_zip([Entry("a.JPEG", A, method=STORED, packed=A + b"xyz",
                                                local={"usize": 1000},
                                                central={"usize": 1000})]),
        "ratio-bomb": build_zip([Entry("zeros.bin", big_zeros)]),
        "crc-mismatch": build_zip([Entry("a.JPEG", A, local={"crc": 1}, central={"crc": 1})]),
        "stored-bytes-changed": _flip(build_zip([Entry("a.JPEG", A, method=STORED)]),
                                      30 + 6 + 500),
        "inflates-past-size": build_zip([Entry("b.txt", B, local={"usize": 10},
                                               central={"usize": 10})]),
        "inflates-short-of-size": build_zip([Entry("b.txt", B, local={"usize": 2000},
                                                   central={"usize": 2000})]),
        "deflate-cut-short": build_zip([Entry("b.txt", B, packed=deflate(B)[:-5])]),
        "deflate-ends-early": build_zip([Entry("b.txt", B, packed=deflate(B) + b"xyz")]),
        "deflate-corrupt": build_zip([Entry("b.txt", B, packed=b"\xff" * 40)]),
        "descriptor-disagrees": _flip(build_zip([Entry("a.JPEG", A, descriptor=True)]),
                                      None, b"PK\x07\x08", 4),
    }
    return cases


def _flip(data: bytes, at: int | None, after: bytes = b"", plus: int = 0) -> bytes:
    """`data` with one byte inverted, at `at` or `plus` bytes after the first `after`."""
    out = bytearray(data)
    at = at if at is not None else out.find(after) + plus
    out[at] ^= 0xFF
    return bytes(out)


def damaged_zips(base: bytes, count: int, seed: int) -> dict[str, bytes]:
    """Seeded random damage to `base`: bytes changed in its headers, central directory
    and end record (not in member data, which the CRC guards), some of it truncated."""
    rng = random.Random(seed)
    end = base.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", base, end + 16)[0]
    headers = list(range(cd_offset, len(base)))
    at = 0
    while base[at:at + 4] == b"PK\x03\x04":
        name_len, extra_len = struct.unpack_from("<HH", base, at + 26)
        headers += range(at, at + 30 + name_len + extra_len)
        next_at = base.find(b"PK\x03\x04", at + 4, cd_offset)
        at = next_at if next_at > 0 else cd_offset
    out = {}
    for i in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            at = rng.choice(headers)
            if rng.random() < 0.5:
                data[at] ^= 1 << rng.randrange(8)
            else:
                data[at] = rng.choice([0, 0xFF, rng.randrange(256)])
        if rng.random() < 0.15:
            del data[rng.randrange(len(data)):]
        out[f"damaged-{seed}-{i}"] = bytes(data)
    return out
