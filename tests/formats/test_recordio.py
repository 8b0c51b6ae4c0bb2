"""RecordIO against dmlc-core's sample.rec and a 10-record im2rec pass-through fixture."""

import io
import struct
from pathlib import Path

import pytest

from dataset_registry.formats.recordio import (
    MAGIC,
    IRHeader,
    RecordIOError,
    encode_record,
    idx_line,
    iter_records,
    lst_line,
    pack_image,
    unpack_image,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recordio"


def fixture_records(data: bytes):
    """An independent, minimal parse (whole records only) of the fixture bytes."""
    offset, out = 0, []
    while offset < len(data):
        magic, lrec = struct.unpack_from("<II", data, offset)
        assert magic == MAGIC and lrec >> 29 == 0
        length = lrec & ((1 << 29) - 1)
        out.append((offset, data[offset + 8:offset + 8 + length]))
        offset += 8 + length + (-length % 4)
    return out


def test_writer_reproduces_the_pass_through_fixture_byte_for_byte():
    rec = (FIXTURES / "mivisionx_mx_net.rec").read_bytes()
    items = []
    for _, payload in fixture_records(rec):
        _, label, key, _ = struct.unpack_from("<IfQQ", payload)
        items.append((key, label, payload[24:]))
    assert len(items) == 10 and all(jpeg[:3] == b"\xff\xd8\xff" for _, _, jpeg in items)
    out, idx = bytearray(), []
    for key, label, jpeg in items:
        idx.append(idx_line(key, len(out)))
        out += encode_record(pack_image(IRHeader(0, label, key, 0), jpeg))
    assert bytes(out) == rec
    assert "".join(idx) == (FIXTURES / "mivisionx_mx_net.idx").read_text()


def test_reader_parses_dmlc_sample():
    with open(FIXTURES / "dmlc-core_sample.rec", "rb") as f:
        records = list(iter_records(f))
    assert [offset for offset, _ in records] == [52 * i for i in range(10)]
    for i, (_, payload) in enumerate(records, 1):
        header, labels, body = unpack_image(payload)
        assert header == IRHeader(0, float(i % 2), i, 0) and labels == ()
        assert body == f"{i}\n".encode() * 10


def test_magic_inside_the_payload_splits_into_parts_and_rejoins():
    magic = struct.pack("<I", MAGIC)
    payload = b"abcd" + magic + b"efgh" + magic + magic + b"xyz"
    data = encode_record(payload)
    flags = []
    offset = 0
    while offset < len(data):
        _, lrec = struct.unpack_from("<II", data, offset)
        flags.append(lrec >> 29)
        length = lrec & ((1 << 29) - 1)
        offset += 8 + length + (-length % 4)
    assert flags == [1, 2, 2, 3]
    assert list(iter_records(io.BytesIO(data + encode_record(b"next")))) == [
        (0, payload), (len(data), b"next")]
    # an unaligned magic is plain data
    assert list(iter_records(io.BytesIO(encode_record(b"x" + magic)))) == [(0, b"x" + magic)]


def test_multi_label_header():
    payload = pack_image(IRHeader(0, 0.0, 7), b"IMG", labels=(1.0, 2.5))
    header, labels, body = unpack_image(payload)
    assert header.flag == 2 and labels == (1.0, 2.5) and body == b"IMG"


def test_a_record_over_the_limit_is_refused():
    class Huge(bytes):
        def __len__(self):
            return 1 << 29

    with pytest.raises(RecordIOError, match="over RecordIO's limit"):
        encode_record(Huge(b""))


def test_lst_lines_are_mxnet_1x():
    assert lst_line(3, (0.0,), "n01440764/x.JPEG") == "3\t0.000000\tn01440764/x.JPEG\n"


def test_corrupt_input_is_named():
    with pytest.raises(RecordIOError, match="offset 0: bad magic"):
        list(iter_records(io.BytesIO(b"\0" * 16)))
    with pytest.raises(RecordIOError, match="truncated record body"):
        list(iter_records(io.BytesIO(encode_record(b"abcdefgh")[:-3])))


def test_fast_scan_equals_the_aligned_rule_on_random_payloads():
    import random

    magic = struct.pack("<I", MAGIC)

    def reference(payload: bytes) -> bytes:  # dmlc-core's loop, one aligned word at a time
        out, start, size = bytearray(), 0, len(payload)
        for i in range(0, size - size % 4, 4):
            if payload[i:i + 4] == magic:
                out += magic + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start))
                out += payload[start:i]
                start = i + 4
        out += magic + struct.pack("<I", ((3 if start else 0) << 29) | (size - start))
        return bytes(out + payload[start:] + b"\0" * (-size % 4))

    rng = random.Random(5)
    for _ in range(300):
        parts = [rng.choice([magic, bytes(rng.randrange(256) for _ in range(rng.randrange(7)))])
                 for _ in range(rng.randrange(12))]
        payload = b"".join(parts)
        assert encode_record(payload) == reference(payload)


def test_image_record_pieces_equal_the_whole_record_encoding():
    import random

    from dataset_registry.formats.recordio import image_record

    magic = struct.pack("<I", MAGIC)
    rng = random.Random(9)
    cases = [b"", b"\xff\xd8abc", magic, b"abcd" + magic + b"xy", b"abc" + magic + b"\0"]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(50)]
    for image in cases:
        for header in (IRHeader(0, 3.0, 17, 0), IRHeader(0, 0.0, MAGIC, 0)):
            pieces = image_record(header, image)
            assert b"".join(pieces) == encode_record(pack_image(header, image))
