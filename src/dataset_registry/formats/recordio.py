"""MXNet / dmlc-core RecordIO: `.rec` records, `.idx` offsets, im2rec `.lst` lines.

A record is `uint32 magic, uint32 lrec` (length in the low 29 bits, a part flag
in the top 3), the bytes, zero padding to a multiple of 4. A payload holding
the magic at a 4-byte-aligned position is split there into parts (flag 1 first,
2 middle, 3 last; the magic itself is dropped and put back by the reader), as
dmlc-core's RecordIOWriter does. An image record's payload is the IRHeader
`<IfQQ` (flag, label, id, id2) and the image bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_LENGTH = (1 << 29) - 1
_IRHEADER = struct.Struct("<IfQQ")
_HEAD_WORDS = struct.Struct("<6I")  # the IRHeader as the aligned words dmlc scans


class RecordIOError(ValueError):
    """Malformed RecordIO data, or a record the format cannot hold."""


@dataclass(frozen=True)
class IRHeader:
    flag: int  # 0: one float label in `label`; N > 0: N float32 labels follow the header
    label: float
    id: int
    id2: int = 0


def pack_image(header: IRHeader, image: bytes, labels: tuple[float, ...] = ()) -> bytes:
    """The payload of an image record, as mxnet.recordio.pack writes it."""
    if labels:
        header = IRHeader(len(labels), 0.0, header.id, header.id2)
        return _IRHEADER.pack(*_fields(header)) + struct.pack(f"<{len(labels)}f", *labels) + image
    return _IRHEADER.pack(*_fields(header)) + image


def unpack_image(payload: bytes) -> tuple[IRHeader, tuple[float, ...], bytes]:
    if len(payload) < _IRHEADER.size:
        raise RecordIOError(f"payload of {len(payload)} bytes is shorter than an IRHeader")
    header = IRHeader(*_IRHEADER.unpack_from(payload))
    body = payload[_IRHEADER.size:]
    if header.flag > 0:
        labels = struct.unpack_from(f"<{header.flag}f", body)
        return header, labels, body[4 * header.flag:]
    return header, (), body


def _fields(h: IRHeader) -> tuple[int, float, int, int]:
    return h.flag, h.label, h.id, h.id2


def encode_record(payload: bytes) -> bytes:
    """The bytes dmlc-core's RecordIOWriter::WriteRecord writes for `payload`."""
    size = len(payload)
    if size > MAX_LENGTH:
        raise RecordIOError(f"a record of {size} bytes is over RecordIO's limit of "
                            f"{MAX_LENGTH} bytes (2^29 - 1)")
    out = bytearray()
    start = 0
    # Only 4-byte-aligned occurrences split a record: compare whole little-endian words.
    words = np.frombuffer(payload, dtype="<u4", count=size // 4)
    for i in (np.flatnonzero(words == MAGIC) * 4).tolist():
        out += _MAGIC_BYTES + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start))
        out += payload[start:i]
        start = i + 4
    out += _MAGIC_BYTES + struct.pack("<I", ((3 if start else 0) << 29) | (size - start))
    out += payload[start:]
    out += b"\0" * (-size % 4)
    return bytes(out)


def image_record(header: IRHeader, image: bytes) -> list[bytes]:
    """`encode_record(pack_image(header, image))` as pieces to write in order, without
    copying the image when no aligned magic forces a split (nearly always)."""
    head = _IRHEADER.pack(*_fields(header))
    size = len(head) + len(image)
    words = np.frombuffer(image, dtype="<u4", count=len(image) // 4)
    if size > MAX_LENGTH or MAGIC in _HEAD_WORDS.unpack(head) or (words == MAGIC).any():
        return [encode_record(head + image)]
    return [struct.pack("<II", MAGIC, size) + head, image, b"\0" * (-size % 4)]


def iter_records(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(offset of the first part's magic, payload) of every record, parts rejoined."""
    offset = f.tell()
    parts: list[bytes] = []
    first = offset
    while True:
        head = f.read(8)
        if not head:
            if parts:
                raise RecordIOError(f"offset {first}: the file ends inside a multi-part record")
            return
        if len(head) < 8:
            raise RecordIOError(f"offset {offset}: truncated record header")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordIOError(f"offset {offset}: bad magic 0x{magic:08X}")
        flag, length = lrec >> 29, lrec & MAX_LENGTH
        data = f.read(length + (-length % 4))
        if len(data) < length:
            raise RecordIOError(f"offset {offset}: truncated record body")
        data = data[:length]
        if flag == 0:
            if parts:
                raise RecordIOError(f"offset {offset}: whole record inside a multi-part one")
            yield offset, data
        elif flag == 1:
            parts, first = [data], offset
        elif flag in (2, 3) and parts:
            parts += [_MAGIC_BYTES, data]
            if flag == 3:
                yield first, b"".join(parts)
                parts = []
        else:
            raise RecordIOError(f"offset {offset}: part flag {flag} out of sequence")
        offset = f.tell()


def idx_line(key: int, offset: int) -> str:
    """A line of the `.idx` MXIndexedRecordIO writes."""
    return f"{key}\t{offset}\n"


def lst_line(index: int, labels: tuple[float, ...], path: str) -> str:
    """A line of im2rec's `.lst`: labels in MXNet 1.x's `%f` form."""
    return f"{index}\t" + "".join(f"{label:f}\t" for label in labels) + f"{path}\n"
