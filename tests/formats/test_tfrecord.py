"""Our TFRecord writer, read back by the independent `tfrecord` package."""

import io

import pytest

from dataset_registry.formats.tfrecord import (
    TFRecordError,
    encode_example,
    frame,
    iter_frames,
    masked_crc,
)


def test_crc32c_and_mask_match_the_published_values():
    from crc32c import crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert masked_crc(b"") == (((0 >> 15) | (0 << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_tfrecord_package_reads_our_records(tmp_path):
    from tfrecord.reader import tfrecord_loader

    path = tmp_path / "train-00000-of-00001"
    examples = [{"image/encoded": b"\xff\xd8jpeg" + bytes([i]), "image/class/label": i + 1,
                 "image/class/synset": "n01440764", "image/height": 375, "image/width": 500,
                 "image/filename": f"n01440764_{i}.JPEG", "image/colorspace": "RGB",
                 "image/channels": 3, "image/format": "JPEG"} for i in range(5)]
    with open(path, "wb") as f:
        for ex in examples:
            f.write(frame(encode_example(ex)))
    got = list(tfrecord_loader(str(path), None, description={
        "image/encoded": "byte", "image/class/label": "int", "image/class/synset": "byte",
        "image/height": "int", "image/filename": "byte"}))
    assert len(got) == 5
    for ex, rec in zip(examples, got, strict=True):
        assert bytes(rec["image/encoded"]) == ex["image/encoded"]
        assert int(rec["image/class/label"][0]) == ex["image/class/label"]
        assert bytes(rec["image/class/synset"]).decode() == "n01440764"
        assert bytes(rec["image/filename"]).decode() == ex["image/filename"]
    with open(path, "rb") as f:
        assert len(list(iter_frames(f))) == 5


def test_examples_are_deterministic_and_negative_ints_encode():
    a = encode_example({"b": 1, "a": [b"x", b"y"], "c": [1.5, -2.0], "d": -3})
    assert a == encode_example({"d": -3, "c": [1.5, -2.0], "a": [b"x", b"y"], "b": 1})
    with pytest.raises(TFRecordError, match="cannot encode"):
        encode_example({"x": [1, b"a"]})


def test_a_flipped_byte_fails_the_crc():
    data = bytearray(frame(b"payload"))
    data[14] ^= 1
    with pytest.raises(TFRecordError, match="data CRC mismatch"):
        list(iter_frames(io.BytesIO(bytes(data))))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 16_383, 16_384, 16_385, 123_457,
                                  2**21 - 40, 2**21 + 5])
def test_example_pieces_are_encode_example_and_frame_byte_for_byte(size):
    """The pieces a record is written from join to `frame(encode_example(...))`, at every
    varint boundary of the image's nested lengths; the image (and any bytes value of BIG or
    more) is a piece as given, not a copy; a small bytes value is encoded in line."""
    import random

    from dataset_registry.formats.tfrecord import (
        BIG,
        encode_example,
        example_pieces,
        frame,
        framed_pieces,
    )

    rng = random.Random(size)
    image, other = rng.randbytes(size), b"\2" * 5000
    features = {"image/height": 70_000, "image/width": 500, "image/colorspace": b"RGB",
                "image/class/label": -1, "image/filename": b"x" * 200, "image/encoded": image,
                "a/first": other, "z/floats": [0.5, 2.0], "z/ints": [1, 300]}
    pieces = example_pieces(features)
    assert b"".join(pieces) == encode_example(features)
    assert b"".join(framed_pieces(pieces)) == frame(encode_example(features))
    assert any(p is other for p in pieces)
    assert any(p is image for p in pieces) == (size >= BIG)


def test_repeated_feature_entries_are_encoded_once_and_the_same(monkeypatch):
    """Entries kept by name and value (`_entry`): the records come out as `encode_example`
    encodes them, whatever was kept, values equal across types (1, 1.0, True) included, and
    through the store being emptied when full; a bool is still refused, after a 1."""
    from dataset_registry.formats import tfrecord
    from dataset_registry.formats.tfrecord import TFRecordError, encode_example, example_pieces

    monkeypatch.setattr(tfrecord, "_ENTRIES", {})
    monkeypatch.setattr(tfrecord, "_MAX_ENTRIES", 5)
    values = [1, 1.0, "1", b"1", 300, -1, b"RGB", "x" * 64, b"y" * 65, [1, 2], [0.5]]
    for i in range(40):
        features = {"image/encoded": bytes(5000 + i), "image/label": values[i % len(values)],
                    "image/other": values[(3 * i) % len(values)], "image/n": i % 3}
        assert b"".join(example_pieces(features)) == encode_example(features), features
    assert 0 < len(tfrecord._ENTRIES) <= 5
    assert b"".join(example_pieces({"a": 1})) == encode_example({"a": 1})
    with pytest.raises(TFRecordError):  # (True == 1: kept, it would pass as 1)
        example_pieces({"a": True})


def test_kept_entries_tell_a_str_from_bytes_under_python_bb(tmp_path):
    """"1" and b"1" hash alike: were they one key, looking one up after the other is kept
    would compare str with bytes, an error under `python -bb`."""
    import subprocess
    import sys

    code = ("from dataset_registry.formats.tfrecord import example_pieces, encode_example\n"
            "for v in (b'1', '1', b'1'):\n"
            "    assert b''.join(example_pieces({'a': v})) == encode_example({'a': v})\n")
    out = subprocess.run([sys.executable, "-bb", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
