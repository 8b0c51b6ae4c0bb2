"""Hostile tars, byte by byte: headers written by hand (so a test controls every field),
sparse ones by GNU tar itself, and what GNU `tar -x` makes of any of them.

`hostile_tars(workdir)` returns name -> tar bytes for every case the tar index must
either refuse or read exactly as GNU tar extracts it; `gnu_extract` is the referee.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

BLOCK = 512
END = b"\0" * (2 * BLOCK)
GNU_TAR = "/usr/bin/tar"


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def octal(n: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, n)


def header(name: str | bytes, size: int, kind: bytes = b"0", *, size_field: bytes | None = None,
           checksum_delta: int = 0, linkname: bytes = b"") -> bytes:
    """One ustar header block, its checksum right unless `checksum_delta` says otherwise."""
    raw = name.encode() if isinstance(name, str) else name
    buf = bytearray(BLOCK)
    buf[0:len(raw[:100])] = raw[:100]
    buf[100:108] = octal(0o644, 8)
    buf[108:116] = octal(0, 8)
    buf[116:124] = octal(0, 8)
    buf[124:136] = size_field if size_field is not None else octal(size, 12)
    buf[136:148] = octal(1_700_000_000, 12)
    buf[156:157] = kind
    buf[157:157 + len(linkname)] = linkname
    buf[257:265] = b"ustar\x0000"
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % (sum(buf) + checksum_delta)
    return bytes(buf)


def member(name: str | bytes, data: bytes, kind: bytes = b"0") -> bytes:
    return header(name, len(data), kind) + pad(data)


def record(key: str, value: str | bytes) -> bytes:
    """One PAX record with its exact length."""
    body = b" " + key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode())
    body += b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax(raw: bytes, kind: bytes = b"x") -> bytes:
    return header("././@PaxHeader", len(raw), kind) + pad(raw)


def longname(name: str, kind: bytes = b"L") -> bytes:
    raw = name.encode() + b"\0"
    return header("././@LongLink", len(raw), kind) + pad(raw)


def tar_of(members: dict[str, bytes]) -> bytes:
    return b"".join(member(n, d) for n, d in members.items()) + END


def _data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


A, B, C = _data(1000, 1), _data(3000, 2), _data(700, 3)
GOOD = {"a.JPEG": A, "b.JPEG": b"", "dir/c.JPEG": C}


def _nest(levels: int) -> bytes:
    data = tar_of({"x.JPEG": A})
    for _ in range(levels):
        data = tar_of({"t.tar": data})
    return data


SPARSE_FORMATS = [("sparse-gnu", ["--format=gnu"]),
                  *[(f"sparse-pax-{v}", ["--format=pax", f"--sparse-version={v}"])
                    for v in ("0.0", "0.1", "1.0")]]


def _sparse_tars(workdir: Path) -> dict[str, bytes]:
    """A file with a 3 MiB hole, as GNU tar writes it with --sparse (GNU and PAX formats);
    and, as `<name>-fits`, one with a 1 MiB hole followed by a member of 2 MiB, so that its
    whole size fits in the tar: only the sparse check can refuse those (the 3 MiB ones are
    also longer than the tar, which a size check refuses on its own)."""
    src = workdir / "sparse-src"
    src.mkdir(parents=True, exist_ok=True)
    for name, hole in (("hole.JPEG", 3 << 20), ("small-hole.JPEG", 1 << 20)):
        with open(src / name, "wb") as f:
            f.write(b"head" * 100)
            f.seek(hole)
            f.write(b"tail" * 100)
    (src / "after.JPEG").write_bytes(_data(2 << 20, 5))
    out = {}
    for name, flags in SPARSE_FORMATS:
        for case, members in ((name, ["hole.JPEG"]),
                              (f"{name}-fits", ["small-hole.JPEG", "after.JPEG"])):
            target = workdir / f"{case}.tar"
            subprocess.run([GNU_TAR, "--sparse", *flags, "-cf", str(target), "-C", str(src),
                            *members], check=True)
            out[case] = target.read_bytes()
    return out


def hostile_tars(workdir: Path) -> dict[str, bytes]:
    plain = tar_of(GOOD)
    second = len(member("a.JPEG", A))  # where the second header starts
    inner = tar_of({"x.JPEG": A, "y.JPEG": B})
    short_inner = bytearray(tar_of({"x.JPEG": A}))
    short_inner[0:BLOCK] = header("x.JPEG", 5000)  # more than the inner tar holds
    cases = {
        "plain": plain,
        "zero-size-only": member("empty.JPEG", b"") + END,
        "missing-end-blocks": plain[:-len(END)],
        "one-end-block": plain[:-BLOCK],
        "record-padded": plain + b"\0" * 8192,
        "dot-slash-names": member("./", b"", b"5") + member("./a.JPEG", A) + END,
        "pax-long-name": pax(record("path", "d/" + "p" * 250 + ".JPEG")) +
        member("short", A) + END,
        "gnu-long-name": longname("d/" + "g" * 250 + ".JPEG") + member("short", B) + END,
        "folder-then-files": member("dir/", b"", b"5") + member("dir/a.JPEG", A) + END,
        "nested": member("n01.tar", inner) + member("top.JPEG", C) + END,
        "duplicate-names": member("a.JPEG", A) + member("a.JPEG", B) + END,
        "duplicate-after-dot-slash": member("a.JPEG", A) + member("./a.JPEG", B) + END,
        "duplicate-double-slash": member("d/a.JPEG", A) + member("d//a.JPEG", B) + END,
        "file-and-folder": member("a", A) + member("a/b.JPEG", B) + END,
        "truncated-in-data": plain[:second + BLOCK + 100],
        "truncated-in-header": plain[:second + 200],
        "garbage-mid-archive": plain[:second] + _data(3 * BLOCK, 9) + plain[second:],
        "bad-checksum": member("a.JPEG", A) + header("b.JPEG", len(B), checksum_delta=1) +
        pad(B) + member("c.JPEG", C) + END,
        "negative-size": member("a.JPEG", A) + header("neg.JPEG", 0, size_field=b"\xff" * 12) +
        pad(B) + END,
        "huge-size": member("a.JPEG", A) + header("big.JPEG", 0, size_field=b"77777777777\0") +
        pad(B) + END,
        "size-past-the-end": member("a.JPEG", A) + header("b.JPEG", len(B) + 5000) + pad(B) +
        END,
        "pax-bad-length": pax(b"99 path=x.JPEG\n") + member("short", A) + END,
        "pax-no-newline": pax(b"17 path=x.JPEGxx") + member("short", A) + END,
        "pax-no-equals": pax(b"13 pathx.JPEG\n") + member("short", A) + END,
        "pax-size-not-a-number": pax(record("size", "12ab")) + member("short", A) + END,
        "pax-size-lies": pax(record("size", "10")) + member("short", A) + END,
        "pax-global-path": pax(record("path", "all.JPEG"), b"g") + member("a.JPEG", A) + END,
        "pax-headers-in-a-row": pax(record("comment", "x")) * 3000 + member("a.JPEG", A) + END,
        "two-gnu-long-names": longname("first.JPEG") + longname("second.JPEG") +
        member("short", A) + END,
        "long-name-and-pax-path": longname("gnu.JPEG") + pax(record("path", "pax.JPEG")) +
        member("short", A) + END,
        "trailing-garbage": plain + b"trailing garbage",
        "concatenated-tars": plain + tar_of({"late.JPEG": B}),
        "lone-zero-block": member("a.JPEG", A) + b"\0" * BLOCK + member("b.JPEG", B) + END,
        "nested-member-past-inner-end": member("n01.tar", bytes(short_inner)) +
        member("after.JPEG", _data(6000, 4)) + END,
        "deep-nesting": _nest(12),
        "non-utf8-name": member(b"\xff\xfe.JPEG", A) + END,
        "folder-with-data": header("d/", len(A), b"5") + pad(A) + member("z.JPEG", B) + END,
        "volume-label": member("label", b"", b"V") + member("a.JPEG", A) + END,
        "fifo": member("f", b"", b"6") + END,
        "empty-file": b"",
        "only-zeros": b"\0" * 10240,
    }
    cases.update(_sparse_tars(workdir))
    rng = random.Random(2024)
    for i in range(60):  # random damage to header bytes of a good tar, mostly re-checksummed
        data = bytearray(plain)
        for _ in range(rng.randint(1, 4)):
            at = rng.choice([0, second, second + BLOCK])  # the three headers
            data[at + rng.randrange(BLOCK)] = rng.randrange(256)
            if rng.random() < 0.8:
                data[at + 148:at + 156] = b" " * 8
                data[at + 148:at + 156] = b"%06o\0 " % sum(data[at:at + BLOCK])
        cases[f"damaged-header-{i}"] = bytes(data)
    return cases


def gnu_extract(tar: Path, dest: Path, nested: Callable[[str], bool] = lambda p: False
                ) -> tuple[int, dict[str, bytes]]:
    """GNU tar's exit status and the regular files it extracted (nested tars the
    predicate selects are extracted in turn, their files under 'outer.tar/')."""
    dest.mkdir(parents=True)
    rc = subprocess.run([GNU_TAR, "-xf", str(tar), "-C", str(dest), "--no-same-owner"],
                        capture_output=True).returncode
    files: dict[str, bytes] = {}
    for root, _, names in os.walk(dest):
        for name in names:
            path = Path(root) / name
            rel = path.relative_to(dest).as_posix()
            if path.is_symlink() or not path.is_file():
                files[rel] = b"<not a regular file>"
            elif nested(rel):
                sub_rc, sub = gnu_extract(path, dest.parent / f"{dest.name}-{len(files)}-n",
                                          nested)
                rc = rc or sub_rc
                files.update({f"{rel}/{k}": v for k, v in sub.items()})
            else:
                files[rel] = path.read_bytes()
    shutil.rmtree(dest)
    return rc, files


def is_tar(path: str) -> bool:
    return path.endswith(".tar")

