"""Sample thumbnails for a dataset card: small JPEGs as data: URIs, so the page needs nothing
beside itself.

An image is read from the artifact: an image file, or the encoded image inside a record
of a WebDataset tar, a RecordIO `.rec` or a TFRecord shard (told apart by the record's
own framing, not by names). Every read is checked against its file-table row's xxh3: a
file changed since the build is shown as such, never as if it were the data. A row
whose bytes are intact but hold no encoded image (packed pixel arrays, a plugin's own
format) is shown from the source member it records, where that source is set here with
the same fingerprint.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from ..errors import RegistryError
from ..stores.base import artifact_path, outside

if TYPE_CHECKING:
    from ..engine.project import Project

SIDE = 96  # a thumbnail's longest side, in pixels
QUALITY = 75  # JPEG quality: ~2-3 KB a thumbnail
HEADERS = 8192  # bytes read past a record's recorded size: a tar's headers before the image


@dataclass(frozen=True)
class Sample:
    """A file-table row chosen to be shown."""

    cls: str
    path: str
    size: int
    xxh3: str
    offset: int | None
    record: int | None
    member: str | None
    source: str | None

    @property
    def label(self) -> str:
        """What the page calls it: the source member it came from, else its path."""
        return self.member or self.path


@dataclass(frozen=True)
class Thumb:
    label: str
    uri: str | None  # None: not shown, `why`
    why: str = ""
    width: int = 0
    height: int = 0


class Thumbnailer:
    """Reads the samples of artifact `key` from the project's store; `sources`: the names
    of the sources it is made from, by fingerprint (where a sample's source member is
    read from)."""

    def __init__(self, project: Project, key: str, sources: dict[str, str]) -> None:
        self.project = project
        self.fs, root = project.store.filesystem()
        self.folder = f"{root}/{artifact_path(key)}"
        self.local = "file" in self.fs.protocol
        self.sources = sources
        self._sets: dict[str, Any] = {}

    def thumb(self, sample: Sample) -> Thumb:
        why = outside(sample.path, set()) or self._link_out(sample.path)
        if why:
            return Thumb(sample.label, None, f"its row {why}")
        full = f"{self.folder}/{sample.path}"
        try:
            image, hashed = self._read(full, sample)
        except (OSError, ValueError) as exc:  # (no credential in what the page says)
            return Thumb(sample.label, None, self.project.remote.redact(f"unreadable: {exc}"))
        if sample.xxh3 not in hashed:
            return Thumb(sample.label, None, "changed since it was built (registry verify)")
        try:
            return Thumb(sample.label, *jpeg_uri(image))
        except RegistryError:
            pass  # no image in it: its source member, if it can be read here
        try:
            original = self._source_member(sample)
            if original is not None:
                return Thumb(sample.label, *jpeg_uri(original))
        except (RegistryError, OSError) as exc:
            return Thumb(sample.label, None, f"source member unreadable: {exc}")
        return Thumb(sample.label, None, "holds no image, and its source is not set here")

    def _link_out(self, path: str) -> str | None:
        if not self.local:
            return None
        base = os.path.realpath(self.folder)
        real = os.path.realpath(os.path.join(self.folder, *path.split("/")))
        inside = os.path.commonpath([base, real]) == base
        return None if inside else "leads out of the artifact through a link"

    def _read(self, full: str, sample: Sample) -> tuple[bytes, set[str]]:
        """(the image bytes, the xxh3s of what was read that may match the row): a whole
        file; a record's slice, and the image unwrapped from it."""
        if sample.record is None or sample.offset is None:
            data = self.fs.cat_file(full)
            return data, {xxhash.xxh3_128_hexdigest(data)}
        start = sample.offset
        window = self.fs.cat_file(full, start=start, end=start + sample.size + HEADERS)
        record = window[:sample.size]
        image = unwrap(window, sample.size)
        return image, {xxhash.xxh3_128_hexdigest(record), xxhash.xxh3_128_hexdigest(image)}

    def _source_member(self, sample: Sample) -> bytes | None:
        from ..sources.index import member_sets
        from ..sources.members import read_member, use_remote

        name = self.sources.get(sample.source)
        resolver = self.project.resolver
        if not (name and sample.member and resolver.is_set(name)):
            return None
        info = resolver.source_info(name)
        if info.fingerprint != sample.source:
            return None  # another copy than the one built from
        if name not in self._sets:
            self._sets[name] = member_sets(info)
        use_remote(self.project.remote)
        for members in self._sets[name].values():
            i = exact(members.origins, sample.member)
            if i >= 0:
                return read_member(members[i])
        return None


def exact(column: Any, text: str) -> int:
    """The index of `text` in a StrColumn (one bytes search, then neighbours), or -1."""
    i = column.find(text)
    while 0 <= i < len(column):
        if column[i] == text:
            return i
        rest = column.slice(i + 1, len(column))
        j = rest.find(text)
        i = -1 if j < 0 else i + 1 + j
    return -1


def jpeg_uri(data: bytes) -> tuple[str, str, int, int]:
    """(data: URI, "", width, height) of `data` decoded (the recipes' bomb and colour
    policy), shrunk to fit SIDE x SIDE and encoded as a JPEG; BadImageError if it is no
    image Pillow reads."""
    from ..recipes.imaging import rgb_jpeg

    def shrink(im: Any) -> Any:
        im.thumbnail((SIDE, SIDE))
        return im

    jpeg, width, height = rgb_jpeg(data, "sample", QUALITY, shrink)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"), "", width, height


# -- records: the image inside ------------------------------------------------------------

def unwrap(window: bytes, size: int) -> bytes:
    """The encoded image of the record at the start of `window` (`size`: its recorded
    size), by the record's framing: a tar header (WebDataset), RecordIO's magic, a
    TFRecord frame whose length CRC holds; else the record's bytes as they are."""
    from ..formats import recordio, tfrecord

    try:
        if window[257:262] == b"ustar":
            return _tar_member(window, size)
        if len(window) >= 4 and struct.unpack("<I", window[:4])[0] == recordio.MAGIC:
            _, payload = next(recordio.iter_records(io.BytesIO(window[:size])))
            return recordio.unpack_image(payload)[2]
        if len(window) >= 12 and tfrecord.masked_crc(window[:8]) == \
                struct.unpack("<I", window[8:12])[0]:
            example = next(tfrecord.iter_frames(io.BytesIO(window[:size])))
            found = example_bytes(example, b"image/encoded")
            if found is not None:
                return found
    except (ValueError, StopIteration, tarfile.TarError, struct.error):
        pass  # not the framing it looked like: the bytes as they are
    return window[:size]


def _tar_member(window: bytes, size: int) -> bytes:
    """The first file of `size` bytes in the tar starting at `window`: a WebDataset
    sample's image among its entries (`.cls` and others beside it)."""
    with tarfile.open(fileobj=io.BytesIO(window), mode="r:") as tar:
        member = tar.next()
        while member is not None and not (member.isfile() and member.size == size):
            member = tar.next()
        if member is None:
            raise tarfile.TarError(f"no file of {size} bytes in the record")
        f = tar.extractfile(member)
        assert f is not None  # a regular file
        return f.read()


def example_bytes(example: bytes, key: bytes) -> bytes | None:
    """The first value of the bytes feature `key` of a serialized tf.train.Example: a
    few lines of protobuf's wire format instead of TensorFlow."""
    for number, features in _fields(example):
        if number != 1:  # Example.features
            continue
        for entry_number, entry in _fields(features):  # Features.feature: map entries
            parts = dict(_fields(entry)) if entry_number == 1 else {}
            if parts.get(1) != key or 2 not in parts:
                continue
            for kind, values in _fields(parts[2]):  # Feature: 1 is a BytesList
                if kind == 1:
                    return next((v for n, v in _fields(values) if n == 1), None)
    return None


def _fields(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """(field number, payload) of the length-delimited fields of a protobuf message; other
    wire types are skipped. ValueError on bytes that are no message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("a field runs past the message")
            yield key >> 3, buf[i:i + n]
            i += n
        else:
            raise ValueError(f"wire type {wire}")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("a truncated varint")
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i

