"""What a zip member must be to be read: the checks behind zipindex, by member.

A member is refused unless the path Info-ZIP `unzip` writes it to is its name, plainly:
no absolute paths, drive letters, '..', backslashes, control characters, names unzip
rewrites (a trailing '.' or ';1', DOS code pages, a second Unicode Path name), no links
or special files, no encryption, only stored and deflate, no deflate ratio past
MAX_RATIO, and each path extracted once, never both a file and a folder.
"""

from __future__ import annotations

import re
import stat
import struct

from ..errors import SourceError, UnsafeMemberError

STORED, DEFLATED = 0, 8

MAX_RATIO = 100
RATIO_FREE_SIZE = 1 << 20
"""A deflated member larger than RATIO_FREE_SIZE may be at most MAX_RATIO times its
compressed size (deflate itself reaches ~1032): past that it is a zip bomb for whoever
inflates it whole (`read_zip_member` does), and real images and labels stay far below."""

MAX_VERSION_NEEDED = 46
"""unzip 6.0 skips members needing a later zip version (ZIP64 is 4.5, bzip2 4.6)."""

METHODS = {0: "stored", 1: "shrink", 2: "reduce", 3: "reduce", 4: "reduce", 5: "reduce",
           6: "implode", 8: "deflate", 9: "deflate64", 10: "PKWARE implode", 12: "bzip2",
           14: "lzma", 18: "IBM TERSE", 19: "IBM LZ77", 93: "zstd", 94: "mp3", 95: "xz",
           96: "jpeg", 97: "wavpack", 98: "ppmd", 99: "AES encryption"}

ENCRYPTED = 1 | 1 << 6 | 1 << 13  # traditional, strong, masked central directory
UTF8_NAME = 1 << 11
ZIP64_EXTRA, UNICODE_PATH_EXTRA = 0x0001, 0x7075
FULL32, FULL16 = 0xFFFFFFFF, 0xFFFF
# hosts whose names unzip converts from a DOS code page (even with the UTF-8 flag set)
_CODE_PAGE_HOSTS = {0: "MS-DOS", 6: "OS/2", 11: "Windows NT"}
_VMS_VERSION = re.compile(rb";[0-9]*\Z")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def method_name(method: int) -> str:
    return f"{method} ({METHODS.get(method, 'unknown')})"


def shown(raw: bytes) -> str:
    """A member name for messages: quoted, undecodable bytes escaped, cut at 100 bytes."""
    cut = f"...({len(raw):,} bytes)" if len(raw) > 100 else ""
    try:
        return repr(raw[:100].decode("utf-8")) + cut
    except UnicodeDecodeError:
        return repr(raw[:100]) + cut


def extra_fields(extras: bytes, member: str) -> dict[int, bytes]:
    """The extra fields (id -> body), which must fill the block exactly (zipalign's
    zero padding aside); readers would disagree on a malformed block's ZIP64 sizes."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(extras):
        field_id, length = struct.unpack_from("<HH", extras, pos)
        body = extras[pos + 4:pos + 4 + length]
        if len(body) != length or (field_id in fields and field_id):
            raise SourceError(f"{member} has a malformed extra field block (field "
                              f"{field_id:#06x} at byte {pos}); refusing to read this zip")
        fields[field_id] = body
        pos += 4 + length
    if extras[pos:].strip(b"\0"):
        raise SourceError(f"{member} has a malformed extra field block ({len(extras) - pos} "
                          "stray bytes at its end); refusing to read this zip")
    return fields


def zip64_values(fields: dict[int, bytes], values: list[int], member: str) -> list[int]:
    """Size, packed size, offset, disk: those full in the header come from the ZIP64
    extra field, in that order (as both zipfile and unzip read it)."""
    if FULL32 not in values[:3] and FULL16 not in values[3:]:
        return values
    body = fields.get(ZIP64_EXTRA, b"")
    pos = 0
    out = list(values)
    for i, (value, full, width) in enumerate(zip(values, (FULL32, FULL32, FULL32, FULL16),
                                                 ("<Q", "<Q", "<Q", "<I"), strict=False)):
        if value != full:
            continue
        n = struct.calcsize(width)
        if len(body) < pos + n:
            raise SourceError(f"{member} has {value:#x} in a header field and no ZIP64 "
                              "value for it; refusing to read this zip")
        out[i] = struct.unpack_from(width, body, pos)[0]
        pos += n
    return out


def check_name(raw: bytes, flags: int, host: int, fields: dict[int, bytes],
               member: str) -> tuple[str, bool]:
    """The path unzip writes the member to, or an UnsafeMemberError naming why not."""
    unicode_path = fields.get(UNICODE_PATH_EXTRA)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = None
    parts = raw.split(b"/")
    last = parts[-1]
    if not raw:
        why = "has an empty name"
    elif raw.startswith(b"/"):
        why = "has an absolute path"
    elif re.match(rb"[A-Za-z]:", raw):
        why = "starts with a drive letter"
    elif b".." in parts:
        why = "has a '..' path component"
    elif b"\\" in raw:
        why = "has a backslash in its name (unzip would turn it into a folder separator)"
    elif _CONTROL.search(raw):
        why = "has control characters in its name (unzip drops them)"
    elif name is None:
        why = "has a name that is not UTF-8" + (" though its UTF-8 flag is set"
                                                  if flags & UTF8_NAME else "")
    elif not raw.isascii() and host in _CODE_PAGE_HOSTS:
        why = (f"has a non-ASCII name from {_CODE_PAGE_HOSTS[host]}, which unzip converts "
               "through a DOS code page")
    elif unicode_path is not None and unicode_path[5:] != raw:
        why = (f"has a second name {shown(unicode_path[5:])} in a Unicode Path extra field "
               "(unzip takes that one, other readers the first)")
    elif last == b".":
        why = "ends in '.' (unzip writes it as '_')"
    elif _VMS_VERSION.search(last):
        why = "ends in ';' and digits (unzip strips them as a VMS version number)"
    elif len(raw) > 255 and (len(raw) > 4095 or any(len(p) > 255 for p in parts)):
        why = "has a name too long for a file system (4,095 bytes, 255 a component)"
    else:
        path = "/".join(p for p in name.split("/") if p not in ("", "."))
        folder = name.endswith("/")
        if path or folder:
            return path, folder
        why = "has an empty name"
    raise UnsafeMemberError(f"{member} {why}; refusing to read this zip")


def check_entry(flags: int, method: int, needed: int, size: int, packed: int,
                external: int, folder: bool, disk: int, member: str) -> None:
    """Refuse links, special files, encryption, other methods, later zip versions,
    sizes that cannot be right and deflate ratios past MAX_RATIO."""
    kind = stat.S_IFMT(external >> 16)  # unix mode, from any host (as unzip reads it)
    if kind == stat.S_IFLNK:
        raise UnsafeMemberError(f"{member} is a symbolic link; refusing to read this zip")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeMemberError(f"{member} is a device, fifo or other special file (mode "
                                f"{external >> 16:#o}); refusing to read this zip")
    if kind == stat.S_IFDIR and not folder:
        why = "is a folder by its mode but a file by its name (no trailing '/')"
    elif folder and size:
        why = f"is a folder carrying {size:,} bytes of data"
    elif disk:
        why = f"is on disk {disk + 1} of a multi-disk (split or spanned) zip"
    elif flags & ENCRYPTED or method == 99:
        why = "is encrypted" + (" (AES, method 99)" if method == 99 else "")
    elif method not in (STORED, DEFLATED):
        why = f"uses compression method {method_name(method)}: only stored and deflate are read"
    elif needed >> 8:  # (unzip asks before extracting a member that needs VMS)
        why = (f"needs host system {needed >> 8} to extract ('version needed' {needed:#06x}); "
               "zips made elsewhere leave it 0")
    elif needed > MAX_VERSION_NEEDED:
        why = (f"needs zip version {needed // 10}.{needed % 10} to extract (unzip 6.0 reads "
               "up to 4.6)")
    elif method == STORED and packed != size:
        why = f"is stored, but its packed size {packed:,} is not its size {size:,}"
    elif method == DEFLATED and size > RATIO_FREE_SIZE and size > MAX_RATIO * packed:
        why = (f"inflates {packed:,} bytes to {size:,}, more than {MAX_RATIO} times "
               "(a zip bomb?)")
    else:
        return
    raise SourceError(f"{member} {why}; refusing to read this zip")


class Names:
    """The paths unzip writes: each at most once, and none both a file and a folder. A
    folder's own entry may come after members inside it (`find -depth | zip -@` writes
    them so): unzip makes the folder with the first member and sets its mode then."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.files: set[str] = set()
        self.folders: set[str] = set()  # every folder, named by an entry or above one
        self.entries: set[str] = set()  # the folders named by an entry of their own

    def add(self, path: str, folder: bool, shown: str) -> None:
        if not path:  # the zip's own folder ("./")
            return
        if path in (self.entries if folder else self.files):
            raise UnsafeMemberError(f"{self.where}: member {shown} extracts to {path!r} like "
                                    "an earlier member; refusing an ambiguous zip")
        parents = path.split("/")[:-1]
        above = ["/".join(parents[:i + 1]) for i in range(len(parents))]
        clash = next((p for p in above if p in self.files), None)
        if clash is None and path in (self.files if folder else self.folders):
            clash = path
        if clash is not None:
            raise UnsafeMemberError(f"{self.where}: member {shown}: {clash!r} is both a file "
                                    "and a folder; refusing an ambiguous zip")
        self.folders.update(above)
        if folder:
            self.folders.add(path)
            self.entries.add(path)
        else:
            self.files.add(path)
