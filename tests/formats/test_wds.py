"""Our WebDataset writer: tarfile's own header bytes, read back by `webdataset`."""

import io
import tarfile

import pytest

from dataset_registry.formats.wds import (
    ShardError,
    ShardWriter,
    cls_bytes,
    entry_header,
    sample_bytes,
    tarfile_header,
)


def test_webdataset_reads_our_shards_and_bytes_are_reproducible(tmp_path):
    import webdataset as wds

    def write(path):
        with open(path, "wb") as f:
            w = ShardWriter(f)
            for i in range(6):
                w.write(f"n01440764_{i}", {"jpg": b"JPEG" + bytes([i]), "cls": cls_bytes(i % 3)})
            w.close()

    write(tmp_path / "a.tar")
    write(tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    samples = list(wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"n01440764_{i}" for i in range(6)]
    assert [int(s["cls"]) for s in samples] == [0, 1, 2, 0, 1, 2]
    assert samples[3]["jpg"] == b"JPEG\x03"


def test_keys_with_dots_are_refused(tmp_path):
    with open(tmp_path / "x.tar", "wb") as f, pytest.raises(ShardError, match="hold no"):
        ShardWriter(f).write("n01440764_1.JPEG", {"jpg": b""})


NAMES = ["n01440764_1.cls", "a.jpg", "x" * 99 + ".", "x" * 96 + ".jpg", "x" * 97 + ".jpg",
         "k\u00e9y_\u6f22.jpg", "x" * 60 + "\u00e9" * 20 + ".jpg", "sub/dir/key.jpg"]


@pytest.mark.parametrize("name", NAMES)
def test_fast_headers_are_tarfiles_bytes(name):
    for size in (0, 1, 511, 512, 513, 110_000, 8 ** 11 - 1, 8 ** 11):
        assert entry_header(name, size) == tarfile_header(name, size)


def test_a_shard_is_byte_for_byte_what_tarfile_writes(tmp_path):
    samples = [(f"{'k' * (i * 13)}key{i}", {"cls": cls_bytes(i), "jpg": bytes(range(i)) * i})
               for i in range(12)]
    buf = io.BytesIO()
    writer = ShardWriter(buf)
    for key, entries in samples:
        writer.write(key, entries)
    size, _ = writer.close()
    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for key, entries in samples:
            for ext, data in entries.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode, info.uname, info.gname = \
                    len(data), 0, 0o444, "", ""
                tf.addfile(info, io.BytesIO(data))
    assert buf.getvalue() == reference.getvalue() and size == len(buf.getvalue())
    planned = 1024 + sum(sample_bytes(k, {e: len(d) for e, d in entries.items()})
                         for k, entries in samples)
    assert size == -(-planned // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def test_a_writer_that_keeps_no_hash_writes_the_same_bytes():
    """A region's writer (`hashed=False`: its shard is hashed whole) writes what a hashing
    writer does; only the hash it returns is left out."""
    import xxhash

    out = []
    for hashed in (True, False):
        buf = io.BytesIO()
        writer = ShardWriter(buf, 1024, hashed=hashed)
        for i in range(5):
            writer.write(f"key{i}", {"cls": cls_bytes(i), "jpg": bytes(range(i * 50 % 256))})
        out.append((writer.close(), buf.getvalue()))
    ((size, digest), data), ((size_unhashed, none), same) = out
    assert same == data and size_unhashed == size == 1024 + len(data)
    assert digest == xxhash.xxh3_128_hexdigest(data) and none == ""
